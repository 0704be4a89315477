"""The subcommands that run a network on data: ``predict``, ``serve``, ``eval``, ``bench`` and ``export`` (their
options and what they call). A little long: five commands whose options, defaults and help texts are most of it."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrnet.cli.options import (
    WEIGHTS_HELP,
    add_config,
    add_detector,
    add_overwrite,
    add_runtime,
    comma_list,
    experiment,
    finite_number,
    fraction,
    megapixels,
    nonnegative_int,
    parse_input_size,
    positive_int,
    positive_number,
    weights_path,
    whole_number,
)
from hrnet.config import MODEL_PRESETS, ExperimentConfig, ModelConfig
from hrnet.errors import ConfigError, DownloadError
from hrnet.outputs import OutputFolder

if TYPE_CHECKING:
    from hrnet.inference import PoseEstimator

log = logging.getLogger("hrnet")


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from hrnet.backends import BACKENDS
    from hrnet.speed import measure_backends

    model_cfg = experiment(args.config, args.set).model
    if args.precision:
        if args.backend:
            raise ConfigError("give --precision (compare precisions) or --backend (compare backends), not both")
        return _bench_precisions(args, model_cfg)
    names = comma_list(args.backend, "--backend") if args.backend else _default_bench_backends()
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
        f"{result.peak_backend}) ÷ (2 × {result.multiply_accumulates / 1e9:.3f} G multiply-adds)"
    )
    for row in result.rows:
        multiple = row.images_per_s / result.limit
        print(f"  {row.backend:17s} {row.images_per_s:9.2f} images/s  {multiple:.2f}× fp32 limit")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from hrnet.backends import open_backend
    from hrnet.engine.evaluate import COMMAND, Evaluator

    config = experiment(args.config, args.set)
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
    config = experiment(args.config, args.set) if args.config else experiment_for(args.weights, None, args.set)
    return config, detector


def _open_estimator(args: argparse.Namespace, config: ExperimentConfig, detector: str | None) -> PoseEstimator:
    """The estimator the runtime and detector options (``add_runtime``, ``add_detector``) ask for."""
    from hrnet.detect import load_detector
    from hrnet.inference import PoseEstimator

    found = None
    if detector:
        found = load_detector(
            detector,
            format=args.detector_format,
            threshold=args.detector_threshold,
            iou=args.detector_iou,
            input_size=parse_input_size(args.detector_size) if args.detector_size else None,
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
        config, args.precision = realtime(config, args)
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
    for _, reason in report.failed:
        print(f"failed: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


REALTIME_DETECT_EVERY = 10  # --realtime: the detector on every 10th frame, persons carried by their keypoints between


def realtime(config: ExperimentConfig, args: argparse.Namespace) -> tuple[ExperimentConfig, str | None]:
    """``--realtime``: no flip test, and the fastest precision this CPU runs well when none is asked for: bf16 on
    a CPU with AVX-512 BF16 or AMX, an ``.onnx`` file's own (an int8 file runs int8), else fp32."""
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

    limits = ServeLimits.from_units(
        max_upload_mb=args.max_upload_mb,
        max_megapixels=args.max_megapixels,
        max_boxes=args.max_boxes,
        max_batch=args.max_batch,
        batch_window_ms=args.batch_window_ms,
    )
    config, detector = _network_setup(args)
    estimator = _open_estimator(args, config, detector)
    serve(estimator, host=args.host, port=args.port, limits=limits, model_name=args.config or args.weights)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hrnet.export import export_from_config

    config = experiment(args.config, args.set)
    if args.calibration and args.precision != "int8":
        raise ConfigError("--calibration is for --precision int8")
    calibration = experiment(args.calibration, args.set) if args.calibration else None
    path = export_from_config(
        config,
        weights_path(args.weights),
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


def add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="images/s of a network here: each backend or precision, timed together")
    add_config(p, f"a model preset ({', '.join(MODEL_PRESETS)}) or an experiment YAML file")
    add_runtime(
        p,
        weights_required=False,
        weights_help="weights to load (default: a random initialisation; the speed does not depend on them); a file "
        "or a name from `hrnet weights list`",
        compare=True,
    )
    p.add_argument("--batch", type=positive_int, default=16, help="persons a forward pass (default 16)")
    p.add_argument(
        "--rounds", type=positive_int, default=3, help="interleaved timing rounds; figures are medians (default 3)"
    )
    p.add_argument("--seconds", type=positive_number, default=2.0, help="seconds per backend in a round (default 2)")
    p.set_defaults(func=cmd_bench, runs_network=True)


def add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate weights on the validation split (COCO AP/AR, PCKh for MPII)")
    add_config(p, "experiment YAML file")
    add_runtime(p)
    p.add_argument("--boxes", help="COCO detection-results JSON of person boxes (default: ground-truth boxes)")
    p.add_argument(
        "--draw", type=nonnegative_int, default=0, metavar="N", help="also draw N images: prediction | truth (0)"
    )
    p.add_argument("--out", help="output folder (default: <train.out_dir>/<train.name>/eval)")
    add_overwrite(p, "existing files in the output folder that hrnet eval did not write (never an input)")
    p.set_defaults(func=cmd_eval, runs_network=True)


def add_predict(sub: Any) -> None:
    from hrnet.weights import DEFAULT_DETECTOR, DEFAULT_WEIGHTS

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
    add_config(
        p, "experiment YAML file, shipped config or model preset (default: the one the weights name)", required=False
    )
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="image files, folders of images/videos, video files, a webcam index (0), stream URLs",
    )
    add_runtime(p, weights_required=False, weights_help=f"{WEIGHTS_HELP} (default {DEFAULT_WEIGHTS})")
    p.add_argument("--boxes", help="COCO detection-results JSON of the person boxes (default: the detector's)")
    p.add_argument(
        "--box-score",
        type=fraction,
        default=0.3,
        help="use --boxes entries scoring at least this (default 0.3, as MMPose's demo)",
    )
    add_detector(p, f"{DEFAULT_DETECTOR} for real weights; none with --boxes or weights trained on the demo's data")
    p.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    add_overwrite(p, "existing files in the --out folder that hrnet predict did not write (never an input)")
    p.add_argument(
        "--threshold", type=fraction, default=0.3, help="hide keypoints scoring below this in drawings (0.3)"
    )
    p.add_argument(
        "--max-megapixels",
        type=megapixels,
        help="refuse images of more than this many million pixels, read from the header before decoding (default "
        "40, as hrnet serve)",
    )
    p.add_argument("--no-draw", action="store_true", help="write only the JSON results")
    video = p.add_argument_group("video", "how persons are found and followed through the frames of a video")
    video.add_argument(
        "--detect-every",
        type=positive_int,
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
        type=nonnegative_int,
        default=4,
        metavar="K",
        help="a detection starts a new track only with at least K keypoints above --threshold (default 4)",
    )
    video.add_argument(
        "--max-detector-misses",
        type=nonnegative_int,
        default=10,
        metavar="M",
        help="a track the detector misses is carried by its keypoints through M detection frames (default 10)",
    )
    video.add_argument(
        "--track-by", choices=("iou", "oks"), default="iou", help="match persons to tracks by box IoU or keypoint OKS"
    )
    video.add_argument("--track-threshold", type=fraction, default=0.3, help="least IoU/OKS to keep a track's id")
    video.add_argument(
        "--max-missed",
        type=nonnegative_int,
        default=10,
        metavar="M",
        help="retire a track's id after M frames unseen (default 10)",
    )
    video.add_argument("--smooth", action="store_true", help="One-Euro smoothing of each track's keypoints")
    video.add_argument(
        "--smooth-cutoff",
        type=positive_number,
        default=1.0,
        metavar="HZ",
        help="One-Euro cut-off at rest (lower: steadier)",
    )
    video.add_argument(
        "--smooth-beta",
        type=finite_number(0.0),
        default=0.02,
        help="One-Euro speed coefficient (higher: less lag when moving)",
    )
    p.set_defaults(func=cmd_predict, runs_network=True)


def add_serve(sub: Any) -> None:
    from hrnet.weights import DEFAULT_DETECTOR, DEFAULT_WEIGHTS

    p = sub.add_parser(
        "serve",
        help="an HTTP pose service (POST /v1/pose) with a page to try it at /",
        description="Serves POST /v1/pose (an image, optional person boxes → COCO keypoint results or, with "
        "?draw=1, the drawn JPEG), GET /v1/model, GET /healthz, the API docs at /docs and a page at / to drop a "
        "photo on. Requests that arrive together share a forward pass. Needs the 'serve' extra.",
    )
    add_config(
        p, "experiment YAML file, shipped config or model preset (default: the one the weights name)", required=False
    )
    add_runtime(p, weights_required=False, weights_help=f"{WEIGHTS_HELP} (default {DEFAULT_WEIGHTS})")
    add_detector(p, f"{DEFAULT_DETECTOR} for real weights; none for weights trained on the demo's data")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=whole_number(1, 65535), default=8000, help="port to listen on (default 8000)")
    p.add_argument(
        "--max-batch", type=positive_int, help="persons a forward pass (default: the config's test.batch_size)"
    )
    p.add_argument(
        "--batch-window-ms",
        type=finite_number(0.0, 1000.0),
        default=5.0,
        help="wait for more requests to batch (default 5)",
    )
    p.add_argument("--max-upload-mb", type=positive_number, default=20.0, help="request body limit (default 20 MiB)")
    p.add_argument("--max-megapixels", type=megapixels, default=40.0, help="image size limit (default 40 M pixels)")
    p.add_argument("--max-boxes", type=positive_int, default=100, help="person boxes a request (default 100)")
    p.set_defaults(func=cmd_serve, runs_network=True)


def add_export(sub: Any) -> None:
    from hrnet.backends import EXPORT_PRECISIONS
    from hrnet.models.onnx import MAX_OPSET, MIN_OPSET, OPSET

    p = sub.add_parser("export", help="export to ONNX (dynamic batch), verified against ONNX Runtime")
    add_config(p, "experiment YAML file or model preset")
    p.add_argument("--weights", help="weights to export (default: random initialisation)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument(
        "--opset", type=whole_number(MIN_OPSET, MAX_OPSET), default=OPSET, help=f"ONNX opset version (default {OPSET})"
    )
    p.add_argument(
        "--precision", choices=EXPORT_PRECISIONS, default="fp32", help="int8: static quantization (default fp32)"
    )
    p.add_argument("--calibration", metavar="CONFIG", help="int8: experiment whose training crops calibrate")
    p.add_argument(
        "--calibration-crops", type=positive_int, default=320, help="int8: crops to calibrate on (default 320)"
    )
    add_overwrite(p, "an existing --out file that is not an earlier export (never the weights or a config)")
    p.set_defaults(func=cmd_export)
