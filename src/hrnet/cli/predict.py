"""``hrnet predict`` and ``hrnet serve``: a network on your own images, videos, cameras and uploads (options
and what they call)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hrnet.cli.options import (
    CONFIG_HELP,
    WEIGHTS_HELP,
    add_config,
    add_detector,
    add_overwrite,
    add_runtime,
    finite_number,
    fraction,
    megapixels,
    nonnegative_int,
    parse_input_size,
    positive_int,
    positive_number,
    whole_number,
)
from hrnet.config import ExperimentConfig
from hrnet.errors import ConfigError, WeightsUnavailableError

if TYPE_CHECKING:
    from hrnet.hub.registry import WeightsFile
    from hrnet.keypoints import KeypointSet
    from hrnet.pose.estimator import PoseEstimator


log = logging.getLogger(__name__)


def _network_setup(args: argparse.Namespace) -> tuple[ExperimentConfig, str | None]:
    """The experiment (``experiment_for``) and the detector of a command that finds persons, hands, faces, ...
    (predict, serve): ``--detector`` defaults to the keypoint set's (``default_detector``: by its task) for real
    weights, to none with ``--boxes`` or for weights trained on the synthetic figures; without a detector or boxes
    the one line of ``whole_image_note`` is logged. Without ``--weights``: a registered name given as the config's
    own file, else ``DEFAULT_WEIGHTS``. Every file to download is tried first, so that offline one error lists them."""
    from hrnet.hub.registry import DEFAULT_WEIGHTS, REGISTRY, config_for_weights, resolve_many, weights_unavailable
    from hrnet.models.checkpoint import experiment_for, keypoint_set_for
    from hrnet.pose.detect import default_detector
    from hrnet.pose.estimator import trained_on_synthetic
    from hrnet.pose.persons import whole_image_note

    named = args.config is not None and config_for_weights(args.config) is not None
    args.weights = args.weights or (args.config if named else DEFAULT_WEIGHTS)
    synthetic = trained_on_synthetic(args.weights)  # our own weights say so (a name's file is real weights)
    if synthetic:
        log.warning(
            "%s was trained on hrnet's synthetic stick figures (the demo): on real photos its keypoints mean "
            "nothing; for real photos use --weights %s (hrnet weights list)", args.weights, DEFAULT_WEIGHTS,
        )  # fmt: skip
    config = experiment_for(args.weights, args.config, args.set)  # a registered name's needs no download
    keypoint_set = keypoint_set_for(args.weights, config)
    takes_boxes = hasattr(args, "boxes")  # predict reads a boxes file; serve takes boxes with each request
    boxes_given = bool(getattr(args, "boxes", None))
    detector = args.detector
    if detector is None and not boxes_given and not synthetic:
        detector = default_detector(keypoint_set)
    if detector == "none":
        detector = None
    if detector is None and not boxes_given:
        log.warning(whole_image_note(keypoint_set, "--boxes FILE" if takes_boxes else "boxes in each request"))
    try:
        resolve_many([args.weights, *([detector] if detector else [])])
    except WeightsUnavailableError as err:  # the names resolve_many found in the registry
        missing = [(REGISTRY[name], reason) for name, reason in err.missing]
        raise weights_unavailable(missing, _instead(missing, keypoint_set, args)) from None
    return config, detector


def _instead(missing: Sequence[tuple[WeightsFile, str]], keypoint_set: KeypointSet, args: argparse.Namespace) -> str:
    """The options that do without the missing files: a file for each, or for a detector no detector at all."""
    from hrnet.pose.persons import instance_noun

    ways = []
    for entry, _ in missing:
        if entry.kind == "pose":
            # A .pth file does not say which network it is: the name stays, as the config.
            keep = "" if args.config else f" with the name as the config (`hrnet {args.command} {entry.name} ...`)"
            ways.append(f"--weights FILE{keep}")
        else:
            boxes = ", or --boxes FILE (your own boxes)" if hasattr(args, "boxes") else ""
            one = instance_noun(keypoint_set.task)
            ways.append(f"--detector FILE.onnx, or --detector none (each image one {one}){boxes}")
    return "give files you have: " + "; ".join(ways)


def _open_estimator(args: argparse.Namespace, config: ExperimentConfig, detector: str | None) -> PoseEstimator:
    """The estimator the runtime and detector options (``add_runtime``, ``add_detector``) ask for."""
    from hrnet.pose.detect import load_detector
    from hrnet.pose.estimator import PoseEstimator

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
    """Top-down pose estimation on your own files: `hrnet predict photo.jpg` runs HRNet-W32 trained on COCO (MMPose's
    checkpoint) with RTMDet-nano finding the persons, both downloaded on first use. Boxes come from --boxes (a COCO
    detection-results JSON matched by image file name or id) or from the detector, which follows the keypoint set
    (persons: RTMDet-nano, faces: OpenCV's face cascade); with --detector none, and by default for hands, animals and
    other sets, every image (and every video frame) is ONE box covering it. Videos give <name>.jsonl, e.g.
    clip.mp4.jsonl (a line per frame, every person with a track_id), and <stem>_pose.mp4 (H.264, plays in browsers)."""
    from hrnet.apps.predict import DetectionBoxes, predict_paths
    from hrnet.io.images import MAX_PIXELS
    from hrnet.pose.track import OneEuroSettings, VideoOptions

    if args.boxes and args.detector not in (None, "none"):
        raise ConfigError("give --boxes (boxes from a file) or --detector (boxes found in the images), not both")
    config, detector = _network_setup(args)
    if args.realtime:
        config, args.precision = realtime(config, args)
    estimator = _open_estimator(args, config, detector)
    detections = DetectionBoxes(args.boxes, args.box_score, max_boxes=args.max_boxes) if args.boxes else None
    tracking = ("new_track_keypoints", "max_detector_misses", "track_by", "track_threshold", "max_missed")
    video = VideoOptions(
        **{name: getattr(args, name) for name in tracking},  # the options named after their fields
        detect_every=args.detect_every or (REALTIME_DETECT_EVERY if args.realtime else VideoOptions.detect_every),
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


# The default detector by keypoint-set task (hrnet.pose.detect.TASK_DETECTORS), for --help.
DETECTORS_HELP = "{} for persons, haar-face for faces, none (the whole image) for hands, animals, clothes, other"
REALTIME_DETECT_EVERY = 10  # --realtime: the detector on every 10th frame, persons carried by their keypoints between


def realtime(config: ExperimentConfig, args: argparse.Namespace) -> tuple[ExperimentConfig, str | None]:
    """``--realtime``: no flip test, and when neither a precision nor a backend is asked for, the fastest precision
    this CPU runs a checkpoint in (``hrnet.runtime.backends.preferred_backend``).

    Args:
        config: the experiment.
        args: ``hrnet predict``'s options (``precision``, ``backend``, ``weights``, ``detect_every``).

    Returns:
        The experiment without the flip test, and the precision (None: the weights file's or the backend's own).
    """
    from hrnet.runtime.backends import is_onnx_file, preferred_backend

    config = dataclasses.replace(config, test=dataclasses.replace(config.test, flip_test=False))
    precision = args.precision
    if precision is None and args.backend is None and not is_onnx_file(args.weights):
        entry = preferred_backend("checkpoint", fastest=True)
        precision = entry.precision if entry else None
    log.info(
        "--realtime: flip test off, precision %s, the detector every %s frames",
        precision or "of the weights file", args.detect_every or REALTIME_DETECT_EVERY,
    )  # fmt: skip
    return config, precision


def cmd_serve(args: argparse.Namespace) -> int:
    """Serves POST /v1/pose (an image, optional person boxes → COCO keypoint results or, with ?draw=1, the drawn
    JPEG), GET /v1/model, GET /healthz, the API docs at /docs and a page at / to drop a photo on. Requests that
    arrive together share a forward pass. Needs the 'serve' extra."""
    from hrnet.apps.serve import ServeLimits, serve

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


def add_predict(sub: Any) -> None:
    from hrnet.hub.registry import DEFAULT_DETECTOR, DEFAULT_WEIGHTS
    from hrnet.pose.track import MATCH_METHODS, OneEuroSettings, VideoOptions

    p = sub.add_parser(
        "predict", help="keypoints for images, folders, videos, webcams and streams", description=cmd_predict.__doc__
    )
    add_config(
        p,
        f"{CONFIG_HELP} (default: the one the weights name; a weights name as CONFIG runs those weights)",
        required=False,
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
    p.add_argument(
        "--max-boxes", type=positive_int, default=100, help="--boxes entries an image, best first (default 100)"
    )
    add_detector(
        p,
        f"by the keypoint set: {DETECTORS_HELP.format(DEFAULT_DETECTOR)}; none with --boxes or weights "
        "trained on the demo's data",
    )
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
        help=f"find persons every N-th frame (default {VideoOptions.detect_every}: all; {REALTIME_DETECT_EVERY} with "
        "--realtime); in between each person's box comes from its keypoints in the frame before",
    )
    video.add_argument(
        "--realtime",
        action="store_true",
        help="for webcams and streams: no flip test, the fastest precision this CPU runs well (bf16 with AVX-512 "
        f"BF16/AMX; an int8 .onnx runs int8), the detector every {REALTIME_DETECT_EVERY}th frame (off: as the config "
        "says)",
    )
    video.add_argument(
        "--track-by",
        choices=MATCH_METHODS,
        default=VideoOptions.track_by,
        help="match persons to tracks by box IoU or keypoint OKS (default %(default)s)",
    )
    video.add_argument("--smooth", action="store_true", help="One-Euro smoothing of each track's keypoints")
    for flag, default, kind, metavar, text in (
        ("--new-track-keypoints", VideoOptions.new_track_keypoints, nonnegative_int, "K",
         "a detection starts a new track only with at least K keypoints above --threshold"),
        ("--max-detector-misses", VideoOptions.max_detector_misses, nonnegative_int, "M",
         "a track the detector misses is carried by its keypoints through M detection frames"),
        ("--track-threshold", VideoOptions.track_threshold, fraction, "IOU", "least IoU/OKS to keep a track's id"),
        ("--max-missed", VideoOptions.max_missed, nonnegative_int, "M", "retire a track's id after M frames unseen"),
        ("--smooth-cutoff", OneEuroSettings.min_cutoff, positive_number, "HZ",
         "One-Euro cut-off at rest (lower: steadier)"),
        ("--smooth-beta", OneEuroSettings.beta, finite_number(0.0), "BETA",
         "One-Euro speed coefficient (higher: less lag when moving)"),
    ):  # fmt: skip
        video.add_argument(flag, type=kind, default=default, metavar=metavar, help=f"{text} (default %(default)s)")
    p.set_defaults(func=cmd_predict, runs_network=True)


def add_serve(sub: Any) -> None:
    from hrnet.hub.registry import DEFAULT_DETECTOR, DEFAULT_WEIGHTS

    p = sub.add_parser(
        "serve", help="an HTTP pose service (POST /v1/pose) with a page to try it at /", description=cmd_serve.__doc__
    )
    add_config(
        p,
        f"{CONFIG_HELP} (default: the one the weights name; a weights name as CONFIG runs those weights)",
        required=False,
    )
    add_runtime(p, weights_required=False, weights_help=f"{WEIGHTS_HELP} (default {DEFAULT_WEIGHTS})")
    add_detector(
        p,
        f"by the keypoint set: {DETECTORS_HELP.format(DEFAULT_DETECTOR)}; none for weights trained on the demo's data",
    )
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
