"""The ReIsoSeg network: nnU-Net's planned U-Net, untouched, plus a PI module on its encoder skips.

Training forward: skips -> decoder (anisotropic branch) and PI(skips) -> the same decoder
(isotropic branch); both outputs come back as a ``ReIsoOutput``. Eval forward is the stock
network's forward, ``decoder(encoder(x))``: the PI module is not executed, so inference costs
exactly what stock nnU-Net costs.

The wrapper holds the planned network's ``encoder`` and ``decoder`` under the same attribute names,
so its state dict is the stock one plus ``pi_module.*`` keys: dropping those keys gives a checkpoint
that stock ``nnUNetTrainer`` loads.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunetv2_reisoseg.method.anisotropy import PIPlan, plan_pi_module
from nnunetv2_reisoseg.method.pi_module import PIModule

PI_PREFIX = "pi_module."
# decoders whose forward is the loop transpconv -> concat skip -> stage -> seg layer that
# ReIsoSegNetwork._decode_both follows; other decoders run two plain passes
_DECODERS_WITH_STAGE_LOOP = ("UNetDecoder", "UNetResDecoder")


class ReIsoOutput(NamedTuple):
    """Training output of both branches (each a tensor, or a list of tensors with deep supervision)."""

    anisotropic: Any
    isotropic: Any


class ReIsoSegNetwork(nn.Module):
    """Encoder, decoder and PI module; see the module docstring."""

    def __init__(self, base: nn.Module, pi_module: PIModule) -> None:
        super().__init__()
        for name in ("encoder", "decoder"):
            if not isinstance(getattr(base, name, None), nn.Module):
                raise TypeError(
                    f"{type(base).__name__} has no '{name}' module: ReIsoSeg needs an encoder that returns "
                    "the list of skips and a decoder that consumes it (PlainConvUNet, ResidualEncoderUNet, "
                    "the ResEnc presets)."
                )
        self.encoder = base.encoder
        self.decoder = base.decoder
        self.pi_module = pi_module
        # nnU-Net's pretrained-weight and fine-tuning helpers look these up on the network
        for key in ("key_to_encoder", "key_to_stem", "keys_to_in_proj"):
            if hasattr(base, key):
                setattr(self, key, getattr(base, key))
        # decoder stages below the deepest PI level see the same inputs in both passes (bottleneck and
        # untouched skips): the isotropic pass reuses them instead of computing them again
        self.shared_decoder_stages = 0
        if type(self.decoder).__name__ in _DECODERS_WITH_STAGE_LOOP:
            self.shared_decoder_stages = max(0, len(self.decoder.stages) - 1 - max(pi_module.levels))

    def forward(self, x: torch.Tensor) -> Any:
        skips = self.encoder(x)
        if not self.training:
            return self.decoder(skips)
        if not self.shared_decoder_stages:
            return ReIsoOutput(self.decoder(skips), self.decoder(self._pi(skips)))
        return ReIsoOutput(*self._decode_both(skips))

    def _decode_both(self, skips: Sequence[torch.Tensor]) -> tuple[Any, Any]:
        """Both decoder passes, computing the shared deepest stages once (the decoder's own loop)."""
        dec, n_stages = self.decoder, len(self.decoder.stages)

        def stage(s: int, below: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
            return dec.stages[s](torch.cat((dec.transpconvs[s](below), skip), 1))

        below, seg = skips[-1], []
        for s in range(self.shared_decoder_stages):
            below = stage(s, below, skips[-(s + 2)])
            if dec.deep_supervision:
                seg.append(dec.seg_layers[s](below))
        outputs = []
        for branch_skips in (skips, self._pi(skips)):
            x, branch_seg = below, list(seg)
            for s in range(self.shared_decoder_stages, n_stages):
                x = stage(s, x, branch_skips[-(s + 2)])
                if dec.deep_supervision:
                    branch_seg.append(dec.seg_layers[s](x))
            outputs.append(branch_seg[::-1] if dec.deep_supervision else dec.seg_layers[-1](x))
        return outputs[0], outputs[1]

    # kept out of torch.compile: its random axial choice would otherwise specialise and recompile
    # the graph for every draw (up to 12 shape variants per level)
    @torch.compiler.disable
    def _pi(self, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return self.pi_module(skips)


def pi_plan_from_configuration(
    configuration_manager: ConfigurationManager, pi_levels: Sequence[int] | None = None
) -> PIPlan:
    """Describe the PI module for an nnU-Net configuration (3D only)."""
    kwargs = configuration_manager.network_arch_init_kwargs
    strides = kwargs.get("strides")
    features = kwargs.get("features_per_stage")
    if strides is None or features is None:
        raise ValueError(
            f"Architecture {configuration_manager.network_arch_class_name} has no 'strides'/'features_per_stage' "
            "in its plans: ReIsoSeg supports nnU-Net's U-Nets (PlainConvUNet, ResidualEncoderUNet)."
        )
    n_stages = len(strides)
    if isinstance(features, int):
        features = [features] * n_stages
    if isinstance(strides[0], int):
        strides = [[s] * len(configuration_manager.patch_size) for s in strides]
    return plan_pi_module(
        configuration_manager.spacing, strides, features, configuration_manager.patch_size, pi_levels
    )


def build_reiso_network(
    plans_manager: PlansManager,
    configuration_manager: ConfigurationManager,
    num_input_channels: int,
    num_output_channels: int,
    enable_deep_supervision: bool = True,
    pi_levels: Sequence[int] | None = None,
    pi_reduction: int = 4,
    lateral_degradation_p: float = 0.2,
) -> ReIsoSegNetwork:
    """The planned network (exactly as stock nnU-Net builds it) wrapped with a PI module."""
    plan = pi_plan_from_configuration(configuration_manager, pi_levels)
    base = get_network_from_plans(
        configuration_manager.network_arch_class_name,
        configuration_manager.network_arch_init_kwargs,
        configuration_manager.network_arch_init_kwargs_req_import,
        num_input_channels,
        num_output_channels,
        allow_init=True,
        deep_supervision=enable_deep_supervision,
    )
    pi = PIModule(plan.channels, plan.ratios, plan.levels, plan.section_axis, pi_reduction, lateral_degradation_p)
    return ReIsoSegNetwork(base, pi)


def strip_pi_weights(state_dict: dict) -> dict:
    """The stock network's state dict: every key except the PI module's."""
    return {k: v for k, v in state_dict.items() if not k.startswith(PI_PREFIX)}
