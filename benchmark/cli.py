"""The ``switchbench`` command line (see ``switchbench --help``).

Errors are one line on stderr and a non-zero exit, never a traceback (``--debug``, an option
of every command, prints the full traceback before that line). Heavy libraries
(torch, pandas, ...) are imported by the commands that use them, so that ``--help`` and
``--version`` answer at once.
"""
from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from switchbench.errors import SwitchbenchError

if TYPE_CHECKING:
    import pandas as pd

LISTABLE = ("paradigms", "models", "metrics", "findings")
NO_CACHE = "recompute every run, ignoring and overwriting its cache entry (default: load cached runs)"


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


class Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr (``PROG: error: ...``) and exit 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message.splitlines()[0] if message else ''} (see {self.prog} --help)",
              file=sys.stderr)
        sys.exit(2)


def _table(df: pd.DataFrame) -> str:
    import pandas as pd

    with pd.option_context("display.width", 1000, "display.max_columns", 100, "display.float_format", "{:.4g}".format):
        return df.to_string()


def cmd_list(args) -> int:
    import pandas as pd

    what = args.what or "all"
    if getattr(args, "params", False):
        if what not in ("paradigms", "models"):
            raise SwitchbenchError("--params lists the parameters of paradigms or models: "
                                   "switchbench list paradigms --params")
        print(_table(param_table(what)))
        return 0
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


def param_table(what: str) -> pd.DataFrame:
    """Every declared parameter of the paradigms or of the models: name, type, default."""
    import pandas as pd

    from switchbench.params import type_name

    if what == "paradigms":
        from switchbench.benchmark.config import paradigm_params
        from switchbench.paradigms import PARADIGMS, resolve

        owners = {name: paradigm_params(resolve(name)[2]) for name in PARADIGMS}
    else:
        from switchbench import models

        owners = {name: models.get(name).params() for name in models.names()}
    rows = [{what[:-1]: owner, "parameter": p.name, "type": type_name(p.type), "default": repr(p.default)}
            for owner, params in owners.items() for p in params.values()]
    return pd.DataFrame(rows).set_index([what[:-1], "parameter"])


def cmd_run(args) -> int:
    from switchbench.benchmark.runner import validate
    from switchbench.benchmark.suite import Failure, metrics_table, run_many, seeds

    if args.seeds < 1:
        raise SwitchbenchError(f"--seeds must be >= 1, got {args.seeds}")
    specs = seeds(args.paradigm, args.model, args.seeds, **parse_set(args.set))
    validate(args.paradigm, args.model, specs[0].overrides)   # bad input fails before any work starts
    results = run_many(specs, jobs=args.jobs, cache=_cache(args), device=args.device)
    failed = [r for r in results if isinstance(r, Failure)]
    if failed:
        if args.debug and failed[0].trace:
            print(failed[0].trace, end="", file=sys.stderr)
        raise SwitchbenchError(failed[0].reason)
    scores = metrics_table(results).drop(columns="reason")
    print(format_scores(scores, args.format, {r.config["seed"]: str(r.path) for r in results if r.path}))
    return 0


def format_scores(scores: pd.DataFrame, fmt: str, paths: dict[int, str], width: int | None = None) -> str:
    """The scores of one configuration (tidy: paradigm, model, seed, metric, value) as
    ``table`` (one row per metric, fitted to the terminal), ``md``, ``csv`` or ``json`` (tidy
    rows with the cached run's ``path``, for scripts)."""
    if fmt in ("csv", "json"):
        tidy = scores.assign(path=scores["seed"].map(paths))
        if fmt == "csv":
            return tidy.to_csv(index=False).rstrip("\n")
        return json.dumps(tidy.astype(object).where(tidy.notna(), None).to_dict(orient="records"), indent=1)
    table = metric_rows(scores)
    model, paradigm, n = scores["model"].iloc[0], scores["paradigm"].iloc[0], scores["seed"].nunique()
    title = f"{model} on {paradigm}, {n} seed{'s' * (n > 1)}" + (": mean, 95% t-interval half-width, seeds" if n > 1 else "")
    where = "\n".join(f"seed {s}: {p}" for s, p in paths.items())
    if fmt == "md":
        return f"**{title}**\n\n{table.to_markdown(floatfmt='.4g')}\n\n{where}"
    width = width or shutil.get_terminal_size((100, 24)).columns
    text, hidden = fit_columns(table.rename_axis(None), width)
    note = f"\n({hidden} seed columns not shown; --format csv lists every value)" if hidden else ""
    return f"{title}\n{text}{note}\n{where}"


def metric_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per metric (in the order of ``METRICS``): ``better`` (higher / lower), and with
    more than one seed its ``mean`` and ``ci95`` (95% t-interval half-width), then each seed."""
    import numpy as np
    import pandas as pd
    from scipy import stats

    from switchbench.benchmark.metrics import METRICS

    wide = scores.pivot(index="metric", columns="seed", values="value")
    order = {m: i for i, m in enumerate(METRICS)}
    wide = wide.loc[sorted(wide.index, key=lambda m: (order.get(m, len(order)), m))]
    wide.columns = [f"seed {c}" for c in wide.columns]
    out = pd.DataFrame({"better": [("higher" if METRICS[m].higher_is_better else "lower") if m in METRICS else ""
                                   for m in wide.index]}, index=wide.index)
    n = wide.shape[1]
    if n > 1:
        out["mean"] = wide.mean(axis=1)
        out["ci95"] = stats.t.ppf(0.975, n - 1) * wide.std(axis=1, ddof=1) / np.sqrt(n)
    return out.join(wide)


def fit_columns(table: pd.DataFrame, width: int) -> tuple[str, int]:
    """The table as text no wider than ``width``, dropping seed columns from the right as
    needed; returns the text and how many seed columns were dropped."""
    seeds = [c for c in table.columns if c.startswith("seed ")] if "mean" in table else []
    for hidden in range(len(seeds) + 1):
        text = _table(table.drop(columns=seeds[len(seeds) - hidden:]))
        if max(map(len, text.splitlines())) <= width:
            break
    return text, hidden


def _cache(args):
    """``--no-cache``: recompute every run and overwrite its cache entry."""
    return "refresh" if getattr(args, "no_cache", False) else True


def cmd_reproduce(args) -> int:
    """Each finding's checks as PASS / FAIL / DIFFERS; exit 1 unless every check PASSes."""
    from switchbench.benchmark.findings import FINDINGS, reproduce
    from switchbench.benchmark.site import save_finding

    names = args.findings or list(FINDINGS)
    for n in names:
        if n not in FINDINGS:
            reproduce(n)  # raises the unknown-name error
    overrides = parse_set(args.set)
    if args.no_cache:      # the findings call run_many, which reads this switch
        os.environ["SWITCHBENCH_NO_CACHE"] = "1"
    ok = True
    command = "switchbench " + " ".join(shlex.quote(a) for a in args.argv)
    for n in names:
        figures = args.figures or args.record          # a record keeps its figures beside it
        if args.record:
            Path(args.record).mkdir(parents=True, exist_ok=True)
        kw = {"jobs": args.jobs, "overrides": overrides, **({"figures": Path(figures)} if figures else {})}
        if args.seeds:
            kw["n_seeds"] = args.seeds
        start = time.perf_counter()
        report = reproduce(n, **kw)
        seeds = args.seeds or inspect.signature(FINDINGS[n]).parameters["n_seeds"].default
        provenance = {"seeds": seeds, "command": command, "wall_s": time.perf_counter() - start,
                      "overrides": overrides}
        save_finding(report, **provenance)     # the last verdict in this cache, for the web page
        if args.record:
            print(f"      record: {save_finding(report, Path(args.record), **provenance)}")
        print(f"== {n}: " + ", ".join(f"{k} {v}" for k, v in report.counts().items()))
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

    run_suite(args.file, jobs=args.jobs, backend=args.backend, threads=args.threads, cache=_cache(args))
    return 0


def cmd_leaderboard(args) -> int:
    from switchbench.benchmark.leaderboard import DEFAULT_SUITE, default_out, run_suite

    suite = args.suite or DEFAULT_SUITE
    out = Path(args.out) if args.out else default_out(suite)
    tuning = Path(args.tuning) if args.tuning else out / "tuning.csv"
    if not args.tuning and not tuning.is_file():
        print(f"switchbench: no {tuning}: the published view only (run `switchbench tune` for the tuned view)",
              file=sys.stderr)
        tuning = None
    run_suite(suite, jobs=args.jobs, backend=args.backend, threads=args.threads, out=out, tuning=tuning,
              cache=_cache(args))
    return 0


def cmd_tune(args) -> int:
    from switchbench.benchmark.leaderboard import DEFAULT_SUITE, default_out
    from switchbench.benchmark.tuning import run_tuning

    suite = args.suite or DEFAULT_SUITE
    run_tuning(suite, Path(args.out) if args.out else default_out(suite), jobs=args.jobs, backend=args.backend,
               threads=args.threads, budget=args.budget, seeds=args.seeds, cache=_cache(args))
    return 0


class _Help(argparse.HelpFormatter):
    """Wraps descriptions, keeps the examples' lines as written; a wider option column."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)

    def _fill_text(self, text, width, indent):
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


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


def _add_jobs(s, what: str) -> None:
    s.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help=f"{what} in parallel (worker processes, one torch thread each; default: 1)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="switchbench", formatter_class=_Help,
        description="A benchmark for task switching in neural networks: paradigms, a model zoo, metrics, "
                    "paper reproductions and a leaderboard. Runs are cached under $SWITCHBENCH_CACHE "
                    "(default .cache/); bad input is one line on stderr and exit code 2.",
        epilog=_examples("switchbench list models",
                         "switchbench run --paradigm blocked-linear --model gated-linear --seeds 3",
                         "switchbench reproduce nta-fig2 --jobs 2",
                         "switchbench <command> --help     # every option, its default and an example"))
    p.add_argument("--version", action=_Version,
                   help="print the versions of switchbench, torch, numpy, gymnasium and neurogym, and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="list paradigms, models (their cards), metrics or findings",
                       description="List what switchbench knows: paradigms (CLI name and Gymnasium id), models "
                                   "(cards: description, citation, privileged, kinds, parameters), metrics "
                                   "(higher_is_better, definition) or findings.",
                       formatter_class=_Help, epilog=_examples("switchbench list models", "switchbench list"))
    s.add_argument("what", nargs="?", choices=LISTABLE, metavar="WHAT",
                   help=f"one of {', '.join(LISTABLE)} (default: all of them)")
    s.add_argument("--params", action="store_true",
                   help="paradigms or models: one row per parameter, its type and default (what --set KEY=VALUE "
                        "accepts, checked against that type)")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("run", help="run one model on one paradigm over seeds 0..N-1 and print its metrics",
                       description="Run one model on one paradigm with seeds 0..N-1 (cached runs are loaded), "
                                   "then print every metric: one row per metric, with the mean and 95% "
                                   "t-interval over seeds, and where each run is cached.",
                       formatter_class=_Help,
                       epilog=_examples("switchbench run --paradigm blocked-linear --model gated-linear --seeds 3 "
                                        "--set tau_c=0.1",
                                        "switchbench run --paradigm digit-switch --model mlp --set n_blocks=4 "
                                        "--format csv > scores.csv",
                                        "switchbench run --paradigm blocked-linear --model my_models:make   "
                                        "# my_models.py in this folder"))
    s.add_argument("--paradigm", required=True, metavar="NAME",
                   help="a paradigm's CLI name or Gymnasium id (required; `switchbench list paradigms`), "
                        "e.g. blocked-linear")
    s.add_argument("--model", required=True, metavar="NAME",
                   help="a registered model name (required; `switchbench list models`) or module:factory, "
                        "the module importable or in the current folder, e.g. gated-linear")
    s.add_argument("--seeds", type=seed_count, default=1, metavar="N", help="run seeds 0..N-1, N at most 10000 (default: 1)")
    _add_jobs(s, "runs")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a paradigm or model parameter, repeatable; VALUE is a Python literal, else a "
                        "string; write paradigm.KEY= or model.KEY= where both have KEY (default: none, "
                        "the published defaults), e.g. --set n_blocks=4 --set tau_c=0.1")
    s.add_argument("--format", choices=("table", "md", "csv", "json"), default="table",
                   help="table: one row per metric, fitted to the terminal; md: the same as Markdown; "
                        "csv / json: tidy rows (paradigm, model, seed, metric, value, path) for scripts "
                        "(default: table)")
    s.add_argument("--no-cache", action="store_true", help=NO_CACHE)
    s.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="where the run loop computes: cpu, cuda, or auto (cuda where available) (default: cpu)")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("reproduce", help="re-measure paper findings: each check PASS, FAIL or DIFFERS",
                       description="Re-run paper findings and print each check's measured value against its "
                                   "target: PASS, FAIL, or DIFFERS (we, the paper's code or the published figure "
                                   "disagree; never a pass); exit code 1 unless every check passes.",
                       formatter_class=_Help,
                       epilog=_examples("switchbench reproduce nta-fig2 --jobs 2",
                                        "switchbench reproduce nta-fig2 --seeds 3 --figures figs",
                                        "switchbench reproduce nta-fig5 --set 'finding.blocks=(10,)'"))
    s.add_argument("findings", nargs="*", metavar="FINDING",
                   help="finding names (`switchbench list findings`; default: every finding)")
    _add_jobs(s, "runs")
    s.add_argument("--seeds", type=seed_count, default=None, metavar="N",
                   help="seeds per model (default: the finding's own, as in the paper)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter of every run of the finding (MODEL/KEY: one model's runs; "
                        "finding.KEY: the finding's own options, e.g. its grid), repeatable (default: none, the "
                        "finding's own settings)")
    s.add_argument("--figures", default=None, metavar="DIR",
                   help="folder for figures (default: a folder under the run cache)")
    s.add_argument("--no-cache", action="store_true", help=NO_CACHE)
    s.add_argument("--record", nargs="?", const="results/findings", default=None, metavar="DIR",
                   help="write each finding's record (verdict, checks, figures, provenance: commit, source hash, "
                        "command, seeds, wall time, date) to DIR/NAME.json, its figures beside it (DIR default: "
                        "results/findings; without --record: only this cache keeps the last verdict)")
    s.set_defaults(fn=cmd_reproduce)
    for name, helptext, description, example in (
            ("suite", "run a suite (a shipped one by name: quick, full; or a TOML file), print its ranked tables, "
                      "report under the cache",
             "Run every (paradigm, model, seed) of a suite, resuming from the run cache, print each paradigm's "
             "ranked table and write the report (tables, figures, web page) to .cache/reports/SUITE/ (never "
             "results/). The shipped suites (quick, full) are found by name from any folder.",
             "switchbench suite quick --jobs 2"),
            ("leaderboard", "run a suite (default: full) in its published and tuned views (the full suite into "
                            "results/)",
             "Run (or load from the cache) a suite, by default the shipped full suite, in two views: published "
             "(every model at its card's defaults) and, given a tuning table (switchbench tune), tuned (each model "
             "at its selected configuration; a table made for another suite is refused). Writes scores.csv, "
             "leaderboard.md, leaderboard.json, figures/ and site/index.html to --out (default: results/ for the "
             "shipped full suite only, any other suite's report folder under the cache).",
             "switchbench leaderboard my_suite.toml --out my_results --jobs 2"),
            ("tune", "tune every (paradigm, model) of a suite (default: full) on validation seeds, the same budget "
                     "each; writes tuning.csv",
             "Run every (paradigm, model) of a suite at each configuration of its card's tunable grid (at most "
             "--budget of them) on validation seeds disjoint from the scored ones, select the best by the primary "
             "metric (ties: final loss) and write OUT/tuning.csv, which switchbench leaderboard reads.",
             "switchbench tune --jobs 2")):
        s = sub.add_parser(name, help=helptext, description=description, formatter_class=_Help,
                           epilog=_examples(example))
        if name == "suite":
            s.add_argument("file", metavar="FILE", help="a shipped suite's name (quick, full) or a suite file (TOML)")
            s.set_defaults(fn=cmd_suite)
        else:
            s.add_argument("suite", nargs="?", default=None, metavar="SUITE",
                           help="a shipped suite's name or a suite file (TOML) (default: full)")
            s.add_argument("--out", default=None, metavar="DIR",
                           help="folder for the results and tuning.csv (default: results for the shipped full "
                                "suite, else the suite's report folder under the cache, .cache/reports/NAME)")
            if name == "leaderboard":
                s.add_argument("--tuning", default=None, metavar="CSV",
                               help="the tuning table, refused if made for another suite (default: OUT/tuning.csv "
                                    "where it exists, else the published view only)")
                s.set_defaults(fn=cmd_leaderboard)
            else:
                s.add_argument("--budget", type=positive_int, default=None, metavar="N",
                               help="configurations per (paradigm, model) (default: the suite's [tuning] budget, "
                                    "else 3)")
                s.add_argument("--seeds", type=seed_count, default=None, metavar="N",
                               help="validation seeds per run (default: the suite's [tuning] seeds, else 2)")
                s.set_defaults(fn=cmd_tune)
        s.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                       help="runs in parallel: local worker processes, or at most N Slurm array tasks at once "
                            "(default: 1)")
        s.add_argument("--backend", choices=("local", "slurm"), default="local",
                       help="local processes or a Slurm job array through submitit (default: local)")
        s.add_argument("--threads", type=thread_count, default=1, metavar="N",
                       help="torch threads (and Slurm CPUs) per run, 1..1024 (default: 1)")
        s.add_argument("--no-cache", action="store_true", help=NO_CACHE)
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
    no_cache = os.environ.get("SWITCHBENCH_NO_CACHE")
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
              "(please report it; --debug shows the traceback)", file=sys.stderr)
        return 1
    finally:
        if no_cache is None:
            os.environ.pop("SWITCHBENCH_NO_CACHE", None)


if __name__ == "__main__":
    sys.exit(main())
