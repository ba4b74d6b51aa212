"""The PI module: ReIsoSeg's training-only isotropic branch.

``PIModule`` takes the list of encoder skips and returns a list of the same shapes in which the
skips of the PI levels are replaced by their re-isotropic versions; the decoder then runs a second
time on that list. Per forward (one random draw shared by all PI levels):

1. a 1x1x1 conv reduces each PI level's channels (to 1/4 by default),
2. lossy re-isotropic interpolation: nearest resampling of the section axis by the level's ratio,
   and with probability 0.2 one lateral axis is degraded the same way (down and up again),
3. axial permutation: swap (section, lateral 2), (section, lateral 1), (lateral 1, lateral 2) or none,
4. the PI Net, a small U-Net over the PI levels,
5. the permutation is undone, the section axis resampled back, and a 1x1x1 conv restores channels.

Resampling uses index gathers rather than ``F.interpolate``: for integer ratios they pick exactly
the slices nearest interpolation picks (up: slice i//r, down: slice j*r), for non-integer ratios
they stay well defined and the round trip up-then-down is the identity. The isotropic sizes are chosen
from the deepest PI level up (``anisotropy.isotropic_sizes``), so the PI Net's strided and transposed
convs meet their partners exactly: there is no other resampling than the method's own.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunetv2_reisoseg.method.anisotropy import PI_NET_STRIDE, isotropic_sizes, reduced_channels
from nnunetv2_reisoseg.method.blocks import ConvNeXtStage, ResidualConvBlock
from nnunetv2_reisoseg.method.knobs import PISettings

# the four axial choices of the reference, as pairs of (section=0, lateral1=1, lateral2=2) roles
_SWAPS: tuple[tuple[int, int] | None, ...] = ((0, 2), (0, 1), (1, 2), None)


def upsample_index(n_in: int, n_out: int, device: torch.device | None = None) -> torch.Tensor:
    """Source slice of each of ``n_out`` output slices for nearest upsampling from ``n_in`` slices."""
    i = torch.arange(n_out, device=device)
    return torch.clamp(((2 * i + 1) * n_in) // (2 * n_out), max=n_in - 1)


def downsample_index(n_out: int, n_in: int, device: torch.device | None = None) -> torch.Tensor:
    """Slice kept for each of ``n_out`` outputs when going back down from ``n_in`` upsampled slices:
    the first slice that ``upsample_index(n_out, n_in)`` maps to it, so down(up(x)) == x."""
    j = torch.arange(n_out, device=device)
    return torch.clamp(-((n_out - 2 * j * n_in) // (2 * n_out)), 0, n_in - 1)


def _meets(x: torch.Tensor, partner: torch.Tensor, what: str) -> torch.Tensor:
    """x, checked to have ``partner``'s spatial shape (the PI Net's levels are sized to meet exactly)."""
    if x.shape[2:] != partner.shape[2:]:
        raise RuntimeError(
            f"PI Net: the {what} gives {tuple(x.shape[2:])} where the next level has {tuple(partner.shape[2:])}. "
            "Consecutive PI levels must halve every axis of the isotropic grid; train on patches whose size "
            "nnU-Net's planned strides divide (the plans' patch size does).")
    return x


class PINet(nn.Module):
    """A small U-Net across the PI levels, on isotropic, permuted features (reduced channels).

    Down: concat(level k features, 2x2x2-strided conv of level k-1) -> residual conv block.
    At every level a ConvNeXt stage (at the shallowest level it acts on the input itself; at the
    deepest its output is that level's result). Up: concat(2x2x2 transposed conv of level k+1,
    ConvNeXt stage output of level k) -> residual conv block.
    """

    def __init__(self, channels: Sequence[int], section_axis: int = 0) -> None:
        super().__init__()
        c = list(channels)
        k = len(c)
        s = PI_NET_STRIDE
        self.down = nn.ModuleList([nn.Conv3d(c[i - 1], c[i], s, stride=s) for i in range(1, k)])
        self.down_blocks = nn.ModuleList([ResidualConvBlock(2 * c[i], c[i], section_axis) for i in range(1, k)])
        self.stages = nn.ModuleList([ConvNeXtStage(ci) for ci in c])
        self.up = nn.ModuleList([nn.ConvTranspose3d(c[i + 1], c[i], s, stride=s) for i in range(k - 1)])
        self.up_blocks = nn.ModuleList([ResidualConvBlock(2 * c[i], c[i], section_axis) for i in range(k - 1)])

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        k = len(feats)
        down = [feats[0]]
        for i in range(1, k):
            lower = _meets(self.down[i - 1](down[-1]), feats[i], f"strided conv of PI level {i - 1}")
            down.append(self.down_blocks[i - 1](torch.cat((feats[i], lower), dim=1)))
        staged = [stage(d) for stage, d in zip(self.stages, down)]
        out = [staged[-1]]
        for i in range(k - 2, -1, -1):
            upper = _meets(self.up[i](out[0]), staged[i], f"transposed conv of PI level {i + 1}")
            out.insert(0, self.up_blocks[i](torch.cat((upper, staged[i]), dim=1)))
        return out


class PIModule(nn.Module):
    """Re-isotropic transformation of the skips of ``levels``; other skips pass through untouched.

    Args:
        channels: encoder channels of each PI level.
        ratios: anisotropy ratio (section / lateral spacing) of each PI level.
        levels: encoder stage index of each PI level (consecutive).
        section_axis: spatial axis (0..2) with the coarsest spacing, in network space.
        settings: the user's knobs (``PISettings``): its channel reduction and lateral degradation apply here;
            its ``levels`` were resolved into ``levels`` by the plan.
    """

    def __init__(
        self,
        channels: Sequence[int],
        ratios: Sequence[float],
        levels: Sequence[int],
        section_axis: int = 0,
        settings: PISettings = PISettings(),
    ) -> None:
        super().__init__()
        if not (len(channels) == len(ratios) == len(levels) > 0):
            raise ValueError("channels, ratios and levels must have the same, non-zero length")
        self.levels = tuple(int(lv) for lv in levels)
        # a section axis finer than the lateral ones (ratio < 1) is left as it is
        self.ratios = tuple(max(1.0, float(r)) for r in ratios)
        self.section_axis = int(section_axis)
        self.lateral_axes = tuple(a for a in range(3) if a != self.section_axis)
        self.settings = settings
        self.lateral_degradation_p = float(settings.lateral_degradation_p)
        inner = reduced_channels(channels, settings.reduction)
        self.reduce = nn.ModuleList([nn.Conv3d(int(c), i, 1) for c, i in zip(channels, inner)])
        self.restore = nn.ModuleList([nn.Conv3d(i, int(c), 1) for c, i in zip(channels, inner)])
        self.pi_net = PINet(inner, self.section_axis)
        self.apply(InitWeights_He(1e-2))

    def draw(self) -> tuple[int, int | None]:
        """One random draw from torch's RNG: axial choice (0..3) and degraded lateral axis (or None)."""
        r = torch.rand(3).tolist()
        swap = min(int(r[0] * 4), 3)
        lateral = self.lateral_axes[min(int(r[2] * 2), 1)] if r[1] < self.lateral_degradation_p else None
        return swap, lateral

    def _swap_dims(self, swap: int) -> tuple[int, int] | None:
        pair = _SWAPS[swap]
        if pair is None:
            return None
        roles = (self.section_axis, *self.lateral_axes)
        return 2 + roles[pair[0]], 2 + roles[pair[1]]

    def to_isotropic(self, x: torch.Tensor, n_iso: int, ratio: float, lateral: int | None) -> torch.Tensor:
        """Lossy re-isotropic interpolation of one level to ``n_iso`` sections (before permutation)."""
        dim = 2 + self.section_axis
        n = x.shape[dim]
        if n_iso != n:
            x = x.index_select(dim, upsample_index(n, n_iso, x.device))
        if lateral is not None and ratio > 1:
            ldim = 2 + lateral
            m = x.shape[ldim]
            m_low = max(1, round(m / ratio))
            if m_low != m:
                idx = downsample_index(m_low, m, x.device)[upsample_index(m_low, m, x.device)]
                x = x.index_select(ldim, idx)
        return x

    def to_anisotropic(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """Back to the level's ``n`` sections: nearest downsampling of the section axis."""
        dim = 2 + self.section_axis
        if x.shape[dim] == n:
            return x
        return x.index_select(dim, downsample_index(n, x.shape[dim], x.device))

    def transform(self, feats: Sequence[torch.Tensor], swap: int, lateral: int | None) -> list[torch.Tensor]:
        """Reduced features -> isotropic, permuted features (steps 2-3)."""
        dims = self._swap_dims(swap)
        sizes = isotropic_sizes([f.shape[2 + self.section_axis] for f in feats], self.ratios)
        out = []
        for x, n_iso, r in zip(feats, sizes, self.ratios):
            x = self.to_isotropic(x, n_iso, r, lateral)
            out.append(x.transpose(*dims) if dims else x)
        return out

    def inverse_transform(self, feats: Sequence[torch.Tensor], swap: int, sizes: Sequence[int]) -> list[torch.Tensor]:
        """Undo the permutation and go back to the anisotropic grid (steps 5-6)."""
        dims = self._swap_dims(swap)
        return [self.to_anisotropic(x.transpose(*dims) if dims else x, n) for x, n in zip(feats, sizes)]

    def forward(self, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        swap, lateral = self.draw()
        return self.apply_transform(skips, swap, lateral)

    def apply_transform(self, skips: Sequence[torch.Tensor], swap: int, lateral: int | None) -> list[torch.Tensor]:
        """The PI module for a given draw (``forward`` draws it); deterministic, for tests."""
        feats = [self.reduce[i](skips[lv]) for i, lv in enumerate(self.levels)]
        sizes = [f.shape[2 + self.section_axis] for f in feats]
        iso = self.pi_net(self.transform(feats, swap, lateral))
        back = self.inverse_transform(iso, swap, sizes)
        out = list(skips)
        for i, lv in enumerate(self.levels):
            out[lv] = self.restore[i](back[i])
        return out
