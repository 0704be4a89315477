"""Lite-HRNet (Yu et al., "Lite-HRNet: A Lightweight High-Resolution Network", CVPR 2021) as MMPose builds it
(open-mmlab/mmpose v1.3.2, ``mmpose/models/backbones/litehrnet.py``), with MMPose's ``HeatmapHead`` (a 1×1 conv).

A stem (a stride-2 3×3 conv, then two ShuffleNet-style branches, one of them stride 2) brings the image to ¼
resolution. Each stage opens with a *transition* (depthwise-separable convs: a new branch at half the resolution of
the last) and repeats modules of *conditional channel weighting* blocks, whose cross-resolution weighting (all
branches pooled to the lowest resolution, two 1×1 convs, a sigmoid per channel) and spatial weighting (a
squeeze-and-excitation per branch) replace the costly 1×1 convs of a shuffle block; a fusion as HRNet's ends each
module. The iterative head adds each branch, upsampled, to the next higher one; a 1×1 conv on the highest predicts
one heatmap per keypoint at ¼ of the input size.

Module names, and the order in which modules are registered, are MMPose's backbone's (``backbone.`` dropped) with
its head's ``final_layer``, so that MMPose's checkpoints load with ``strict=True``. The blocks MMPose builds from
MMCV's ``ConvModule`` are ``ConvUnit`` here, which keeps its attribute names (``conv``, ``bn``, ``activate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from hrnet.config import LiteHRNetConfig, ModelConfig
from hrnet.models.blocks import init_conv_bn


class ConvUnit(nn.Module):
    """A conv, then BatchNorm and an activation where asked (MMCV's ``ConvModule`` in MMPose's uses): the conv has
    a bias only where no BatchNorm follows it, as ``ConvModule``'s ``bias="auto"``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        groups: int = 1,
        norm: bool = True,
        activation: type[nn.ReLU] | type[nn.Sigmoid] | None = nn.ReLU,
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=not norm
        )
        self.bn = nn.BatchNorm2d(out_channels) if norm else None
        self.activate = activation() if activation is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return x if self.activate is None else self.activate(x)


def depthwise(channels: int, stride: int = 1) -> ConvUnit:
    """A depthwise 3×3 conv with BatchNorm and no activation, as every depthwise conv of Lite-HRNet."""
    return ConvUnit(channels, channels, 3, stride, groups=channels, activation=None)


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """ShuffleNet's channel shuffle (Zhang et al. 2018): (N, C, H, W) with channel ``g·C/groups + k`` moved to
    ``k·groups + g``, so that each half of the next block's split sees channels of both halves."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


class Stem(nn.Module):
    """(N, 3, H, W) → (N, out_channels, H/4, W/4): a stride-2 3×3 conv, then its halves through two branches (one a
    stride-2 depthwise conv and a 1×1 conv; the other 1×1 expand, stride-2 depthwise, 1×1 linear), concatenated and
    shuffled."""

    def __init__(self, cfg: LiteHRNetConfig):
        super().__init__()
        stem, out = cfg.stem_channels, cfg.stem_out_channels
        half = stem // 2
        mid = round(stem * cfg.stem_expand_ratio)
        # MMPose: the first branch makes up the output width, the second gives half the stem's, or all of it when
        # the output is wider than the stem.
        second = half if stem == out else stem
        self.conv1 = ConvUnit(3, stem, 3, stride=2)
        self.branch1 = nn.Sequential(depthwise(half, stride=2), ConvUnit(half, out - second, 1))
        self.expand_conv = ConvUnit(half, mid, 1)
        self.depthwise_conv = depthwise(mid, stride=2)
        self.linear_conv = ConvUnit(mid, second, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.conv1(x).chunk(2, dim=1)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return channel_shuffle(torch.cat((self.branch1(x1), x2), dim=1))


class SpatialWeighting(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018) on one branch: global average, 1×1 conv to ¼ of the channels with
    ReLU, 1×1 conv back with a sigmoid, the input scaled per channel. (N, C, H, W) → same."""

    def __init__(self, channels: int, ratio: int = 4):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = ConvUnit(channels, channels // ratio, 1, norm=False)
        self.conv2 = ConvUnit(channels // ratio, channels, 1, norm=False, activation=nn.Sigmoid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv2(self.conv1(self.global_avgpool(x)))


class CrossResolutionWeighting(nn.Module):
    """Channel weights computed from all branches at once: each pooled to the lowest branch's size, concatenated,
    1×1 conv to 1/ratio of the channels (BN, ReLU), 1×1 conv back (BN, sigmoid), split per branch and upsampled
    (nearest) onto it. Branch b: (N, C_b, H/2^b, W/2^b) in and out."""

    def __init__(self, channels: Sequence[int], ratio: int):
        super().__init__()
        self.channels = list(channels)
        total = sum(channels)
        self.conv1 = ConvUnit(total, total // ratio, 1)
        self.conv2 = ConvUnit(total // ratio, total, 1, activation=nn.Sigmoid)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        lowest = (xs[-1].shape[-2], xs[-1].shape[-1])
        pooled = [F.adaptive_avg_pool2d(x, lowest) for x in xs[:-1]] + [xs[-1]]
        weights = self.conv2(self.conv1(torch.cat(pooled, dim=1))).split(self.channels, dim=1)
        return [x * F.interpolate(w, size=x.shape[-2:], mode="nearest") for x, w in zip(xs, weights, strict=True)]


class ConditionalChannelWeighting(nn.Module):
    """The paper's block: each branch split in halves; the second half is weighted across resolutions, through a
    depthwise 3×3 conv, weighted spatially, then concatenated with the first half and shuffled. A list of
    (N, C_b, H_b, W_b) branches in, the same shapes out."""

    def __init__(self, channels: Sequence[int], reduce_ratio: int):
        super().__init__()
        halves = [c // 2 for c in channels]
        self.cross_resolution_weighting = CrossResolutionWeighting(halves, reduce_ratio)
        self.depthwise_convs = nn.ModuleList(depthwise(c) for c in halves)
        self.spatial_weighting = nn.ModuleList(SpatialWeighting(c) for c in halves)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        split = [x.chunk(2, dim=1) for x in xs]
        weighted = self.cross_resolution_weighting([s[1] for s in split])
        out = []
        for (kept, _), x, dw, sw in zip(split, weighted, self.depthwise_convs, self.spatial_weighting, strict=True):
            out.append(channel_shuffle(torch.cat((kept, sw(dw(x))), dim=1)))
        return out


class ShuffleUnit(nn.Module):
    """ShuffleNet V2's stride-1 unit (Ma et al. 2018), the "naive" module type: one half kept, the other through
    1×1 conv, depthwise 3×3 conv, 1×1 conv; concatenated and shuffled. (N, C, H, W) → same."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.branch2 = nn.Sequential(ConvUnit(half, half, 1), depthwise(half), ConvUnit(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((kept, self.branch2(x2)), dim=1))


class NaiveBlocks(nn.ModuleList):
    """One stack of shuffle units per branch, applied branch by branch (MMPose's "NAIVE" module ``layers``)."""

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [stack(x) for stack, x in zip(self, xs, strict=True)]


def _down_step(in_channels: int, out_channels: int, relu: bool) -> nn.Sequential:
    """A stride-2 depthwise 3×3 conv and a 1×1 conv, each with BatchNorm (plain layers: MMPose builds them so)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, in_channels, 3, stride=2, padding=1, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class LiteHRModule(nn.Module):
    """Weighting (or shuffle) blocks over all branches, then the fusion: every branch receives the others, brought
    to its resolution by 1×1 conv and nearest upsampling (from lower) or stride-2 depthwise-separable convs (from
    higher). A list of (N, C_b, H/2^b, W/2^b) in and out."""

    def __init__(self, channels: Sequence[int], num_blocks: int, reduce_ratio: int, module_type: str, fuse: bool):
        super().__init__()
        self.layers: nn.Module
        if module_type == "lite":
            self.layers = nn.Sequential(
                *(ConditionalChannelWeighting(channels, reduce_ratio) for _ in range(num_blocks))
            )
        else:
            self.layers = NaiveBlocks(nn.Sequential(*(ShuffleUnit(c) for _ in range(num_blocks))) for c in channels)
        self.fuse_layers = self._make_fuse_layers(channels) if fuse else None
        self.relu = nn.ReLU() if fuse else None

    @staticmethod
    def _make_fuse_layers(widths: Sequence[int]) -> nn.ModuleList:
        rows = []
        for i in range(len(widths)):
            row: list[nn.Module | None] = []
            for j, width in enumerate(widths):
                if j > i:
                    row.append(
                        nn.Sequential(
                            nn.Conv2d(width, widths[i], 1, bias=False),
                            nn.BatchNorm2d(widths[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                        )
                    )
                elif j < i:  # i − j steps; only the last changes the width, and it has no ReLU
                    steps = [_down_step(width, width, relu=True) for _ in range(i - j - 1)]
                    row.append(nn.Sequential(*steps, _down_step(width, widths[i], relu=False)))
                else:
                    row.append(None)  # keeps MMPose's indices, so its names
            rows.append(nn.ModuleList(row))  # type: ignore[arg-type]
        return nn.ModuleList(rows)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = self.layers(xs)
        if self.fuse_layers is None:
            return xs
        rows = cast(Sequence[nn.ModuleList], self.fuse_layers)
        # MMPose sums in place into branch 0's own tensor (``y = out[0]; y += out[0]; ...``): branch 0 counts twice
        # in its own sum, and the lower branches then receive that sum (before the ReLU), twice. The released
        # checkpoints were trained so; the sums keep MMPose's order.
        top = xs[0] + xs[0]
        for j in range(1, len(xs)):
            top = top + rows[0][j](xs[j])
        fused = [top]
        for i in range(1, len(xs)):
            from_top = rows[i][0](top)
            y = from_top + from_top
            for j in range(1, len(xs)):
                y = y + (xs[j] if i == j else rows[i][j](xs[j]))
            fused.append(y)
        relu = cast(nn.ReLU, self.relu)
        return [relu(y) for y in fused]


class SeparableConv(nn.Module):
    """A depthwise 3×3 conv with BatchNorm, then a 1×1 conv with BatchNorm and ReLU (MMCV's
    ``DepthwiseSeparableConvModule`` as the iterative head configures it)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.depthwise_conv = depthwise(in_channels)
        self.pointwise_conv = ConvUnit(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class IterativeHead(nn.Module):
    """From the lowest resolution up: each branch plus the one below it (bilinear, corners aligned), through a
    depthwise-separable 3×3 conv to the next higher branch's width. Branches in; the same list out, the highest
    resolution (N, C_0, H/4, W/4) first."""

    def __init__(self, channels: Sequence[int]):
        super().__init__()
        widths = list(channels)[::-1]
        outs = [*widths[1:], widths[-1]]
        self.projects = nn.ModuleList(SeparableConv(c, o) for c, o in zip(widths, outs, strict=True))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        ys: list[torch.Tensor] = []
        for x, project in zip(xs[::-1], self.projects, strict=True):
            if ys:
                x = x + F.interpolate(ys[-1], size=x.shape[-2:], mode="bilinear", align_corners=True)
            ys.append(project(x))
        return ys[::-1]


def make_transition(previous: Sequence[int], current: Sequence[int]) -> nn.ModuleList:
    """Branches into the next stage: a depthwise-separable 3×3 conv (ReLU) where an existing branch changes width
    (None where it keeps it), and for each new branch a chain of stride-2 ones from the lowest-resolution branch."""
    layers: list[nn.Module | None] = []
    for i, width in enumerate(current):
        if i < len(previous):
            if previous[i] == width:
                layers.append(None)
                continue
            layers.append(
                nn.Sequential(
                    nn.Conv2d(previous[i], previous[i], 3, padding=1, groups=previous[i], bias=False),
                    nn.BatchNorm2d(previous[i]),
                    nn.Conv2d(previous[i], width, 1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(),
                )
            )
        else:
            steps = i + 1 - len(previous)
            last = previous[-1]
            layers.append(
                nn.Sequential(*(_down_step(last, width if k == steps - 1 else last, True) for k in range(steps)))
            )
    return nn.ModuleList(layers)  # type: ignore[arg-type]  # None: the branch passes through unchanged


class LiteHRNet(nn.Module):
    """Lite-HRNet pose network: (N, 3, H, W) normalised RGB → (N, K, H / 4, W / 4) heatmaps.

    Stages are numbered from 0 as in MMPose (``transition0``, ``stage0``, ...; the paper's stages 2 to 4).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.litehrnet is None:
            raise ValueError(f"LiteHRNet builds variant 'litehrnet', got {cfg.variant!r}; use build_model()")
        spec = cfg.litehrnet
        self.stem = Stem(spec)
        widths = [spec.stem_out_channels]
        stages = zip(spec.num_channels, spec.num_modules, spec.num_blocks, spec.reduce_ratios, spec.module_type,
                     spec.with_fuse, strict=True)  # fmt: skip
        # Named attributes (not a list) because MMPose's checkpoints name them transition0..2, stage0..2.
        for s, (channels, modules, blocks, ratio, kind, fuse) in enumerate(stages):
            setattr(self, f"transition{s}", make_transition(widths, channels))
            setattr(
                self,
                f"stage{s}",
                nn.Sequential(*(LiteHRModule(channels, blocks, ratio, kind, fuse) for _ in range(modules))),
            )
            widths = list(channels)
        self.num_stages = len(spec.num_modules)
        self.head_layer = IterativeHead(widths) if spec.with_head else None
        self.final_layer = nn.Conv2d(
            widths[0], cfg.num_keypoints, cfg.final_conv_kernel, padding=cfg.final_conv_kernel // 2
        )
        self.init_weights()

    def init_weights(self) -> None:
        """MMPose's initialisation: conv weights N(0, 0.001²), conv biases 0, BN weight 1 and bias 0."""
        init_conv_bn(self, std=0.001)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The branches after the last stage (and the iterative head), highest resolution first."""
        xs = [self.stem(x)]
        for s in range(self.num_stages):
            transition = cast(nn.ModuleList, getattr(self, f"transition{s}"))
            inputs = []
            for i, layer in enumerate(transition):
                # Existing branches continue; a new branch starts from the lowest resolution so far.
                source = xs[i] if i < len(xs) else xs[-1]
                inputs.append(source if layer is None else layer(source))
            xs = getattr(self, f"stage{s}")(inputs)
        return xs if self.head_layer is None else self.head_layer(xs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.forward_features(x)[0])
