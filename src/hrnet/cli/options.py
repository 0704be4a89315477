"""What the subcommands share: option types with bounds (refused in one line), the config argument and how it
is told from an input, the options of every command that runs a network, and the parser that reports a usage
error in one line."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from hrnet.config import ExperimentConfig, ModelConfig, is_config_name, load_config
from hrnet.errors import ConfigError

if TYPE_CHECKING:
    from hrnet.keypoints import KeypointSet


class OptionValueError(ConfigError, argparse.ArgumentTypeError):
    """A value an option's type refuses: argparse prints it as a usage error when it parses the option, ``main``
    as one line when a command parses the value itself."""


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An option type: a whole number in [low, high], in ASCII digits (``str.isdigit`` also takes "²", which
    ``int`` refuses), refused in one line otherwise."""
    bounds = f"≥ {low}" if high is None else f"from {low} to {high}"

    def whole(text: str) -> int:
        if not re.fullmatch(r"-?[0-9]{1,18}", text.strip()) or not low <= int(text) <= (high or int(text)):
            raise OptionValueError(f"{text[:200]!r} is not a whole number {bounds}")
        return int(text)

    return whole


def finite_number(low: float, high: float = math.inf, *, above: bool = False) -> Callable[[str], float]:
    """An option type: a finite number in [low, high] (in (low, high] with ``above``), refused in one line
    otherwise (NaN and infinity too)."""
    if high == math.inf:
        bounds = f"{'above' if above else 'at least'} {low:g}"
    else:
        bounds = f"{'above' if above else 'from'} {low:g} {'and at most' if above else 'to'} {high:g}"

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > low if above else value >= low) and value <= high):
            raise OptionValueError(f"{text[:200]!r} is not a finite number {bounds}")
        return value

    return number


positive_int = whole_number(1)

nonnegative_int = whole_number(0)

batch_size = whole_number(1, 4096)  # far beyond any device's batch for one network: a larger one is a typo

fraction = finite_number(0.0, 1.0)  # thresholds, IoU

positive_number = finite_number(0.0, above=True)

megapixels = positive_number


def parse_input_size(text: str) -> tuple[int, int]:
    """``256x192`` (or ``256×192``) → (256, 192): an input size as every option spells it, height first."""
    match = re.fullmatch(r"\s*([0-9]+)\s*[x×]\s*([0-9]+)\s*", text, flags=re.IGNORECASE)
    if match is None:
        raise OptionValueError(f"{text[:200]!r}: give HEIGHTxWIDTH in pixels, e.g. 256x192")
    return int(match[1]), int(match[2])


def resized(model_cfg: ModelConfig, input_size: tuple[int, int] | None) -> ModelConfig:
    """``model_cfg`` at ``--input-size`` when one is given; a size the network cannot take names the option."""
    if input_size is None:
        return model_cfg
    try:
        return dataclasses.replace(model_cfg, input_size=input_size)
    except ConfigError as err:
        raise ConfigError(f"--input-size {input_size[0]}x{input_size[1]}: {err}") from None


def comma_list(text: str, option: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ConfigError(f"{option} {text!r}: give one or more names, comma-separated")
    return names


# What a CONFIG argument may be, for every command's help (``load_config`` reads each).
CONFIG_HELP = (
    "an experiment YAML file, a shipped config (coco/w32_256x192, ap10k/w32_256x256), a model preset (w18, w32, w48) "
    "or a pose weights name from `hrnet weights list` (its shipped config)"
)


def add_config(p: argparse.ArgumentParser, help: str, *, required: bool = True) -> None:
    """The config as the first positional argument of a subcommand, as ``--config`` (the same), and ``--set``
    overrides of its values."""
    p.add_argument("config", nargs="?", metavar="CONFIG", help=help)
    p.add_argument("--config", dest="config_option", metavar="CONFIG", help="the same as CONFIG, as an option")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.set_defaults(config_required=required)


def add_input_size(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--input-size",
        type=parse_input_size,
        metavar="HxW",
        help=f"{what}, height × width in pixels, e.g. 256x192 (default: the config's model.input_size)",
    )


def add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: replace existing files that this command did not write (``hrnet.io.outputs``)."""
    p.add_argument("--overwrite", action="store_true", help=f"replace {what} (default: refuse)")


def is_config(word: str) -> bool:
    """Whether a command line word names a config: a YAML file, or a name ``load_config`` reads (a model preset, a
    shipped config ``coco/w32_256x192``, a model zoo name ``ap10k/w32_256x256``, a registered pose weights name),
    rather than an input (an image, a folder, a video, a webcam index, a URL)."""
    return Path(word).suffix.lower() in (".yaml", ".yml") or is_config_name(word)


def resolve_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One ``args.config`` from the positional CONFIG or ``--config``. A command with inputs (predict) takes its
    first word as the config only when it names one (``is_config``; else the config comes from the weights), so
    ``hrnet predict photo.jpg``, ``hrnet predict coco/w32_256x192 photo.jpg`` and ``hrnet predict --config C a.jpg``
    all read as meant."""
    if not hasattr(args, "config_option"):
        return
    if hasattr(args, "inputs"):
        words = ([args.config] if args.config is not None else []) + list(args.inputs)
        if args.config_option is not None:
            args.config = args.config_option
        elif words and is_config(words[0]):
            args.config = words.pop(0)
        else:
            args.config = None
        args.inputs = words
        if not words:
            parser.error(f"{args.command}: give the images, folders, videos, a webcam index or stream URLs")
        return
    if args.config_option is not None:
        if args.config is not None:
            parser.error(f"{args.command}: two configs given ({args.config} and --config {args.config_option})")
        args.config = args.config_option
    elif args.config is None and args.config_required:
        parser.error(f"{args.command}: give the config (an experiment YAML file or a model preset) first")


def experiment_and_keypoints(args: argparse.Namespace) -> tuple[ExperimentConfig, KeypointSet | None]:
    """The experiment of a command that may take its config from ``--weights`` (eval, export, bench) and the
    keypoint set its network predicts (None: the config's set comes from annotation files and no weights say it)."""
    from hrnet.models.checkpoint import experiment_for, keypoint_set_for

    weights = getattr(args, "weights", None)
    if weights is None:
        if args.config is None:
            raise ConfigError(f"{args.command}: give the config (an experiment YAML file or a model preset) or weights")
        config = load_config(args.config, args.set)
        try:
            return config, keypoint_set_for(None, config)
        except ConfigError:
            return config, None
    config = experiment_for(weights, args.config, args.set)
    return config, keypoint_set_for(weights, config)


WEIGHTS_HELP = (
    "our .safetensors (a training checkpoint too), an official or MMPose .pth, an .onnx from hrnet export, or a "
    "name from `hrnet weights list` (downloaded into the cache on first use)"
)


def add_runtime(
    p: argparse.ArgumentParser,
    *,
    weights_required: bool = True,
    weights_help: str = WEIGHTS_HELP,
    compare: bool = False,
) -> None:
    """The options of every command that runs a network (predict, eval, serve, bench): which weights, and how
    they run (``hrnet.runtime.backends``). ``compare`` (bench): ``--precision`` and ``--backend`` take comma-separated
    lists to time side by side."""
    from hrnet.runtime.backends import BACKENDS, PRECISIONS

    names = ", ".join(f"{name} ({entry.about})" for name, entry in BACKENDS.items())
    group = p.add_argument_group("network", "which weights, and how the network runs")
    group.add_argument("--weights", required=weights_required, help=weights_help)
    if compare:
        group.add_argument(
            "--precision",
            metavar="LIST",
            help="compare precisions, e.g. fp32,bf16,int8: images/s and multiples of the fp32 limit",
        )
        group.add_argument(
            "--backend",
            metavar="LIST",
            help=f"compare these backends, e.g. pytorch-fast,onnxruntime (default: pytorch, pytorch-fast and "
            f"onnxruntime); the backends: {names}",
        )
    else:
        group.add_argument(
            "--precision",
            choices=PRECISIONS,
            help="fp32, bf16 (the PyTorch fast path in bfloat16) or int8 (an .onnx from hrnet export --precision "
            "int8); default: what the weights hold (fp32 for PyTorch files, an .onnx's own)",
        )
        group.add_argument(
            "--backend",
            choices=BACKENDS,
            metavar="NAME",
            help=f"how the network runs: {names}; default: chosen from --weights and --precision",
        )
    group.add_argument(
        "--device", help="cpu, cuda, cuda:1 (default: the config's runtime.device, 'auto': a GPU if there is one)"
    )
    group.add_argument(
        "--compile", action="store_true", help="torch.compile the PyTorch fast path (worth it for long runs; off)"
    )


def add_detector(p: argparse.ArgumentParser, default: str = "none, the whole image is one box") -> None:
    """The detector options of predict and serve."""
    group = p.add_argument_group("detector", "how the boxes (persons, faces, ...) are found when none are given")
    group.add_argument(
        "--detector",
        help="find the boxes with: a detector name from `hrnet weights list` (downloaded on first use: persons, "
        "or yunet for faces), an .onnx person detector (MMDeploy YOLOX/RTMDet end-to-end, or an ultralytics "
        "YOLOv8/YOLO11 export) or YuNet face detector (--detector-format yunet), 'hog' (OpenCV's HOG people "
        "detector, built in but weak: upright, whole, large people only), 'haar-face' (OpenCV's frontal-face "
        f"cascade, built in: frontal faces only), or none; default: {default}",
    )
    group.add_argument(
        "--detector-format",
        choices=("yolox", "rtmdet", "ultralytics", "yunet"),
        help="the ONNX detector's layout and preprocessing (default: recognised from its outputs)",
    )
    group.add_argument(
        "--detector-threshold",
        type=fraction,
        help="keep detections scoring at least this (default: the detector's own: 0.3 MMDeploy, 0.25 "
        "ultralytics, 0.5 hog, 0 haar-face, 0.9 yunet)",
    )
    group.add_argument(
        "--detector-iou",
        type=fraction,
        help="NMS IoU threshold for detections (default 0.7; hog, haar-face 0.5; yunet 0.3)",
    )
    group.add_argument(
        "--detector-size", metavar="HxW", help="input size of an ONNX detector with a dynamic input (default 640x640)"
    )


class Parser(argparse.ArgumentParser):
    """argparse's parser with a usage error in one line: what is wrong, and where the options are listed."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (options: {self.prog} --help)\n")
