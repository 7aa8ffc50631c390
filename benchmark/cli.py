"""The ``switchbench`` command line (see ``switchbench --help``): the commands, one module
each in :mod:`switchbench.benchmark.commands`, assembled here; errors turned into exit codes.

Errors are one line on stderr and a non-zero exit, never a traceback (``--debug``, an option
of every command, prints the full traceback before that line). Heavy libraries
(torch, pandas, ...) are imported by the commands that use them, so that ``--help`` and
``--version`` answer at once.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from switchbench.benchmark.commands import COMMANDS
from switchbench.benchmark.commands.options import Help, Parser, examples
from switchbench.errors import SwitchbenchError


def versions() -> str:
    """switchbench and the versions its numbers depend on, read without importing them."""
    from importlib.metadata import PackageNotFoundError, version

    def v(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    deps = ", ".join(f"{n} {v(n)}" for n in ("torch", "numpy", "gymnasium", "neurogym"))
    return f"switchbench {v('switchbench')} ({deps}; python {sys.version.split()[0]})"


class _Version(argparse.Action):
    """``--version``: print :func:`versions` as one line and exit."""

    def __init__(self, option_strings, dest, help=None):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(versions())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (each module of :data:`~switchbench.benchmark.commands.COMMANDS`
    adds its own)."""
    p = Parser(
        prog="switchbench", formatter_class=Help,
        description="A benchmark for task switching in neural networks: paradigms, a model zoo, metrics, "
                    "paper reproductions and a leaderboard. Runs are cached under $SWITCHBENCH_CACHE "
                    "(default .cache/); bad input is one line on stderr and exit code 2.",
        epilog=examples("switchbench list models",
                        "switchbench run --paradigm blocked-linear --model gated-linear --seeds 3",
                        "switchbench reproduce nta-fig2 --jobs 2",
                        "switchbench <command> --help     # every option, its default and an example"))
    p.add_argument("--version", action=_Version,
                   help="print the versions of switchbench, torch, numpy, gymnasium and neurogym, and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"switchbench.benchmark.commands.{name}").add(sub)
    for s in sub.choices.values():
        s.add_argument("--debug", action="store_true",
                       help="on an error, print the full traceback (the model's own code included) before the "
                            "one-line message (default: the one line only)")
    return p


def _one_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 all runs succeeded; 1 some runs failed (reasons listed, the report of
    the others written); 2 bad input (one line on stderr); 130 interrupted. An unexpected
    error is one line too. ``--debug`` (or ``SWITCHBENCH_DEBUG=1``) prints the full traceback
    first, with the exception raised in a model's own code that caused the error."""
    args = build_parser().parse_args(argv)      # --help and --version exit here, before any heavy import
    from switchbench.benchmark.suite import RunsFailed

    debug = args.debug = bool(args.debug or os.environ.get("SWITCHBENCH_DEBUG"))
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.fn(args)
    except RunsFailed as e:
        if debug:
            for trace in e.traces:
                print(trace, end="", file=sys.stderr)
        print(f"switchbench: {e}:", file=sys.stderr)
        for line in e.failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    except SwitchbenchError as e:
        if debug:
            traceback.print_exception(type(e), e, e.__traceback__)
        print(f"switchbench: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("switchbench: interrupted; finished runs are cached and a rerun resumes", file=sys.stderr)
        return 130
    except BrokenPipeError:       # e.g. `switchbench list models | head -1`: the reader left; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except MemoryError:
        print("switchbench: error: out of memory; reduce the sizes of the run (batch_size, block_size, ...)",
              file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - never a traceback for users
        if debug:
            raise
        print(f"switchbench: internal error: {type(e).__name__}: {_one_line(e)} "
              "(please report it; SWITCHBENCH_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
