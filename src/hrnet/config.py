"""The typed experiment config: frozen dataclasses whose defaults cite the recipe they come from, loaded from YAML
and ``--set a.b=c`` overrides.

One tree: ``ExperimentConfig(model, data, train, test, runtime)``. Every default is the official recipe for COCO
W32 256×192 (leoxiaobin/deep-high-resolution-net.pytorch, ``experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml``)
and says why beside it. The loader reads YAML safely, checks every key and type with cattrs (an unknown key is
named by its dotted path and the nearest valid key) and the invariants in each class, and never executes anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import itertools
import re
import reprlib
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hrnet.errors import ConfigError, DataError
from hrnet.hub.registry import REGISTRY, config_for_weights
from hrnet.io.files import parse_yaml
from hrnet.io.inputs import decimal_id
from hrnet.keypoints import FROM_ANNOTATIONS, MAX_KEYPOINTS, load_keypoint_set

# The choices that other modules act on too; they read them with typing.get_args.
AnnotationFormat = Literal["coco", "aic_raw", "mpii"]  # hrnet.data.sources.FORMATS has one entry each
Target = Literal["gaussian", "udp", "tf_port"]  # hrnet.codec.HeatmapCodec kinds
DecodeMethod = Literal["argmax", "dark", "tf_port"]
Pixels = Literal["imagenet", "unit"]  # how crop pixels become network input (hrnet.crop.Crop)
SizeMismatch = Literal["error", "warn"]  # hrnet.data.dataset.TopDownDataset: a file of another size than declared
Loss = Literal["mse", "ohkm", "sum_squared"]  # hrnet.engine.loss.HeatmapLoss kinds
TrainPrecision = Literal["fp32", "bf16"]  # hrnet.engine.autocast.training_autocast; inference's: runtime.backends
# Keys that moved to another section: a config that still uses the old place gets told where to.
MOVED_KEYS = {
    "train.device": "runtime.device",
    "train.amp": "runtime.amp",
    "train.channels_last": "runtime.channels_last",
    "data.num_workers": "runtime.num_workers",
    "model.pretrained": "train.pretrained",
}
MAX_WEIGHTS = 2_000_000_000  # 30× HRNet-W48: a larger network is a typo, refused before it is built
MAX_SEED = 2**32 - 1  # the largest seed every generator a run seeds accepts
# Bounds that keep every crop finite and non-empty: a region is the box × box_padding × (1 ± scale_factor), and a
# heatmap Gaussian needs σ ≥ 1/6 for DARK's blur kernel (2⌊3σ + 0.5⌋ - 1 ≥ 1) and a window the heatmap can hold.
BOX_PADDING_RANGE = (0.1, 10.0)
SIGMA_RANGE = (0.25, 100.0)
MAX_DARK_BLUR_KERNEL = 599  # test.dark_blur_kernel: as wide as the σ rule makes it at the largest σ
MAX_ROTATION_FACTOR = 180.0  # degrees: rotations are drawn within ±2× this, a full turn either way
MAX_SIGMA_OKS = 10.0  # COCO's largest is 0.107; far above any, a typo rather than a choice
MAX_CONFIG_BYTES = 1 << 20  # a config file is a few KB
MAX_RECORDED_CONFIG = 64 * 1024  # characters: hrnet records ~3 KB in a weights file, which may come from anyone


@dataclass(frozen=True)
class StageConfig:
    """One HRNet stage, in the paper's knobs (Sun et al. 2019, Sec. 3 "Instantiation")."""

    num_modules: int  # how many exchange modules (multi-resolution groups + fusion) the stage repeats
    num_branches: int  # parallel resolutions in this stage: 1, 2, 3, 4 for stages 1-4
    block: Literal["basic", "bottleneck"]  # residual unit in each branch: two 3×3, or 1×1-3×3-1×1 with ×4 out
    num_blocks: tuple[int, ...]  # residual units per branch in one module (4 in every official stage)
    num_channels: tuple[int, ...]  # width per branch (bottleneck: inner width, output is 4×)

    def __post_init__(self) -> None:
        if self.num_modules < 1 or self.num_branches < 1:
            raise ConfigError("num_modules and num_branches must be ≥ 1")
        for name in ("num_blocks", "num_channels"):
            values = getattr(self, name)
            if len(values) != self.num_branches:
                raise ConfigError(
                    f"{name} has {len(values)} entries but num_branches is {self.num_branches}: give one per branch"
                )
            if any(v < 1 for v in values):
                raise ConfigError(f"{name} must be positive, got {short_repr(list(values))}")


def hrnet_stages(width: int) -> tuple[StageConfig, ...]:
    """The four stages of HRNet-W<width> as the official pose configs give them (4 blocks a branch,
    1/1/4/3 modules, branch widths C, 2C, 4C, 8C); stage 1 is the fixed 4-bottleneck ``layer1`` (64 inner)."""
    c = (width, 2 * width, 4 * width, 8 * width)
    return (
        StageConfig(num_modules=1, num_branches=1, block="bottleneck", num_blocks=(4,), num_channels=(64,)),
        StageConfig(num_modules=1, num_branches=2, block="basic", num_blocks=(4, 4), num_channels=c[:2]),
        StageConfig(num_modules=4, num_branches=3, block="basic", num_blocks=(4, 4, 4), num_channels=c[:3]),
        StageConfig(num_modules=3, num_branches=4, block="basic", num_blocks=(4, 4, 4, 4), num_channels=c),
    )


@dataclass(frozen=True)
class LiteHRNetConfig:
    """Lite-HRNet's knobs (Yu et al., "Lite-HRNet: A Lightweight High-Resolution Network", CVPR 2021) as MMPose's
    ``LiteHRNet`` backbone takes them (``extra.stem`` and ``extra.stages_spec``, one entry per stage); the defaults
    are Lite-HRNet-18 (open-mmlab/mmpose v1.3.2, configs/body_2d_keypoint/topdown_heatmap/coco/
    td-hm_litehrnet-18_8xb64-210e_coco-256x192.py)."""

    stem_channels: int = 32  # the stem's stride-2 3×3 conv
    stem_out_channels: int = 32  # what the stem's two shuffle branches give together (¼ resolution)
    stem_expand_ratio: float = 1.0  # inner width of the stem's second branch, × stem_channels
    num_modules: tuple[int, ...] = (2, 4, 2)  # Lite-HRNet-30: (3, 8, 3)
    num_blocks: tuple[int, ...] = (2, 2, 2)  # weighting (or shuffle) blocks per module
    # Widths per branch of each stage; stage s has one branch more than the stem or the stage before.
    num_channels: tuple[tuple[int, ...], ...] = ((40, 80), (40, 80, 160), (40, 80, 160, 320))
    reduce_ratios: tuple[int, ...] = (8, 8, 8)  # cross-resolution weighting: channel reduction of its 1×1 convs
    # "lite": conditional channel weighting blocks (the paper's network); "naive": ShuffleNet V2 blocks per branch
    # (the paper's "Naive Lite-HRNet").
    module_type: tuple[Literal["lite", "naive"], ...] = ("lite", "lite", "lite")
    with_fuse: tuple[bool, ...] = (True, True, True)  # each module ends with a multi-resolution fusion
    with_head: bool = True  # MMPose's IterativeHead: lowest resolution upwards, summed into the highest

    def __post_init__(self) -> None:
        stages = len(self.num_modules)
        per_stage = ("num_blocks", "num_channels", "reduce_ratios", "module_type", "with_fuse")
        if stages < 1 or any(len(getattr(self, name)) != stages for name in per_stage):
            raise ConfigError(
                f"litehrnet: num_modules has {stages} entries (one per stage); {', '.join(per_stage)} need as many"
            )
        branches = [len(c) for c in self.num_channels]
        if branches[0] < 2 or any(b - a != 1 for a, b in itertools.pairwise(branches)):
            raise ConfigError(
                f"litehrnet.num_channels: stage 1 needs ≥ 2 branches and each later stage one more, got "
                f"{short_repr([list(c) for c in self.num_channels])}"
            )
        counts = (*self.num_modules, *self.num_blocks, *self.reduce_ratios)
        if min(counts) < 1 or round(self.stem_channels * self.stem_expand_ratio) < 1:
            raise ConfigError(
                "litehrnet: num_modules, num_blocks, reduce_ratios and stem_expand_ratio must be positive"
            )
        # Every block splits its input in two halves and shuffles them back: widths must be even.
        widths = (self.stem_channels, self.stem_out_channels, *(c for stage in self.num_channels for c in stage))
        if any(w < 2 or w % 2 for w in widths):
            raise ConfigError(f"litehrnet: stem and branch widths must be even and ≥ 2, got {short_repr(widths)}")
        for channels, ratio, kind in zip(self.num_channels, self.reduce_ratios, self.module_type, strict=True):
            # The weighting's 1×1 convs reduce half of each width by 4 (spatial) and the halves' sum by the ratio.
            if kind == "lite" and (min(channels) < 8 or sum(channels) // 2 < ratio):
                raise ConfigError(
                    f"litehrnet: lite stages need widths ≥ 8 and half their sum ≥ reduce_ratio, got widths "
                    f"{list(channels)} with ratio {ratio}"
                )
        if self.stem_out_channels < self.stem_channels:  # the stem's first branch would get no channels
            raise ConfigError("litehrnet: stem_out_channels must be at least stem_channels")

    @property
    def num_branches(self) -> int:
        """Branches of the last stage (4 for Lite-HRNet-18 and -30)."""
        return len(self.num_channels[-1])

    def weights_estimate(self) -> int:
        """About how many weights the network holds: the fusions' 1×1 convs, between every two branches."""
        return sum(n * sum(c) ** 2 for n, c in zip(self.num_modules, self.num_channels, strict=True))


LITEHRNET_18 = LiteHRNetConfig()
LITEHRNET_30 = LiteHRNetConfig(num_modules=(3, 8, 3))  # td-hm_litehrnet-30_8xb64-210e_coco-256x192.py


@dataclass(frozen=True)
class ModelConfig:
    """The pose network. ``variant="hrnet"`` is the official PyTorch network (stem, ¼-resolution heatmaps);
    ``"tf_port"`` is the original TensorFlow port (no stem, leaky ReLU, full-resolution normalised heatmaps);
    ``"litehrnet"`` is MMPose's Lite-HRNet (¼-resolution heatmaps), described by ``litehrnet``, not ``stages``."""

    variant: Literal["hrnet", "tf_port", "litehrnet"] = "hrnet"  # "hrnet" loads the official checkpoints
    # Heatmaps predicted: the keypoint set's count (COCO-17 by default). A config that names data.keypoint_set and not
    # this follows the set; 0 means "the annotations' count", known once training reads them (from_annotations).
    num_keypoints: int = 17
    input_size: tuple[int, int] = (256, 192)  # (height, width) of the crop, official COCO W32 recipe
    stages: tuple[StageConfig, ...] = field(default_factory=lambda: hrnet_stages(32))  # HRNet-W32
    final_conv_kernel: int = 1  # official FINAL_CONV_KERNEL: the 1×1 heatmap head
    # "simple": heatmaps from the highest-resolution branch alone (the pose paper's). "hrnetv2": Sun et al.'s
    # HRNetV2 ("High-Resolution Representations for Labeling Pixels and Regions", 2019) as MMPose's face and hand
    # models build it: the last stage keeps all four branches, its fusions upsample bilinearly, and the head
    # concatenates the branches at the highest resolution, then a 1×1 conv-BN-ReLU and the final conv.
    head: Literal["simple", "hrnetv2"] = "simple"
    # Test-time statistics: "batch" (each batch's own, tf_port only) reproduces the TF port's test.py, whose released
    # moving statistics are 0/1, at the price of a person's keypoints depending on the rest of the batch.
    batch_norm: Literal["running", "batch"] = "running"
    litehrnet: LiteHRNetConfig | None = None  # variant litehrnet only: its stages (presets litehrnet18, litehrnet30)

    def __post_init__(self) -> None:
        if (self.litehrnet is not None) != (self.variant == "litehrnet"):
            raise ConfigError(
                "model.litehrnet describes variant litehrnet's network: give both (e.g. the preset litehrnet18) or "
                f"neither (variant is {self.variant!r})"
            )
        if self.batch_norm == "batch" and self.variant != "tf_port":
            raise ConfigError(
                "batch_norm 'batch' reproduces the TF port's test-time BatchNorm and is only for variant tf_port; "
                "use batch_norm: running"
            )
        if not 0 <= self.num_keypoints <= MAX_KEYPOINTS:
            raise ConfigError(
                f"num_keypoints must be within [0, {MAX_KEYPOINTS}] (0: the data set's), got {self.num_keypoints}"
            )
        if len(self.stages) != 4:
            raise ConfigError(f"HRNet has 4 stages, got {len(self.stages)}")
        branches = [s.num_branches for s in self.stages]
        if branches[0] != 1 or any(b - a != 1 for a, b in itertools.pairwise(branches)):
            raise ConfigError(f"stages must have 1, 2, 3, 4 branches (one new resolution a stage), got {branches}")
        if self.stages[0].num_modules != 1:
            raise ConfigError("stage 1 is a single stack of residual units: its num_modules must be 1")
        # A residual unit of width c holds about 18·c² weights (two 3×3 convs; a bottleneck's 4c² + 9c² + 4c²).
        units = ((s.num_modules * b, c) for s in self.stages for b, c in zip(s.num_blocks, s.num_channels, strict=True))
        weights = sum(18 * n * c * c for n, c in units)
        if self.litehrnet is not None:
            weights = self.litehrnet.weights_estimate()
        if weights > MAX_WEIGHTS:
            raise ConfigError(
                f"the stages would hold about 10^{len(str(weights)) - 1} weights, over the {MAX_WEIGHTS:,} a network "
                "may have here (HRNet-W48: 6.4·10^7): check num_modules, num_blocks and num_channels"
            )
        if self.head == "hrnetv2" and self.variant != "hrnet":
            raise ConfigError(f"head 'hrnetv2' is built on variant 'hrnet', not {self.variant!r}; use head: simple")
        if self.final_conv_kernel not in (1, 3):
            raise ConfigError(f"final_conv_kernel must be 1 or 3 (official choices), got {self.final_conv_kernel}")
        if any(s < self.input_step or s % self.input_step for s in self.input_size):
            raise ConfigError(
                f"input_size must be multiples of {self.input_step} for variant {self.variant}, got {self.input_size}"
            )

    @property
    def input_step(self) -> int:
        """What input sizes must be multiples of: the lowest-resolution branch's stride (1/32 of the input for
        HRNet's four branches behind a stride-4 stem, 1/8 in the TF port, which has no stem)."""
        if self.litehrnet is not None:
            return 4 * 2 ** (self.litehrnet.num_branches - 1)
        return 32 if self.variant == "hrnet" else 8

    @property
    def heatmap_stride(self) -> int:
        """Input pixels per heatmap pixel: 4 behind a stride-4 stem (HRNet, Lite-HRNet), 1 for the TF port."""
        return 1 if self.variant == "tf_port" else 4

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(height, width) of the predicted heatmaps."""
        h, w = self.input_size
        return h // self.heatmap_stride, w // self.heatmap_stride


MODEL_PRESETS: dict[str, ModelConfig] = {
    "w18": ModelConfig(stages=hrnet_stages(18)),  # HRNet-W18: branch widths 18/36/72/144
    "w32": ModelConfig(stages=hrnet_stages(32)),  # HRNet-W32, the official COCO 256×192 network
    "w48": ModelConfig(stages=hrnet_stages(48)),  # HRNet-W48
    # The original TensorFlow port, trained on AI Challenger's 14 keypoints: 3×3 head, heatmaps at input size.
    "tf_w32": ModelConfig(variant="tf_port", num_keypoints=14, final_conv_kernel=3, stages=hrnet_stages(32)),
    # MMPose's Lite-HRNet-18 and -30 with its HeatmapHead (a 1×1 conv, no deconvolution), COCO 256×192.
    "litehrnet18": ModelConfig(variant="litehrnet", litehrnet=LITEHRNET_18),
    "litehrnet30": ModelConfig(variant="litehrnet", litehrnet=LITEHRNET_30),
}


def model_preset(name: str) -> ModelConfig:
    """A named model preset (``w18``, ``w32``, ``w48``, ``tf_w32``, ``litehrnet18``, ``litehrnet30``); vary it with
    ``dataclasses.replace``."""
    try:
        return MODEL_PRESETS[name]
    except KeyError:
        near = difflib.get_close_matches(name, list(MODEL_PRESETS), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"unknown model preset {short_repr(name)}{hint} (presets: {sorted(MODEL_PRESETS)})") from None


@dataclass(frozen=True)
class DataConfig:
    """Where the annotations and images are, and how a training sample is made from a record."""

    format: AnnotationFormat = "coco"  # "coco" (any COCO-format keypoint file), "aic_raw" (AI Challenger JSON), "mpii"
    # A shipped set (coco17, coco_wholebody133, onehand10k21, 300w68, ap10k17, ...: hrnet.keypoints), a keypoint set
    # .yaml file (docs/own_data.md), or "from_annotations": made from the annotation file's keypoint category.
    keypoint_set: str = "coco17"
    # The COCO-format category to read; 0: every category that lists the same keypoint names (AP-10K's species).
    category_id: int = 0
    sigmas: tuple[float, ...] = ()  # OKS sigmas for "from_annotations"; () = documented default per keypoint
    root: str = "data/coco"  # relative paths below are under this folder
    train_annotations: str = "annotations/person_keypoints_train2017.json"
    train_images: str = "images/train2017"
    val_annotations: str = "annotations/person_keypoints_val2017.json"
    val_images: str = "images/val2017"
    # "affine": the official crop (the box enlarged by box_padding at the input's aspect ratio, affine warp);
    # "stretch": the TF port's (the exact box stretched to the input, no margin, aspect not kept; no augmentation).
    crop: Literal["affine", "stretch"] = "affine"
    box_padding: float = 1.25  # official (affine crop): the box enlarged by 1.25 at the input's aspect ratio
    pixels: Pixels = "imagenet"  # network input: "imagenet" mean/std (official) or "unit" (uint8 / 255, the TF port)
    flip: bool = True  # official FLIP: horizontal flip with the keypoint set's flip pairs ...
    flip_prob: float = 0.5  # ... half of the time
    scale_factor: float = 0.35  # official SCALE_FACTOR: scale ~ clip(N(1, sf), 1 - sf, 1 + sf)
    rotation_factor: float = 45.0  # official ROT_FACTOR: degrees ~ clip(N(0, rf), -2 rf, 2 rf) ...
    rotation_prob: float = 0.6  # ... applied 60 % of the time
    half_body_prob: float = 0.3  # official PROB_HALF_BODY; negative disables half-body crops
    half_body_min_keypoints: int = 8  # official NUM_JOINTS_HALF_BODY: needs more labelled points than this
    target: Target = "gaussian"  # heatmap target: "gaussian" (official), "udp" (Huang et al. 2020), "tf_port"
    sigma: float = 2.0  # official SIGMA: Gaussian std in heatmap pixels
    skip_bad_images: bool = True  # in training, skip and count unreadable images; False makes them an error
    # An image whose file is not the width × height its annotation gives (boxes were clipped to the declared size):
    # "error" stops with the image named; "warn" logs it once and crops from the file's own pixels.
    size_mismatch: SizeMismatch = "error"

    def __post_init__(self) -> None:
        augmented = self.flip or self.scale_factor or self.rotation_factor or self.half_body_prob >= 0
        if self.crop == "stretch" and augmented:
            raise ConfigError(
                "crop 'stretch' (the TF port's) has no augmentation: set flip false, scale_factor 0, rotation_factor 0 "
                "and half_body_prob -1"
            )
        if self.crop == "stretch" and self.target == "udp":
            raise ConfigError("UDP targets need the UDP affine crop, not crop 'stretch'")
        _check_range("box_padding", self.box_padding, BOX_PADDING_RANGE, "the crop is the box enlarged by it")
        _check_range("sigma", self.sigma, SIGMA_RANGE, "the heatmap Gaussian's std in heatmap pixels")
        if not 0.0 <= self.scale_factor < 1.0:
            raise ConfigError(
                f"scale_factor must be in [0, 1): crops are scaled by 1 ± it, which must stay positive; got "
                f"{self.scale_factor}"
            )
        _check_range("rotation_factor", self.rotation_factor, (0.0, MAX_ROTATION_FACTOR), "degrees")
        if not 0.0 <= self.flip_prob <= 1.0 or not 0.0 <= self.rotation_prob <= 1.0:
            raise ConfigError("flip_prob and rotation_prob are probabilities in [0, 1]")
        if not all(0.0 < s <= MAX_SIGMA_OKS for s in self.sigmas):
            raise ConfigError(
                f"sigmas are OKS sigmas, each in (0, {MAX_SIGMA_OKS:g}], got {short_repr(list(self.sigmas))}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe and the run's bookkeeping."""

    name: str = "coco_w32_256x192"  # the run folder is <out_dir>/<name>
    out_dir: str = "runs"
    epochs: int = 210  # official END_EPOCH
    batch_size: int = 32  # per process (official BATCH_SIZE_PER_GPU)
    optimizer: Literal["adam", "sgd"] = "adam"  # official OPTIMIZER; "sgd" uses momentum / nesterov below
    lr: float = 1e-3  # official LR
    lr_steps: tuple[int, ...] = (170, 200)  # official LR_STEP: MultiStepLR milestones (epochs)
    lr_factor: float = 0.1  # official LR_FACTOR
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0  # official Adam ignores WD; applied to sgd (official WD 1e-4) when set
    use_target_weight: bool = True  # official LOSS.USE_TARGET_WEIGHT: unlabelled joints add no loss
    use_keypoint_weights: bool = False  # official USE_DIFFERENT_JOINTS_WEIGHT (the set's per-joint weights)
    # "mse": official JointsMSELoss; "ohkm": its online hard keypoint mining (JointsOHKMMSELoss, the top-k keypoints
    # a sample); "sum_squared": the TF port's sum over the batch, for its sum-normalised heatmaps.
    loss: Loss = "mse"
    ohkm_topk: int = 8  # keypoints kept per sample by "ohkm" (official TOPK)
    pretrained: str = ""  # weights to start from (ours or an official/MMPose .pth, head skipped); "" = random init
    grad_clip: float = 0.0  # max gradient norm; 0 disables clipping
    sync_bn: bool = False  # SyncBatchNorm across processes (DDP only)
    seed: int = 0  # every random draw (init, shuffling, augmentation) derives from this
    checkpoint_every: int = 0  # also save a resumable checkpoint every N steps mid-epoch; 0 = epoch end only
    val_every: int = 1  # validate every N epochs (and always after the last)
    max_steps_per_epoch: int = 0  # cap the steps of an epoch (quick runs); 0 = the whole data set
    # "bf16" autocasts where the hardware has bfloat16 (fp32 weights and loss; fp32 with a message elsewhere); on
    # CUDA runtime.amp decides mixed precision either way (hrnet.engine.autocast.training_autocast).
    precision: TrainPrecision = "fp32"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("epochs, batch_size and lr must be positive")
        if list(self.lr_steps) != sorted(self.lr_steps):
            raise ConfigError(f"lr_steps must be increasing, got {short_repr(list(self.lr_steps))}")
        if self.grad_clip < 0 or self.checkpoint_every < 0 or self.max_steps_per_epoch < 0:
            raise ConfigError("grad_clip, checkpoint_every and max_steps_per_epoch must be ≥ 0")
        if self.val_every < 1 or self.ohkm_topk < 1:
            raise ConfigError("val_every and ohkm_topk must be ≥ 1")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0 or not 0 < self.lr_factor <= 1:
            raise ConfigError(
                f"momentum must be in [0, 1), weight_decay ≥ 0 and lr_factor in (0, 1]; got {self.momentum}, "
                f"{self.weight_decay} and {self.lr_factor}"
            )
        if not self.name or self.name in (".", "..") or any(c in self.name for c in "/\\"):
            raise ConfigError(
                f"train.name must be a folder name inside train.out_dir (no '/', '\\', '.' or '..'), got "
                f"{short_repr(self.name)}"
            )
        if not 0 <= self.seed <= MAX_SEED:  # NumPy's legacy seeding and DataLoader workers take 32 bits
            raise ConfigError(f"seed must be in [0, 2**32 - 1], got {self.seed}")


@dataclass(frozen=True)
class TestConfig:
    """Evaluation and inference: flip test, decoding, person boxes and OKS-NMS, as the official test recipe."""

    batch_size: int = 32  # persons per forward pass
    flip_test: bool = True  # official FLIP_TEST: average with the flipped image's heatmaps ...
    shift_heatmap: bool = True  # ... shifted one pixel right, as official SHIFT_HEATMAP
    # "argmax" (+ quarter-pixel offset, official POST_PROCESS), "dark" (Zhang 2020) or "tf_port" (the port's
    # integer argmax; a peak not above detection_threshold is an undetected keypoint at the crop's corner)
    decode: DecodeMethod = "argmax"
    # DARK's blur in heatmap pixels (odd); 0 = 2·round(3σ) − 1 of data.sigma, as official DARK and MMPose 0.x's
    # modulate_kernel; MMPose 1.x's decoders blur 11 at any σ (their blur_kernel_size)
    dark_blur_kernel: int = 0
    detection_threshold: float = 0.001  # "tf_port" decoding only: the port's test.py threshold
    post_process: bool = True  # official POST_PROCESS: the quarter-pixel offset towards the higher neighbour
    boxes: str = ""  # COCO detection-results JSON of person boxes; "" = ground-truth boxes (official USE_GT_BBOX)
    box_score_threshold: float = 0.0  # official IMAGE_THRE: detections below it are dropped
    in_vis_threshold: float = 0.2  # official IN_VIS_THRE: keypoints above it count in rescoring
    oks_threshold: float = 0.9  # official OKS_THRE for OKS-NMS
    soft_nms: bool = False  # official SOFT_NMS
    pck_threshold: float = 0.5  # PCKh threshold (fraction of head size) for MPII
    # "tf_port": also the TF port's AP50/AP75 (per-keypoint σ from the set's own errors, no scale term; not COCO's)
    metric: Literal["", "tf_port"] = ""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {self.batch_size}")
        kernel = self.dark_blur_kernel
        if kernel != 0 and not (kernel % 2 == 1 and 1 <= kernel <= MAX_DARK_BLUR_KERNEL):
            raise ConfigError(
                f"dark_blur_kernel must be 0 (2·round(3σ) − 1 of data.sigma) or an odd size from 1 to "
                f"{MAX_DARK_BLUR_KERNEL} heatmap pixels, got {kernel}"
            )
        # Each is a fraction: a value outside silently changes the metric (oks_threshold -1 keeps one person).
        for name in ("oks_threshold", "pck_threshold"):
            _check_range(name, getattr(self, name), (1e-6, 1.0), "a fraction above 0")
        for name in ("in_vis_threshold", "box_score_threshold", "detection_threshold"):
            _check_range(name, getattr(self, name), (0.0, 1.0), "a score")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how networks run, for training, evaluation and prediction alike (not part of what defines a run:
    a run resumes on another device)."""

    device: str = "auto"  # "auto" = CUDA when available (LOCAL_RANK picks the GPU), else CPU; or "cpu", "cuda:1"
    amp: bool = True  # mixed precision (bf16 where supported, else fp16 with loss scaling), on CUDA only
    # NHWC memory format in training: faster convolutions on CUDA and on the CPU (oneDNN; docs/training.md)
    channels_last: bool = True
    num_workers: int = 4  # DataLoader worker processes per process, for training and evaluation

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be ≥ 0, got {self.num_workers}")
        if not self.device.strip():
            raise ConfigError('device must be "auto", "cpu", "cuda" or "cuda:N", got an empty string')


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole experiment: what `hrnet train`, `hrnet eval` and `hrnet predict` read."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        if self.data.target == "tf_port" and self.model.variant != "tf_port":
            raise ConfigError("data.target 'tf_port' makes full-resolution targets: it needs model.variant tf_port")


def _check_range(name: str, value: float, bounds: tuple[float, float], meaning: str) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ConfigError(f"{name} must be within [{low:g}, {high:g}] ({meaning}), got {value:g}")


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 160
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 8
_SHORT.maxlevel = 3


def short_repr(value: Any, limit: int = 200) -> str:
    """``repr(value)`` in at most ``limit`` characters (long strings, lists and numbers elided with ``...``), for
    messages that quote what a user gave; costs the same for a huge value as for a small one."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------- loading


def _expect(kinds: tuple[type, ...], words: str, build: Callable[[Any, Any], Any] = lambda v, _: v) -> Any:
    """A cattrs hook: a value of exactly one of ``kinds`` (a bool is no integer) goes on to ``build``."""

    def structure(value: Any, tp: Any) -> Any:
        if type(value) not in kinds:
            raise ConfigError(f"expected {words}, got {short_repr(value)}")
        return build(value, tp)

    return structure


def _number(value: Any, _: Any) -> float:
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
        with contextlib.suppress(ValueError):
            value = float(value)
    if type(value) not in (int, float):
        raise ConfigError(f"expected a number, got {short_repr(value)}")
    if not abs(value) <= sys.float_info.max:  # .nan, .inf, integers past a float: no setting means anything with them
        raise ConfigError(f"expected a finite number, got {short_repr(value)}")
    return float(value)


def _choice(value: Any, choices: Any) -> Any:
    if value not in typing.get_args(choices):
        raise ConfigError(f"must be one of {list(typing.get_args(choices))}, got {short_repr(value)}")
    return value


def _tuple(tp: Any, converter: Any) -> Any:
    """A cattrs hook for a list of one type (every tuple a config has); ``tuple[int, int]`` also checks the count."""
    from cattrs.cols import homogenous_tuple_structure_factory

    args = typing.get_args(tp)
    items = homogenous_tuple_structure_factory(tuple[args[0], ...], converter)  # type: ignore[valid-type]

    def structure(value: list[Any], _: Any) -> tuple[Any, ...]:
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise ConfigError(f"expected {len(args)} values, got {len(value)}")
        return items(value, tp)

    return _expect((list, tuple), "a list", structure)


@functools.cache
def _converter() -> Any:
    """cattrs set up to check a config strictly; imported when a config is loaded, not by every command."""
    import cattrs
    from cattrs.gen import make_dict_structure_fn

    converter = cattrs.Converter(forbid_extra_keys=True)
    for kind, words in ((int, "an integer"), (bool, "true or false"), (str, "a string")):
        converter.register_structure_hook(kind, _expect((kind,), words))
    converter.register_structure_hook(float, _number)
    converter.register_structure_hook_func(lambda tp: typing.get_origin(tp) is Literal, _choice)
    converter.register_structure_hook_factory(lambda tp: typing.get_origin(tp) is tuple, _tuple)
    converter.register_structure_hook_factory(
        dataclasses.is_dataclass, lambda cls, c: _expect((dict,), "a mapping", make_dict_structure_fn(cls, c))
    )
    return converter


def _faults(err: BaseException, path: str) -> list[str]:
    """One message for each fault in cattrs' tree of exceptions, each naming its dotted path."""
    from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

    if isinstance(err, ClassValidationError | IterableValidationError):
        with_notes, without = err.group_exceptions()
        steps = [(sub, _join(path, getattr(note, "name", None) or note.index)) for sub, note in with_notes]
        return [fault for sub, at in [*steps, *((sub, path) for sub in without)] for fault in _faults(sub, at)]
    if isinstance(err, ForbiddenExtraKeysError):
        return [_unknown_key(path, str(key), err.cl) for key in sorted(err.extra_fields, key=str)]
    if isinstance(err, KeyError):  # cattrs' word for a missing key
        return [f"{path}: missing, and it has no default"]
    return [f"{path}: {err}" if path else str(err)]


def _join(path: str, step: object) -> str:
    return f"{path}.{step}" if path else str(step)


def _unknown_key(path: str, key: str, cls: Any) -> str:
    dotted = _join(path, key)
    if dotted in MOVED_KEYS:
        return f"config key {dotted!r} has moved: write it as {MOVED_KEYS[dotted]!r}"
    keys = sorted(f.name for f in dataclasses.fields(cls))
    near = difflib.get_close_matches(key, keys, n=1)
    hint = f"did you mean {_join(path, near[0])!r}?" if near else f"valid keys: {keys}"
    return f"unknown config key {short_repr(dotted)}; {hint}"


def to_dict(config: Any) -> Any:
    """Plain YAML/JSON-ready data (tuples become lists)."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, tuple | list):
        return [to_dict(v) for v in config]
    return config


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides to plain config data; values are parsed as YAML (``[1, 2]``, ``true``, ``1e-3``).

    A numeric path part indexes a list (``model.stages.1.num_channels=[8,16]``).
    """
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {short_repr(item)}: expected KEY=VALUE, e.g. --set train.lr=5e-4")
        value = parse_yaml(raw, f"--set {short_repr(item)}")
        parts = key.split(".")
        node: Any = data
        for i, part in enumerate(parts):
            at = ".".join(parts[:i]) or "config"
            step: Any = part
            if isinstance(node, list):
                step = decimal_id(part)
                if step is None or step >= len(node):
                    raise ConfigError(f"--set {short_repr(key)}: {at} has no item {short_repr(part)}")
            elif not isinstance(node, dict):
                raise ConfigError(f"--set {short_repr(key)}: {at} is a value, not a section")
            if i == len(parts) - 1:
                if isinstance(value, dict) and isinstance(node.get(step) if isinstance(node, dict) else None, dict):
                    _merge(node[step], value)  # --set 'train={epochs: 3}' changes epochs, not the whole section
                else:
                    node[step] = value
            else:
                node = node[step] if isinstance(node, list) else node.setdefault(step, {})
    return data


CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # the experiments that ship inside the package
# The parts that the model zoo's configs are built from (``zoo_config_data``): MMPose's recipe, and one file a data
# set saying where its files are and what it does differently. They are parts, not configs of their own.
ZOO_DIR = CONFIG_DIR / "zoo"
ZOO_RECIPE = ZOO_DIR / "_recipe.yaml"
# A model zoo config's name says what MMPose's checkpoint names say: <data set>/w<width>_<height>x<width>[_method].
ZOO_NAME = re.compile(r"(?P<data_set>[a-z0-9][a-z0-9_]*)/(?P<preset>w[0-9]+)_(?P<height>[0-9]+)x(?P<width>[0-9]+)"
                      r"(?:_(?P<decoding>dark|udp))?")  # fmt: skip
# The test settings of MMPose's plain, DARK and UDP configs, by decoding: the target (whose crop geometry the test
# crop follows), how heatmaps are read, and the flip test's one-pixel shift (UDP's flipped maps line up without it).
ZOO_DECODINGS: dict[str, dict[str, dict[str, Any]]] = {
    "argmax": {"data": {"target": "gaussian"}, "test": {"decode": "argmax", "shift_heatmap": True}},
    "dark": {"data": {"target": "gaussian"}, "test": {"decode": "dark", "shift_heatmap": True}},
    "udp": {"data": {"target": "udp"}, "test": {"decode": "dark", "shift_heatmap": False}},
}
# What a zoo config's name decides, so that a data set's file must not say it (data.sigma it may fix).
_NAMED_KEYS = {"model": None, "data": {"target"}, "test": {"decode", "shift_heatmap"}, "train": {"name"}}


def find_config(name: str | Path) -> Path:
    """An experiment YAML file by its path, or by the name of one that ships with the package: ``coco/w32_256x192``,
    ``coco/w32_256x192.yaml`` or ``configs/coco/w32_256x192.yaml`` (as the README writes it, from any folder).
    A name that is neither comes back as a path (reading it then reports it missing); the model zoo's parts are
    found by their path only."""
    path = Path(name)
    if path.is_file() or path.is_absolute() or not path.name:  # "." or "..": a folder, never a config's name
        return path
    relative = Path(*path.parts[1:]) if path.parts[:1] == ("configs",) and len(path.parts) > 1 else path
    for candidate in (relative, relative.with_name(relative.name + ".yaml")):
        found = CONFIG_DIR / candidate
        if found.is_file() and ZOO_DIR not in found.parents:
            return found
    return path


def shipped_configs() -> list[str]:
    """The names of the experiment files that ship with the package (``coco/w32_256x192``, ...); the model zoo's
    configs are built by name (``zoo_data_sets``)."""
    files = (p for p in CONFIG_DIR.rglob("*.yaml") if ZOO_DIR not in p.parents)
    return sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in files)


def zoo_data_sets() -> list[str]:
    """The data sets of the model zoo's configs (``ap10k``, ``coco_wholebody``, ...: ``ZOO_DIR``)."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml") if p != ZOO_RECIPE)


def _zoo_name(name: str) -> re.Match[str] | None:
    """``name`` as a model zoo config's name whose data set has a file, else None."""
    match = ZOO_NAME.fullmatch(name)
    return match if match is not None and (ZOO_DIR / f"{match['data_set']}.yaml").is_file() else None


def zoo_config_data(name: str) -> tuple[dict[str, Any], ModelConfig] | None:
    """The config a model zoo name gives (``ap10k/w32_256x256``, ``coco_wholebody/w48_384x288_dark``: MMPose's
    HRNet-W<W> at H×W on a data set, decoded plainly, by DARK or by UDP), as YAML data over the defaults and its
    network; None when ``name`` is not such a name.

    Built in this order, each over the last: MMPose's recipe (``ZOO_RECIPE``), the data set's file
    (``ZOO_DIR/<data set>.yaml``), then what the name says: the model preset at that input size, σ 2 for heatmaps up
    to 64 pixels high and 3 above (MMPose's at 256×192 and 384×288) unless the data set's file fixes σ, and the
    decoding's test settings (``ZOO_DECODINGS``).
    """
    match = _zoo_name(name)
    if match is None:
        return None
    try:
        preset = model_preset(match["preset"])
        model = dataclasses.replace(preset, input_size=(int(match["height"]), int(match["width"])))
    except ConfigError as err:
        raise ConfigError(f"{name}: {err}") from None
    data: dict[str, Any] = {}
    for path in (ZOO_RECIPE, ZOO_DIR / f"{match['data_set']}.yaml"):
        loaded = parse_yaml(path.read_text(encoding="utf-8"), str(path))
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a model zoo part is a mapping of sections (data, train, test)")
        for section, keys in _NAMED_KEYS.items():
            given = loaded.get(section)
            clash = sorted(set(given) if keys is None else keys & set(given)) if isinstance(given, dict) else []
            if clash:
                raise ConfigError(
                    f"{path}: {section}.{clash[0]} is what a config's name says ({name}); leave it out of the file"
                )
        _merge(data, loaded)
    _merge(data, ZOO_DECODINGS[match["decoding"] or "argmax"])
    data["data"].setdefault("sigma", 2.0 if model.heatmap_size[0] <= 64 else 3.0)
    data.setdefault("train", {})["name"] = name.replace("/", "_")
    return data, model


def is_config_name(name: str) -> bool:
    """Whether ``name`` names a config by itself (``load_config`` reads it without a file of that name): a model
    preset, a shipped config, a model zoo name or a registered pose weights name (``hrnet weights list``)."""
    return (
        name in MODEL_PRESETS
        or find_config(name).resolve().is_relative_to(CONFIG_DIR)
        or _zoo_name(name) is not None
        or config_for_weights(name) is not None
    )


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), base: ExperimentConfig | None = None
) -> ExperimentConfig:
    """The experiment ``path`` names over ``base`` (default: the defaults; missing keys keep their values), with
    ``--set`` overrides applied, validated.

    ``path``: a YAML file (any path that exists, ``/dev/fd/63`` from a shell's ``<(...)`` too), the name of one
    that ships with the package (``find_config``), a model zoo name (``zoo_config_data``: ``ap10k/w32_256x256``), a
    registered pose weights name (its config: ``hrnet.hub.registry.config_for_weights``), a model preset (``w32``:
    ``base`` with that network), or None (``base`` itself). A bare word that is none of these is reported as an
    unknown model preset.
    """
    if path is None:
        return _build({}, "", overrides, base)
    name, path = str(path), find_config(path)
    if not path.exists():
        if (zoo := zoo_config_data(name)) is not None:
            loaded, model = zoo
            return _build(loaded, name, overrides, dataclasses.replace(base or ExperimentConfig(), model=model))
        if (registered := config_for_weights(name)) is not None:
            return load_config(registered, overrides, base)
    bare_word = "/" not in name and path.suffix.lower() not in (".yaml", ".yml") and not path.exists()
    if name in MODEL_PRESETS or bare_word:
        try:
            preset = model_preset(name)
        except ConfigError as err:
            poses = [entry.name for entry in REGISTRY.values() if entry.kind == "pose"]
            near = difflib.get_close_matches(name, poses, n=1, cutoff=0.9)
            raise ConfigError(f"{err}; or the registered weights name {near[0]!r}?" if near else str(err)) from None
        return _build({}, "", overrides, dataclasses.replace(base or ExperimentConfig(), model=preset))
    try:
        with path.open("rb") as f:  # read no more than a config can hold: the path may be /dev/zero
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: over {MAX_CONFIG_BYTES:,} bytes, far more than a config holds: not a config")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: cannot read the config (no such file, nor one that ships with the package: "
            f"{', '.join(shipped_configs())}; nor a model zoo name <data set>/w<W>_<H>x<W>[_dark|_udp] of "
            f"{', '.join(zoo_data_sets())}; nor a name from `hrnet weights list`)"
        ) from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at position {err.start}); save it as UTF-8"
        ) from None
    return _build(parse_yaml(text, str(path)), str(path), overrides, base)


def config_from_text(text: str, where: str, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The experiment that a weights file records as YAML ``text`` in its metadata (``where`` names the file in
    errors), with ``--set`` overrides.

    A weights file may come from anyone, so the text must be no longer than ``MAX_RECORDED_CONFIG`` and free of
    YAML aliases (hrnet writes none; each could multiply the values the loader checks)."""
    if len(text) > MAX_RECORDED_CONFIG:
        raise ConfigError(f"{where}: {len(text):,} characters, over the {MAX_RECORDED_CONFIG:,} of a config")
    data = parse_yaml(text, where, aliases=False)
    return _build(data, where, overrides)


def _build(loaded: Any, where: str, overrides: Sequence[str], base: ExperimentConfig | None = None) -> ExperimentConfig:
    """``base`` (or the defaults) with the YAML data ``loaded`` from ``where`` merged in, overridden, checked."""
    from cattrs.errors import BaseValidationError

    if not isinstance(loaded, dict | None):
        raise ConfigError(f"{where}: the top level must be a mapping of sections (model, data, train, test, runtime)")
    data: dict[str, Any] = to_dict(base or ExperimentConfig())
    _merge(data, loaded or {})
    apply_overrides(data, overrides)
    _follow_keypoint_set(data, loaded or {}, overrides, where)
    try:
        return _converter().structure(data, ExperimentConfig)
    except (BaseValidationError, ConfigError) as err:  # ExperimentConfig's own invariants raise ConfigError
        faults = _faults(err, "")
        message = "; ".join(faults[:3]) + (f" (and {len(faults) - 3} more)" if len(faults) > 3 else "")
        raise ConfigError(f"{where}: {message}" if where else message) from None


def _merge(base: dict[str, Any], new: Mapping[str, Any]) -> None:
    """Overlay ``new`` on ``base`` section by section; lists (like ``stages``) are replaced whole."""
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _follow_keypoint_set(data: dict[str, Any], loaded: dict[str, Any], overrides: Sequence[str], where: str) -> None:
    """Check the keypoint set that the file ``loaded`` or the ``overrides`` name (a typo found now, not after an
    hour of training) and, unless they give ``model.num_keypoints`` too, make the network predict the set's count
    (0 for ``from_annotations``: training fills it in from the annotation file)."""
    if not _given(loaded, overrides, "data", "keypoint_set"):
        return
    name = data["data"].get("keypoint_set")
    if not isinstance(name, str):
        return  # the type check reports it
    if name == FROM_ANNOTATIONS:
        count = 0
    else:
        try:
            count = load_keypoint_set(name).num_keypoints
        except DataError as err:
            raise ConfigError(f"{where}: data.keypoint_set: {err}" if where else f"data.keypoint_set: {err}") from None
    if not _given(loaded, overrides, "model", "num_keypoints") and isinstance(data.get("model"), dict):
        data["model"]["num_keypoints"] = count


def _given(loaded: dict[str, Any], overrides: Sequence[str], section: str, key: str) -> bool:
    """Whether the YAML data ``loaded`` or a ``--set`` override gives ``section.key`` itself."""
    in_file = loaded.get(section)
    if isinstance(in_file, dict) and key in in_file:
        return True
    for item in overrides:
        name, _, value = item.partition("=")
        if name.strip() == f"{section}.{key}":
            return True
        if name.strip() == section:  # --set 'data={keypoint_set: x}': a mapping merged into the section
            parsed = parse_yaml(value, f"--set {short_repr(item)}")
            if isinstance(parsed, dict) and key in parsed:
                return True
    return False


def dump_config(config: ExperimentConfig) -> str:
    """The config as YAML text (what a run folder stores as ``config.yaml``)."""
    import yaml

    return yaml.safe_dump(to_dict(config), sort_keys=False)
