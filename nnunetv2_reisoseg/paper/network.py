"""The published ReIsoSeg encoder-decoder (Guo et al., TMI 2024), with its pooling chosen from the plans.

Five levels with 28/36/48/64/80 features; (1,5,5) input and output convolutions; residual blocks
((1,3,3) conv, then two 3x3x3 convs with a residual, instance norm, leaky ReLU); max pooling, flat
along the section axis where the data are anisotropic and 2x2x2 where they are isotropic; transposed
convolutions up; the PI module (``pi_module.PIModule``, the same one ``nnUNetTrainerReIso`` uses) on
levels 1-3; three deep-supervision outputs per branch (full resolution after the output conv, full
resolution before it, level 1), each branch with its own 1x1x1 output convolutions (the reference's
six), the isotropic branch's kept under ``isotropic.`` with the PI module as in ``ReIsoSegNetwork``.

The reference ships one trainer per ratio (1, 2, 4, 8): ``n = log2(ratio)`` of its first three
pools are flat (the last ``n`` of them) and the fourth is 2x2x2. Here ``n`` comes from the plans'
spacing, rounded to the nearest power of two and capped at 3, so that PI levels 1-3 see the ratios
the reference sees for 2, 4 and 8 and any spacing in between gets the nearest topology.
Inference runs the anisotropic branch only (the reference also computes the isotropic one there).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunetv2_reisoseg.method.blocks import ResidualConvBlock, conv_norm_act, flat_kernel
from nnunetv2_reisoseg.method.knobs import PISettings
from nnunetv2_reisoseg.method.network import IsotropicBranch, ReIsoOutput
from nnunetv2_reisoseg.method.pi_module import PIModule

PAPER_FEATURES = (28, 36, 48, 64, 80)
PAPER_PI_LEVELS = (1, 2, 3)


@dataclass(frozen=True)
class PaperTopology:
    """Pooling of the reference network for one spacing (network space)."""

    section_axis: int
    ratio: float  # section spacing / finest lateral spacing at full resolution
    flat_pools: int  # how many of the first three pools leave the section axis alone
    pools: tuple[tuple[int, int, int], ...]  # four max-pooling kernels
    level_ratios: tuple[float, ...]  # anisotropy ratio of levels 0..4

    @property
    def divisor(self) -> tuple[int, int, int]:
        """What every patch dimension must be a multiple of."""
        return tuple(math.prod(p[a] for p in self.pools) for a in range(3))  # type: ignore[return-value]

    def describe(self) -> str:
        pools = ", ".join("x".join(map(str, p)) for p in self.pools)
        return (f"ReIsoSeg paper network: section axis {self.section_axis}, ratio {self.ratio:.3g} -> "
                f"{self.flat_pools} in-plane pool(s) (reference ratio {2 ** self.flat_pools}); pools {pools}; "
                f"PI levels 1-3 with ratios {', '.join(f'{r:.3g}' for r in self.level_ratios[1:4])}")


def paper_topology(spacing: Sequence[float]) -> PaperTopology:
    """The reference's pooling for the nearest of its ratios (1, 2, 4, 8) to ``spacing``'s anisotropy."""
    if len(spacing) != 3:
        raise ValueError(f"the ReIsoSeg paper network is 3D; got spacing {tuple(spacing)} (use a 3d configuration)")
    sp = [float(s) for s in spacing]
    section = max(range(3), key=lambda a: sp[a])
    lateral = min(sp[a] for a in range(3) if a != section)
    ratio = sp[section] / lateral
    flat = int(min(3, max(0, round(math.log2(max(ratio, 1.0))))))
    flat_pool = flat_kernel(2, section)
    pools = tuple([(2, 2, 2)] * (3 - flat) + [flat_pool] * flat + [(2, 2, 2)])
    ratios, cur = [ratio], list(sp)
    for p in pools:
        cur = [c * k for c, k in zip(cur, p)]
        ratios.append(cur[section] / min(cur[a] for a in range(3) if a != section))
    return PaperTopology(section, ratio, flat, pools, tuple(ratios))  # type: ignore[arg-type]


def fit_patch_size(patch_size: Sequence[int], topology: PaperTopology) -> tuple[int, ...]:
    """``patch_size`` rounded down to the topology's multiples; an error when a dimension is too small."""
    out = []
    for a, (n, d) in enumerate(zip(patch_size, topology.divisor)):
        if n < d:
            raise ValueError(f"patch size {tuple(patch_size)} is too small for the ReIsoSeg paper network: axis {a} "
                             f"needs at least {d} voxels (its pools divide it by {d}). Use larger images, or "
                             "nnUNetTrainerReIso, which follows nnU-Net's planned topology.")
        out.append(n // d * d)
    return tuple(out)


def paper_heads(features: Sequence[int], num_classes: int) -> nn.ModuleList:
    """One branch's output heads: full resolution after the output conv, full resolution before it, level 1
    (1x1x1 convs without bias, as the reference's six)."""
    return nn.ModuleList([nn.Conv3d(c, num_classes, 1, bias=False) for c in (features[0], features[0], features[1])])


class PaperDecoder(nn.Module):
    """Transposed convs, residual blocks, output conv and the anisotropic branch's output heads
    (``seg_layers``; the isotropic branch's are ``ReIsoSegPaperNet.isotropic.seg_layers``). Named
    ``decoder`` with a ``deep_supervision`` flag, which nnU-Net's trainer switches."""

    def __init__(self, features: Sequence[int], pools: Sequence[Sequence[int]], num_classes: int,
                 section_axis: int, deep_supervision: bool) -> None:
        super().__init__()
        f = list(features)
        self.deep_supervision = deep_supervision
        # from the bottleneck up: level 3, 2, 1, 0
        self.up = nn.ModuleList([nn.ConvTranspose3d(f[i + 1], f[i], tuple(pools[i]), stride=tuple(pools[i]))
                                 for i in (3, 2, 1, 0)])
        self.blocks = nn.ModuleList([ResidualConvBlock(2 * f[i], f[i], section_axis) for i in (3, 2, 1, 0)])
        self.out_conv = conv_norm_act(f[0], f[0], flat_kernel(5, section_axis))
        self.seg_layers = paper_heads(f, num_classes)

    def forward(self, skips: Sequence[torch.Tensor], bottom_up: torch.Tensor, heads: nn.ModuleList):
        """``skips`` are levels 0-3; ``bottom_up`` is the transposed conv of the bottleneck (shared)."""
        x = self.blocks[0](torch.cat((bottom_up, skips[3]), 1))
        level1 = None
        for j, lv in enumerate((2, 1, 0), start=1):
            x = self.blocks[j](torch.cat((self.up[j](x), skips[lv]), 1))
            if lv == 1:
                level1 = x
        full = self.out_conv(x)
        if not self.deep_supervision:
            return heads[0](full)
        return [heads[0](full), heads[1](x), heads[2](level1)]


class ReIsoSegPaperNet(nn.Module):
    """The reference network; training returns ``ReIsoOutput`` (both branches), eval the anisotropic one."""

    def __init__(self, in_channels: int, num_classes: int, topology: PaperTopology,
                 features: Sequence[int] = PAPER_FEATURES, deep_supervision: bool = True,
                 pi: PISettings = PISettings()) -> None:
        super().__init__()
        if pi.levels is not None and tuple(pi.levels) != tuple(PAPER_PI_LEVELS):
            raise ValueError(f"the paper's network has its PI module at levels {list(PAPER_PI_LEVELS)}; "
                             f"PISettings.levels {list(pi.levels)} cannot apply to it (leave levels None)")
        f, sa = list(features), topology.section_axis
        self.topology = topology
        self.stem = conv_norm_act(in_channels, f[0], flat_kernel(5, sa))
        self.encoder = nn.ModuleList([ResidualConvBlock(a, b, sa) for a, b in zip([f[0], *f[:-1]], f)])
        self.pools = nn.ModuleList([nn.MaxPool3d(tuple(p), stride=tuple(p)) for p in topology.pools])
        self.decoder = PaperDecoder(f, topology.pools, num_classes, sa, deep_supervision)
        iso_heads = paper_heads(f, num_classes)
        for part in (self.stem, self.encoder, self.decoder, iso_heads):  # as the reference; PIModule does alike
            part.apply(InitWeights_He(1e-2))
        pi = PIModule([f[lv] for lv in PAPER_PI_LEVELS], [topology.level_ratios[lv] for lv in PAPER_PI_LEVELS],
                      PAPER_PI_LEVELS, sa, pi)
        self.isotropic = IsotropicBranch(pi, iso_heads)  # training only, as in ReIsoSegNetwork

    @property
    def pi_module(self) -> PIModule:
        return self.isotropic.pi_module

    def forward(self, x: torch.Tensor):
        x = self.stem(x)
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pools[i - 1](x))
            skips.append(x)
        bottom_up = self.decoder.up[0](skips[4])  # the same in both branches: computed once
        ani = self.decoder(skips, bottom_up, self.decoder.seg_layers)
        if not self.training:
            return ani
        return ReIsoOutput(ani, self.decoder(self._pi(skips), bottom_up, self.isotropic.seg_layers))

    @torch.compiler.disable  # the random draw stays out of compiled graphs (see ReIsoSegNetwork._pi)
    def _pi(self, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return self.isotropic.pi_module(skips)


def deep_supervision_scales(topology: PaperTopology) -> list[list[float]]:
    """Target scales of the three outputs: full, full, level 1."""
    return [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0 / k for k in topology.pools[0]]]
