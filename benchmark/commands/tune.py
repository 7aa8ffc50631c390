"""``switchbench tune``: every (paradigm, model) of a suite (default: the full one) at the
configurations of its card's tunable grid on validation seeds, the same budget each; the
selection written to ``OUT/tuning.csv``."""
from __future__ import annotations

from pathlib import Path

from switchbench.benchmark.commands.options import add_run_options, command, positive_int


def add(sub) -> None:
    s = command(sub, "tune", "tune every (paradigm, model) of a suite (default: full) on validation seeds, the same "
                             "budget each; writes tuning.csv",
                "Run every (paradigm, model) of a suite at each configuration of its card's tunable grid (at most "
                "--budget of them) on validation seeds disjoint from the scored ones, select the best by the primary "
                "metric (ties: final loss) and write OUT/tuning.csv, which switchbench leaderboard reads.",
                "switchbench tune --jobs 2")
    s.add_argument("suite", nargs="?", default=None, metavar="SUITE",
                   help="a shipped suite's name or a suite file (TOML) (default: full)")
    s.add_argument("--out", default="results", metavar="DIR",
                   help="folder for the results and tuning.csv (default: results)")
    s.add_argument("--budget", type=positive_int, default=None, metavar="N",
                   help="configurations per (paradigm, model) (default: the suite's [tuning] budget, else 3)")
    s.add_argument("--seeds", type=positive_int, default=None, metavar="N",
                   help="validation seeds per run (default: the suite's [tuning] seeds, else 2)")
    add_run_options(s, slurm=True)
    s.set_defaults(fn=main)


def main(args) -> int:
    from switchbench.benchmark.commands.options import run_options
    from switchbench.benchmark.leaderboard import DEFAULT_SUITE
    from switchbench.benchmark.tuning import run_tuning

    run_tuning(args.suite or DEFAULT_SUITE, Path(args.out), jobs=args.jobs, backend=args.backend,
               budget=args.budget, seeds=args.seeds, options=run_options(args))
    return 0
