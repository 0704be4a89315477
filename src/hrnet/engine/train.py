"""The training loop: one function, the official recipe, on one CPU, one GPU or many (``torchrun`` + DDP).

Each run writes into ``<train.out_dir>/<train.name>/``: ``config.yaml`` (as resolved), ``last.safetensors``
(resumable: model, optimizer, scheduler, scaler, RNG, progress), ``best.safetensors`` (weights of the best
validation epoch by the split's main metric: the highest AP, say, or the lowest NME), ``log.csv``, TensorBoard
events, ``curves.png`` and ``train.log``. Only rank 0 writes. A killed run continues with ``--resume`` from its
last checkpoint; with a fixed seed on the CPU the finished weights equal those of an uninterrupted run.

Nothing is recorded wrongly: a checkpoint is written only for weights that are finite and gave a finite loss on
the next batch; a config changed between runs is applied on resume and logged (or refused, naming the keys); the
config file the run was given is never replaced by the run's own ``config.yaml`` unless it already holds it.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import inspect
import io
import logging
import math
import shutil
import signal
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from hrnet.codec import codec_from_config
from hrnet.config import ExperimentConfig, TrainConfig, dump_config, to_dict
from hrnet.data.augment import Augmentation
from hrnet.data.dataset import Batch, TopDownDataset, collate
from hrnet.data.sampler import EpochSampler
from hrnet.data.sources import load_split
from hrnet.drawing.curves import plot_curves
from hrnet.engine.autocast import training_autocast
from hrnet.engine.distributed import Distributed, barrier, init_distributed, shutdown
from hrnet.engine.evaluate import Evaluator
from hrnet.engine.loss import HeatmapLoss
from hrnet.engine.state import TrainingState, load_training_checkpoint, rng_states, save_training_checkpoint
from hrnet.errors import OutputError, TrainingError, TrainingInterruptedError
from hrnet.hub.registry import resolve_weights
from hrnet.io.files import output_problem, remove_stale_temporaries, write_text_atomic
from hrnet.io.outputs import Inputs, OutputFolder
from hrnet.keypoints import is_keypoint_set_file, metainfo_text
from hrnet.models.checkpoint import META_CONFIG, META_KEYPOINT_SET, load_pretrained, save_weights
from hrnet.models.complexity import check_memory
from hrnet.models.hrnet import build_model
from hrnet.pose.estimator import SYNTHETIC
from hrnet.system import resolve_device

log = logging.getLogger(__name__)

LAST = "last.safetensors"
BEST = "best.safetensors"
CONFIG = "config.yaml"
KEYPOINTS = "keypoints.yaml"  # the run's keypoint set, as its weights record it
# What a run writes into its folder: ``overwrite`` removes these (and eval_epochNNN/), nothing else.
RUN_FILES = (LAST, BEST, "log.csv", "curves.png", "train.log", CONFIG, KEYPOINTS, "tensorboard")
# Weights beyond this magnitude have diverged (HRNet's are O(1); the official checkpoints stay below 100): such a
# state is never saved as a checkpoint to resume from.
DIVERGED = 1e6
# DistributedDataParallel's switch for the buffers' broadcast at every forward: newer PyTorch names it
# forward_sync_buffers and warns at the old name, which older versions alone know.
_NO_FORWARD_SYNC: dict[str, Any] = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)

# Settings that the optimizer and LR scheduler restore from a checkpoint: a change is applied to them on resume.
OPTIMIZER_KEYS = ("train.lr", "train.lr_steps", "train.lr_factor", "train.momentum", "train.nesterov",
                  "train.weight_decay")  # fmt: skip


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path  # the run folder (written by rank 0)
    model: nn.Module  # this process's trained network (unwrapped from DDP), in train mode
    history: list[dict[str, Any]]  # one row per epoch: loss, learning rate, samples/s, validation metrics


def recorded_config(config: ExperimentConfig) -> str:
    """The run's config as it records it (``config.yaml``, the weights' metadata): with ``data.root`` (and a
    keypoint set file) absolute,
    so that the record works from any folder (``hrnet export --calibration``, ``hrnet data show``, ``hrnet predict``
    reading a network's config from its weights)."""
    data = dataclasses.replace(config.data, root=str(Path(config.data.root).resolve()))
    if is_keypoint_set_file(data.keypoint_set):
        data = dataclasses.replace(data, keypoint_set=str(Path(data.keypoint_set).resolve()))
    return dump_config(dataclasses.replace(config, data=data))


def trained_on(config: ExperimentConfig) -> str:
    """What a run's weights learnt from, as their metadata records it: "synthetic" for hrnet's synthetic figures
    (``hrnet demo``: their keypoints on real photos are meaningless, and ``hrnet predict`` says so), else the data
    format and training annotation file."""
    from hrnet.data.synthetic import is_synthetic

    annotations = Path(config.data.root) / config.data.train_annotations
    return SYNTHETIC if is_synthetic(annotations) else f"{config.data.format}: {annotations.resolve()}"


def train(
    config: ExperimentConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    handle_signals: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    config_file: str | Path | None = None,
) -> TrainResult:
    """Train ``config`` into its run folder (module docstring).

    Args:
        config: the experiment.
        resume: continue the run folder's run from its ``last.safetensors``.
        overwrite: delete the run folder's checkpoints, logs and evaluations first (without it, or ``resume``, a
            folder that holds a run is refused).
        handle_signals: the first SIGINT or SIGTERM saves a resumable checkpoint after the step in progress and
            raises ``TrainingInterruptedError``, a second raises ``KeyboardInterrupt`` (process-wide: only the
            command line asks for it, from the main thread).
        progress: show progress bars.
        on_epoch_end: called with each epoch's log row (rank 0).
        config_file: the file ``config`` was read from, which the run never replaces or deletes.

    Returns:
        the run folder, the trained network and the per-epoch history.
    """
    device = resolve_device(config.runtime.device)
    dist = init_distributed(device)
    try:
        trainer = _Trainer(config, device, dist, progress, on_epoch_end, config_file)
        with trainer.stopping_on_signals(handle_signals):
            return trainer.run(resume, overwrite)
    finally:
        shutdown(dist)


class _Trainer:
    def __init__(
        self,
        config: ExperimentConfig,
        device: torch.device,
        dist: Distributed,
        progress: bool,
        on_epoch_end: Callable[[dict[str, Any]], None] | None,
        config_file: str | Path | None = None,
    ):
        self.config = config
        kset_file = config.data.keypoint_set if is_keypoint_set_file(config.data.keypoint_set) else None
        self.inputs = Inputs([config_file, kset_file])
        self.tc = config.train
        self.device = device
        self.dist = dist
        self.progress = progress and dist.is_main
        self.on_epoch_end = on_epoch_end
        self.run_dir = Path(self.tc.out_dir) / self.tc.name
        self.cuda = device.type == "cuda"
        self.amp, self.amp_dtype = training_autocast(config.train.precision, config.runtime.amp, device)
        self.channels_last = config.runtime.channels_last and device.type in ("cuda", "cpu")
        self.writer: Any = None  # TensorBoard, rank 0 only
        self.stop_signal: int | None = None  # the SIGINT/SIGTERM received, when handling them
        self.saved_at: tuple[int, int] | None = None  # (epoch, step) of the checkpoint in the run folder
        # A mid-epoch checkpoint waits for the next batch's loss: (state, buffers, RNG) of the step it is due at.
        self.pending: tuple[TrainingState, dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None
        self.validation_seconds: float | None = None  # the last validation's duration, for the run's time left

    @contextmanager
    def stopping_on_signals(self, enabled: bool) -> Iterator[None]:
        """While the block runs, SIGINT and SIGTERM ask the loop to stop (the second one stops at once)."""
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.getsignal(s) for s in signals}

        def handler(signum: int, frame: Any) -> None:
            if self.stop_signal is not None:
                for s, h in previous.items():
                    signal.signal(s, h)
                raise KeyboardInterrupt
            self.stop_signal = signum
            log.warning(
                "%s: stopping after this step with a resumable checkpoint (press Ctrl-C again to stop at once, "
                "losing the steps since the last checkpoint)", signal.Signals(signum).name,
            )  # fmt: skip

        for s in signals:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # ------------------------------------------------------------------------------------------------ set-up

    def _build(self) -> None:
        tc = self.config.train
        torch.manual_seed(tc.seed)
        train_split = load_split(self.config.data, "train", self.config.model.num_keypoints)
        self.keypoint_set = train_split.keypoint_set
        if self.config.model.num_keypoints == 0:  # data.keypoint_set from_annotations, no count given: the file's
            counted = dataclasses.replace(self.config.model, num_keypoints=self.keypoint_set.num_keypoints)
            self.config = dataclasses.replace(self.config, model=counted)
            log.info("the network predicts the %d keypoints of the annotations' set", counted.num_keypoints)
        for line in self.keypoint_set.derived:
            log.info("keypoint set %r: %s", self.keypoint_set.name, line)
        codec = codec_from_config(
            self.config.model, self.config.data, float32_regions=train_split.format.float32_regions
        )
        self.train_set = TopDownDataset(
            train_split.records,
            self.keypoint_set,
            codec,
            augmentation=Augmentation.from_config(self.config.data),
            seed=tc.seed,
            skip_bad_images=self.config.data.skip_bad_images,
            use_keypoint_weights=tc.use_keypoint_weights,
            size_mismatch=self.config.data.size_mismatch,
        )
        self.evaluator = Evaluator.from_config(self.config, self.device, self.dist, split="val", progress=self.progress)

        model = build_model(self.config.model)
        if tc.pretrained:
            untouched = load_pretrained(model, resolve_weights(tc.pretrained))  # a file, or a name fetched once
            log.info("started from %s (%d tensors kept their initialisation)", tc.pretrained, len(untouched))
        if tc.sync_bn and self.dist.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(self.device)
        check_memory(model, self.config.model, tc.batch_size, self.device, training=True, what="train.batch_size")
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs
        self.model = model
        # No BatchNorm buffers broadcast at every forward: training uses each batch's own statistics, and rank 0's
        # running ones (what it saves) evolve the same either way; ``_sync_buffers`` gives them to every rank
        # before an evaluation or a checkpoint. The broadcast was one more wait a step.
        self.ddp: nn.Module = (
            DistributedDataParallel(model, device_ids=[self.device.index] if self.cuda else None, **_NO_FORWARD_SYNC)
            if self.dist.enabled
            else model
        )
        if tc.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay
            )
        else:
            self.optimizer = torch.optim.SGD(
                model.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay, nesterov=tc.nesterov
            )
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, list(tc.lr_steps), tc.lr_factor)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        self.loss_fn = HeatmapLoss(tc.loss, tc.use_target_weight, tc.ohkm_topk)
        self.state = TrainingState()

    def _resume(self) -> None:
        path = self.run_dir / LAST
        if not path.is_file():
            log.info("no checkpoint at %s: starting a new run", path)
            return
        self.state, saved = load_training_checkpoint(
            path,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            num_keypoints=self.config.model.num_keypoints,
        )
        if saved.get("model") != to_dict(self.config.model):
            raise TrainingError(f"{path}: saved by a run with another model config; use another train.name")
        self.saved_at = (self.state.epoch, self.state.step)
        self._apply_changed_settings(path, saved)
        log.info("resumed %s at epoch %d, step %d", path, self.state.epoch, self.state.step)

    def _apply_changed_settings(self, path: Path, saved: dict[str, Any]) -> None:
        """Settings changed since the checkpoint: applied (and logged), or refused naming them. What the run
        folder's ``config.yaml`` then records is what runs."""
        before, now = _flatten(saved), _flatten(to_dict(self.config))
        changed = [
            k for k in now
            if k in before and before[k] != now[k] and not k.startswith(("model.", "runtime."))
            and k not in ("train.name", "train.out_dir")
        ]  # fmt: skip
        refused = [k for k in changed if k == "train.optimizer" or (k == "train.batch_size" and self.state.step)]
        if refused:
            raise TrainingError(
                f"{path}: cannot resume with a changed {', '.join(refused)} "
                f"({'; '.join(f'{k}: {before[k]!r} → {now[k]!r}' for k in refused)}): the optimizer state or the "
                "position in the epoch depends on it; set it back, or start another run (another train.name)"
            )
        for key in changed:
            if key == "train.pretrained":  # the weights come from the checkpoint: record the start that was used
                self.config = dataclasses.replace(
                    self.config, train=dataclasses.replace(self.config.train, pretrained=before[key])
                )
                self.tc = self.config.train
                log.info("%s is not used when resuming (the weights come from %s)", key, path)
            else:
                log.warning("resuming with a changed setting: %s %r → %r (applied)", key, before[key], now[key])
        if any(k in OPTIMIZER_KEYS for k in changed):
            self._apply_optimizer_settings()

    def _apply_optimizer_settings(self) -> None:
        """Give the optimizer and the scheduler the config's recipe at the current epoch (a checkpoint restores
        the recipe it was saved with)."""
        tc, scheduler = self.tc, self.scheduler
        assert isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR)
        scheduler.milestones = Counter(tc.lr_steps)
        scheduler.gamma = tc.lr_factor
        scheduler.base_lrs = [tc.lr] * len(self.optimizer.param_groups)
        lr = tc.lr * tc.lr_factor ** bisect.bisect_right(sorted(tc.lr_steps), scheduler.last_epoch)
        for group in self.optimizer.param_groups:
            group.update(initial_lr=tc.lr, lr=lr, weight_decay=tc.weight_decay)
            if "momentum" in group:
                group.update(momentum=tc.momentum, nesterov=tc.nesterov)
        scheduler._last_lr = [lr] * len(self.optimizer.param_groups)  # what get_last_lr() reports

    # ---------------------------------------------------------------------------------------------- training

    def _prepare_run_dir(self, resume: bool, overwrite: bool) -> None:
        """Before anything is built (rank 0 holds the folder, found writable, in ``run``): it holds no other run and
        no temporary files left by a killed process. Every process checks (so that all stop together); only rank 0
        writes."""
        self._check_config_file()
        # Any file a run writes (a user's own config.yaml or curves.png too) is kept unless the user says.
        found = [n for n in RUN_FILES if (self.run_dir / n).exists() and self.inputs.find(self.run_dir / n) is None]
        if found and not resume and not overwrite:
            raise TrainingError(
                f"{self.run_dir} already holds a run's files ({', '.join(found)}): continue the run with --resume, "
                "choose another train.name, or start afresh with --overwrite (deletes those files)"
            )
        if not self.dist.is_main:
            return
        if found and not resume:
            for path in [*(self.run_dir / n for n in RUN_FILES), *self.run_dir.glob("eval_epoch[0-9][0-9][0-9]")]:
                if self.inputs.find(path) is not None:  # the config file this run was given stays
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            log.info("--overwrite: deleted the earlier run in %s", self.run_dir)
        for path in remove_stale_temporaries(self.run_dir):
            log.info("removed %s, left by a process killed while writing it", path)

    def _check_config_file(self) -> None:
        """The run's resolved ``config.yaml`` must not replace the config file it was given (``hrnet train
        exp/config.yaml`` with the run folder ``exp/``), unless that file already holds the resolved config."""
        target = self.run_dir / CONFIG
        if self.inputs.find(target) is None:
            return
        if target.read_text(encoding="utf-8", errors="replace") != recorded_config(self.config):
            raise OutputError(
                f"{target} is the config file given, and the run folder {self.run_dir} keeps its resolved config "
                f"under that name: it would replace your file (and its comments); move the config out of "
                f"{self.run_dir}, or choose another train.out_dir or train.name"
            )

    def run(self, resume: bool, overwrite: bool = False) -> TrainResult:
        """Train (``resume``: from the run folder's last checkpoint), the run folder held by this run alone."""
        if not self.dist.is_main:
            return self._run(resume, overwrite)
        with OutputFolder(self.run_dir, command="hrnet train", what="run folder"):  # the lock: one run at a time
            return self._run(resume, overwrite)

    def _run(self, resume: bool, overwrite: bool) -> TrainResult:
        self._prepare_run_dir(resume, overwrite)
        self._build()
        if resume:
            self._resume()
        handler = None
        if self.dist.is_main:
            with _writing(self.run_dir / CONFIG):
                write_text_atomic(self.run_dir / CONFIG, recorded_config(self.config))
                if self.inputs.find(self.run_dir / KEYPOINTS) is None:  # never over the set file the run was given
                    write_text_atomic(self.run_dir / KEYPOINTS, metainfo_text(self.keypoint_set))
            handler = logging.FileHandler(self.run_dir / "train.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            package_logger = logging.getLogger("hrnet")
            package_logger.addHandler(handler)
            previous_level = package_logger.level
            if package_logger.getEffectiveLevel() > logging.INFO:  # the log file gets progress even if the
                package_logger.setLevel(logging.INFO)  # console is quieter
            self.writer = _tensorboard(self.run_dir)
        try:
            for epoch in range(self.state.epoch, self.tc.epochs):
                self._train_epoch(epoch)
                if self._stopping():
                    raise self._interrupted()
        finally:
            if self.writer is not None:
                self.writer.close()
            if handler is not None:
                package_logger.removeHandler(handler)
                package_logger.setLevel(previous_level)
                handler.close()
        barrier(self.dist)
        return TrainResult(self.run_dir, self.model, self.state.history)

    def _train_epoch(self, epoch: int) -> None:
        tc = self.tc
        start = self.state.step if epoch == self.state.epoch else 0
        self.train_set.set_epoch(epoch)
        sampler = EpochSampler(
            len(self.train_set),
            seed=tc.seed,
            epoch=epoch,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            start=start * tc.batch_size,
        )
        loader = DataLoader(
            self.train_set,
            batch_size=tc.batch_size,
            sampler=sampler,
            num_workers=self.config.runtime.num_workers,
            collate_fn=collate,
            pin_memory=self.cuda,
            persistent_workers=False,
            worker_init_fn=_ignore_sigint if self.config.runtime.num_workers else None,
        )
        total_steps = math.ceil(sampler.per_rank / tc.batch_size)
        if tc.max_steps_per_epoch:
            total_steps = min(total_steps, tc.max_steps_per_epoch)
        self.ddp.train()
        bar = tqdm(
            total=total_steps, initial=start, desc=f"epoch {epoch + 1}/{tc.epochs}", disable=not self.progress,
            dynamic_ncols=True, leave=True,
        )  # fmt: skip
        if start == 0:
            self.state.epoch_loss_sum, self.state.epoch_loss_count, self.state.epoch_skipped = 0.0, 0, 0
        self.loss_sum, self.loss_count, samples, skipped = 0.0, 0, 0, []  # this process, since (re)start
        self.pending = None
        t0 = time.perf_counter()
        step = start
        for batch in loader:
            if step >= total_steps:
                break
            skipped += batch.skipped
            if len(batch) > 0:
                loss = self._step(batch, epoch, step)
                self.loss_sum += loss * len(batch)
                self.loss_count += len(batch)
                samples += len(batch) * self.dist.world_size
            step += 1
            self.state.step = step
            self.state.global_step += 1
            seconds = time.perf_counter() - t0
            left = run_seconds_left(tc, epoch, step, total_steps, seconds / (step - start), self.validation_seconds)
            bar.set_postfix(
                loss=f"{self.loss_sum / max(self.loss_count, 1):.3e}",
                lr=f"{self._lr():.1e}",
                samples_s=f"{samples / max(seconds, 1e-9):.1f}",
                run_left=tqdm.format_interval(round(left)),
            )
            bar.update(1)
            if self._stopping():
                bar.close()
                self._sync_buffers()
                self._save_last(skipped=len(skipped))
                raise self._interrupted()
            if tc.checkpoint_every and step % tc.checkpoint_every == 0 and step < total_steps:
                self.pending = (self._state_with_totals(len(skipped)), self._buffers(), rng_states())
        bar.close()
        elapsed = time.perf_counter() - t0
        self._sync_buffers()
        self._report_skipped(epoch, skipped)
        totals = self._state_with_totals(len(skipped))
        if totals.epoch_loss_count == 0:
            raise TrainingError(
                f"epoch {epoch + 1}: nothing was trained: the images of all {totals.epoch_skipped} samples could "
                f"not be read (e.g. {'; '.join(skipped[:2]) or 'see above'}); check data.root and "
                "data.train_images"
            )
        lr = self._lr()
        self.scheduler.step()
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": totals.epoch_loss_sum / totals.epoch_loss_count,
            "lr": lr,
            "samples_per_s": samples / max(elapsed, 1e-9),
            "skipped_images": totals.epoch_skipped,
        }
        if (epoch + 1) % tc.val_every == 0 or epoch + 1 == tc.epochs:
            # The run folder is the run's own (``_prepare_run_dir``): an epoch evaluated again after a resume
            # replaces that epoch's files, whether or not its first evaluation got to record them.
            out = self.run_dir / f"eval_epoch{epoch + 1:03d}"
            started = time.perf_counter()
            metrics = self.evaluator.evaluate(self.model, out_dir=out, overwrite=True)
            self.validation_seconds = time.perf_counter() - started
            row.update({f"val_{k}": v for k, v in metrics.items() if isinstance(v, int | float)})
            self._update_best(epoch, metrics)
        self.state.epoch, self.state.step = epoch + 1, 0
        self.state.epoch_loss_sum, self.state.epoch_loss_count, self.state.epoch_skipped = 0.0, 0, 0
        self.loss_sum, self.loss_count = 0.0, 0
        self.state.history.append(row)
        self._save_last()
        if self.dist.is_main:
            with _writing(self.run_dir / "log.csv"):
                self._write_logs(row)
        if self.on_epoch_end is not None and self.dist.is_main:
            self.on_epoch_end(row)

    def _step(self, batch: Batch, epoch: int, step: int) -> float:
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        images = batch.image.to(self.device, non_blocking=True, memory_format=memory_format)
        target = batch.target.to(self.device, non_blocking=True)
        weight = batch.target_weight.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            output = self.ddp(images)
        loss = self.loss_fn(output.float(), target, weight)  # the loss in fp32 whatever autocast computed in
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingError(
                f"the loss became {value} at epoch {epoch + 1}, step {step + 1}: training diverged; nothing was "
                f"saved after the last good state. {self._good_checkpoint()} Lower train.lr (a change is applied "
                "on --resume) or set train.grad_clip."
            )
        if self.pending is not None:  # the weights of the pending checkpoint just gave a finite loss: save them
            state, buffers, rng = self.pending
            self.pending = None
            self._save_last(state=state, buffers=buffers, rng=rng)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.tc.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return value

    # ------------------------------------------------------------------------------------------ bookkeeping

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's BatchNorm statistics. DDP does not sync them at each forward here (see
        ``_NO_FORWARD_SYNC``), so each rank's running statistics follow its own batches; evaluation (sharded over
        ranks) and the checkpoint (rank 0's) must all use the same network."""
        if self.dist.enabled:
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _update_best(self, epoch: int, metrics: dict[str, Any]) -> None:
        scoring = self.evaluator.scoring
        value = metrics.get(scoring.main)
        if value is None:
            return
        if scoring.improves(value, self.state.best_metric):
            self.state.best_metric, self.state.best_epoch = float(value), epoch + 1
            if self.dist.is_main:
                log.info("epoch %d: best %s so far, %.4g (%s)", epoch + 1, scoring.main, value, scoring.direction)
            if self.dist.is_main:
                with _writing(self.run_dir / BEST):
                    save_weights(self.model, self.run_dir / BEST, metadata=self._weights_metadata())

    def _weights_metadata(self) -> dict[str, str]:
        """What the weights record so that they alone run (``hrnet.models.checkpoint.experiment_for``)."""
        return {
            META_CONFIG: recorded_config(self.config),
            META_KEYPOINT_SET: metainfo_text(self.keypoint_set),
            "trained_on": trained_on(self.config),
        }

    def _stopping(self) -> bool:
        """Whether a signal asked to stop (in any process: they all stop after the same step)."""
        if self.dist.enabled:
            flag = torch.tensor([float(self.stop_signal or 0)], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            self.stop_signal = int(flag.item()) or None
        return self.stop_signal is not None

    def _interrupted(self) -> TrainingInterruptedError:
        number = self.stop_signal or signal.SIGINT
        epoch, step = self.saved_at or (self.state.epoch, self.state.step)
        return TrainingInterruptedError(
            f"stopped by {signal.Signals(number).name} at {_progress_text(epoch, step)}: saved "
            f"{self.run_dir / LAST}; continue with --resume",
            number,
        )

    def _good_checkpoint(self) -> str:
        if self.saved_at is None:
            return "No checkpoint was saved: start again (--overwrite)."
        return (
            f"The last good checkpoint is {self.run_dir / LAST} ({_progress_text(*self.saved_at)}): continue it "
            "with --resume."
        )

    def _buffers(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.named_buffers()}

    def _state_with_totals(self, skipped: int) -> TrainingState:
        """A copy of the run state whose epoch totals include this process's steps (summed over processes)."""
        loss_sum, count, skipped_all = self.loss_sum, float(self.loss_count), float(skipped)
        if self.dist.enabled:
            t = torch.tensor([loss_sum, count, skipped_all], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(t)
            loss_sum, count, skipped_all = (float(v) for v in t)
        s = self.state
        return dataclasses.replace(
            s,
            history=list(s.history),
            epoch_loss_sum=s.epoch_loss_sum + loss_sum,
            epoch_loss_count=s.epoch_loss_count + int(count),
            epoch_skipped=s.epoch_skipped + int(skipped_all),
        )

    def _check_sound(self, state: TrainingState, buffers: dict[str, torch.Tensor] | None) -> None:
        """Refuse to checkpoint weights or optimizer state that are not finite or have diverged."""
        tensors = [*self.model.parameters(), *(buffers or dict(self.model.named_buffers())).values()]
        tensors += [v for st in self.optimizer.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
        if any(t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()) for t in tensors):
            largest = math.inf
        else:
            largest = max(float(p.detach().abs().max()) for p in self.model.parameters())
        if not largest <= DIVERGED:
            raise TrainingError(
                f"at {_progress_text(state.epoch, state.step)} the weights have diverged (largest |w| {largest:.3g}; "
                f"above {DIVERGED:g} or not finite): not saved. {self._good_checkpoint()} Lower train.lr (a change "
                "is applied on --resume) or set train.grad_clip."
            )

    def _save_last(
        self,
        state: TrainingState | None = None,
        buffers: dict[str, torch.Tensor] | None = None,
        rng: dict[str, torch.Tensor] | None = None,
        skipped: int = 0,
    ) -> None:
        """Save the resumable checkpoint: the current state, or (``state``, ``buffers``, ``rng``) snapshotted a step
        earlier. Checked first (``_check_sound``); a failed write leaves the previous checkpoint whole."""
        state = state or (self._state_with_totals(skipped) if self.state.step else self.state)
        self._check_sound(state, buffers)
        if self.dist.is_main:
            model_state = None if buffers is None else {**self.model.state_dict(), **buffers}
            with _writing(self.run_dir / LAST, f"the previous checkpoint is kept. {self._good_checkpoint()}"):
                save_training_checkpoint(
                    self.run_dir / LAST,
                    model=self.model,
                    optimizer=self.optimizer,
                    scheduler=self.scheduler,
                    scaler=self.scaler,
                    state=state,
                    config=to_dict(self.config),
                    model_state=model_state,
                    rng=rng,
                    metadata=self._weights_metadata(),
                )
        self.saved_at = (state.epoch, state.step)
        barrier(self.dist)

    def _report_skipped(self, epoch: int, skipped: list[str]) -> None:
        if skipped and self.dist.is_main:
            log.warning(
                "epoch %d: skipped %d samples whose image could not be read, e.g. %s",
                epoch + 1, len(skipped), "; ".join(skipped[:3]),
            )  # fmt: skip

    def _write_logs(self, row: dict[str, Any]) -> None:
        history = self.state.history
        columns = list(dict.fromkeys(k for r in history for k in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
        write_text_atomic(self.run_dir / "log.csv", buffer.getvalue())
        scoring = self.evaluator.scoring
        plot_curves(
            history, self.run_dir / "curves.png", metric=f"val_{scoring.main}", lower_is_better=scoring.lower_is_better
        )
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float):
                    self.writer.add_scalar(key, value, row["epoch"])
            self.writer.flush()
        log.info(
            "epoch %d: %s",
            row["epoch"],
            ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch" and isinstance(v, float)),
        )


@contextmanager
def _writing(path: Path, note: str = "") -> Iterator[None]:
    """An ``OSError`` while writing ``path`` (read-only, disk full) becomes one ``OutputError`` naming it; ``note``
    is added to it, and to a writer's own ``OutputError`` (a full disk, with the space needed)."""
    try:
        yield
    except OSError as err:
        raise OutputError(f"{path}: cannot write it ({output_problem(err)}){'; ' + note if note else ''}") from None
    except OutputError as err:
        if not note:
            raise
        raise OutputError(f"{err}; {note}") from None


def run_seconds_left(
    tc: TrainConfig,
    epoch: int,
    step: int,
    steps_per_epoch: int,
    step_seconds: float,
    validation_seconds: float | None,
) -> float:
    """The whole run's time left, as the training bar shows it: this epoch's steps after ``step`` (0-based ``epoch``)
    and the later epochs' at ``step_seconds`` each, and the validations still due at ``validation_seconds`` each (the
    last one's duration; None before the first, when they are not counted)."""
    steps = steps_per_epoch - step + (tc.epochs - epoch - 1) * steps_per_epoch
    due = sum(1 for e in range(epoch + 1, tc.epochs + 1) if e % tc.val_every == 0 or e == tc.epochs)
    return steps * step_seconds + due * (validation_seconds or 0.0)


def _progress_text(epoch: int, step: int) -> str:
    """``epoch`` finished epochs and ``step`` steps of the next, as a person says it."""
    return f"epoch {epoch + 1}, step {step}" if step else f"the end of epoch {epoch}"


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config data as ``{"train.lr": 0.001, ...}`` (lists are values)."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}"))
    return flat


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops the run with a checkpoint (a worker
    killed by it would make the main process fail instead)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _tensorboard(run_dir: Path) -> Any:
    # TensorBoard writes through TensorFlow when that is installed (the ``tf`` extra), a slow and large import for
    # nothing; its own switch, the module ``tensorboard.compat.notf``, makes it use its built-in writer (same files).
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but a broken install should not stop training
        log.warning("tensorboard is not importable: no TensorBoard events will be written")
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))
