"""Files on disk: what is at a path (``file_kind``, in the words every message uses), files that appear whole or
not at all (written to a temporary name in the same folder, then renamed), a folder checked writable before the
work, a file's SHA-256, and JSON files read with one clear error for every way they can be broken.

A reader (or a resumed run after a kill) never sees a half-written checkpoint, results file or picture.
"""

from __future__ import annotations

import errno
import functools
import glob
import hashlib
import json
import os
import re
import secrets
import stat
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hrnet.errors import ConfigError, DataError, OutputError

# Marks the temporary names that ``atomic_path`` gives (``.last.1a2b3c4d.hrnet.tmp.safetensors``), so that the
# ones a killed process left can be told from anything a user keeps.
TEMPORARY_MARK = ".hrnet.tmp"


@contextmanager
def atomic_path(path: str | Path, needed: int | None = None) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends without error,
    deleted otherwise. The temporary name keeps the suffix (writers such as OpenCV's pick the format by it). A
    device or other special file at ``path`` is refused (``OutputError``) before anything is written: the rename
    would replace it with a file. A full disk while writing is one ``OutputError`` naming ``path`` and the bytes
    it ``needed`` (when the writer knows them)."""
    path = Path(path)
    kind = file_kind(path)
    if kind not in (None, "file", "folder"):  # a folder makes the rename fail with its own OSError
        raise OutputError(f"{path}: {kind}, not a regular file; writing would replace it: choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer's process id in the name tells a later run whether the writer is gone (``remove_dead_temporaries``).
    tmp = path.parent / f".{_temporary_stem(path)}.{os.getpid()}-{secrets.token_hex(4)}{TEMPORARY_MARK}{path.suffix}"
    try:
        # The mode any new file gets here (0o666 less the umask, which os.umask could only read by changing it
        # for the whole process): some writers (safetensors) create private 0o600 files; the result gets this.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        mode = os.stat(tmp).st_mode & 0o777
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_full_disk(err):
            raise no_space_error(path, needed) from None
        raise


# How writers in Rust (safetensors) quote the system's error: "... (os error 28)".
_RUST_OS_ERROR = re.compile(r"\(os error ([0-9]+)\)")
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_full_disk(err: BaseException) -> bool:
    """Whether ``err`` says the device, or the user's disk quota, is full: an ``OSError``, or a writer's own error
    quoting the system's (safetensors' ``SafetensorError``)."""
    if isinstance(err, OSError):
        return err.errno in FULL_DISK_ERRNOS
    found = _RUST_OS_ERROR.search(str(err))
    return found is not None and int(found[1]) in FULL_DISK_ERRNOS


def no_space_error(path: str | Path, needed: int | None = None) -> OutputError:
    """The one line for a full disk while writing ``path``: what it ``needed`` where known, and that nothing partial
    is left (every writer writes to a temporary file renamed when whole)."""
    need = f"; it needs about {size_text(needed)}" if needed else ""
    return OutputError(
        f"{path}: cannot write it (no space left on the device{need}); nothing partial was kept and nothing was "
        "replaced: free some space, or choose a folder on another disk, and run it again"
    )


def size_text(size: int) -> str:
    """A byte count as a person reads it: "512 bytes", "3.4 MB", "1.2 GB" (decimal units, as disks are sold)."""
    scale, unit = next(((s, u) for s, u in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")) if size >= s), (1, "bytes"))
    return f"{size} bytes" if scale == 1 else f"{size / scale:,.1f} {unit}"


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that ``atomic_path`` left in ``folder`` when its process was killed mid-write
    (their names carry ``TEMPORARY_MARK``); returns them. Call it only where no other process is writing."""
    folder = Path(folder)
    stale = [p for p in folder.glob(f".*{TEMPORARY_MARK}*") if p.is_file()] if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _temporary_stem(path: Path) -> str:
    """``path``'s stem, shortened so that its temporary's name stays within the 255 bytes a file name may have."""
    room = 255 - len(f"..{2**22}-00000000{TEMPORARY_MARK}{path.suffix}".encode())
    stem = path.stem.encode()[: max(room, 1)]
    return stem.decode(errors="ignore")


def remove_dead_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporary files of the output ``path`` (``atomic_path``'s) whose writing process no longer runs on
    this machine, e.g. an export killed mid-write; returns them. Safe beside a live writer of the same output."""
    path = Path(path)
    gone = []
    stem = _temporary_stem(path)
    for tmp in path.parent.glob(f".{glob.escape(stem)}.*-*{TEMPORARY_MARK}{glob.escape(path.suffix)}"):
        pid = tmp.name[len(stem) + 2 :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)) and tmp.is_file():
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def _running(pid: int) -> bool:
    if pid <= 0:  # 0 and below name process groups, never a writer
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's process
        return True
    except (ProcessLookupError, OverflowError):
        return False
    return True


def file_kind(path: str | os.PathLike[str]) -> str | None:
    """What is at ``path``, symbolic links followed: None for nothing, "file" (a regular file), "folder", or what
    else is there, as a message says it: "a named pipe (FIFO)", "a socket", "a device", "a special file", "a
    dangling symbolic link", "a symbolic link loop" or "an entry that cannot be examined (...)"."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a dangling symbolic link" if os.path.islink(path) else None
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link loop"
        if err.errno == errno.ENOTDIR:  # a file stands where a folder of the path should: nothing can be there
            return None
        return f"an entry that cannot be examined ({err.strerror or err})"
    kinds = {stat.S_ISREG: "file", stat.S_ISDIR: "folder", stat.S_ISFIFO: "a named pipe (FIFO)",
             stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}  # fmt: skip
    return next((kind for test, kind in kinds.items() if test(mode)), "a special file")


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of the file at ``path``, in hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def output_problem(err: OSError) -> str:
    """A short reason for an ``OSError`` met while writing, with what to do."""
    if err.errno in FULL_DISK_ERRNOS:
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
        probe = path / f".write-test.{secrets.token_hex(4)}{TEMPORARY_MARK}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as err:
        raise OutputError(f"{path}: cannot write the {what} ({output_problem(err)})") from None
    return path


def atomic_write(path: str | Path, write: Callable[[Path], None], needed: int | None = None) -> None:
    """Call ``write(tmp_path)`` and rename the temporary file onto ``path`` (``os.replace`` is atomic); ``needed``:
    the bytes it will write, said when the disk is full (``atomic_path``)."""
    with atomic_path(path, needed) as tmp:
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


# Far above any annotation file (COCO-WholeBody's training file is about 1.5 GB): a bigger one is the wrong file.
MAX_JSON_BYTES = 4 << 30


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed JSON of ``path``; a ``DataError`` naming the file and ``what`` it should be (e.g. "annotation
    file") when it cannot be read or is not valid UTF-8 JSON."""
    path = Path(path)
    text = read_bytes_capped(path, MAX_JSON_BYTES, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path}: not valid JSON at line {err.lineno}, column {err.colno} ({err.msg}); the {what} may be "
            "truncated: write or download it again"
        ) from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: the {what} is not UTF-8 JSON ({err.reason})") from None
    except ValueError as err:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise DataError(f"{path}: the {what} holds a number hrnet does not read: {str(err).split(';')[0]}") from None
    except RecursionError:
        # Python's parser recurses once per level of nesting; no annotation format nests more than a few.
        raise DataError(
            f"{path}: the {what} is nested too deeply (over {sys.getrecursionlimit()} levels) to be one; check "
            "that it is the right file"
        ) from None


@functools.cache
def _unique_key_loader() -> Any:
    """PyYAML's safe loader refusing a key given twice (PyYAML is imported on first use: a slow import)."""
    import yaml

    class _UniqueKeyLoader(yaml.SafeLoader):
        """PyYAML's safe loader (plain data; no tag builds an object) that refuses a key given twice in one mapping,
        which YAML forbids and PyYAML would settle silently by keeping the last."""

        def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
            node = super().compose_mapping_node(anchor)
            lines: dict[tuple[str, str], int] = {}
            for key, _ in node.value:
                # A merge key (<<) is no key of the mapping: the mapping's own keys override what it merges in.
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in lines:
                        twice = f"lines {lines[key.tag, key.value]} and {line}"
                        problem = f"the key {key.value[:80]!r} is given twice in one mapping ({twice}): keep one"
                        raise yaml.composer.ComposerError(None, None, problem, key.start_mark)
                    lines[key.tag, key.value] = line
            return node

    return _UniqueKeyLoader


def parse_yaml(text: str, where: str, *, aliases: bool = True, error: type[Exception] = ConfigError) -> Any:
    """Plain data from YAML ``text``; a fault is one ``error`` naming ``where`` and the line and column.

    ``aliases=False`` refuses YAML aliases (``*name``), for text from a file anyone may have written (each alias
    could multiply the values a reader then checks)."""
    import yaml

    try:
        data = yaml.load(text, Loader=_unique_key_loader())
        if not aliases and any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise error(f"{where}: the YAML uses aliases (*name), which hrnet never writes")
        return data
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or " ".join(str(err).split())  # without PyYAML's quoted excerpt
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise error(f"{where}: not valid YAML: {at}{problem}") from None
    except ValueError as err:  # an integer past Python's 4,300 digits, a date that is none
        raise error(f"{where}: not valid YAML: {err}") from None
    except RecursionError:
        raise error(f"{where}: not valid YAML: it is nested too deeply") from None


def read_bytes_capped(path: str | Path, limit: int, what: str, error: type[Exception] = DataError) -> bytes:
    """The bytes of ``path``, read no further than ``limit`` (the path may be /dev/zero or a huge sparse file); one
    ``error`` naming the file and ``what`` it should be when it cannot be read or is longer."""
    path = Path(path)
    if file_kind(path) in ("folder", "a named pipe (FIFO)", "a socket"):  # opening a FIFO waits for a writer
        kind = "a folder" if file_kind(path) == "folder" else file_kind(path)
        raise error(f"{path}: {kind} where the {what} should be")
    try:
        with path.open("rb") as f:
            # A regular file says its size (a sparse one reads as gigabytes of zeros); a device reads up to the cap.
            size = os.fstat(f.fileno()).st_size if stat.S_ISREG(os.fstat(f.fileno()).st_mode) else 0
            data = b"" if size > limit else f.read(limit + 1)
    except OSError as err:
        raise error(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    if size > limit or len(data) > limit:
        raise error(f"{path}: over {limit:,} bytes, far more than a {what} holds: is it the right file?")
    return data


def read_text_capped(path: str | Path, limit: int, what: str, error: type[Exception] = DataError) -> str:
    """The UTF-8 text of ``path`` (``read_bytes_capped``); not UTF-8 is one ``error`` too."""
    data = read_bytes_capped(path, limit, what, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(
            f"{path}: the {what} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at position {err.start})"
        ) from None


# Far above any checkpoint or archive hrnet reads (HRNet-W48's is about 250 MB, with its optimizer's state under
# 1 GB); weights barely compress, so a much higher ratio is a zip bomb, not a checkpoint.
MAX_UNPACKED_BYTES = 4 << 30
MAX_ZIP_RATIO = 20


def zip_size_problem(archive: zipfile.ZipFile, stored: int) -> str | None:
    """What is wrong with the sizes of a zip ``archive`` of ``stored`` bytes, before anything is inflated: its
    members declare more than ``MAX_UNPACKED_BYTES`` together, or more than ``MAX_ZIP_RATIO`` times ``stored`` (plus
    1 MiB for small, well compressed members): a zip bomb. None when neither. Readers stop at a member's declared
    size (Python's ``zipfile``; PyTorch's reader allocates it and inflates no further), so the declared sizes bound
    what reading the archive takes."""
    declared = sum(info.file_size for info in archive.infolist())
    if declared <= min(MAX_UNPACKED_BYTES, MAX_ZIP_RATIO * stored + (1 << 20)):
        return None
    return (
        f"a zip archive of {size_text(stored)} whose members unpack to {size_text(declared)}, far more than weights "
        "take (a zip bomb, or the wrong file)"
    )
