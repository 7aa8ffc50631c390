"""``switchbench run``: one model on one paradigm over seeds 0..N-1, its metrics printed as a
table (one row per metric, mean and 95% t-interval over seeds), Markdown, CSV or JSON."""
from __future__ import annotations

import json
import shutil
import sys
from typing import TYPE_CHECKING

from switchbench.benchmark.commands.options import add_run_options, add_set, command, run_inputs, seed_count
from switchbench.benchmark.commands.options import table as as_text
from switchbench.errors import SwitchbenchError

if TYPE_CHECKING:
    import pandas as pd


def add(sub) -> None:
    s = command(sub, "run", "run one model on one paradigm over seeds 0..N-1 and print its metrics",
                "Run one model on one paradigm with seeds 0..N-1 (cached runs are loaded), then print every metric: "
                "one row per metric, with the mean and 95% t-interval over seeds, and where each run is cached.",
                "switchbench run --paradigm blocked-linear --model gated-linear --seeds 3 --set tau_c=0.1",
                "switchbench run --paradigm digit-switch --model mlp --set n_blocks=4 --format csv > scores.csv",
                "switchbench run --paradigm blocked-linear --model my_models:make   # my_models.py in this folder")
    s.add_argument("--paradigm", required=True, metavar="NAME",
                   help="a paradigm's CLI name or Gymnasium id (required; `switchbench list paradigms`), "
                        "e.g. blocked-linear")
    s.add_argument("--model", required=True, metavar="NAME",
                   help="a registered model name (required; `switchbench list models`) or module:factory, "
                        "the module importable or in the current folder, e.g. gated-linear")
    s.add_argument("--seeds", type=seed_count, default=1, metavar="N",
                   help="run seeds 0..N-1, N at most 10000 (default: 1)")
    add_set(s, "set a paradigm or model parameter, repeatable; VALUE is a Python literal, else a string; write "
               "paradigm.KEY= or model.KEY= where both have KEY (default: none, the published defaults), e.g. "
               "--set n_blocks=4 --set tau_c=0.1")
    s.add_argument("--format", choices=("table", "md", "csv", "json"), default="table",
                   help="table: one row per metric, fitted to the terminal; md: the same as Markdown; "
                        "csv / json: tidy rows (paradigm, model, seed, metric, value, path) for scripts "
                        "(default: table)")
    add_run_options(s)
    s.set_defaults(fn=main)


def main(args) -> int:
    from switchbench.benchmark.runner import validate
    from switchbench.benchmark.suite import Failure, metrics_table, run_many, seeds

    options, overrides = run_inputs(args)
    specs = seeds(args.paradigm, args.model, args.seeds, **overrides)
    rc = validate(args.paradigm, args.model, specs[0].overrides, options.loop_only)   # bad input fails first
    results = run_many(specs, jobs=args.jobs, options=options, rc=rc)
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
        text = as_text(table.drop(columns=seeds[len(seeds) - hidden:]))
        if max(map(len, text.splitlines())) <= width:
            break
    return text, hidden
