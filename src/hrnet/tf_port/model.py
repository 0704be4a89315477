"""The HRNet variant of the original TensorFlow port (VXallset/deep-high-resolution-net.TensorFlow, 2019),
trained there on AI Challenger's 14 keypoints.

How it differs from the official network (``hrnet.models.hrnet``):
- no stem: stage 1 runs bottleneck residual units (inner width 64, output width = input width) on the 3-channel
  image at full resolution, then a 3×3 conv-BN-activation to the first branch width;
- each of stages 2–4 opens with an exchange *between* stages (the existing branches fused with each other, plus a
  new branch made from the last input branch before fusion), then repeats exchange blocks (four basic residual
  units a branch, then a fusion of all branches);
- a down path is a chain of stride-2 3×3 conv-BN-activation, each doubling the channels, padded as TensorFlow's
  ``padding='same'`` (on an even size: nothing before, one row/column after); an up path is nearest upsampling
  *then* a 1×1 conv-BN-activation; branch sums carry no activation;
- convolutions keep their bias; activation is leaky ReLU (slope 0.1); BatchNorm has TensorFlow's eps 1e-3 and
  can normalise with the batch's own statistics at test time, as the port's ``test.py`` runs it
  (``ModelConfig.batch_norm``, see ``PortBatchNorm``);
- the head is a 3×3 conv + ReLU, each heatmap divided by its own sum (+1e-10), at input resolution;
- conv weights start from N(0, 0.01²) (TensorFlow's ``random_normal_initializer(stddev=0.01)``).

Module names follow the port's scopes closely enough for ``hrnet.tf_port.checkpoint`` to map its checkpoints
(every conv-BN is ``<path>.conv`` / ``<path>.bn``).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from hrnet.config import ModelConfig
from hrnet.models.blocks import init_conv_bn

LEAKY_SLOPE = 0.1
BN_EPS = 1e-3  # tf.layers.batch_normalization's default epsilon
NORMALISE_EPS = 1e-10


def tf_same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding of one spatial axis of ``size`` pixels under TensorFlow's ``padding='same'``.

    TF pads ``total = max((ceil(size / stride) - 1) * stride + kernel_size - size, 0)``, the smaller half before:
    a 3×3 stride-2 conv on an even size pads 0 before and 1 after; on an odd size, 1 and 1.
    """
    total = max((-(-size // stride) - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


class TFSamePadding(nn.Module):
    """Zero-pads (N, C, H, W) as TensorFlow's ``padding='same'`` does for a ``kernel_size`` / ``stride`` conv that
    follows with ``padding=0``. The amounts depend on H and W, so they are worked out on every call."""

    def __init__(self, kernel_size: int, stride: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = tf_same_padding(x.shape[-2], self.kernel_size, self.stride)
        left, right = tf_same_padding(x.shape[-1], self.kernel_size, self.stride)
        return F.pad(x, (left, right, top, bottom))


class PortBatchNorm(nn.BatchNorm2d):
    """BatchNorm with TensorFlow's epsilon that can also normalise with the batch's statistics at test time.

    ``batch_statistics`` False (``model.batch_norm: running``): PyTorch's BatchNorm, running statistics in eval mode.
    ``batch_statistics`` True (``model.batch_norm: batch``): in eval mode every call normalises (N, C, H, W) with
    the current batch's per-channel mean and *biased* variance over (N, H, W) and leaves the running statistics
    alone, which is what the port's ``test.py`` computes (it builds the network with ``is_training=True`` and
    never runs the update ops). In training mode both settings are PyTorch's: batch statistics, running
    statistics updated with momentum 0.1 (TensorFlow's 0.9), so they are usable if ``running`` is chosen later.
    """

    def __init__(self, num_features: int):
        super().__init__(num_features, eps=BN_EPS)
        self.batch_statistics = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.batch_statistics:
            return super().forward(x)
        # Written out rather than F.batch_norm(training=True) so that it exports to ONNX as plain reductions.
        var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0, keepdim=True)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight[:, None, None] + self.bias[:, None, None]


class ConvBNAct(nn.Sequential):
    """Conv (with bias) → BatchNorm → optional leaky ReLU, as the port's ``conv_2d`` with ``padding='same'``.

    Children: ``pad`` (stride > 1 only), ``conv``, ``bn``, ``act``. With stride 1 and an odd kernel TF's 'same'
    padding is ``kernel_size // 2`` on both sides, which the conv does itself; with stride 2 TF's padding can be
    asymmetric, so an explicit ``TFSamePadding`` precedes a conv without padding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, act: bool = True):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if stride > 1:
            layers["pad"] = TFSamePadding(kernel_size, stride)
        padding = 0 if stride > 1 else kernel_size // 2
        layers["conv"] = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        layers["bn"] = PortBatchNorm(out_channels)
        if act:
            layers["act"] = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        super().__init__(layers)


class ResidualUnit(nn.Module):
    """Two 3×3 conv-BN (the first activated), identity shortcut, activation after the sum."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvBNAct(channels, channels, 3)
        self.conv2 = ConvBNAct(channels, channels, 3, act=False)
        self.act = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.conv1(x)))


class BottleneckUnit(nn.Module):
    """1×1 to ``inner``, 3×3, 1×1 back to the input width, identity shortcut, activation after the sum."""

    def __init__(self, channels: int, inner: int):
        super().__init__()
        self.reduce = ConvBNAct(channels, inner, 1)
        self.conv = ConvBNAct(inner, inner, 3)
        self.expand = ConvBNAct(inner, channels, 1, act=False)
        self.act = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.expand(self.conv(self.reduce(x))))


def down_path(in_channels: int, steps: int) -> nn.Sequential:
    """``steps`` stride-2 conv-BN-activation layers, each doubling the channels."""
    return nn.Sequential(*(ConvBNAct(in_channels * 2**k, in_channels * 2 ** (k + 1), 3, 2) for k in range(steps)))


class Fusion(nn.Module):
    """Every output branch o is the sum over input branches i of: the branch itself (i = o), its down path
    (i < o) or nearest upsampling by 2^(i − o) then a 1×1 conv-BN-activation (i > o).

    ``num_outputs`` < len(widths) builds only the highest-resolution outputs (the network's last fusion feeds
    only branch 0 to the head; the port computed the others and threw them away)."""

    def __init__(self, widths: list[int], num_outputs: int | None = None):
        super().__init__()
        self.paths = nn.ModuleList()
        for o, out_width in enumerate(widths[:num_outputs]):
            row = nn.ModuleList()
            for i, in_width in enumerate(widths):
                if i < o:
                    row.append(down_path(in_width, o - i))
                elif i > o:
                    row.append(
                        nn.Sequential(
                            nn.Upsample(scale_factor=2 ** (i - o), mode="nearest"), ConvBNAct(in_width, out_width, 1)
                        )
                    )
                else:
                    row.append(nn.Identity())
            self.paths.append(row)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for row in self.paths:
            row = cast(nn.ModuleList, row)
            y = row[0](xs[0])
            for path, x in zip(row[1:], xs[1:], strict=True):
                y = y + path(x)
            outs.append(y)
        return outs


class ExchangeBlock(nn.Module):
    """``num_units`` residual units in every branch, then a fusion of all branches."""

    def __init__(self, widths: list[int], num_units: tuple[int, ...], num_outputs: int | None = None):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(ResidualUnit(w) for _ in range(n))) for w, n in zip(widths, num_units, strict=True)
        )
        self.fusion = Fusion(widths, num_outputs)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.fusion([branch(x) for branch, x in zip(self.branches, xs, strict=True)])


class BetweenStages(nn.Module):
    """The exchange that opens a stage: fuse the existing branches and add a new one, half the resolution and
    twice the width of the last input branch (taken before fusion)."""

    def __init__(self, widths: list[int]):
        super().__init__()
        self.fusion = Fusion(widths)
        self.new_branch = down_path(widths[-1], 1)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [*self.fusion(xs), self.new_branch(xs[-1])]


class TFPortHRNet(nn.Module):
    """(N, 3, H, W) normalised RGB → (N, K, H, W) heatmaps, each summing to 1.

    H and W must be multiples of 8 (the port's own limit: its up paths must meet the down paths' sizes).
    ``cfg.batch_norm`` picks the BatchNorm statistics used in eval mode (see ``PortBatchNorm``).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.variant != "tf_port":
            raise ValueError(f"TFPortHRNet builds variant 'tf_port', got {cfg.variant!r}; use build_model()")
        stage1, *later = cfg.stages
        for stage in later:
            if stage.block != "basic":
                raise ValueError("the TF port uses basic residual units in stages 2-4")
            if any(b != 2 * a for a, b in itertools.pairwise(stage.num_channels)):
                raise ValueError(f"the TF port doubles the width at each branch, got {list(stage.num_channels)}")
        if any(a.num_channels[0] != b.num_channels[0] for a, b in itertools.pairwise(later)):
            raise ValueError("the TF port keeps the first branch width through stages 2-4")
        self.stage1 = nn.Sequential(*(BottleneckUnit(3, stage1.num_channels[0]) for _ in range(stage1.num_blocks[0])))
        self.stage1_out = ConvBNAct(3, later[0].num_channels[0], 3)
        stages = []
        for s, stage in enumerate(later):
            widths = list(stage.num_channels)
            final = s == len(later) - 1
            blocks = [
                ExchangeBlock(widths, stage.num_blocks, 1 if final and m == stage.num_modules - 1 else None)
                for m in range(stage.num_modules)
            ]
            stages.append(nn.Sequential(BetweenStages(widths[:-1]), *blocks))
        self.stages = nn.ModuleList(stages)
        k = cfg.final_conv_kernel
        self.head = nn.Conv2d(later[0].num_channels[0], cfg.num_keypoints, k, padding=k // 2)
        self.init_weights()
        for m in self.modules():
            if isinstance(m, PortBatchNorm):
                m.batch_statistics = cfg.batch_norm == "batch"

    def init_weights(self) -> None:
        """TensorFlow's ``random_normal_initializer(stddev=0.01)`` for convs, zero biases, BN weight 1 / bias 0."""
        init_conv_bn(self, std=0.01)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The last fusion's output: [(N, C, H, W)], the highest-resolution branch only (all the head uses)."""
        xs = [self.stage1_out(self.stage1(x))]
        for stage in self.stages:
            xs = stage(xs)
        return xs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heatmaps = torch.relu(self.head(self.forward_features(x)[0]))
        return heatmaps / (heatmaps.sum(dim=(2, 3), keepdim=True) + NORMALISE_EPS)
