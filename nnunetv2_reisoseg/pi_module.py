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
they stay well defined and the round trip up-then-down is the identity.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

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


def isotropic_size(n: int, ratio: float) -> int:
    """Number of section-axis slices after re-isotropic interpolation (never fewer than before)."""
    return max(n, round(n * ratio))


class LayerNormChannels(nn.Module):
    """LayerNorm over the channel axis of an (N, C, ...) tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.movedim(1, -1)
        x = F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


def _fft_weight_grad(x: torch.Tensor, gy: torch.Tensor, kernel: int, pad: int) -> torch.Tensor:
    """Depthwise-conv weight gradient, sum_n sum_i x[n, c, i + k - pad] * gy[n, c, i], as an FFT
    cross-correlation (zero padded so that lags -pad..pad do not wrap)."""
    from scipy.fft import next_fast_len

    size = [next_fast_len(max(n + pad, kernel), real=True) for n in x.shape[2:]]
    dims = (2, 3, 4)
    spec = (torch.fft.rfftn(x, s=size, dim=dims) * torch.fft.rfftn(gy, s=size, dim=dims).conj()).sum(0)
    corr = torch.fft.irfftn(spec, s=size, dim=(1, 2, 3))  # index l holds lag l (mod size)
    corr = torch.roll(corr, (pad, pad, pad), (1, 2, 3))[:, :kernel, :kernel, :kernel]
    return corr.unsqueeze(1).contiguous()


class _DepthwiseConv3dCPU(torch.autograd.Function):
    """Depthwise 3D conv (odd cubic kernel, 'same' padding) with a faster backward on the CPU.

    PyTorch's CPU backward of this conv took ~1.1 s where its forward took 0.07 s (16 channels,
    80x64x64, batch 2): here the input gradient is the forward conv with the flipped kernel and the
    weight gradient an FFT cross-correlation. Same maths, floating-point differences only (tested).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return F.conv3d(x, weight, bias, padding=weight.shape[-1] // 2, groups=x.shape[1])

    @staticmethod
    @once_differentiable
    def backward(ctx, gy: torch.Tensor):
        x, weight = ctx.saved_tensors
        k = weight.shape[-1]
        gy = gy.contiguous(memory_format=torch.channels_last_3d)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = F.conv3d(gy, weight.flip((2, 3, 4)), None, padding=k // 2, groups=x.shape[1])
        if ctx.needs_input_grad[1]:
            gw = _fft_weight_grad(x, gy, k, k // 2)
        if ctx.needs_input_grad[2]:
            gb = gy.sum((0, 2, 3, 4))
        return gx, gw, gb


def depthwise_conv3d(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a depthwise conv; on the CPU in float32 through the faster backward."""
    if x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu"):
        # channels-last: oneDNN runs this conv several times faster in that layout
        return _DepthwiseConv3dCPU.apply(x.contiguous(memory_format=torch.channels_last_3d), conv.weight, conv.bias)
    return conv(x)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7x7 conv, LayerNorm, per-channel pointwise MLP (x4, GELU), layer scale, residual.

    The pointwise convs are grouped per channel as in the reference: they do not mix channels.
    """

    def __init__(self, dim: int, layer_scale_init: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv3d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = LayerNormChannels(dim)
        self.pwconv1 = nn.Conv3d(dim, 4 * dim, kernel_size=1, groups=dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Conv3d(4 * dim, dim, kernel_size=1, groups=dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the depthwise 7x7x7 conv dominated the PI module's cost on the CPU
        z = self.norm(depthwise_conv3d(self.dwconv, x))
        if torch.is_grad_enabled() and z.requires_grad:
            # the x4 expansion is cheap to recompute and its two activations are the largest tensors of
            # the PI module: keep only the MLP's input for backward (same maths)
            y = checkpoint(self._mlp, z, use_reentrant=False)
        else:
            y = self._mlp(z)
        return torch.addcmul(x, self.gamma.view(1, -1, 1, 1, 1), y)  # x + gamma * y, one allocation

    def _mlp(self, z: torch.Tensor) -> torch.Tensor:
        return self.pwconv2(self.act(self.pwconv1(z)))


class ConvNeXtStage(nn.Sequential):
    """Two ConvNeXt blocks followed by a channels-first LayerNorm."""

    def __init__(self, dim: int, depth: int = 2) -> None:
        super().__init__(*[ConvNeXtBlock(dim) for _ in range(depth)], LayerNormChannels(dim))


def _conv_norm_act(cin: int, cout: int, kernel: Sequence[int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, tuple(kernel), padding=tuple(k // 2 for k in kernel)),
        nn.InstanceNorm3d(cout, eps=1e-5, affine=True),
        nn.LeakyReLU(1e-2, inplace=True),
    )


class ResidualConvBlock(nn.Module):
    """conv(1x3x3)->IN->LReLU gives r; r + [conv3->IN->LReLU]x2 (r); then IN->LReLU.

    The flat kernel is flat along the section axis (``section_axis`` in 0..2).
    """

    def __init__(self, cin: int, cout: int, section_axis: int = 0) -> None:
        super().__init__()
        flat = [3, 3, 3]
        flat[section_axis] = 1
        self.entry = _conv_norm_act(cin, cout, flat)
        self.body = nn.Sequential(_conv_norm_act(cout, cout, (3, 3, 3)), _conv_norm_act(cout, cout, (3, 3, 3)))
        self.norm = nn.InstanceNorm3d(cout, eps=1e-5, affine=True)
        self.act = nn.LeakyReLU(1e-2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.entry(x)
        return self.act(self.norm(r + self.body(r)))


def _fit(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Bring x to a spatial shape when strided convs and rounding left it off by a voxel or a stride."""
    if tuple(x.shape[2:]) == tuple(shape):
        return x
    return F.interpolate(x, size=tuple(shape), mode="nearest-exact")


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
        self.down = nn.ModuleList([nn.Conv3d(c[i - 1], c[i], 2, stride=2) for i in range(1, k)])
        self.down_blocks = nn.ModuleList([ResidualConvBlock(2 * c[i], c[i], section_axis) for i in range(1, k)])
        self.stages = nn.ModuleList([ConvNeXtStage(ci) for ci in c])
        self.up = nn.ModuleList([nn.ConvTranspose3d(c[i + 1], c[i], 2, stride=2) for i in range(k - 1)])
        self.up_blocks = nn.ModuleList([ResidualConvBlock(2 * c[i], c[i], section_axis) for i in range(k - 1)])

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        k = len(feats)
        down = [feats[0]]
        for i in range(1, k):
            lower = _fit(self.down[i - 1](down[-1]), feats[i].shape[2:])
            down.append(self.down_blocks[i - 1](torch.cat((feats[i], lower), dim=1)))
        staged = [stage(d) for stage, d in zip(self.stages, down)]
        out = [staged[-1]]
        for i in range(k - 2, -1, -1):
            upper = _fit(self.up[i](out[0]), staged[i].shape[2:])
            out.insert(0, self.up_blocks[i](torch.cat((upper, staged[i]), dim=1)))
        return out


class PIModule(nn.Module):
    """Re-isotropic transformation of the skips of ``levels``; other skips pass through untouched.

    Args:
        channels: encoder channels of each PI level.
        ratios: anisotropy ratio (section / lateral spacing) of each PI level.
        levels: encoder stage index of each PI level (consecutive).
        section_axis: spatial axis (0..2) with the coarsest spacing, in network space.
        reduction: channel reduction inside the PI module (C -> C // reduction).
        lateral_degradation_p: probability of degrading one lateral axis like the section axis.
    """

    def __init__(
        self,
        channels: Sequence[int],
        ratios: Sequence[float],
        levels: Sequence[int],
        section_axis: int = 0,
        reduction: int = 4,
        lateral_degradation_p: float = 0.2,
    ) -> None:
        super().__init__()
        if not (len(channels) == len(ratios) == len(levels) > 0):
            raise ValueError("channels, ratios and levels must have the same, non-zero length")
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        self.levels = tuple(int(lv) for lv in levels)
        # a section axis finer than the lateral ones (ratio < 1) is left as it is
        self.ratios = tuple(max(1.0, float(r)) for r in ratios)
        self.section_axis = int(section_axis)
        self.lateral_axes = tuple(a for a in range(3) if a != self.section_axis)
        self.lateral_degradation_p = float(lateral_degradation_p)
        inner = [max(1, int(c) // reduction) for c in channels]
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

    def to_isotropic(self, x: torch.Tensor, ratio: float, lateral: int | None) -> torch.Tensor:
        """Lossy re-isotropic interpolation of one level (before permutation)."""
        dim = 2 + self.section_axis
        n = x.shape[dim]
        n_iso = isotropic_size(n, ratio)
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
        out = []
        for x, r in zip(feats, self.ratios):
            x = self.to_isotropic(x, r, lateral)
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
