"""The ``switchbench`` command line (see ``switchbench --help``).

Errors are one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import pandas as pd

from switchbench.errors import SwitchbenchError

LISTABLE = ("paradigms", "models", "metrics", "findings")


def parse_set(items: list[str]) -> dict:
    """``key=value`` pairs; a value is a Python literal if it parses as one, else a string.

    >>> parse_set(["tau_c=0.1", "schedule=[0, 1, 0]", "teachers=iid"])
    {'tau_c': 0.1, 'schedule': [0, 1, 0], 'teachers': 'iid'}
    """
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SwitchbenchError(f"--set expects key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def _table(df: pd.DataFrame) -> str:
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.float_format", "{:.4g}".format):
        return df.to_string()


def cmd_list(args) -> int:
    what = args.what or "all"
    if what in ("paradigms", "all"):
        from switchbench.paradigms import PARADIGMS
        print(_table(pd.DataFrame([{"name": k, "id": v[0]} for k, v in PARADIGMS.items()]).set_index("name")))
    if what in ("models", "all"):
        from switchbench.benchmark.leaderboard import model_cards
        print(_table(model_cards()))
    if what in ("metrics", "all"):
        from switchbench.benchmark.metrics import METRICS
        print(_table(pd.DataFrame([vars(m) for m in METRICS.values()]).set_index("name")))
    if what in ("findings", "all"):
        from switchbench.benchmark.findings import FINDINGS
        print("\n".join(f"{k}: {(v.__doc__ or '').strip().splitlines()[0]}" for k, v in FINDINGS.items()))
    return 0


def cmd_run(args) -> int:
    from switchbench.benchmark.runner import validate
    from switchbench.benchmark.suite import Failure, metrics_table, run_many, seeds

    if args.seeds < 1:
        raise SwitchbenchError(f"--seeds must be >= 1, got {args.seeds}")
    specs = seeds(args.paradigm, args.model, args.seeds, **parse_set(args.set))
    validate(args.paradigm, args.model, specs[0].overrides)   # bad input fails before any work starts
    results = run_many(specs, jobs=args.jobs)
    failed = [r for r in results if isinstance(r, Failure)]
    if failed:
        raise SwitchbenchError(failed[0].reason)
    table = metrics_table(results).pivot(index="seed", columns="metric", values="value")
    table.loc["mean"] = table.mean()
    print(_table(table))
    for r in results:
        print(f"seed {r.config['seed']}: {r.path}")
    return 0


def cmd_reproduce(args) -> int:
    from switchbench.benchmark.findings import FINDINGS, reproduce
    from switchbench.benchmark.site import save_finding

    names = args.findings or list(FINDINGS)
    for n in names:
        if n not in FINDINGS:
            reproduce(n)  # raises the unknown-name error
    ok = True
    for n in names:
        kw = {"jobs": args.jobs, **({"figures": Path(args.figures)} if args.figures else {})}
        if args.seeds:
            kw["n_seeds"] = args.seeds
        report = reproduce(n, **kw)
        save_finding(report)   # its status, for the leaderboard's web page
        print(f"== {n}")
        for c in report.checks:
            print(c.line())
        for note in report.notes:
            print(f"      {note}")
        for f in report.figures:
            print(f"      figure: {f}")
        ok &= report.passed
    return 0 if ok else 1


def cmd_suite(args) -> int:
    from switchbench.benchmark.leaderboard import run_suite

    run_suite(args.file, jobs=args.jobs, backend=args.backend, threads=args.threads)
    return 0


def cmd_leaderboard(args) -> int:
    from switchbench.benchmark.leaderboard import DEFAULT_SUITE, run_suite

    tuning = Path(args.tuning) if args.tuning else Path(args.out) / "tuning.csv"
    if not args.tuning and not tuning.is_file():
        print(f"switchbench: no {tuning}: the published view only (run `switchbench tune` for the tuned view)",
              file=sys.stderr)
        tuning = None
    run_suite(args.suite or DEFAULT_SUITE, jobs=args.jobs, backend=args.backend, threads=args.threads,
              out=Path(args.out), tuning=tuning)
    return 0


def cmd_tune(args) -> int:
    from switchbench.benchmark.leaderboard import DEFAULT_SUITE
    from switchbench.benchmark.tuning import run_tuning

    run_tuning(args.suite or DEFAULT_SUITE, Path(args.out), jobs=args.jobs, backend=args.backend,
               threads=args.threads, budget=args.budget, seeds=args.seeds)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchbench", description="A benchmark for task switching in neural networks.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="list paradigms, models, metrics or findings")
    s.add_argument("what", nargs="?", choices=LISTABLE)
    s.set_defaults(fn=cmd_list)
    s = sub.add_parser("run", help="run one model on one paradigm over seeds 0..N-1")
    s.add_argument("--paradigm", required=True)
    s.add_argument("--model", required=True, help="a registered name or module:factory")
    s.add_argument("--seeds", type=int, default=1)
    s.add_argument("--jobs", type=int, default=1)
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a paradigm or model parameter (paradigm.KEY= / model.KEY= where both have it)")
    s.set_defaults(fn=cmd_run)
    s = sub.add_parser("reproduce", help="re-measure paper findings, each with value and PASS/FAIL")
    s.add_argument("findings", nargs="*")
    s.add_argument("--jobs", type=int, default=1)
    s.add_argument("--seeds", type=int, default=None, help="seeds per model (default: the finding's own)")
    s.add_argument("--figures", default=None, help="folder for figures (default: under the cache)")
    s.set_defaults(fn=cmd_reproduce)
    for name, helptext in (("suite", "run a suite (a shipped one by name: quick, full; or a TOML file), print its "
                                     "ranked tables, report under the cache"),
                           ("leaderboard", "run a suite (default: full) in the published and tuned views into results/"),
                           ("tune", "tune every (paradigm, model) of a suite (default: full) on validation seeds, "
                                    "the same budget each; writes tuning.csv")):
        s = sub.add_parser(name, help=helptext)
        if name == "suite":
            s.add_argument("file", help="a shipped suite's name (quick, full) or a suite file")
            s.set_defaults(fn=cmd_suite)
        else:
            s.add_argument("suite", nargs="?", default=None)
            s.add_argument("--out", default="results", help="folder for the results (and tuning.csv)")
            if name == "leaderboard":
                s.add_argument("--tuning", default=None, help="the tuning table (default: OUT/tuning.csv if present)")
                s.set_defaults(fn=cmd_leaderboard)
            else:
                s.add_argument("--budget", type=int, default=None, help="configurations per (paradigm, model)")
                s.add_argument("--seeds", type=int, default=None, help="validation seeds")
                s.set_defaults(fn=cmd_tune)
        s.add_argument("--jobs", type=int, default=1, help="parallel runs (local workers or Slurm array tasks)")
        s.add_argument("--backend", choices=("local", "slurm"), default="local")
        s.add_argument("--threads", type=int, default=1, help="torch threads (and Slurm CPUs) per run")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except SwitchbenchError as e:
        print(f"switchbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("switchbench: interrupted; finished runs are cached and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
