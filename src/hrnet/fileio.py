"""Files that appear whole or not at all (write to a temporary name in the same folder, then rename), and JSON
files read with one clear error for every way they can be broken.

A reader (or a resumed run after a kill) never sees a half-written checkpoint, results file or picture.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hrnet.errors import DataError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends without error,
    deleted otherwise. The temporary name keeps the suffix (writers such as OpenCV's pick the format by it)."""
    path = Path(path)
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
