"""How long `hrnet predict photo.jpg` takes from the shell, against what it cannot avoid: PyTorch's import and the
network's own time (opening the weights, the flip test's two passes), all in fresh processes, in interleaved rounds.

Run: ``.venv/bin/python bench/bench_startup.py`` on an idle machine. It writes an HRNet-W32 weights file (random
values, with its config recorded, as ``hrnet train`` writes them) and a 640 × 480 JPEG into a temporary folder, then
times, in each round:

- ``hrnet --help``;
- ``python -c "import torch"`` (PyTorch's import, with the interpreter's teardown of it);
- ``hrnet predict photo.jpg --weights W32 --detector none`` (one person box: the whole image);
- the same command ended by the interpreter's ordinary teardown (``sys.exit(main())``) instead of
  ``hrnet.system.exit_now``;
- what the command cannot do without, alone: PyTorch's import, the network opened from the file and its two passes
  (no command line, image or output); that process also times the network's own parts: ``open_backend`` on the
  file, then the first flip-test pair of passes on one 256 × 192 crop.

It also lists, from one ``python -X importtime`` run of the command, what its imports cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import provenance, write_results

# What the command cannot do without, alone: PyTorch, the network opened from the file and its two passes, with the
# command's end (no teardown) but no command line, image or output. Timed from outside, and it reports its parts.
NETWORK = """
import json, sys, time
from hrnet.system import exit_now, keep_freed_memory, limit_openmp_spinning
limit_openmp_spinning(); keep_freed_memory()
import torch
from hrnet.models.checkpoint import experiment_for
from hrnet.runtime.backends import open_backend
config = experiment_for(sys.argv[1])
start = time.perf_counter()
net = open_backend(config.model, sys.argv[1], batch_size=config.test.batch_size)
opened = time.perf_counter()
crop = torch.randn(1, 3, *config.model.input_size, generator=torch.Generator().manual_seed(0))
net(crop), net(crop.flip(3))
print(json.dumps({"open": opened - start, "passes": time.perf_counter() - opened}))
exit_now(0)
"""
TEARDOWN = "import sys; from hrnet.cli import main; sys.exit(main(sys.argv[1:]))"
WITH_TEARDOWN = "the same, with the interpreter's teardown"
FLOOR_NAME = "PyTorch, the network opened and its two passes, alone"
PARTS = {"open": "the network: opening the weights file", "passes": "the network: the flip test's two passes"}


def make_inputs(folder: Path) -> tuple[Path, Path]:
    import cv2
    import numpy as np
    import torch

    from hrnet.config import load_config
    from hrnet.engine.train import recorded_config
    from hrnet.models.checkpoint import META_CONFIG, save_weights
    from hrnet.models.hrnet import build_model

    config = load_config("coco/w32_256x192")
    torch.manual_seed(0)
    weights = folder / "w32.safetensors"
    save_weights(build_model(config.model), weights, {META_CONFIG: recorded_config(config)})
    photo = folder / "photo.jpg"
    cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8))
    return weights, photo


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def import_costs(command: list[str]) -> dict[str, float]:
    """Seconds of imports in one ``-X importtime`` run of ``command``: ``import torch`` as a whole (what PyTorch
    imports with it included), then the rest by top-level package (their own times)."""
    done = subprocess.run([sys.executable, "-X", "importtime", *command], capture_output=True, text=True, check=True)
    rows = []  # (depth, own seconds, cumulative seconds, name), a module after those it imported
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own, cumulative, name = line.removeprefix("import time:").split("|")
            rows.append((len(name) - len(name.lstrip()), int(own) / 1e6, int(cumulative) / 1e6, name.strip()))
    groups = {"torch (import torch as a whole)": 0.0}
    inside_torch: int | None = None  # the depth of `torch` while reading back through what it imported
    for depth, own, cumulative, name in reversed(rows):
        if inside_torch is not None and depth > inside_torch:
            continue
        inside_torch = None
        if name == "torch":
            groups["torch (import torch as a whole)"] += cumulative
            inside_torch = depth
            continue
        top = name.split(".")[0]
        group = top if top in ("hrnet", "numpy", "cv2") else "other"
        groups[group] = groups.get(group, 0.0) + own
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds")
    args = parser.parse_args()
    report = provenance()
    python = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        weights, photo = make_inputs(Path(folder))
        out = Path(folder) / "out"
        predict = ["predict", str(photo), "--weights", str(weights), "--detector", "none", "--out", str(out)]
        commands = {
            "hrnet --help": [python, "-m", "hrnet", "--help"],
            "python -c 'import torch'": [python, "-c", "import torch"],
            "hrnet predict photo.jpg": [python, "-m", "hrnet", *predict, "--overwrite"],
            WITH_TEARDOWN: [python, "-c", TEARDOWN, *predict, "--overwrite"],
            FLOOR_NAME: [python, "-c", NETWORK, str(weights)],
        }
        times: dict[str, list[float]] = {name: [] for name in [*commands, *PARTS]}
        for _ in range(args.rounds):
            for name, command in commands.items():
                seconds, printed = timed(command)
                times[name].append(seconds)
                if name == FLOOR_NAME:
                    for part, inside in json.loads(printed).items():
                        times[part].append(inside)
        imports = import_costs(["-m", "hrnet", *predict, "--overwrite"])
    median = {name: statistics.median(values) for name, values in times.items()}
    command, torch_import = median["hrnet predict photo.jpg"], median["python -c 'import torch'"]
    strict = torch_import + 2 * median["passes"]
    loose = torch_import + 2 * (median["open"] + median["passes"])
    report.update(rounds=args.rounds, seconds=times, median=median, imports=imports)
    lines = [
        "# Start-up: `hrnet predict photo.jpg` against PyTorch's import and the network's own time",
        f"HRNet-W32 from a weights file, `--detector none`, a 640 × 480 JPEG; each a fresh process, medians of "
        f"{args.rounds} interleaved rounds (seconds).",
        "",
        "| what | median | min | max |",
        "| --- | --- | --- | --- |",
        *[
            f"| {PARTS.get(name, name)} | {median[name]:.2f} | {min(values):.2f} | {max(values):.2f} |"
            for name, values in times.items()
        ],
        "",
        f"- The teardown the command skips: {median[WITH_TEARDOWN] - command:.2f} s (with it the command takes "
        f"{median[WITH_TEARDOWN] / command:.2f}× as long).",
        f"- Import + 2 × the passes = {strict:.2f} s: the command takes {command / strict:.2f}× that, and what it "
        f"cannot do without, alone, {median[FLOOR_NAME] / strict:.2f}×.",
        f"- Import + 2 × (opening + passes) = {loose:.2f} s: the command takes {command / loose:.2f}× that.",
        "",
        "Imports of the command (one `python -X importtime` run, which slows them; seconds):",
        "",
        "| group | seconds |",
        "| --- | --- |",
        *[f"| {group} | {seconds:.2f} |" for group, seconds in imports.items()],
    ]
    write_results("startup", report, lines)


if __name__ == "__main__":
    main()
