"""``switchbench suite``: every (paradigm, model, seed) of a suite, resumed from the run
cache; its ranked tables printed and its report written under the cache."""
from __future__ import annotations

from switchbench.benchmark.commands.options import add_run_options, add_suite, command


def add(sub) -> None:
    s = command(sub, "suite", "run a suite (a shipped one by name: quick, full; or a TOML file), print its ranked "
                              "tables, report under the cache",
                "Run every (paradigm, model, seed) of a suite, resuming from the run cache, print each paradigm's "
                "ranked table and write the report (tables, figures, web page) to .cache/reports/SUITE/ (never "
                "results/). The shipped suites (quick, full) are found by name from any folder.",
                "switchbench suite quick --jobs 2")
    add_suite(s)
    add_run_options(s, slurm=True)
    s.set_defaults(fn=main)


def main(args) -> int:
    from switchbench.benchmark.commands.options import run_options
    from switchbench.benchmark.leaderboard import run_suite

    run_suite(args.suite, jobs=args.jobs, backend=args.backend, options=run_options(args))
    return 0
