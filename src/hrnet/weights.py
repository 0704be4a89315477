"""Weights by name: a registry of public pose and person-detector files, downloaded into a user cache.

``resolve_weights(spec)`` turns a ``--weights`` argument into a file: a path that exists is itself; a registered
name (``REGISTRY``, ``hrnet weights list``) is its file in the cache, downloaded first if missing. The cache is
``$HRNET_CACHE`` or ``~/.cache/hrnet``; each file lives in ``<cache>/<name>/``.

A download shows a progress bar, goes to ``<file>.part`` (resumed with an HTTP Range request when a previous try
was cut off), is checked against the registry's checksum, and only then is renamed onto the file: a reader never
sees a partial or unverified file. Checksums are recorded only where they are stated publicly: MMPose's file names
end in the first 8 hex digits of the file's SHA-256 (mmcv's ``publish_model`` names them so), which is checked
as a prefix; files with no published checksum are downloaded unverified, and the log says so and prints the
SHA-256 they had. The official HRNet checkpoints (Google Drive / OneDrive folders) have no direct link, so they
are not here: download them by hand and pass the path; MMPose's HRNet files are the same networks, trained
with the official recipe.

Zip archives (MMPose's ONNX "SDK" folders, as rtmlib uses them) are unpacked and the one ONNX file in them kept.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from hrnet.errors import DownloadError
from hrnet.fileio import atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 16
_MMPOSE = "https://download.openmmlab.com/mmpose"
_ONNX_SDK = f"{_MMPOSE}/v1/projects/rtmposev1/onnx_sdk"


@dataclass(frozen=True)
class WeightsFile:
    """One public file.

    Attributes:
        name: the name to pass as ``--weights`` / ``--detector``.
        kind: "pose" (an HRNet checkpoint) or "detector" (a person detector in ONNX).
        url: where to download it.
        about: one line for ``hrnet weights list``.
        source: the page that states the URL (and the checksum, if any).
        sha256: the file's full SHA-256 where one is published, else None.
        sha256_prefix: the leading hex digits of its SHA-256 that its published file name carries, else None.
        member: for a zip archive, the file inside it to keep (its name ends so); None for plain files.
        member_sha256: the kept member's SHA-256 where one is published.
        config: the experiment config the pose weights fit.
        detector_format: the detector's layout (``hrnet.detect.FORMATS``).
        input_size: the detector's input (height, width).
    """

    name: str
    kind: str
    url: str
    about: str
    source: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    member: str | None = None
    member_sha256: str | None = None
    config: str | None = None
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


_MMPOSE_ZOO = "MMPose 0.x model zoo: configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/coco/hrnet_coco.md (and mpii/)"
_RTMLIB = "https://github.com/Tau-J/rtmlib README (detection models) and rtmlib/tools/solution/body.py"
_RTMPOSE = "https://github.com/open-mmlab/mmpose/tree/main/projects/rtmpose (pipeline table, detectors)"


def _mmpose_hrnet(name: str, file: str, prefix: str, config: str, about: str) -> WeightsFile:
    return WeightsFile(
        name,
        "pose",
        f"{_MMPOSE}/top_down/hrnet/{file}",
        about,
        _MMPOSE_ZOO,
        sha256_prefix=prefix,
        config=config,
    )


def _onnx_sdk(name: str, file: str, fmt: str, size: int, about: str, source: str, **kw: str) -> WeightsFile:
    return WeightsFile(
        name,
        "detector",
        f"{_ONNX_SDK}/{file}",
        about,
        source,
        member="end2end.onnx",
        detector_format=fmt,
        input_size=(size, size),
        **kw,
    )


REGISTRY: dict[str, WeightsFile] = {
    e.name: e
    for e in (
        _mmpose_hrnet(
            "mmpose-hrnet-w32-coco-256x192",
            "hrnet_w32_coco_256x192-c78dce93_20200708.pth",
            "c78dce93",
            "configs/coco/w32_256x192.yaml",
            "HRNet-W32 COCO 256x192, MMPose (val AP 0.746 with person detections)",
        ),
        _mmpose_hrnet(
            "mmpose-hrnet-w32-coco-384x288",
            "hrnet_w32_coco_384x288-d9f0d786_20200708.pth",
            "d9f0d786",
            "configs/coco/w32_384x288.yaml",
            "HRNet-W32 COCO 384x288, MMPose (val AP 0.760)",
        ),
        _mmpose_hrnet(
            "mmpose-hrnet-w48-coco-256x192",
            "hrnet_w48_coco_256x192-b9e0b3ab_20200708.pth",
            "b9e0b3ab",
            "configs/coco/w48_256x192.yaml",
            "HRNet-W48 COCO 256x192, MMPose (val AP 0.756)",
        ),
        _mmpose_hrnet(
            "mmpose-hrnet-w48-coco-384x288",
            "hrnet_w48_coco_384x288-314c8528_20200708.pth",
            "314c8528",
            "configs/coco/w48_384x288.yaml",
            "HRNet-W48 COCO 384x288, MMPose (val AP 0.767)",
        ),
        _mmpose_hrnet(
            "mmpose-hrnet-w32-mpii-256x256",
            "hrnet_w32_mpii_256x256-6c4f923f_20200812.pth",
            "6c4f923f",
            "configs/mpii/w32_256x256.yaml",
            "HRNet-W32 MPII 256x256, MMPose (PCKh 0.900)",
        ),
        _onnx_sdk(
            "rtmdet-nano-person",
            "rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.zip",
            "rtmdet",
            320,
            "RTMDet-nano person detector, 320x320, MMDeploy end-to-end ONNX (COCO person AP 40.3)",
            _RTMPOSE + "; unpacked file's SHA-256 as stated by a public download script (see the report)",
            member_sha256="8297e829ccc5590c8e2d32d5a211f322a0585fb7467eec85eb12c9525b0b95d6",
        ),
        _onnx_sdk(
            "rtmdet-m-person",
            "rtmdet_m_8xb32-100e_coco-obj365-person-235e8209.zip",
            "rtmdet",
            640,
            "RTMDet-m person detector, 640x640, MMDeploy end-to-end ONNX (COCO person AP 62.5)",
            _RTMPOSE,
        ),
        *(
            _onnx_sdk(
                f"yolox-{size_name}-humanart",
                f"yolox_{size_name}_8xb8-300e_humanart-{tag}.zip",
                "yolox",
                size,
                f"YOLOX-{size_name} person detector (HumanArt + COCO), {size}x{size}, MMDeploy end-to-end ONNX "
                f"(person AP {ap})",
                _RTMLIB,
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


def cache_dir() -> Path:
    """``$HRNET_CACHE``, else ``~/.cache/hrnet``."""
    return Path(os.environ.get("HRNET_CACHE") or Path.home() / ".cache" / "hrnet").expanduser()


def cached_path(entry: WeightsFile) -> Path:
    """Where ``entry``'s file is (or will be) in the cache."""
    return cache_dir() / entry.name / entry.filename


def resolve_weights(spec: str | Path, *, download: bool = True, progress: bool = True) -> Path:
    """A ``--weights`` / ``--detector`` argument as a file: an existing path as it is, a registered name as its
    cached file (downloaded first when missing and ``download``). Anything else comes back unchanged as a path,
    for the loader to report as missing."""
    path = Path(spec)
    if path.exists() or str(spec) not in REGISTRY:
        return path
    entry = REGISTRY[str(spec)]
    target = cached_path(entry)
    if target.is_file():
        return target
    if not download:
        raise DownloadError(_fetch_hint(entry, target, "it is not in the cache"))
    return fetch(entry, progress=progress)


def fetch(entry: WeightsFile, *, progress: bool = True, force: bool = False) -> Path:
    """``entry``'s file in the cache, downloaded (resuming a cut-off try) and verified if not there yet."""
    target = cached_path(entry)
    if target.is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # A file that comes inside an archive (rtmlib's zips) is downloaded beside it, unpacked, then dropped.
    downloaded = target if entry.member is None else target.parent / entry.url.rsplit("/", 1)[-1]
    download(
        entry.url,
        downloaded,
        sha256=entry.sha256,
        sha256_prefix=entry.sha256_prefix,
        progress=progress,
        hint=lambda reason: _fetch_hint(entry, downloaded, reason),
    )
    if entry.member is not None:
        _unpack(downloaded, entry.member, target, entry.member_sha256)
        downloaded.unlink()
    return target


def _fetch_hint(entry: WeightsFile, where: Path, reason: str) -> str:
    return (
        f"weights {entry.name!r}: {reason}. Download {entry.url} yourself (on a machine with internet) and put it "
        f"at {where}"
        + (" (the archive is unpacked on the next run)" if entry.member else "")
        + "; or pass the file's path instead of the name. The cache is $HRNET_CACHE or ~/.cache/hrnet."
    )


def download(
    url: str,
    target: str | Path,
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    hint: Callable[[str], str] | None = None,
) -> Path:
    """Download ``url`` to ``target``: through ``<target>.part`` (resumed from its size with an HTTP Range
    request), checked against ``sha256`` (or its leading hex digits ``sha256_prefix``), then renamed.

    Raises:
        DownloadError: the server cannot be reached, the transfer ended early (the ``.part`` file is kept: run
            again to resume), or the checksum differs (the ``.part`` file is deleted).
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    explain = hint or (lambda reason: f"{url}: {reason}")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "hrnet"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part file is already whole (or longer than the file): start again
            part.unlink()
            return download(
                url, target, sha256=sha256, sha256_prefix=sha256_prefix, progress=progress, timeout=timeout, hint=hint
            )
        raise DownloadError(explain(f"the server answered HTTP {err.code} {err.reason} for {url}")) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(explain(f"cannot download {url} ({reason}); are you offline?")) from None
    with response:
        resumed = have > 0 and response.status == 206
        if have and not resumed:
            log.info("%s: the server does not resume downloads; starting again", url)
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        digest = hashlib.sha256()
        if resumed:
            with part.open("rb") as f:
                for block in iter(lambda: f.read(CHUNK), b""):
                    digest.update(block)
        got = have
        with (
            part.open("ab" if resumed else "wb") as out,
            tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
                disable=not progress,
            ) as bar,
        ):  # fmt: skip
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    got += len(block)
                    bar.update(len(block))
            except (OSError, ValueError) as err:  # connection reset, timeout, http.client.IncompleteRead
                raise DownloadError(
                    explain(f"the download stopped at {got} of {total or '?'} bytes ({err}); run again to resume")
                ) from None
    if total is not None and got < total:
        raise DownloadError(explain(f"the download stopped at {got} of {total} bytes; run again to resume"))
    actual = digest.hexdigest()
    expected = sha256 or sha256_prefix
    if expected and not actual.startswith(expected.lower()):
        part.unlink()
        raise DownloadError(
            explain(
                f"checksum mismatch for {url}: its SHA-256 is {actual}, expected "
                f"{'one starting with ' if not sha256 else ''}{expected}; the download was deleted (a changed or "
                "corrupted file)"
            )
        )
    if not expected:
        log.warning("%s: no published checksum to verify it against; its SHA-256 is %s", target.name, actual)
    os.replace(part, target)
    return target


def _unpack(archive: Path, member: str, target: Path, sha256: str | None) -> None:
    """Take the one file of ``archive`` whose name ends in ``member``, write it to ``target`` atomically, and check
    it against ``sha256`` when given."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
            if len(names) != 1:
                raise DownloadError(
                    f"{archive}: expected one {member} inside the archive, found {len(names)}; delete the file "
                    "and download it again"
                )
            digest = hashlib.sha256()
            with atomic_path(target) as tmp, zf.open(names[0]) as src, tmp.open("wb") as dst:
                for block in iter(lambda: src.read(CHUNK), b""):
                    dst.write(block)
                    digest.update(block)
                if sha256 and digest.hexdigest() != sha256:
                    raise DownloadError(
                        f"{archive}: checksum mismatch for {names[0]}: its SHA-256 is {digest.hexdigest()}, "
                        f"expected {sha256}; delete the archive and download it again"
                    )
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{archive}: not a readable zip archive ({err}); delete it and download again") from None


def verify(path: Path, entry: WeightsFile) -> str:
    """The SHA-256 of a cached file, checked against ``entry``'s published one when there is one."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    actual = digest.hexdigest()
    expected = entry.member_sha256 if entry.member else (entry.sha256 or entry.sha256_prefix)
    if expected and not actual.startswith(expected):
        raise DownloadError(
            f"{path}: its SHA-256 is {actual}, expected {expected}: the cached file is damaged; delete it and run "
            f"hrnet weights get {entry.name}"
        )
    return actual
