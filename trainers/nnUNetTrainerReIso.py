"""``-tr nnUNetTrainerReIso`` and ``-tr nnUNetTrainerReIso_<N>epochs`` (nnU-Net's training lengths).

The logic lives in ``nnunetv2_reisoseg.training.trainer``; this file only names the classes nnU-Net finds.
"""
from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso
from nnunetv2_reisoseg.training.variants import add_epoch_variants

__all__ = ["nnUNetTrainerReIso", *add_epoch_variants(nnUNetTrainerReIso, globals())]
