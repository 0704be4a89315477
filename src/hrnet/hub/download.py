"""Downloaded files that appear whole and checked, or not at all: ``download`` is ``torch.hub``'s downloader (a
temporary file beside the target, its SHA-256 checked, then a rename) with one-line errors; ``unpack_member`` takes
the one file a zip archive is downloaded for out of it the same way.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import shutil
import socket
import urllib.error
import zipfile
from pathlib import Path

from hrnet.errors import DownloadError
from hrnet.io.files import atomic_path, output_problem, sha256_file

STALL_SECONDS = 30.0  # a server silent this long is given up on: torch.hub sets no timeout of its own


def download(url: str, target: str | Path, *, sha256: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``target`` through a temporary file beside it, checked against ``sha256`` (a whole
    SHA-256, or its leading hex digits as MMPose's file names carry them) when one is given.

    Returns:
        ``target``, whole and checked; a failed download leaves nothing behind.

    Raises:
        DownloadError: the server is unreachable or answers an error, the file cannot be written, or its SHA-256
            differs (a changed, corrupted or cut-off file).
    """
    from torch.hub import download_url_to_file  # PyTorch is loaded only when a file is downloaded

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(STALL_SECONDS)
    try:
        download_url_to_file(url, str(target), hash_prefix=sha256, progress=progress)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"the server answered HTTP {err.code} {err.reason} for {url}") from None
    except RuntimeError as err:  # torch.hub's only one: 'invalid hash value (expected "...", got "...")'
        raise DownloadError(
            f"checksum mismatch for {url}: expected {'' if len(sha256 or '') == 64 else 'one starting with '}"
            f"{sha256} (torch.hub: {err}); the download was deleted (a changed, corrupted or cut-off file)"
        ) from None
    except (OSError, http.client.HTTPException) as err:  # URLError is an OSError; IncompleteRead a cut-off reply
        if isinstance(err, OSError) and (err.filename or err.errno in (errno.ENOSPC, errno.EDQUOT)):
            raise DownloadError(f"{target}: cannot write the download ({output_problem(err)})") from None
        raise DownloadError(f"cannot download {url} ({getattr(err, 'reason', err)}); are you offline?") from None
    finally:
        socket.setdefaulttimeout(previous)
    return Path(target)


def unpack_member(archive: Path, member: str, target: Path, sha256: str | None) -> None:
    """Write the one file of the zip ``archive`` whose name ends in ``member`` to ``target``, whole and checked
    against ``sha256`` when one is given, then delete the archive. Names inside the archive never become paths, so
    none can reach outside ``target``.

    Raises:
        DownloadError: the archive is unusable (not a zip, damaged, no single ``member``, another checksum; it is
            deleted), or ``target`` cannot be written.
    """
    try:
        with zipfile.ZipFile(archive) as zf, atomic_path(target) as tmp:
            names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
            if len(names) != 1:
                raise zipfile.BadZipFile(f"expected one {member} inside the archive, found {len(names)}")
            with zf.open(names[0]) as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst)  # zipfile checks each member's CRC-32: a cut-off archive fails here
            if sha256 and (actual := sha256_file(tmp)) != sha256:
                raise zipfile.BadZipFile(
                    f"checksum mismatch for {names[0]}: its SHA-256 is {actual}, expected {sha256}"
                )
    except zipfile.BadZipFile as err:
        with contextlib.suppress(OSError):
            archive.unlink()
        raise DownloadError(f"{archive}: not a usable archive ({err}); it was deleted: download it again") from None
    except OSError as err:
        raise DownloadError(f"{archive}: cannot unpack it into {target} ({output_problem(err)})") from None
    archive.unlink()
