"""Where networks run (``resolve_device``) and the one process-wide setting that makes PyTorch fast on the CPU:
freed memory kept by the process for reuse (``keep_freed_memory``).

Library code never calls ``keep_freed_memory`` by itself: it changes the allocator of the whole process, which a
program embedding ``PoseEstimator`` may not want. The ``hrnet`` command turns it on for every subcommand that runs
a network; a Python program that wants the same speed calls it once at start-up.

Every PyTorch operator on the CPU allocates its output. glibc's ``malloc`` serves blocks above its mmap threshold
(128 KiB, rising to at most 32 MiB) with fresh pages from the kernel and returns them on ``free``, so the next
forward pass faults every page in again and the kernel zeroes each 4 KiB one. HRNet-W32 at 256×192, batch 16,
takes about 430,000 page faults a forward pass that way: a third of its time on 2 cores. With large blocks taken
from the heap and freed memory kept, the same pass takes none and runs about 1.5× faster
(``bench/results/inference.md``). ONNX Runtime avoids
the cost with its own memory arena; this is the same idea for PyTorch.

The ``hrnet`` command also shortens how long PyTorch's OpenMP threads spin after each parallel operator, waiting
for the next, to ``OPENMP_SPIN`` turns (``GOMP_SPINCOUNT``; libgomp's own default, 300,000, is some milliseconds).
Inside a forward pass the operators follow each other faster than that, so the network alone keeps its speed (W32
fp32 and bf16 at batch 1, 8 and 16, measured with 1,000 to 100,000 turns). But after the last operator the threads
spun on, taking the cores from whatever ran next: ONNX Runtime's threads (an int8 network's glue, one
``torch.stack``, made every run 1.4× slower), the decoding, drawing and encoding threads of a video, the request
work of ``hrnet serve``. libgomp reads the variable once, when PyTorch loads it, so the command sets it before its
first import of PyTorch (``hrnet.cli``, ``limit_openmp_spinning``); a Python program calls that function, or sets
``GOMP_SPINCOUNT=10000`` in its environment, before it imports torch. An explicit setting of the variable (or
``OMP_WAIT_POLICY``) is kept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import threading
from typing import TYPE_CHECKING

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


def resolve_device(name: str) -> torch.device:
    """``"auto"``: this process's GPU when CUDA is available (``LOCAL_RANK`` picks it, as ``torchrun`` sets it),
    else the CPU; ``"cuda"`` without an index picks the GPU the same way; anything else as ``torch.device`` reads
    it. A device this machine does not have (or a name that is not a device) is a ``ConfigError``."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
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
        backend = getattr(torch, device.type, None)
        available = device.type != "meta" and bool(getattr(backend, "is_available", lambda: False)())
        if not available:
            raise ConfigError(
                f"runtime.device {name!r}: this PyTorch build cannot run networks on {device.type!r}; use "
                "runtime.device=cpu, cuda or auto"
            )
    return device


def available_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on ``device``: the GPU's free memory, or for the CPU the kernel's estimate of
    what can be allocated without swapping (``MemAvailable``, Linux); None where unknown."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def local_rank() -> int:
    """This process's rank on its machine under ``torchrun`` (0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` serve large blocks from the heap and keep freed memory (up to ``KEPT_BYTES`` of it)
    in the process, so PyTorch's CPU buffers are reused instead of faulted in afresh on every call.

    The price is that the process stays near its peak memory until it exits, as with ONNX Runtime's arena or
    jemalloc. Process-wide, for threads and forked data-loader workers alike, and applied once (later calls
    return the first answer). Returns False, changing nothing, off glibc or when the environment variable
    ``HRNET_KEEP_FREED_MEMORY`` is ``0``.
    """
    global _state
    with _lock:
        if _state is None:
            _state = _apply()
        return _state


def limit_openmp_spinning() -> None:
    """Set ``GOMP_SPINCOUNT`` to ``OPENMP_SPIN`` unless it or ``OMP_WAIT_POLICY`` is set already (module doc).

    libgomp reads it once, when PyTorch is first imported: called after that, it changes nothing."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN)


def one_opencv_thread() -> None:
    """OpenCV's functions run in the thread that calls them, not in OpenCV's own thread pool as well.

    Process-wide (the ``hrnet`` commands that run a network call it). Its pool takes both cores of a 2-core
    machine for a warp or a colour conversion, from under the network's threads: a pipelined one-person video
    (W32 int8, 2 cores; decoding, drawing and encoding in threads beside the network) ran 1.18× faster with
    OpenCV in one thread, and the training loader kept its speed (docs/speed.md).
    """
    import cv2

    cv2.setNumThreads(1)


def _apply() -> bool:
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        log.debug("%s=0: malloc left as it is", ENV_SWITCH)
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    applied = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, KEPT_BYTES))
    log.debug("malloc keeps freed memory for reuse: %s", applied)
    return applied
