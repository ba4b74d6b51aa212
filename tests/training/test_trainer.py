import inspect

import numpy as np
import pytest
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.variants.training_length import nnUNetTrainer_Xepochs
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

from nnunetv2_reisoseg import trainer_dir
from nnunetv2_reisoseg.method.knobs import PISettings
from nnunetv2_reisoseg.method.loss import ReIsotropicLoss
from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso
from tests.fixtures import load_plans

DATASET_JSON = {"channel_names": {"0": "EM"}, "labels": {"background": 0, "mito": 1}, "numTraining": 20,
                "file_ending": ".nii.gz"}


def _trainer(cls=nnUNetTrainerReIso, plans="tiny_40x10x10", configuration="3d_fullres", dataset_json=DATASET_JSON):
    p = load_plans(plans)
    p["continue_training"] = False
    return cls(p, configuration, 0, dataset_json, torch.device("cpu"))


@pytest.fixture
def ext_trainer(monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", str(trainer_dir()))


def test_found_through_nnunet_resolver(ext_trainer, nnunet_dirs):
    cls = recursive_find_trainer_class_by_name("nnUNetTrainerReIso")
    assert cls.__name__ == "nnUNetTrainerReIso"
    assert "plans_manager" in inspect.signature(cls.build_network_architecture).parameters


def test_epoch_variants_match_nnunet(ext_trainer, nnunet_dirs):
    stock = [n for n, c in vars(nnUNetTrainer_Xepochs).items() if inspect.isclass(c) and n.startswith("nnUNetTrainer_")]
    assert stock, "nnU-Net's training-length variants moved"
    for name in stock:
        ours = name.replace("nnUNetTrainer_", "nnUNetTrainerReIso_")
        cls = recursive_find_trainer_class_by_name(ours)
        t = _trainer(cls)
        assert t.num_epochs == getattr(nnUNetTrainer_Xepochs, name)(
            {**load_plans("tiny_40x10x10"), "continue_training": False}, "3d_fullres", 0, DATASET_JSON,
            torch.device("cpu")).num_epochs
        assert t.my_init_kwargs["configuration"] == "3d_fullres"


def test_loss_weights_both_branches_with_nnunet_deep_supervision(nnunet_dirs):
    t = _trainer()
    loss = t._build_loss()
    assert isinstance(loss, ReIsotropicLoss) and loss.ani_weight == 0.5
    assert isinstance(loss.branch_loss, DeepSupervisionWrapper)
    w = np.array(loss.branch_loss.weight_factors)
    assert w[-1] == 0 and w.sum() == pytest.approx(1) and w[0] == pytest.approx(2 * w[1])

    t.is_ddp = True  # DDP without compile: nnU-Net's 1e-6 so every parameter gets a gradient
    assert t._build_loss().branch_loss.weight_factors[-1] > 0


def test_region_and_ignore_label_losses(nnunet_dirs):
    regions = {**DATASET_JSON, "labels": {"background": 0, "mito": [1, 2], "cristae": 2}, "regions_class_order": [1, 2]}
    assert type(_trainer(dataset_json=regions)._build_loss().branch_loss.loss).__name__ == "DC_and_BCE_loss"
    ignore = {**DATASET_JSON, "labels": {"background": 0, "mito": 1, "ignore": 2}}
    assert _trainer(dataset_json=ignore)._build_loss().branch_loss.loss.ignore_label == 2


def test_2d_configuration_is_a_clear_error(nnunet_dirs):
    with pytest.raises(RuntimeError, match=r"3D configurations only.*stock nnUNetTrainer for 2d"):
        _trainer(configuration="2d")
    assert not any(nnunet_dirs["nnUNet_results"].iterdir())  # nothing created


def test_checkpoint_from_another_trainer_is_a_clear_error(nnunet_dirs, tmp_path):
    from nnunetv2_reisoseg.training.trainer import check_checkpoint

    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {"encoder.w": torch.zeros(1)}, "trainer_name": "nnUNetTrainer", "init_args": {}},
               path)
    with pytest.raises(RuntimeError, match=r"written by nnUNetTrainer.*no PI module"):
        check_checkpoint(str(path), "nnUNetTrainerReIso")
    torch.save({"network_weights": {"isotropic.pi_module.w": torch.zeros(1)}, "trainer_name": "nnUNetTrainerReIso",
                "init_args": {}}, path)
    check_checkpoint(str(path), "nnUNetTrainerReIso")
    path.write_bytes(b"truncated download")
    with pytest.raises(RuntimeError, match=r"cannot continue from it: .* is not a readable PyTorch checkpoint"):
        check_checkpoint(str(path), "nnUNetTrainerReIso")


def test_every_knob_is_a_class_attribute_that_reaches_the_model(nnunet_dirs):
    """A subclass sets the knobs; the network gets them from the class alone (as inference and nnU-Net's
    initialize build it), the loss from the trainer."""
    class Knobs(nnUNetTrainerReIso):
        pi = PISettings(levels=(2,), reduction=2, lateral_degradation_p=0.7)
        reiso_ani_weight = 0.3

    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    pm = PlansManager(load_plans("tiny_40x10x10"))
    net = Knobs.build_network_architecture(pm, pm.get_configuration("3d_fullres"), 1, 2, False)
    assert net.pi_module.levels == (2,) and net.pi_module.lateral_degradation_p == 0.7
    assert net.pi_module.reduce[0].out_channels == 128 // 2
    assert _trainer(Knobs)._build_loss().ani_weight == 0.3
    default = nnUNetTrainerReIso.build_network_architecture(pm, pm.get_configuration("3d_fullres"), 1, 2, False)
    assert default.pi_module.lateral_degradation_p == nnUNetTrainerReIso.pi.lateral_degradation_p == 0.2
    assert _trainer()._build_loss().ani_weight == nnUNetTrainerReIso.reiso_ani_weight == 0.5  # the paper's


def test_a_knob_set_the_former_way_is_refused_with_the_fix():
    """Before PISettings a subclass set pi_levels (and friends) as attributes; now nothing would read them, so the
    class is refused where it is defined instead of training without them."""
    fix = r"sets pi_levels, pi_reduction: .*pi = PISettings\(levels=..., reduction=...\)"
    with pytest.raises(TypeError, match=fix):
        class Old(nnUNetTrainerReIso):
            pi_levels = (1, 2)
            pi_reduction = 2
    with pytest.raises(ValueError, match="probability"):
        PISettings(lateral_degradation_p=1.5)


def _heads_gradient(cls, seed_batch=1):
    """The gradient of the deployed output heads (``decoder.seg_layers``) after one loss on one batch, with the
    weights stock nnU-Net draws for seed 0 (the plugin's base network takes the same draws first)."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    t = _trainer(cls)
    torch.manual_seed(0)
    net = cls.build_network_architecture(t.plans_manager, t.configuration_manager, 1, 2, True)
    torch.manual_seed(0)
    stock = nnUNetTrainer.build_network_architecture(t.plans_manager, t.configuration_manager, 1, 2, True)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in stock.state_dict().items())  # same weights everywhere
    net.train()
    loss = t._build_loss()
    torch.manual_seed(seed_batch)
    x = torch.randn(2, 1, *t.configuration_manager.patch_size)
    label = (torch.rand(2, 1, *t.configuration_manager.patch_size) > 0.7).float()
    scales = t._get_deep_supervision_scales()
    target = [torch.nn.functional.interpolate(label, scale_factor=tuple(s), mode="nearest") if i else label
              for i, s in enumerate(scales)]
    loss(net(x), target).backward()
    # the lowest head has loss weight 0 in nnU-Net's deep supervision, hence no gradient in any arm
    return [None if p.grad is None else p.grad.clone() for p in net.decoder.seg_layers.parameters()]


def test_aux_trainer_gives_the_deployed_heads_exactly_stocks_gradient(nnunet_dirs):
    """nnUNetTrainerReIsoAux: L = L_ani + ((1 - a) / a) L_iso, so the deployed heads (read by the anisotropic branch
    alone) get stock nnU-Net's gradient; the paper's loss gives them a times it (a = 0.5)."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIsoAux

    stock, aux, paper = (_heads_gradient(c) for c in (nnUNetTrainer, nnUNetTrainerReIsoAux, nnUNetTrainerReIso))
    assert [g is None for g in aux] == [g is None for g in paper] == [g is None for g in stock]
    assert sum(g is not None and g.abs().sum() > 0 for g in stock) >= 2  # weights and biases of trained heads
    for s, a, p in ((s, a, p) for s, a, p in zip(stock, aux, paper) if s is not None):
        torch.testing.assert_close(a, s, rtol=1e-5, atol=1e-8)
        torch.testing.assert_close(p, 0.5 * s, rtol=1e-5, atol=1e-8)
    loss = _trainer(nnUNetTrainerReIsoAux)._build_loss()
    assert loss.scale == 2.0 and loss.ani_weight == 0.5  # L = 2 * (0.5 L_iso + 0.5 L_ani) = L_ani + L_iso


def test_aux_trainer_follows_a_and_refuses_a_zero(nnunet_dirs):
    from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIsoAux

    class AuxA(nnUNetTrainerReIsoAux):
        reiso_ani_weight = 0.8

    assert _trainer(AuxA)._build_loss().scale == pytest.approx(1 / 0.8)

    class AuxZero(nnUNetTrainerReIsoAux):
        reiso_ani_weight = 0.0

    with pytest.raises(RuntimeError, match="needs a > 0"):
        _trainer(AuxZero)
