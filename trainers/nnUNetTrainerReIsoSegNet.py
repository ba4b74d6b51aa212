"""``-tr nnUNetTrainerReIsoSegNet`` (the paper's network) and its ``_<N>epochs`` variants; logic in
``nnunetv2_reisoseg.paper.trainer``."""
from nnunetv2_reisoseg.paper.trainer import nnUNetTrainerReIsoSegNet
from nnunetv2_reisoseg.training.variants import add_epoch_variants

__all__ = ["nnUNetTrainerReIsoSegNet", *add_epoch_variants(nnUNetTrainerReIsoSegNet, globals())]
