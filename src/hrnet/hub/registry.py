"""Weights by name: a registry of public pose and person-detector files, downloaded into a user cache.

``resolve_weights(spec)`` turns a ``--weights`` argument into a file: a path that exists is itself; a registered
name (``REGISTRY``, ``hrnet weights list``) is its file in the cache, downloaded first if missing.
``resolve_many(specs)`` does the same for several arguments at once (a pose file and a detector) and reports every
file that cannot be had in one error. The cache is ``$HRNET_CACHE`` or ``~/.cache/hrnet``; each file lives in
``<cache>/<name>/``. ``config_for_weights(name)`` is the shipped experiment config a pose name fits.

A download (``hrnet.hub.download``) shows a progress bar, goes to ``<file>.part`` (resumed with an HTTP Range request
when a previous try was cut off), is checked against the registry's checksum, and only then is renamed onto the file: a
reader never sees a partial or unverified file. A file already in the cache is checked again before use: its SHA-256
against the published one, or, where none is published, against the one it had when it was downloaded. The result is
kept beside the file (``<file>.sha256``, keyed by the file's size and modification time), so the hash is computed once.

Checksums are recorded only where the publisher states them: MMPose's file names end in the first 8 hex digits of
the file's SHA-256 (its ``tools/misc/publish_model.py`` names them so), which is checked as a prefix. The zip
archives of the person detectors carry no published checksum (the hex digits in their names are those of the
PyTorch checkpoint they were exported from), so they are downloaded unverified and the log prints the SHA-256 they
had. The official HRNet checkpoints (Google Drive / OneDrive folders) have no direct link, so they are not here:
download them by hand and pass the path. MMPose's HRNet files are the same network with the same test protocol,
trained with MMPose's recipe (Adam 5e-4 with a linear warm-up, 64 images per GPU for W32 and 32 for W48 on 8 GPUs,
rotation 40°, scale 0.5), not the official one (Adam 1e-3, 32 images per GPU on 4 GPUs, rotation 45°, scale 0.35).

Zip archives (MMDeploy's ONNX "SDK" folders, as rtmlib uses them) are unpacked and the one ONNX file in them kept.

A little long because of the registry itself (26 entries, each with its source and figures); the downloading is
in ``hrnet.hub.download``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hrnet.errors import DownloadError
from hrnet.hub.download import download, record_checksum, recorded_checksum, sha256_of, unpack_member

log = logging.getLogger(__name__)

_MMPOSE = "https://download.openmmlab.com/mmpose"
_MMPOSE_V1_COCO = f"{_MMPOSE}/v1/body_2d_keypoint/topdown_heatmap/coco"
_ONNX_SDK = f"{_MMPOSE}/v1/projects/rtmposev1/onnx_sdk"
# How each pose entry's test protocol reads heatmaps (its config's data.target and test.decode say the same).
DECODINGS = {
    "argmax": "argmax + quarter-pixel offset",
    "dark": "DARK",
    "udp": "UDP geometry + DARK refinement",
}
_CACHE_HINT = "The cache is $HRNET_CACHE or ~/.cache/hrnet."


@dataclass(frozen=True)
class WeightsFile:
    """One public file.

    Attributes:
        name: the name to pass as ``--weights`` / ``--detector``.
        kind: "pose" (an HRNet checkpoint) or "detector" (a person detector in ONNX).
        url: where to download it.
        about: one line for ``hrnet weights list``.
        source: the page (repository and path) that lists the URL and the figure in ``accuracy``.
        accuracy: the published figure, with the data set it was measured on.
        sha256: the file's full SHA-256 where one is published, else None.
        sha256_prefix: the leading hex digits of its SHA-256 that its published file name carries, else None.
        member: for a zip archive, the file inside it to keep (its name ends so); None for plain files.
        member_sha256: the kept member's SHA-256 where its publisher states one.
        config: the shipped experiment config (``hrnet.config.load_config`` name) that reproduces the file's test
            settings; pose weights only.
        num_keypoints: how many keypoints the pose network predicts.
        decoding: a key of ``DECODINGS``: how the file's published figure decoded heatmaps.
        detector_format: the detector's layout (``hrnet.pose.detect.FORMATS``).
        input_size: the network's input (height, width).
    """

    name: str
    kind: str
    url: str
    about: str
    source: str
    accuracy: str = ""
    sha256: str | None = None
    sha256_prefix: str | None = None
    member: str | None = None
    member_sha256: str | None = None
    config: str | None = None
    num_keypoints: int | None = None
    decoding: str | None = None
    detector_format: str | None = None
    input_size: tuple[int, int] | None = None

    @property
    def filename(self) -> str:
        """The name of the file that ends up in the cache (an archive's member is renamed after the entry)."""
        if self.member is not None:
            return f"{self.name}{Path(self.member).suffix}"
        return self.url.rsplit("/", 1)[-1]

    @property
    def verified_by(self) -> str:
        if self.sha256:
            return "SHA-256"
        if self.sha256_prefix:
            return f"SHA-256 prefix {self.sha256_prefix}"
        if self.member_sha256:
            return "SHA-256 of the unpacked file"
        return "none published"


_MMPOSE_0X = "open-mmlab/mmpose, branch 0.x: configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/"
_MMPOSE_1X = "open-mmlab/mmpose, branch main: configs/body_2d_keypoint/topdown_heatmap/coco/hrnet_coco.md"
_COCO_AP = "AP {} on COCO val2017 (detected persons)"
_RTMDET_SOURCE = (
    "zip URL not listed on an OpenMMLab page (used by third-party tools); the model (as .pth) and its AP: "
    "open-mmlab/mmpose projects/rtmpose/README.md, Pipeline Performance table"
)
_YOLOX_SOURCE = (
    "zip URL: Tau-J/rtmlib README.md (Person detection table); AP: open-mmlab/mmpose projects/rtmpose/README.md "
    "(Human-Art detectors; measured on HumanArt's validation set, projects/rtmpose/yolox/humanart/*.py)"
)


def _hrnet(
    name: str,
    url: str,
    source: str,
    about: str,
    accuracy: str,
    config: str,
    decoding: str,
    input_size: tuple[int, int],
    num_keypoints: int = 17,
) -> WeightsFile:
    """An MMPose HRNet file; the SHA-256 prefix is the 8 hex digits its name ends with before the date."""
    stem = url.rsplit("/", 1)[-1].removesuffix(".pth")
    prefix = stem.rsplit("_", 1)[0].rsplit("-", 1)[-1]
    return WeightsFile(
        name,
        "pose",
        url,
        about,
        source,
        accuracy,
        sha256_prefix=prefix,
        config=config,
        num_keypoints=num_keypoints,
        decoding=decoding,
        input_size=input_size,
    )


def _mmpose_0x(width: int, size: tuple[int, int], method: str, stamp: str, ap: str) -> WeightsFile:
    """An MMPose 0.x COCO file: ``method`` "" (plain), "udp" or "dark"; ``stamp`` its name's "<sha>_<date>"."""
    h, w = size
    suffix = f"_{method}" if method else ""
    folder = "udp" if method == "udp" else "hrnet"
    table = {"": "hrnet_coco.md", "udp": "hrnet_udp_coco.md", "dark": "hrnet_dark_coco.md"}[method]
    kind = {"": "", "udp": ", UDP", "dark": ", DARK"}[method]
    return _hrnet(
        f"mmpose-hrnet-w{width}-coco-{h}x{w}" + (f"-{method}" if method else ""),
        f"{_MMPOSE}/top_down/{folder}/hrnet_w{width}_coco_{h}x{w}{suffix}-{stamp}.pth",
        _MMPOSE_0X + "coco/" + table,
        f"HRNet-W{width}{kind}, MMPose 0.x",
        _COCO_AP.format(ap),
        f"coco/w{width}_{h}x{w}" + suffix,
        method or "argmax",
        size,
    )


def _mmpose_1x(width: int, size: tuple[int, int], batch: int, stamp: str, ap: str) -> WeightsFile:
    """An MMPose 1.x plain COCO file (``td-hm_hrnet-w<width>_8xb<batch>-210e_coco-<h>x<w>``)."""
    h, w = size
    return _hrnet(
        f"mmpose1-hrnet-w{width}-coco-{h}x{w}",
        f"{_MMPOSE_V1_COCO}/td-hm_hrnet-w{width}_8xb{batch}-210e_coco-{h}x{w}-{stamp}.pth",
        _MMPOSE_1X,
        f"HRNet-W{width}, MMPose 1.x",
        _COCO_AP.format(ap),
        f"coco/w{width}_{h}x{w}",
        "argmax",
        size,
    )


def _onnx_sdk(name: str, file: str, size: int, about: str, accuracy: str, source: str) -> WeightsFile:
    return WeightsFile(
        name,
        "detector",
        f"{_ONNX_SDK}/{file}",
        about,
        source,
        accuracy,
        member="end2end.onnx",
        detector_format="rtmdet" if name.startswith("rtmdet") else "yolox",
        input_size=(size, size),
    )


# What hrnet predict, hrnet serve and PoseEstimator.from_weights use when none is named (docs/weights.md says why).
DEFAULT_WEIGHTS = "mmpose-hrnet-w32-coco-256x192"
DEFAULT_DETECTOR = "rtmdet-nano-person"  # 320×320, fast on a CPU; COCO person AP 40.3

REGISTRY: dict[str, WeightsFile] = {
    e.name: e
    for e in (
        _mmpose_0x(32, (256, 192), "", "c78dce93_20200708", "0.746"),
        _mmpose_0x(32, (384, 288), "", "d9f0d786_20200708", "0.760"),
        _mmpose_0x(48, (256, 192), "", "b9e0b3ab_20200708", "0.756"),
        _mmpose_0x(48, (384, 288), "", "314c8528_20200708", "0.767"),
        _mmpose_0x(32, (256, 192), "udp", "aba0be42_20210220", "0.760"),
        _mmpose_0x(32, (384, 288), "udp", "e97c1a0f_20210223", "0.769"),
        _mmpose_0x(48, (256, 192), "udp", "2554c524_20210223", "0.767"),
        _mmpose_0x(48, (384, 288), "udp", "0f89c63e_20210223", "0.772"),
        _mmpose_0x(32, (256, 192), "dark", "07f147eb_20200812", "0.757"),
        _mmpose_0x(32, (384, 288), "dark", "307dafc2_20210203", "0.766"),
        _mmpose_0x(48, (256, 192), "dark", "8cba3197_20200812", "0.764"),
        _mmpose_0x(48, (384, 288), "dark", "e881a4b6_20210203", "0.772"),
        _mmpose_1x(32, (256, 192), 64, "81c58e40_20220909", "0.749"),
        _mmpose_1x(32, (384, 288), 64, "ca5956af_20220909", "0.761"),
        _mmpose_1x(48, (256, 192), 32, "0e67c616_20220913", "0.756"),
        _mmpose_1x(48, (384, 288), 32, "c161b7de_20220915", "0.767"),
        *(
            _hrnet(
                f"mmpose-hrnet-w{width}-mpii-256x256",
                f"{_MMPOSE}/top_down/hrnet/hrnet_w{width}_mpii_256x256-{stamp}.pth",
                _MMPOSE_0X + "mpii/hrnet_mpii.md (also branch main: configs/body_2d_keypoint/topdown_heatmap/"
                "mpii/hrnet_mpii.md)",
                f"HRNet-W{width}, MMPose 0.x",
                f"PCKh@0.5 {pckh} on MPII val",
                f"mpii/w{width}_256x256",
                "argmax",
                (256, 256),
                num_keypoints=16,
            )
            for width, stamp, pckh in ((32, "6c4f923f_20200812", "0.900"), (48, "92cab7bd_20200812", "0.901"))
        ),
        _onnx_sdk(
            "rtmdet-nano-person",
            "rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.zip",
            320,
            "RTMDet-nano person detector, MMDeploy end-to-end ONNX",
            "person AP 40.3 on COCO val2017",
            _RTMDET_SOURCE,
        ),
        _onnx_sdk(
            "rtmdet-m-person",
            "rtmdet_m_8xb32-100e_coco-obj365-person-235e8209.zip",
            640,
            "RTMDet-m person detector, MMDeploy end-to-end ONNX",
            "person AP 62.5 on COCO val2017",
            _RTMDET_SOURCE,
        ),
        *(
            _onnx_sdk(
                f"yolox-{size_name}-humanart",
                f"yolox_{size_name}_8xb8-300e_humanart-{tag}.zip",
                size,
                f"YOLOX-{size_name} person detector (trained on HumanArt + COCO), MMDeploy end-to-end ONNX",
                f"person AP {ap} on HumanArt val",
                _YOLOX_SOURCE,
            )
            for size_name, tag, size, ap in (
                ("nano", "40f6f0d0", 416, "38.9"),
                ("tiny", "6f3252f9", 416, "47.7"),
                ("s", "3ef259a7", 640, "54.6"),
                ("m", "c2c7a14a", 640, "59.1"),
                ("l", "ce1d7a62", 640, "60.2"),
                ("x", "a39d44ed", 640, "61.3"),
            )
        ),
    )
}


def config_for_weights(spec: str | Path) -> str | None:
    """The shipped config name (``hrnet.config.load_config`` resolves it) of a registered pose weights name; None
    for anything else (a path, a detector name, an unknown name)."""
    entry = REGISTRY.get(str(spec))
    return entry.config if entry is not None and entry.kind == "pose" else None


def cache_dir() -> Path:
    """``$HRNET_CACHE``, else ``~/.cache/hrnet``."""
    return Path(os.environ.get("HRNET_CACHE") or Path.home() / ".cache" / "hrnet").expanduser()


def cached_path(entry: WeightsFile) -> Path:
    """Where ``entry``'s file is (or will be) in the cache."""
    return cache_dir() / entry.name / entry.filename


def manual_path(entry: WeightsFile) -> Path:
    """Where to put ``entry``'s file when downloading it by hand: the cached file itself, or for an archive the
    archive beside it (the next run unpacks it)."""
    if entry.member is None:
        return cached_path(entry)
    return cached_path(entry).parent / entry.url.rsplit("/", 1)[-1]


class _MismatchError(DownloadError):
    """A cached file whose SHA-256 is not the expected one."""


class _UnfetchedError(DownloadError):
    """A registered file that is not in the cache and could not be downloaded; ``reason`` says why."""

    def __init__(self, entry: WeightsFile, reason: str):
        super().__init__(_fetch_hint([(entry, reason)]))
        self.entry = entry
        self.reason = reason


def resolve_weights(spec: str | Path, *, download: bool = True, progress: bool = True) -> Path:
    """A ``--weights`` / ``--detector`` argument as a file: an existing path as it is, a registered name as its
    cached file (verified; downloaded first when missing and ``download``). Anything else comes back unchanged as a
    path, for the loader to report as missing."""
    return resolve_many([spec], download=download, progress=progress)[0]


def resolve_many(specs: Sequence[str | Path], *, download: bool = True, progress: bool = True) -> list[Path]:
    """``resolve_weights`` for several arguments (e.g. pose weights and a detector), in order.

    Every missing file is tried before anything is raised, so one ``DownloadError`` lists each file that could
    not be had, with its URL and the exact path to put it at by hand.
    """
    paths: list[Path] = []
    failed: list[_UnfetchedError] = []
    for spec in specs:
        path = Path(spec)
        entry = REGISTRY.get(str(spec))
        if path.exists() or entry is None:
            paths.append(path)
            continue
        try:
            paths.append(fetch(entry, progress=progress, allow_download=download))
        except _UnfetchedError as err:
            failed.append(err)
            paths.append(cached_path(entry))
    if len(failed) == 1:
        raise failed[0]
    if failed:
        raise DownloadError(_fetch_hint([(err.entry, err.reason) for err in failed]))
    return paths


def fetch(entry: WeightsFile, *, progress: bool = True, force: bool = False, allow_download: bool = True) -> Path:
    """``entry``'s file in the cache, verified (``verify``); downloaded first (resuming a cut-off try) when it is
    not there, or always with ``force``. An archive already placed beside it is unpacked without a download.

    Raises:
        DownloadError: the cached file fails its check, the cache folder cannot be used, or the file is missing
            and cannot be downloaded (or ``allow_download`` is False).
    """
    target = cached_path(entry)
    _check_cache_folder(target.parent)
    if not force and target.is_file():
        verify(target, entry)
        return target
    archive = manual_path(entry)
    if not force and entry.member is not None and archive.is_file():
        # Placed here by hand (the offline advice) or left by a run that stopped before unpacking it.
        _unpack_archive(archive, entry.member, target, entry.member_sha256)
        return target
    if not allow_download:
        raise _UnfetchedError(entry, "it is not in the cache")
    created = _make_folders(target.parent)
    try:
        download(
            entry.url,
            archive,
            sha256=entry.sha256,
            sha256_prefix=entry.sha256_prefix,
            progress=progress,
            error=lambda reason: _UnfetchedError(entry, reason),
        )
        if entry.member is not None:
            _unpack_archive(archive, entry.member, target, entry.member_sha256)
        else:
            record_checksum(target, sha256_of(target))
    except BaseException:
        for folder in reversed(created):  # deepest first; a kept .part file (to resume) keeps its folder
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return target


def _unpack_archive(archive: Path, member: str, target: Path, sha256: str | None) -> None:
    """``unpack_member``, then the checksum kept beside the unpacked file and the archive removed."""
    record_checksum(target, unpack_member(archive, member, target, sha256))
    archive.unlink()


def _fetch_hint(failures: Sequence[tuple[WeightsFile, str]]) -> str:
    """What went wrong for each entry, and where to put each file by hand."""
    what = " ".join(f"weights {entry.name!r}: {_sentence(reason)}" for entry, reason in failures)
    places = "; ".join(f"{entry.url} at {manual_path(entry)}" for entry, _ in failures)
    archives = " (an archive is unpacked on the next run)" if any(entry.member for entry, _ in failures) else ""
    if len(failures) == 1:
        entry = failures[0][0]
        return (
            f"{what} Download {entry.url} yourself (on a machine with internet) and put it at {manual_path(entry)}"
            f"{archives}; or pass the file's path instead of the name. {_CACHE_HINT}"
        )
    return (
        f"{len(failures)} weights files are missing. {what} Download each yourself (on a machine with internet) and "
        f"put it at its path: {places}{archives}; or pass the files' paths instead of the names. {_CACHE_HINT}"
    )


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def _check_cache_folder(folder: Path) -> None:
    """``DownloadError`` when ``folder`` cannot be a folder: it, or a folder above it, is an existing file."""
    for path in (folder, *folder.parents):
        if path.is_dir():
            return
        if path.exists() or path.is_symlink():
            raise DownloadError(
                f"the weights cache {cache_dir()} cannot be used: {path} is not a folder (a file is in the way); point "
                "$HRNET_CACHE at a folder (or unset it to use ~/.cache/hrnet)"
            )


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and the missing folders above it, and make sure a file can be written in it; returns the
    folders created, outermost first. ``DownloadError`` naming the folder when the cache is read-only."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    created: list[Path] = []
    try:
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            created.append(path)
        probe = folder / f".write-test.{secrets.token_hex(4)}.tmp"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as err:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.rmdir()
        raise DownloadError(
            f"cannot write into the weights cache {folder} ({err.strerror or err}): make it writable, or point "
            "$HRNET_CACHE at a writable folder"
        ) from None
    return created


def verify(path: Path, entry: WeightsFile) -> str:
    """The SHA-256 of ``entry``'s cached file ``path``, checked against the published one, or where none is
    published against the one it had when it was downloaded. Hashed only when the file's size or modification time
    changed since the last check.

    Raises:
        DownloadError: the file differs (it says how to download it again) or cannot be read.
    """
    published = entry.member_sha256 if entry.member else (entry.sha256 or entry.sha256_prefix)
    try:
        recorded, current = recorded_checksum(path)
        actual = recorded if recorded is not None and current else sha256_of(path)
    except OSError as err:
        raise DownloadError(f"{path}: cannot read the cached file of weights {entry.name!r} ({err.strerror})") from None
    expected = published or recorded
    if expected and not actual.startswith(expected.lower()):
        against = "the published one" if published else "the one it had when it was downloaded"
        raise _MismatchError(
            f"{path}: the cached file is damaged or was changed: its SHA-256 is {actual}, {against} "
            f"{'starts with ' if len(expected) < 64 else 'is '}{expected}; download it again with `hrnet weights get "
            f"{entry.name} --force`, or delete the file"
        )
    if not published and recorded is None:
        log.warning("%s: no published checksum to verify it against; its SHA-256 is %s", path.name, actual)
    if not (recorded == actual and current):
        record_checksum(path, actual)
    return actual


def cache_status(entry: WeightsFile) -> str:
    """ "" (not cached), "cached", "cached, checksum mismatch" or "cached, unreadable", for ``hrnet weights list``."""
    path = cached_path(entry)
    if not path.is_file():
        return ""
    try:
        verify(path, entry)
    except _MismatchError:
        return "cached, checksum mismatch"
    except DownloadError:
        return "cached, unreadable"
    return "cached"
