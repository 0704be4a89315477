"""Training curves: the losses and the validation metric of a run, by epoch, as a PNG.

Drawn with matplotlib's object API on an Agg canvas, so calling this never switches the global backend or touches
``pyplot`` state.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hrnet.errors import DataError
from hrnet.io.images import write_file


def _number(row: Mapping[str, object], key: str, index: int) -> float | None:
    """A float from a log row; None when the column is missing, None, empty or NaN (e.g. no validation run)."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"training log row {index}: {key}={value!r} is not a number") from None
    return None if math.isnan(number) else number


def plot_curves(
    rows: Sequence[Mapping[str, object]],
    out_path: str | os.PathLike[str],
    metric: str = "val_ap",
    *,
    lower_is_better: bool = False,
) -> Path:
    """Training curves as a PNG (conventionally ``curves.png`` in the run folder); returns its path.

    ``rows`` are per-epoch log rows as a CSV log holds them (numbers or their strings): ``epoch``,
    ``train_loss``, ``metric`` (default ``val_ap``; missing, empty or None on epochs without validation) and
    ``lr``. The top plot shows the loss, the bottom one the validation metric; a dashed line marks each epoch where
    the learning rate changed. The best value marked is the largest, or the smallest when ``lower_is_better``
    (an error such as NME).
    """
    if not rows:
        raise DataError(f"{out_path}: no training log rows to plot")
    epochs, losses, metrics, rates = [], [], [], []
    for i, row in enumerate(rows):
        epoch = _number(row, "epoch", i)
        if epoch is None:
            raise DataError(f"training log row {i}: the epoch is missing")
        epochs.append(epoch)
        losses.append(_number(row, "train_loss", i))
        metrics.append(_number(row, metric, i))
        rates.append(_number(row, "lr", i))

    figure = Figure(figsize=(8, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, metric_axes = figure.subplots(2, 1, sharex=True)
    loss_points = [(e, v) for e, v in zip(epochs, losses, strict=True) if v is not None]
    if loss_points:
        loss_axes.plot(*zip(*loss_points, strict=True), color="tab:blue", marker="o", label="train loss (epoch)")
    loss_axes.set_ylabel("loss")
    loss_axes.grid(alpha=0.3)

    metric_points = [(e, v) for e, v in zip(epochs, metrics, strict=True) if v is not None]
    if metric_points:
        best_epoch, best = (min if lower_is_better else max)(metric_points, key=lambda p: p[1])
        metric_axes.plot(*zip(*metric_points, strict=True), color="tab:orange", marker="o", label=metric)
        metric_axes.annotate(
            f"best {best:.4g} (epoch {best_epoch:g})",
            (best_epoch, best),
            textcoords="offset points",
            xytext=(0, -14),
            ha="center",
            fontsize=8,
        )
    else:
        metric_axes.text(0.5, 0.5, f"no {metric} values yet", transform=metric_axes.transAxes, ha="center")
    metric_axes.set_ylabel(metric)
    metric_axes.set_xlabel("epoch")
    metric_axes.grid(alpha=0.3)

    previous = None
    for epoch, rate in zip(epochs, rates, strict=True):
        if rate is not None and previous is not None and not math.isclose(rate, previous):
            for axes in (loss_axes, metric_axes):
                axes.axvline(epoch, color="grey", linestyle="--", linewidth=0.8)
            loss_axes.annotate(
                f"lr {rate:.2g}",
                (epoch, 1.0),
                xycoords=("data", "axes fraction"),
                textcoords="offset points",
                xytext=(3, -3),
                fontsize=7,
                va="top",
                color="grey",
            )
        previous = rate if rate is not None else previous
    for axes in (loss_axes, metric_axes):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="best", fontsize=8)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path = Path(out_path)
    write_file(path, buffer.getvalue())
    return path
