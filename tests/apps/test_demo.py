"""`hrnet demo` end to end at a toy size: data → train → evaluate → pictures."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from hrnet.apps import demo
from hrnet.apps.demo import DEMO_CONFIG, run_demo
from hrnet.config import load_config
from hrnet.errors import TrainingError
from tests.conftest import tiny_model_config


def test_demo_writes_everything_it_promises(tmp_path, capsys):
    config = load_config(
        DEMO_CONFIG,
        [
            f"data.root={tmp_path / 'synthetic'}",
            f"train.out_dir={tmp_path / 'runs'}",
            "train.epochs=1",
            "train.batch_size=8",
            "runtime.num_workers=0",
        ],
    )
    config = dataclasses.replace(config, model=tiny_model_config())
    metrics = run_demo(config, num_train=16, num_val=4, progress=False)
    run = tmp_path / "runs" / "demo"
    for name in ("best.safetensors", "metrics.json", "curves.png", "predictions.png", "log.csv"):
        assert (run / name).is_file(), name
    assert json.loads((run / "metrics.json").read_text())["AP"] == metrics["AP"]
    out = capsys.readouterr().out
    assert out.startswith("hrnet demo: about ") and " minutes on this machine (" in out  # said before it starts
    assert f"(estimated {metrics['estimated_minutes']:.1f})" in out
    assert cv2.imread(str(run / "predictions.png")) is not None
    marker = json.loads((tmp_path / "synthetic" / "synthetic.json").read_text())
    assert marker["train"] == 16 and marker["val"] == 4
    stamp = (tmp_path / "synthetic" / "annotations" / "train.json").stat().st_mtime_ns
    run_demo(config, num_train=16, num_val=4, progress=False)  # the data set is cached, not rewritten
    assert (tmp_path / "synthetic" / "annotations" / "train.json").stat().st_mtime_ns == stamp


def test_the_estimate_counts_the_runs_training_steps(monkeypatch):
    # 3 epochs of ceil(1000 images × 1.75 persons / 32) = 55 steps, at 0.5 s a step plus the other parts' share.
    monkeypatch.setattr(demo, "training_step_seconds", lambda config, threads: 0.5)
    config = load_config(DEMO_CONFIG, ["train.epochs=3", "train.batch_size=32"])
    assert demo.estimate_seconds(config, 1000, 100, data_ready=True) == pytest.approx(
        165 * 0.5 * (1 + demo.OTHER_PARTS)
    )
    # Images still to draw add their drawing time, measured on a few of them.
    assert demo.estimate_seconds(config, 1000, 100, data_ready=False) > 165 * 0.5 * (1 + demo.OTHER_PARTS)


def test_a_training_step_is_timed_as_training_runs_it():
    config = load_config(DEMO_CONFIG, ["train.batch_size=2"])
    config = dataclasses.replace(config, model=tiny_model_config())
    assert 0 < demo.training_step_seconds(config) < 30


def test_on_a_cpu_of_several_cores_two_processes_share_the_batch(monkeypatch):
    config = load_config(DEMO_CONFIG)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert demo.training_processes(config)[0] == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert demo.training_processes(config) == (2, 3)
    assert demo._per_process(config, 2).train.batch_size * 2 == config.train.batch_size


def test_a_training_process_that_fails_ends_in_its_own_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    config = load_config(
        DEMO_CONFIG,
        [f"data.root={tmp_path / 'synthetic'}", f"train.out_dir={tmp_path / 'runs'}", "train.epochs=1",
         f"train.pretrained={tmp_path / 'missing.safetensors'}"],
    )  # fmt: skip
    config = dataclasses.replace(config, model=tiny_model_config())
    with pytest.raises(TrainingError, match=r"missing\.safetensors") as raised:
        run_demo(config, num_train=8, num_val=2, progress=False)
    assert "\n" not in str(raised.value)


def test_the_training_processes_leave_no_leaked_semaphore_warning(tmp_path):
    """Each training process, and the demo itself, exits without the interpreter's teardown
    (``hrnet.system.exit_now``); once a progress bar's multiprocessing lock outlived such an exit and the resource
    tracker printed a 'leaked semaphore' warning at the end of every demo. The atexit handlers release it."""
    script = tmp_path / "two_bars.py"
    script.write_text(
        "from tqdm import tqdm\n"
        "from hrnet.apps import demo\n"
        "def bars(config, overwrite, progress):\n"
        "    for _ in tqdm(range(2), disable=not progress):\n"
        "        pass\n"
        "demo.train = bars  # also in the spawned processes, which run this module again\n"
        "demo.training_processes = lambda config: (2, 1)\n"
        "if __name__ == '__main__':\n"
        "    from hrnet.config import load_config\n"
        "    demo.train_demo(load_config(demo.DEMO_CONFIG), progress=True)\n"
        "    from hrnet.system import exit_now\n"
        "    exit_now(0)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr


def test_the_demo_trains_in_fp32_without_a_warning_where_the_cpu_has_no_bf16(monkeypatch, caplog):
    import torch

    from hrnet.engine.autocast import training_autocast
    from hrnet.runtime import precision

    config = load_config(DEMO_CONFIG, ["runtime.device=cpu"])
    assert config.train.precision == "bf16"  # "where the CPU has it"
    support = precision.cpu_support()
    monkeypatch.setattr(precision, "cpu_support", lambda: dataclasses.replace(support, bf16=False))
    here = demo.precision_here(config)
    assert here.train.precision == "fp32"
    assert ", fp32 training, " in demo.machine_words(here)  # the line before the run says it
    with caplog.at_level("WARNING"):
        enabled, _ = training_autocast(here.train.precision, here.runtime.amp, torch.device("cpu"))
    assert not enabled
    assert not caplog.records
    monkeypatch.setattr(precision, "cpu_support", lambda: dataclasses.replace(support, bf16=True))
    assert demo.precision_here(config).train.precision == "bf16"


def test_the_training_processes_end_when_the_demo_is_killed(tmp_path):
    """PyTorch ends spawned processes with a SIGINT when their parent dies; where the command ignores SIGINT (started
    in the background by a script), they ignored it too, and a killed demo left both training on for minutes."""
    script = tmp_path / "killed.py"
    script.write_text(
        "import os, time\n"
        "from hrnet.apps import demo\n"
        "def train(config, overwrite, progress):\n"
        f"    open(os.path.join({str(tmp_path)!r}, f'child{{os.getpid()}}'), 'w').close()\n"
        "    time.sleep(120)\n"
        "demo.train = train  # also in the spawned processes, which run this module again\n"
        "demo.training_processes = lambda config: (2, 1)\n"
        "if __name__ == '__main__':\n"
        "    from hrnet.config import load_config\n"
        "    demo.train_demo(load_config(demo.DEMO_CONFIG), progress=False)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as `hrnet demo &` in a script
    )
    deadline = time.monotonic() + 120
    while len(children := [int(p.name[5:]) for p in tmp_path.glob("child*")]) < 2:
        assert time.monotonic() < deadline and parent.poll() is None, "the training processes did not start"
        time.sleep(0.2)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while alive := [pid for pid in children if _running(pid)]:
        if time.monotonic() > deadline:
            for pid in alive:
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"training processes {alive} outlived the demo's command")
        time.sleep(0.2)


def _running(pid: int) -> bool:
    """Whether process ``pid`` is alive: neither gone nor a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
