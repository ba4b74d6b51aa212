"""The re-isotropic loss of the paper: ``L = (1 - a) * L_iso + a * L_ani``.

``a`` weighs the anisotropic branch (the one deployed), ``1 - a`` the isotropic branch, as in the
paper and its reference implementation (``a = 0.5`` there, fixed). Each branch is supervised with the
loss nnU-Net builds for the stock trainer (Dice+CE, or Dice+BCE for regions, ignore label included,
wrapped in nnU-Net's deep-supervision weighting), so nnU-Net's deep-supervision rule (lowest output
weight 0, or 1e-6 under DDP without compile) holds for both branches.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nnunetv2_reisoseg.method.knobs import ANI_WEIGHT
from nnunetv2_reisoseg.method.network import ReIsoOutput


class ReIsotropicLoss(nn.Module):
    """Combines the anisotropic and isotropic branch losses; plain outputs (eval) get the branch loss.

    Args:
        branch_loss: the loss applied to each branch (nnU-Net's, with deep supervision).
        ani_weight: the paper's ``a``, the weight of the anisotropic branch; the isotropic branch gets ``1 - a``.
    """

    def __init__(self, branch_loss: nn.Module, ani_weight: float = ANI_WEIGHT) -> None:
        super().__init__()
        if not 0.0 <= ani_weight <= 1.0:
            raise ValueError(f"the anisotropic branch's weight a must be in [0, 1], got {ani_weight}")
        self.branch_loss = branch_loss
        self.ani_weight = float(ani_weight)
        # detached per-branch terms (anisotropic, isotropic) of the last training forward, for logging
        self.last_terms: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, output: Any, target: Any) -> torch.Tensor:
        if not isinstance(output, ReIsoOutput):
            # validation: the anisotropic branch alone, as deployed
            return self.branch_loss(output, target)
        l_ani = self.branch_loss(output.anisotropic, target)
        l_iso = self.branch_loss(output.isotropic, target)
        self.last_terms = (l_ani.detach(), l_iso.detach())
        return (1.0 - self.ani_weight) * l_iso + self.ani_weight * l_ani
