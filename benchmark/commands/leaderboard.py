"""``switchbench leaderboard``: a suite (default: the full one) in its published and tuned
views, written to ``--out`` (default: results/ for the shipped full suite only, any other
suite's report folder under the cache)."""
from __future__ import annotations

import sys
from pathlib import Path

from switchbench.benchmark.commands.options import add_out, add_run_options, add_suite, command


def add(sub) -> None:
    s = command(sub, "leaderboard", "run a suite (default: full) in its published and tuned views (the full suite "
                                    "into results/)",
                "Run (or load from the cache) a suite, by default the shipped full suite, in two views: published "
                "(every model at its card's defaults) and, given a tuning table (switchbench tune), tuned (each model "
                "at its selected configuration; a table made for another suite is refused). Writes scores.csv, "
                "leaderboard.md, leaderboard.json, figures/ and site/index.html to --out (default: results/ for the "
                "shipped full suite only, any other suite's report folder under the cache).",
                "switchbench leaderboard my_suite.toml --out my_results --jobs 2")
    add_suite(s, optional=True)
    add_out(s)
    s.add_argument("--tuning", default=None, metavar="CSV",
                   help="the tuning table, refused if made for another suite (default: OUT/tuning.csv where it "
                        "exists, else the published view only)")
    add_run_options(s, slurm=True)
    s.set_defaults(fn=main)


def main(args) -> int:
    from switchbench.benchmark.commands.options import run_options
    from switchbench.benchmark.leaderboard import DEFAULT_SUITE, default_out, run_suite

    options = run_options(args)
    suite = args.suite or DEFAULT_SUITE
    out = Path(args.out) if args.out else default_out(suite)
    tuning = Path(args.tuning) if args.tuning else out / "tuning.csv"
    if not args.tuning and not tuning.is_file():
        print(f"switchbench: no {tuning}: the published view only (run `switchbench tune` for the tuned view)",
              file=sys.stderr)
        tuning = None
    run_suite(suite, jobs=args.jobs, backend=args.backend, out=out, tuning=tuning, options=options)
    return 0
