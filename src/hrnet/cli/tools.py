"""The other subcommands: ``demo``, ``info``, ``draw``, ``train``, ``data``, ``weights`` and ``convert`` (their
options and what they call)."""

from __future__ import annotations

import argparse
import glob
import logging
from pathlib import Path
from typing import Any

from hrnet.cli.options import (
    add_config,
    add_input_size,
    add_overwrite,
    experiment,
    nonnegative_int,
    positive_int,
    resized,
    whole_number,
)
from hrnet.config import MODEL_PRESETS, load_config
from hrnet.errors import ConfigError
from hrnet.outputs import OutputFolder, check_output_file, record_output

log = logging.getLogger("hrnet")
# The names under which commands record the files they write (``hrnet.outputs``); eval's and export's are theirs.
DRAW, SHOW, SYNTH, CONVERT = "hrnet draw", "hrnet data show", "hrnet data synth", "hrnet convert"


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from hrnet.models.complexity import count_macs, count_parameters
    from hrnet.models.hrnet import build_model

    model_cfg = resized(experiment(args.config, args.set).model, args.input_size)
    with torch.device("meta"):  # shapes only: no memory is allocated and no arithmetic is done
        model = build_model(model_cfg)
    macs = count_macs(model, model_cfg.input_size)
    h, w = model_cfg.input_size
    hh, hw = model_cfg.heatmap_size
    lines = [
        f"model              {args.config} (variant {model_cfg.variant})",
        f"parameters         {count_parameters(model):,}",
        f"multiply-adds      {macs / 1e9:.3f} G  ({macs / 2**30:.2f} G in units of 2^30, the official 'GFLOPs')",
        f"input              3 × {h} × {w}",
        f"heatmaps           {model_cfg.num_keypoints} × {hh} × {hw}",
    ]
    for s, stage in enumerate(model_cfg.stages, start=1):
        widths = "/".join(str(c) for c in stage.num_channels)
        lines.append(
            f"stage {s}            {stage.num_branches} branch{'es' if stage.num_branches > 1 else ''}, "
            f"widths {widths}, {stage.num_modules} module(s) × {'/'.join(map(str, stage.num_blocks))} "
            f"{stage.block} blocks"
        )
    if args.layers:
        from hrnet.models.complexity import layer_table

        lines += ["", layer_table(model, model_cfg.input_size, args.batch)]
    print("\n".join(lines))
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    from hrnet.draw import check_output, draw_exchange, draw_overview, parse_detail, save_figure

    out = check_output(check_output_file(args.out, command=DRAW, inputs=[args.config], overwrite=args.overwrite))
    model_cfg = resized(experiment(args.config, args.set).model, args.input_size)
    name = Path(args.config).name
    if args.detail:
        figure = draw_exchange(model_cfg, name, *parse_detail(args.detail))
    else:
        figure = draw_overview(model_cfg, name)
    print(f"wrote {save_figure(figure, out)}")
    record_output(out, DRAW)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from hrnet.engine.train import train

    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run and --overwrite deletes it: give one of them")
    config = experiment(args.config, args.set)
    config_file = Path(args.config) if Path(args.config).is_file() else None
    result = train(config, resume=args.resume, overwrite=args.overwrite, handle_signals=True, config_file=config_file)
    print(f"run folder: {result.run_dir}")
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hrnet.data.synthetic import synthetic_files, write_synthetic

    with OutputFolder(args.out, command=SYNTH, overwrite=args.overwrite) as folder:
        for path in synthetic_files(folder.path, args.train, args.val):
            folder.claim(path, f"a file of the data set ({path.parent.name})")
        with tqdm(total=args.train + args.val, desc="synthetic images", unit="img") as bar:
            files = write_synthetic(
                folder.path,
                args.train,
                args.val,
                args.seed,
                progress=lambda n: bar.update(1),
                written_file=folder.record,
            )
    for split, path in files.items():
        print(f"{split}: {path}")
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    from hrnet.data.show import show_samples
    from hrnet.visualize import write_image

    out = check_output_file(args.out, command=SHOW, inputs=[args.config], overwrite=args.overwrite)
    config = experiment(args.config, args.set)
    path = write_image(out, show_samples(config, args.split, args.n, args.seed))
    record_output(path, SHOW)
    print(f"wrote {path}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from hrnet.models.tf_checkpoint import CONFIG_FILE, WEIGHTS_FILE, convert_tf_port

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


def cmd_weights_list(args: argparse.Namespace) -> int:
    from hrnet.weights import DECODINGS, REGISTRY, cache_dir, cache_status

    print(f"cache: {cache_dir()}  ($HRNET_CACHE to move it)")
    for kind in ("pose", "detector"):
        print(f"\n{kind} weights" + (" (--weights NAME)" if kind == "pose" else " (--detector NAME)"))
        for entry in REGISTRY.values():
            if entry.kind != kind:
                continue
            size = "x".join(map(str, entry.input_size)) if entry.input_size else "?"
            what = [f"{entry.about}: {entry.accuracy}", f"input {size}"]
            if entry.decoding:
                what.append(f"decoding {DECODINGS[entry.decoding]}")
            how = ([f"config {entry.config}"] if entry.config else []) + [f"checksum: {entry.verified_by}"]
            print(f"  {entry.name:36s} {cache_status(entry)}".rstrip())
            print("      " + "; ".join(what))
            print("      " + "; ".join(how))
    return 0


def cmd_weights_get(args: argparse.Namespace) -> int:
    from hrnet.weights import REGISTRY, fetch, verify

    missing = [name for name in args.names if name not in REGISTRY]
    if missing:
        raise ConfigError(f"unknown weights name(s) {', '.join(missing)}; `hrnet weights list` shows the known ones")
    for name in args.names:
        entry = REGISTRY[name]
        path = fetch(entry, force=args.force)
        print(f"{name}: {path} (SHA-256 {verify(path, entry)}; checked against: {entry.verified_by})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hrnet.demo import DEMO_CONFIG, run_demo

    run_demo(load_config(args.config or DEMO_CONFIG, args.set))
    return 0


def add_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="synthetic data → train a small HRNet → evaluate → pictures (runs/demo/)")
    add_config(p, "demo experiment (default: demo, shipped with the package)", required=False)
    p.set_defaults(func=cmd_demo, runs_network=True)


def add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="parameters, multiply-adds, sizes and branch widths of a network")
    add_config(p, f"a model preset ({', '.join(MODEL_PRESETS)}) or an experiment YAML file")
    add_input_size(p, "count at this input size")
    p.add_argument(
        "--layers", action="store_true", help="also list every block: output shape, parameters, MACs (default: off)"
    )
    p.add_argument(
        "--batch", type=positive_int, default=1, help="batch size of the --layers shapes and counts (default 1)"
    )
    p.set_defaults(func=cmd_info)


def add_draw(sub: Any) -> None:
    p = sub.add_parser(
        "draw",
        help="draw a network's structure (stages, branches, exchange units, shapes) as SVG, PNG or PDF",
        description="The picture is made from the network that would run: it is built on the meta device and "
        "run once with hooks for the shapes, parameters and multiply-adds.",
    )
    add_config(p, f"a model preset ({', '.join(MODEL_PRESETS)}) or an experiment YAML file")
    p.add_argument("--out", required=True, help="the picture to write: .svg, .png or .pdf (required)")
    add_input_size(p, "draw at this input size")
    p.add_argument(
        "--detail",
        metavar="stageN[.M]",
        help="draw exchange module M (default 1) of stage N instead (default: the whole network)",
    )
    add_overwrite(p, "an existing --out file that hrnet draw did not write")
    p.set_defaults(func=cmd_draw)


def add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a network (torchrun --nproc_per_node=N -m hrnet train ... for DDP)")
    add_config(p, "experiment YAML file (or a model preset with the default COCO recipe)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last.safetensors")
    p.add_argument("--overwrite", action="store_true", help="delete the folder's earlier run and start anew")
    p.set_defaults(func=cmd_train, runs_network=True)


def add_data(sub: Any) -> None:
    data = sub.add_parser("data", help="data sets: make the synthetic one, look at training samples")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("synth", help="write the built-in synthetic COCO-format data set")
    p.add_argument("--out", required=True, help="output folder (annotations/, images/)")
    p.add_argument("--train", type=nonnegative_int, default=4000, help="training images (default 4000)")
    p.add_argument("--val", type=nonnegative_int, default=500, help="validation images (default 500)")
    p.add_argument(
        "--seed", type=whole_number(0, 2**32 - 1), default=0, help="random seed of the drawn persons (default 0)"
    )
    add_overwrite(p, "existing files in the --out folder that hrnet data synth did not write")
    p.set_defaults(func=cmd_data_synth)
    p = data_sub.add_parser("show", help="draw augmented samples with their skeletons and heatmaps")
    add_config(p, "experiment YAML file")
    p.add_argument("--split", choices=("train", "val"), default="train", help="which split (default train)")
    p.add_argument("-n", type=positive_int, default=16, help="how many samples (default 16)")
    p.add_argument("--out", default="samples.png", help="output picture (default samples.png)")
    p.add_argument(
        "--seed",
        type=whole_number(0, 2**32 - 1),
        default=0,
        help="random seed of the samples and augmentations (default 0)",
    )
    add_overwrite(p, "an existing --out file that hrnet data show did not write")
    p.set_defaults(func=cmd_data_show)


def add_weights(sub: Any) -> None:
    weights = sub.add_parser(
        "weights",
        help="public pose and person-detector weights by name: list them, download them into the cache",
        description="Files go to $HRNET_CACHE or ~/.cache/hrnet, verified against the published checksum where one "
        "is published, resumed when a download was cut off. Any command's --weights NAME / --detector NAME "
        "downloads on first use.",
    )
    weights_sub = weights.add_subparsers(dest="weights_command", required=True)
    p = weights_sub.add_parser("list", help="the known names, what they are, and which are cached")
    p.set_defaults(func=cmd_weights_list)
    p = weights_sub.add_parser("get", help="download (or check) files into the cache")
    p.add_argument("names", nargs="+", metavar="NAME", help="names from `hrnet weights list`")
    p.add_argument(
        "--force", action="store_true", help="download again even when the file is in the cache (a damaged copy)"
    )
    p.set_defaults(func=cmd_weights_get)


def add_convert(sub: Any) -> None:
    p = sub.add_parser(
        "convert",
        help="convert another implementation's checkpoint: DIR/model.safetensors + DIR/config.yaml",
        description="tf_port: a TensorFlow checkpoint of VXallset/deep-high-resolution-net.TensorFlow (needs the "
        "'tf' extra). The config's model section is read from the checkpoint, with batch_norm: batch as the port ran.",
    )
    p.add_argument("source", choices=("tf_port",), help="which implementation wrote the checkpoint")
    p.add_argument("checkpoint", help="the checkpoint's prefix, e.g. models/model.ckpt (for model.ckpt.index, ...)")
    p.add_argument("--out", required=True, help="output folder")
    add_overwrite(p, "an existing model.safetensors or config.yaml in --out that hrnet convert did not write")
    p.set_defaults(func=cmd_convert)
