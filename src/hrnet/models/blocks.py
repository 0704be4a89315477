"""Residual units of HRNet: the basic block (two 3×3) and the bottleneck (1×1, 3×3, 1×1 ×4).

Attribute names (``conv1``, ``bn1``, ..., ``downsample``) are those of the official checkpoints, so a state_dict
loads with ``strict=True``. BatchNorm keeps PyTorch's defaults (momentum 0.1, eps 1e-5) as the official code.
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or projected) shortcut (He et al. 2016)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3, 1×1 expand (×4) with a shortcut; ``channels`` is the inner width."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def make_branch(block: str, in_channels: int, channels: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` residual units; the first projects the shortcut (1×1 conv + BN) when widths differ,
    as the official ``_make_layer`` / ``_make_one_branch``."""
    cls = BLOCKS[block]
    out_channels = channels * cls.expansion
    downsample = None
    if in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False), nn.BatchNorm2d(out_channels)
        )
    layers = [cls(in_channels, channels, downsample=downsample)]
    layers += [cls(out_channels, channels) for _ in range(num_blocks - 1)]
    return nn.Sequential(*layers)


def init_conv_bn(model: nn.Module, std: float) -> None:
    """Conv weights from N(0, std²) and conv biases 0; BatchNorm weight 1 and bias 0 (both variants' recipe).
    Nothing on the meta device, where there are no values to set (``hrnet.models.checkpoint.load_model``)."""
    if next(model.parameters()).is_meta:  # drawing values there would load SymPy, seconds for nothing
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
