"""Outputs that never replace what is not theirs: the one check that every command that writes goes through.

Before any work is done, an output path is refused with an ``OutputError`` (one line: the path, what is there,
what to do) when

- something other than a regular file is there: a folder, a device (``/dev/null``), a named pipe, a socket. A
  file is written to a temporary name and renamed onto its path, and a rename onto ``/dev/null`` replaces the
  device node with a file;
- it is one of the command's inputs, compared by path (``resolve()``) and by (device, inode), so a symbolic or a
  hard link to an input is that input. ``--overwrite`` does not change this;
- a file is there that is not a previous output of the same command, unless ``overwrite`` (``--overwrite``).

"A previous output of the same command" is what the project recorded when it wrote the file, never a guess from
its name: the caller's own test of the file (``hrnet export`` reads the ONNX file's metadata) or the folder's
manifest, ``.hrnet-outputs.json``, which lists the files hrnet wrote there with the command, size and SHA-256.
A file changed since no longer counts. A name that a run claimed before it was killed, and whose file is there,
counts: the run was writing it. The manifest is written atomically and merged with what is on disk, so commands
that write single files into one folder keep each other's entries.

``check_output_file`` checks one file (export, draw, data show; ``record_output`` enters it into its folder's
manifest once written). ``OutputFolder`` holds a folder that a run fills (predict, eval, data synth, convert):

- a lock, ``.hrnet-lock``, created with ``O_EXCL`` and holding the pid, host and command line: a second run into
  the folder is refused, naming the holder's pid. A lock whose process is gone (the run was killed) is taken over
  with a warning; one held by another host cannot be checked and counts as held;
- the temporary files that ``hrnet.io.files.atomic_path`` leaves when its process is killed (SIGTERM, SIGKILL) are
  removed when the folder is taken, and in each subfolder when an output is first claimed there;
- ``claim(path)`` checks an output as above (before any work) and enters its name; ``record(path)`` enters the
  written file's size and SHA-256 (saved at most every ``FLUSH_SECONDS`` and when the folder is let go).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from hrnet.errors import OutputError
from hrnet.io.files import check_writable_dir, file_kind, remove_stale_temporaries, write_json_atomic

log = logging.getLogger(__name__)

MANIFEST = ".hrnet-outputs.json"
LOCK = ".hrnet-lock"
FLUSH_SECONDS = 2.0  # a run killed without warning loses at most this much of its record (see ``claim``)
# A lock file still empty after this long was left by a process that died between creating and writing it.
_EMPTY_LOCK_SECONDS = 10.0

PathLike = str | os.PathLike[str]


class Inputs:
    """The files a command reads, to find whether an output path is one of them: the same path after
    ``resolve()``, or the same (device, inode), which catches hard links. Identities are read once, when first
    needed (an output path that does not exist yet is no input)."""

    def __init__(self, paths: Iterable[PathLike | None] = ()):
        self._paths: list[Path] = []
        self._by_path: dict[Path, Path] | None = None
        self._by_identity: dict[tuple[int, int], Path] | None = None
        self.add(paths)

    def add(self, paths: Iterable[PathLike | None]) -> None:
        """More inputs (None and empty names are skipped)."""
        new = [Path(p) for p in paths if p is not None and str(p)]
        if new:
            self._paths += new
            self._by_path = self._by_identity = None

    def find(self, path: PathLike) -> Path | None:
        """The input that ``path`` is, or None."""
        path = Path(path)
        if file_kind(path) is None:
            return None
        if self._by_path is None or self._by_identity is None:
            self._by_path = {p.resolve(): p for p in self._paths}
            self._by_identity = {i: p for p in self._paths if (i := _identity(p)) is not None}
        found = self._by_path.get(path.resolve())
        identity = _identity(path)
        return found or (self._by_identity.get(identity) if identity is not None else None)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _check(
    path: Path,
    *,
    inputs: Inputs,
    command: str,
    overwrite: bool,
    ours: Callable[[Path], bool],
    what: str,
    advice: str,
) -> None:
    """The three refusals of the module docstring, for one output ``path`` (``what``: "the --out file")."""
    kind = file_kind(path)
    if kind is None:
        return
    if kind == "folder":
        raise OutputError(f"{path}: {what} is an existing folder, not a file; {advice}")
    if kind != "file":
        raise OutputError(f"{path}: {what} is a {kind}, not a regular file, and writing would replace it; {advice}")
    source = inputs.find(path)
    if source is not None:
        raise OutputError(f"{path} is the input {source}: {what} would replace the input; {advice}")
    if not overwrite and not ours(path):
        raise OutputError(
            f"{path}: {what} would replace a file that {command} did not write (or that changed since); pass "
            f"--overwrite to replace it, or {advice}"
        )


# ------------------------------------------------------------------------------------------------------ manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Manifest:
    """The files hrnet wrote in ``folder`` (``MANIFEST``): name (relative, with ``/``) → command, and once written
    size, modification time and SHA-256. An entry without them is a claim: the file was being written."""

    def __init__(self, folder: PathLike, entries: dict[str, dict[str, Any]] | None = None):
        self.folder = Path(folder)
        self.entries: dict[str, dict[str, Any]] = entries or {}
        self._changed: dict[str, dict[str, Any]] = {}

    @classmethod
    def load(cls, folder: PathLike) -> Manifest:
        """The folder's manifest (empty when there is none; a broken one counts as empty, with a warning: then
        nothing in the folder is taken for hrnet's)."""
        return cls(folder, _read_entries(Path(folder) / MANIFEST))

    def name(self, path: PathLike) -> str:
        """``path`` (inside the folder) as a manifest name."""
        return Path(path).relative_to(self.folder).as_posix()

    def holds(self, path: PathLike, command: str) -> bool:
        """Whether ``command`` wrote the file at ``path`` (a claimed name counts when its file is there) and it
        has not changed since."""
        entry = self.entries.get(self.name(path))
        if entry is None or entry.get("command") != command or file_kind(path) != "file":
            return False
        if "sha256" not in entry:
            return True
        st = os.stat(path)
        if st.st_size != entry.get("size"):
            return False
        return st.st_mtime_ns == entry.get("mtime_ns") or _sha256(Path(path)) == entry["sha256"]

    def claim(self, path: PathLike, command: str) -> None:
        """Enter ``path`` as being written by ``command``."""
        self._set(self.name(path), {"command": command})

    def add(self, path: PathLike, command: str) -> None:
        """Enter the file at ``path`` as written by ``command``, with its size, time and SHA-256."""
        st = os.stat(path)
        entry = {"command": command, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(Path(path))}
        self._set(self.name(path), entry)

    def _set(self, name: str, entry: dict[str, Any]) -> None:
        self.entries[name] = self._changed[name] = entry

    def save(self, prune: bool = False) -> None:
        """Write this process's entries into the manifest on disk (merged with the entries other processes wrote
        there since it was read), atomically. ``prune`` drops the entries whose file is gone, and the manifest
        itself when none is left."""
        path = self.folder / MANIFEST
        merged = {**_read_entries(path), **self._changed}
        if prune:
            merged = {name: e for name, e in merged.items() if file_kind(self.folder / name) == "file"}
        self.entries = merged
        if not merged:
            path.unlink(missing_ok=True)
            return
        write_json_atomic(path, {"written_by": "hrnet: the files it wrote here, replaced only by it", "files": merged})


def _read_entries(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable (%s): hrnet takes none of the files beside it for its own", path, err)
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        log.warning("%s: not an hrnet manifest: hrnet takes none of the files beside it for its own", path)
        return {}
    return {str(k): v for k, v in files.items() if isinstance(v, dict)}


# ------------------------------------------------------------------------------------------------ single files


def check_output_file(
    path: PathLike,
    *,
    command: str,
    inputs: Iterable[PathLike | None] = (),
    overwrite: bool = False,
    is_ours: Callable[[Path], bool] | None = None,
    what: str = "--out file",
    advice: str = "choose another path",
) -> Path:
    """``path`` as an output file of ``command`` (e.g. "hrnet export"), checked before any work: refused when it
    is a folder, a device or another special file, one of ``inputs``, or an existing file that ``command`` did not
    write (``is_ours(path)``, else the folder's manifest, says whether it did), unless ``overwrite``; its folder
    is created and must be writable. ``what`` names the output in messages ("--out file"), ``advice`` says what
    to do."""
    path = Path(path)
    manifest = Manifest.load(path.parent)

    def ours(p: Path) -> bool:
        return (is_ours is not None and is_ours(p)) or manifest.holds(p, command)

    _check(
        path, inputs=Inputs(inputs), command=command, overwrite=overwrite, ours=ours, what=f"the {what}", advice=advice
    )
    check_writable_dir(path.parent, f"folder of the {what}")
    return path


def record_output(path: PathLike, command: str) -> None:
    """Enter the file ``path``, just written by ``command``, into its folder's manifest, so that a later run of
    ``command`` may replace it."""
    manifest = Manifest(Path(path).parent)
    manifest.add(path, command)
    manifest.save()


# ------------------------------------------------------------------------------------------------------ folders


class OutputFolder:
    """A folder that one run of ``command`` fills, held from ``with`` to its end (see the module docstring).

    ``inputs``: files the run reads (more with ``protect``); ``overwrite``: existing files that the command did not
    write may be replaced; ``what`` names the folder in messages ("--out folder"); ``hold`` False only checks
    (no lock, nothing written: the ranks of a distributed run other than the one that writes).
    """

    def __init__(
        self,
        path: PathLike,
        *,
        command: str,
        inputs: Iterable[PathLike | None] = (),
        overwrite: bool = False,
        what: str = "--out folder",
        hold: bool = True,
    ):
        self.path = Path(path)
        self.command = command
        self.overwrite = overwrite
        self.what = what
        self.hold = hold
        self.inputs = Inputs(inputs)
        self.manifest = Manifest(self.path)
        self._lock_token: str | None = None
        self._created = False
        self._cleaned: set[Path] = set()
        self._flushed = -float("inf")

    @property
    def advice(self) -> str:
        return f"choose another {self.what}"

    def protect(self, paths: Iterable[PathLike | None]) -> None:
        """More inputs, never to be replaced."""
        self.inputs.add(paths)

    def __enter__(self) -> OutputFolder:
        if self.hold:
            self._created = not self.path.exists()
            check_writable_dir(self.path, self.what)
            self._lock()
        try:
            self.manifest = Manifest.load(self.path)
            if self.hold:
                self._clean(self.path)
        except BaseException:
            self._let_go(failed=True)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if self.hold:
                self.manifest.save(prune=True)
        finally:
            self._let_go(failed=error is not None)

    def _let_go(self, failed: bool) -> None:
        """Unlock; a folder made for a run that failed before writing anything is removed again."""
        self._unlock()
        if failed and self._created:
            with contextlib.suppress(OSError):  # not empty: something was written
                self.path.rmdir()

    def holds(self, path: PathLike) -> bool:
        """Whether the file at ``path`` is a previous output of this command."""
        return self.manifest.holds(path, self.command)

    def claim(self, path: PathLike, what: str = "an output") -> Path:
        """Check ``path`` (inside the folder) as an output (``what`` names it in messages: "the drawing of
        a.jpg") and enter it as being written; returns it. Call it for every output before any work."""
        path = Path(path)
        self.manifest.name(path)  # inside the folder, or ValueError: a mistake of the caller's
        _check(
            path,
            inputs=self.inputs,
            command=self.command,
            overwrite=self.overwrite,
            ours=self.holds,
            what=what,
            advice=self.advice,
        )
        if self.hold:
            self._clean(path.parent)
            self.manifest.claim(path, self.command)
        return path

    def record(self, path: PathLike) -> None:
        """Enter the file ``path``, now written, as this command's."""
        if not self.hold:
            return
        self.manifest.add(path, self.command)
        now = time.monotonic()
        if now - self._flushed >= FLUSH_SECONDS:
            self.manifest.save()
            self._flushed = now

    def _clean(self, folder: Path) -> None:
        if folder in self._cleaned:
            return
        self._cleaned.add(folder)
        for path in remove_stale_temporaries(folder):
            log.info("removed %s, left by a process killed while writing it", path)

    # ---------------------------------------------------------------------------------------------------- lock

    def _lock(self) -> None:
        lock = self.path / LOCK
        token = secrets.token_hex(8)
        text = json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200],
                "token": token,
            }
        )
        for _ in range(5):
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _read_lock(lock)
                if not self._is_stale(lock, holder):
                    pid = holder.get("pid", "?") if holder else "?"
                    running = f" ({holder['command']})" if holder and holder.get("command") else ""
                    raise OutputError(
                        f"{self.path}: another run, pid {pid}{running}, is writing into this folder; wait for it to "
                        f"end or {self.advice} (if no such run is going on, delete {lock})"
                    ) from None
                self._take_over(lock, holder)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            self._lock_token = token
            return
        raise OutputError(f"{self.path}: other runs keep taking this folder's lock {lock}; {self.advice}")

    def _is_stale(self, lock: Path, holder: dict[str, Any] | None) -> bool:
        """Whether the process that holds ``lock`` is gone (a lock that cannot be read is being written, unless
        it has been empty for a while)."""
        if holder is None:
            try:
                return time.time() - os.stat(lock).st_mtime > _EMPTY_LOCK_SECONDS
            except FileNotFoundError:
                return True
        pid = holder.get("pid")
        if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    def _take_over(self, lock: Path, holder: dict[str, Any] | None) -> None:
        """Move the stale ``lock`` out of the way. Renamed rather than deleted: when another run has replaced it
        in the meantime, the live lock is what was moved, and it is given back."""
        moved = lock.with_name(f"{LOCK}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            os.rename(lock, moved)
        except FileNotFoundError:
            return
        if _read_lock(moved) != holder:
            with contextlib.suppress(FileExistsError):
                os.link(moved, lock)
            moved.unlink(missing_ok=True)
            return
        moved.unlink(missing_ok=True)
        pid = holder.get("pid", "?") if holder else "?"
        log.warning(
            "%s: took over the lock of pid %s, which is no longer running (killed?); its unfinished files are "
            "removed",
            self.path, pid,
        )  # fmt: skip

    def _unlock(self) -> None:
        if self._lock_token is None:
            return
        lock = self.path / LOCK
        holder = _read_lock(lock)
        if holder is not None and holder.get("token") == self._lock_token:
            lock.unlink(missing_ok=True)
        self._lock_token = None


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
