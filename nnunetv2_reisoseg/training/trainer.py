"""nnUNetTrainerReIso: nnU-Net's trainer with ReIsoSeg's isotropic branch and re-isotropic loss, as the paper
weighs it; nnUNetTrainerReIsoAux: the same with stock nnU-Net's loss kept on the deployed branch.

Only hooks are overridden (network, loss, train step bookkeeping, logging, checkpoint checks); the
training loop, data loading, augmentation, validation and inference are nnU-Net's own.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import distributed as dist
from torch import nn
from torch._dynamo import OptimizedModule

from nnunetv2_reisoseg.io.checkpoints import load_checkpoint
from nnunetv2_reisoseg.method import knobs
from nnunetv2_reisoseg.method.knobs import PISettings
from nnunetv2_reisoseg.method.loss import ReIsotropicLoss
from nnunetv2_reisoseg.method.network import (
    ReIsoSegNetwork,
    build_reiso_network,
    has_isotropic_branch,
    pi_plan_from_configuration,
)
from nnunetv2_reisoseg.training.progress import plot_reiso_progress

LOSS_KEYS = ("train_loss_ani", "train_loss_iso")
# class attributes that held the PI module's knobs before PISettings, and their field there
_FORMER_KNOBS = {"pi_levels": "levels", "pi_reduction": "reduction", "lateral_degradation_p": "lateral_degradation_p"}


class nnUNetTrainerReIso(nnUNetTrainer):
    """ReIsoSeg on nnU-Net's planned 3D U-Net.

    The method's knobs are class attributes, set in a subclass, because inference rebuilds the network from
    the class alone (``build_network_architecture`` is a classmethod); their defaults are the paper's
    (``method/knobs.py``). The PI module's are one frozen ``PISettings``:

        class nnUNetTrainerReIsoTwoLevels(nnUNetTrainerReIso):
            pi = PISettings(levels=(1, 2))
    """

    # the PI module's knobs: its levels (None: chosen from the plan's anisotropy), channel reduction and lateral
    # degradation, passed whole to the network
    pi: PISettings = PISettings()
    # the paper's a: weight of the anisotropic branch in L = (1 - a) * L_iso + a * L_ani
    reiso_ani_weight: float = knobs.ANI_WEIGHT
    # scale of the whole re-isotropic loss (the paper's: 1); under SGD the deployed branch gets scale * a of
    # stock nnU-Net's gradient (nnUNetTrainerReIsoAux sets it to 1 / a)
    reiso_loss_scale: float = knobs.LOSS_SCALE

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # the loose knobs of before PISettings: a subclass that still sets one would train without it, silently
        old = [k for k in _FORMER_KNOBS if k in vars(cls)]
        if old:
            raise TypeError(f"{cls.__name__} sets {', '.join(old)}: the PI module's knobs are one value now; set "
                            f"pi = PISettings({', '.join(f'{_FORMER_KNOBS[k]}=...' for k in old)}) instead "
                            "(from nnunetv2_reisoseg.method.knobs import PISettings)")

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        # fail before nnU-Net creates output folders
        self.check_plans(plans, configuration)
        super().__init__(plans, configuration, fold, dataset_json, device)
        for key in LOSS_KEYS:
            self.logger.local_logger.my_fantastic_logging.setdefault(key, [])

    @classmethod
    def check_plans(cls, plans: dict, configuration: str) -> None:
        """Raise a clear error for a configuration this trainer cannot train (before any folder exists)."""
        check_configuration(PlansManager(plans).get_configuration(configuration), cls.pi)

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return build_reiso_network(plans_manager, configuration_manager, num_input_channels, num_output_channels,
                                   enable_deep_supervision, cls.pi)

    def reiso_network(self) -> ReIsoSegNetwork:
        """The ReIsoSegNetwork inside whatever DDP / torch.compile wrapped it."""
        mod = self.network.module if self.is_ddp else self.network
        return mod._orig_mod if isinstance(mod, OptimizedModule) else mod

    def initialize(self):
        super().initialize()
        pi = self.reiso_network().pi_module
        self.print_to_log_file(
            f"ReIsoSeg: PI levels {list(pi.levels)}, ratios {[round(r, 3) for r in pi.ratios]}, "
            f"section axis {pi.section_axis}, {sum(p.numel() for p in pi.parameters())} PI parameters, "
            f"re-isotropic loss L = s * ((1 - a) * L_iso + a * L_ani) with a (anisotropic branch weight) = "
            f"{self.reiso_ani_weight} and s = {self.reiso_loss_scale:g}, lateral degradation p "
            f"{pi.lateral_degradation_p}")

    def _build_loss(self):
        return ReIsotropicLoss(super()._build_loss(), self.reiso_ani_weight, self.reiso_loss_scale)

    def train_step(self, batch: dict) -> dict:
        out = super().train_step(batch)
        terms = torch.stack(self.loss.last_terms).cpu().numpy()  # one device transfer for both terms
        out.update(zip(LOSS_KEYS, terms))
        return out

    def on_train_epoch_end(self, train_outputs: list[dict]):
        super().on_train_epoch_end(train_outputs)
        for key in LOSS_KEYS:
            values = np.asarray([o[key] for o in train_outputs], dtype=np.float64)
            if self.is_ddp:
                gathered = [None] * dist.get_world_size()
                dist.all_gather_object(gathered, values)
                values = np.concatenate(gathered)
            self.logger.log(key, float(values.mean()), self.current_epoch)
        self.print_to_log_file('train_loss_ani', np.round(self.logger.get_value(LOSS_KEYS[0], -1), 4),
                               'train_loss_iso', np.round(self.logger.get_value(LOSS_KEYS[1], -1), 4))

    def on_epoch_end(self):
        super().on_epoch_end()
        if self.local_rank == 0:
            plot_reiso_progress(self.logger.local_logger.my_fantastic_logging, self.output_folder)

    def load_checkpoint(self, filename_or_checkpoint):
        if isinstance(filename_or_checkpoint, str):
            check_checkpoint(filename_or_checkpoint, type(self).__name__)
        super().load_checkpoint(filename_or_checkpoint)
        logging = self.logger.local_logger.my_fantastic_logging
        for key in LOSS_KEYS:  # keep one entry per epoch even for logs written without these terms
            logging.setdefault(key, [])
            logging[key] += [float('nan')] * (len(logging['train_losses']) - len(logging[key]))


class nnUNetTrainerReIsoAux(nnUNetTrainerReIso):
    """ReIsoSeg with the isotropic branch as an auxiliary loss: ``L = L_ani + ((1 - a) / a) * L_iso``, the paper's
    loss times ``1 / a``. The deployed (anisotropic) branch keeps stock nnU-Net's loss, so its output heads get
    exactly stock's gradient; the isotropic branch is added with the paper's ratio of the two."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        if not self.reiso_ani_weight > 0:
            raise RuntimeError(f"{type(self).__name__} scales the loss by 1 / a and needs a > 0; got a = "
                               f"{self.reiso_ani_weight}")
        # derived here, not a class attribute, so that a subclass that changes a keeps the deployed branch's loss
        self.reiso_loss_scale = 1.0 / self.reiso_ani_weight
        super().__init__(plans, configuration, fold, dataset_json, device)


def check_configuration(configuration_manager: ConfigurationManager, pi: PISettings = PISettings()) -> None:
    """Raise a clear error for configurations the PI module cannot work on (2D, too few stages...)."""
    try:
        pi_plan_from_configuration(configuration_manager, pi)
    except ValueError as e:
        raise RuntimeError(f"nnUNetTrainerReIso cannot train this configuration: {e}") from None


def check_checkpoint(filename: str, trainer_name: str) -> None:
    """Refuse checkpoints without PI weights before nnU-Net's strict load fails with a key dump."""
    if not os.path.isfile(filename):
        return
    try:
        ckpt = load_checkpoint(filename, mmap=True)
    except ValueError as e:
        raise RuntimeError(f"{trainer_name} cannot continue from it: {e}") from None
    if not has_isotropic_branch(ckpt.get('network_weights', {})):
        raise RuntimeError(
            f"{filename} was written by {ckpt.get('trainer_name', 'another trainer')} and holds no PI module "
            f"weights, so {trainer_name} cannot continue from it. Continue it with -tr "
            f"{ckpt.get('trainer_name', 'the trainer that wrote it')}, or move it away and start a new "
            f"{trainer_name} training.")
