"""What the commands share: the parser class and help layout, argument types, ``--set``
parsing, and the options of every command that runs models, defined once
(:func:`add_run_options`: ``--jobs``, ``--threads``, ``--device``, ``--no-cache``) and read
once into a checked :class:`~switchbench.benchmark.config.RunOptions` (:func:`run_options`)."""
from __future__ import annotations

import argparse
import ast
import sys
from typing import TYPE_CHECKING

from switchbench.errors import SwitchbenchError

if TYPE_CHECKING:
    import pandas as pd

NO_CACHE = "recompute every run, ignoring and overwriting its cache entry (default: load cached runs)"
DEVICES = ("cpu", "cuda", "auto")


class Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr (``PROG: error: ...``) and exit 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message.splitlines()[0] if message else ''} (see {self.prog} --help)",
              file=sys.stderr)
        sys.exit(2)


class Help(argparse.HelpFormatter):
    """Wraps descriptions, keeps the examples' lines as written; a wider option column."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)

    def _fill_text(self, text, width, indent):
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def command(sub, name: str, help: str, description: str, *example_lines: str) -> argparse.ArgumentParser:
    """A command's parser, laid out as every other one."""
    return sub.add_parser(name, help=help, description=description, formatter_class=Help,
                          epilog=examples(*example_lines))


def table(df: pd.DataFrame) -> str:
    """A data frame as plain text, wide enough for every column."""
    import pandas as pd

    with pd.option_context("display.width", 1000, "display.max_columns", 100, "display.float_format", "{:.4g}".format):
        return df.to_string()


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def seed_count(text: str) -> int:
    """An argparse type: a number of seeds, 1..``MAX_SEEDS`` (as in suite files)."""
    from switchbench.benchmark.suite import MAX_SEEDS

    return _at_most(positive_int(text), MAX_SEEDS, text)


def thread_count(text: str) -> int:
    """An argparse type: torch threads per run, 1..``MAX_THREADS``."""
    from switchbench.benchmark.suite import MAX_THREADS

    return _at_most(positive_int(text), MAX_THREADS, text)


def _at_most(value: int, most: int, text: str) -> int:
    if value > most:
        raise argparse.ArgumentTypeError(f"expected an integer in 1..{most}, got {text!r}")
    return value


def parse_set(items: list[str]) -> dict:
    """``key=value`` pairs; a value is a Python literal if it parses as one, else a string.

    >>> parse_set(["tau_c=0.1", "schedule=[0, 1, 0]", "teachers=iid", "lam=nan"])
    {'tau_c': 0.1, 'schedule': [0, 1, 0], 'teachers': 'iid', 'lam': nan}
    """
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SwitchbenchError(f"--set expects key=value, got {item!r}")
        if raw.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
            out[key] = float(raw)      # not Python literals, but floats all the same
            continue
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            out[key] = raw
    return out


def add_set(s, help: str) -> None:
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_suite(s, *, optional: bool = False) -> None:
    """The ``SUITE`` positional of the commands that run a suite: a shipped suite's name or a
    suite file; ``optional``: None when left out (the command then runs the full suite,
    :data:`~switchbench.benchmark.leaderboard.DEFAULT_SUITE`)."""
    what = "a shipped suite's name (quick, full) or a suite file (TOML)"
    if optional:
        s.add_argument("suite", nargs="?", default=None, metavar="SUITE", help=f"{what} (default: full)")
    else:
        s.add_argument("suite", metavar="SUITE", help=what)


def add_out(s) -> None:
    """``--out`` of the commands that write a suite's results (leaderboard, tune)."""
    s.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the results and tuning.csv (default: results for the shipped full suite, else "
                        "the suite's report folder under the cache, .cache/reports/NAME)")


def add_run_options(s, *, slurm: bool = False) -> None:
    """The options of every command that runs models: ``--jobs``, ``--threads``, ``--device``,
    ``--no-cache`` (``slurm``: the command also has ``--backend``, which ``--jobs`` and
    ``--threads`` apply to)."""
    if slurm:
        s.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                       help="runs in parallel: local worker processes, or at most N Slurm array tasks at once "
                            "(default: 1)")
        s.add_argument("--backend", choices=("local", "slurm"), default="local",
                       help="local processes or a Slurm job array through submitit (default: local)")
    else:
        s.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                       help="runs in parallel (worker processes, one torch thread each unless --threads; "
                            "default: 1)")
    s.add_argument("--threads", type=thread_count, default=1, metavar="N",
                   help="torch threads (and Slurm CPUs) per run, 1..1024 (default: 1)" if slurm else
                   "torch threads per run, 1..1024 (default: 1)")
    s.add_argument("--device", choices=DEVICES, default="cpu",
                   help="where the run loop computes: cpu, cuda, or auto (cuda where available) (default: cpu)")
    s.add_argument("--no-cache", action="store_true", help=NO_CACHE)


def run_options(args):
    """The checked :class:`~switchbench.benchmark.config.RunOptions` of a command's
    arguments: bad ones (``--device cuda`` where torch finds no CUDA device) fail here,
    before any run is loaded or started."""
    from switchbench.benchmark.config import RunOptions

    return RunOptions(device=args.device, threads=args.threads, cache="refresh" if args.no_cache else True)


def run_inputs(args) -> tuple:
    """What the commands that run with ``--set`` (run, reproduce) read first, checked before
    anything runs or loads: their :func:`run_options` and their ``--set`` overrides
    (:func:`parse_set`)."""
    return run_options(args), parse_set(args.set)
