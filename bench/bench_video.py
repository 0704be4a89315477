"""Video frames/s end to end — decode → detect → pose → draw → encode (H.264) and JSON lines — with the person
detector on every frame against every 5th frame (``hrnet predict --detect-every 5``), one run each.

The clip: a slow camera pan across two of the shared COCO photos placed side by side (real people, so that a real
detector finds some), 640×400 pixels, written as Motion-JPEG. The pose network is HRNet-W32 256×192 with random
weights on the fast path, as ``hrnet predict`` runs it (the speed does not depend on the weights). Random weights
give keypoints that score low, so here a box is carried between detections from all of a person's keypoints
(``keypoint_threshold`` 0): both runs then estimate the same persons, and the difference is the detector's cost.

The detector: ``--detector hog`` (default; OpenCV's HOG people detector, which OpenCV 5 has only in its contrib
build) or an ONNX detector file, through ``hrnet.detect.load_detector``.

Run: ``.venv/bin/python bench/bench_video.py`` from the repository root (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from common import provenance, write_results

from hrnet.codec import codec_from_config
from hrnet.config import ExperimentConfig, model_preset
from hrnet.detect import load_detector
from hrnet.inference import PoseEstimator
from hrnet.keypoints import COCO17
from hrnet.models.fuse import prepare_for_inference
from hrnet.models.hrnet import build_model
from hrnet.runtime import keep_freed_memory
from hrnet.video import Detector, VideoOptions, predict_video

PHOTOS = ("000000196141.jpg", "000000197388.jpg")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "coco"


def make_clip(path: Path, frames: int, size: tuple[int, int] = (400, 640), fps: float = 25.0) -> None:
    """A pan across the photos side by side, ``frames`` frames of ``size`` (height, width)."""
    height, width = size
    photos = [cv2.imread(str(SHARED / name)) for name in PHOTOS]
    if any(p is None for p in photos):
        raise SystemExit(f"the shared COCO photos {PHOTOS} are missing from {SHARED}")
    strip = np.concatenate([cv2.resize(p, (round(p.shape[1] * height / p.shape[0]), height)) for p in photos], axis=1)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for x in np.linspace(0, strip.shape[1] - width, frames).round().astype(int):
        writer.write(np.ascontiguousarray(strip[:, x : x + width]))
    writer.release()


class TimedDetector:
    """A detector that counts its calls, the seconds they took and the persons found."""

    def __init__(self, detector: Detector):
        self.detector = detector
        self.calls, self.seconds, self.persons = 0, 0.0, 0

    def __call__(self, image_bgr: np.ndarray) -> Any:
        start = time.perf_counter()
        found = self.detector(image_bgr)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.persons += len(found.boxes)
        return found


def summary(report: dict[str, Any]) -> list[str]:
    """The Markdown of ``bench/results/video.md``."""
    rows, (before, after) = report["rows"], report["load_average_1min_before_after"]
    share = [r["detector_seconds"] / r["seconds"] for r in rows]
    return [
        "# Video frames/s end to end: detector every frame vs every 5th",
        f"decode → detect ({report['detector']}) → pose ({report['model']}) → draw → encode (H.264, PyAV) and JSON "
        f"lines, through `hrnet.video.predict_video`; {report['clip']}; {report['threads']} threads; one run each "
        "(after a 3-frame warm-up).",
        "",
        "| detector on | frames/s | s/frame | detector ms/call | detector share of the time | persons posed/frame |",
        "| --- | --- | --- | --- | --- | --- |",
        *[
            f"| every {'frame' if r['detect_every'] == 1 else str(r['detect_every']) + 'th frame'} | "
            f"{r['frames_per_s']:.3f} | {1 / r['frames_per_s']:.1f} | {r['detector_ms_per_call']:.0f} | {s:.0%} | "
            f"{r['persons_posed_per_frame']:.2f} |"
            for r, s in zip(rows, share, strict=True)
        ],
        "",
        f"Every 5th frame over every frame: **{report['every_5th_over_every_frame']:.2f}×** frames/s. The pose "
        "network (about 3 persons a frame, each run twice for the flip test) takes the rest of the time, so on a CPU "
        "a cheaper detector schedule gains only the detector's share. Speeds are ratios within this run only: the "
        f"machine was shared with other processes loading the CPU (load average, 1 min, before / after: {before:.1f}"
        f" / {after:.1f} on {report.get('cores', 2)} cores), which slowed everything several times over.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detector", default="hog", help="hog (default) or an ONNX person detector file")
    parser.add_argument("--frames", type=int, default=30, help="frames in the clip (default 30)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `hrnet predict` runs
    config = ExperimentConfig(model=model_preset("w32"))
    torch.manual_seed(0)
    model = prepare_for_inference(build_model(config.model).eval())
    estimator = PoseEstimator(model, codec_from_config(config.model, config.data), COCO17, config.test)
    detector = load_detector(args.detector)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "pan.avi"
        make_clip(clip, args.frames)
        warm = Path(tmp) / "warm.avi"
        make_clip(warm, 3)
        predict_video(estimator, warm, Path(tmp) / "warm", detector=detector, progress=False)
        for every in (1, 5):
            timed = TimedDetector(detector)
            options = VideoOptions(detect_every=every, keypoint_threshold=0.0)
            out = Path(tmp) / f"every{every}"
            start = time.perf_counter()
            written = predict_video(estimator, clip, out, detector=timed, options=options, progress=False)
            seconds = time.perf_counter() - start
            lines = written[0].read_text().splitlines()
            posed = sum(line.count('"track_id"') for line in lines)
            rows.append({
                "detect_every": every,
                "frames": len(lines),
                "seconds": seconds,
                "frames_per_s": len(lines) / seconds,
                "detector_calls": timed.calls,
                "detector_seconds": timed.seconds,
                "detector_ms_per_call": 1000 * timed.seconds / max(timed.calls, 1),
                "persons_found_per_detection": timed.persons / max(timed.calls, 1),
                "persons_posed_per_frame": posed / len(lines),
            })  # fmt: skip
    load_after = os.getloadavg()[0]
    ratio = rows[1]["frames_per_s"] / rows[0]["frames_per_s"]
    report = {
        **provenance(),
        "threads": args.threads,
        "detector": args.detector,
        "opencv": cv2.__version__,
        "model": "HRNet-W32 256x192, random weights, fast path, flip test",
        "clip": f"{args.frames} frames, 640x400, pan across {' + '.join(PHOTOS)}",
        "rows": rows,
        "every_5th_over_every_frame": ratio,
        "load_average_1min_before_after": [load_before, load_after],
        "cores": os.cpu_count(),
    }
    write_results("video", report, summary(report))


if __name__ == "__main__":
    main()
