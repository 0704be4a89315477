"""hrnet.system: where networks run, and keep_freed_memory (PyTorch's CPU buffers reused instead of faulted in
afresh on every forward pass).

keep_freed_memory is process-wide, so its cases run in their own interpreter.
"""

import os
import platform
import subprocess
import sys

import pytest
import torch

from hrnet import system as runtime
from hrnet.cli import main
from hrnet.errors import ConfigError
from hrnet.system import resolve_device

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the setting is glibc's"
)

# Page faults of three forward passes of a W8 network at 256×192, batch 16, after two warm-up passes. Its stage 1
# (as W32's) makes 50 MB tensors: above glibc's largest mmap threshold (32 MiB), so without the setting they are
# mapped afresh every time, whatever the threshold's dynamic adjustment does with smaller blocks.
SCRIPT = """
import resource
import torch
from hrnet.config import ModelConfig, hrnet_stages
from hrnet.models.hrnet import HRNet
from hrnet.system import keep_freed_memory

applied = keep_freed_memory()
torch.set_num_threads(1)
torch.manual_seed(0)
model = HRNet(ModelConfig(stages=hrnet_stages(8))).eval()
x = torch.randn(16, 3, 256, 192)
with torch.no_grad():
    model(x)
    model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        model(x)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(switch: str | None) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if k != "HRNET_KEEP_FREED_MEMORY"}
    if switch is not None:
        env["HRNET_KEEP_FREED_MEMORY"] = switch
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@glibc_only
def test_freed_buffers_are_reused_unless_switched_off():
    kept_applied, kept = _page_faults(None)
    off_applied, off = _page_faults("0")
    assert kept_applied and not off_applied
    # About 1.2 million faults (each a zeroed 4 KiB page) without the setting; none with it (measured).
    assert kept * 10 < off


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "3")  # torchrun's: with 4 GPUs, "cuda" and "auto" pick the process's own
    assert resolve_device("cuda") == torch.device("cuda", 3)
    assert resolve_device("auto") == torch.device("cuda", 3)


def test_devices_that_are_not_there_are_config_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match=rf"device {name!r}: CUDA is not available .*runtime\.device=cpu"):
            resolve_device(name)
    for name in ("tpu", "gpu", "cuda:x", ""):
        with pytest.raises(ConfigError, match=rf"runtime\.device {name!r}: not a device; use \"auto\", \"cpu\""):
            resolve_device(name)
    for name in ("meta", "xpu", "xpu:0"):  # devices torch knows by name but cannot run networks on here
        with pytest.raises(ConfigError, match=rf"runtime\.device {name!r}: this PyTorch build cannot run networks"):
            resolve_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"runtime\.device 'cuda:2': this machine has 2 GPUs \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


def test_only_commands_that_run_a_network_change_the_allocator_and_opencv(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append("malloc") or True)
    monkeypatch.setattr(runtime, "one_opencv_thread", lambda: calls.append("opencv"))
    assert main(["info", "w18"]) == 0 and not calls  # no network run
    assert main(["eval", "w18", "--weights", str(tmp_path / "missing.safetensors")]) == 2  # fails, after asking
    assert calls == ["malloc", "opencv"]


def test_one_opencv_thread():
    script = "import cv2\nfrom hrnet.system import one_opencv_thread\none_opencv_thread()\nprint(cv2.getNumThreads())"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


# What GOMP_SPINCOUNT holds when PyTorch (and with it libgomp, which reads it once) is first imported in a process
# that the hrnet command's module started (its commands import PyTorch when they run), and the value hrnet.system
# documents.
SPIN_SCRIPT = """
import os
import sys

seen = []


class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("GOMP_SPINCOUNT"))


sys.meta_path.insert(0, Watch())
import hrnet.cli
import torch
from hrnet.system import OPENMP_SPIN

print(seen[0], OPENMP_SPIN)
"""


def _spin_count_at_torch_import(**env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run(
        [sys.executable, "-c", SPIN_SCRIPT], env={**base, **env}, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_the_command_limits_openmp_spinning_before_pytorch_loads():
    """libgomp's threads spin some milliseconds after each parallel operator by default, taking the cores from
    ONNX Runtime and the pipeline's threads (hrnet.system): the hrnet command sets GOMP_SPINCOUNT before its
    first import of PyTorch, and keeps a user's own setting, or OMP_WAIT_POLICY, as it is."""
    assert _spin_count_at_torch_import() == [runtime.OPENMP_SPIN, runtime.OPENMP_SPIN]
    assert _spin_count_at_torch_import(GOMP_SPINCOUNT="5") == ["5", runtime.OPENMP_SPIN]
    assert _spin_count_at_torch_import(OMP_WAIT_POLICY="PASSIVE") == ["None", runtime.OPENMP_SPIN]


def test_thread_counts_have_one_home(monkeypatch):
    """ONNX Runtime's threads follow OMP_NUM_THREADS when it holds a count (else the runtime chooses); the video
    encoder takes one thread per 4 cores, at least one."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    cases = (("3", 3), (" 2 ", 2), ("100000", 8), ("0", None), ("4,2", None), ("abc", None), ("٣", None), ("", None))
    for value, threads in cases:  # more threads than cores are the cores: ONNX Runtime would never finish
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert runtime.cpu_threads() == threads, value
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert runtime.cpu_threads() is None
    for cores, threads in ((None, 1), (2, 1), (8, 2), (64, 16)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert runtime.encoder_threads() == threads, cores


EXIT_SCRIPT = """
import atexit, sys, threading, time
from pathlib import Path
from hrnet.system import exit_now

class Kept:
    def __del__(self):
        print("torn down", flush=True)

kept = Kept()  # freed one by one only by the interpreter's own teardown
atexit.register(lambda: print("atexit ran"))
if len(sys.argv) > 1:  # a thread still writing when the program ends
    def late():
        time.sleep(0.5)
        Path(sys.argv[1]).write_text("written")
    threading.Thread(target=late).start()
sys.stdout.write("buffered, not flushed")
exit_now(3)
"""


def test_exit_now_runs_atexit_and_flushes_but_frees_nothing_one_by_one():
    """The hrnet command ends through exit_now: PyTorch's teardown, object by object, is a good part of a short
    command's time, so it is skipped; the exit status, the atexit handlers and what waits in stdout's buffer all
    come through."""
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "buffered, not flushedatexit ran\n", done.stdout
    assert done.stderr == ""


def test_exit_now_waits_for_a_running_thread_as_the_interpreter_does(tmp_path):
    late = tmp_path / "late.txt"
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(late)], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert late.read_text() == "written"
    assert "atexit ran" in done.stdout


AS_MODULE = """
import atexit, runpy

class Kept:
    def __del__(self):
        print("torn down", flush=True)

kept = Kept()
atexit.register(lambda: print("atexit ran"))
runpy.run_module("hrnet", run_name="__main__")  # python -m hrnet
"""


def test_the_installed_command_ends_through_exit_now():
    """`hrnet` (the console script) and `python -m hrnet` run hrnet.cli.run, which ends with exit_now: the atexit
    handlers run, nothing is torn down one by one, and the status is the command's. Tests and programs that call
    hrnet.cli.main get its status back instead."""
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="hrnet")
    assert script.value == "hrnet.cli:run"
    done = subprocess.run([sys.executable, "-c", AS_MODULE, "info", "no-such-network"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("hrnet info: error:"), done.stderr
    assert done.stdout == "atexit ran\n", done.stdout
