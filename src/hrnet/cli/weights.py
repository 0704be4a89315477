"""``hrnet weights list`` and ``hrnet weights get``: the registered weights files (options and what they
call)."""

from __future__ import annotations

import argparse
import functools
from typing import TYPE_CHECKING, Any

from hrnet.errors import ConfigError
from hrnet.keypoints import TASKS, KeypointSet, load_keypoint_set

if TYPE_CHECKING:
    from hrnet.hub.registry import WeightsFile


def cmd_weights_list(args: argparse.Namespace) -> int:
    from hrnet.hub.registry import REGISTRY, cache_dir

    print(f"cache: {cache_dir()}  ($HRNET_CACHE to move it)")
    poses = [entry for entry in REGISTRY.values() if entry.kind == "pose"]
    tasks = [args.task] if args.task else list(TASKS)
    shown = [entry for entry in poses if _keypoint_set(entry.config).task in tasks]
    width = max((len(entry.name) for entry in REGISTRY.values()), default=0)
    print(
        f"\npose weights (--weights NAME, or NAME as the CONFIG of a command): {len(shown)}, by their keypoints' task"
    )
    for task in tasks:
        group = [entry for entry in shown if _keypoint_set(entry.config).task == task]
        if group:
            sets = ", ".join(dict.fromkeys(_keypoint_set(entry.config).name for entry in group))
            print(f"\n{task}: {len(group)} (keypoint sets: {sets})")
        elif args.task:
            print(f"\n{task}: none registered")
        for entry in group:
            _print_entry(entry, width)
    if args.task is None:
        print("\ndetectors (--detector NAME)")
        for entry in REGISTRY.values():
            if entry.kind == "detector":
                _print_entry(entry, width)
    return 0


@functools.cache
def _keypoint_set(config: str | None) -> KeypointSet:
    """The keypoint set that a registered pose file's shipped config names: its task groups the list."""
    from hrnet.config import load_config

    return load_keypoint_set(load_config(config).data.keypoint_set)


def _print_entry(entry: WeightsFile, width: int) -> None:
    """Three lines: the name (padded to ``width``) and whether it is cached; what it is and its published figure;
    how it runs and is checked."""
    from hrnet.hub.registry import DECODINGS, cache_status

    size = "x".join(map(str, entry.input_size)) if entry.input_size else "?"
    what = [f"{entry.about}: {entry.accuracy}", f"input {size}"]
    if entry.decoding:
        what.append(f"decoding {DECODINGS[entry.decoding]}")
    how = [f"config {entry.config}, keypoints {_keypoint_set(entry.config).name}"] if entry.config else []
    print(f"  {entry.name:{width}s}  {cache_status(entry)}".rstrip())
    print("      " + "; ".join(what))
    print("      " + "; ".join([*how, f"checksum: {entry.verified_by}"]))


def cmd_weights_get(args: argparse.Namespace) -> int:
    from hrnet.hub.registry import REGISTRY, fetch, verify

    missing = [name for name in args.names if name not in REGISTRY]
    if missing:
        shown = ", ".join(repr(name[:60]) for name in missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ConfigError(f"unknown weights name(s) {shown}; `hrnet weights list` shows the known ones")
    for name in args.names:
        entry = REGISTRY[name]
        path = fetch(entry, force=args.force)
        digest = verify(path, entry, rehash=True)  # the command that vouches for a file hashes it whole
        print(f"{name}: {path} (SHA-256 {digest}; checked against: {entry.verified_by})")
    return 0


def add_weights(sub: Any) -> None:
    weights = sub.add_parser(
        "weights",
        help="public pose and person-detector weights by name: list them, download them into the cache",
        description="Files go to $HRNET_CACHE or the user's cache folder (~/.cache/hrnet on Linux), verified against "
        "the published checksum where one is published. Any command's --weights NAME / --detector NAME downloads on "
        "first use.",
    )
    weights_sub = weights.add_subparsers(dest="weights_command", required=True)
    p = weights_sub.add_parser(
        "list",
        help="the known names, what they are, and which are cached",
        description="Pose weights are grouped by the task of their keypoints (the keypoint set of their config); "
        "each shows its published figure and the data set it was measured on, its input size, decoding, config and "
        "checksum. Nothing is downloaded.",
    )
    p.add_argument("--task", choices=TASKS, help="show only the pose weights of this task (and no detectors)")
    p.set_defaults(func=cmd_weights_list)
    p = weights_sub.add_parser("get", help="download (or check) files into the cache")
    p.add_argument("names", nargs="+", metavar="NAME", help="names from `hrnet weights list`")
    p.add_argument(
        "--force", action="store_true", help="download again even when the file is in the cache (a damaged copy)"
    )
    p.set_defaults(func=cmd_weights_get)
