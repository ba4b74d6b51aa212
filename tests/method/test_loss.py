"""The re-isotropic loss: L = (1 - a) * L_iso + a * L_ani on training outputs, the anisotropic branch alone
otherwise, with nnU-Net's own branch loss and deep-supervision weighting for each branch."""
import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

from nnunetv2_reisoseg.method.knobs import ANI_WEIGHT
from nnunetv2_reisoseg.method.loss import ReIsotropicLoss
from nnunetv2_reisoseg.method.network import ReIsoOutput

SCALES = [(16, 48, 48), (16, 24, 24), (16, 12, 12)]


def _branch_loss():
    """nnU-Net's stock loss for a label dataset with three deep-supervision outputs (lowest weight 0)."""
    dc_ce = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                           weight_dice=1, dice_class=MemoryEfficientSoftDiceLoss)
    return DeepSupervisionWrapper(dc_ce, (4 / 7, 2 / 7, 0.0))


def _outputs(seed=0):
    torch.manual_seed(seed)
    target = [torch.randint(0, 2, (2, 1, *s)).float() for s in SCALES]
    return [torch.randn(2, 2, *s) for s in SCALES], [torch.randn(2, 2, *s) for s in SCALES], target


@pytest.mark.parametrize("a", [0.0, 0.3, ANI_WEIGHT, 1.0])
def test_the_papers_weighted_sum_of_both_branches(a):
    loss = ReIsotropicLoss(_branch_loss(), a)
    ani, iso, target = _outputs()
    total = loss(ReIsoOutput(ani, iso), target)
    l_ani, l_iso = loss.branch_loss(ani, target), loss.branch_loss(iso, target)
    assert l_ani.item() != pytest.approx(l_iso.item(), rel=1e-3)  # the branches are told apart
    assert total.item() == pytest.approx((1 - a) * l_iso.item() + a * l_ani.item(), rel=1e-6)
    assert [t.item() for t in loss.last_terms] == pytest.approx([l_ani.item(), l_iso.item()])
    assert not any(t.requires_grad for t in loss.last_terms)  # logged, never back-propagated twice


def test_plain_outputs_get_the_anisotropic_branch_loss_only():
    loss = ReIsotropicLoss(_branch_loss())
    ani, _, target = _outputs(1)
    assert loss(ani, target).item() == pytest.approx(loss.branch_loss(ani, target).item())
    assert loss.last_terms is None  # validation leaves the training terms alone


def test_both_branches_get_gradients_and_the_lowest_output_none():
    loss = ReIsotropicLoss(_branch_loss())
    ani, iso, target = _outputs(2)
    for t in (*ani, *iso):
        t.requires_grad_(True)
    loss(ReIsoOutput(ani, iso), target).backward()
    for branch in (ani, iso):
        assert branch[0].grad.abs().sum() > 0 and branch[1].grad.abs().sum() > 0
        assert branch[2].grad is None or branch[2].grad.abs().sum() == 0  # nnU-Net's weight 0 there


@pytest.mark.parametrize("a", [-0.1, 1.5])
def test_a_outside_0_1_is_refused(a):
    with pytest.raises(ValueError, match=r"weight a must be in \[0, 1\]"):
        ReIsotropicLoss(_branch_loss(), a)


def test_a_loss_scale_multiplies_the_training_loss_and_never_validation():
    ani, iso, target = _outputs(3)
    paper, scaled = ReIsotropicLoss(_branch_loss()), ReIsotropicLoss(_branch_loss(), scale=1 / ANI_WEIGHT)
    out = ReIsoOutput(ani, iso)
    assert scaled(out, target).item() == pytest.approx(paper(out, target).item() / ANI_WEIGHT, rel=1e-6)
    assert scaled(ani, target).item() == pytest.approx(paper(ani, target).item(), rel=1e-6)  # validation: as is
    with pytest.raises(ValueError, match="scale must be positive"):
        ReIsotropicLoss(_branch_loss(), scale=0)


def test_the_stock_control_scales_its_loss_where_it_drives_gradients_only():
    from nnunetv2_reisoseg.method.loss import ScaledLoss

    ani, _, target = _outputs(4)
    inner = _branch_loss()
    half = ScaledLoss(inner, 0.5)
    full = inner(ani, target).item()
    assert half(ani, target).item() == pytest.approx(0.5 * full, rel=1e-6)
    with torch.no_grad():  # nnU-Net's validation
        assert half(ani, target).item() == pytest.approx(full, rel=1e-6)
