"""Weights by name (src/hrnet/weights.py): the registry, and the download cache against a local HTTP server on
127.0.0.1 (started in a thread here; the tests never use the internet): checksums, truncated and resumed
downloads, servers that cannot resume, zip archives, and being offline."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hrnet.cli import main
from hrnet.config import CONFIG_DIR, find_config
from hrnet.errors import DownloadError
from hrnet.weights import REGISTRY, WeightsFile, download, fetch, resolve_weights

PAYLOAD = bytes(range(256)) * 1000  # 256,000 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Server:
    """What the test server serves and what it was asked."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: int | None = None  # send only this many bytes of the body, then close (Content-Length says all)
    ranges: bool = True  # honour Range requests
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Range")))
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match and state.ranges:
                start = int(match.group(1))
                if start >= len(body):
                    self.send_error(416, "Range Not Satisfiable")
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            part = body[start:]
            if state.cut_after is not None:
                part = part[: state.cut_after]
            self.wfile.write(part)
            self.wfile.flush()
            if state.cut_after is not None:
                self.close_connection = True

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("HRNET_CACHE", str(folder))
    return folder


def test_a_download_is_verified_and_renamed_into_place(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    target = tmp_path / "w.pth"
    assert download(f"{server.url}/w.pth", target, sha256=SHA, progress=False) == target
    assert target.read_bytes() == PAYLOAD
    assert not list(tmp_path.glob("*.part"))


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD[:-1] + b"x"
    target = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match=rf"checksum mismatch.*expected {SHA}.*deleted"):
        download(f"{server.url}/w.pth", target, sha256=SHA, progress=False)
    assert not target.exists() and not list(tmp_path.glob("*.part"))


def test_checksum_prefix_as_mmpose_names_files(server, tmp_path):
    """MMPose's file names end in the first 8 hex digits of the file's SHA-256; that prefix is what we check."""
    server.files["/w.pth"] = PAYLOAD
    download(f"{server.url}/w.pth", tmp_path / "a.pth", sha256_prefix=SHA[:8], progress=False)
    with pytest.raises(DownloadError, match=f"expected one starting with {SHA[8:16]}"):
        download(f"{server.url}/w.pth", tmp_path / "b.pth", sha256_prefix=SHA[8:16], progress=False)


def test_a_truncated_download_is_kept_and_resumed(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    server.cut_after = 100_000
    target = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match=r"stopped at 100000 of 256000 bytes.*run again to resume"):
        download(f"{server.url}/w.pth", target, sha256=SHA, progress=False)
    assert not target.exists()
    assert (tmp_path / "w.pth.part").stat().st_size == 100_000
    server.cut_after = None
    download(f"{server.url}/w.pth", target, sha256=SHA, progress=False)
    assert server.requests[-1] == ("/w.pth", "bytes=100000-")  # resumed where it stopped
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "w.pth.part").exists()


def test_a_server_that_cannot_resume_starts_over(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    (tmp_path / "w.pth.part").write_bytes(b"stale bytes of another try")
    server.ranges = False
    download(f"{server.url}/w.pth", tmp_path / "w.pth", sha256=SHA, progress=False)
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD


def test_a_part_file_longer_than_the_file_starts_over(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD + b"extra")
    download(f"{server.url}/w.pth", tmp_path / "w.pth", sha256=SHA, progress=False)
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD


def test_http_errors_name_the_status_and_url(server, tmp_path):
    with pytest.raises(DownloadError, match=r"HTTP 404 .*/missing\.pth"):
        download(f"{server.url}/missing.pth", tmp_path / "m.pth", progress=False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_names_the_url_the_file_and_where_to_put_it(cache, monkeypatch):
    entry = WeightsFile(
        "test-hrnet", "pose", f"http://127.0.0.1:{_closed_port()}/hrnet_w32-0123abcd.pth", "a test file", "test"
    )
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    with pytest.raises(DownloadError) as err:
        resolve_weights("test-hrnet", progress=False)
    message = str(err.value)
    assert "cannot download" in message and "offline" in message
    assert entry.url in message
    assert str(cache / "test-hrnet" / "hrnet_w32-0123abcd.pth") in message
    with pytest.raises(DownloadError, match="it is not in the cache"):
        resolve_weights("test-hrnet", download=False)


def test_a_name_is_fetched_once_into_the_cache(server, cache, monkeypatch):
    server.files["/hrnet_w32-x.pth"] = PAYLOAD
    entry = WeightsFile(
        "test-hrnet", "pose", f"{server.url}/hrnet_w32-x.pth", "a test file", "test", sha256_prefix=SHA[:8]
    )
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    path = resolve_weights("test-hrnet", progress=False)
    assert path == cache / "test-hrnet" / "hrnet_w32-x.pth" and path.read_bytes() == PAYLOAD
    assert resolve_weights("test-hrnet") == path
    assert len(server.requests) == 1  # the second call found it in the cache


def test_resolve_keeps_paths(tmp_path):
    existing = tmp_path / "mine.safetensors"
    existing.write_bytes(b"x")
    assert resolve_weights(existing) == existing
    assert resolve_weights(tmp_path / "absent.pth") == tmp_path / "absent.pth"  # the loader reports it missing


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_archive_is_unpacked_and_its_member_checked(server, cache, monkeypatch):
    """As MMPose's ONNX SDK archives: a folder with end2end.onnx and pipeline files."""
    onnx_bytes = b"pretend onnx" * 100
    server.files["/det.zip"] = _zip({"det/end2end.onnx": onnx_bytes, "det/pipeline.json": b"{}"})
    entry = WeightsFile(
        "test-det",
        "detector",
        f"{server.url}/det.zip",
        "a test detector",
        "test",
        member="end2end.onnx",
        member_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        detector_format="yolox",
        input_size=(64, 64),
    )
    path = fetch(entry, progress=False)
    assert path == cache / "test-det" / "test-det.onnx" and path.read_bytes() == onnx_bytes
    assert not (cache / "test-det" / "det.zip").exists()  # the archive is removed once unpacked
    bad = replace(entry, name="test-det-bad", member_sha256="0" * 64)
    with pytest.raises(DownloadError, match=r"checksum mismatch for det/end2end\.onnx"):
        fetch(bad, progress=False)
    assert not (cache / "test-det-bad" / "test-det-bad.onnx").exists()
    missing = replace(entry, name="test-det-none", member="other.onnx")
    with pytest.raises(DownloadError, match=r"expected one other\.onnx inside the archive, found 0"):
        fetch(missing, progress=False)


def test_the_registry_is_consistent():
    """Names are the keys; URLs are https; MMPose checksum prefixes are the 8 hex digits in the file names; pose
    entries name a config of this repository; detectors a known layout and input size."""
    from hrnet.detect import FORMATS

    assert REGISTRY
    for name, entry in REGISTRY.items():
        assert entry.name == name and entry.url.startswith("https://")
        filename = entry.url.rsplit("/", 1)[-1]
        if entry.sha256_prefix:
            assert f"-{entry.sha256_prefix}" in filename and re.fullmatch(r"[0-9a-f]{8}", entry.sha256_prefix)
        for digest in (entry.sha256, entry.member_sha256):
            assert digest is None or re.fullmatch(r"[0-9a-f]{64}", digest)
        if entry.kind == "pose":
            assert entry.config and find_config(entry.config).is_file()
        else:
            assert entry.kind == "detector" and entry.detector_format in FORMATS and entry.input_size
            assert entry.member == "end2end.onnx" and filename.endswith(".zip")


def test_weights_cli_list_and_get(server, cache, monkeypatch, capsys):
    server.files["/hrnet_w32-x.pth"] = PAYLOAD
    entry = WeightsFile("test-hrnet", "pose", f"{server.url}/hrnet_w32-x.pth", "a test file", "test", sha256=SHA)
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert str(cache) in out and "mmpose-hrnet-w32-coco-256x192" in out and "rtmdet-nano-person" in out
    assert main(["weights", "get", "test-hrnet"]) == 0
    assert f"SHA-256 {SHA}" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    assert re.search(r"test-hrnet\s+cached", capsys.readouterr().out)
    assert main(["weights", "get", "no-such-weights"]) == 2
    assert "unknown weights name(s) no-such-weights" in capsys.readouterr().err
    (cache / "test-hrnet" / "hrnet_w32-x.pth").write_bytes(b"damaged")
    assert main(["weights", "get", "test-hrnet"]) == 2
    assert "the cached file is damaged" in capsys.readouterr().err


def test_weights_names_reach_the_loaders(server, cache, monkeypatch, capsys):
    """`--weights NAME` goes through resolve_weights: offline, eval says which file to fetch, in one line."""
    entry = replace(REGISTRY["mmpose-hrnet-w32-coco-256x192"], url=f"http://127.0.0.1:{_closed_port()}/x.pth")
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    assert main(["eval", str(CONFIG_DIR / "coco" / "w32_256x192.yaml"), "--weights", entry.name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot download" in err and str(cache / entry.name) in err


def test_a_named_mmpose_checkpoint_loads_into_the_estimator(server, cache, monkeypatch, datasets_dir):
    """A checkpoint in MMPose 0.x's published form ({"meta", "state_dict"} with backbone. / keypoint_head. names),
    served under a registered name, is fetched, verified by its name's prefix and loaded by PoseEstimator."""
    import torch

    from hrnet.inference import PoseEstimator
    from hrnet.models.hrnet import build_model
    from tests.engine.conftest import tiny_experiment

    config = tiny_experiment(datasets_dir, cache / "runs")
    torch.manual_seed(0)
    model = build_model(config.model)
    state = {
        ("keypoint_head." if k.startswith("final_layer.") else "backbone.") + k: v
        for k, v in model.state_dict().items()
    }
    buffer = io.BytesIO()
    torch.save({"meta": {"epoch": 210, "mmpose_version": "0.x"}, "state_dict": state}, buffer)
    data = buffer.getvalue()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    server.files[f"/tiny-{prefix}.pth"] = data
    entry = WeightsFile("test-tiny", "pose", f"{server.url}/tiny-{prefix}.pth", "tiny", "test", sha256_prefix=prefix)
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    estimator = PoseEstimator.from_config(config, "test-tiny", device="cpu", backend="pytorch")
    loaded = estimator.model.state_dict()  # type: ignore[attr-defined]
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
