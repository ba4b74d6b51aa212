import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_reisoseg.method.network import ReIsoOutput, build_reiso_network, strip_pi_weights
from tests.conftest import load_plans


def _build(name, ds=True, input_shape=None):
    pm = PlansManager(load_plans(name))
    cm = pm.get_configuration("3d_fullres")
    torch.manual_seed(0)
    net = build_reiso_network(pm, cm, 1, 2, ds)
    stock = nnUNetTrainer.build_network_architecture(pm, cm, 1, 2, ds)
    return net, stock, tuple(input_shape or cm.patch_size)


@pytest.mark.parametrize("name, shape", [("tiny_40x10x10", None), ("em_40x5x5_resencm", (8, 64, 64))])
@pytest.mark.parametrize("ds", [True, False])
def test_eval_is_the_stock_network_bit_for_bit(name, shape, ds, monkeypatch):
    net, stock, shape = _build(name, ds, shape)
    assert set(strip_pi_weights(net.state_dict())) == set(stock.state_dict())
    stock.load_state_dict(strip_pi_weights(net.state_dict()))
    net.eval()
    stock.eval()
    monkeypatch.setattr(net.pi_module, "forward", lambda *a: pytest.fail("PI module ran at inference"))
    x = torch.randn(1, 1, *shape)
    with torch.no_grad():
        a, b = net(x), stock(x)
    a, b = (a, b) if ds else ([a], [b])
    assert all(torch.equal(i, j) for i, j in zip(a, b))


def test_training_forward_has_both_branches_and_every_parameter_learns():
    net, _, shape = _build("tiny_40x10x10")
    net.train()
    torch.manual_seed(3)
    out = net(torch.randn(2, 1, *shape))
    assert isinstance(out, ReIsoOutput)
    assert [o.shape for o in out.anisotropic] == [o.shape for o in out.isotropic]
    # nnU-Net's deep supervision weights: the lowest output gets weight 0
    n = len(out.anisotropic)
    w = [0.5 ** i for i in range(n - 1)] + [0.0]
    loss = sum(wi * (o.square().mean() + p.square().mean()) for wi, o, p in zip(w, out.anisotropic, out.isotropic))
    loss.backward()
    missing = [k for k, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    # the lowest seg layer has weight 0 in nnU-Net (1e-6 under DDP without compile)
    assert missing == ["decoder.seg_layers.0.weight", "decoder.seg_layers.0.bias"]


def test_isotropic_branch_differs_from_anisotropic_branch():
    net, _, shape = _build("tiny_40x10x10")
    with torch.no_grad():
        for p in net.pi_module.restore.parameters():  # make the PI output matter at init
            p.normal_()
        out = net.train()(torch.randn(1, 1, *shape))
    assert not torch.equal(out.anisotropic[0], out.isotropic[0])


@pytest.mark.parametrize("name, levels, shape", [
    ("tiny_40x10x10", (1,), None),
    ("em_40x5x5_resencm", None, (8, 64, 64)),
])
def test_shared_decoder_stages_give_the_two_full_passes(name, levels, shape, monkeypatch):
    pm = PlansManager(load_plans(name))
    cm = pm.get_configuration("3d_fullres")
    torch.manual_seed(0)
    net = build_reiso_network(pm, cm, 1, 2, True, pi_levels=levels).train()
    assert net.shared_decoder_stages >= 1
    monkeypatch.setattr(net.pi_module, "draw", lambda: (0, net.pi_module.lateral_axes[1]))
    x = torch.randn(1, 1, *(shape or cm.patch_size))
    out = net(x)
    skips = net.encoder(x)
    ani, iso = net.decoder(skips), net.decoder(net.pi_module(skips))
    assert all(torch.equal(a, b) for a, b in zip(out.anisotropic, ani))
    assert all(torch.equal(a, b) for a, b in zip(out.isotropic, iso))
    # gradients: the shared stages receive the sum of both branches' gradients, as with two passes
    grads = []
    for o in (out, (ani, iso)):
        net.zero_grad()
        (sum(t.square().mean() for t in o[0]) + sum(t.square().mean() for t in o[1])).backward()
        grads.append({k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][k], grads[1][k], rtol=1e-4, atol=1e-6) for k in grads[0])
