"""The building blocks: the ConvNeXt block's fast CPU paths keep the maths."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_reisoseg.method.blocks import ConvNeXtBlock, _DepthwiseConv3dCPU, depthwise_conv3d


def test_channels_last_fast_path_keeps_the_maths():
    torch.manual_seed(0)
    block = ConvNeXtBlock(6)
    with torch.no_grad():
        block.gamma.fill_(0.5)
    x = torch.randn(2, 6, 9, 10, 11)
    with torch.no_grad():
        # the block's operations on plain contiguous tensors
        y = block.norm(F.conv3d(x, block.dwconv.weight, block.dwconv.bias, padding=3, groups=6))
        y = F.conv3d(F.gelu(F.conv3d(y, block.pwconv1.weight, block.pwconv1.bias, groups=6)),
                     block.pwconv2.weight, block.pwconv2.bias, groups=6)
        ref = x + 0.5 * y
        assert torch.allclose(block(x), ref, atol=1e-5)


@pytest.mark.parametrize("shape, k", [((2, 3, 9, 10, 11), 7), ((1, 4, 5, 6, 4), 3), ((2, 2, 3, 8, 8), 7)])
def test_depthwise_conv_fast_backward_matches_autograd(shape, k):
    torch.manual_seed(0)
    conv = nn.Conv3d(shape[1], shape[1], k, padding=k // 2, groups=shape[1])
    x = torch.randn(shape, requires_grad=True)
    gy = torch.randn(shape)
    depthwise_conv3d(conv, x).backward(gy)
    ours = (x.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone())
    x.grad = conv.weight.grad = conv.bias.grad = None
    F.conv3d(x, conv.weight, conv.bias, padding=k // 2, groups=shape[1]).backward(gy)
    for a, b in zip(ours, (x.grad, conv.weight.grad, conv.bias.grad)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_depthwise_conv_fast_backward_gradcheck():
    torch.manual_seed(0)
    args = (torch.randn(1, 2, 4, 5, 3, dtype=torch.float64, requires_grad=True),
            torch.randn(2, 1, 3, 3, 3, dtype=torch.float64, requires_grad=True),
            torch.randn(2, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(_DepthwiseConv3dCPU.apply, args)
