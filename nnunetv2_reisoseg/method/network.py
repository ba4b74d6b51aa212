"""The ReIsoSeg network: nnU-Net's planned U-Net, untouched, plus the training-only isotropic branch.

Training forward: skips -> decoder -> the decoder's own output heads (anisotropic branch), and
PI(skips) -> the same decoder blocks -> the isotropic branch's own output heads (isotropic branch,
as in the reference, which has six output convs, three per branch). Both come back as a
``ReIsoOutput``. Eval forward is the stock network's forward, ``decoder(encoder(x))``: the isotropic
branch is not executed, so inference costs exactly what stock nnU-Net costs.

The wrapper holds the planned network's ``encoder`` and ``decoder`` under the same attribute names and
everything training-only under ``isotropic.`` (``isotropic.pi_module.*``, ``isotropic.seg_layers.*``),
so its state dict is the stock one plus ``isotropic.*`` keys: dropping those gives a checkpoint that
stock ``nnUNetTrainer`` loads. nnU-Net's ``load_pretrained_weights`` skips every ``.seg_layers.`` key,
the isotropic heads included, as it does the stock heads.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn
from torch.func import functional_call

from nnunetv2_reisoseg.method.anisotropy import PIPlan, cumulative_strides, plan_pi_module
from nnunetv2_reisoseg.method.knobs import PISettings
from nnunetv2_reisoseg.method.pi_module import PIModule

# every training-only parameter lives under this prefix
TRAINING_ONLY_PREFIX = "isotropic."


class ReIsoOutput(NamedTuple):
    """Training output of both branches (each a tensor, or a list of tensors with deep supervision)."""

    anisotropic: Any
    isotropic: Any


class IsotropicBranch(nn.Module):
    """The training-only parameters: the PI module and the isotropic branch's own output heads."""

    def __init__(self, pi_module: PIModule, seg_layers: nn.ModuleList) -> None:
        super().__init__()
        self.pi_module = pi_module
        self.seg_layers = seg_layers


def isotropic_heads(decoder: nn.Module, initialize: Any = None) -> nn.ModuleList:
    """Output heads for the isotropic branch with the shapes of ``decoder.seg_layers``, initialised the way the
    planned network initialises its own (``initialize``; He init with nnU-Net's 1e-2 slope otherwise)."""
    heads = nn.ModuleList()
    for layer in decoder.seg_layers:
        if not isinstance(layer, nn.modules.conv._ConvNd):
            raise TypeError(f"the decoder's seg_layers hold a {type(layer).__name__}; ReIsoSeg expects convs there")
        heads.append(type(layer)(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                                 layer.padding, bias=layer.bias is not None))
    heads.apply(initialize or InitWeights_He(1e-2))
    return heads


def follows_stage_loop(decoder: nn.Module) -> bool:
    """Whether ``decoder`` has the parts of the loop transposed conv -> concat skip -> stage -> seg layer
    (dynamic-network-architectures' UNetDecoder and UNetResDecoder); ``ReIsoSegNetwork`` checks that the
    loop also gives the decoder's own output before relying on it."""
    parts = [getattr(decoder, name, None) for name in ("stages", "transpconvs", "seg_layers")]
    return (all(isinstance(p, nn.ModuleList) for p in parts) and len({len(p) for p in parts}) == 1
            and isinstance(getattr(decoder, "deep_supervision", None), bool))


class ReIsoSegNetwork(nn.Module):
    """Encoder, decoder and the isotropic branch; see the module docstring."""

    def __init__(self, base: nn.Module, pi_module: PIModule, iso_seg_layers: nn.ModuleList | None = None) -> None:
        super().__init__()
        for name in ("encoder", "decoder"):
            if not isinstance(getattr(base, name, None), nn.Module):
                raise TypeError(
                    f"{type(base).__name__} has no '{name}' module: ReIsoSeg needs an encoder that returns "
                    "the list of skips and a decoder that consumes it (PlainConvUNet, ResidualEncoderUNet, "
                    "the ResEnc presets).")
        if not isinstance(getattr(base.decoder, "seg_layers", None), nn.ModuleList):
            raise TypeError(f"{type(base.decoder).__name__} has no seg_layers: ReIsoSeg gives the isotropic branch "
                            "its own copy of the decoder's output heads")
        self.encoder = base.encoder
        self.decoder = base.decoder
        if iso_seg_layers is None:
            iso_seg_layers = isotropic_heads(base.decoder, getattr(base, "initialize", None))
        self.isotropic = IsotropicBranch(pi_module, iso_seg_layers)
        # nnU-Net's pretrained-weight and fine-tuning helpers look these up on the network
        for key in ("key_to_encoder", "key_to_stem", "keys_to_in_proj"):
            if hasattr(base, key):
                setattr(self, key, getattr(base, key))
        # decoder stages below the deepest PI level see the same inputs in both passes (bottleneck and
        # untouched skips): the isotropic pass reuses them. Only for decoders whose own forward is the
        # stage loop that _decode_both follows, checked once here on small random skips.
        self.stage_loop = self._stage_loop_matches_decoder()
        self.shared_decoder_stages = max(0, len(self.decoder.stages) - 1 - max(pi_module.levels)) \
            if self.stage_loop else 0

    @property
    def pi_module(self) -> PIModule:
        return self.isotropic.pi_module

    def forward(self, x: torch.Tensor) -> Any:
        skips = self.encoder(x)
        if not self.training:
            return self.decoder(skips)
        if self.stage_loop:
            return ReIsoOutput(*self._decode_both(skips))
        # a decoder of another shape: two full passes, the second with the isotropic heads swapped in
        iso_heads = {f"seg_layers.{k}": v for k, v in self.isotropic.seg_layers.named_parameters()}
        return ReIsoOutput(self.decoder(skips), functional_call(self.decoder, iso_heads, (self._pi(skips),)))

    def _decode_both(self, skips: Sequence[torch.Tensor]) -> tuple[Any, Any]:
        """Both decoder passes, computing the shared deepest stages once (the decoder's own loop)."""
        dec = self.decoder
        below, shared = skips[-1], []
        for s in range(self.shared_decoder_stages):
            below = self._stage(s, below, skips[-(s + 2)])
            shared.append(below)
        ani = self._decode_from(skips, below, shared, dec.seg_layers)
        iso = self._decode_from(self._pi(skips), below, shared, self.isotropic.seg_layers)
        return ani, iso

    def _stage(self, s: int, below: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        dec = self.decoder
        return dec.stages[s](torch.cat((dec.transpconvs[s](below), skip), 1))

    def _decode_from(self, skips: Sequence[torch.Tensor], below: torch.Tensor, shared: Sequence[torch.Tensor],
                     heads: nn.ModuleList) -> Any:
        """The decoder's loop from stage ``len(shared)`` on, with ``heads`` as the output convs."""
        dec = self.decoder
        feats, x = list(shared), below
        for s in range(len(shared), len(dec.stages)):
            x = self._stage(s, x, skips[-(s + 2)])
            feats.append(x)
        if not dec.deep_supervision:
            return heads[-1](feats[-1])
        return [heads[s](f) for s, f in enumerate(feats)][::-1]

    def _stage_loop_matches_decoder(self) -> bool:
        """Whether ``_decode_from`` reproduces the decoder's own forward, with and without deep supervision."""
        dec, enc = self.decoder, self.encoder
        channels, strides = getattr(enc, "output_channels", None), getattr(enc, "strides", None)
        if not follows_stage_loop(dec) or channels is None or strides is None:
            warnings.warn(f"{type(dec).__name__} is not a stage-loop decoder: the isotropic pass runs the whole "
                          "decoder again (correct, slower)", stacklevel=3)
            return False
        cum = cumulative_strides([[s] * 3 if isinstance(s, int) else s for s in strides])
        full = [int(v) for v in cum[-1]]  # the smallest patch the strides divide
        param = next(dec.parameters())
        gen = torch.Generator().manual_seed(0)
        skips = [torch.randn(1, c, *(f // cs for f, cs in zip(full, st)), generator=gen).to(param)
                 for c, st in zip(channels, cum)]
        was_training, ds = dec.training, dec.deep_supervision
        try:
            dec.eval()
            with torch.no_grad():
                for flag in (True, False):
                    dec.deep_supervision = flag
                    ours, theirs = self._decode_from(skips, skips[-1], [], dec.seg_layers), dec(skips)
                    ours, theirs = (ours, theirs) if flag else ([ours], [theirs])
                    if len(ours) != len(theirs) or not all(torch.equal(a, b) for a, b in zip(ours, theirs)):
                        warnings.warn(f"{type(dec).__name__}'s forward differs from the stage loop: the isotropic "
                                      "pass runs the whole decoder again (correct, slower)", stacklevel=3)
                        return False
        finally:
            dec.train(was_training)
            dec.deep_supervision = ds
        return True

    # kept out of torch.compile: its random axial choice would otherwise specialise and recompile
    # the graph for every draw (up to 12 shape variants per level)
    @torch.compiler.disable
    def _pi(self, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return self.isotropic.pi_module(skips)


def pi_plan_from_configuration(configuration_manager: ConfigurationManager, settings: PISettings = PISettings()
                               ) -> PIPlan:
    """Describe the PI module for an nnU-Net configuration (3D only) and the user's ``settings``."""
    kwargs = configuration_manager.network_arch_init_kwargs
    strides = kwargs.get("strides")
    features = kwargs.get("features_per_stage")
    if strides is None or features is None:
        raise ValueError(
            f"Architecture {configuration_manager.network_arch_class_name} has no 'strides'/'features_per_stage' "
            "in its plans: ReIsoSeg supports nnU-Net's U-Nets (PlainConvUNet, ResidualEncoderUNet).")
    n_stages = len(strides)
    if isinstance(features, int):
        features = [features] * n_stages
    if isinstance(strides[0], int):
        strides = [[s] * len(configuration_manager.patch_size) for s in strides]
    return plan_pi_module(configuration_manager.spacing, strides, features, configuration_manager.patch_size,
                          settings)


def build_reiso_network(
    plans_manager: PlansManager,
    configuration_manager: ConfigurationManager,
    num_input_channels: int,
    num_output_channels: int,
    enable_deep_supervision: bool = True,
    settings: PISettings = PISettings(),
) -> ReIsoSegNetwork:
    """The planned network (exactly as stock nnU-Net builds it) wrapped with the isotropic branch."""
    plan = pi_plan_from_configuration(configuration_manager, settings)
    base = get_network_from_plans(
        configuration_manager.network_arch_class_name,
        configuration_manager.network_arch_init_kwargs,
        configuration_manager.network_arch_init_kwargs_req_import,
        num_input_channels,
        num_output_channels,
        allow_init=True,
        deep_supervision=enable_deep_supervision,
    )
    pi = PIModule(plan.channels, plan.ratios, plan.levels, plan.section_axis, settings)
    return ReIsoSegNetwork(base, pi)


def strip_training_only(state_dict: dict) -> dict:
    """The stock network's state dict: every key except the isotropic branch's."""
    return {k: v for k, v in state_dict.items() if not k.startswith(TRAINING_ONLY_PREFIX)}


def has_isotropic_branch(state_dict: dict) -> bool:
    """Whether a checkpoint's weights hold an isotropic branch (PI module), ours or the paper network's."""
    return any(k.startswith(TRAINING_ONLY_PREFIX) for k in state_dict)
