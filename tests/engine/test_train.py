"""The training loop: run folder, resume after SIGKILL, DDP on CPU, non-finite loss."""

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors import safe_open

from hrnet.cli import main
from hrnet.config import TrainConfig, dump_config, load_config
from hrnet.engine import state as state_module
from hrnet.engine import train as train_module
from hrnet.engine.evaluate import Evaluator
from hrnet.engine.train import run_seconds_left, train
from hrnet.errors import DataError, OutputError, TrainingError, TrainingInterruptedError
from hrnet.io.outputs import LOCK, OutputFolder
from hrnet.models.checkpoint import load_weights, read_state_dict, save_weights
from hrnet.models.hrnet import build_model
from tests.engine.conftest import tiny_experiment

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_writes_its_folder(experiment):
    result = train(experiment, progress=False)
    run = result.run_dir
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "last.safetensors", "best.safetensors", "log.csv", "curves.png", "train.log"} <= names
    assert "tensorboard" in names and any((run / "tensorboard").iterdir())
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(float(r["train_loss"]) > 0 for r in rows)
    assert "val_AP" in rows[0] and (run / "eval_epoch002" / "keypoints_results.json").is_file()
    model = build_model(experiment.model)
    load_weights(model, run / "last.safetensors")  # a training checkpoint is a weights file too
    load_weights(model, run / "best.safetensors")
    assert (run / "config.yaml").read_text() == dump_config(experiment)
    assert not [p for p in run.rglob("*.tmp*")]


def test_a_second_run_into_a_held_run_folder_is_refused(experiment):
    run_dir = Path(experiment.train.out_dir) / experiment.train.name
    with OutputFolder(run_dir, command="hrnet train"), pytest.raises(OutputError) as refused:  # another run holds it
        train(experiment, progress=False)
    assert str(refused.value) == (
        f"{run_dir}: another run is writing into this folder; wait for it, or choose another run folder"
    )
    assert not (run_dir / "config.yaml").exists()
    assert train(experiment, progress=False).run_dir == run_dir  # let go: the folder is free again


def test_cpu_training_runs_channels_last(experiment, monkeypatch):
    # runtime.channels_last holds on the CPU as on CUDA (oneDNN's NHWC convolutions are the faster ones there).
    built = []

    def build(config):
        built.append(build_model(config))
        return built[-1]

    monkeypatch.setattr(train_module, "build_model", build)
    train(experiment, progress=False)
    weight = next(m.weight for m in built[0].modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def test_tensorboard_events_are_written_without_tensorflow(tmp_path):
    # With TensorFlow installed (the tf extra), TensorBoard would write through it: 3 s of import and ~1 GB.
    code = (
        "import sys; from pathlib import Path; from hrnet.engine.train import _tensorboard; "
        f"writer = _tensorboard(Path({str(tmp_path)!r})); writer.add_scalar('loss', 1.0, 0); writer.close(); "
        "print('tensorflow' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert any((tmp_path / "tensorboard").iterdir())


def _progress(path: Path) -> tuple[int, int] | None:
    """(epoch, step) of a training checkpoint, None while there is none."""
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as f:
        state = json.loads(f.metadata()["state"])
    return state["epoch"], state["step"]


def _train_process(config_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "hrnet", "train", str(config_path), "--set", "runtime.device=cpu", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_run(datasets_dir, tmp_path):
    configs = {}
    for name in ("whole", "killed"):
        config = tiny_experiment(datasets_dir, tmp_path / name, epochs=3, checkpoint_every=1, seed=5)
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(dump_config(config))
    whole = _train_process(configs["whole"])
    killed = _train_process(configs["killed"])
    last = tmp_path / "killed" / "tiny" / "last.safetensors"
    deadline = time.monotonic() + 120
    while _progress(last) is None and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    at_kill = _progress(last)
    assert at_kill is not None and at_kill < (3, 0), f"the run was not interrupted mid-way: {at_kill}"
    resumed = _train_process(configs["killed"], "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read() if resumed.stderr else ""
    assert whole.wait(timeout=300) == 0, whole.stderr.read() if whole.stderr else ""
    a = read_state_dict(tmp_path / "whole" / "tiny" / "last.safetensors")
    b = read_state_dict(last)
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key].double() - b[key].double()).abs().max() <= 1e-6, key
    assert _progress(last) == (3, 0)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(datasets_dir, tmp_path, monkeypatch):
    config = tiny_experiment(datasets_dir, tmp_path, epochs=2, checkpoint_every=1)
    calls = {"n": 0}
    real = train_module.HeatmapLoss.forward

    def flaky(self, output, target, weight):
        calls["n"] += 1
        loss = real(self, output, target, weight)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(train_module.HeatmapLoss, "forward", flaky)
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 1, step 3.*last good checkpoint .*step 1\)"):
        train(config, progress=False)
    # The weights after step 2 gave the NaN loss: they are not "good"; those after step 1 gave a finite one.
    assert _progress(tmp_path / "tiny" / "last.safetensors") == (0, 1)


def test_diverged_weights_are_never_checkpointed(datasets_dir, tmp_path, monkeypatch):
    """Weights that blew up (|w| ~ 1e10) while the loss stayed finite are not saved; the advice names a
    checkpoint of sound weights, which resumes."""
    config = tiny_experiment(datasets_dir, tmp_path, epochs=2, checkpoint_every=1)
    calls, models = {"n": 0}, []
    real, real_build = train_module.HeatmapLoss.forward, train_module.build_model

    def blow_up(self, output, target, weight):
        calls["n"] += 1
        if calls["n"] == 3:  # as if step 2's update had diverged
            with torch.no_grad():
                for p in models[0].parameters():
                    p.mul_(1e10)
        return real(self, output, target, weight)

    def build(cfg):
        models.append(real_build(cfg))
        return models[-1]

    monkeypatch.setattr(train_module, "build_model", build)
    monkeypatch.setattr(train_module.HeatmapLoss, "forward", blow_up)
    with pytest.raises(TrainingError, match=r"diverged.*not saved.*last good checkpoint .*epoch 1, step 1\)"):
        train(config, progress=False)
    last = tmp_path / "tiny" / "last.safetensors"
    assert _progress(last) == (0, 1)
    assert max(float(v.abs().max()) for v in read_state_dict(last).values() if v.is_floating_point()) < 1e3
    monkeypatch.undo()
    assert len(train(config, resume=True, progress=False).history) == 2


def _final(run: Path) -> tuple[dict[str, torch.Tensor], list[dict[str, str]]]:
    return read_state_dict(run / "last.safetensors"), list(csv.DictReader((run / "log.csv").open()))


def _assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights and the same log."""
    (wa, la), (wb, lb) = _final(a), _final(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["train_loss"] for r in la] == [r["train_loss"] for r in lb]
    assert [r["val_AP"] for r in la] == [r["val_AP"] for r in lb]


def test_a_mid_epoch_resume_logs_the_loss_of_the_whole_epoch(datasets_dir, tmp_path, monkeypatch):
    """A run that crashed mid-epoch and resumed logs the same train_loss as an uninterrupted run."""
    whole = tiny_experiment(datasets_dir, tmp_path / "whole", epochs=1, checkpoint_every=1)
    train(whole, progress=False)
    crashed = tiny_experiment(datasets_dir, tmp_path / "crashed", epochs=1, checkpoint_every=1)
    calls = {"n": 0}
    real = train_module.HeatmapLoss.forward

    def crash(self, output, target, weight):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real(self, output, target, weight)

    monkeypatch.setattr(train_module.HeatmapLoss, "forward", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(crashed, progress=False)
    monkeypatch.undo()
    assert _progress(tmp_path / "crashed" / "tiny" / "last.safetensors")[1] > 0  # mid-epoch
    train(crashed, resume=True, progress=False)
    _assert_same_run(tmp_path / "whole" / "tiny", tmp_path / "crashed" / "tiny")


def _signal_at_call(monkeypatch, n: int, signum: int, times: int = 1) -> None:
    calls = {"n": 0}
    real = train_module.HeatmapLoss.forward

    def signalled(self, output, target, weight):
        calls["n"] += 1
        if calls["n"] == n:
            for _ in range(times):
                os.kill(os.getpid(), signum)
        return real(self, output, target, weight)

    monkeypatch.setattr(train_module.HeatmapLoss, "forward", signalled)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_resumable_checkpoint_in_process(datasets_dir, tmp_path, monkeypatch, signum):
    whole = tiny_experiment(datasets_dir, tmp_path / "whole", epochs=2)
    train(whole, progress=False)
    stopped = tiny_experiment(datasets_dir, tmp_path / "stopped", epochs=2)
    _signal_at_call(monkeypatch, 5, signum)  # epoch 2, step 2 (3 steps an epoch)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterruptedError, match=r"stopped by SIG(INT|TERM) at epoch 2, step 2.*--resume") as e:
        train(stopped, handle_signals=True, progress=False)
    assert e.value.signal == signum
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored
    assert _progress(tmp_path / "stopped" / "tiny" / "last.safetensors") == (1, 2)
    monkeypatch.undo()
    train(stopped, resume=True, progress=False)
    _assert_same_run(tmp_path / "whole" / "tiny", tmp_path / "stopped" / "tiny")


def test_a_second_ctrl_c_stops_at_once(datasets_dir, tmp_path, monkeypatch):
    config = tiny_experiment(datasets_dir, tmp_path, epochs=1)
    _signal_at_call(monkeypatch, 2, signal.SIGINT, times=2)
    with pytest.raises(KeyboardInterrupt):
        train(config, handle_signals=True, progress=False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert _progress(tmp_path / "tiny" / "last.safetensors") is None


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_resume_after_a_signal_equals_an_uninterrupted_run(datasets_dir, tmp_path, signum):
    """``hrnet train`` stopped by SIGINT (Ctrl-C) or SIGTERM: one line, exit 128 + signal, a resumable
    checkpoint of the last step; resumed, the weights are bit-identical to an uninterrupted run's."""
    configs = {}
    for name in ("whole", "stopped"):
        config = tiny_experiment(datasets_dir, tmp_path / name, epochs=3, seed=5)
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(dump_config(config))
    whole = _train_process(configs["whole"])
    stopped = _train_process(configs["stopped"])
    run = tmp_path / "stopped" / "tiny"
    deadline = time.monotonic() + 120
    while _progress(run / "last.safetensors") is None and time.monotonic() < deadline and stopped.poll() is None:
        time.sleep(0.005)  # the first epoch's checkpoint: the handlers are installed and two epochs are left
    stopped.send_signal(signum)
    assert stopped.wait(timeout=120) == 128 + signum
    err = stopped.stderr.read() if stopped.stderr else ""
    name = signal.Signals(signum).name
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith(f"hrnet train: stopped by {name} at ") and "--resume" in last_line, err
    assert "Traceback" not in err
    at_stop = _progress(run / "last.safetensors")
    assert at_stop is not None and at_stop < (3, 0), f"the run was not stopped mid-way: {at_stop}"
    resumed = _train_process(configs["stopped"], "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read() if resumed.stderr else ""
    assert whole.wait(timeout=300) == 0, whole.stderr.read() if whole.stderr else ""
    _assert_same_run(tmp_path / "whole" / "tiny", run)


def test_a_users_own_files_named_as_a_runs_are_kept(datasets_dir, tmp_path):
    """A folder with a user's config.yaml, curves.png and train.log but no checkpoint is no run to replace."""
    config = tiny_experiment(datasets_dir, tmp_path, epochs=1)
    run = tmp_path / "tiny"
    run.mkdir()
    mine = {name: f"my own {name}".encode() for name in ("config.yaml", "curves.png", "train.log")}
    for name, data in mine.items():
        (run / name).write_bytes(data)
    with pytest.raises(TrainingError, match=r"already holds a run's files \(curves.png, train.log, config.yaml\)"):
        train(config, progress=False)
    assert {name: (run / name).read_bytes() for name in mine} == mine


def test_a_finished_run_is_not_trained_into_again(datasets_dir, tmp_path, capsys):
    config = tiny_experiment(datasets_dir, tmp_path, epochs=1)
    train(config, progress=False)
    run = tmp_path / "tiny"
    log_before, last_before = (run / "log.csv").read_bytes(), (run / "last.safetensors").read_bytes()
    with pytest.raises(TrainingError, match=r"already holds a run's files .*--resume.*another train.name.*--overwrite"):
        train(config, progress=False)
    assert (run / "log.csv").read_bytes() == log_before and (run / "last.safetensors").read_bytes() == last_before
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config))
    assert main(["train", str(path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    (run / "eval_epoch001" / "extra.txt").write_text("from the earlier run")
    again = train(config, overwrite=True, progress=False)
    assert len(again.history) == 1 and not (run / "eval_epoch001" / "extra.txt").exists()


def test_stale_temporary_files_are_removed_on_the_next_start(datasets_dir, tmp_path):
    config = tiny_experiment(datasets_dir, tmp_path, epochs=1)
    run = tmp_path / "tiny"
    run.mkdir()
    stale = run / ".last.0123abcd.hrnet.tmp.safetensors"
    stale.write_bytes(b"half a checkpoint")
    keep = [run / "notes.txt", run / ".notes.deadbeef.tmp.txt"]  # not named by hrnet: the user's
    for path in keep:
        path.write_text("mine")
    train(config, progress=False)
    assert not stale.exists() and all(path.read_text() == "mine" for path in keep)


def test_nothing_trained_is_an_error(datasets_dir, tmp_path):
    """Every training image unreadable: an error, not a finished run with train_loss 0."""
    empty = tmp_path / "no_images"
    empty.mkdir()
    config = tiny_experiment(datasets_dir, tmp_path / "runs", [f"data.train_images={empty}"], epochs=1)
    with pytest.raises(TrainingError, match=r"nothing was trained: the images of all 12 samples could not be read"):
        train(config, progress=False)
    assert not (tmp_path / "runs" / "tiny" / "last.safetensors").exists()


def test_changed_optimizer_settings_are_applied_on_resume(datasets_dir, tmp_path, caplog):
    train(tiny_experiment(datasets_dir, tmp_path, epochs=1), progress=False)
    more = tiny_experiment(datasets_dir, tmp_path, epochs=3, lr=5e-4, lr_steps="[2]")
    with caplog.at_level("WARNING", logger="hrnet"):
        result = train(more, resume=True, progress=False)
    assert [row["lr"] for row in result.history] == [1e-3, 5e-4, pytest.approx(5e-5)]
    assert "train.lr 0.001 → 0.0005 (applied)" in caplog.text
    assert load_config(tmp_path / "tiny" / "config.yaml").train.lr == 5e-4


def test_a_setting_that_cannot_change_on_resume_is_refused_by_name(datasets_dir, tmp_path):
    train(tiny_experiment(datasets_dir, tmp_path, epochs=1), progress=False)
    recorded = (tmp_path / "tiny" / "config.yaml").read_text()
    with pytest.raises(TrainingError, match=r"cannot resume with a changed train.optimizer \(train.optimizer: 'adam'"):
        train(tiny_experiment(datasets_dir, tmp_path, epochs=2, optimizer="sgd"), resume=True, progress=False)
    assert (tmp_path / "tiny" / "config.yaml").read_text() == recorded


def test_no_space_for_a_checkpoint_keeps_the_previous_one(datasets_dir, tmp_path, monkeypatch):
    config = tiny_experiment(datasets_dir, tmp_path, epochs=2)
    calls = {"n": 0}
    real = state_module.save_file

    def full_disk(tensors, path, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:
            Path(path).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(state_module, "save_file", full_disk)
    with pytest.raises(OutputError, match=r"last.safetensors: cannot write it \(no space left.*previous checkpoint"):
        train(config, progress=False)
    run = tmp_path / "tiny"
    assert _progress(run / "last.safetensors") == (1, 0)
    assert not [p for p in run.iterdir() if ".tmp" in p.name]


def test_the_config_file_given_is_never_replaced_by_the_resolved_one(datasets_dir, tmp_path, capsys):
    """``hrnet train exp/config.yaml`` with the run folder ``exp/``: the run would keep its resolved config there,
    over the user's file and its comments. Refused in one line; the file and the folder stay as they were."""
    config = tiny_experiment(datasets_dir, tmp_path, epochs=1)
    mine = tmp_path / "tiny" / "config.yaml"
    mine.parent.mkdir()
    text = "# my notes on this experiment\n" + dump_config(config)
    mine.write_text(text)
    assert main(["train", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tiny/config.yaml is the config file given" in err and "comments" in err
    assert mine.read_text() == text and sorted(p.name for p in mine.parent.iterdir()) == [LOCK, "config.yaml"]


def test_a_runs_own_config_given_back_is_kept_through_overwrite(datasets_dir, tmp_path):
    """The run folder's config.yaml given back (it already says what runs) is accepted, and --overwrite, which
    deletes the earlier run, keeps it."""
    config = tiny_experiment(datasets_dir, tmp_path, epochs=1)
    given = tmp_path / "tiny" / "config.yaml"
    given.parent.mkdir()
    given.write_text(dump_config(config))
    (given.parent / "log.csv").write_text("epoch\n1\n")  # an earlier run
    deleted = []
    real_unlink = Path.unlink

    def unlink(path, missing_ok=False):
        deleted.append(path.name)
        real_unlink(path, missing_ok=missing_ok)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "unlink", unlink)
        train(config, overwrite=True, config_file=given, progress=False)
    assert "config.yaml" not in deleted and "log.csv" in deleted
    assert given.read_text() == dump_config(config)


def test_a_run_folder_that_cannot_be_written_is_refused_up_front(datasets_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    config = tiny_experiment(datasets_dir, blocker, epochs=1)
    with pytest.raises(OutputError, match=r"file/tiny: cannot write the run folder"):
        train(config, progress=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_folder_is_refused_up_front(datasets_dir, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=r"cannot write the run folder .*read-only"):
            train(tiny_experiment(datasets_dir, out, epochs=1), progress=False)
    finally:
        out.chmod(0o755)


def _ddp_worker(rank: int, world_size: int, port: int, datasets_dir: Path, tmp_path: Path) -> None:
    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank),
         "WORLD_SIZE": str(world_size)}
    )  # fmt: skip
    torch.set_num_threads(1)
    syncs: list[bool] = []

    class Recording(train_module.DistributedDataParallel):  # what the trainer's DDP will do at each forward
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            syncs.append(self.will_sync_module_buffers())

    train_module.DistributedDataParallel = Recording  # this spawned process's own module
    # Rank 1 is told to write elsewhere: the folder must still not appear, since only rank 0 writes.
    config = tiny_experiment(datasets_dir, tmp_path / f"out_rank{rank}", ["runtime.device=cpu"], epochs=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(config, progress=False)
    state = {k: v.clone() for k, v in result.model.state_dict().items()}
    torch.save(state, tmp_path / f"weights_rank{rank}.pt")
    ddp_warnings = [str(w.message) for w in caught if "buffers" in str(w.message)]
    (tmp_path / f"ddp_rank{rank}.json").write_text(json.dumps({"syncs": syncs, "warnings": ddp_warnings}))


@pytest.mark.slow
def test_ddp_on_cpu_keeps_ranks_identical_and_only_rank0_writes(datasets_dir, tmp_path):
    port = 29500 + os.getpid() % 1000
    mp.start_processes(_ddp_worker, args=(2, port, datasets_dir, tmp_path), nprocs=2, start_method="spawn")
    w0 = torch.load(tmp_path / "weights_rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "weights_rank1.pt", weights_only=True)
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    # No BatchNorm buffers broadcast at every forward (each rank's own statistics until _sync_buffers), and no
    # warning about the switch's name.
    for rank in (0, 1):
        assert json.loads((tmp_path / f"ddp_rank{rank}.json").read_text()) == {"syncs": [False], "warnings": []}
    assert (tmp_path / "out_rank0" / "tiny" / "last.safetensors").is_file()
    assert not (tmp_path / "out_rank1").exists()
    # Evaluation gathered both ranks' persons: the AP rank 0 logged is that of all 12 persons.
    run = tmp_path / "out_rank0" / "tiny"
    logged = float(next(csv.DictReader((run / "log.csv").open()))["val_AP"])
    model = build_model(tiny_experiment(datasets_dir, tmp_path).model)
    load_weights(model, run / "last.safetensors")
    config = tiny_experiment(datasets_dir, tmp_path)
    alone = Evaluator.from_config(config, torch.device("cpu"), progress=False).evaluate(model)
    assert alone["AP"] == pytest.approx(logged, abs=1e-9)


def _coco_with_a_missing_image(datasets_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for image in (datasets_dir / "coco").glob("*.jpg"):
        if image.name != "000000000785.jpg":  # its 1 person's image is missing
            (folder / image.name).symlink_to(image)
    return folder


def test_unreadable_training_images_are_skipped_counted_and_warned_once(datasets_dir, tmp_path, caplog):
    folder = _coco_with_a_missing_image(datasets_dir, tmp_path)
    config = tiny_experiment(datasets_dir, tmp_path / "runs", epochs=1)
    config = load_config(None, [f"data.train_images={folder}"], base=config)
    with caplog.at_level("WARNING", logger="hrnet"):
        train(config, progress=False)
    warnings = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 1 samples" in warnings[0] and "000000000785.jpg" in warnings[0]
    rows = list(csv.DictReader((tmp_path / "runs" / "tiny" / "log.csv").open()))
    assert rows[0]["skipped_images"] == "1"
    strict = load_config(None, ["data.skip_bad_images=false", "train.name=strict"], base=config)
    with pytest.raises(DataError, match=r"000000000785\.jpg"):
        train(strict, progress=False)


def test_resume_compares_the_network_not_where_its_start_weights_were(datasets_dir, tmp_path):
    start = tmp_path / "start.safetensors"
    save_weights(build_model(tiny_experiment(datasets_dir, tmp_path).model), start)
    config = tiny_experiment(datasets_dir, tmp_path, [f"train.pretrained={start}"], epochs=1)
    train(config, progress=False)
    moved = tmp_path / "moved" / "start.safetensors"
    moved.parent.mkdir()
    start.rename(moved)
    more = tiny_experiment(
        datasets_dir, tmp_path, [f"train.pretrained={moved}", "runtime.num_workers=1"], epochs=2
    )  # the weights moved, the loader changed: the same run
    assert len(train(more, resume=True, progress=False).history) == 2
    other = tiny_experiment(datasets_dir, tmp_path, ["model.input_size=[96, 64]"], epochs=3)  # another network
    with pytest.raises(TrainingError, match="saved by a run with another model config"):
        train(other, resume=True, progress=False)


def test_the_bar_counts_the_whole_runs_time_left():
    tc = TrainConfig(epochs=4, val_every=2)
    # First epoch, step 10 of 100 at 0.5 s: 90 + 3 × 100 steps, and the validations after epochs 2 and 4.
    assert run_seconds_left(tc, 0, 10, 100, 0.5, 20.0) == 390 * 0.5 + 2 * 20
    assert run_seconds_left(tc, 0, 10, 100, 0.5, None) == 390 * 0.5  # no validation measured yet
    assert run_seconds_left(tc, 3, 100, 100, 0.5, 20.0) == 20  # the last validation is still due
