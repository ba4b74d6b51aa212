"""nnUNetTrainerReIsoSegNet: the paper's network, its topology from the plans, its loss and outputs."""
import numpy as np
import pytest
import torch
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

from nnunetv2_reisoseg import trainer_dir
from nnunetv2_reisoseg.method.network import ReIsoOutput
from nnunetv2_reisoseg.paper.network import ReIsoSegPaperNet, fit_patch_size, paper_topology
from nnunetv2_reisoseg.training.paper import nnUNetTrainerReIsoSegNet
from tests.fixtures import load_plans
from tests.training.test_trainer import DATASET_JSON


def _n(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("spacing, total", [((40, 5, 5), 1_690_579), ((20, 5, 5), 1_694_611)])
def test_parameter_counts_match_the_reference(spacing, total):
    # the reference's counts for ratio 8 and 4 (one input channel, two classes) without its four unused layers
    net = ReIsoSegPaperNet(1, 2, paper_topology(spacing))
    assert _n(net) == total
    assert _n(net.pi_module) == 81_135
    # six 1x1x1 output convs, three per branch (full after and before the output conv, level 1), as the reference
    heads = {k: tuple(v.shape) for k, v in net.state_dict().items() if ".seg_layers." in k}
    assert heads == {f"{b}.seg_layers.{i}.weight": (2, c, 1, 1, 1) for b in ("decoder", "isotropic")
                     for i, c in enumerate((28, 28, 36))}


@pytest.mark.parametrize("spacing, flat, pi_ratios", [
    ((40, 5, 5), 3, (4, 2, 1)), ((20, 5, 5), 2, (4, 2, 1)), ((10, 5, 5), 1, (2, 2, 1)), ((5, 5, 5), 0, (1, 1, 1)),
    ((45, 6, 6), 3, (3.75, 1.875, 0.9375)),  # 7.5: nearest reference topology is ratio 8
    ((30, 5, 5), 3, (3, 1.5, 0.75)),  # 6 rounds to 8 in log2
    ((5, 5, 25), 2, (5, 2.5, 1.25)),  # section axis last (transposed data), ratio 5 -> 4's topology
])
def test_topology_from_spacing(spacing, flat, pi_ratios):
    t = paper_topology(spacing)
    assert t.flat_pools == flat
    assert t.level_ratios[1:4] == pytest.approx(pi_ratios)
    assert all(p[t.section_axis] == 1 for p in t.pools[3 - flat:3]) and t.pools[3] == (2, 2, 2)
    assert "ReIsoSeg paper network" in t.describe()


def test_patch_size_is_fitted_or_refused():
    t = paper_topology((40, 5, 5))  # divisor (2, 16, 16)
    assert fit_patch_size((20, 128, 128), t) == (20, 128, 128)
    assert fit_patch_size((21, 100, 130), t) == (20, 96, 128)
    with pytest.raises(ValueError, match="axis 1 needs at least 16"):
        fit_patch_size((20, 8, 128), t)
    with pytest.raises(ValueError, match="3D"):
        paper_topology((5, 5))


def test_branches_outputs_and_inference_without_pi(monkeypatch):
    torch.manual_seed(0)
    net = ReIsoSegPaperNet(1, 3, paper_topology((40, 10, 10)))  # ratio 4
    x = torch.randn(2, 1, 8, 32, 32)
    out = net(x)
    assert isinstance(out, ReIsoOutput)
    for branch in out:
        assert [tuple(o.shape) for o in branch] == [(2, 3, 8, 32, 32), (2, 3, 8, 32, 32), (2, 3, 4, 16, 16)]
    sum(o.float().pow(2).mean() for branch in out for o in branch).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    net.eval()
    monkeypatch.setattr(net.pi_module, "forward", lambda *a: pytest.fail("PI module ran at inference"))
    with torch.no_grad():
        ds = net(x)
        net.decoder.deep_supervision = False
        single = net(x)
    assert torch.equal(ds[0], single)


def test_each_branch_reads_out_with_its_own_heads():
    torch.manual_seed(0)
    net = ReIsoSegPaperNet(1, 2, paper_topology((40, 10, 10)))
    x = torch.randn(1, 1, 8, 32, 32)
    net.pi_module.draw = lambda: (1, None)
    with torch.no_grad():
        before = net(x)
        for p in net.isotropic.seg_layers.parameters():
            p.mul_(-1)
        after = net(x)
    assert all(torch.equal(a, b) for a, b in zip(before.anisotropic, after.anisotropic))
    assert all(torch.allclose(a, -b) for a, b in zip(before.isotropic, after.isotropic))  # 1x1x1, no bias


def test_trainer_plans_loss_and_discovery(nnunet_dirs, monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", str(trainer_dir()))
    assert recursive_find_trainer_class_by_name("nnUNetTrainerReIsoSegNet_5epochs")({
        **load_plans("tiny_40x10x10"), "continue_training": False}, "3d_fullres", 0, DATASET_JSON,
        torch.device("cpu")).num_epochs == 5
    plans = {**load_plans("em_40x5x5_patch20x128x128"), "continue_training": False}
    plans["configurations"]["3d_fullres"]["patch_size"] = [20, 120, 136]
    t = nnUNetTrainerReIsoSegNet(plans, "3d_fullres", 0, DATASET_JSON, torch.device("cpu"))
    assert t.configuration_manager.patch_size == [20, 112, 128]  # fitted to the pooling, saved with the model
    assert t.my_init_kwargs["plans"]["configurations"]["3d_fullres"]["patch_size"] == [20, 112, 128]
    assert plans["configurations"]["3d_fullres"]["patch_size"] == [20, 120, 136]  # the caller's plans untouched
    assert t._get_deep_supervision_scales() == [[1, 1, 1], [1, 1, 1], [1, 0.5, 0.5]]
    loss = t._build_loss()
    assert np.allclose(loss.branch_loss.weight_factors, np.array([1, 0.5, 0.25]) / 3.5)
    _matches_the_reference_weighting(loss)
    net = t.build_network_architecture(t.plans_manager, t.configuration_manager, 1, 2, True)
    assert isinstance(net, ReIsoSegPaperNet) and net.topology.flat_pools == 3
    with pytest.raises(RuntimeError, match="3D configuration"):
        nnUNetTrainerReIsoSegNet({**load_plans("tiny_40x10x10"), "continue_training": False}, "2d", 0, DATASET_JSON,
                                 torch.device("cpu"))


def _matches_the_reference_weighting(loss):
    """The reference's loss (fenglingbai/ReIsoSeg, ReIsoLossHistory): weights [1, .5, .25] of each branch divided
    by their sum over both branches (3.5), then (1 - a) for the isotropic and a for the anisotropic sum."""
    torch.manual_seed(0)
    shapes = [(2, 2, 4, 16, 16), (2, 2, 4, 16, 16), (2, 2, 4, 8, 8)]
    ani = [torch.randn(s) for s in shapes]
    iso = [torch.randn(s) for s in shapes]
    target = [torch.randint(0, 2, (s[0], 1, *s[2:])).float() for s in shapes]
    inner = loss.branch_loss.loss  # nnU-Net's Dice + CE on one output
    w = [1.0 / 3.5, 0.5 / 3.5, 0.25 / 3.5]
    a = loss.ani_weight
    reference = (1 - a) * sum(wi * inner(o, t) for wi, o, t in zip(w, iso, target)) + \
        a * sum(wi * inner(o, t) for wi, o, t in zip(w, ani, target))
    assert loss(ReIsoOutput(ani, iso), target).item() == pytest.approx(reference.item(), rel=1e-6)
