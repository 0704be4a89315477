"""The ``hrnet`` command: ``demo | train | eval | predict | serve | export | info | bench | draw | data | convert |
weights``.

Each subcommand parses its arguments here and calls one function of the package; errors of our own types are
printed as one clear line (no traceback) with exit status 2. The commands that run a network first turn on the
process-wide CPU setting of ``hrnet.runtime`` (freed memory kept for reuse; ``HRNET_KEEP_FREED_MEMORY=0`` turns it
off): a command owns its process, library calls never change it.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from hrnet import __version__
from hrnet.config import (
    CONFIG_DIR,
    MODEL_PRESETS,
    ExperimentConfig,
    ModelConfig,
    find_config,
    load_config,
    model_preset,
)
from hrnet.errors import ConfigError, DownloadError, HrnetError, TrainingInterruptedError
from hrnet.outputs import OutputFolder, check_output_file, record_output

if TYPE_CHECKING:
    from hrnet.inference import PoseEstimator

log = logging.getLogger("hrnet")
# The names under which commands record the files they write (``hrnet.outputs``); eval's and export's are theirs.
DRAW, SHOW, SYNTH, CONVERT = "hrnet draw", "hrnet data show", "hrnet data synth", "hrnet convert"


def _experiment(source: str, overrides: Sequence[str]) -> ExperimentConfig:
    """A model preset name (the default experiment with that network), an experiment YAML file (any path that
    exists, ``/dev/fd/63`` from a shell's ``<(...)`` too), or the name of one that ships with the package
    (``coco/w32_256x192``)."""
    if source not in MODEL_PRESETS and (source.endswith((".yaml", ".yml")) or find_config(source).exists()):
        return load_config(source, overrides)
    return load_config(None, overrides, base=ExperimentConfig(model=model_preset(source)))


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from hrnet.models.complexity import count_macs, count_parameters
    from hrnet.models.hrnet import build_model

    model_cfg = _resized(_experiment(args.config, args.set).model, args.input_size)
    with torch.device("meta"):  # shapes only: no memory is allocated and no arithmetic is done
        model = build_model(model_cfg)
    macs = count_macs(model, model_cfg.input_size)
    h, w = model_cfg.input_size
    hh, hw = model_cfg.heatmap_size
    lines = [
        f"model              {args.config} (variant {model_cfg.variant})",
        f"parameters         {count_parameters(model):,}",
        f"multiply-adds      {macs / 1e9:.3f} G  ({macs / 2**30:.2f} G in units of 2^30, the official 'GFLOPs')",
        f"input              3 × {h} × {w}",
        f"heatmaps           {model_cfg.num_keypoints} × {hh} × {hw}",
    ]
    for s, stage in enumerate(model_cfg.stages, start=1):
        widths = "/".join(str(c) for c in stage.num_channels)
        lines.append(
            f"stage {s}            {stage.num_branches} branch{'es' if stage.num_branches > 1 else ''}, "
            f"widths {widths}, {stage.num_modules} module(s) × {'/'.join(map(str, stage.num_blocks))} "
            f"{stage.block} blocks"
        )
    if args.layers:
        from hrnet.models.complexity import layer_table

        lines += ["", layer_table(model, model_cfg.input_size, args.batch)]
    print("\n".join(lines))
    return 0


class _OptionValueError(ConfigError, argparse.ArgumentTypeError):
    """A value an option's type refuses: argparse prints it as a usage error when it parses the option, ``main``
    as one line when a command parses the value itself."""


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An option type: a whole number in [low, high], in ASCII digits (``str.isdigit`` also takes "²", which
    ``int`` refuses), refused in one line otherwise."""
    bounds = f"≥ {low}" if high is None else f"from {low} to {high}"

    def whole(text: str) -> int:
        if not re.fullmatch(r"-?[0-9]{1,18}", text.strip()) or not low <= int(text) <= (high or int(text)):
            raise _OptionValueError(f"{text[:200]!r} is not a whole number {bounds}")
        return int(text)

    return whole


def _number(low: float, high: float = math.inf, *, above: bool = False) -> Callable[[str], float]:
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
            raise _OptionValueError(f"{text[:200]!r} is not a finite number {bounds}")
        return value

    return number


_positive_int = _whole(1)
_count = _whole(0)
_fraction = _number(0.0, 1.0)  # thresholds, IoU
_positive = _number(0.0, above=True)
_megapixels = _positive


def _input_size(text: str) -> tuple[int, int]:
    """``256x192`` (or ``256×192``) → (256, 192): an input size as every option spells it, height first."""
    match = re.fullmatch(r"\s*([0-9]+)\s*[x×]\s*([0-9]+)\s*", text, flags=re.IGNORECASE)
    if match is None:
        raise _OptionValueError(f"{text[:200]!r}: give HEIGHTxWIDTH in pixels, e.g. 256x192")
    return int(match[1]), int(match[2])


def _resized(model_cfg: ModelConfig, input_size: tuple[int, int] | None) -> ModelConfig:
    """``model_cfg`` at ``--input-size`` when one is given; a size the network cannot take names the option."""
    if input_size is None:
        return model_cfg
    try:
        return dataclasses.replace(model_cfg, input_size=input_size)
    except ConfigError as err:
        raise ConfigError(f"--input-size {input_size[0]}x{input_size[1]}: {err}") from None


def cmd_draw(args: argparse.Namespace) -> int:
    from hrnet.draw import check_output, draw_exchange, draw_overview, parse_detail, save_figure

    out = check_output(check_output_file(args.out, command=DRAW, inputs=[args.config], overwrite=args.overwrite))
    model_cfg = _resized(_experiment(args.config, args.set).model, args.input_size)
    name = Path(args.config).name
    if args.detail:
        figure = draw_exchange(model_cfg, name, *parse_detail(args.detail))
    else:
        figure = draw_overview(model_cfg, name)
    print(f"wrote {save_figure(figure, out)}")
    record_output(out, DRAW)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from hrnet.backends import BACKENDS
    from hrnet.speed import measure_backends

    model_cfg = _experiment(args.config, args.set).model
    if args.precision:
        if args.backend:
            raise ConfigError("give --precision (compare precisions) or --backend (compare backends), not both")
        return _bench_precisions(args, model_cfg)
    names = _names(args.backend, "--backend") if args.backend else _default_bench_backends()
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ConfigError(f"--backend {', '.join(unknown)}: not one of {', '.join(BACKENDS)}")
    rows, _ = measure_backends(
        model_cfg,
        names,
        args.weights,
        batch=args.batch,
        device=args.device or "auto",
        rounds=args.rounds,
        seconds=args.seconds,
        compile=args.compile,
    )
    h, w = model_cfg.input_size
    print(f"{args.config}, input {h}×{w}, batch {args.batch}, {torch.get_num_threads()} CPU threads")
    first = rows[0].images_per_s
    for row in rows:
        about = BACKENDS[row.backend].about
        print(f"  {row.backend:17s} {row.images_per_s:9.2f} images/s  {row.images_per_s / first:5.2f}×  ({about})")
    return 0


def _names(text: str, option: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ConfigError(f"{option} {text!r}: give one or more names, comma-separated")
    return names


def _default_bench_backends() -> list[str]:
    """What plain ``hrnet bench`` compares: the network as trained, the fast path, and ONNX Runtime if installed."""
    from hrnet.speed import precision_backends

    return ["pytorch", *precision_backends(["fp32"])]


def _bench_precisions(args: argparse.Namespace, model_cfg: ModelConfig) -> int:
    import torch

    from hrnet.backends import parse_precisions
    from hrnet.precision import cpu_support, precision_notice
    from hrnet.speed import measure_precisions

    precisions = parse_precisions(args.precision)
    if args.device not in (None, "auto", "cpu"):
        raise ConfigError("--precision compares CPU precisions: leave --device out or give cpu")
    if args.compile:
        raise ConfigError("--compile times the fast path against the others: give it without --precision")
    support = cpu_support()
    result = measure_precisions(
        model_cfg, precisions, args.weights, batch=args.batch, rounds=args.rounds, seconds=args.seconds
    )
    h, w = model_cfg.input_size
    print(f"{args.config}, input {h}×{w}, batch {args.batch}, {torch.get_num_threads()} CPU threads")
    print(f"CPU: {support.describe()}")
    for precision in precisions:
        if notice := precision_notice(precision, "cpu", support):
            print(f"note: {notice}")
    print(
        f"fp32 limit: {result.limit:.2f} images/s = peak {result.peak_flops / 1e9:.0f} GFLOP/s (2048³ 1×1 conv, "
        f"{result.peak_backend}) ÷ 2 × {result.multiply_accumulates / 1e9:.3f} G multiply-adds"
    )
    for row in result.rows:
        multiple = row.images_per_s / result.limit
        print(f"  {row.backend:17s} {row.images_per_s:9.2f} images/s  {multiple:.2f}× fp32 limit")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from hrnet.engine.train import train

    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run and --overwrite deletes it: give one of them")
    config = _experiment(args.config, args.set)
    config_file = Path(args.config) if Path(args.config).is_file() else None
    result = train(config, resume=args.resume, overwrite=args.overwrite, handle_signals=True, config_file=config_file)
    print(f"run folder: {result.run_dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from hrnet.backends import open_backend
    from hrnet.engine.evaluate import COMMAND, Evaluator

    config = _experiment(args.config, args.set)
    out = Path(args.out) if args.out else Path(config.train.out_dir) / config.train.name / "eval"
    what = "--out folder" if args.out else "evaluation folder"
    # Taken before the long evaluation; the split's files are added to the inputs by the evaluator.
    with OutputFolder(
        out, command=COMMAND, inputs=[args.config, args.boxes], overwrite=args.overwrite, what=what
    ) as folder:
        # fp32 on PyTorch evaluates the network as trained (BatchNorm unfolded), as the official test does.
        network = open_backend(
            config.model,
            args.weights,
            precision=args.precision,
            backend=args.backend,
            device=args.device or config.runtime.device,
            compile=args.compile,
            reference=True,
        )
        if network.weights is not None:
            folder.protect([network.weights])
        evaluator = Evaluator.from_config(config, network.device, boxes=args.boxes)
        metrics = evaluator.evaluate(network, folder, draw=args.draw)
    summary = metrics.pop("summary", None)
    print(summary or "\n".join(f"{k:14s} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    print(f"results in {out}")
    return 0


def _weights(spec: str | None) -> Path | None:
    """A ``--weights`` argument as a file: a registered name (``hrnet weights list``) is fetched into the cache."""
    from hrnet.weights import resolve_weights

    return None if spec is None else resolve_weights(spec)


def _network_setup(args: argparse.Namespace) -> tuple[ExperimentConfig, str | None]:
    """The experiment and the detector of a command that finds persons (predict, serve), from what was given:
    ``--weights`` (default ``DEFAULT_WEIGHTS``), the config (default: the one the weights name,
    ``hrnet.inference.experiment_for``) and ``--detector`` (default: ``DEFAULT_DETECTOR`` for real weights; none
    with ``--boxes``, with ``--detector none``, or for weights trained on the synthetic figures). Every file to
    download is tried first, so that offline one error lists them all."""
    from hrnet.inference import experiment_for, trained_on_synthetic
    from hrnet.weights import DEFAULT_DETECTOR, DEFAULT_WEIGHTS, resolve_many

    args.weights = args.weights or DEFAULT_WEIGHTS
    synthetic = trained_on_synthetic(args.weights)  # our own weights say so (a name's file is real weights)
    if synthetic:
        log.warning(
            "%s was trained on hrnet's synthetic stick figures (the demo): on real photos its keypoints mean "
            "nothing; for real photos use --weights %s (hrnet weights list)", args.weights, DEFAULT_WEIGHTS,
        )  # fmt: skip
    detector = args.detector
    if detector is None and not getattr(args, "boxes", None) and not synthetic:
        detector = DEFAULT_DETECTOR
    if detector == "none":
        detector = None
    try:
        resolve_many([args.weights, *([detector] if detector else [])])
    except DownloadError as err:
        alternative = (
            " Or find no persons: --detector none (each image one person) or --boxes FILE."
            if (detector and args.detector is None)
            else ""
        )
        raise DownloadError(f"{err}{alternative}") from None
    config = _experiment(args.config, args.set) if args.config else experiment_for(args.weights, None, args.set)
    return config, detector


def _open_estimator(args: argparse.Namespace, config: ExperimentConfig, detector: str | None) -> PoseEstimator:
    """The estimator the runtime and detector options (``_add_runtime``, ``_add_detector``) ask for."""
    from hrnet.detect import load_detector
    from hrnet.inference import PoseEstimator

    found = None
    if detector:
        found = load_detector(
            detector,
            format=args.detector_format,
            threshold=args.detector_threshold,
            iou=args.detector_iou,
            input_size=_input_size(args.detector_size) if args.detector_size else None,
        )
    return PoseEstimator.from_config(
        config,
        args.weights,
        device=args.device or config.runtime.device,
        precision=args.precision,
        backend=args.backend,
        compile=args.compile,
        detector=found,
    )


def cmd_predict(args: argparse.Namespace) -> int:
    from hrnet.data.images import MAX_PIXELS
    from hrnet.predict import DetectionBoxes, predict_paths
    from hrnet.track import OneEuroSettings
    from hrnet.video import VideoOptions
    from hrnet.weights import DEFAULT_DETECTOR

    if args.boxes and args.detector not in (None, "none"):
        raise ConfigError("give --boxes (boxes from a file) or --detector (boxes found in the images), not both")
    config, detector = _network_setup(args)
    if args.realtime:
        config, args.precision = _realtime(config, args)
    estimator = _open_estimator(args, config, detector)
    detections = DetectionBoxes(args.boxes, args.box_score) if args.boxes else None
    if detector is None and detections is None:
        log.warning(
            "no person detector and no --boxes: every image and video frame is taken as ONE person filling it "
            "(right for photos cropped around one person); to find every person: --detector %s (hrnet weights "
            "list) or --boxes FILE", DEFAULT_DETECTOR,
        )  # fmt: skip
    video = VideoOptions(
        detect_every=args.detect_every or (REALTIME_DETECT_EVERY if args.realtime else 1),
        new_track_keypoints=args.new_track_keypoints,
        max_detector_misses=args.max_detector_misses,
        track_by=args.track_by,
        track_threshold=args.track_threshold,
        max_missed=args.max_missed,
        keypoint_threshold=args.threshold,
        smooth=OneEuroSettings(min_cutoff=args.smooth_cutoff, beta=args.smooth_beta) if args.smooth else None,
    )
    report = predict_paths(
        estimator,
        args.inputs,
        args.out,
        detections=detections,
        video=video,
        threshold=args.threshold,
        draw=not args.no_draw,
        protected=[p for p in (args.boxes, args.weights, args.config) if p],
        max_pixels=MAX_PIXELS if args.max_megapixels is None else max(1, round(args.max_megapixels * 1e6)),
        overwrite=args.overwrite,
    )
    count = len(report.written)
    print(f"wrote {count} file{'' if count == 1 else 's'} to {args.out}")
    for path, reason in report.failed:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


REALTIME_DETECT_EVERY = 10  # --realtime: the detector on every 10th frame, persons carried by their keypoints between


def _realtime(config: ExperimentConfig, args: argparse.Namespace) -> tuple[ExperimentConfig, str | None]:
    """``--realtime``: no flip test, and the fastest precision this CPU runs well when none is asked for: bf16 on
    a CPU with AVX-512 BF16 or AMX (or a GPU), an ``.onnx`` file's own (an int8 file runs int8), else fp32."""
    from hrnet.backends import is_onnx_file
    from hrnet.precision import cpu_support

    config = dataclasses.replace(config, test=dataclasses.replace(config.test, flip_test=False))
    precision = args.precision
    if precision is None and not is_onnx_file(args.weights) and cpu_support().bf16:
        precision = "bf16"
    log.info(
        "--realtime: flip test off, precision %s, the detector every %s frames",
        precision or "of the weights file", args.detect_every or REALTIME_DETECT_EVERY,
    )  # fmt: skip
    return config, precision


def cmd_serve(args: argparse.Namespace) -> int:
    from hrnet.serve import ServeLimits, serve

    limits = ServeLimits(
        max_upload_bytes=round(args.max_upload_mb * 2**20),
        max_pixels=round(args.max_megapixels * 1e6),
        max_boxes=args.max_boxes,
        max_batch=args.max_batch,
        batch_window_s=args.batch_window_ms / 1000,
    )
    config, detector = _network_setup(args)
    estimator = _open_estimator(args, config, detector)
    serve(estimator, host=args.host, port=args.port, limits=limits, model_name=args.config or args.weights)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hrnet.export import export_from_config

    config = _experiment(args.config, args.set)
    if args.calibration and args.precision != "int8":
        raise ConfigError("--calibration is for --precision int8")
    calibration = _experiment(args.calibration, args.set) if args.calibration else None
    path = export_from_config(
        config,
        _weights(args.weights),
        args.out,
        opset=args.opset,
        precision=args.precision,
        calibration=calibration,
        calibration_name=args.calibration or args.config,
        calibration_crops=args.calibration_crops,
        inputs=[args.config, args.calibration],
        overwrite=args.overwrite,
    )
    kind = "int8 (calibrated), checked against the fp32 graph" if args.precision == "int8" else "checked"
    print(f"wrote {path} (input 'image' N×3×{config.model.input_size[0]}×{config.model.input_size[1]}, "
          f"output 'heatmaps'; {kind} against ONNX Runtime)")  # fmt: skip
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hrnet.data.synthetic import synthetic_files, write_synthetic

    with OutputFolder(args.out, command=SYNTH, overwrite=args.overwrite) as folder:
        for path in synthetic_files(folder.path, args.train, args.val):
            folder.claim(path, f"a file of the data set ({path.parent.name})")
        with tqdm(total=args.train + args.val, desc="synthetic images", unit="img") as bar:
            files = write_synthetic(
                folder.path,
                args.train,
                args.val,
                args.seed,
                progress=lambda n: bar.update(1),
                written_file=folder.record,
            )
    for split, path in files.items():
        print(f"{split}: {path}")
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    from hrnet.data.show import show_samples
    from hrnet.visualize import write_image

    out = check_output_file(args.out, command=SHOW, inputs=[args.config], overwrite=args.overwrite)
    config = _experiment(args.config, args.set)
    path = write_image(out, show_samples(config, args.split, args.n, args.seed))
    record_output(path, SHOW)
    print(f"wrote {path}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from hrnet.models.tf_checkpoint import CONFIG_FILE, WEIGHTS_FILE, convert_tf_port

    prefix = Path(args.checkpoint)  # model.ckpt (or model.ckpt.index): its files are model.ckpt.*
    stem = glob.escape(prefix.name.removesuffix(".index"))
    checkpoint_files = list(prefix.parent.glob(f"{stem}.*")) if prefix.parent.is_dir() else []
    with OutputFolder(args.out, command=CONVERT, inputs=checkpoint_files, overwrite=args.overwrite) as folder:
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            folder.claim(folder.path / name, f"the converted {name}")
        result = convert_tf_port(args.checkpoint, folder.path)
        folder.record(result.weights)
        folder.record(result.config)
    widths = "/".join(map(str, result.model.stages[-1].num_channels))
    print(
        f"wrote {result.weights} ({result.num_tensors} tensors; widths {widths}, {result.model.num_keypoints} "
        f"keypoints, batch_norm {result.model.batch_norm}) and {result.config}"
    )
    return 0


def cmd_weights_list(args: argparse.Namespace) -> int:
    from hrnet.weights import DECODINGS, REGISTRY, cache_dir, cache_status

    print(f"cache: {cache_dir()}  ($HRNET_CACHE to move it)")
    for kind in ("pose", "detector"):
        print(f"\n{kind} weights" + (" (--weights NAME)" if kind == "pose" else " (--detector NAME)"))
        for entry in REGISTRY.values():
            if entry.kind != kind:
                continue
            size = "x".join(map(str, entry.input_size)) if entry.input_size else "?"
            what = [f"{entry.about}: {entry.accuracy}", f"input {size}"]
            if entry.decoding:
                what.append(f"decoding {DECODINGS[entry.decoding]}")
            how = ([f"config {entry.config}"] if entry.config else []) + [f"checksum: {entry.verified_by}"]
            print(f"  {entry.name:36s} {cache_status(entry)}".rstrip())
            print("      " + "; ".join(what))
            print("      " + "; ".join(how))
    return 0


def cmd_weights_get(args: argparse.Namespace) -> int:
    from hrnet.weights import REGISTRY, fetch, verify

    missing = [name for name in args.names if name not in REGISTRY]
    if missing:
        raise ConfigError(f"unknown weights name(s) {', '.join(missing)}; `hrnet weights list` shows the known ones")
    for name in args.names:
        entry = REGISTRY[name]
        path = fetch(entry, force=args.force)
        print(f"{name}: {path} (SHA-256 {verify(path, entry)}; checked against: {entry.verified_by})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hrnet.demo import DEMO_CONFIG, run_demo

    run_demo(load_config(args.config or DEMO_CONFIG, args.set))
    return 0


def _add_config(p: argparse.ArgumentParser, help: str, *, required: bool = True) -> None:
    """The config as the first positional argument of a subcommand, as ``--config`` (the same), and ``--set``
    overrides of its values."""
    p.add_argument("config", nargs="?", metavar="CONFIG", help=help)
    p.add_argument("--config", dest="config_option", metavar="CONFIG", help="the same as CONFIG, as an option")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.set_defaults(config_required=required)


def _add_input_size(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--input-size",
        type=_input_size,
        metavar="HxW",
        help=f"{what}, height × width in pixels, e.g. 256x192 (default: the config's model.input_size)",
    )


def _add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: replace existing files that this command did not write (``hrnet.outputs``)."""
    p.add_argument("--overwrite", action="store_true", help=f"replace {what} (default: refuse)")


def _is_config(word: str) -> bool:
    """Whether a command line word names a config: a model preset, a YAML file, or a config that ships with the
    package (``coco/w32_256x192``), rather than an input (an image, a folder, a video, a webcam index, a URL)."""
    return (
        word in MODEL_PRESETS
        or Path(word).suffix.lower() in (".yaml", ".yml")
        or find_config(word).resolve().is_relative_to(CONFIG_DIR)
    )


def _resolve_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One ``args.config`` from the positional CONFIG or ``--config``. A command with inputs (predict) takes its
    first word as the config only when it names one (``_is_config``; else the config comes from the weights), so
    ``hrnet predict photo.jpg``, ``hrnet predict coco/w32_256x192 photo.jpg`` and ``hrnet predict --config C a.jpg``
    all read as meant."""
    if not hasattr(args, "config_option"):
        return
    if hasattr(args, "inputs"):
        words = ([args.config] if args.config is not None else []) + list(args.inputs)
        if args.config_option is not None:
            args.config = args.config_option
        elif words and _is_config(words[0]):
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


WEIGHTS_HELP = (
    "our .safetensors (a training checkpoint too), an official or MMPose .pth, an .onnx from hrnet export, or a "
    "name from `hrnet weights list` (downloaded into the cache on first use)"
)


def _add_runtime(
    p: argparse.ArgumentParser,
    *,
    weights_required: bool = True,
    weights_help: str = WEIGHTS_HELP,
    compare: bool = False,
) -> None:
    """The options of every command that runs a network (predict, eval, serve, bench): which weights, and how
    they run (``hrnet.backends``). ``compare`` (bench): ``--precision`` and ``--backend`` take comma-separated
    lists to time side by side."""
    from hrnet.backends import BACKENDS, PRECISIONS

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


def _add_detector(p: argparse.ArgumentParser, default: str = "none, the whole image is one person") -> None:
    """The person-detector options of predict and serve."""
    group = p.add_argument_group("person detector", "how person boxes are found when none are given")
    group.add_argument(
        "--detector",
        help="find the persons with: a detector name from `hrnet weights list` (downloaded on first use), an .onnx "
        "person detector (MMDeploy YOLOX/RTMDet end-to-end, or an ultralytics YOLOv8/YOLO11 export), or 'hog' "
        f"(OpenCV's HOG people detector, built in but weak: upright, whole, large people only), or none; default: "
        f"{default}",
    )
    group.add_argument(
        "--detector-format",
        choices=("yolox", "rtmdet", "ultralytics"),
        help="the ONNX detector's layout and preprocessing (default: recognised from its outputs)",
    )
    group.add_argument(
        "--detector-threshold",
        type=_fraction,
        help="keep detections scoring at least this (default: the detector's own: 0.3 MMDeploy, 0.25 "
        "ultralytics, 0.5 hog)",
    )
    group.add_argument("--detector-iou", type=_fraction, help="NMS IoU threshold for detections (default 0.7; hog 0.5)")
    group.add_argument(
        "--detector-size", metavar="HxW", help="input size of an ONNX detector with a dynamic input (default 640x640)"
    )


class _Parser(argparse.ArgumentParser):
    """argparse's parser with a usage error in one line: what is wrong, and where the options are listed."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (options: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from hrnet.weights import DEFAULT_DETECTOR, DEFAULT_WEIGHTS

    parser = _Parser(
        prog="hrnet", description="HRNet 2D human pose estimation: train, evaluate, predict, export, draw."
    )
    parser.add_argument("--version", action="version", version=f"hrnet {__version__}", help="print the version")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="synthetic data → train a small HRNet → evaluate → pictures (runs/demo/)")
    _add_config(p, "demo experiment (default: demo, shipped with the package)", required=False)
    p.set_defaults(func=cmd_demo, runs_network=True)

    p = sub.add_parser("info", help="parameters, multiply-adds, sizes and branch widths of a network")
    _add_config(p, f"a model preset ({', '.join(MODEL_PRESETS)}) or an experiment YAML file")
    _add_input_size(p, "count at this input size")
    p.add_argument(
        "--layers", action="store_true", help="also list every block: output shape, parameters, MACs (default: off)"
    )
    p.add_argument(
        "--batch", type=_positive_int, default=1, help="batch size of the --layers shapes and counts (default 1)"
    )
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "draw",
        help="draw a network's structure (stages, branches, exchange units, shapes) as SVG, PNG or PDF",
        description="The picture is made from the network that would run: it is built on the meta device and "
        "run once with hooks for the shapes, parameters and multiply-adds.",
    )
    _add_config(p, f"a model preset ({', '.join(MODEL_PRESETS)}) or an experiment YAML file")
    p.add_argument("--out", required=True, help="the picture to write: .svg, .png or .pdf (required)")
    _add_input_size(p, "draw at this input size")
    p.add_argument(
        "--detail",
        metavar="stageN[.M]",
        help="draw exchange module M (default 1) of stage N instead (default: the whole network)",
    )
    _add_overwrite(p, "an existing --out file that hrnet draw did not write")
    p.set_defaults(func=cmd_draw)

    p = sub.add_parser("bench", help="images/s of a network here: each backend or precision, timed together")
    _add_config(p, f"a model preset ({', '.join(MODEL_PRESETS)}) or an experiment YAML file")
    _add_runtime(
        p,
        weights_required=False,
        weights_help="weights to load (default: a random initialisation; the speed does not depend on them); a file "
        "or a name from `hrnet weights list`",
        compare=True,
    )
    p.add_argument("--batch", type=_positive_int, default=16, help="persons a forward pass (default 16)")
    p.add_argument(
        "--rounds", type=_positive_int, default=3, help="interleaved timing rounds; figures are medians (default 3)"
    )
    p.add_argument("--seconds", type=_positive, default=2.0, help="seconds per backend in a round (default 2)")
    p.set_defaults(func=cmd_bench, runs_network=True)

    p = sub.add_parser("train", help="train a network (torchrun --nproc_per_node=N -m hrnet train ... for DDP)")
    _add_config(p, "experiment YAML file (or a model preset with the default COCO recipe)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last.safetensors")
    p.add_argument("--overwrite", action="store_true", help="delete the folder's earlier run and start anew")
    p.set_defaults(func=cmd_train, runs_network=True)

    p = sub.add_parser("eval", help="evaluate weights on the validation split (COCO AP/AR, PCKh for MPII)")
    _add_config(p, "experiment YAML file")
    _add_runtime(p)
    p.add_argument("--boxes", help="COCO detection-results JSON of person boxes (default: ground-truth boxes)")
    p.add_argument("--draw", type=_count, default=0, metavar="N", help="also draw N images: prediction | truth (0)")
    p.add_argument("--out", help="output folder (default: <train.out_dir>/<train.name>/eval)")
    _add_overwrite(p, "existing files in the output folder that hrnet eval did not write (never an input)")
    p.set_defaults(func=cmd_eval, runs_network=True)

    p = sub.add_parser(
        "predict",
        help="keypoints for images, folders, videos, webcams and streams",
        description="Top-down pose estimation on your own files: `hrnet predict photo.jpg` runs HRNet-W32 trained on "
        "COCO (MMPose's checkpoint) with RTMDet-nano finding the persons, both downloaded on first use. Person "
        "boxes come from --boxes (a COCO detection-results JSON matched by image file name or id) or from the "
        "person detector; with --detector none, every image (and every video frame) is ONE person box covering it. "
        "Videos give <name>.jsonl, e.g. clip.mp4.jsonl (a line per frame, every person with a track_id), and "
        "<stem>_pose.mp4 (H.264, plays in browsers).",
    )
    _add_config(
        p, "experiment YAML file, shipped config or model preset (default: the one the weights name)", required=False
    )
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="image files, folders of images/videos, video files, a webcam index (0), stream URLs",
    )
    _add_runtime(p, weights_required=False, weights_help=f"{WEIGHTS_HELP} (default {DEFAULT_WEIGHTS})")
    p.add_argument("--boxes", help="COCO detection-results JSON of the person boxes (default: the detector's)")
    p.add_argument(
        "--box-score",
        type=_fraction,
        default=0.3,
        help="use --boxes entries scoring at least this (default 0.3, as MMPose's demo)",
    )
    _add_detector(p, f"{DEFAULT_DETECTOR} for real weights; none with --boxes or weights trained on the demo's data")
    p.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    _add_overwrite(p, "existing files in the --out folder that hrnet predict did not write (never an input)")
    p.add_argument(
        "--threshold", type=_fraction, default=0.3, help="hide keypoints scoring below this in drawings (0.3)"
    )
    p.add_argument(
        "--max-megapixels",
        type=_megapixels,
        help="refuse images of more than this many million pixels, read from the header before decoding (default "
        "40, as hrnet serve)",
    )
    p.add_argument("--no-draw", action="store_true", help="write only the JSON results")
    video = p.add_argument_group("video", "how persons are found and followed through the frames of a video")
    video.add_argument(
        "--detect-every",
        type=_positive_int,
        metavar="N",
        help="find persons every N-th frame (default 1: all; 10 with --realtime); in between each person's box "
        "comes from its keypoints in the frame before",
    )
    video.add_argument(
        "--realtime",
        action="store_true",
        help="for webcams and streams: no flip test, the fastest precision this CPU runs well (bf16 with AVX-512 "
        "BF16/AMX; an int8 .onnx runs int8), the detector every 10th frame (off: as the config says)",
    )
    video.add_argument(
        "--new-track-keypoints",
        type=_count,
        default=4,
        metavar="K",
        help="a detection starts a new track only with at least K keypoints above --threshold (default 4)",
    )
    video.add_argument(
        "--max-detector-misses",
        type=_count,
        default=10,
        metavar="M",
        help="a track the detector misses is carried by its keypoints through M detection frames (default 10)",
    )
    video.add_argument(
        "--track-by", choices=("iou", "oks"), default="iou", help="match persons to tracks by box IoU or keypoint OKS"
    )
    video.add_argument("--track-threshold", type=_fraction, default=0.3, help="least IoU/OKS to keep a track's id")
    video.add_argument(
        "--max-missed",
        type=_count,
        default=10,
        metavar="M",
        help="retire a track's id after M frames unseen (default 10)",
    )
    video.add_argument("--smooth", action="store_true", help="One-Euro smoothing of each track's keypoints")
    video.add_argument(
        "--smooth-cutoff", type=_positive, default=1.0, metavar="HZ", help="One-Euro cut-off at rest (lower: steadier)"
    )
    video.add_argument(
        "--smooth-beta",
        type=_number(0.0),
        default=0.02,
        help="One-Euro speed coefficient (higher: less lag when moving)",
    )
    p.set_defaults(func=cmd_predict, runs_network=True)

    p = sub.add_parser(
        "serve",
        help="an HTTP pose service (POST /v1/pose) with a page to try it at /",
        description="Serves POST /v1/pose (an image, optional person boxes → COCO keypoint results or, with "
        "?draw=1, the drawn JPEG), GET /v1/model, GET /healthz, the API docs at /docs and a page at / to drop a "
        "photo on. Requests that arrive together share a forward pass. Needs the 'serve' extra.",
    )
    _add_config(
        p, "experiment YAML file, shipped config or model preset (default: the one the weights name)", required=False
    )
    _add_runtime(p, weights_required=False, weights_help=f"{WEIGHTS_HELP} (default {DEFAULT_WEIGHTS})")
    _add_detector(p, f"{DEFAULT_DETECTOR} for real weights; none for weights trained on the demo's data")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_whole(1, 65535), default=8000, help="port to listen on (default 8000)")
    p.add_argument(
        "--max-batch", type=_positive_int, help="persons a forward pass (default: the config's test.batch_size)"
    )
    p.add_argument(
        "--batch-window-ms", type=_number(0.0, 1000.0), default=5.0, help="wait for more requests to batch (default 5)"
    )
    p.add_argument("--max-upload-mb", type=_positive, default=20.0, help="request body limit (default 20 MiB)")
    p.add_argument("--max-megapixels", type=_megapixels, default=40.0, help="image size limit (default 40 M pixels)")
    p.add_argument("--max-boxes", type=_positive_int, default=100, help="person boxes a request (default 100)")
    p.set_defaults(func=cmd_serve, runs_network=True)

    from hrnet.backends import EXPORT_PRECISIONS
    from hrnet.models.onnx import MAX_OPSET, MIN_OPSET, OPSET

    p = sub.add_parser("export", help="export to ONNX (dynamic batch), verified against ONNX Runtime")
    _add_config(p, "experiment YAML file or model preset")
    p.add_argument("--weights", help="weights to export (default: random initialisation)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument(
        "--opset", type=_whole(MIN_OPSET, MAX_OPSET), default=OPSET, help=f"ONNX opset version (default {OPSET})"
    )
    p.add_argument(
        "--precision", choices=EXPORT_PRECISIONS, default="fp32", help="int8: static quantization (default fp32)"
    )
    p.add_argument("--calibration", metavar="CONFIG", help="int8: experiment whose training crops calibrate")
    p.add_argument(
        "--calibration-crops", type=_positive_int, default=320, help="int8: crops to calibrate on (default 320)"
    )
    _add_overwrite(p, "an existing --out file that is not an earlier export (never the weights or a config)")
    p.set_defaults(func=cmd_export)

    data = sub.add_parser("data", help="data sets: make the synthetic one, look at training samples")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("synth", help="write the built-in synthetic COCO-format data set")
    p.add_argument("--out", required=True, help="output folder (annotations/, images/)")
    p.add_argument("--train", type=_count, default=4000, help="training images (default 4000)")
    p.add_argument("--val", type=_count, default=500, help="validation images (default 500)")
    p.add_argument("--seed", type=_whole(0, 2**32 - 1), default=0, help="random seed of the drawn persons (default 0)")
    _add_overwrite(p, "existing files in the --out folder that hrnet data synth did not write")
    p.set_defaults(func=cmd_data_synth)
    p = data_sub.add_parser("show", help="draw augmented samples with their skeletons and heatmaps")
    _add_config(p, "experiment YAML file")
    p.add_argument("--split", choices=("train", "val"), default="train", help="which split (default train)")
    p.add_argument("-n", type=_positive_int, default=16, help="how many samples (default 16)")
    p.add_argument("--out", default="samples.png", help="output picture (default samples.png)")
    p.add_argument(
        "--seed", type=_whole(0, 2**32 - 1), default=0, help="random seed of the samples and augmentations (default 0)"
    )
    _add_overwrite(p, "an existing --out file that hrnet data show did not write")
    p.set_defaults(func=cmd_data_show)

    weights = sub.add_parser(
        "weights",
        help="public pose and person-detector weights by name: list them, download them into the cache",
        description="Files go to $HRNET_CACHE or ~/.cache/hrnet, verified against the published checksum where one "
        "is published, resumed when a download was cut off. Any command's --weights NAME / --detector NAME "
        "downloads on first use.",
    )
    weights_sub = weights.add_subparsers(dest="weights_command", required=True)
    p = weights_sub.add_parser("list", help="the known names, what they are, and which are cached")
    p.set_defaults(func=cmd_weights_list)
    p = weights_sub.add_parser("get", help="download (or check) files into the cache")
    p.add_argument("names", nargs="+", metavar="NAME", help="names from `hrnet weights list`")
    p.add_argument(
        "--force", action="store_true", help="download again even when the file is in the cache (a damaged copy)"
    )
    p.set_defaults(func=cmd_weights_get)

    p = sub.add_parser(
        "convert",
        help="convert another implementation's checkpoint: DIR/model.safetensors + DIR/config.yaml",
        description="tf_port: a TensorFlow checkpoint of VXallset/deep-high-resolution-net.TensorFlow (needs the "
        "'tf' extra). The config's model section is read from the checkpoint, with batch_norm: batch as the port ran.",
    )
    p.add_argument("source", choices=("tf_port",), help="which implementation wrote the checkpoint")
    p.add_argument("checkpoint", help="the checkpoint's prefix, e.g. models/model.ckpt (for model.ckpt.index, ...)")
    p.add_argument("--out", required=True, help="output folder")
    _add_overwrite(p, "an existing model.safetensors or config.yaml in --out that hrnet convert did not write")
    p.set_defaults(func=cmd_convert)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line → arguments, with ``args.config`` resolved (usage errors exit with status 2)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Inputs may come before, between and after options (argparse takes a list of positionals only once).
        if not hasattr(args, "inputs") or any(word.startswith("-") for word in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.inputs += extra
    _resolve_config(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    # TensorBoard's writer (training) and `hrnet convert` import TensorFlow when the `tf` extra is installed; its
    # C++ start-up notices (CPU features, absl) are noise on a command's console. Errors still raise in Python.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if getattr(args, "runs_network", False):
        from hrnet.runtime import keep_freed_memory

        keep_freed_memory()
    try:
        return int(args.func(args))
    except TrainingInterruptedError as err:  # a checkpoint was saved: the run continues with --resume
        print(f"hrnet {args.command}: {err}", file=sys.stderr)
        return 128 + err.signal
    except HrnetError as err:
        print(f"hrnet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Files are written whole or not at all, so nothing half-written is left behind.
        hint = " (continue with --resume)" if args.command == "train" else ""
        print(f"hrnet {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
