"""ReIsoSegNetwork: the stock network at eval, both branches in training, each with its own heads."""
import warnings

import pytest
import torch
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_reisoseg.method.knobs import PISettings
from nnunetv2_reisoseg.method.network import (
    ReIsoOutput,
    ReIsoSegNetwork,
    build_reiso_network,
    strip_training_only,
)
from tests.fixtures import load_plans


def _build(name, ds=True, input_shape=None, pi_levels=None):
    pm = PlansManager(load_plans(name))
    cm = pm.get_configuration("3d_fullres")
    torch.manual_seed(0)
    net = build_reiso_network(pm, cm, 1, 2, ds, PISettings(levels=pi_levels))
    stock = nnUNetTrainer.build_network_architecture(pm, cm, 1, 2, ds)
    return net, stock, tuple(input_shape or cm.patch_size)


@pytest.mark.parametrize("name, shape", [("tiny_40x10x10", None), ("em_40x5x5_resencm", (8, 64, 64))])
@pytest.mark.parametrize("ds", [True, False])
def test_eval_is_the_stock_network_bit_for_bit(name, shape, ds, monkeypatch):
    net, stock, shape = _build(name, ds, shape)
    assert set(strip_training_only(net.state_dict())) == set(stock.state_dict())
    stock.load_state_dict(strip_training_only(net.state_dict()))
    net.eval()
    stock.eval()
    monkeypatch.setattr(net.isotropic, "forward", lambda *a: pytest.fail("isotropic branch ran at inference"))
    monkeypatch.setattr(net.pi_module, "forward", lambda *a: pytest.fail("PI module ran at inference"))
    x = torch.randn(1, 1, *shape)
    with torch.no_grad():
        a, b = net(x), stock(x)
    a, b = (a, b) if ds else ([a], [b])
    assert all(torch.equal(i, j) for i, j in zip(a, b))


def test_isotropic_heads_have_the_stock_shapes_and_their_own_weights():
    net, _, _ = _build("tiny_40x10x10")
    ani, iso = net.decoder.seg_layers, net.isotropic.seg_layers
    assert [h.weight.shape for h in ani] == [h.weight.shape for h in iso]
    assert all(not torch.equal(a.weight, b.weight) for a, b in zip(ani, iso))  # initialised independently
    # nnU-Net's He init (slope 1e-2) gives the same spread for both sets of heads
    std = [float(torch.cat([h.weight.detach().flatten() for h in heads]).std()) for heads in (ani, iso)]
    assert std[1] == pytest.approx(std[0], rel=0.3)
    heads = [k for k in net.state_dict() if "seg_layers" in k and not k.startswith("decoder")]
    assert heads and all(k.startswith("isotropic.") for k in heads)


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
    # the lowest seg layer of each branch has weight 0 in nnU-Net (1e-6 under DDP without compile)
    assert missing == ["decoder.seg_layers.0.weight", "decoder.seg_layers.0.bias",
                       "isotropic.seg_layers.0.weight", "isotropic.seg_layers.0.bias"]


def test_each_branch_uses_its_own_heads_on_its_own_features():
    """The anisotropic output is the stock decoder on the skips; the isotropic output is the same decoder
    blocks on the PI module's skips, read out by the isotropic heads. Heads of one branch do not touch
    the other branch's output."""
    net, _, shape = _build("tiny_40x10x10")
    net.train()
    x = torch.randn(1, 1, *shape)
    draw = (1, net.pi_module.lateral_axes[0])
    net.pi_module.draw = lambda: draw
    with torch.no_grad():
        out = net(x)
        skips = net.encoder(x)
        assert all(torch.equal(a, b) for a, b in zip(out.anisotropic, net.decoder(skips)))
        pi_skips = net.pi_module.apply_transform(skips, *draw)
        ani_heads = net.decoder.seg_layers
        net.decoder.seg_layers = net.isotropic.seg_layers  # the decoder read out by the isotropic heads
        try:
            expected_iso = net.decoder(pi_skips)
        finally:
            net.decoder.seg_layers = ani_heads
        assert all(torch.equal(a, b) for a, b in zip(out.isotropic, expected_iso))
        for p in net.isotropic.seg_layers.parameters():
            p.add_(1.0)
        again = net(x)
    assert all(torch.equal(a, b) for a, b in zip(again.anisotropic, out.anisotropic))
    assert not any(torch.equal(a, b) for a, b in zip(again.isotropic, out.isotropic))


@pytest.mark.parametrize("name, levels, shape", [
    ("tiny_40x10x10", (1,), None),
    ("em_40x5x5_resencm", None, (8, 64, 64)),
])
def test_shared_decoder_stages_give_the_two_full_passes(name, levels, shape):
    net, _, shape = _build(name, pi_levels=levels, input_shape=shape)
    net.train()
    assert net.stage_loop and net.shared_decoder_stages >= 1
    draw = (0, net.pi_module.lateral_axes[1])
    net.pi_module.draw = lambda: draw
    x = torch.randn(1, 1, *shape)
    out = net(x)
    net.stage_loop = False  # the general path: two full decoder passes, isotropic heads swapped in
    full = net(x)
    assert all(torch.equal(a, b) for a, b in zip(out.anisotropic, full.anisotropic))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(out.isotropic, full.isotropic))
    # gradients: the shared stages receive the sum of both branches' gradients, as with two passes
    grads = []
    for flag in (True, False):
        net.stage_loop = flag
        net.zero_grad()
        o = net(x)
        (sum(t.square().mean() for t in o[0]) + sum(t.square().mean() for t in o[1])).backward()
        grads.append({k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][k], grads[1][k], rtol=1e-4, atol=1e-6) for k in grads[0])


class _ReversedSkipDecoder(UNetDecoder):
    """A decoder whose forward is not the stage loop (it reads the skips in another way)."""

    def forward(self, skips):
        return super().forward([s.flip(-1) for s in skips])


def test_a_decoder_that_is_not_the_stage_loop_gets_two_full_passes():
    net, _, shape = _build("tiny_40x10x10")
    dec = net.decoder
    dec.__class__ = _ReversedSkipDecoder
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrapped = ReIsoSegNetwork(net, net.pi_module, net.isotropic.seg_layers)
    assert not wrapped.stage_loop and wrapped.shared_decoder_stages == 0
    assert any("differs from the stage loop" in str(w.message) for w in caught)
    wrapped.train()
    draw = (2, None)
    wrapped.pi_module.draw = lambda: draw
    x = torch.randn(1, 1, *shape)
    with torch.no_grad():
        out = wrapped(x)
        skips = wrapped.encoder(x)
        assert all(torch.equal(a, b) for a, b in zip(out.anisotropic, dec(skips)))
        ani_heads = dec.seg_layers
        dec.seg_layers = wrapped.isotropic.seg_layers
        try:
            expected = dec(wrapped.pi_module.apply_transform(skips, *draw))
        finally:
            dec.seg_layers = ani_heads
    assert all(torch.equal(a, b) for a, b in zip(out.isotropic, expected))
