"""The ``hrnet`` command: ``demo | train | eval | predict | serve | export | info | bench | draw | data | convert |
weights``.

Each group of subcommands parses its arguments in a module of its own (``predict``: predict and serve; ``train``:
train, eval, demo and data; ``model``: export, bench, info, draw and convert; ``weights``; ``options``: what they
share) and calls one function of the package;
errors of our own types are printed as one clear line (no traceback) with exit status 2. The commands that run a
network first turn on the process-wide CPU settings of ``hrnet.system``: freed memory kept for reuse
(``HRNET_KEEP_FREED_MEMORY=0`` turns it off) and OpenCV in the calling thread. A command owns its process,
library calls never change it. For the same reason the command sets ``GOMP_SPINCOUNT`` before anything loads
PyTorch (``hrnet.system.limit_openmp_spinning``).
"""

from __future__ import annotations

# PyTorch's OpenMP runtime reads its settings once, when it is loaded: so here, before the imports below load it.
from hrnet.system import limit_openmp_spinning

limit_openmp_spinning()

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from hrnet.cli import model, predict, train, weights
from hrnet.cli.options import Parser, resolve_config
from hrnet.errors import HrnetError, TrainingInterruptedError
from hrnet.io.files import is_full_disk


class _Version(argparse.Action):
    """``--version``, reading the installed version only when asked (importlib.metadata is a slow import)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib.metadata import version

        print(f"hrnet {version('hrnet')}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="hrnet", description="HRNet 2D human pose estimation: train, evaluate, predict, export, draw.")
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        train.add_demo,
        model.add_info,
        model.add_draw,
        model.add_bench,
        train.add_train,
        train.add_eval,
        predict.add_predict,
        predict.add_serve,
        model.add_export,
        train.add_data,
        weights.add_weights,
        model.add_convert,
    ):
        add(sub)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line → arguments, with ``args.config`` resolved (usage errors exit with status 2)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Inputs may come before, between and after options (argparse takes a list of positionals only once);
        # after "--" every word is an input, a file named "-dash.jpg" too.
        cut = extra.index("--") if "--" in extra else len(extra)
        before, after = extra[:cut], extra[cut + 1 :]
        if not hasattr(args, "inputs") or any(word.startswith("-") for word in before):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.inputs += [*before, *after]
    resolve_config(parser, args)
    return args


def run() -> None:
    """The ``hrnet`` program (and ``python -m hrnet``): ``main`` on the command line, then the process ends at once
    (``hrnet.system.exit_now``) instead of tearing PyTorch down object by object."""
    from hrnet.system import exit_now

    exit_now(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from hrnet.system import LOG_FORMAT

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
    # TensorBoard's writer (training) and `hrnet convert` import TensorFlow when the `tf` extra is installed; its
    # C++ start-up notices (CPU features, absl) are noise on a command's console. Errors still raise in Python.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if getattr(args, "runs_network", False):
        from hrnet.system import keep_freed_memory, one_opencv_thread

        keep_freed_memory()
        one_opencv_thread()
    try:
        status = int(args.func(args))
        if sys.stdout is not None:  # None: started with its standard output closed (`hrnet ... >&-`)
            sys.stdout.flush()  # a reader that went away shows here, not in the interpreter's last flush
        return status
    except BrokenPipeError:  # `hrnet weights list | head -1`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except TrainingInterruptedError as err:  # a checkpoint was saved: the run continues with --resume
        print(f"hrnet {args.command}: {err}", file=sys.stderr)
        return 128 + err.signal
    except HrnetError as err:
        print(f"hrnet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if not is_full_disk(err):
            raise
        # Every output is written to a temporary file and renamed when whole: nothing partial is left, and a file
        # it would have replaced (a checkpoint) is as it was. Writers that know the path and the size needed say
        # so themselves (``hrnet.io.files.no_space_error``); this is any other write.
        where = f" writing {err.filename}" if err.filename else ""
        print(
            f"hrnet {args.command}: error: no space left on the device{where} ({err.strerror}); nothing partial was "
            "kept and earlier files are as they were: free some space (or choose another --out) and run it again",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        # Files are written whole or not at all, so nothing half-written is left behind.
        hint = " (continue with --resume)" if args.command == "train" else ""
        print(f"hrnet {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
