"""Files that appear whole or not at all (write to a temporary name in the same folder, then rename), and JSON
files read with one clear error for every way they can be broken.

A reader (or a resumed run after a kill) never sees a half-written checkpoint, results file or picture.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hrnet.errors import DataError, OutputError

# The temporary names ``atomic_path`` gives: ``.<stem>.<8 hex digits>.tmp<suffix>``.
_TEMPORARY = re.compile(r"^\..*\.[0-9a-f]{8}\.tmp(\.[^.]+)?$")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends without error,
    deleted otherwise. The temporary name keeps the suffix (writers such as OpenCV's pick the format by it). A
    device or other special file at ``path`` is refused (``OutputError``) before anything is written."""
    path = Path(path)
    _refuse_special(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}"
    try:
        # The mode any new file gets here (0o666 less the umask, which os.umask could only read by changing it
        # for the whole process): some writers (safetensors) create private 0o600 files; the result gets this.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        mode = os.stat(tmp).st_mode & 0o777
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def file_kind(path: str | os.PathLike[str]) -> str | None:
    """What is at ``path`` (symbolic links followed): None for nothing, else "file", "folder", "character device",
    "block device", "named pipe (FIFO)", "socket" or "special file"."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # nothing there, or not reachable: writing there fails with its own error
        return None
    kinds = {
        "file": stat.S_ISREG,
        "folder": stat.S_ISDIR,
        "character device": stat.S_ISCHR,
        "block device": stat.S_ISBLK,
        "named pipe (FIFO)": stat.S_ISFIFO,
        "socket": stat.S_ISSOCK,
    }
    return next((name for name, test in kinds.items() if test(mode)), "special file")


def _refuse_special(path: Path) -> None:
    """An ``OutputError`` when a device node (``/dev/null``), a named pipe or a socket is at ``path``: the rename
    would replace it with a file. (A folder there makes the rename fail with its own ``OSError``.)"""
    kind = file_kind(path)
    if kind not in (None, "file", "folder"):
        raise OutputError(f"{path}: a {kind}, not a regular file; writing would replace it: choose another path")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that ``atomic_path`` left in ``folder`` when its process was killed mid-write
    (``.last.1a2b3c4d.tmp.safetensors``); returns them. Call it only where no other process is writing."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if _TEMPORARY.match(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def output_problem(err: OSError) -> str:
    """A short reason for an ``OSError`` met while writing, with what to do."""
    if err.errno == errno.ENOSPC:
        return "no space left on the device: free some space"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{err.strerror or 'not writable'}: the folder is read-only to this user; choose a writable one"
    if err.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a file is in the way where a folder is needed: choose another path"
    return err.strerror or str(err)


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create the folder ``path`` (and its parents) if needed and make sure a file can be written in it, before
    any work is done; an ``OutputError`` naming the folder otherwise (read-only, a file in the way)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: the {what} is an existing file, not a folder; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test.{secrets.token_hex(4)}.tmp"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as err:
        raise OutputError(f"{path}: cannot write the {what} ({output_problem(err)})") from None
    return path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` and rename the temporary file onto ``path`` (``os.replace`` is atomic)."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    atomic_write(path, write)


def json_text(obj: Any, where: str | Path, indent: int | None = None) -> str:
    """``obj`` as JSON text; NaN and infinity (not JSON) are refused with a ``DataError`` naming ``where``."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError as err:
        raise DataError(
            f"{where}: not written: the data holds NaN or infinity, which JSON cannot carry ({err})"
        ) from None


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    """Write ``obj`` as JSON, atomically (see ``json_text`` for what is refused)."""
    write_text_atomic(path, json_text(obj, path, indent) + "\n")


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed JSON of ``path``; a ``DataError`` naming the file and ``what`` it should be (e.g. "annotation
    file") when it cannot be read or is not valid UTF-8 JSON."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path}: not valid JSON at line {err.lineno}, column {err.colno} ({err.msg}); the {what} may be "
            "truncated: write or download it again"
        ) from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: the {what} is not UTF-8 JSON ({err.reason})") from None
    except RecursionError:
        # Python's parser recurses once per level of nesting; no annotation format nests more than a few.
        raise DataError(
            f"{path}: the {what} is nested too deeply (over {sys.getrecursionlimit()} levels) to be one; check "
            "that it is the right file"
        ) from None
