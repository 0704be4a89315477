"""A real `hrnet serve` for the service's tests: the estimator it serves, uvicorn in a thread, the command in its own
process. uvicorn and FastAPI are imported only when a test asks (the 'serve' extra is optional)."""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def served(random_experiment):
    """An estimator of the tiny random experiment (one a module: tests change it), its config file and weights."""
    from hrnet.pose.estimator import PoseEstimator

    config, config_path, weights, _ = random_experiment
    return PoseEstimator.from_config(config, weights, device="cpu"), config_path, weights


@contextlib.contextmanager
def _running(app, limits):
    """``app`` served by uvicorn as ``hrnet serve`` runs it (``uvicorn_config``), in a thread, on a free port of
    127.0.0.1; yields the port."""
    import socket

    import uvicorn

    from hrnet.apps.serve.app import uvicorn_config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port, limits=limits))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="session")
def live_server():
    """``with live_server(app, limits) as port``: ``app`` served by uvicorn in a thread as ``hrnet serve`` runs it,
    on a free port of 127.0.0.1, until the block ends."""
    return _running


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return json.load(response)["status"] == "ok"
    except OSError:
        return False


@pytest.fixture
def hrnet_serve(served, free_port, tmp_path):
    """``hrnet_serve(*options)``: ``hrnet serve`` of ``served``'s files with no person detector in its own process,
    on a free port, once /healthz answers ok: (process, port, log file of its stdout and stderr). A process the test
    left running is killed at the end."""
    _, config_path, weights = served
    processes = []

    def start(*options: str) -> tuple[subprocess.Popen, int, Path]:
        port = free_port()
        command = [sys.executable, "-m", "hrnet", "serve", str(config_path), "--weights", str(weights)]
        command += ["--port", str(port), "--detector", "none", *options]
        log_path = tmp_path / f"serve-{port}.log"
        with log_path.open("w") as log:
            env = {**os.environ, "PYTHONPATH": str(SRC)}
            processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while not _healthy(port):
            assert processes[-1].poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "hrnet serve did not answer within 2 minutes"
            time.sleep(0.2)
        return processes[-1], port, log_path

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(30)
