"""Drawings of a network's structure: stages as columns, branches as rows, the exchange units between them, and
the tensor shapes, parameters and multiply-adds of each part.

What is drawn comes from ``hrnet.models.structure`` (the network that would run, built on the meta device and run
once with hooks); this module only lays it out. Every variant is drawn: the official network (Sun et al., CVPR
2019), HRNetV2's head, the TF port and Lite-HRNet (Yu et al., CVPR 2021).

Pictures are matplotlib figures on an Agg canvas (no ``pyplot`` state), saved as SVG (text kept as ``<text>``),
PNG or PDF, written atomically.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

from hrnet.config import ModelConfig
from hrnet.errors import ConfigError, DataError
from hrnet.io.files import write_bytes_atomic
from hrnet.models.structure import Cost, Shape, Step, describe_exchange, describe_network

SUFFIXES = (".svg", ".png", ".pdf")


_INCH = 0.4  # inches per layout unit
_FONT = 7.0  # points
_CHAR = 0.14  # layout units a character takes at _FONT (DejaVu Sans, generous)
_LINE = _FONT / 72 / _INCH * 1.25  # between text lines
_ROW = 1.3  # between branch rows
_BOX_H = 0.9
_FAN_W = 1.0
_DOWN, _UP, _SAME = "#2f64b5", "#d9731a", "#7a7a7a"
_STAGE_FILL = ("#eef3fa", "#f8f1e6")


def _fmt_macs(macs: int) -> str:
    return f"{macs / 1e9:.3f} G" if macs >= 1e8 else f"{macs / 1e6:.2f} M"


def _fmt_shape(shape: Shape) -> str:
    """(N, C, H, W) as "H×W×C"."""
    return f"{shape[2]}×{shape[3]}×{shape[1]}"


def _text_width(lines: Sequence[str]) -> float:
    return _CHAR * max(len(line) for line in lines) + 0.5


class _Sheet:
    """A blank figure whose coordinates are layout units, y growing downwards."""

    def __init__(self) -> None:
        self.figure = Figure()
        FigureCanvasAgg(self.figure)
        self.axes = self.figure.add_axes((0, 0, 1, 1))
        self.axes.set_axis_off()

    def box(
        self,
        x: float,
        y: float,
        width: float,
        lines: Sequence[str],
        *,
        face: str = "white",
        dashed: bool = False,
        height: float | None = None,
    ) -> None:
        """A rounded box centered on (x, y) with one text line per entry (the first in bold); as tall as its lines
        need unless ``height`` is given."""
        height = height or max(_BOX_H, 0.3 + _LINE * len(lines))
        self.axes.add_patch(
            FancyBboxPatch(
                (x - width / 2, y - height / 2),
                width,
                height,
                boxstyle="round,pad=0,rounding_size=0.12",
                facecolor=face,
                edgecolor="#333333",
                linewidth=0.8,
                linestyle="--" if dashed else "-",
                zorder=3,
            )
        )
        self.lines(x, y, lines, zorder=4)

    def lines(self, x: float, y: float, lines: Sequence[str], *, zorder: int = 4, size: float = _FONT) -> None:
        """Text lines centered on (x, y), the first in bold; one text element a line."""
        step = _LINE * size / _FONT
        top = y - step * (len(lines) - 1) / 2
        for k, line in enumerate(lines):
            weight = "bold" if k == 0 else "normal"
            self.text(x, top + k * step, line, size=size, weight=weight, zorder=zorder)

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float = _FONT,
        weight: str = "normal",
        ha: str = "center",
        color: str = "#111111",
        zorder: int = 4,
    ) -> None:
        self.axes.text(x, y, text, fontsize=size, fontweight=weight, ha=ha, va="center", color=color, zorder=zorder)

    def line(self, x0: float, y0: float, x1: float, y1: float, *, color: str = _SAME, width: float = 1.0) -> None:
        self.axes.plot([x0, x1], [y0, y1], color=color, linewidth=width, zorder=1, solid_capstyle="butt")

    def arrow(self, x0: float, y0: float, x1: float, y1: float, *, color: str = _SAME) -> None:
        self.axes.annotate(
            "",
            (x1, y1),
            (x0, y0),
            arrowprops={"arrowstyle": "-|>", "color": color, "linewidth": 0.9, "shrinkA": 0, "shrinkB": 0},
            zorder=2,
        )

    def plus(self, x: float, y: float, radius: float = 0.17) -> None:
        self.axes.add_patch(Circle((x, y), radius, facecolor="white", edgecolor="#333333", linewidth=0.8, zorder=3))
        self.text(x, y, "+", size=_FONT + 1, zorder=4)

    def rect(self, x0: float, y0: float, x1: float, y1: float, face: str) -> None:
        self.axes.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=face, edgecolor="none", zorder=0))

    def finish(self, width: float, height: float) -> Figure:
        self.axes.set_xlim(0, width)
        self.axes.set_ylim(height, 0)
        self.figure.set_size_inches(width * _INCH, height * _INCH)
        return self.figure


_FIRST_SUM_GAP = 0.5  # how far the other outputs' sums sit right of output 1's, where it feeds them


def _fan(sheet: _Sheet, x0: float, x1: float, rows: Sequence[float], outputs: int, *, from_first_sum: bool) -> float:
    """Every branch (rows, left) to each of the first ``outputs`` branches (right), coloured by direction; returns
    the right edge of the sums. ``from_first_sum`` (Lite-HRNet's fusion): branch 1 goes to output 1's sum only,
    twice, and that sum goes, twice, to the other outputs' sums, which sit further right."""
    shift = _FIRST_SUM_GAP if from_first_sum else 0.0
    for i, yi in enumerate(rows):
        for o, yo in enumerate(rows[:outputs]):
            if from_first_sum and i == 0 and o > 0:
                continue
            colour = _DOWN if o > i else _UP if o < i else _SAME
            sheet.line(x0, yi, x1 + (shift if o else 0.0) - 0.17, yo, color=colour, width=0.8)
    for o, yo in enumerate(rows[:outputs]):
        sheet.plus(x1 + (shift if o else 0.0), yo)
    if from_first_sum and outputs:
        sheet.text(x0 + 0.25, rows[0] - 0.17, "×2", size=_FONT - 2, color=_SAME)
        for yo in rows[1:outputs]:
            sheet.line(x1 + 0.12, rows[0] + 0.12, x1 + shift - 0.12, yo - 0.12, color=_DOWN, width=0.8)
        if outputs > 1:
            sheet.text(x1 + shift + 0.05, rows[0] + 0.35, "×2", size=_FONT - 2, color=_DOWN, ha="left")
    return x1 + shift + 0.17


def _step_lines(steps: Sequence[Step]) -> list[str]:
    return [step.text for step in steps]


def draw_overview(cfg: ModelConfig, name: str) -> Figure:
    """The whole network: stem, the stages as columns (every exchange module drawn), branches as rows (each box
    with its feature map H×W×C and residual units; one box across all rows where the units span the branches, as
    Lite-HRNet's weighting blocks), the transitions, the head (Lite-HRNet's iterative head branch by branch) and the
    heatmaps; parameters and multiply-adds beside each part. ``name`` (the preset or config file) heads the title."""
    net = describe_network(cfg)
    sheet = _Sheet()
    num_rows = max(len(stage.modules[0].branches) for stage in net.stages)
    n, c, h, w = net.input_shape
    stem_lines = ["stem", *_step_lines(net.stem), f"→ {_fmt_shape(net.stem[-1].shape)}"] if net.stem else []
    # Row 1 sits low enough that the stem's box stays below the part headers.
    top = max(3.4, 2.35 + (0.3 + _LINE * len(stem_lines)) / 2)
    ys = [top + b * _ROW for b in range(num_rows)]
    bottom = ys[-1] + _BOX_H / 2
    x = 0.3
    ends = [0.0] * num_rows  # where each row's line has got to

    def place(width: float, lines: Sequence[str], row: int = 0, *, dashed: bool = False, face: str = "white") -> None:
        nonlocal x
        sheet.box(x + width / 2, ys[row], width, lines, dashed=dashed, face=face)
        if ends[row]:
            sheet.arrow(ends[row], ys[row], x, ys[row])
        ends[row] = x + width

    def cost_lines(cost: Cost) -> list[str]:
        return [f"{cost.params:,} params", f"{_fmt_macs(cost.macs)} MACs"]

    def part_header(x0: float, x1: float, lines: Sequence[str]) -> None:
        sheet.lines((x0 + x1) / 2, 1.75, lines)

    lines = ["input", f"{h}×{w}×{c}", f"batch {n}"]
    width = _text_width(lines)
    place(width, lines)
    x += width + 0.6

    x_stem = x
    if stem_lines:
        width = _text_width(stem_lines)
        place(width, stem_lines, face="#f4f4f4")
        x += width
        part_header(x_stem, x, ["stem", *cost_lines(net.stem_cost)])
    else:
        lines = ["no stem", "full resolution"]
        width = _text_width(lines)
        place(width, lines, dashed=True)
        x += width
    x += 0.6

    for stage in net.stages:
        x_stage = x
        num_branches = len(stage.modules[0].branches)
        if stage.opening is not None:
            opening = stage.opening
            existing = len(opening.kept)
            new_lines = _step_lines(opening.new)
            labels = [_step_lines(kept) for kept in opening.kept if kept] + [new_lines]
            fan_w = _FAN_W + 0.17 if opening.fuses and existing > 1 else 0.0
            x0 = x
            x1 = x0 + fan_w + max(1.6, 0.9 + max(_text_width(lines) for lines in labels))
            for b, kept in enumerate(opening.kept):
                sheet.line(ends[b], ys[b], x0, ys[b])
                sheet.line(x0 + fan_w, ys[b], x1, ys[b])
                for k, line in enumerate(reversed(_step_lines(kept))):
                    sheet.text(x0 + fan_w + 0.9, ys[b] - 0.25 - k * _LINE, line, size=_FONT - 1, ha="left")
            if fan_w:
                _fan(sheet, x0, x0 + _FAN_W, ys[:existing], existing, from_first_sum=False)
            y_new = ys[existing]
            sheet.arrow(x0 + 0.1, ys[existing - 1], x0 + 0.7, y_new)
            sheet.line(x0 + 0.7, y_new, x1, y_new, color=_DOWN)
            for k, line in enumerate(reversed(new_lines)):
                sheet.text(x0 + 0.9, y_new - 0.25 - k * _LINE, line, size=_FONT - 1, ha="left", color=_DOWN)
            for b in range(num_branches):
                ends[b] = x1
            x = x1 + 0.25
        for m, module in enumerate(stage.modules):
            labels = [[_fmt_shape(br.shape), f"{br.units} × {br.unit}"] for br in module.branches]
            width = max(_text_width(lines) for lines in labels)
            if len(stage.modules) > 1 or stage.number > 1:
                sheet.text(x + width / 2, top - _BOX_H / 2 - 0.3, f"module {m + 1}", size=_FONT - 1)
            if module.spans_branches:  # one box across the rows: every block takes all branches at once
                y_mid = (ys[0] + ys[num_branches - 1]) / 2
                height = ys[num_branches - 1] - ys[0] + _BOX_H
                sheet.box(x + width / 2, y_mid, width, [], height=height)
                for b, lines in enumerate(labels):
                    sheet.lines(x + width / 2, ys[b], lines)
                    if ends[b]:
                        sheet.arrow(ends[b], ys[b], x, ys[b])
                    ends[b] = x + width
            else:
                for b, lines in enumerate(labels):
                    place(width, lines, b)
            x += width
            if module.fused_outputs:
                right = _fan(
                    sheet, x, x + _FAN_W, ys[:num_branches], module.fused_outputs, from_first_sum=module.from_first_sum
                )
                for b in range(num_branches):
                    ends[b] = right if b < module.fused_outputs else 0.0
                x = right
            x += 0.35
        for step in stage.after:
            lines = [*_step_lines([step]), f"→ {_fmt_shape(step.shape)}"]
            width = _text_width(lines)
            place(width, lines, face="#f4f4f4")
            x += width + 0.35
        header = [
            f"stage {stage.number}",
            f"{len(stage.modules)} module{'s' if len(stage.modules) > 1 else ''}, "
            f"{num_branches} branch{'es' if num_branches > 1 else ''}",
            *cost_lines(stage.cost),
        ]
        x_end = max(x - 0.1, x_stage + _text_width(header))
        sheet.rect(x_stage - 0.15, 1.0, x_end, bottom + 0.3, _STAGE_FILL[stage.number % 2])
        part_header(x_stage, x_end, header)
        x = x_end + 0.4

    x_head = x
    # Lite-HRNet's iterative head: a staircase from the lowest branch up, each box fed by the one below it.
    below: tuple[float, float] | None = None  # right end and row of the box just drawn
    for b in reversed(range(len(net.head_branches))):
        steps = net.head_branches[b]
        lines = [_fmt_shape(steps[-1].shape), *_step_lines(steps)]
        width = _text_width(lines)
        place(width, lines, b, face="#f4f4f4")
        if below is not None:
            sheet.arrow(below[0], below[1], x + 0.3, ys[b] + (0.3 + _LINE * len(lines)) / 2, color=_UP)
        below = (x + width, ys[b])
        x += width + 0.35
    if net.head_branches:
        x += 0.25
    k_out, k_h, k_w = net.heatmap_shape[1:]
    lines = ["head", *_step_lines(net.head), *([net.head_note] if net.head_note else [])]
    width = _text_width(lines)
    if not net.head_branches:
        for b in range(1, net.head_inputs):  # HRNetV2's head takes every branch the last stage keeps
            sheet.arrow(ends[b], ys[b], x, ys[0], color=_UP)
    place(width, lines, face="#f4f4f4")
    x += width + 0.6
    lines = ["heatmaps", f"{k_out} × {k_h}×{k_w}", f"(input ÷ {h // k_h})"]
    width = _text_width(lines)
    place(width, lines)
    part_header(x_head, x + width, ["head", *cost_lines(net.head_cost)])
    x += width + 0.3

    variant = {"hrnet": "HRNet, official", "tf_port": "HRNet, TF port", "litehrnet": "Lite-HRNet, as MMPose"}
    title = variant[net.variant]
    if net.head_name == "hrnetv2" and net.variant == "hrnet":
        title = "HRNetV2 (all branches to the head, as MMPose)"
    title = f"{name}: {title}, input {h}×{w}, {k_out} keypoints"
    sheet.text(0.3, 0.45, title, size=_FONT + 3, weight="bold", ha="left")
    y = bottom + 0.9
    legend = [
        (_DOWN, f"down path: {net.down_path} for every factor of 2"),
        (_UP, f"up path: {net.up_path}"),
        (_SAME, "same branch (identity)"),
    ]
    x_legend = 0.3
    for colour, label in legend:
        sheet.line(x_legend, y, x_legend + 0.7, y, color=colour, width=1.5)
        sheet.text(x_legend + 0.85, y, label, ha="left")
        x_legend += 1.3 + _CHAR * len(label)
    sheet.plus(x_legend + 0.2, y)
    sheet.text(x_legend + 0.5, y, "sum of all branches brought to one resolution", ha="left")
    notes = [
        f"activation {net.activation}",
        f"total {net.total.params:,} parameters, {_fmt_macs(net.total.macs)} multiply-adds (as hrnet info)",
        "a stage's figures include the transition that opens it",
        f"boxes: feature map H×W×C after the {'blocks' if net.variant == 'litehrnet' else 'residual units'}",
    ]
    if any(m.from_first_sum for s in net.stages for m in s.modules):
        notes.append(
            "×2: the fusion sums into branch 1 in place (MMPose), so branch 1 counts twice and the other branches "
            "take that sum, twice"
        )
    note_lines = ["   ·   ".join(notes[:4]), *notes[4:]]
    for k, line in enumerate(note_lines):
        sheet.text(0.3, y + 0.55 + k * _LINE, line, ha="left")
    width = max(x, 0.3 + _CHAR * max(len(line) for line in note_lines))
    return sheet.finish(width, y + 1.0 + _LINE * (len(note_lines) - 1))


def parse_detail(text: str) -> tuple[int, int]:
    """``stageN`` or ``stageN.M`` (module M, from 1; default 1) → (N, M); N must be a stage with an exchange."""
    # ASCII digits only: str.isdigit() also takes "²", which int() then refuses.
    match = re.fullmatch(r"(?:stage)?([0-9]+)(?:\.([0-9]+))?", text.strip().lower())
    if match is None:
        raise ConfigError(
            f"--detail {text[:200]!r}: give stageN or stageN.M (module M from 1), e.g. stage3 or stage4.3"
        )
    stage, module = int(match[1]), int(match[2] or 1)
    if stage not in (2, 3, 4):
        raise ConfigError(
            f"--detail {text[:200]!r}: stage {stage} has no exchange unit (stage 1 is a single branch); "
            "choose stage2, stage3 or stage4"
        )
    return stage, module


def draw_exchange(cfg: ModelConfig, name: str, stage: int, module: int = 1) -> Figure:
    """One exchange module of ``stage`` (module ``module``, from 1) with every fusion path drawn separately:
    each step of each path with its output H×W×C, the sums, and where the activation is applied. Lite-HRNet's
    fusion (``Exchange.from_first_sum``) shows branch 1 twice in output 1's sum and that sum in place of branch 1
    in the others."""
    exchange = describe_exchange(cfg, stage, module)
    first_sum = exchange.from_first_sum
    sheet = _Sheet()
    inputs = exchange.inputs
    steps = [p for row in exchange.paths for p in row if p is not None]
    max_steps = max(len(p) for p in steps)
    input_lines = [[f"branch {i + 1}", _fmt_shape(shape)] for i, shape in enumerate(inputs)]
    sum_lines = ["output 1's sum", f"{_fmt_shape(inputs[0])}, before {exchange.after_sum}"]
    input_w = max(_text_width(lines) for lines in [*input_lines, *([sum_lines] if first_sum else [])])
    step_w = max(_text_width([s.title, ", ".join(s.extras)]) for p in steps for s in p)
    row_h, group_gap, top = 1.45, 0.6, 2.4 + (_LINE if first_sum else 0.0)
    x_in = 0.3 + input_w / 2
    x_steps = 0.3 + input_w + 0.5
    x_join = x_steps + max_steps * (step_w + 0.35) + 0.2  # paths run level up to here, then turn to the sum
    x_sum = x_join + 0.9
    act_lines = [exchange.after_sum] if exchange.after_sum else ["no activation", "after the sum"]
    act_w = _text_width(act_lines)
    x_act = x_sum + 0.5 + act_w / 2
    out_w = input_w + 0.6
    x_out = x_act + act_w / 2 + 0.5 + out_w / 2
    y = top
    for o, row in enumerate(exchange.paths):
        ys = [y + i * row_h for i in range(len(inputs))]
        y_mid = (ys[0] + ys[-1]) / 2
        sheet.rect(0.1, ys[0] - row_h / 2, x_out + out_w / 2 + 0.2, ys[-1] + row_h / 2, _STAGE_FILL[o % 2])
        for i, (path, yi) in enumerate(zip(row, ys, strict=True)):
            from_sum = first_sum and i == 0 and o > 0
            sheet.box(x_in, yi, input_w, sum_lines if from_sum else input_lines[i], dashed=from_sum)
            x = x_in + input_w / 2
            colour = _SAME if path is None else _DOWN if i < o else _UP
            if path is None:
                sheet.text((x + x_join) / 2, yi - 0.17, "identity", size=_FONT - 1, color=_SAME)
            if first_sum and i == 0:
                sheet.text(x_join + 0.1, yi - 0.17, "×2", size=_FONT - 1, color=colour, ha="left")
            for k, step in enumerate(path or ()):
                lines = [step.title, *([", ".join(step.extras)] if step.extras else []), f"→ {_fmt_shape(step.shape)}"]
                x_step = x_steps + (step_w + 0.35) * k
                sheet.arrow(x, yi, x_step, yi, color=colour)
                sheet.box(x_step + step_w / 2, yi, step_w, lines)
                x = x_step + step_w
            sheet.line(x, yi, x_join, yi, color=colour)
            sheet.arrow(x_join, yi, x_sum - 0.2, y_mid + (yi - y_mid) * 0.12, color=colour)
        sheet.plus(x_sum, y_mid, radius=0.2)
        sheet.arrow(x_sum + 0.2, y_mid, x_act - act_w / 2, y_mid)
        sheet.box(x_act, y_mid, act_w, act_lines, dashed=exchange.after_sum is None)
        sheet.arrow(x_act + act_w / 2, y_mid, x_out - out_w / 2, y_mid)
        sheet.box(x_out, y_mid, out_w, [f"branch {o + 1} out", _fmt_shape(inputs[o])])
        y = ys[-1] + row_h + group_gap
    units = exchange.units
    outputs = len(exchange.paths)
    title = f"{name}: stage {stage}, exchange module {module} of {exchange.num_modules}"
    sheet.text(0.3, 0.5, title, size=_FONT + 3, weight="bold", ha="left")
    sheet.text(0.3, 1.1, f"inputs: each branch after its {units.units} × {units.unit}", ha="left")
    sheet.text(
        0.3,
        1.1 + _LINE,
        f"{outputs} output{'s' if outputs > 1 else ''}: the sum of all {len(inputs)} branches brought to its "
        "resolution (blue: down, orange: up)",
        ha="left",
    )
    if first_sum:
        sheet.text(
            0.3,
            1.1 + 2 * _LINE,
            "×2: the fusion sums into branch 1 in place (MMPose): branch 1 counts twice in output 1's sum, and the "
            "other outputs take that sum, twice, where they would take branch 1",
            ha="left",
        )
    return sheet.finish(x_out + out_w / 2 + 0.4, y - group_gap - row_h / 2 + 0.3)


# ------------------------------------------------------------------------------------------------------- writing


def check_output(out: str | os.PathLike[str]) -> Path:
    """``out`` as a path to write a drawing to: its suffix must be .svg, .png or .pdf. (What may be replaced there
    is ``hrnet.io.outputs.check_output_file``'s to say.)"""
    path = Path(out)
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"--out {path}: unknown picture type {path.suffix!r}; end the name in .svg, .png or .pdf")
    return path


def save_figure(figure: Figure, out: str | os.PathLike[str]) -> Path:
    """Write ``figure`` as SVG, PNG or PDF (by the suffix) atomically; SVG keeps its text as ``<text>``."""
    path = check_output(out)
    fmt = path.suffix.lower().lstrip(".")
    buffer = io.BytesIO()
    # Fixed ids and no date: drawing the same network twice gives the same file (committed pictures stay stable).
    metadata = {"Date": None} if fmt in ("svg", "pdf") else {}
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "hrnet"}):
        figure.savefig(buffer, format=fmt, dpi=150, metadata=metadata)
    try:
        write_bytes_atomic(path, buffer.getvalue())
    except OSError as error:
        raise DataError(f"{path}: cannot write the drawing ({error.strerror or error})") from None
    return path
