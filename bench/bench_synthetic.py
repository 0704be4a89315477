"""Synthetic data set speed: `write_synthetic` images/s on one core and its cost over bare JPEG writing.

Run: ``.venv/bin/python bench/bench_synthetic.py`` (about a minute). The process is pinned to one CPU and
OpenCV and torch to one thread. In the same run it writes the *same* images again with a bare ``cv2.imwrite``
(drawn beforehand, untimed; same size and JPEG quality): the ratio is what the figures, backgrounds and
annotations cost beyond encoding and writing the JPEGs. Each figure is the best of ``--repeats`` rounds. Writes
``bench/results/synthetic.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import torch
from common import provenance, write_results

from hrnet.data.synthetic import IMAGE_SIZE, JPEG_QUALITY, make_image, write_synthetic


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rounds.append(time.perf_counter() - start)
    return min(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    n = args.images
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    load = os.getloadavg()[0]  # other work on the machine slows every figure below
    all_cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, all_cpus[:1])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_synthetic(out / "warm", 8, 0)
        synth_s = best_seconds(lambda: write_synthetic(out / "synth", n, 0, seed=0), args.repeats)
        draw_s = best_seconds(lambda: [make_image(0, "train", i) for i in range(n)], args.repeats)
        frames = [cv2.cvtColor(make_image(0, "train", i)[0], cv2.COLOR_RGB2BGR) for i in range(n)]
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        bare_s = best_seconds(
            lambda: [cv2.imwrite(str(out / f"{i:06d}.jpg"), frame, params) for i, frame in enumerate(frames)],
            args.repeats,
        )
    os.sched_setaffinity(0, all_cpus)
    rate, draw_rate, bare_rate = n / synth_s, n / draw_s, n / bare_s
    report = {
        **provenance(),
        "images": n,
        "image_size": list(IMAGE_SIZE),
        "jpeg_quality": JPEG_QUALITY,
        "opencv": cv2.__version__,
        "load_average_at_start": load,
        "synthetic_images_per_s_1_core": rate,
        "drawing_only_images_per_s_1_core": draw_rate,
        "bare_imwrite_images_per_s_1_core": bare_rate,
        "synthetic_over_bare_time": bare_rate / rate,
    }
    lines = [
        "# Synthetic data set: generation speed",
        f"{n} images of {IMAGE_SIZE[1]}×{IMAGE_SIZE[0]}, JPEG quality {JPEG_QUALITY}, OpenCV {cv2.__version__}; "
        f"best of {args.repeats} rounds; load average {load:.1f} when it started (other work on this machine).",
        "",
        "| what | images/s |",
        "| --- | ---: |",
        f"| `write_synthetic`, 1 core (draw, annotate, encode, write, JSON) | {rate:.0f} |",
        f"| drawing and annotating only (`make_image`), 1 core | {draw_rate:.0f} |",
        f"| bare `cv2.imwrite` of the same images, 1 core | {bare_rate:.0f} |",
        "",
        f"Generating takes **{bare_rate / rate:.1f}×** the time of bare JPEG writing; **{rate:.0f} images/s** on one "
        "core (target ≥ 100).",
    ]
    write_results("synthetic", report, lines)


if __name__ == "__main__":
    main()
