"""The re-isotropic loss of the paper: ``L = (1 - a) * L_iso + a * L_ani``, optionally scaled as a whole.

``a`` weighs the anisotropic branch (the one deployed), ``1 - a`` the isotropic branch, as in the
paper and its reference implementation (``a = 0.5`` there, fixed). Under nnU-Net's SGD a loss scale is a
learning-rate scale, so the paper's loss trains the deployed branch with ``a`` times stock nnU-Net's
gradient; ``scale = 1 / a`` (``nnUNetTrainerReIsoAux``) keeps stock's loss on the deployed branch and adds the
isotropic one on top. ``ScaledLoss`` is the matching control for stock nnU-Net (its loss times ``a``).

Each branch is supervised with the loss nnU-Net builds for the stock trainer (Dice+CE, or Dice+BCE for
regions, ignore label included, wrapped in nnU-Net's deep-supervision weighting), so nnU-Net's
deep-supervision rule (lowest output weight 0, or 1e-6 under DDP without compile) holds for both branches.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nnunetv2_reisoseg.method.knobs import ANI_WEIGHT, LOSS_SCALE
from nnunetv2_reisoseg.method.network import ReIsoOutput


class ReIsotropicLoss(nn.Module):
    """Combines the anisotropic and isotropic branch losses; plain outputs (eval) get the branch loss.

    Args:
        branch_loss: the loss applied to each branch (nnU-Net's, with deep supervision).
        ani_weight: the paper's ``a``, the weight of the anisotropic branch; the isotropic branch gets ``1 - a``.
        scale: multiplies the training loss as a whole (1 in the paper); validation losses are never scaled.
    """

    def __init__(self, branch_loss: nn.Module, ani_weight: float = ANI_WEIGHT, scale: float = LOSS_SCALE) -> None:
        super().__init__()
        if not 0.0 <= ani_weight <= 1.0:
            raise ValueError(f"the anisotropic branch's weight a must be in [0, 1], got {ani_weight}")
        if not scale > 0:
            raise ValueError(f"the re-isotropic loss's scale must be positive, got {scale}")
        self.branch_loss = branch_loss
        self.ani_weight = float(ani_weight)
        self.scale = float(scale)
        # detached per-branch terms (anisotropic, isotropic) of the last training forward, for logging
        self.last_terms: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, output: Any, target: Any) -> torch.Tensor:
        if not isinstance(output, ReIsoOutput):
            # validation: the anisotropic branch alone, as deployed
            return self.branch_loss(output, target)
        l_ani = self.branch_loss(output.anisotropic, target)
        l_iso = self.branch_loss(output.isotropic, target)
        self.last_terms = (l_ani.detach(), l_iso.detach())
        return self.scale * ((1.0 - self.ani_weight) * l_iso + self.ani_weight * l_ani)


class ScaledLoss(nn.Module):
    """``scale`` times ``loss`` where it drives gradients. nnU-Net validates under ``torch.no_grad``; there the loss
    stays unscaled, so that logged validation losses compare with stock nnU-Net's."""

    def __init__(self, loss: nn.Module, scale: float) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"a loss scale must be positive, got {scale}")
        self.loss = loss
        self.scale = float(scale)

    def forward(self, output: Any, target: Any) -> torch.Tensor:
        value = self.loss(output, target)
        return value * self.scale if torch.is_grad_enabled() else value
