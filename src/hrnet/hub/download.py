"""Downloaded files that appear whole and checked, or not at all: ``download`` fetches a URL with one plain GET
into a temporary file beside the target (its name unique to the process, so two downloads of one file never share
it), checks the answer, the length and the SHA-256, then renames it; ``unpack_member`` takes the one file a zip
archive is downloaded for out of it the same way.

The downloader is our own rather than ``torch.hub.download_url_to_file``, which cannot see the HTTP status: a
server answering 206 (a part of the file, as to a resumed download) was kept as the whole file.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import IO

from hrnet.errors import DownloadError, OutputError
from hrnet.io.files import atomic_path, output_problem, sha256_file, zip_size_problem

STALL_SECONDS = 30.0  # a server silent this long (connecting, or between two reads) is given up on
_CHUNK = 1 << 20


def download(url: str, target: str | Path, *, sha256: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``target`` through a temporary file beside it, checked against ``sha256`` (a whole
    SHA-256, or its leading hex digits as MMPose's file names carry them) when one is given.

    Returns:
        ``target``, whole and checked; a failed download leaves nothing behind.

    Raises:
        DownloadError: the server is unreachable, silent for ``STALL_SECONDS``, answers anything but 200 (an error,
            or 206: a part of the file), sends fewer bytes than it announced, or a file whose SHA-256 differs (a
            changed, corrupted or cut-off file).
        OutputError: ``target`` cannot be written (a read-only folder; a full disk, with the bytes needed).
    """
    target = Path(target)
    # No Range asked, and no compression: the answer's bytes are the file's, and its length the file's length.
    request = urllib.request.Request(url, headers={"User-Agent": "hrnet", "Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(request, timeout=STALL_SECONDS) as answer:
            _check_answer(answer, url)
            length = answer.headers.get("Content-Length", "")
            size = int(length) if length.isdigit() else None
            with atomic_path(target, needed=size) as tmp, tmp.open("wb") as out:
                digest = _receive(answer, out, size, url, progress)
                if sha256 and not digest.startswith(sha256.lower()):
                    whole = len(sha256) == 64
                    raise DownloadError(
                        f"checksum mismatch for {url}: expected {'' if whole else 'one starting with '}{sha256}, "
                        f"got {digest}; the download was deleted (a changed, corrupted or cut-off file)"
                    )
    except urllib.error.HTTPError as err:
        raise DownloadError(f"the server answered HTTP {err.code} {err.reason} for {url}") from None
    except (OSError, http.client.HTTPException) as err:  # URLError is an OSError; IncompleteRead a cut-off reply
        if isinstance(err, OSError) and err.filename:  # opening the temporary file; a full disk is said above
            raise OutputError(f"{target}: cannot write the download ({output_problem(err)})") from None
        raise DownloadError(f"cannot download {url} ({getattr(err, 'reason', err)}); are you offline?") from None
    return target


def _check_answer(answer: http.client.HTTPResponse, url: str) -> None:
    """Refuse any answer but 200 (redirections are followed first): a 206 is a part of the file whatever range it
    names, and another 2xx no file at all."""
    if answer.status == 200:
        return
    if answer.status == 206:
        part = answer.headers.get("Content-Range") or "no Content-Range"
        raise DownloadError(
            f"the server answered 206 Partial Content ({part[:80]}) to a request for the whole of {url}: a part is "
            "not the file; nothing was kept: try again later, or download it yourself"
        )
    raise DownloadError(f"the server answered HTTP {answer.status} {answer.reason} for {url}, not the file")


def _receive(answer: http.client.HTTPResponse, out: IO[bytes], size: int | None, url: str, progress: bool) -> str:
    """Copy the body to ``out``, showing progress; the SHA-256 of what came. ``DownloadError`` when fewer or more
    bytes come than the announced ``size``."""
    from tqdm import tqdm  # only when a file is downloaded

    digest = hashlib.sha256()
    received = 0
    with tqdm(total=size, disable=not progress, unit="B", unit_scale=True, unit_divisor=1024) as bar:
        while chunk := answer.read(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if size is not None and received != size:
        raise DownloadError(
            f"the download of {url} was cut off: {received:,} of the {size:,} bytes announced came; nothing was "
            "kept: run it again"
        )
    return digest.hexdigest()


def unpack_member(archive: Path, member: str, target: Path, sha256: str | None) -> None:
    """Write the one file of the zip ``archive`` whose name ends in ``member`` to ``target``, whole and checked
    against ``sha256`` when one is given, then delete the archive. Names inside the archive never become paths, so
    none can reach outside ``target``.

    Raises:
        DownloadError: the archive is unusable (not a zip, damaged, a zip bomb, no single ``member``, another
            checksum; it is deleted).
        OutputError: ``target`` cannot be written.
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            if problem := zip_size_problem(zf, archive.stat().st_size):
                raise zipfile.BadZipFile(problem)
            names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
            if len(names) != 1:
                raise zipfile.BadZipFile(f"expected one {member} inside the archive, found {len(names)}")
            needed = zf.getinfo(names[0]).file_size
            with atomic_path(target, needed) as tmp, zf.open(names[0]) as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst)  # zipfile checks each member's CRC-32: a cut-off archive fails here
                dst.close()
                if sha256 and (actual := sha256_file(tmp)) != sha256:
                    raise zipfile.BadZipFile(
                        f"checksum mismatch for {names[0]}: its SHA-256 is {actual}, expected {sha256}"
                    )
    except zipfile.BadZipFile as err:
        with contextlib.suppress(OSError):
            archive.unlink()
        raise DownloadError(f"{archive}: not a usable archive ({err}); it was deleted: download it again") from None
    except OSError as err:
        raise OutputError(f"{archive}: cannot unpack it into {target} ({output_problem(err)})") from None
    archive.unlink()
