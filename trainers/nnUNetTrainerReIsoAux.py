"""``-tr nnUNetTrainerReIsoAux`` (ReIsoSeg with stock nnU-Net's loss kept on the deployed branch) and its
``_<N>epochs`` variants; logic in ``nnunetv2_reisoseg.training.trainer``."""
from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIsoAux
from nnunetv2_reisoseg.training.variants import add_epoch_variants

__all__ = ["nnUNetTrainerReIsoAux", *add_epoch_variants(nnUNetTrainerReIsoAux, globals())]
