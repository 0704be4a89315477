"""``hrnet export``, ``bench``, ``info``, ``draw`` and ``convert``: a network as a file, a speed, a summary and a
drawing (options and what they call)."""

from __future__ import annotations

import argparse
import glob
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrnet.cli.options import (
    CONFIG_HELP,
    add_config,
    add_input_size,
    add_overwrite,
    add_runtime,
    batch_size,
    comma_list,
    experiment_and_keypoints,
    positive_int,
    positive_number,
    resized,
    whole_number,
)
from hrnet.config import ModelConfig, load_config
from hrnet.errors import ConfigError

if TYPE_CHECKING:
    from hrnet.models.structure import Network

DRAW, CONVERT = "hrnet draw", "hrnet convert"  # as the output guard names them in messages


def cmd_bench(args: argparse.Namespace) -> int:
    from hrnet.runtime.backends import BACKENDS
    from hrnet.runtime.bench import measure_backends, precision_backends

    model_cfg = experiment_and_keypoints(args)[0].model
    if args.precision:
        if args.backend:
            raise ConfigError("give --precision (compare precisions) or --backend (compare backends), not both")
        return _bench_precisions(args, model_cfg)
    # Without --backend: the network as trained, the fast path, and ONNX Runtime if installed.
    names = comma_list(args.backend, "--backend") if args.backend else ["pytorch", *precision_backends(["fp32"])]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ConfigError(f"--backend {', '.join(unknown)}: not one of {', '.join(BACKENDS)}")
    rows, _ = measure_backends(
        model_cfg,
        names,
        args.weights,
        batch=args.batch,
        device=args.device or "auto",
        rounds=args.rounds,
        seconds=args.seconds,
        compile=args.compile,
    )
    _bench_header(args, model_cfg)
    first = rows[0].images_per_s
    for row in rows:
        about = BACKENDS[row.backend].about
        print(f"  {row.backend:17s} {row.images_per_s:9.2f} images/s  {row.images_per_s / first:5.2f}×  ({about})")
    return 0


def _bench_header(args: argparse.Namespace, model_cfg: ModelConfig) -> None:
    import torch

    h, w = model_cfg.input_size
    print(f"{args.config or args.weights}, input {h}×{w}, batch {args.batch}, {torch.get_num_threads()} CPU threads")


def _bench_precisions(args: argparse.Namespace, model_cfg: ModelConfig) -> int:
    from hrnet.runtime.backends import parse_precisions
    from hrnet.runtime.bench import measure_precisions
    from hrnet.runtime.precision import cpu_support, precision_notice

    precisions = parse_precisions(args.precision)
    if args.device not in (None, "auto", "cpu"):
        raise ConfigError("--precision compares CPU precisions: leave --device out or give cpu")
    if args.compile:
        raise ConfigError("--compile times the fast path against the others: give it without --precision")
    support = cpu_support()
    result = measure_precisions(
        model_cfg, precisions, args.weights, batch=args.batch, rounds=args.rounds, seconds=args.seconds
    )
    _bench_header(args, model_cfg)
    print(f"CPU: {support.describe()}")
    for precision in precisions:
        if notice := precision_notice(precision, "cpu", support):
            print(f"note: {notice}")
    print(
        f"fp32 limit: {result.limit:.2f} images/s = peak {result.peak_flops / 1e9:.0f} GFLOP/s (2048³ 1×1 conv, "
        f"{result.peak_backend}) ÷ (2 × {result.multiply_accumulates / 1e9:.3f} G multiply-adds)"
    )
    for row in result.rows:
        multiple = row.images_per_s / result.limit
        print(f"  {row.backend:17s} {row.images_per_s:9.2f} images/s  {multiple:.2f}× fp32 limit")
    return 0


def add_bench(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="images/s of a network here: each backend or precision, timed together",
        description="Images/s of a network on this machine, each backend (or precision) timed in the same "
        "interleaved rounds; figures are medians. It takes: opening each backend (ONNX Runtime's: the network "
        "exported first), two warm-up calls of each, then about ROUNDS × SECONDS of each (default 3 × 2 s; with "
        "--precision also the machine's fp32 peak); a network slower than SECONDS a call runs once a round, in "
        "fewer rounds (at least one). The rounds' time is logged before they start.",
    )
    add_config(
        p,
        f"{CONFIG_HELP} (default: --weights')",
        required=False,
    )
    add_runtime(
        p,
        weights_required=False,
        weights_help="weights to load (default: a random initialisation; the speed does not depend on them); a file "
        "or a name from `hrnet weights list`",
        compare=True,
    )
    p.add_argument("--batch", type=batch_size, default=16, help="persons a forward pass (default 16)")
    p.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="interleaved timing rounds, fewer where a round takes over SECONDS a backend (default 3)",
    )
    p.add_argument(
        "--seconds",
        type=positive_number,
        default=2.0,
        help="seconds per backend in a round, one call at least (default 2)",
    )
    p.set_defaults(func=cmd_bench, runs_network=True)


def cmd_export(args: argparse.Namespace) -> int:
    from hrnet.hub.registry import resolve_weights
    from hrnet.runtime.export import export_from_config

    config, keypoint_set = experiment_and_keypoints(args)
    if args.calibration and args.precision != "int8":
        raise ConfigError("--calibration is for --precision int8")
    calibration = load_config(args.calibration, args.set) if args.calibration else None
    path = export_from_config(
        config,
        None if args.weights is None else resolve_weights(args.weights),  # a registered name: fetched
        args.out,
        opset=args.opset,
        precision=args.precision,
        calibration=calibration,
        calibration_name=args.calibration or args.config,
        calibration_crops=args.calibration_crops,
        inputs=[args.config, args.calibration],
        overwrite=args.overwrite,
        keypoint_set=keypoint_set,
    )
    kind = "int8 (calibrated), checked against the fp32 graph" if args.precision == "int8" else "checked"
    print(f"wrote {path} (input 'image' N×3×{config.model.input_size[0]}×{config.model.input_size[1]}, "
          f"output 'heatmaps'; {kind} against ONNX Runtime)")  # fmt: skip
    return 0


def add_export(sub: Any) -> None:
    from hrnet.runtime.backends import EXPORT_PRECISIONS
    from hrnet.runtime.onnx import MAX_OPSET, MIN_OPSET, OPSET

    p = sub.add_parser("export", help="export to ONNX (dynamic batch), verified against ONNX Runtime")
    add_config(p, f"{CONFIG_HELP} (default: the one --weights record)", required=False)
    p.add_argument("--weights", help="weights to export (default: random initialisation)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument(
        "--opset", type=whole_number(MIN_OPSET, MAX_OPSET), default=OPSET, help=f"ONNX opset version (default {OPSET})"
    )
    p.add_argument(
        "--precision", choices=EXPORT_PRECISIONS, default="fp32", help="int8: static quantization (default fp32)"
    )
    p.add_argument("--calibration", metavar="CONFIG", help="int8: experiment whose training crops calibrate")
    p.add_argument(
        "--calibration-crops", type=positive_int, default=320, help="int8: crops to calibrate on (default 320)"
    )
    add_overwrite(p, "an existing --out file that is not an earlier export (never the weights or a config)")
    p.set_defaults(func=cmd_export)


def cmd_info(args: argparse.Namespace) -> int:
    """Figures read from the network that would run (``hrnet.models.structure``, as ``hrnet draw``)."""
    from hrnet.models.structure import describe_network

    model_cfg = resized(load_config(args.config, args.set).model, args.input_size)
    net = describe_network(model_cfg)
    macs = net.total.macs
    h, w = model_cfg.input_size
    hh, hw = model_cfg.heatmap_size
    lines = [
        f"model              {args.config} (variant {model_cfg.variant}, head {model_cfg.head})",
        f"parameters         {net.total.params:,}",
        f"multiply-adds      {macs / 1e9:.3f} G  "
        + (
            "(the Lite-HRNet paper's 'GFLOPs', in units of 10^9)"
            if model_cfg.variant == "litehrnet"
            else f"({macs / 2**30:.2f} G in units of 2^30, the official 'GFLOPs')"
        ),
        f"input              3 × {h} × {w}",
        f"heatmaps           {model_cfg.num_keypoints} × {hh} × {hw}",
    ]
    lines += [*_stage_lines(model_cfg), f"head               {_head_text(net)}"]
    if args.layers:
        import torch

        from hrnet.models.complexity import layer_table
        from hrnet.models.hrnet import build_model

        with torch.device("meta"):  # shapes only: no memory is allocated and no arithmetic is done
            model = build_model(model_cfg)
        lines += ["", layer_table(model, model_cfg.input_size, args.batch)]
    print("\n".join(lines))
    return 0


def _stage_lines(model_cfg: ModelConfig) -> list[str]:
    """One line per stage: branches, widths, modules and blocks (Lite-HRNet's stem then its stages 2 to 4, as the
    paper numbers them)."""
    spec = model_cfg.litehrnet
    if spec is None:
        return [
            f"stage {s}            {stage.num_branches} branch{'es' if stage.num_branches > 1 else ''}, widths "
            f"{'/'.join(map(str, stage.num_channels))}, {stage.num_modules} module(s) × "
            f"{'/'.join(map(str, stage.num_blocks))} {stage.block} blocks"
            for s, stage in enumerate(model_cfg.stages, start=1)
        ]
    blocks = {"lite": "conditional channel weighting", "naive": "shuffle"}
    lines = [f"stem               {spec.stem_channels} → {spec.stem_out_channels} channels, ¼ resolution"]
    for s, (widths, modules, count, kind) in enumerate(
        zip(spec.num_channels, spec.num_modules, spec.num_blocks, spec.module_type, strict=True), start=2
    ):
        lines.append(
            f"stage {s}            {len(widths)} branches, widths {'/'.join(map(str, widths))}, {modules} module(s) × "
            f"{count} {blocks[kind]} blocks"
        )
    return lines


def _head_text(net: Network) -> str:
    """The head on one line: its steps (HRNetV2's concatenation among them), Lite-HRNet's iterative head as the
    widths of its steps from the lowest branch up."""
    steps = [step.text for step in net.head]
    if net.head_branches:
        lowest = net.head_branches[-1]
        widths = ", ".join(f"{b[0].shape[1]}→{b[-1].shape[1]}" for b in reversed(net.head_branches))
        each = " + ".join(step.title.split(",")[0] for step in lowest)
        steps.insert(
            0,
            f"iterative, branch {len(net.head_branches)} up to 1, each plus the one below (bilinear) through {each}: "
            f"{widths}",
        )
    return "; ".join([*steps, *([net.head_note] if net.head_note else [])])


def add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="parameters, multiply-adds, sizes and branch widths of a network")
    add_config(p, CONFIG_HELP)
    add_input_size(p, "count at this input size")
    p.add_argument(
        "--layers", action="store_true", help="also list every block: output shape, parameters, MACs (default: off)"
    )
    p.add_argument(
        "--batch", type=batch_size, default=1, help="batch size of the --layers shapes and counts (default 1)"
    )
    p.set_defaults(func=cmd_info)


def cmd_draw(args: argparse.Namespace) -> int:
    """The picture is made from the network that would run: it is built on the meta device and run once with hooks
    for the shapes, parameters and multiply-adds."""
    from hrnet.drawing.network import check_output, draw_exchange, draw_overview, parse_detail, save_figure
    from hrnet.io.outputs import check_output_file, record_output

    out = check_output(check_output_file(args.out, command=DRAW, inputs=[args.config], overwrite=args.overwrite))
    model_cfg = resized(load_config(args.config, args.set).model, args.input_size)
    name = Path(args.config).name
    if args.detail:
        figure = draw_exchange(model_cfg, name, *parse_detail(args.detail))
    else:
        figure = draw_overview(model_cfg, name)
    print(f"wrote {save_figure(figure, out)}")
    record_output(out)
    return 0


def add_draw(sub: Any) -> None:
    p = sub.add_parser(
        "draw",
        help="draw a network's structure (stages, branches, exchange units, shapes) as SVG, PNG or PDF",
        description=cmd_draw.__doc__,
    )
    add_config(p, CONFIG_HELP)
    p.add_argument("--out", required=True, help="the picture to write: .svg, .png or .pdf (required)")
    add_input_size(p, "draw at this input size")
    p.add_argument(
        "--detail",
        metavar="stageN[.M]",
        help="draw exchange module M (default 1) of stage N instead (default: the whole network)",
    )
    add_overwrite(p, "an existing --out file that hrnet draw did not write")
    p.set_defaults(func=cmd_draw)


def cmd_convert(args: argparse.Namespace) -> int:
    """tf_port: a TensorFlow checkpoint of VXallset/deep-high-resolution-net.TensorFlow (needs the 'tf' extra). The
    config's model section is read from the checkpoint, with batch_norm: batch as the port ran."""
    from hrnet.io.outputs import OutputFolder
    from hrnet.tf_port.checkpoint import CONFIG_FILE, WEIGHTS_FILE, convert_tf_port

    prefix = Path(args.checkpoint)  # model.ckpt (or model.ckpt.index): its files are model.ckpt.*
    stem = glob.escape(prefix.name.removesuffix(".index"))
    checkpoint_files = list(prefix.parent.glob(f"{stem}.*")) if prefix.parent.is_dir() else []
    with OutputFolder(args.out, command=CONVERT, inputs=checkpoint_files, overwrite=args.overwrite) as folder:
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            folder.claim(folder.path / name, f"the converted {name}")
        result = convert_tf_port(args.checkpoint, folder.path)
        folder.record(result.weights)
        folder.record(result.config)
    widths = "/".join(map(str, result.model.stages[-1].num_channels))
    print(
        f"wrote {result.weights} ({result.num_tensors} tensors; widths {widths}, {result.model.num_keypoints} "
        f"keypoints, batch_norm {result.model.batch_norm}) and {result.config}"
    )
    return 0


def add_convert(sub: Any) -> None:
    p = sub.add_parser(
        "convert",
        help="convert another implementation's checkpoint: DIR/model.safetensors + DIR/config.yaml",
        description=cmd_convert.__doc__,
    )
    p.add_argument("source", choices=("tf_port",), help="which implementation wrote the checkpoint")
    p.add_argument("checkpoint", help="the checkpoint's prefix, e.g. models/model.ckpt (for model.ckpt.index, ...)")
    p.add_argument("--out", required=True, help="output folder")
    add_overwrite(p, "an existing model.safetensors or config.yaml in --out that hrnet convert did not write")
    p.set_defaults(func=cmd_convert)
