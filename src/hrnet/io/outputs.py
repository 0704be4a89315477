"""Outputs never replace what is not theirs: the one check that every command that writes goes through.

Before any work, an output path is refused with an ``OutputError`` (the path, what is there, what to do) when

- something other than a regular file is there (a folder, a device such as ``/dev/null``, a named pipe, a socket):
  a file is written whole by a rename onto its path, which would replace it;
- it is one of the command's inputs, by resolved path or by (device, inode), so that a link to an input is that
  input. ``--overwrite`` does not change this;
- a file is there that hrnet did not write, unless ``overwrite`` (``--overwrite``). What hrnet wrote is listed in
  its folder's manifest ``.hrnet-outputs.json`` (name → SHA-256): a file changed since is no longer hrnet's.

An ``OutputFolder`` (a folder that a run fills) is locked with ``filelock`` (``.hrnet-lock``; the system lets go
of it when the process ends, however it ends): a second run into the folder at the same time is refused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from filelock import FileLock, Timeout

from hrnet.errors import OutputError
from hrnet.io.files import (
    check_writable_dir,
    file_kind,
    remove_dead_temporaries,
    remove_stale_temporaries,
    sha256_file,
    write_json_atomic,
)

log = logging.getLogger(__name__)

MANIFEST = ".hrnet-outputs.json"
LOCK = ".hrnet-lock"
SAVE_SECONDS = 2.0  # a run killed without warning leaves at most this much of its outputs unlisted


class Inputs:
    """The files a command reads, known by resolved path and by (device, inode): a link to an input is that input."""

    def __init__(self, paths: Iterable[str | Path | None] = ()):
        self._known: dict[object, Path] = {}
        self.add(paths)

    def add(self, paths: Iterable[str | Path | None]) -> None:
        """More inputs (None and empty names are skipped)."""
        for path in (Path(p) for p in paths if p is not None and str(p)):
            self._known[path.resolve()] = path
            if (identity := _identity(path)) is not None:
                self._known[identity] = path

    def find(self, path: str | Path) -> Path | None:
        """The input that ``path`` is, or None (also when nothing is there)."""
        identity = _identity(path)
        return None if identity is None else self._known.get(Path(path).resolve()) or self._known.get(identity)


def _identity(path: str | Path) -> tuple[int, int] | None:
    with contextlib.suppress(OSError):
        st = os.stat(path)
        return st.st_dev, st.st_ino
    return None


class Manifest:
    """The files hrnet wrote in ``folder`` (names relative to it) and their SHA-256; a broken ``MANIFEST``: none."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.files = _read_manifest(self.folder / MANIFEST)

    def holds(self, path: str | Path) -> bool:
        """Whether hrnet wrote the file at ``path`` and it has not changed since."""
        digest = self.files.get(Path(path).relative_to(self.folder).as_posix())
        return digest is not None and file_kind(path) == "file" and sha256_file(path) == digest

    def add(self, path: str | Path) -> None:
        """List the file at ``path``, just written by hrnet."""
        self.files[Path(path).relative_to(self.folder).as_posix()] = sha256_file(path)

    def save(self) -> None:
        """Write the manifest atomically, merged with what other processes listed since, less files now gone."""
        merged = {**_read_manifest(self.folder / MANIFEST), **self.files}
        self.files = {name: digest for name, digest in merged.items() if (self.folder / name).is_file()}
        write_json_atomic(self.folder / MANIFEST, {"files": self.files})


def _a(kind: str) -> str:
    """``file_kind``'s answer as a message says it ("a folder", "a named pipe (FIFO)", ...)."""
    return kind if kind.startswith(("a ", "an ")) else f"a {kind}"


def _read_manifest(path: Path) -> dict[str, str]:
    kind = file_kind(path)
    if kind not in (None, "file"):  # a named pipe there would block the reader for ever
        raise OutputError(f"{path}: {_a(kind)} where hrnet keeps its list of outputs; remove it")
    try:
        files = json.loads(path.read_bytes())["files"] if kind == "file" else {}
        return {str(name): digest for name, digest in files.items() if isinstance(digest, str)}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        log.warning("%s: not an hrnet manifest: no file beside it is taken for one that hrnet wrote", path)
        return {}


def check_output_file(
    path: str | Path,
    *,
    command: str,
    inputs: Iterable[str | Path | None] = (),
    overwrite: bool = False,
    is_ours: Callable[[Path], bool] | None = None,
) -> Path:
    """``path`` as the ``--out`` file of ``command`` (e.g. "hrnet export"), checked before any work (module
    docstring); ``is_ours(path)`` may say that hrnet wrote a regular file there, besides the manifest. Its folder
    is created and must be writable. Returns ``path``."""
    path = Path(path)
    ours = is_ours is not None and file_kind(path) == "file" and is_ours(path)
    folder = OutputFolder(
        path.parent, command=command, inputs=inputs, overwrite=overwrite or ours, what="path", hold=False
    )
    folder.claim(path, "the --out file")
    check_writable_dir(path.parent, "folder of the --out file")
    return path


def record_output(path: str | Path) -> None:
    """List the file ``path``, just written, in its folder's manifest, so that hrnet may replace it later."""
    manifest = Manifest(Path(path).parent)
    manifest.add(path)
    manifest.save()


class OutputFolder:
    """A folder that one run of ``command`` fills, held (locked) from ``with`` to its end; each output is checked
    with ``claim`` before any work and listed with ``record`` once written.

    Args:
        path: the folder, created when missing.
        command: the command, as messages name it ("hrnet predict").
        inputs: the files the run reads (more with ``protect``), never replaced.
        overwrite: files that hrnet did not write may be replaced.
        what: the folder, as messages name it ("--out folder").
        hold: False only checks: no lock, nothing written (the ranks of a distributed run that do not write).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        command: str,
        inputs: Iterable[str | Path | None] = (),
        overwrite: bool = False,
        what: str = "--out folder",
        hold: bool = True,
    ):
        self.path = Path(path)
        self.command, self.overwrite, self.what, self.hold = command, overwrite, what, hold
        self.inputs = Inputs(inputs)
        self.manifest = Manifest(self.path)
        self._lock = FileLock(self.path / LOCK, timeout=0)
        self._cleaned: set[Path] = set()
        self._saved_at = time.monotonic()

    def protect(self, paths: Iterable[str | Path | None]) -> None:
        """More inputs, never to be replaced."""
        self.inputs.add(paths)

    def __enter__(self) -> OutputFolder:
        if self.hold:
            # The folders this run makes (its parents too), deepest first: a run that fails takes them away again.
            self._created = [p for p in (self.path, *self.path.absolute().parents) if not p.exists()]
            check_writable_dir(self.path, self.what)
            kind = file_kind(self.path / LOCK)
            if kind not in (None, "file"):  # a named pipe or a folder there is no lock file hrnet can take
                raise OutputError(f"{self.path / LOCK}: {_a(kind)} where hrnet keeps the folder's lock; remove it")
            try:
                self._lock.acquire()
            except Timeout:
                raise OutputError(
                    f"{self.path}: another run is writing into this folder; wait for it, or choose another {self.what}"
                ) from None
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            if self.hold and self.manifest.files:
                self.manifest.save()
        finally:
            if self.hold:
                gone = kind is not None and bool(self._created)  # folders made for a run that failed go again
                if gone:
                    (self.path / LOCK).unlink(missing_ok=True)  # while held: a run that opened it finds it gone
                self._lock.release()
                if gone:
                    with contextlib.suppress(OSError):  # not empty: something was written
                        for folder in self._created:
                            folder.rmdir()

    def claim(self, path: str | Path, what: str = "an output") -> Path:
        """Check ``path`` (inside the folder) as an output, before any work (``what`` names it in messages: "the
        drawing of a.jpg"); returns it. The temporaries that a killed run left in its folder are removed."""
        path, advice = Path(path), f"choose another {self.what}"
        kind = file_kind(path)
        if kind not in (None, "file"):
            raise OutputError(
                f"{path}: {what} is {_a(kind)}, not a regular file, and writing would replace it; {advice}"
            )
        source = self.inputs.find(path)
        if source is not None:
            raise OutputError(f"{path} is the input {source}: {what} would replace the input; {advice}")
        if kind == "file" and not self.overwrite and not self.manifest.holds(path):
            raise OutputError(
                f"{path}: {what} would replace a file that {self.command} did not write (or that changed since); "
                f"pass --overwrite to replace it, or {advice}"
            )
        if self.hold and path.parent not in self._cleaned:
            self._cleaned.add(path.parent)
            for stale in remove_stale_temporaries(path.parent):
                log.info("removed %s, left by a process killed while writing it", stale)
        for stale in remove_dead_temporaries(path):  # an unheld folder: only what a dead writer of this output left
            log.info("removed %s, left by a process killed while writing it", stale)
        return path

    def record(self, path: str | Path) -> None:
        """List the file ``path``, now written, as hrnet's (saved every ``SAVE_SECONDS`` and at the end)."""
        if self.hold:
            self.manifest.add(path)
            if time.monotonic() - self._saved_at >= SAVE_SECONDS:
                self.manifest.save()
                self._saved_at = time.monotonic()
