"""The ``switchbench`` command line (see ``switchbench --help``).

Errors are one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path

import pandas as pd

from switchbench.errors import SwitchbenchError

LISTABLE = ("paradigms", "models", "metrics", "findings")
NO_CACHE = "recompute every run, ignoring and overwriting its cache entry"


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


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr (``PROG: error: ...``) and exit 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message.splitlines()[0] if message else ''} (see {self.prog} --help)",
              file=sys.stderr)
        sys.exit(2)


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
    results = run_many(specs, jobs=args.jobs, cache=_cache(args))
    failed = [r for r in results if isinstance(r, Failure)]
    if failed:
        raise SwitchbenchError(failed[0].reason)
    table = metrics_table(results).pivot(index="seed", columns="metric", values="value")
    table.loc["mean"] = table.mean()
    print(_table(table))
    for r in results:
        print(f"seed {r.config['seed']}: {r.path}")
    return 0


def _cache(args):
    """``--no-cache``: recompute every run and overwrite its cache entry."""
    return "refresh" if getattr(args, "no_cache", False) else True


def cmd_reproduce(args) -> int:
    from switchbench.benchmark.findings import FINDINGS, reproduce

    names = args.findings or list(FINDINGS)
    for n in names:
        if n not in FINDINGS:
            reproduce(n)  # raises the unknown-name error
    if args.no_cache:      # the findings call run_many, which reads this switch
        os.environ["SWITCHBENCH_NO_CACHE"] = "1"
    ok = True
    for n in names:
        kw = {"jobs": args.jobs, **({"figures": Path(args.figures)} if args.figures else {})}
        if args.seeds:
            kw["n_seeds"] = args.seeds
        report = reproduce(n, **kw)
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

    run_suite(Path(args.file), jobs=args.jobs, backend=args.backend, threads=args.threads, cache=_cache(args))
    return 0


def cmd_leaderboard(args) -> int:
    from switchbench.benchmark.leaderboard import DEFAULT_SUITE, run_suite

    run_suite(Path(args.suite or DEFAULT_SUITE), jobs=args.jobs, backend=args.backend, threads=args.threads,
              out=Path(args.out), cache=_cache(args))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="switchbench", description="A benchmark for task switching in neural networks.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="list paradigms, models, metrics or findings")
    s.add_argument("what", nargs="?", choices=LISTABLE)
    s.set_defaults(fn=cmd_list)
    s = sub.add_parser("run", help="run one model on one paradigm over seeds 0..N-1")
    s.add_argument("--paradigm", required=True)
    s.add_argument("--model", required=True, help="a registered name or module:factory")
    s.add_argument("--seeds", type=positive_int, default=1)
    s.add_argument("--jobs", type=positive_int, default=1)
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a paradigm or model parameter (paradigm.KEY= / model.KEY= where both have it)")
    s.add_argument("--no-cache", action="store_true", help=NO_CACHE)
    s.set_defaults(fn=cmd_run)
    s = sub.add_parser("reproduce", help="re-measure paper findings, each with value and PASS/FAIL")
    s.add_argument("findings", nargs="*")
    s.add_argument("--jobs", type=positive_int, default=1)
    s.add_argument("--seeds", type=positive_int, default=None, help="seeds per model (default: the finding's own)")
    s.add_argument("--figures", default=None, help="folder for figures (default: under the cache)")
    s.add_argument("--no-cache", action="store_true", help=NO_CACHE)
    s.set_defaults(fn=cmd_reproduce)
    for name, helptext in (("suite", "run a suite file (TOML), print its ranked tables, report under the cache"),
                           ("leaderboard", "aggregate a suite's runs (default: the full suite) into results/")):
        s = sub.add_parser(name, help=helptext)
        if name == "suite":
            s.add_argument("file")
            s.set_defaults(fn=cmd_suite)
        else:
            s.add_argument("suite", nargs="?", default=None)
            s.add_argument("--out", default="results", help="folder for scores, leaderboard and figures")
            s.set_defaults(fn=cmd_leaderboard)
        s.add_argument("--jobs", type=positive_int, default=1,
                       help="parallel runs (local workers or Slurm array tasks)")
        s.add_argument("--backend", choices=("local", "slurm"), default="local")
        s.add_argument("--threads", type=positive_int, default=1, help="torch threads (and Slurm CPUs) per run")
        s.add_argument("--no-cache", action="store_true", help=NO_CACHE)
    return p


def _one_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 all runs succeeded; 1 some runs failed (reasons listed, the report of
    the others written); 2 bad input (one line on stderr); 130 interrupted. An unexpected
    error is one line too (``SWITCHBENCH_DEBUG=1`` shows its traceback)."""
    from switchbench.benchmark.suite import RunsFailed

    args = build_parser().parse_args(argv)
    no_cache = os.environ.get("SWITCHBENCH_NO_CACHE")
    try:
        return args.fn(args)
    except RunsFailed as e:
        print(f"switchbench: {e}:", file=sys.stderr)
        for line in e.failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    except SwitchbenchError as e:
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
        if os.environ.get("SWITCHBENCH_DEBUG"):
            raise
        print(f"switchbench: internal error: {type(e).__name__}: {_one_line(e)} "
              "(please report it; SWITCHBENCH_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    finally:
        if no_cache is None:
            os.environ.pop("SWITCHBENCH_NO_CACHE", None)


if __name__ == "__main__":
    sys.exit(main())
