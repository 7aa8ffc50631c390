"""``switchbench leaderboard``: a suite (default: the full one) in its published and tuned
views, written to ``--out`` (default: results/)."""
from __future__ import annotations

import sys
from pathlib import Path

from switchbench.benchmark.commands.options import add_run_options, command


def add(sub) -> None:
    s = command(sub, "leaderboard", "run a suite (default: full) in its published and tuned views into results/",
                "Run (or load from the cache) a suite, by default the shipped full suite, in two views: published "
                "(every model at its card's defaults) and, given a tuning table (switchbench tune), tuned (each model "
                "at its selected configuration). Writes scores.csv, leaderboard.md, leaderboard.json, figures/ and "
                "site/index.html to --out.",
                "switchbench leaderboard my_suite.toml --out my_results --jobs 2")
    s.add_argument("suite", nargs="?", default=None, metavar="SUITE",
                   help="a shipped suite's name or a suite file (TOML) (default: full)")
    s.add_argument("--out", default="results", metavar="DIR",
                   help="folder for the results and tuning.csv (default: results)")
    s.add_argument("--tuning", default=None, metavar="CSV",
                   help="the tuning table (default: OUT/tuning.csv where it exists, else the published view only)")
    add_run_options(s, slurm=True)
    s.set_defaults(fn=main)


def main(args) -> int:
    from switchbench.benchmark.commands.options import run_options
    from switchbench.benchmark.leaderboard import DEFAULT_SUITE, run_suite

    options = run_options(args)
    tuning = Path(args.tuning) if args.tuning else Path(args.out) / "tuning.csv"
    if not args.tuning and not tuning.is_file():
        print(f"switchbench: no {tuning}: the published view only (run `switchbench tune` for the tuned view)",
              file=sys.stderr)
        tuning = None
    run_suite(args.suite or DEFAULT_SUITE, jobs=args.jobs, backend=args.backend, out=Path(args.out), tuning=tuning,
              options=options)
    return 0
