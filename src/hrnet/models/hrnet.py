"""The HRNet pose network of Sun et al., "Deep High-Resolution Representation Learning for Human Pose
Estimation" (CVPR 2019), exactly as the official PyTorch code builds it.

A stem (two stride-2 3×3 convs, 64 channels) brings the image to ¼ resolution; stage 1 (``layer1``) is a stack of
bottlenecks; each later stage adds one branch at half the resolution of the last (a *transition*) and repeats
*exchange modules*: residual units in every branch, then a fusion in which every branch receives the sum of all
branches, brought to its resolution by strided 3×3 convs (down) or a 1×1 conv and nearest upsampling (up). A
final conv on the highest-resolution branch predicts one heatmap per keypoint at ¼ of the input size.

``head: hrnetv2`` is HRNetV2 (Sun et al., "High-Resolution Representations for Labeling Pixels and Regions", 2019)
as MMPose builds its face and hand models (``configs/face_2d_keypoint/topdown_heatmap/wflw/
td-hm_hrnetv2-w18_8xb64-60e_wflw-256x256.py``, v1.3.2): the fusions upsample bilinearly (``upsample=dict(
mode='bilinear', align_corners=False)``), the last stage keeps all four branches (``multiscale_output=True``),
they are resized to the highest resolution and concatenated (MMPose 1.x's ``FeatureMapProcessor(concat=True)``
neck, 0.x's ``resize_concat``), and a 1×1 conv (with bias), BatchNorm and ReLU come before the final conv.

Module and attribute names follow the official ``PoseHighResolutionNet`` so that the released checkpoints load
with ``strict=True`` (``../shared/reference/official_state_dict/`` lists them); the HRNetV2 head's are MMPose
1.x's ``HeatmapHead`` names (``conv_layers.0``, ``conv_layers.1``, ``final_layer``) without its ``head.`` prefix.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from hrnet.config import ModelConfig, StageConfig
from hrnet.errors import ConfigError
from hrnet.models.blocks import BLOCKS, conv3x3, init_conv_bn, make_branch
from hrnet.models.litehrnet import LiteHRNet

STEM_CHANNELS = 64  # fixed by the official code for every width


def _conv_bn(in_channels: int, out_channels: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [conv3x3(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ExchangeModule(nn.Module):
    """Parallel branches of residual units followed by a multi-resolution fusion (official
    ``HighResolutionModule``; the paper's "exchange unit").

    Input and output are lists of (N, C_b, H / 2^b, W / 2^b) tensors, branch b = 0 the highest resolution. With
    ``multi_scale_output=False`` only the highest-resolution output is fused and returned. ``upsample`` is the
    interpolation of the upward paths: "nearest" (official) or "bilinear" (HRNetV2; align_corners False).
    """

    def __init__(
        self,
        block: str,
        num_blocks: tuple[int, ...],
        in_channels: list[int],
        channels: tuple[int, ...],
        multi_scale_output: bool = True,
        upsample: str = "nearest",
    ):
        super().__init__()
        expansion = BLOCKS[block].expansion
        self.branches = nn.ModuleList(
            make_branch(block, c_in, c, n) for c_in, c, n in zip(in_channels, channels, num_blocks, strict=True)
        )
        self.out_channels = [c * expansion for c in channels]
        self.fuse_layers = self._make_fuse_layers(self.out_channels, multi_scale_output, upsample)
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _make_fuse_layers(widths: list[int], multi_scale_output: bool, upsample: str) -> nn.ModuleList | None:
        num_branches = len(widths)
        if num_branches == 1:
            return None
        rows = []
        for i in range(num_branches if multi_scale_output else 1):
            row: list[nn.Module | None] = []
            for j in range(num_branches):
                if j > i:  # lower resolution → higher: 1×1 conv + BN, then upsampling
                    align = False if upsample == "bilinear" else None
                    row.append(
                        nn.Sequential(
                            nn.Conv2d(widths[j], widths[i], kernel_size=1, bias=False),
                            nn.BatchNorm2d(widths[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode=upsample, align_corners=align),
                        )
                    )
                elif j < i:  # higher → lower: i − j stride-2 3×3 convs; only the last changes the width
                    steps = [_conv_bn(widths[j], widths[j], 2, relu=True) for _ in range(i - j - 1)]
                    steps.append(_conv_bn(widths[j], widths[i], 2, relu=False))
                    row.append(nn.Sequential(*steps))
                else:
                    row.append(None)
            # None entries (no path, "fuse_layers.i.i") keep the official indices and so its checkpoint names.
            rows.append(nn.ModuleList(row))  # type: ignore[arg-type]
        return nn.ModuleList(rows)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for i, row in enumerate(cast(nn.ModuleList, self.fuse_layers)):
            row = cast(nn.ModuleList, row)
            # Summed in the official order (branch 0 first) so floating-point results match it closely.
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, len(xs)):
                y = y + (xs[j] if i == j else row[j](xs[j]))
            fused.append(self.relu(y))
        return fused


def make_stage(
    stage: StageConfig, in_channels: list[int], multi_scale_output: bool, upsample: str = "nearest"
) -> nn.Sequential:
    """``stage.num_modules`` exchange modules; only the very last may drop the lower-resolution outputs."""
    modules = []
    widths = list(in_channels)
    for m in range(stage.num_modules):
        last = m == stage.num_modules - 1
        module = ExchangeModule(
            stage.block, stage.num_blocks, widths, stage.num_channels, multi_scale_output or not last, upsample
        )
        widths = module.out_channels
        modules.append(module)
    return nn.Sequential(*modules)


def make_transition(previous: list[int], current: list[int]) -> nn.ModuleList:
    """Branches into the next stage: a 3×3 conv where an existing branch changes width (None where it keeps
    it), and for each new branch a chain of stride-2 3×3 convs from the lowest-resolution branch."""
    layers: list[nn.Module | None] = []
    for i, width in enumerate(current):
        if i < len(previous):
            layers.append(_conv_bn(previous[i], width, 1, relu=True) if previous[i] != width else None)
        else:
            steps = i + 1 - len(previous)
            chain = [
                _conv_bn(previous[-1], width if k == steps - 1 else previous[-1], 2, relu=True) for k in range(steps)
            ]
            layers.append(nn.Sequential(*chain))
    return nn.ModuleList(layers)  # type: ignore[arg-type]  # None: the branch passes through unchanged


class UpsampleConcat(nn.Module):
    """HRNetV2's representation: every branch resized to the highest resolution (bilinear, align_corners False, as
    MMPose's ``FeatureMapProcessor`` and 0.x ``resize_concat``) and concatenated along the channels.

    Input: a list of (N, C_b, H / 2^b, W / 2^b) tensors, branch b = 0 the highest resolution. Output:
    (N, ΣC_b, H, W). Branch 0 is passed as it is: resizing a map to its own size returns it unchanged.
    """

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        # Scale factors rather than branch 0's size: equal here (every branch is an exact power-of-2 smaller, see
        # ModelConfig's input-size check) and constant in an exported graph.
        up = [
            F.interpolate(x, scale_factor=2**b, mode="bilinear", align_corners=False)
            for b, x in enumerate(xs[1:], start=1)
        ]
        return torch.cat([xs[0], *up], dim=1)


class HRNet(nn.Module):
    """HRNet pose network: (N, 3, H, W) normalised RGB → (N, K, H / 4, W / 4) heatmaps.

    ``cfg.stages`` gives the paper's knobs per stage; stage 1 is the official ``layer1``. ``cfg.head`` "simple"
    predicts from the highest-resolution branch; "hrnetv2" from all four (module docstring).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.variant != "hrnet":
            raise ValueError(f"HRNet builds variant 'hrnet', got {cfg.variant!r}; use build_model()")
        self.conv1 = conv3x3(3, STEM_CHANNELS, stride=2)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.conv2 = conv3x3(STEM_CHANNELS, STEM_CHANNELS, stride=2)
        self.bn2 = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)

        v2 = cfg.head == "hrnetv2"
        # HRNetV2 keeps every branch of the last stage for its head, and its fusions upsample bilinearly (MMPose's
        # upsample=dict(mode='bilinear', align_corners=False) in each of its HRNetV2 configs).
        upsample = "bilinear" if v2 else "nearest"
        stage1 = cfg.stages[0]
        self.layer1 = make_branch(stage1.block, STEM_CHANNELS, stage1.num_channels[0], stage1.num_blocks[0])
        widths = [stage1.num_channels[0] * BLOCKS[stage1.block].expansion]
        # Named attributes (not a list) because the official checkpoints name them transition1..3, stage2..4.
        for s, stage in enumerate(cfg.stages[1:], start=2):
            new_widths = [c * BLOCKS[stage.block].expansion for c in stage.num_channels]
            # As official, a transition already produces the expanded widths the stage's blocks output.
            setattr(self, f"transition{s - 1}", make_transition(widths, new_widths))
            setattr(self, f"stage{s}", make_stage(stage, new_widths, s < 4 or v2, upsample))
            widths = new_widths
        self.neck: UpsampleConcat | None = None
        self.conv_layers: nn.Sequential | None = None
        head_width = widths[0]
        if v2:
            head_width = sum(widths)
            self.neck = UpsampleConcat()
            self.conv_layers = nn.Sequential(  # MMPose's conv_out_channels=(ΣC,), conv_kernel_sizes=(1,)
                nn.Conv2d(head_width, head_width, kernel_size=1),
                nn.BatchNorm2d(head_width),
                nn.ReLU(inplace=True),
            )
        self.final_layer = nn.Conv2d(
            head_width, cfg.num_keypoints, cfg.final_conv_kernel, padding=cfg.final_conv_kernel // 2
        )
        self.init_weights()

    def init_weights(self) -> None:
        """The official initialisation: conv weights N(0, 0.001²), conv biases 0, BN weight 1 and bias 0."""
        init_conv_bn(self, std=0.001)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Multi-resolution features of the last stage (only the highest resolution for the simple head)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in (2, 3, 4):
            transition: nn.ModuleList = getattr(self, f"transition{s - 1}")
            inputs = []
            for i, layer in enumerate(transition):
                # Existing branches continue; a new branch starts from the lowest resolution so far.
                source = xs[i] if i < len(xs) else xs[-1]
                inputs.append(source if layer is None else layer(source))
            xs = getattr(self, f"stage{s}")(inputs)
        return xs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = self.forward_features(x)
        if self.neck is None or self.conv_layers is None:
            return self.final_layer(xs[0])
        return self.final_layer(self.conv_layers(self.neck(xs)))


def build_model(cfg: ModelConfig) -> nn.Module:
    """The pose network ``cfg.variant`` names: ``HRNet`` (official), ``TFPortHRNet`` (the TF port) or
    ``LiteHRNet`` (MMPose's)."""
    if cfg.num_keypoints == 0:
        raise ConfigError(
            "model.num_keypoints is 0, the count of data.keypoint_set from_annotations, which only training reads "
            "from the annotation file: give it (--set model.num_keypoints=K) or name the keypoint set"
        )
    if cfg.variant == "tf_port":
        from hrnet.tf_port.model import TFPortHRNet

        return TFPortHRNet(cfg)
    if cfg.variant == "litehrnet":
        return LiteHRNet(cfg)
    return HRNet(cfg)
