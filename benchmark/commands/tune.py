"""``switchbench tune``: every (paradigm, model) of a suite (default: the full one) at the
configurations of its card's tunable grid on validation seeds, the same budget each; the
selection written to ``OUT/tuning.csv``."""
from __future__ import annotations

from pathlib import Path

from switchbench.benchmark.commands.options import add_out, add_run_options, add_suite, command, positive_int, seed_count


def add(sub) -> None:
    s = command(sub, "tune", "tune every (paradigm, model) of a suite (default: full) on validation seeds, the same "
                             "budget each; writes tuning.csv",
                "Run every (paradigm, model) of a suite at each configuration of its card's tunable grid (at most "
                "--budget of them) on validation seeds disjoint from the scored ones, select the best by the primary "
                "metric (ties: final loss) and write OUT/tuning.csv, which switchbench leaderboard reads.",
                "switchbench tune --jobs 2")
    add_suite(s, optional=True)
    add_out(s)
    s.add_argument("--budget", type=positive_int, default=None, metavar="N",
                   help="configurations per (paradigm, model) (default: the suite's [tuning] budget, else 3)")
    s.add_argument("--seeds", type=seed_count, default=None, metavar="N",
                   help="validation seeds per run (default: the suite's [tuning] seeds, else 2)")
    add_run_options(s, slurm=True)
    s.set_defaults(fn=main)


def main(args) -> int:
    """Tune a suite, write ``OUT/tuning.csv`` and print the selections."""
    from switchbench.benchmark.commands.options import run_options
    from switchbench.benchmark.leaderboard import DEFAULT_SUITE, default_out, load_suite, protocol_text
    from switchbench.benchmark.metrics import PRIMARY, TIEBREAK
    from switchbench.benchmark.reporting import fmt
    from switchbench.benchmark.suite import check_out
    from switchbench.benchmark.tuning import tune
    from switchbench.cache import write_atomic

    options = run_options(args)
    name = args.suite or DEFAULT_SUITE
    suite = load_suite(name)
    out = check_out(Path(args.out) if args.out else default_out(name))
    table = tune(suite, budget=args.budget, seeds=args.seeds, jobs=args.jobs, backend=args.backend, options=options)
    write_atomic(out / "tuning.csv", table.to_csv(index=False))
    shown = table[table["selected"]].assign(**{PRIMARY: lambda d: d[PRIMARY].map(fmt),
                                               TIEBREAK: lambda d: d[TIEBREAK].map(fmt)})
    print(protocol_text(table))
    print("selected ({} = the published defaults):")
    print(shown[["paradigm", "model", "config", PRIMARY, TIEBREAK]].to_string(index=False))
    print(f"tuning table: {out / 'tuning.csv'}")
    return 0
