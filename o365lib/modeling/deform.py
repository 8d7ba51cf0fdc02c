"""Deformable convolution (DCN v1) for backbone stages c3-c5, on ``torchvision.ops.DeformConv2d``.

The ByteDance talk's strongest single model uses deformable convolutions in the last three ResNeXt stages.
``DeformableConv2d`` keeps the replaced convolution's weight under the same name (``conv2.weight``),
so ImageNet weights of a plain ResNet still load; its extra offset convolution
(``conv2.conv_offset``) starts at zero, which makes the deformable network compute exactly what
the plain one did until training moves the offsets.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torchvision.ops import DeformConv2d


class DeformableConv2d(DeformConv2d):
    """A ``DeformConv2d`` that predicts its own sampling offsets from its input."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 1,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        kernel_h, kernel_w = self.kernel_size
        self.conv_offset = nn.Conv2d(
            in_channels,
            2 * kernel_h * kernel_w,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=True,
        )
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> DeformableConv2d:
        """The deformable twin of ``conv``: same geometry, a copy of its weights, zero offsets."""
        module = cls(
            conv.in_channels,
            conv.out_channels,
            kernel_size=conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
        )
        with torch.no_grad():
            module.weight.copy_(conv.weight)
            if conv.bias is not None:
                module.bias.copy_(conv.bias)
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x, self.conv_offset(x))


def convert_to_deformable(body: nn.Module, *, stages: Iterable[str] = ("layer2", "layer3", "layer4")) -> int:
    """Replace the 3x3 ``conv2`` of every residual block in ``stages`` by a ``DeformableConv2d``.

    ``conv2`` is the 3x3 convolution in both torchvision block types (the middle one of a
    ``Bottleneck``, the second one of a ``BasicBlock``). Returns how many convolutions were replaced.
    """
    replaced = 0
    for stage_name in stages:
        stage = getattr(body, stage_name, None)
        if stage is None:
            raise ValueError(f"backbone has no stage {stage_name!r} to make deformable")
        for block in stage:
            conv = getattr(block, "conv2", None)
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
                block.conv2 = DeformableConv2d.from_conv(conv)
                replaced += 1
    if replaced == 0:
        raise ValueError(f"no 3x3 conv2 found in stages {tuple(stages)} to make deformable")
    return replaced
