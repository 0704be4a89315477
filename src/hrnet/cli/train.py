"""``hrnet train``, ``eval``, ``demo`` and ``data``: training, evaluation and the data they read (options and
what they call)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hrnet.cli.options import (
    CONFIG_HELP,
    add_config,
    add_overwrite,
    add_runtime,
    experiment_and_keypoints,
    nonnegative_int,
    positive_int,
    whole_number,
)
from hrnet.config import load_config
from hrnet.errors import ConfigError

SHOW, SYNTH = "hrnet data show", "hrnet data synth"  # as the output guard names them in messages


def cmd_eval(args: argparse.Namespace) -> int:
    from hrnet.engine.evaluate import COMMAND, Evaluator
    from hrnet.io.outputs import OutputFolder
    from hrnet.runtime.backends import open_backend

    config, _ = experiment_and_keypoints(args)
    out = Path(args.out) if args.out else Path(config.train.out_dir) / config.train.name / "eval"
    what = "--out folder" if args.out else "evaluation folder"
    # Taken before the long evaluation; the split's files are added to the inputs by the evaluator.
    with OutputFolder(
        out, command=COMMAND, inputs=[args.config, args.boxes], overwrite=args.overwrite, what=what
    ) as folder:
        # fp32 on PyTorch evaluates the network as trained (BatchNorm unfolded), as the official test does.
        network = open_backend(
            config.model,
            args.weights,
            precision=args.precision,
            backend=args.backend,
            device=args.device or config.runtime.device,
            compile=args.compile,
            reference=True,
        )
        if network.weights is not None:
            folder.protect([network.weights])
        evaluator = Evaluator.from_config(config, network.device, boxes=args.boxes)
        metrics = evaluator.evaluate(network, folder, draw=args.draw)
    summary = metrics.pop("summary", None)
    print(summary or "\n".join(f"{k:14s} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    scoring = evaluator.scoring
    print(f"main metric: {scoring.main} {metrics[scoring.main]:.4f} ({scoring.direction})")
    print(f"results in {out}")
    return 0


def add_eval(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate weights on the validation split (the task's metrics: COCO AP/AR; PCK, AUC, EPE for hands; "
        "NME for faces; PCKh for MPII)",
    )
    add_config(p, f"{CONFIG_HELP} (default: the one --weights record)", required=False)
    add_runtime(p)
    p.add_argument("--boxes", help="COCO detection-results JSON of person boxes (default: ground-truth boxes)")
    p.add_argument(
        "--draw", type=nonnegative_int, default=0, metavar="N", help="also draw N images: prediction | truth (0)"
    )
    p.add_argument("--out", help="output folder (default: <train.out_dir>/<train.name>/eval)")
    add_overwrite(p, "existing files in the output folder that hrnet eval did not write (never an input)")
    p.set_defaults(func=cmd_eval, runs_network=True)


def cmd_train(args: argparse.Namespace) -> int:
    from hrnet.engine.train import train

    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run and --overwrite deletes it: give one of them")
    config = load_config(args.config, args.set)
    config_file = Path(args.config) if Path(args.config).is_file() else None
    result = train(config, resume=args.resume, overwrite=args.overwrite, handle_signals=True, config_file=config_file)
    print(f"run folder: {result.run_dir}")
    return 0


def add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a network (torchrun --nproc_per_node=N -m hrnet train ... for DDP)")
    add_config(p, f"{CONFIG_HELP}; a model preset trains with the default COCO recipe")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last.safetensors")
    p.add_argument("--overwrite", action="store_true", help="delete the folder's earlier run and start anew")
    p.set_defaults(func=cmd_train, runs_network=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from hrnet.apps.demo import DEMO_CONFIG, run_demo

    run_demo(load_config(args.config or DEMO_CONFIG, args.set))
    return 0


def add_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="synthetic data → train a small HRNet → evaluate → pictures (runs/demo/)")
    add_config(p, "demo experiment (default: demo, shipped with the package)", required=False)
    p.set_defaults(func=cmd_demo, runs_network=True)


def cmd_data_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hrnet.data.synthetic import synthetic_files, write_synthetic
    from hrnet.io.outputs import OutputFolder

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
    from hrnet.data.sources import SPLITS, split_paths
    from hrnet.drawing.samples import show_samples
    from hrnet.io.images import write_image
    from hrnet.io.outputs import check_output_file, record_output

    config = load_config(args.config, args.set)
    inputs: list[str | Path] = [args.config]
    for split in SPLITS:  # the data's files, and any image of its folders, are never replaced (--overwrite or not)
        annotations, images = split_paths(config.data, split)
        inputs.append(annotations)
        if Path(args.out).resolve().is_relative_to(images.resolve()):
            inputs.append(args.out)
    out = check_output_file(args.out, command=SHOW, inputs=inputs, overwrite=args.overwrite)
    path = write_image(out, show_samples(config, args.split, args.n, args.seed))
    record_output(path)
    print(f"wrote {path}")
    return 0


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
