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
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hrnet import __version__
from hrnet.config import MODEL_PRESETS, ExperimentConfig, ModelConfig, find_config, load_config, model_preset
from hrnet.errors import ConfigError, HrnetError, TrainingInterruptedError
from hrnet.fileio import check_writable_dir, check_writable_file

log = logging.getLogger("hrnet")

PRECISION_CHOICES = ("fp32", "bf16", "int8")
PRECISION_HELP = "fp32 (default); bf16: the fast path in bfloat16; int8: an .onnx from export --precision int8"


def _experiment(source: str, overrides: Sequence[str]) -> ExperimentConfig:
    """A model preset name (the default experiment with that network), an experiment YAML file, or the name of
    one that ships with the package (``coco/w32_256x192``)."""
    if source not in MODEL_PRESETS and (source.endswith((".yaml", ".yml")) or find_config(source).is_file()):
        return load_config(source, overrides)
    return load_config(None, overrides, base=ExperimentConfig(model=model_preset(source)))


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from hrnet.models.complexity import count_macs, count_parameters
    from hrnet.models.hrnet import build_model

    model_cfg = _experiment(args.config, args.set).model
    if args.input_size:
        model_cfg = dataclasses.replace(model_cfg, input_size=tuple(args.input_size))
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
        from hrnet.draw import layer_table

        lines += ["", layer_table(model, model_cfg.input_size, args.batch)]
    print("\n".join(lines))
    return 0


def _input_size(text: str) -> tuple[int, int]:
    """``--input 256x192`` → (256, 192)."""
    height, sep, width = text.lower().replace("×", "x").partition("x")
    if not (sep and height.strip().isdigit() and width.strip().isdigit()):
        raise ConfigError(f"--input {text!r}: give HEIGHTxWIDTH in pixels, e.g. 256x192")
    return int(height), int(width)


def cmd_draw(args: argparse.Namespace) -> int:
    from hrnet.draw import check_output, draw_exchange, draw_overview, parse_detail, save_figure

    out = check_output(args.out, [args.config])
    model_cfg = _experiment(args.config, args.set).model
    if args.input:
        input_size = _input_size(args.input)
        try:
            model_cfg = dataclasses.replace(model_cfg, input_size=input_size)
        except ConfigError as err:
            raise ConfigError(f"--input {args.input}: {err}") from None
    name = Path(args.config).name
    if args.detail:
        figure = draw_exchange(model_cfg, name, *parse_detail(args.detail))
    else:
        figure = draw_overview(model_cfg, name)
    print(f"wrote {save_figure(figure, out)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from hrnet.speed import measure_inference

    model_cfg = _experiment(args.config, args.set).model
    if args.precision:
        return _bench_precisions(args, model_cfg)
    rows = measure_inference(
        model_cfg,
        _weights(args.weights),
        batch=args.batch,
        device=args.device,
        rounds=args.rounds,
        seconds=args.seconds,
        compile=args.compile,
    )
    h, w = model_cfg.input_size
    print(f"{args.config}, input {h}×{w}, batch {args.batch}, {torch.get_num_threads()} CPU threads")
    plain = rows[0].images_per_s
    for row in rows:
        print(f"  {row.backend:45s} {row.images_per_s:9.2f} images/s  {row.images_per_s / plain:5.2f}×")
    return 0


def _bench_precisions(args: argparse.Namespace, model_cfg: ModelConfig) -> int:
    import torch

    from hrnet.precision import cpu_support, parse_precisions, precision_notice
    from hrnet.speed import measure_precisions

    precisions = parse_precisions(args.precision)
    if args.device not in ("auto", "cpu"):
        raise ConfigError("--precision compares CPU precisions: leave --device as cpu")
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
        print(f"  {row.backend:28s} {row.images_per_s:9.2f} images/s  {multiple:.2f}× fp32 limit")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from hrnet.engine.train import train

    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run and --overwrite deletes it: give one of them")
    config = _experiment(args.config, args.set)
    result = train(config, resume=args.resume, overwrite=args.overwrite, handle_signals=True)
    print(f"run folder: {result.run_dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from hrnet.engine.evaluate import Evaluator
    from hrnet.precision import heatmap_model

    config = _experiment(args.config, args.set)
    out = Path(args.out) if args.out else Path(config.train.out_dir) / config.train.name / "eval"
    check_writable_dir(out, "--out folder" if args.out else "evaluation folder")  # before the long evaluation
    # fp32 evaluates the network as trained (BatchNorm unfolded), as the official test does.
    weights = _weights(args.weights)
    assert weights is not None  # --weights is required
    backend = "onnxruntime" if str(weights).lower().endswith(".onnx") else "torch"
    model, device = heatmap_model(
        config.model,
        weights,
        args.precision,
        device=config.runtime.device,
        backend=backend,
        fast=args.precision != "fp32",
    )
    metrics = Evaluator.from_config(config, device, boxes=args.boxes).evaluate(model, out, draw=args.draw)
    summary = metrics.pop("summary", None)
    print(summary or "\n".join(f"{k:14s} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    print(f"results in {out}")
    return 0


def _weights(spec: str | None) -> Path | None:
    """A ``--weights`` argument as a file: a registered name (``hrnet weights list``) is fetched into the cache."""
    from hrnet.weights import resolve_weights

    return None if spec is None else resolve_weights(spec)


def cmd_predict(args: argparse.Namespace) -> int:
    from hrnet.detect import load_detector
    from hrnet.inference import PoseEstimator
    from hrnet.predict import DetectionBoxes, predict_paths
    from hrnet.track import OneEuroSettings
    from hrnet.video import VideoOptions

    config = _experiment(args.config, args.set)
    if args.boxes and args.detector:
        raise ConfigError("give --boxes (boxes from a file) or --detector (boxes found in the images), not both")
    detector = None
    if args.detector:
        detector = load_detector(
            args.detector,
            format=args.detector_format,
            threshold=args.detector_threshold,
            iou=args.detector_iou,
            input_size=_input_size(args.detector_size) if args.detector_size else None,
        )
    estimator = PoseEstimator.from_config(
        config,
        args.weights,
        device=args.device or config.runtime.device,
        backend=args.backend,
        fast=not args.plain,
        compile=args.compile,
        precision=args.precision,
        detector=detector,
    )
    detections = DetectionBoxes(args.boxes, config.test.box_score_threshold) if args.boxes else None
    video = VideoOptions(
        detect_every=args.detect_every,
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
    )
    print(f"wrote {len(report.written)} files to {args.out}")
    for path, reason in report.failed:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from hrnet.detect import load_detector
    from hrnet.inference import PoseEstimator
    from hrnet.serve import ServeLimits, serve

    limits = ServeLimits.from_units(
        max_upload_mb=args.max_upload_mb,
        max_megapixels=args.max_megapixels,
        max_boxes=args.max_boxes,
        max_batch=args.max_batch,
        batch_window_ms=args.batch_window_ms,
    )
    detector = load_detector(args.detector) if args.detector else None
    config = _experiment(args.config, args.set)
    estimator = PoseEstimator.from_config(
        config, args.weights, device=args.device or config.runtime.device, backend=args.backend
    )
    serve(estimator, detector, host=args.host, port=args.port, limits=limits, model_name=args.config)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hrnet.export import export_from_config

    out = Path(args.out)
    for source in (args.weights, args.config):
        if source and Path(source).exists() and out.resolve() == Path(source).resolve():
            raise ConfigError(f"--out {out} is the input {source}: give another file name")
    check_writable_file(out, "--out file")
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
    )
    kind = "int8 (calibrated), checked against the fp32 graph" if args.precision == "int8" else "checked"
    print(f"wrote {path} (input 'image' N×3×{config.model.input_size[0]}×{config.model.input_size[1]}, "
          f"output 'heatmaps'; {kind} against ONNX Runtime)")  # fmt: skip
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hrnet.data.synthetic import write_synthetic

    with tqdm(total=args.train + args.val, desc="synthetic images", unit="img") as bar:
        files = write_synthetic(args.out, args.train, args.val, args.seed, progress=lambda n: bar.update(1))
    for split, path in files.items():
        print(f"{split}: {path}")
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    from hrnet.data.show import show_samples
    from hrnet.visualize import write_image

    config = _experiment(args.config, args.set)
    path = write_image(args.out, show_samples(config, args.split, args.n, args.seed))
    print(f"wrote {path}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from hrnet.models.tf_checkpoint import convert_tf_port

    result = convert_tf_port(args.checkpoint, args.out)
    widths = "/".join(map(str, result.model.stages[-1].num_channels))
    print(
        f"wrote {result.weights} ({result.num_tensors} tensors; widths {widths}, {result.model.num_keypoints} "
        f"keypoints, batch_norm {result.model.batch_norm}) and {result.config}"
    )
    return 0


def cmd_weights_list(args: argparse.Namespace) -> int:
    from hrnet.weights import REGISTRY, cache_dir, cached_path

    print(f"cache: {cache_dir()}  ($HRNET_CACHE to move it)")
    for kind in ("pose", "detector"):
        print(f"\n{kind} weights" + (" (--weights NAME)" if kind == "pose" else " (--detector NAME)"))
        for entry in REGISTRY.values():
            if entry.kind != kind:
                continue
            here = "cached" if cached_path(entry).is_file() else "      "
            fits = f"; config {entry.config}" if entry.config else ""
            print(f"  {entry.name:32s} {here}  {entry.about}{fits}; checksum: {entry.verified_by}")
    return 0


def cmd_weights_get(args: argparse.Namespace) -> int:
    from hrnet.weights import REGISTRY, fetch, verify

    missing = [name for name in args.names if name not in REGISTRY]
    if missing:
        raise ConfigError(f"unknown weights name(s) {', '.join(missing)}; `hrnet weights list` shows the known ones")
    for name in args.names:
        entry = REGISTRY[name]
        path = fetch(entry)
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


def _resolve_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One ``args.config`` from the positional CONFIG or ``--config``; with ``--config``, a subcommand's first
    positional word belongs to its inputs (``hrnet predict --config C a.jpg b.jpg``)."""
    if not hasattr(args, "config_option"):
        return
    if args.config is None and args.config_option is None and len(getattr(args, "inputs", ())) > 1:
        # argparse gives a lone first word to the list when options follow it (hrnet predict C --weights W a.jpg)
        args.config = args.inputs.pop(0)
    if args.config_option is not None:
        if args.config is not None:
            if not hasattr(args, "inputs"):
                parser.error(f"{args.command}: two configs given ({args.config} and --config {args.config_option})")
            args.inputs.insert(0, args.config)
        args.config = args.config_option
    elif args.config is None and args.config_required:
        parser.error(f"{args.command}: give the config (an experiment YAML file or a model preset) first")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), help="count at this input size")
    p.add_argument("--layers", action="store_true", help="also list every block: output shape, parameters, MACs")
    p.add_argument("--batch", type=int, default=1, help="batch size of the --layers shapes and counts (default 1)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "draw",
        help="draw a network's structure (stages, branches, exchange units, shapes) as SVG, PNG or PDF",
        description="The picture is made from the network that would run: it is built on the meta device and "
        "run once with hooks for the shapes, parameters and multiply-adds.",
    )
    _add_config(p, f"a model preset ({', '.join(MODEL_PRESETS)}) or an experiment YAML file")
    p.add_argument("--out", required=True, help="the picture to write: .svg, .png or .pdf")
    p.add_argument("--input", metavar="HxW", help="input size, e.g. 256x192 (default: the config's)")
    p.add_argument("--detail", metavar="stageN[.M]", help="draw exchange module M (default 1) of stage N instead")
    p.set_defaults(func=cmd_draw)

    p = sub.add_parser("bench", help="images/s of a network here: plain, fast path, ONNX Runtime")
    _add_config(p, f"a model preset ({', '.join(MODEL_PRESETS)}) or an experiment YAML file")
    p.add_argument("--weights", help="weights to load (the speed does not depend on them)")
    p.add_argument("--batch", type=int, default=16, help="persons a forward pass (default 16)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 (default: a GPU if there is one)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; figures are medians")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per configuration in a round")
    p.add_argument("--compile", action="store_true", help="also time the fast path with torch.compile")
    p.add_argument(
        "--precision",
        metavar="LIST",
        help="compare precisions instead, e.g. fp32,bf16,int8: images/s and multiples of the fp32 limit",
    )
    p.set_defaults(func=cmd_bench, runs_network=True)

    p = sub.add_parser("train", help="train a network (torchrun --nproc_per_node=N -m hrnet train ... for DDP)")
    _add_config(p, "experiment YAML file (or a model preset with the default COCO recipe)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last.safetensors")
    p.add_argument("--overwrite", action="store_true", help="delete the folder's earlier run and start anew")
    p.set_defaults(func=cmd_train, runs_network=True)

    p = sub.add_parser("eval", help="evaluate weights on the validation split (COCO AP/AR, PCKh for MPII)")
    _add_config(p, "experiment YAML file")
    p.add_argument("--weights", required=True, help="our .safetensors, an official / MMPose .pth, or a weights name")
    p.add_argument("--boxes", help="COCO detection-results JSON of person boxes (default: ground-truth boxes)")
    p.add_argument("--draw", type=int, default=0, metavar="N", help="also draw N images: prediction | truth")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32", help=PRECISION_HELP)
    p.add_argument("--out", help="output folder (default: <train.out_dir>/<train.name>/eval)")
    p.set_defaults(func=cmd_eval, runs_network=True)

    p = sub.add_parser(
        "predict",
        help="keypoints for images, folders, videos, webcams and streams",
        description="Top-down pose estimation on your own files. Person boxes come from --boxes (a COCO "
        "detection-results JSON matched by image file name or id) or from a person detector (--detector); with "
        "neither, the default, every image (and every video frame) is taken as ONE person box covering the whole "
        "frame. Videos give <name>.jsonl, e.g. clip.mp4.jsonl (a line per frame, every person with a track_id), "
        "and <stem>_pose.mp4 (H.264, plays in browsers).",
    )
    _add_config(p, "experiment YAML file or model preset")
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files, folders of images/videos, video files, a webcam index (0), stream URLs",
    )
    p.add_argument(
        "--weights", required=True, help="our .safetensors, an official/MMPose .pth, an .onnx, or a weights name"
    )
    p.add_argument("--boxes", help="COCO detection-results JSON (default: the whole image is one person)")
    p.add_argument(
        "--detector",
        help="find the persons with: 'hog' (OpenCV's HOG people detector, built in but weak: upright, whole, "
        "large people only), an .onnx person detector (MMDeploy YOLOX/RTMDet end-to-end, or an ultralytics "
        "YOLOv8/YOLO11 export), or a detector name from `hrnet weights list` (default: none, the whole image is "
        "one person)",
    )
    p.add_argument(
        "--detector-format",
        choices=("yolox", "rtmdet", "ultralytics"),
        help="the ONNX detector's layout and preprocessing (default: recognised from its outputs)",
    )
    p.add_argument(
        "--detector-threshold",
        type=float,
        help="keep detections scoring at least this (default: the detector's own: 0.3 MMDeploy, 0.25 "
        "ultralytics, 0.5 hog)",
    )
    p.add_argument("--detector-iou", type=float, help="NMS IoU threshold for detections (default 0.7; hog 0.5)")
    p.add_argument("--detector-size", metavar="HxW", help="input size of an ONNX detector with a dynamic input")
    p.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    p.add_argument(
        "--backend", choices=("torch", "onnxruntime"), default="torch", help="PyTorch, or ONNX Runtime for an .onnx"
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: the config's runtime.device, 'auto')")
    p.add_argument("--threshold", type=float, default=0.3, help="hide keypoints scoring below this in drawings")
    p.add_argument("--no-draw", action="store_true", help="write only the JSON results")
    p.add_argument("--plain", action="store_true", help="run the model as is (no BatchNorm folding)")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast path (worth it for long runs)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32", help=PRECISION_HELP)
    video = p.add_argument_group("video", "how persons are found and followed through the frames of a video")
    video.add_argument(
        "--detect-every",
        type=int,
        default=1,
        metavar="N",
        help="find persons every N-th frame (default 1: all); in between each person's box comes from its "
        "keypoints in the frame before",
    )
    video.add_argument(
        "--track-by", choices=("iou", "oks"), default="iou", help="match persons to tracks by box IoU or keypoint OKS"
    )
    video.add_argument("--track-threshold", type=float, default=0.3, help="least IoU/OKS to keep a track's id")
    video.add_argument(
        "--max-missed", type=int, default=10, metavar="M", help="retire a track's id after M frames unseen (default 10)"
    )
    video.add_argument("--smooth", action="store_true", help="One-Euro smoothing of each track's keypoints")
    video.add_argument(
        "--smooth-cutoff", type=float, default=1.0, metavar="HZ", help="One-Euro cut-off at rest (lower: steadier)"
    )
    video.add_argument(
        "--smooth-beta", type=float, default=0.02, help="One-Euro speed coefficient (higher: less lag when moving)"
    )
    p.set_defaults(func=cmd_predict, runs_network=True)

    p = sub.add_parser(
        "serve",
        help="an HTTP pose service (POST /v1/pose) with a page to try it at /",
        description="Serves POST /v1/pose (an image, optional person boxes → COCO keypoint results or, with "
        "?draw=1, the drawn JPEG), GET /v1/model, GET /healthz, the API docs at /docs and a page at / to drop a "
        "photo on. Requests that arrive together share a forward pass. Needs the 'serve' extra.",
    )
    _add_config(p, "experiment YAML file or model preset")
    p.add_argument("--weights", required=True, help="our .safetensors, an official/MMPose .pth, or an .onnx")
    p.add_argument(
        "--detector",
        help="person detector for requests without boxes: 'hog', an .onnx detector or a name from `hrnet weights "
        "list` (default: none, the whole image is one person)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument(
        "--backend", choices=("torch", "onnxruntime"), default="torch", help="PyTorch, or ONNX Runtime for an .onnx"
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: the config's runtime.device, 'auto')")
    p.add_argument("--max-batch", type=int, help="persons a forward pass (default: the config's test.batch_size)")
    p.add_argument("--batch-window-ms", type=float, default=5.0, help="wait for more requests to batch (default 5)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="request body limit (default 20 MiB)")
    p.add_argument("--max-megapixels", type=float, default=40.0, help="image size limit (default 40 M pixels)")
    p.add_argument("--max-boxes", type=int, default=100, help="person boxes a request (default 100)")
    p.set_defaults(func=cmd_serve, runs_network=True)

    p = sub.add_parser("export", help="export to ONNX (dynamic batch), verified against ONNX Runtime")
    _add_config(p, "experiment YAML file or model preset")
    p.add_argument("--weights", help="weights to export (default: random initialisation)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32", help="int8: static quantization")
    p.add_argument("--calibration", metavar="CONFIG", help="int8: experiment whose training crops calibrate")
    p.add_argument("--calibration-crops", type=int, default=320, help="int8: crops to calibrate on (default 320)")
    p.set_defaults(func=cmd_export)

    data = sub.add_parser("data", help="data sets: make the synthetic one, look at training samples")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("synth", help="write the built-in synthetic COCO-format data set")
    p.add_argument("--out", required=True, help="output folder (annotations/, images/)")
    p.add_argument("--train", type=int, default=4000, help="training images (default 4000)")
    p.add_argument("--val", type=int, default=500, help="validation images (default 500)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the drawn persons (default 0)")
    p.set_defaults(func=cmd_data_synth)
    p = data_sub.add_parser("show", help="draw augmented samples with their skeletons and heatmaps")
    _add_config(p, "experiment YAML file")
    p.add_argument("--split", choices=("train", "val"), default="train", help="which split (default train)")
    p.add_argument("-n", type=int, default=16, help="how many samples (default 16)")
    p.add_argument("--out", default="samples.png", help="output picture (default samples.png)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the samples and augmentations (default 0)")
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
