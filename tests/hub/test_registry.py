"""Weights by name (src/hrnet/hub/registry.py): the registry (against its configs, its sources and the real MMPose key
layouts), and the download cache against a local HTTP server on 127.0.0.1 (started in a thread here; the tests
never use the internet): checksums, truncated downloads, zip archives (damaged ones too), being offline, and hostile
cache states (tampered files, a cache that is a file or read-only)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from hrnet.cli import main
from hrnet.config import CONFIG_DIR, is_config_name
from hrnet.errors import DownloadError, OutputError, WeightsUnavailableError
from hrnet.hub.download import download
from hrnet.hub.registry import (
    DECODINGS,
    REGISTRY,
    WeightsFile,
    cached_path,
    config_for_weights,
    fetch,
    manual_path,
    mmpose_name,
    resolve_many,
    resolve_weights,
)
from hrnet.keypoints import TASKS, load_keypoint_set
from tests.conftest import http_server

PAYLOAD = bytes(range(256)) * 1000  # 256,000 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Server:
    """What the test server serves and what it was asked."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: int | None = None  # send only this many bytes of the body, then close (Content-Length says all)
    content_range: str | None = None  # answer 206 with this Content-Range (and the body from that range's start)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            if state.content_range is not None:  # as to a resumed download, though the request asked for no range
                body = body[int(state.content_range.split()[1].split("-")[0]) :]
                self.send_response(206)
                self.send_header("Content-Range", state.content_range)
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: state.cut_after])
            self.wfile.flush()
            if state.cut_after is not None:
                self.close_connection = True

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

    with http_server(Handler) as state.url:
        yield state


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
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD[:-1] + b"x"
    target = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match=rf"checksum mismatch.*expected {SHA}.*deleted"):
        download(f"{server.url}/w.pth", target, sha256=SHA, progress=False)
    assert not list(tmp_path.iterdir())


def test_checksum_prefix_as_mmpose_names_files(server, tmp_path):
    """MMPose's file names end in the first 8 hex digits of the file's SHA-256; that prefix is what we check."""
    server.files["/w.pth"] = PAYLOAD
    download(f"{server.url}/w.pth", tmp_path / "a.pth", sha256=SHA[:8], progress=False)
    with pytest.raises(DownloadError, match=f"expected one starting with {SHA[8:16]}"):
        download(f"{server.url}/w.pth", tmp_path / "b.pth", sha256=SHA[8:16], progress=False)


def test_a_truncated_download_leaves_nothing_and_the_next_try_gets_it_whole(server, cache, monkeypatch):
    """A reply cut off mid-file (shorter than its Content-Length): no file under the name, no temporary file, no
    empty folder; the next run downloads it whole."""
    entry = _served_entry(server, monkeypatch, sha256_prefix=SHA[:8])
    server.cut_after = 100_000
    with pytest.raises(DownloadError, match=rf"{re.escape(entry.url)} was cut off: 100,000 of the 256,000 bytes"):
        resolve_weights(entry.name, progress=False)
    assert not cache.exists()
    server.cut_after = None
    assert resolve_weights(entry.name, progress=False).read_bytes() == PAYLOAD


def test_a_folder_that_cannot_be_written_is_named(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    target = tmp_path / "ro" / "w.pth"
    with _read_only(target.parent), pytest.raises(OutputError, match=rf"{re.escape(str(target))}: cannot write"):
        download(f"{server.url}/w.pth", target, progress=False)


def test_a_server_that_stalls_is_given_up_on(tmp_path, monkeypatch):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog) and never answers
    monkeypatch.setattr("hrnet.hub.download.STALL_SECONDS", 0.3)
    try:
        with pytest.raises(DownloadError, match=r"cannot download http://127\.0\.0\.1:\d+/w\.pth \(.*timed out"):
            download(f"http://127.0.0.1:{silent.getsockname()[1]}/w.pth", tmp_path / "w.pth", progress=False)
    finally:
        silent.close()
    assert socket.getdefaulttimeout() is None  # the process-wide setting is put back
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content_range",
    [f"bytes 0-{len(PAYLOAD) - 1}/{len(PAYLOAD)}", f"bytes 1000-{len(PAYLOAD) - 1}/{len(PAYLOAD)}", "bytes 0-9/10"],
    ids=["whole-range-from-byte-0", "a-range-not-from-byte-0", "a-range-that-does-not-match"],
)
def test_a_partial_answer_to_a_plain_get_is_refused_and_nothing_kept(server, cache, monkeypatch, content_range):
    """Asked for the whole file, the server answers 206 (as to a resumed download): whatever range it names, a part
    is not the file. One line, nothing in the folder; with no checksum to catch it (a resumed prefix followed by the
    whole file was kept as the file)."""
    server.files["/w.pth"] = PAYLOAD
    server.content_range = content_range
    folder = cache.parent / "downloads"
    folder.mkdir()
    with pytest.raises(DownloadError, match=rf"answered 206 Partial Content \({content_range}\) .* nothing was kept"):
        download(f"{server.url}/w.pth", folder / "w.pth", progress=False)
    assert list(folder.iterdir()) == []
    entry = _served_entry(server, monkeypatch)  # no published checksum: only the status can tell
    with pytest.raises(WeightsUnavailableError, match=r"206 Partial Content") as err:
        resolve_weights(entry.name, progress=False)
    assert str(err.value).count("\n") == 5 and not cache.exists()


def test_an_answer_other_than_200_is_refused(tmp_path):
    """A 2xx that is no file (204 No Content, 203) is not taken for an empty or a proxy's file."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(int(self.path.strip("/")))
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"abc" if self.path != "/204" else b"")

        def log_message(self, *args: object) -> None:
            pass

    with http_server(Handler) as url:
        for status in (203, 204):
            with pytest.raises(DownloadError, match=rf"answered HTTP {status} .* not the file"):
                download(f"{url}/{status}", tmp_path / "w.pth", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_two_downloads_to_one_target_never_share_a_partial_file(tmp_path):
    """Two downloads of one file at once (two processes, or threads) each write their own temporary file beside
    the target; both end whole, and nothing else is left."""
    half_way = threading.Barrier(3, timeout=20)  # the two answers wait, half sent, until the test has looked

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])
            self.wfile.flush()
            half_way.wait()
            self.wfile.write(PAYLOAD[1000:])

        def log_message(self, *args: object) -> None:
            pass

    target = tmp_path / "w.pth"
    errors: list[BaseException] = []

    def get(url: str) -> None:
        try:
            download(url, target, sha256=SHA, progress=False)
        except BaseException as err:  # the test reports what either thread met
            errors.append(err)

    with http_server(Handler) as url:
        threads = [threading.Thread(target=get, args=(f"{url}/w.pth",)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for _ in range(1000):
            partial = sorted(p.name for p in tmp_path.iterdir())
            if len(partial) == 2:
                break
            threading.Event().wait(0.01)
        half_way.wait()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert len(partial) == 2 and all(name.startswith(".w.") and ".tmp" in name for name in partial), partial
    assert target.read_bytes() == PAYLOAD and list(tmp_path.iterdir()) == [target]


def test_a_full_disk_during_a_download_says_the_size_needed_and_keeps_nothing(server, cache, monkeypatch, capsys):
    """ENOSPC half way: one line naming the file and the size the server announced (Content-Length), no partial
    file, no empty folder; not the offline advice (another machine's copy would not fit either)."""
    import errno

    entry = _served_entry(server, monkeypatch)
    real_open = Path.open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def open_full(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullDisk(f) if "w" in mode and path.parent.is_relative_to(cache) else f

    monkeypatch.setattr(Path, "open", open_full)
    assert main(["weights", "get", entry.name]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    where = re.escape(str(cached_path(entry)))
    assert re.fullmatch(
        rf"hrnet weights: error: {where}: cannot write it \(no space left on the device; it needs about 256\.0 kB\); "
        r"nothing partial was kept .*\$HRNET_CACHE moves the cache to another folder",
        err,
    ), err
    assert not cache.exists()


def test_http_errors_name_the_status_and_url(server, tmp_path):
    with pytest.raises(DownloadError, match=r"HTTP 404 .*/missing\.pth"):
        download(f"{server.url}/missing.pth", tmp_path / "m.pth", progress=False)


def test_offline_names_the_url_the_file_and_where_to_put_it(cache, monkeypatch, free_port):
    entry = WeightsFile(
        "test-hrnet", "pose", f"http://127.0.0.1:{free_port()}/hrnet_w32-0123abcd.pth", "a test file", "test"
    )
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    with pytest.raises(WeightsUnavailableError) as err:
        resolve_weights("test-hrnet", progress=False)
    lines = str(err.value).splitlines()
    assert lines[0] == "1 weights file is not in the cache and could not be downloaded:" and len(lines) == 6
    where = cache / "test-hrnet" / "hrnet_w32-0123abcd.pth"
    assert lines[1].startswith(f"  test-hrnet: {where}: cannot download {entry.url} (") and "offline" in lines[1]
    assert "`hrnet weights get test-hrnet`" in lines[3] and f"into {cache} here" in lines[3]
    assert lines[5].startswith("  - pass the path of a file you have in place of the name")
    assert err.value.missing == (("test-hrnet", lines[1].split(": ", 2)[2]),)
    with pytest.raises(WeightsUnavailableError, match="it is not in the cache, and downloads are off; its URL: "):
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


def _detector_entry(url: str, onnx_bytes: bytes) -> WeightsFile:
    """A detector archive's registry entry, as MMPose's ONNX SDK archives are registered."""
    return WeightsFile(
        "test-det",
        "detector",
        url,
        "a test detector",
        "test",
        member="end2end.onnx",
        member_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        detector_format="yolox",
        input_size=(64, 64),
    )


def test_a_zip_archive_is_unpacked_and_its_member_checked(server, cache, monkeypatch):
    """As MMPose's ONNX SDK archives: a folder with end2end.onnx and pipeline files."""
    onnx_bytes = b"pretend onnx" * 100
    server.files["/det.zip"] = _zip({"det/end2end.onnx": onnx_bytes, "det/pipeline.json": b"{}"})
    entry = _detector_entry(f"{server.url}/det.zip", onnx_bytes)
    path = fetch(entry, progress=False)
    assert path == cache / "test-det" / "test-det.onnx" and path.read_bytes() == onnx_bytes
    assert not (cache / "test-det" / "det.zip").exists()  # the archive is removed once unpacked
    bad = replace(entry, name="test-det-bad", member_sha256="0" * 64)
    with pytest.raises(DownloadError, match=r"checksum mismatch for det/end2end\.onnx"):
        fetch(bad, progress=False)
    assert not (cache / "test-det-bad").exists()
    missing = replace(entry, name="test-det-none", member="other.onnx")
    with pytest.raises(DownloadError, match=r"expected one other\.onnx inside the archive, found 0"):
        fetch(missing, progress=False)
    server.files["/det.zip"] = server.files["/det.zip"][:-200]  # cut off: the central directory is gone
    with pytest.raises(DownloadError, match=r"det\.zip: not a usable archive.*deleted: download it again"):
        fetch(replace(entry, name="test-det-cut"), progress=False)
    assert not (cache / "test-det-cut").exists()


def test_names_inside_an_archive_never_become_paths(server, cache):
    """The kept file is written where the registry says, whatever the archive calls it; nothing else is unpacked."""
    onnx_bytes = b"pretend onnx" * 100
    server.files["/evil.zip"] = _zip({"../../outside/end2end.onnx": onnx_bytes, "/etc/pipeline.json": b"{}"})
    entry = WeightsFile(
        "test-det", "detector", f"{server.url}/evil.zip", "a test detector", "test", member="end2end.onnx",
        detector_format="yolox", input_size=(64, 64),
    )  # fmt: skip
    assert fetch(entry, progress=False).read_bytes() == onnx_bytes
    written = sorted(str(p.relative_to(cache.parent)) for p in cache.parent.rglob("*") if p.is_file())
    assert written == ["cache/test-det/test-det.onnx", "cache/test-det/test-det.onnx.sha256"]


def test_the_registry_is_consistent():
    """Names are the keys; URLs are https; MMPose checksum prefixes are the 8 hex digits in the file names; pose
    entries name a config of this repository; detectors a known layout and input size: the person detectors are
    MMDeploy zip archives, YuNet a plain ONNX file pinned to a commit of opencv_zoo by its full SHA-256."""
    from hrnet.pose.detect import FORMATS

    assert REGISTRY
    for name, entry in REGISTRY.items():
        assert entry.name == name and entry.url.startswith("https://")
        filename = entry.url.rsplit("/", 1)[-1]
        if entry.sha256_prefix:
            assert f"-{entry.sha256_prefix}" in filename and re.fullmatch(r"[0-9a-f]{8}", entry.sha256_prefix)
        for digest in (entry.sha256, entry.member_sha256):
            assert digest is None or re.fullmatch(r"[0-9a-f]{64}", digest)
        if entry.kind == "pose":
            assert entry.config and is_config_name(entry.config)
        else:
            assert entry.kind == "detector" and entry.detector_format in FORMATS and entry.input_size
            if entry.detector_format == "yunet":
                assert entry.member is None and filename.endswith(".onnx") and entry.sha256
                assert re.match(r"https://github\.com/opencv/opencv_zoo/raw/[0-9a-f]{40}/models/", entry.url)
            else:
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
    assert "unknown weights name(s) 'no-such-weights'" in capsys.readouterr().err
    (cache / "test-hrnet" / "hrnet_w32-x.pth").write_bytes(b"damaged")
    assert main(["weights", "get", "test-hrnet"]) == 2
    assert "the cached file is damaged" in capsys.readouterr().err


def test_weights_list_groups_pose_weights_by_task(cache, capsys):
    """One header a task (in hrnet.keypoints.TASKS' order) with its count and keypoint sets, each entry under its
    task's header with its config and keypoint set; ``--task`` shows one task and no detectors."""
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    headers = re.findall(r"^(\w+): ([0-9]+) \(keypoint sets: (.+)\)$", out, flags=re.MULTILINE)
    tasks = [task for task, _, _ in headers]
    assert tasks == [task for task in TASKS if task in tasks] and {"body", "wholebody", "animal", "fashion"} <= set(
        tasks
    )
    assert sum(int(count) for _, count, _ in headers) == len(_pose_entries())
    animal = out.split("\nanimal: ", 1)[1].split("\n\n", 1)[0]
    assert animal.startswith(
        "21 (keypoint sets: animalpose20, ap10k17, atrw15, horse10_22, macaque17, animalkingdom23)"
    )
    names = re.findall(r"^  (\S+)$", animal, flags=re.MULTILINE)
    assert (
        len(names) == 21 and "mmpose-hrnet-w32-ap10k-256x256" in names and "mmpose-hrnet-w32-coco-256x192" not in names
    )
    assert "config ap10k/w32_256x256, keypoints ap10k17; checksum: SHA-256 prefix 18aac840" in animal
    assert "\ndetectors (--detector NAME)\n  rtmdet-nano-person\n" in out
    assert main(["weights", "list", "--task", "fashion"]) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^  (\S+)", out, flags=re.MULTILINE) == [
        f"mmpose1-hrnet-w48-deepfashion-{part}-256x192-udp" for part in ("upper", "lower", "full")
    ]
    assert "fashion: 3 (keypoint sets: deepfashion_upper6, deepfashion_lower4, deepfashion_full8)" in out
    assert "PCK@0.2 96.1 % on DeepFashion val, upper-body clothes (ground-truth boxes)" in out
    assert "detectors" not in out
    assert main(["weights", "list", "--task", "other"]) == 0
    assert "\nother: none registered\n" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["weights", "list", "--task", "feet"])
    assert "invalid choice: 'feet'" in capsys.readouterr().err


def test_weights_names_reach_the_loaders(server, cache, monkeypatch, capsys, free_port):
    """`--weights NAME` goes through resolve_weights: offline, eval says which file to fetch: a line for the file,
    a line of advice, no traceback."""
    entry = replace(REGISTRY["mmpose-hrnet-w32-coco-256x192"], url=f"http://127.0.0.1:{free_port()}/x.pth")
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    assert main(["eval", str(CONFIG_DIR / "coco" / "w32_256x192.yaml"), "--weights", entry.name]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hrnet eval: error: 1 weights file is not in the cache") and err.count("\n") == 6
    assert f"  {entry.name}: {cache / entry.name}/x.pth: cannot download" in err and "Traceback" not in err


def test_a_named_mmpose_checkpoint_loads_into_the_estimator(server, cache, monkeypatch, datasets_dir):
    """A checkpoint in MMPose 0.x's published form ({"meta", "state_dict"} with backbone. / keypoint_head. names),
    served under a registered name, is fetched, verified by its name's prefix and loaded by PoseEstimator."""
    import torch

    from hrnet.models.hrnet import build_model
    from hrnet.pose.estimator import PoseEstimator
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


# ------------------------------------------------------------------ the registry against configs and sources


def _pose_entries() -> list[WeightsFile]:
    return [e for e in REGISTRY.values() if e.kind == "pose"]


@pytest.mark.parametrize("entry", _pose_entries(), ids=lambda e: e.name)
def test_every_pose_entry_fits_its_shipped_config(entry):
    """The config a pose name implies loads by its short name and by the weights name itself, and reproduces the
    file's test settings: input size, keypoint count (the config's keypoint set's, the entry's), target geometry,
    flip shift and decoding, and DARK's blur size as MMPose's configs set it (0.x's modulate_kernel: 11 for
    64-pixel-high heatmaps, 17 for 96; 1.x's blur_kernel_size: 11 at every size)."""
    from hrnet.codec import codec_from_config
    from hrnet.config import load_config

    assert config_for_weights(entry.name) == entry.config
    config = load_config(entry.config)
    assert load_config(entry.name) == config
    assert config.model.input_size == entry.input_size
    kset = load_keypoint_set(config.data.keypoint_set)
    assert config.model.num_keypoints == entry.num_keypoints == kset.num_keypoints
    target, decode, shift = {"argmax": ("gaussian", "argmax", True), "dark": ("gaussian", "dark", True)}.get(
        entry.decoding or "", ("udp", "dark", False)
    )
    assert entry.decoding in DECODINGS
    assert (config.data.target, config.test.decode, config.test.shift_heatmap) == (target, decode, shift)
    assert config.test.flip_test
    if decode == "dark":
        kernel = config.test.dark_blur_kernel or codec_from_config(config.model, config.data).blur_kernel
        assert kernel == (11 if "/mmpose/v1/" in entry.url else {64: 11, 96: 17}[config.model.heatmap_size[0]])


def _rule(url: str) -> str:
    """The naming rule, written out apart from ``mmpose_name``: ``mmpose-`` + a 0.x file's stem with ``_`` → ``-``;
    ``mmpose1-`` + a 1.x file's network, data and variant (``td-hm_<network>[_<variant>]_<schedule>_<data>``), or
    its stem with ``_`` → ``-`` where it is named as 0.x names files."""
    stem = re.sub(r"(-[0-9a-f]{8}_[0-9]{8})?\.pth$", "", url.rsplit("/", 1)[-1])
    if "/mmpose/v1/" not in url:
        return "mmpose-" + stem.replace("_", "-")
    if "td-hm" not in stem:
        return "mmpose1-" + stem.replace("_", "-").lower()
    parts = stem.split("_")
    k = next(i for i, part in enumerate(parts) if re.search(r"[0-9]+xb[0-9]+-[0-9]+e$", part))  # the schedule
    variant = [
        *parts[2:k],
        *re.findall(r"^([a-z0-9]+)-[0-9]+xb", parts[k]),
    ]  # hrnet-w48_udp_8xb32, hrnet-w32_dark-8xb64
    return "-".join(["mmpose1", parts[1], *parts[k + 1 :], *variant]).lower()


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("top_down/hrnet/hrnet_w32_coco_256x192-c78dce93_20200708.pth", "mmpose-hrnet-w32-coco-256x192"),
        ("top_down/hrnet/hrnet_w32_coco_wholebody_256x192-853765cd_20200918.pth",
         "mmpose-hrnet-w32-coco-wholebody-256x192"),
        ("top_down/hrnet/hrnet_w48_coco_wholebody_384x288_dark-f5726563_20200918.pth",
         "mmpose-hrnet-w48-coco-wholebody-384x288-dark"),
        ("animal/hrnet/hrnet_w32_horse10_256x256_split2-04840523_20210405.pth",
         "mmpose-hrnet-w32-horse10-256x256-split2"),
        ("face/hrnetv2/hrnetv2_w18_wflw_256x256-2bf032a6_20210125.pth", "mmpose-hrnetv2-w18-wflw-256x256"),
        ("top_down/litehrnet/litehrnet18_coco_256x192-6bace359_20211230.pth", "mmpose-litehrnet18-coco-256x192"),
        ("v1/body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth",
         "mmpose1-hrnet-w32-coco-256x192"),
        ("v1/body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w32_dark-8xb64-210e_coco-256x192-0e00bf12_20220914.pth",
         "mmpose1-hrnet-w32-coco-256x192-dark"),
        ("v1/fashion_2d_keypoint/topdown_heatmap/deepfashion/"
         "td-hm_hrnet-w48_udp_8xb32-210e_deepfashion_upper-256x192-de7c0eb1_20230810.pth",
         "mmpose1-hrnet-w48-deepfashion-upper-256x192-udp"),
        ("v1/animal_2d_keypoint/topdown_heatmap/animal_kingdom/"
         "td-hm_hrnet-w32_8xb32-300e_animalkingdom_P3_mammal-256x256-e8aadf02_20230519.pth",
         "mmpose1-hrnet-w32-animalkingdom-p3-mammal-256x256"),
        ("v1/body_2d_keypoint/topdown_heatmap/exlpose/td-hm_hrnet-w32_8xb64-210e_exlpose-ll-256x192.pth",
         "mmpose1-hrnet-w32-exlpose-ll-256x192"),
        ("v1/face_2d_keypoint/topdown_heatmap/300wlp/hrnetv2_w18_300wlp_256x256-fb433d21_20230922.pth",
         "mmpose1-hrnetv2-w18-300wlp-256x256"),
        ("hand/hrnetv2/hrnetv2_w18_panoptic_256x256-53b12345_20210330.pth", "mmpose-hrnetv2-w18-panoptic-256x256"),
    ],
)  # fmt: skip
def test_the_name_rule_by_hand(url, name):
    """The issue's examples and each form of file name, written out by hand."""
    full = f"https://download.openmmlab.com/mmpose/{url}"
    assert mmpose_name(full) == name and _rule(full) == name


def test_every_mmpose_entry_is_named_by_its_file():
    """Every registered MMPose file's name follows the rule from its URL's file name, and no two files share one."""
    mmpose = [e for e in _pose_entries() if e.url.startswith("https://download.openmmlab.com/mmpose/")]
    assert len(mmpose) == len(_pose_entries()) >= 70
    for entry in mmpose:
        assert entry.name == _rule(entry.url), entry.url
    assert len({e.url for e in REGISTRY.values()}) == len(REGISTRY)


def test_the_zoo_by_task():
    """The plain-head HRNet files per task, as counted in MMPose's tables (0.x at v0.29.0, 1.x at v1.3.2): body 46
    (COCO 33 with its variants, MPII 4, AIC, CrowdPose, PoseTrack18 4, Human3.6M 2, Human-Art 2, ExLPose), whole
    body 8 (COCO-WholeBody 6, UBody, Halpe), animal 21 (Animal-Pose 2, AP-10K 2, ATRW 2, Horse-10 6, MacaquePose 2,
    Animal Kingdom 7), fashion 3 (DeepFashion upper, lower, full)."""
    from hrnet.config import load_config

    hrnet = [e for e in _pose_entries() if re.match(r"mmpose1?-hrnet-w(32|48)-", e.name)]
    tasks = [load_keypoint_set(load_config(e.config).data.keypoint_set).task for e in hrnet]
    assert {task: tasks.count(task) for task in TASKS if task in tasks} == {
        "body": 46, "wholebody": 8, "animal": 21, "fashion": 3
    }  # fmt: skip
    assert REGISTRY["mmpose1-hrnet-w32-exlpose-ll-256x192"].sha256_prefix is None  # its file name carries none
    assert REGISTRY["mmpose1-hrnet-w32-exlpose-ll-256x192"].verified_by == "none published"


@pytest.mark.parametrize(
    ("name", "config", "keypoint_set", "prefix"),
    [
        ("mmpose1-hrnet-w32-coco-384x288-dark", "coco/w32_384x288_dark_mmpose1", "coco17", "9bab4c9b"),
        ("mmpose1-hrnet-w48-coco-384x288-dark", "coco/w48_384x288_dark_mmpose1", "coco17", "39c3c381"),
        ("mmpose1-hrnet-w32-coco-384x288-udp", "coco/w32_384x288_udp_mmpose1", "coco17", "9a3f7c85"),
        ("mmpose1-hrnet-w48-coco-384x288-udp", "coco/w48_384x288_udp_mmpose1", "coco17", "70d7ab01"),
        ("mmpose1-hrnetv2-w18-300wlp-256x256", "face/hrnetv2_w18_300wlp_256x256", "300wlp68", "fb433d21"),
        ("mmpose-hrnetv2-w18-panoptic-256x256", "hand/hrnetv2_w18_panoptic_256x256", "panoptic_hand21", "53b12345"),
        ("mmpose-hrnetv2-w18-panoptic-256x256-dark", "hand/hrnetv2_w18_panoptic_256x256_dark", "panoptic_hand21",
         "1f1e4b74"),
        ("mmpose-hrnetv2-w18-panoptic-256x256-udp", "hand/hrnetv2_w18_panoptic_256x256_udp", "panoptic_hand21",
         "f9e15948"),
    ],
)  # fmt: skip
def test_the_files_once_left_out_build_their_networks(name, config, keypoint_set, prefix):
    """The 1.x COCO DARK/UDP files at 384x288, 300W-LP and CMU Panoptic hands: each name's config (by hand, as read in
    MMPose's tables and configs) builds a network with its keypoint set's outputs (1 × K × H/4 × W/4)."""
    import torch

    from hrnet.config import load_config
    from hrnet.models.hrnet import build_model

    entry = REGISTRY[name]
    assert (entry.config, entry.sha256_prefix) == (config, prefix)
    experiment = load_config(name)
    assert experiment.data.keypoint_set == keypoint_set
    k = load_keypoint_set(keypoint_set).num_keypoints
    with torch.device("meta"):
        model = build_model(experiment.model)
        out = model(torch.empty(1, 3, *experiment.model.input_size))
    height, width = experiment.model.input_size
    assert tuple(out.shape) == (1, k, height // 4, width // 4) == (1, entry.num_keypoints, height // 4, width // 4)
    assert experiment.model.head == ("simple" if "coco" in name else "hrnetv2")


def test_the_mmpose_1x_blur_and_the_sets_without_flip_pairs():
    """MMPose 1.x's 384x288 DARK and UDP files blur 11 pixels where the 0.x files of the same networks blur 17 (σ 3);
    300W-LP and Panoptic hands flip-test as MMPose's configs do, with no keypoint swapped (their sets have no flip
    pairs); Panoptic's box is enlarged by 1.76 (MMPose's padding there); the figures are the tables'."""
    from hrnet.codec import codec_from_config
    from hrnet.config import load_config

    for method in ("dark", "udp"):
        v1, v0 = load_config(f"coco/w32_384x288_{method}_mmpose1"), load_config(f"coco/w32_384x288_{method}")
        assert (v1.test.dark_blur_kernel, v0.test.dark_blur_kernel) == (11, 0)
        assert codec_from_config(v0.model, v0.data).blur_kernel == 17
        assert _without_name_and_blur(v1) == _without_name_and_blur(v0)  # nothing else differs
    for name in ("mmpose1-hrnetv2-w18-300wlp-256x256", "mmpose-hrnetv2-w18-panoptic-256x256"):
        config = load_config(name)
        kset = load_keypoint_set(config.data.keypoint_set)
        assert config.test.flip_test and config.data.flip and kset.flip_pairs == ()
        assert kset.flip_index == tuple(range(kset.num_keypoints))
    assert load_config("mmpose-hrnetv2-w18-panoptic-256x256-udp").data.box_padding == 1.76
    assert load_config("mmpose1-hrnetv2-w18-300wlp-256x256").data.box_padding == 1.25
    assert REGISTRY["mmpose1-hrnet-w48-coco-384x288-udp"].accuracy == "AP 0.773 on COCO val2017 (detected persons)"
    panoptic = REGISTRY["mmpose-hrnetv2-w18-panoptic-256x256-dark"]
    assert panoptic.accuracy == "PCKh@0.7 0.999, AUC 0.745, EPE 7.77 on CMU Panoptic hands, MPII+NZSL val"
    assert REGISTRY["mmpose1-hrnetv2-w18-300wlp-256x256"].accuracy.startswith("NME 0.0413 on 300W-LP")


def _without_name_and_blur(config):
    return replace(config, train=replace(config.train, name="x"), test=replace(config.test, dark_blur_kernel=0))


def test_config_for_weights_is_none_for_anything_but_a_pose_name(tmp_path):
    assert config_for_weights("rtmdet-nano-person") is None
    assert config_for_weights("no-such-weights") is None
    assert config_for_weights(tmp_path / "mine.pth") is None
    assert config_for_weights("mmpose-hrnet-w48-mpii-256x256") == "mpii/w48_256x256"


def test_every_entry_states_its_figure_data_set_and_source():
    """Pose files: the MMPose table (a repository path at a release or branch) that lists the URL and the figure,
    and the data set the figure was measured on. Detectors: HumanArt-val figures say so; the two RTMDet zips are
    pinned alike (no publisher states a checksum for either)."""
    for entry in REGISTRY.values():
        assert entry.accuracy and entry.input_size and entry.source
        if entry.kind == "pose":
            release = r"(tag v0\.29\.0|tag v1\.3\.2|branch 0\.x|branch main)"
            assert re.match(rf"open-mmlab/mmpose, {release}: configs/\S+\.md", entry.source), entry.source
            assert re.fullmatch(r"\S+.* [0-9.]+\b.* on [A-Z0-9].*", entry.accuracy), entry.accuracy
        elif "humanart" in entry.name:
            assert entry.accuracy.endswith("on HumanArt val") and "Tau-J/rtmlib README.md" in entry.source
    wholebody = REGISTRY["mmpose-hrnet-w48-coco-wholebody-384x288-dark"]
    assert wholebody.accuracy == "Whole AP 0.661 on COCO-WholeBody v1.0 val (detected persons)"
    table = "configs/wholebody/2d_kpt_sview_rgb_img/topdown_heatmap/coco-wholebody/hrnet_dark_coco-wholebody.md"
    assert wholebody.source == f"open-mmlab/mmpose, tag v0.29.0: {table}"
    rtmdet = [REGISTRY["rtmdet-nano-person"], REGISTRY["rtmdet-m-person"]]
    assert rtmdet[0].member_sha256 is None and rtmdet[1].member_sha256 is None
    assert all("not listed on an OpenMMLab page" in e.source for e in rtmdet)


def _real_layout(reference_dir: Path, config_name: str, head: str, device: str) -> dict:
    """A state dict with the real HRNet names and shapes (official_state_dict), as MMPose names them: backbone.*
    and ``head``.final_layer.*. MPII-W48 has no listing of its own: the W48 backbone with a 16-keypoint head."""
    import torch

    from hrnet.config import load_config

    model = load_config(config_name).model
    width = model.stages[1].num_channels[0]
    listing = json.loads((reference_dir / "official_state_dict" / f"coco_w{width}_256x192.json").read_text())
    state = {}
    for name, shape in listing["state_dict"]:
        if name.startswith("final_layer."):
            shape = [model.num_keypoints, *shape[1:]]
            key = f"{head}.{name}"
        else:
            key = f"backbone.{name}"
        if name.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=torch.int64, device=device)
        else:
            state[key] = torch.zeros(shape, device=device)
    return state


@pytest.mark.parametrize("head", ["keypoint_head", "head"], ids=["mmpose-0.x", "mmpose-1.x"])
@pytest.mark.parametrize(
    "config_name",
    sorted(
        {e.config for e in _pose_entries() if e.config and "hrnetv2" not in e.config and "litehrnet" not in e.config}
    ),
)
def test_mmpose_layouts_map_onto_every_registered_network(reference_dir, config_name, head):
    """Names and shapes only (meta tensors): MMPose 0.x's and 1.x's key layout, mapped to ours, is exactly the
    official layout of the config's network, which tests/models/test_hrnet.py pins our HRNet presets to
    (Lite-HRNet's: tests/models/test_litehrnet.py, against MMPose's own key lists)."""
    import dataclasses

    import torch

    from hrnet.config import load_config, model_preset
    from hrnet.models.checkpoint import convert_state_dict

    model = load_config(config_name).model
    width = model.stages[1].num_channels[0]
    preset = model_preset(f"w{width}")
    assert model == dataclasses.replace(preset, num_keypoints=model.num_keypoints, input_size=model.input_size)
    state = _real_layout(reference_dir, config_name, head, "meta")
    state["data_preprocessor.mean"] = torch.empty(3, device="meta")  # an MMPose entry that is not ours: dropped
    listing = json.loads((reference_dir / "official_state_dict" / f"coco_w{width}_256x192.json").read_text())
    expected = [
        (name, [model.num_keypoints, *shape[1:]] if name.startswith("final_layer.") else shape)
        for name, shape in listing["state_dict"]
    ]
    assert [(k, list(v.shape)) for k, v in convert_state_dict(state, "mmpose").items()] == expected


def test_an_mmpose_1x_file_of_the_real_w32_network_loads(reference_dir, tmp_path):
    """An MMPose 1.x file as its publish_model.py writes it ({"meta" with NumPy objects, "state_dict"}, legacy
    pickle) with the real W32 names and shapes loads into coco/w32_256x192 with strict=True, values intact."""
    import numpy as np
    import torch

    from hrnet.config import load_config
    from hrnet.models.checkpoint import load_weights
    from hrnet.models.hrnet import build_model

    torch.manual_seed(0)
    state = _real_layout(reference_dir, "coco/w32_256x192", "head", "cpu")
    for name in ("head.final_layer.weight", "backbone.stage4.2.fuse_layers.0.3.0.weight", "backbone.bn1.running_var"):
        state[name] = torch.rand(state[name].shape) + 0.5  # distinctive: a load that did nothing is caught
    meta = {
        "epoch": 210,
        "seed": np.int64(21),
        "dataset_meta": {"sigmas": np.full(17, 0.035, np.float32), "flip_indices": np.arange(17)},
    }
    path = tmp_path / "td-hm_hrnet-w32_8xb64-210e_coco-256x192-00000000_20220909.pth"
    torch.save({"meta": meta, "state_dict": state}, path, _use_new_zipfile_serialization=False)
    model = build_model(load_config("coco/w32_256x192").model)
    load_weights(model, path)
    loaded = model.state_dict()
    for name in ("final_layer.weight", "stage4.2.fuse_layers.0.3.0.weight", "bn1.running_var"):
        assert torch.equal(loaded[name], state[("head." if name.startswith("final") else "backbone.") + name])


# ------------------------------------------------------------------ the cache against hostile states


def _served_entry(server: Server, monkeypatch, name: str = "test-hrnet", **kw: object) -> WeightsFile:
    server.files[f"/{name}-file.pth"] = PAYLOAD
    entry = WeightsFile(name, "pose", f"{server.url}/{name}-file.pth", "a test file", "test", **kw)  # type: ignore[arg-type]
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    return entry


@pytest.mark.parametrize("published", [True, False], ids=["published-checksum", "no-published-checksum"])
def test_a_tampered_cached_file_is_refused_until_fetched_again(server, cache, monkeypatch, capsys, published):
    """A cached file is checked before use: against the published SHA-256, or where none is published against the
    one it had when downloaded. `weights list` says so; `weights get NAME --force` downloads it again."""
    entry = _served_entry(server, monkeypatch, **({"sha256_prefix": SHA[:8]} if published else {}))
    path = resolve_weights(entry.name, progress=False)
    record = json.loads(path.with_name(path.name + ".sha256").read_text())
    assert record["sha256"] == SHA and record["size"] == len(PAYLOAD)
    path.write_bytes(PAYLOAD[:-1] + b"x")  # same size: the new modification time makes it be hashed again
    os.utime(path, ns=(record["mtime_ns"] + 10**9, record["mtime_ns"] + 10**9))
    with pytest.raises(DownloadError) as err:
        resolve_weights(entry.name, progress=False)
    message = str(err.value)
    assert (
        str(path) in message and f"hrnet weights get {entry.name} --force" in message and "delete the file" in message
    )
    assert main(["weights", "list"]) == 0
    assert re.search(rf"{entry.name}\s+cached, checksum mismatch", capsys.readouterr().out)
    assert main(["weights", "get", entry.name]) == 2
    assert "the cached file is damaged" in capsys.readouterr().err
    assert main(["weights", "get", entry.name, "--force"]) == 0
    assert path.read_bytes() == PAYLOAD and resolve_weights(entry.name) == path


def test_a_verified_file_is_not_hashed_again(server, cache, monkeypatch):
    """The check is kept beside the file, keyed by its size and modification time: a later use reads the record.
    (Shown by a change that keeps both, which only the record can hide.)"""
    entry = _served_entry(server, monkeypatch, sha256_prefix=SHA[:8])
    path = resolve_weights(entry.name, progress=False)
    stat = path.stat()
    path.write_bytes(PAYLOAD[:-1] + b"x")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert resolve_weights(entry.name, progress=False) == path


@pytest.mark.parametrize("below", [False, True], ids=["the-cache", "a-folder-above-it"])
def test_a_cache_that_is_a_file_is_one_clear_error(cache, monkeypatch, capsys, below, free_port):
    entry = WeightsFile("test-hrnet", "pose", f"http://127.0.0.1:{free_port()}/w.pth", "a test file", "test")
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("not a folder")
    if below:
        monkeypatch.setenv("HRNET_CACHE", str(cache / "sub"))
    with pytest.raises(DownloadError, match=rf"{re.escape(str(cache))}\S*: .*a file is in the way.*\$HRNET_CACHE"):
        resolve_weights(entry.name)
    with pytest.raises(DownloadError, match="it is not in the cache"):
        resolve_weights(entry.name, download=False)
    assert main(["weights", "get", entry.name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a file is in the way" in err and "Traceback" not in err


@contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """``folder`` made read-only for this process: by its mode, or for root (whom modes do not stop) by the
    immutable attribute; skips the test where neither holds."""
    folder.mkdir(parents=True, exist_ok=True)
    immutable = os.geteuid() == 0
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True) if immutable else None
    if not immutable:
        folder.chmod(0o555)
    try:
        probe = folder / "probe"
        try:
            probe.write_bytes(b"")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip(f"cannot make a folder read-only here ({done.stderr if done else 'chmod had no effect'})")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)


def test_a_read_only_cache_is_one_clear_error(server, cache, monkeypatch, capsys):
    entry = _served_entry(server, monkeypatch)
    with _read_only(cache):
        with pytest.raises(
            DownloadError, match=rf"{re.escape(str(cache))}\S*: cannot write the weights cache.*read-only"
        ):
            resolve_weights(entry.name, progress=False)
        assert main(["weights", "get", entry.name]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "$HRNET_CACHE" in err
        assert not server.requests  # refused before downloading anything


def test_a_failed_get_leaves_no_empty_folders(cache, monkeypatch, capsys, free_port):
    entry = WeightsFile("test-hrnet", "pose", f"http://127.0.0.1:{free_port()}/w.pth", "a test file", "test")
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    assert main(["weights", "get", entry.name]) == 2
    assert "are you offline?" in capsys.readouterr().err
    assert not cache.exists()


def test_the_offline_advice_for_an_archive_works(cache, monkeypatch, free_port):
    """Offline, the error names the path for the archive; the archive put exactly there is unpacked, checked and
    used by the next run, with the network still unreachable."""
    onnx_bytes = b"pretend onnx" * 100
    entry = _detector_entry(f"http://127.0.0.1:{free_port()}/det-0123abcd.zip", onnx_bytes)
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    with pytest.raises(WeightsUnavailableError) as err:
        resolve_weights(entry.name, progress=False)
    advised = re.search(r"^  test-det: (\S+\.zip): cannot download", str(err.value), re.MULTILINE)
    assert advised and "a .zip is unpacked on the next run" in str(err.value)
    where = Path(advised.group(1))
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_bytes(_zip({"det/end2end.onnx": onnx_bytes}))
    path = resolve_weights(entry.name, progress=False)
    assert path == cache / "test-det" / "test-det.onnx" and path.read_bytes() == onnx_bytes
    assert not where.exists()


def test_resolve_many_reports_every_missing_file_at_once(server, cache, monkeypatch, tmp_path, free_port):
    """A pose name and a detector name, both missing and the network unreachable: one error lists both URLs and
    both exact paths; a path and a cached name among them are no trouble."""
    port = free_port()
    pose = WeightsFile("test-pose", "pose", f"http://127.0.0.1:{port}/pose-0123abcd.pth", "pose", "test")
    detector = replace(
        pose, name="test-det", kind="detector", url=f"http://127.0.0.1:{port}/det.zip", member="end2end.onnx"
    )
    cached = _served_entry(server, monkeypatch, name="test-cached", sha256_prefix=SHA[:8])
    for entry in (pose, detector):
        monkeypatch.setitem(REGISTRY, entry.name, entry)
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"x")
    assert resolve_many([cached.name, mine], progress=False) == [cached_path(cached), mine]
    with pytest.raises(WeightsUnavailableError) as err:
        resolve_many([cached.name, pose.name, mine, detector.name], progress=False)
    lines = str(err.value).splitlines()
    assert lines[0] == "2 weights files are not in the cache and could not be downloaded:" and len(lines) == 7
    for line, entry, where in (
        (lines[1], pose, cache / "test-pose" / "pose-0123abcd.pth"),
        (lines[2], detector, cache / "test-det" / "det.zip"),
    ):
        assert line.startswith(f"  {entry.name}: {where}: cannot download {entry.url} (")
    assert "`hrnet weights get test-pose test-det`" in lines[4] and "a .zip is unpacked" in lines[5]
    with pytest.raises(WeightsUnavailableError, match=r"^2 weights files .*\n  test-pose: .*it is not in the cache"):
        resolve_many([pose.name, detector.name], download=False)


def test_two_fetches_of_one_archive_at_once_both_get_the_file(server, cache, monkeypatch):
    """Concurrent `hrnet weights get` of one archive: one downloads and unpacks (deleting the archive), the other
    waits and uses the result (it failed on the vanished archive)."""
    import threading

    onnx_bytes = b"pretend onnx" * 1000
    server.files["/det.zip"] = _zip({"det/end2end.onnx": onnx_bytes})
    entry = _detector_entry(f"{server.url}/det.zip", onnx_bytes)
    results: list[object] = []

    def get() -> None:
        try:
            results.append(fetch(entry, progress=False).read_bytes())
        except Exception as err:  # the test reports what either thread met
            results.append(err)

    threads = [threading.Thread(target=get) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [onnx_bytes, onnx_bytes]


def test_weights_get_hashes_the_file_whole_and_names_few_unknown_names(server, cache, monkeypatch, capsys):
    entry = _served_entry(server, monkeypatch)
    path = resolve_weights(entry.name, progress=False)
    stat = path.stat()
    path.write_bytes(PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1]))  # one byte flipped, size and time kept
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert main(["weights", "get", entry.name]) == 2
    assert "the cached file is damaged or was changed" in capsys.readouterr().err
    assert main(["weights", "get", *(f"no-such-{i}" for i in range(300))]) == 2
    err = capsys.readouterr().err
    assert "'no-such-0', 'no-such-1'" in err and "and 295 more" in err and len(err) < 400


def test_a_local_file_named_like_a_registered_name_is_used_and_said(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rtmdet-nano-person").write_bytes(b"mine")
    assert resolve_weights("rtmdet-nano-person") == Path("rtmdet-nano-person")
    assert "rtmdet-nano-person: a file of that name is in this folder" in caplog.text
    caplog.clear()
    assert resolve_weights("./rtmdet-nano-person") == Path("rtmdet-nano-person")
    assert "a file of that name" not in caplog.text


def test_an_archive_placed_by_hand_is_unpacked_where_no_fetch_lock_can_be_taken(cache, monkeypatch, tmp_path):
    """The fetch lock lives in the temporary folder; where none can be written there, the archive is still
    unpacked (unguarded) rather than the fetch failing."""
    import tempfile

    onnx_bytes = b"pretend onnx" * 100
    entry = _detector_entry("http://127.0.0.1:9/det-0123abcd.zip", onnx_bytes)
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(not_a_folder))
    archive = manual_path(entry)
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(_zip({"det/end2end.onnx": onnx_bytes}))
    assert resolve_weights(entry.name, download=False, progress=False).read_bytes() == onnx_bytes
