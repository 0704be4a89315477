"""Input discovery: which paths are files to read, which folder entries are inputs, and what number a name is.

Only regular files are read (a symbolic link to one is one). A FIFO would block its reader until someone writes
to it, a device may never end, and a socket, a folder, a dangling link or a link loop has nothing to read: they
are named and skipped, never opened. Numbers in names (webcam indices, COCO image ids from file names) are ASCII
decimal digits only: ``"²".isdigit()`` is true, but ``int("²")`` fails.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from hrnet.errors import DataError
from hrnet.io.files import file_kind

_DECIMAL = re.compile(r"[0-9]{1,18}")  # 18 digits: every such number fits a signed 64-bit integer


def decimal_id(text: str) -> int | None:
    """The number that ``text`` spells in ASCII decimal digits (``"000000000785"`` → 785), or None for anything
    else: other scripts' digits (``"²"``, ``"٣"``), signs, spaces, or more than 18 digits."""
    return int(text) if _DECIMAL.fullmatch(text) else None


def check_not_special(path: str | Path, what: str = "input") -> None:
    """Refuse ``path`` when something is there that is neither a regular file nor a folder (``file_kind``), before
    anything opens it; a missing path passes (its reader reports it).

    Raises:
        DataError: naming the path and what it is.
    """
    kind = file_kind(path)
    if kind not in ("file", "folder", None):
        raise DataError(f"{path}: the {what} is {kind}, not a regular file: only regular files are read")


@dataclass(frozen=True)
class Skipped:
    """A folder entry that looked like an input by its name but is not a regular file."""

    path: Path
    kind: str  # what it is (``hrnet.io.files.file_kind``): "folder", "a named pipe (FIFO)", ...


def list_inputs(folder: str | Path, suffixes: Collection[str]) -> tuple[list[Path], list[Skipped]]:
    """The regular files of ``folder`` whose suffix (lower case) is one of ``suffixes``, sorted, not recursive;
    and the entries with such a suffix that are something else (a sub-folder named ``x.jpg``, a FIFO, a socket, a
    device, a dangling link, a link loop), sorted, never opened.

    Raises:
        DataError: the folder cannot be listed.
    """
    folder = Path(folder)
    try:
        names = sorted(os.listdir(folder))
    except OSError as err:
        raise DataError(f"{folder}: cannot list the folder ({err.strerror or err})") from None
    files, skipped = [], []
    for name in names:
        path = folder / name
        if path.suffix.lower() not in suffixes:
            continue
        kind = file_kind(path)
        if kind == "file":
            files.append(path)
        elif kind is not None:  # None: removed since it was listed
            skipped.append(Skipped(path, kind))
    return files, skipped
