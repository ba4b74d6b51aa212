"""Controls of the studies, not methods to deploy: ``nnUNetTrainerHalfLoss`` is stock nnU-Net with its loss
times the paper's ``a``, the gradient scale the paper's re-isotropic loss gives the deployed branch under SGD.
ReIsoSeg against it asks whether the isotropic branch adds anything beyond that scale."""
from __future__ import annotations

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_reisoseg.method import knobs
from nnunetv2_reisoseg.method.loss import ScaledLoss


class nnUNetTrainerHalfLoss(nnUNetTrainer):
    """Stock nnU-Net whose training loss is multiplied by ``loss_scale`` (validation losses are not)."""

    # the paper's a (0.5): what the re-isotropic loss leaves of the deployed branch's gradient
    loss_scale: float = knobs.ANI_WEIGHT

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)

    def _build_loss(self):
        return ScaledLoss(super()._build_loss(), self.loss_scale)
