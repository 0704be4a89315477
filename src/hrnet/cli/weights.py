"""``hrnet weights list`` and ``hrnet weights get``: the registered weights files (options and what they
call)."""

from __future__ import annotations

import argparse
from typing import Any

from hrnet.errors import ConfigError


def cmd_weights_list(args: argparse.Namespace) -> int:
    from hrnet.hub.registry import DECODINGS, REGISTRY, cache_dir, cache_status

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
    from hrnet.hub.registry import REGISTRY, fetch, verify

    missing = [name for name in args.names if name not in REGISTRY]
    if missing:
        raise ConfigError(f"unknown weights name(s) {', '.join(missing)}; `hrnet weights list` shows the known ones")
    for name in args.names:
        entry = REGISTRY[name]
        path = fetch(entry, force=args.force)
        print(f"{name}: {path} (SHA-256 {verify(path, entry)}; checked against: {entry.verified_by})")
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
    p = weights_sub.add_parser("list", help="the known names, what they are, and which are cached")
    p.set_defaults(func=cmd_weights_list)
    p = weights_sub.add_parser("get", help="download (or check) files into the cache")
    p.add_argument("names", nargs="+", metavar="NAME", help="names from `hrnet weights list`")
    p.add_argument(
        "--force", action="store_true", help="download again even when the file is in the cache (a damaged copy)"
    )
    p.set_defaults(func=cmd_weights_get)
