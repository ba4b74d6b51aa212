"""Building blocks shared by the PI module and the paper's network.

- ``ConvNeXtBlock`` / ``ConvNeXtStage``: the PI Net's ConvNeXt-style stage (depthwise 7x7x7 conv,
  LayerNorm, per-channel pointwise MLP, layer scale, residual), with a faster CPU backward for the
  depthwise conv (same maths, tested against autograd).
- ``ResidualConvBlock``: the reference's residual conv block, built from nnU-Net's
  ``ConvDropoutNormReLU`` (dynamic-network-architectures).
- ``LayerNormChannels``: LayerNorm over the channel axis of channels-first tensors.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU
from torch import nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint


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


def conv_norm_act(cin: int, cout: int, kernel: Sequence[int]) -> ConvDropoutNormReLU:
    """conv (with bias, 'same' padding) -> InstanceNorm (affine) -> LeakyReLU(0.01): nnU-Net's own block, as
    in the reference (its ``ConvDropoutNormNonlin`` without dropout)."""
    return ConvDropoutNormReLU(nn.Conv3d, cin, cout, list(kernel), 1, conv_bias=True, norm_op=nn.InstanceNorm3d,
                               norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU,
                               nonlin_kwargs={"negative_slope": 1e-2, "inplace": True})


def flat_kernel(size: int, section_axis: int) -> tuple[int, int, int]:
    """A cubic kernel of ``size`` that is flat (1) along the section axis."""
    k = [size] * 3
    k[section_axis] = 1
    return k[0], k[1], k[2]


class ResidualConvBlock(nn.Module):
    """conv(1x3x3)->IN->LReLU gives r; r + [conv3->IN->LReLU]x2 (r); then IN->LReLU.

    The flat kernel is flat along the section axis (``section_axis`` in 0..2).
    """

    def __init__(self, cin: int, cout: int, section_axis: int = 0) -> None:
        super().__init__()
        self.entry = conv_norm_act(cin, cout, flat_kernel(3, section_axis))
        self.body = nn.Sequential(conv_norm_act(cout, cout, (3, 3, 3)), conv_norm_act(cout, cout, (3, 3, 3)))
        self.norm = nn.InstanceNorm3d(cout, eps=1e-5, affine=True)
        self.act = nn.LeakyReLU(1e-2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.entry(x)
        return self.act(self.norm(r + self.body(r)))
