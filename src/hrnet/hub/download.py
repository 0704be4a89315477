"""Downloads that appear whole and checked, or not at all, and the SHA-256 of a downloaded file kept beside it.

``download(url, target)`` goes through ``<target>.part`` (resumed with an HTTP Range request when a previous try
was cut off), checks the SHA-256 (or its leading hex digits) when one is given, and only then renames the file
into place; ``unpack_member`` takes one file out of a zip archive the same way. ``record_checksum`` keeps a file's
SHA-256 beside it (``<file>.sha256``, keyed by its size and modification time), so that a file checked once is not
hashed again until it changes. ``hrnet.hub.registry`` uses these for its registry of named files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from hrnet.errors import DataError, DownloadError, OutputError
from hrnet.io.files import atomic_path, read_json, write_json_atomic

log = logging.getLogger(__name__)

CHUNK = 1 << 16


def download(
    url: str,
    target: str | Path,
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    error: Callable[[str], DownloadError] | None = None,
) -> Path:
    """Download ``url`` to ``target``: through ``<target>.part`` (resumed from its size with an HTTP Range
    request), checked against ``sha256`` (or its leading hex digits ``sha256_prefix``), then renamed.
    ``error(reason)`` makes the exception raised (default: a ``DownloadError`` naming the URL).

    Raises:
        DownloadError: the server cannot be reached, the transfer ended early (the ``.part`` file is kept: run
            again to resume), or the checksum differs (the ``.part`` file is deleted).
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    fail = error or (lambda reason: DownloadError(f"{url}: {reason}"))
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
                url, target, sha256=sha256, sha256_prefix=sha256_prefix, progress=progress, timeout=timeout, error=error
            )
        raise fail(f"the server answered HTTP {err.code} {err.reason} for {url}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise fail(f"cannot download {url} ({reason}); are you offline?") from None
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
        try:
            out = part.open("ab" if resumed else "wb")
        except OSError as err:
            raise DownloadError(f"{part}: cannot write the download ({err.strerror or err})") from None
        with (
            out,
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
                raise fail(
                    f"the download stopped at {got} of {total or '?'} bytes ({err}); run again to resume"
                ) from None
    if total is not None and got < total:
        raise fail(f"the download stopped at {got} of {total} bytes; run again to resume")
    actual = digest.hexdigest()
    expected = sha256 or sha256_prefix
    if expected and not actual.startswith(expected.lower()):
        part.unlink()
        raise fail(
            f"checksum mismatch for {url}: its SHA-256 is {actual}, expected "
            f"{'one starting with ' if not sha256 else ''}{expected}; the download was deleted (a changed or "
            "corrupted file)"
        )
    if not expected:
        log.warning("%s: no published checksum to verify it against; its SHA-256 is %s", target.name, actual)
    os.replace(part, target)
    return target


def unpack_member(archive: Path, member: str, target: Path, sha256: str | None) -> str:
    """Take the one file of ``archive`` whose name ends in ``member``, write it to ``target`` atomically, and check
    it against ``sha256`` when given; returns its SHA-256."""
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
    except OSError as err:
        raise DownloadError(f"{archive}: cannot unpack it into {target} ({err.strerror or err})") from None
    if not sha256:
        log.warning(
            "%s: no published checksum to verify it against; its SHA-256 is %s", target.name, digest.hexdigest()
        )
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_record(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def record_checksum(path: Path, sha256: str) -> None:
    """Keep ``path``'s SHA-256 beside it, keyed by its size and modification time; a read-only cache keeps none
    (the file is then hashed at every use)."""
    stat = path.stat()
    try:
        write_json_atomic(checksum_record(path), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256})
    except (OSError, OutputError) as err:
        log.debug("%s: cannot keep its checksum beside it (%s)", path, err)


def recorded_checksum(path: Path) -> tuple[str | None, bool]:
    """The SHA-256 recorded beside ``path`` and whether the record still describes the file (same size and
    modification time); (None, False) when there is no usable record."""
    record_path = checksum_record(path)
    if not record_path.is_file():
        return None, False
    try:
        record = read_json(record_path, "checksum record")
    except DataError:
        return None, False
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        return None, False
    stat = path.stat()
    current = record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns
    return record["sha256"], current
