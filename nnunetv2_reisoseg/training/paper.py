"""nnUNetTrainerReIsoSegNet: ReIsoSeg as published (the paper's network), trained by nnU-Net.

Everything but the network is ``nnUNetTrainerReIso``'s: the PI module, the re-isotropic loss, the
logging of both terms, nnU-Net's data pipeline. The deep-supervision outputs are the paper's (full
resolution after and before the output conv, level 1) with weights 1, 0.5, 0.25 per branch, weighted as the
reference does: the six weights of both branches normalised together (sum 3.5), then ``a``, so that each branch
gets a quarter of a normalised loss (``nnUNetTrainerReIso`` normalises per branch: twice that).
"""
from __future__ import annotations

import copy

import torch
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunetv2_reisoseg.paper.network import ReIsoSegPaperNet, deep_supervision_scales, fit_patch_size, paper_topology
from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso

PAPER_DS_WEIGHTS = (1.0, 0.5, 0.25)


class nnUNetTrainerReIsoSegNet(nnUNetTrainerReIso):
    """The paper's encoder-decoder, its pooling chosen from the plans' spacing (printed at start)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        cm = PlansManager(plans).get_configuration(configuration)
        self.check_plans(plans, configuration)
        topology = paper_topology(cm.spacing)
        fitted = fit_patch_size(cm.patch_size, topology)
        note = ""
        if fitted != tuple(cm.patch_size):
            # a copy with the fitted patch: the trainer saves it with the model, so inference uses the same patch
            # size, and the caller's plans stay as they were
            plans = copy.deepcopy(plans)
            plans["configurations"][configuration]["patch_size"] = list(fitted)
            note = (f"; patch size {tuple(cm.patch_size)} -> {fitted} (multiples of {topology.divisor} for "
                    "this pooling)")
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.print_to_log_file(topology.describe() + note)

    @classmethod
    def check_plans(cls, plans: dict, configuration: str) -> None:
        cm = PlansManager(plans).get_configuration(configuration)
        if len(cm.patch_size) != 3:
            raise RuntimeError(f"nnUNetTrainerReIsoSegNet needs a 3D configuration; {configuration} is 2D. Use "
                               "3d_fullres, or stock nnUNetTrainer for 2D.")
        fit_patch_size(cm.patch_size, paper_topology(cm.spacing))

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return ReIsoSegPaperNet(num_input_channels, num_output_channels, paper_topology(configuration_manager.spacing),
                                deep_supervision=enable_deep_supervision, pi=cls.pi)

    def _get_deep_supervision_scales(self):
        if not self.enable_deep_supervision:
            return None
        return deep_supervision_scales(paper_topology(self.configuration_manager.spacing))

    def _build_loss(self):
        loss = super()._build_loss()
        if self.enable_deep_supervision:  # every output is used, so no zero weight (DDP sees every parameter)
            # the reference's normalisation: over the outputs of both branches (sum 3.5), before a weighs them
            loss.branch_loss.weight_factors = tuple(w / (2 * sum(PAPER_DS_WEIGHTS)) for w in PAPER_DS_WEIGHTS)
        return loss
