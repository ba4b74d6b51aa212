"""The nnU-Net internals this plugin relies on beyond its public hooks (setup.py names them next to the nnunetv2
pin): when an nnU-Net release renames or drops one, this fast test fails with its name, before a user meets an
AttributeError in the middle of a training or a prediction."""
import inspect

import pytest
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.logging.nnunet_logger import LocalLogger, MetaLogger
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


@pytest.mark.parametrize("owner, name, params", [
    (nnUNetPredictor, "_internal_maybe_mirror_and_predict", ["self", "x"]),  # volume/blocks.py: one tile
    (nnUNetTrainer, "_build_loss", ["self"]),  # the re-isotropic loss wraps nnU-Net's
    (nnUNetTrainer, "_get_deep_supervision_scales", ["self"]),  # the paper network's own outputs
    (nnUNetTrainer, "configure_rotation_dummyDA_mirroring_and_inital_patch_size", ["self"]),  # benchmark budget
    (nnUNetTrainer, "build_network_architecture", ["plans_manager", "configuration_manager", "num_input_channels",
                                                   "num_output_channels", "enable_deep_supervision"]),
])
def test_private_methods_used_exist_with_their_signature(owner, name, params):
    assert hasattr(owner, name), f"nnU-Net dropped {owner.__name__}.{name}"
    assert list(inspect.signature(getattr(owner, name)).parameters) == params


def test_the_logger_keeps_its_curves_where_the_trainer_adds_its_own(tmp_path):
    logger = MetaLogger(str(tmp_path), resume=False)  # the trainer's self.logger
    assert isinstance(logger.local_logger, LocalLogger)
    curves = logger.local_logger.my_fantastic_logging  # nnUNetTrainerReIso adds train_loss_ani / _iso here
    assert {"mean_fg_dice", "ema_fg_dice", "train_losses", "val_losses"} <= set(curves)
