"""Every path end to end against the network alone, in one run: a folder of photos (``hrnet predict``), a video
file, a live source, and ``hrnet serve`` under concurrent clients, each as ``N.NN× network-only``.

The network is HRNet-W32 256×192 with random weights (the speed does not depend on them), in one precision
(``--precision``: fp32 on the PyTorch fast path, bf16, or int8 through an ONNX file quantized here), flip test off
unless ``--flip``. "Network-only" is the same backend timed alone on random crops at the batch size each path
runs: the folder fills ``test.batch_size`` crops a forward pass, a video runs one frame (one person) at a time,
the service batches what its clients send together (at most 8 here). Each path runs ``REPEATS`` times, the
network alone timed before the first run and after each; a run's ratio is to the mean of the network-only rates
just before and just after it, and the median of the ratios counts: a virtual machine's speed drifts, by up to
a fifth within a minute on the 2-core EPYCs of these runs, and a reference timed minutes away moved a ratio by
as much.

- **folder**: 64 640×480 photos of one to three synthetic figures each (``hrnet.data.synthetic``'s drawing) with
  their person boxes given in a COCO detection-results file, through ``predict_paths`` (read ahead, batched,
  written behind: JSON and drawings). Rate: persons a second.
- **video**: a 640×480 clip of one figure walking, through ``predict_video``: decode, detect every 10th frame
  (a stand-in detector that returns the figure's true box at no cost, so that the path's own cost shows; the
  random network's keypoints score low, so boxes are carried from all keypoints), pose, track, draw, H.264.
  Rate: frames a second.
- **live**: the same clip served as an MJPEG stream over HTTP from 127.0.0.1 at 30 frames/s, read by
  ``predict_video`` as a live source: frames estimated over frames offered, and the latency from a frame's
  arrival to its output written (p50, p99).
- **serve**: ``hrnet serve``'s app in this process, run as the command runs it (the network in this thread,
  uvicorn in another), 8 clients (``LeanClient``) each posting one photo with its box, as fast as answered.
  Rate: requests a second.

Run: ``.venv/bin/python bench/bench_e2e.py [--precision fp32|bf16|int8] [--flip]`` on an idle machine (3.5 minutes
at int8, 7 at fp32 on 2 cores); writes ``bench/results/e2e_PRECISION.md`` and ``.json``.
"""

from __future__ import annotations

# As the hrnet command does (hrnet.cli): before PyTorch is loaded.
from hrnet.system import limit_openmp_spinning

limit_openmp_spinning()

import argparse
import base64
import http.server
import itertools
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from common import provenance, write_results

from hrnet.apps.predict import DetectionBoxes, predict_paths
from hrnet.apps.video import VideoStats, predict_video
from hrnet.codec import codec_from_config
from hrnet.config import load_config
from hrnet.data.synthetic import background, draw_figure, pose_keypoints
from hrnet.keypoints import COCO17
from hrnet.models.hrnet import build_model
from hrnet.pose.detect import Detections
from hrnet.pose.estimator import PoseEstimator
from hrnet.pose.track import VideoOptions
from hrnet.runtime.bench import interleaved_seconds, open_for_timing
from hrnet.runtime.precision import cpu_support
from hrnet.system import keep_freed_memory, one_opencv_thread

FRAME = (480, 640)  # height, width of the photos and of the clip
PHOTOS = 64
CLIP_FRAMES = 150
LIVE_FPS = 30.0
CLIENTS = 8
REPEATS = 5  # timed runs of each path but the live one: the median ratio counts (3 runs of one path spread 0.77-0.94)


def backend_name(precision: str) -> str:
    return {"fp32": "pytorch-fast", "bf16": "pytorch-bf16", "int8": "onnxruntime-int8"}[precision]


def scene(rng: np.random.Generator, xs: list[float], step: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A 640×480 BGR picture of figures standing at ``xs`` (pixels), moved ``step`` pixels right, and their boxes
    (the pixels each figure covers)."""
    canvas = background(rng, FRAME)
    body = FRAME[0] * 0.7
    boxes = []
    for i, x in enumerate(xs):
        pose = pose_keypoints(np.random.default_rng([7, i]), body, np.array([x, FRAME[0] * 0.55]), True)
        mask = draw_figure(np.random.default_rng([7, i, 1]), canvas, pose + np.array([step, 0.0]), body, True)
        ys, cols = np.nonzero(mask)
        boxes.append([cols.min(), ys.min(), cols.max() - cols.min() + 1, ys.max() - ys.min() + 1])
    return cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), np.array(boxes, dtype=np.float64)


def photos(folder: Path, count: int) -> Path:
    """``count`` JPEG photos of one to three figures in ``folder``, and a detection-results file of their boxes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    detections = []
    for i in range(count):
        picture, boxes = scene(rng, list(rng.uniform(100, 540, rng.integers(1, 4))))
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), picture, [cv2.IMWRITE_JPEG_QUALITY, 90])
        detections += [{"image_id": i, "bbox": box.tolist(), "score": 1.0, "category_id": 1} for box in boxes]
    boxes_file = folder.parent / f"{folder.name}_boxes.json"
    boxes_file.write_text(json.dumps(detections))
    return boxes_file


def walking_clip(frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``frames`` BGR frames of one figure walking 2 px a frame across a still 640×480 scene, and its boxes."""
    pictures = [scene(np.random.default_rng(11), [160.0], 2.0 * f) for f in range(frames)]
    return [p for p, _ in pictures], [b for _, b in pictures]


class TruthDetector:
    """The clip's true box for the frame shown (matched by the figure's position), at no cost to speak of."""

    def __init__(self, frames: list[np.ndarray], boxes: list[np.ndarray]):
        self.small = [cv2.resize(f, (32, 24)).astype(np.int16) for f in frames]
        self.boxes = boxes

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        small = cv2.resize(image_bgr, (32, 24)).astype(np.int16)
        index = int(np.argmin([np.abs(small - s).mean() for s in self.small]))
        return Detections(self.boxes[index], np.ones(1))


def network_only(estimator: PoseEstimator, batches: list[int], rounds: int, seconds: float) -> dict[int, float]:
    """Crops a second of the estimator's network alone at each batch size (twice the calls with the flip test)."""
    size = estimator.codec.crop.input_size
    fns = {}
    for batch in batches:
        x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(batch)).to(estimator.device)

        def call(x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                estimator.model(x)
                if estimator.test.flip_test:
                    estimator.model(x.flip(3))

        fns[str(batch)] = call
    timed = interleaved_seconds(fns, rounds, seconds)
    return {batch: batch / timed[str(batch)] for batch in batches}


def folder_path(estimator: PoseEstimator, root: Path) -> tuple[Callable[[int], float], dict[str, Any]]:
    """The folder's timed run (persons a second; run ``i`` writes into its own folder) and what it holds."""
    boxes_file = photos(root / "photos", PHOTOS)
    detections = DetectionBoxes(boxes_file)
    predict_paths(estimator, [root / "photos"], root / "warm", detections=detections, progress=False)
    persons = len(json.loads(boxes_file.read_text()))

    def run(i: int) -> float:
        start = time.perf_counter()
        report = predict_paths(estimator, [root / "photos"], root / f"out{i}", detections=detections, progress=False)
        seconds = time.perf_counter() - start
        written = sum(len(json.loads(p.read_text())) for p in report.written if p.suffix == ".json")
        if written != persons:
            raise RuntimeError(f"the folder's results hold {written} persons, its boxes {persons}")
        return persons / seconds

    return run, {"images": PHOTOS, "persons": persons}


def video_path(
    estimator: PoseEstimator, root: Path, frames: list[np.ndarray]
) -> tuple[Callable[[int], float], dict[str, Any]]:
    """The video's timed run (frames a second) and what it holds."""
    clip = root / "walk.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (FRAME[1], FRAME[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    options = VideoOptions(detect_every=10, keypoint_threshold=0.0)
    predict_video(estimator, clip, root / "warm", options=options, progress=False)

    def run(i: int) -> float:
        stats = VideoStats()
        predict_video(estimator, clip, root / f"video{i}", options=options, progress=False, stats=stats)
        if stats.estimated != len(frames):
            raise RuntimeError(f"{stats.estimated} of the video's {len(frames)} frames were estimated")
        return stats.frames_per_s

    return run, {"frames": len(frames)}


def timed_runs(estimator: PoseEstimator, batch: int, run: Callable[[int], float]) -> dict[str, Any]:
    """``REPEATS`` runs of a path, the network alone (``network_only`` at ``batch``) timed before the first and
    after each; each run's ratio is to the mean of the network-only rates on either side of it (module doc)."""
    alone = [network_only(estimator, [batch], rounds=3, seconds=1.0)[batch]]
    rates = []
    for i in range(REPEATS):
        rates.append(run(i))
        alone.append(network_only(estimator, [batch], rounds=3, seconds=1.0)[batch])
    references = [(before + after) / 2 for before, after in itertools.pairwise(alone)]
    ratios = [rate / reference for rate, reference in zip(rates, references, strict=True)]
    return {
        "rates": rates,
        "network_only": alone,
        "ratios": ratios,
        "rate": statistics.median(rates),
        "network": statistics.median(references),
        "ratio": statistics.median(ratios),
    }


class MjpegStream(http.server.BaseHTTPRequestHandler):
    """Serves the frames as a multipart MJPEG stream at ``fps`` frames a second (as an IP camera does)."""

    frames: ClassVar[list[bytes]] = []
    fps = LIVE_FPS

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        start = time.monotonic()
        try:
            for i, jpeg in enumerate(self.frames):
                time.sleep(max(0.0, start + i / self.fps - time.monotonic()))
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
                self.wfile.write(jpeg + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return

    def log_message(self, *args: object) -> None:
        return


def live_path(estimator: PoseEstimator, root: Path, frames: list[np.ndarray]) -> dict[str, Any]:
    MjpegStream.frames = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MjpegStream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        stats = VideoStats()
        url = f"http://127.0.0.1:{server.server_address[1]}/live.mjpg"
        predict_video(estimator, url, root / "live", options=VideoOptions(detect_every=10, keypoint_threshold=0.0),
                      progress=False, stats=stats)  # fmt: skip
    finally:
        server.shutdown()
    return {
        "offered": stats.offered,
        "estimated": stats.estimated,
        "shown_over_offered": stats.estimated / max(stats.offered, 1),
        "rate": stats.frames_per_s,
        "latency_p50_ms": 1000 * stats.percentile(50),
        "latency_p99_ms": 1000 * stats.percentile(99),
    }


class LeanClient:
    """A kept-alive HTTP/1.1 connection that posts one JSON body again and again, as little work as a client can
    be: the request's bytes are made once, the answer is read by its Content-Length (uvicorn's answers have one)
    and not parsed. The clients run in this process, under its interpreter lock, on the same two cores as the
    server, and between two forward passes the server's work for the next batch waits for theirs (``http.client``
    took 0.32 ms of CPU a request, this 0.10 ms: 2-core EPYC, 2026-12-06)."""

    def __init__(self, host: str, port: int, path: str, body: str):
        payload = body.encode()
        head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        self.request = (head + f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
        self.sock = socket.create_connection((host, port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def post(self) -> int:
        """Send the request, read the whole answer; its status."""
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._receive()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        fields = {name.strip().lower(): value for name, value in (line.split(":", 1) for line in lines[1:])}
        length = int(fields["content-length"])
        while len(self.buffer) < length:
            self.buffer += self._receive()
        self.buffer = self.buffer[length:]
        return int(lines[0].split()[1])

    def _receive(self) -> bytes:
        data = self.sock.recv(1 << 16)
        if not data:
            raise RuntimeError("the server closed the connection")
        return data

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def serve_path(estimator: PoseEstimator, seconds: float) -> dict[str, Any]:
    """``hrnet serve`` as the command runs it (``run_beside``: the network in this thread, uvicorn in another),
    its clients in threads of a driver thread, which stops the server when they are done."""
    import uvicorn

    from hrnet.apps.serve import ServeLimits, create_app, run_beside, uvicorn_config

    rng = np.random.default_rng(5)
    bodies = []
    for _ in range(CLIENTS):
        picture, boxes = scene(rng, [float(rng.uniform(150, 490))])
        jpeg = cv2.imencode(".jpg", picture)[1].tobytes()
        bodies.append(json.dumps({"image": base64.b64encode(jpeg).decode(), "boxes": [boxes[0].tolist()]}))
    limits = ServeLimits(max_batch=CLIENTS)
    app = create_app(estimator, limits=limits)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port, limits=limits))
    done: list[float] = []
    result: dict[str, Any] = {}

    def client(body: str, stop: float) -> None:
        with LeanClient("127.0.0.1", port, "/v1/pose", body) as connection:
            while time.monotonic() < stop:
                status = connection.post()
                if status != 200:
                    raise RuntimeError(f"the server answered {status}")
                done.append(time.monotonic())

    def drive() -> None:
        try:
            while not server.started:
                time.sleep(0.05)
            client(bodies[0], time.monotonic() + 2)  # warm-up
            done.clear()
            started = time.monotonic()
            workers = [threading.Thread(target=client, args=(body, started + seconds)) for body in bodies]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            result["seconds"] = time.monotonic() - started
        finally:
            server.should_exit = True

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    with sock:
        if not run_beside(server, app.state.batcher, sockets=[sock]):
            raise RuntimeError("the server did not start")
    driver.join()
    elapsed = result["seconds"]
    return {"clients": len(bodies), "requests": len(done), "seconds": elapsed, "rate": len(done) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="w32", help="model preset, shipped config or YAML (default w32)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32")
    parser.add_argument("--backend", help="the backend instead of the precision's default (e.g. onnxruntime)")
    parser.add_argument("--flip", action="store_true", help="flip test on (default off)")
    parser.add_argument("--serve-seconds", type=float, default=10.0, help="each run of the service (default 10)")
    args = parser.parse_args()
    keep_freed_memory()  # as every hrnet command that runs a network
    one_opencv_thread()
    config = load_config(args.config, [f"test.flip_test={args.flip}"])
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    backend = open_for_timing(config.model, args.backend or backend_name(args.precision), model)
    estimator = PoseEstimator(backend, codec_from_config(config.model, config.data), COCO17, config.test,
                              device=backend.device)  # fmt: skip
    load_before = os.getloadavg()[0]
    frames, boxes = walking_clip(CLIP_FRAMES)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run, folder = folder_path(estimator, root)
        folder |= timed_runs(estimator, config.test.batch_size, run)
        estimator.detector = TruthDetector(frames, boxes)
        run, video = video_path(estimator, root, frames)
        video |= timed_runs(estimator, 1, run)
        live = live_path(estimator, root, frames)
        live["network"] = video["network"]
        live["ratio"] = live["rate"] / video["network"]
        estimator.detector = None  # the clients give the boxes
        serve = timed_runs(estimator, CLIENTS, lambda i: serve_path(estimator, args.serve_seconds)["rate"])
    load_after = os.getloadavg()[0]
    rows = [
        ("predict, folder of 64 photos (given boxes)", "persons/s", folder),
        ("video file, 640×480, detect every 10th", "frames/s", video),
        ("live source at 30 frames/s", "frames/s", live),
        (f"serve, {CLIENTS} clients", "requests/s", serve),
    ]
    report = {
        **provenance(),
        "cpu": cpu_support().describe(),
        "threads": torch.get_num_threads(),
        "config": args.config,
        "backend": backend.name,
        "flip_test": args.flip,
        "folder": folder,
        "video": video,
        "live": live,
        "serve": serve,
        "rows": [
            {"path": p, "unit": u, "rate": r["rate"], "network_only": r["network"], "ratio": r["ratio"]}
            for p, u, r in rows
        ],
        "load_average_1min_before_after": [load_before, load_after],
    }
    lines = [
        "# Every path end to end against the network alone",
        f"{args.config} {config.model.input_size[0]}×{config.model.input_size[1]}, random weights, backend "
        f"{backend.name}, flip test {'on' if args.flip else 'off'}, "
        f"{report['threads']} threads; CPU: {report['cpu']}. Network-only: the same backend on random crops at "
        f"the batch each path runs. Each path but the live one runs {REPEATS} times, the network alone timed "
        "before the first run and after each; a run's ratio is to the mean of the two around it, and the table "
        "gives the medians (of the rates, the references, the ratios; the runs in the JSON file). The live "
        "source runs once, against the video's reference. Load average (1 min) before / after: "
        f"{load_before:.1f} / {load_after:.1f}.",
        "",
        "| path | rate | network-only (same batch) | ratio | ratios of the runs |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {p} | {r['rate']:.2f} {u} | {r['network']:.2f} | **{r['ratio']:.2f}× network-only** | "
            f"{', '.join(f'{x:.2f}' for x in r.get('ratios', [r['ratio']]))} |"
            for p, u, r in rows
        ],
        "",
        f"Live source: {live['estimated']} of {live['offered']} frames estimated "
        f"({live['shown_over_offered']:.0%}; the others arrived while the network was busy and were dropped, not "
        f"queued), latency p50 {live['latency_p50_ms']:.0f} ms, p99 {live['latency_p99_ms']:.0f} ms.",
    ]
    # One file per precision for the default network; another network or backend has its own.
    default = args.config == "w32" and not args.backend
    name = f"e2e_{args.precision}" if default else f"e2e_{args.config.replace('/', '_')}_{backend.name}"
    write_results(name, report, lines)


if __name__ == "__main__":
    main()
