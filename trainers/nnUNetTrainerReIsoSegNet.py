"""``-tr nnUNetTrainerReIsoSegNet`` (the paper's network) and its ``_<N>epochs`` variants; logic in
``nnunetv2_reisoseg.training.paper``."""
from nnunetv2_reisoseg.training.paper import nnUNetTrainerReIsoSegNet
from nnunetv2_reisoseg.training.variants import add_epoch_variants

__all__ = ["nnUNetTrainerReIsoSegNet", *add_epoch_variants(nnUNetTrainerReIsoSegNet, globals())]
