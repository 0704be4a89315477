"""The process the networks run in: the device (``resolve_device``), memory (``keep_freed_memory``) and the threads
of PyTorch, OpenCV, ONNX Runtime and the video encoder (``limit_openmp_spinning``, ``one_opencv_thread``,
``cpu_threads``, ``encoder_threads``), and its end (``exit_now``). The measurements behind each setting are in
docs/speed.md.

The process-wide settings are the caller's choice: library code never applies them by itself, as a program that
embeds ``PoseEstimator`` may want its allocator and threads as they are. The ``hrnet`` command applies them for
every subcommand that runs a network; a Python program that wants the same speed calls them at start-up.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import sys
import threading
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

from hrnet.errors import ConfigError

if TYPE_CHECKING:  # loaded by the functions that use it: limit_openmp_spinning must run before PyTorch loads
    import torch

log = logging.getLogger(__name__)

# mallopt(3) parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
KEPT_BYTES = 1 << 30  # freed memory at the top of the heap beyond this goes back to the kernel
ENV_SWITCH = "HRNET_KEEP_FREED_MEMORY"  # "0" turns keep_freed_memory off
OPENMP_SPIN = "10000"  # GOMP_SPINCOUNT set by the hrnet command (hrnet.cli), about 0.2 ms of spinning

_lock = threading.Lock()
_state: bool | None = None


LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"  # the console log of every command (and of its worker processes)


def resolve_device(name: str) -> torch.device:
    """The device a network runs on.

    Args:
        name: "auto" (this process's GPU when CUDA is available, as ``LOCAL_RANK`` picks it under ``torchrun``,
            else the CPU); "cuda" without an index picks the GPU the same way; anything else as ``torch.device``
            reads it.

    Returns:
        The device; one this machine does not have (or a name that is not a device) is a ``ConfigError``.
    """
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(
            f'runtime.device {name!r}: not a device; use "auto", "cpu", "cuda" or "cuda:N" (or another device '
            "type that this PyTorch build supports, such as mps)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build of PyTorch" if torch.version.cuda is None else "no GPU or driver is visible"
            raise ConfigError(
                f"runtime.device {name!r}: CUDA is not available ({build}); use runtime.device=cpu or auto"
            )
        count = torch.cuda.device_count()
        if device.index is None:
            device = torch.device("cuda", local_rank() % count)
        elif device.index >= count:
            raise ConfigError(f"runtime.device {name!r}: this machine has {count} GPUs (cuda:0 to cuda:{count - 1})")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"runtime.device {name!r}: Apple's MPS is not available here; use runtime.device=cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        # meta holds shapes without data (nothing can run on it); other accelerators (xpu, ...) need their own
        # build of PyTorch, and the networks here are tested on CPU and CUDA only.
        available = getattr(getattr(torch, device.type, None), "is_available", lambda: False)
        if device.type == "meta" or not available():
            raise ConfigError(
                f"runtime.device {name!r}: this PyTorch build cannot run networks on {device.type!r}; use "
                "runtime.device=cpu, cuda or auto"
            )
    return device


def available_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on ``device``.

    Returns:
        The GPU's free memory, or for the CPU the kernel's estimate of what can be allocated without swapping
        (``MemAvailable``, Linux); None where unknown.
    """
    import torch

    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def local_rank() -> int:
    """This process's rank on its machine under ``torchrun`` (0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` serve large blocks from the heap and keep freed memory (up to ``KEPT_BYTES``) in the
    process, so that PyTorch's CPU buffers are reused instead of faulted in from the kernel, zeroed, on every call.

    The process then stays near its peak memory until it exits, as with ONNX Runtime's arena or jemalloc.
    Process-wide, for threads and forked data-loader workers alike; applied once (later calls return the first
    answer).

    Returns:
        Whether it applied: False, changing nothing, off glibc or when ``HRNET_KEEP_FREED_MEMORY`` is ``0``.
    """
    global _state
    with _lock:
        if _state is None:
            _state = _apply()
        return _state


def limit_openmp_spinning() -> None:
    """Set ``GOMP_SPINCOUNT`` to ``OPENMP_SPIN`` unless it or ``OMP_WAIT_POLICY`` is set already.

    PyTorch's OpenMP threads otherwise spin for milliseconds after each parallel operator and take the cores from
    whatever runs next (ONNX Runtime, a video's decoding and encoding threads, the service's requests), while
    inside a forward pass the operators follow each other faster than the shorter spin. libgomp reads the variable
    once, when PyTorch loads it: call this before the first ``import torch`` (``hrnet.cli`` does).
    """
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN)


def one_opencv_thread() -> None:
    """OpenCV's functions run in the thread that calls them, without OpenCV's own thread pool, whose threads would
    take the cores from the network's for a warp or a colour conversion. Process-wide."""
    import cv2

    cv2.setNumThreads(1)


def cpu_threads() -> int | None:
    """The threads a network run by ONNX Runtime (pose network, person detector) takes on the CPU.

    Returns:
        ``OMP_NUM_THREADS`` when it is set to a whole number above 0 (the count PyTorch's OpenMP takes too), at
        most the machine's cores; else None: the runtime's own choice, one thread a physical core.
    """
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        return None
    return min(int(value), os.cpu_count() or 1)  # more threads than cores only slow a network down


def encoder_threads() -> int:
    """The threads of the H.264 encoder, which runs beside the network: one for every 4 cores (at least one), as
    x264's own choice (1.5 a core) takes the network's cores.

    Returns:
        The thread count.
    """
    return max(1, (os.cpu_count() or 1) // 4)


def _apply() -> bool:
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        log.debug("%s=0: malloc left as it is", ENV_SWITCH)
        return False
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    applied = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, KEPT_BYTES))
    log.debug("malloc keeps freed memory for reuse: %s", applied)
    return applied


def exit_now(status: int) -> NoReturn:
    """End the process with ``status`` as the interpreter would at the end of a program, less its teardown: the
    ``atexit`` handlers run (logging's flush, multiprocessing's joins, finalizers) and the standard streams are
    flushed, but modules and objects are not freed one by one, which with PyTorch loaded is a good part of a short
    command's time (docs/speed.md). Where a thread other than the main one is still running, the interpreter's own
    exit waits for it as usual.
    """
    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        # A reader gone away (a pipe), a stream closed or none at all (started with it closed): nothing to give it.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(status)


def optional_module(name: str) -> ModuleType:
    """The module ``name`` of an optional extra (``onnx``, ``onnxruntime``), or a ``ConfigError`` saying how to
    install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"ONNX support needs the package {name!r}: pip install 'hrnet[onnx]'") from None
