"""Suites and leaderboards: run a suite file, rank models per paradigm, write the results.

A suite file (TOML)::

    name = "quick"
    seeds = 3                          # seeds 0..N-1 for every run

    [[paradigm]]
    name = "blocked-linear"
    models = "*"                       # every model that supports the paradigm, or a list
    set = { n_blocks = 10 }            # paradigm / model parameters (as --set)

Scores are kept long (paradigm, model, seed, metric, value) and exported wide: per
paradigm, models ranked by the primary metric (mean and 95% t-interval over seeds) with a
paired t-test across seeds against the next-ranked model.

Outputs (``write``): ``scores.csv`` (long), ``leaderboard.md``, ``leaderboard.json`` (schema
version, package and paradigm versions, git commit, configurations) and ``figures/``.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium
import numpy as np
import pandas as pd
from scipy import stats

import switchbench
from switchbench import models
from switchbench.benchmark.metrics import METRICS, PRIMARY
from switchbench.benchmark.runner import RunResult, cache_root, resolve_paradigm
from switchbench.benchmark.suite import (Failure, RunSpec, RunsFailed, check_out, check_slug, failure_lines,
                                         metrics_table, read_suite, run_many)
from switchbench.errors import SwitchbenchError

SCHEMA_VERSION = 1
DEFAULT_SUITE = Path("suites/full.toml")


@dataclass(frozen=True)
class Suite:
    name: str
    specs: list[RunSpec]
    source: str


def model_cards(paradigm: str = "blocked-linear") -> pd.DataFrame:
    """One row per model: its card and its parameter count on ``paradigm``'s defaults."""
    spec = gymnasium.make(resolve_paradigm(paradigm)[1], disable_env_checker=True).unwrapped.task_spec
    rows = []
    for name in models.names():
        try:
            entry = models.get(name)
        except SwitchbenchError as e:
            rows.append({"name": name, "description": f"(failed to load: {e})"})
            continue
        c = entry.card
        params = models.count_parameters(entry.build(spec, 0)) if entry.decline_reason(spec) is None else None
        rows.append({"name": name, "privileged": c.privileged, "kinds": ",".join(c.kinds),
                     f"params ({paradigm})": params, "description": c.description, "citation": c.citation,
                     "tuning": c.tuning})
    return pd.DataFrame(rows).set_index("name")


def load_suite(path: Path) -> Suite:
    """Expand a suite file into run specs (checked against its schema: :func:`suite.read_suite`)."""
    return Suite(*read_suite(path))


def _entry(model: str) -> models.ModelEntry | None:
    """The model's registry entry, or None where it does not load (a broken plug-in)."""
    try:
        return models.get(model)
    except SwitchbenchError:
        return None


# --- aggregation ------------------------------------------------------------------------

def _ci95(v: pd.Series) -> float:
    v = v.dropna()
    return float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean, 95% t-interval half-width and n over seeds per (paradigm, model, metric)."""
    g = scores[scores["metric"] != "failed"].groupby(["paradigm", "model", "metric"])["value"]
    out = g.agg(mean="mean", n="count").join(g.agg(ci95=_ci95)).reset_index()
    out["higher_is_better"] = out["metric"].map(lambda m: METRICS[m].higher_is_better if m in METRICS else None)
    return out


def paired_p(scores: pd.DataFrame, paradigm: str, a: str, b: str, metric: str = PRIMARY) -> float:
    """Two-sided paired t-test p-value of ``metric`` between models a and b over their common seeds."""
    s = scores[(scores["paradigm"] == paradigm) & (scores["metric"] == metric)]
    wide = s.pivot_table(index="seed", columns="model", values="value")
    if a not in wide or b not in wide:
        return float("nan")
    pair = wide[[a, b]].dropna()
    d = pair[a] - pair[b]
    if len(pair) < 2:
        return float("nan")
    if np.allclose(d, d.iloc[0]):
        return 0.0 if d.iloc[0] != 0 else 1.0
    return float(stats.ttest_rel(pair[a], pair[b]).pvalue)


#: columns of the markdown tables beside the primary metric (every metric is in scores.csv and the JSON)
TABLE_METRICS = ("final_loss", "switch_time_early", "forgetting_Rk", "bwt_Rk", "specialisation", "final_accuracy",
                 "final_performance", "params", "params_changed_per_task", "perf_drop_unit_ablation_0.3",
                 "rule_composition_perf", "zero_shot_perf", "transfer_steps")


def ranked(scores: pd.DataFrame, paradigm: str, primary: str = PRIMARY, tiebreak: str = "final_loss") -> pd.DataFrame:
    """Wide table of one paradigm: models ranked by the primary metric (ties broken by
    ``tiebreak``), cells 'mean ± ci95', ``p vs next`` (paired t-test across seeds against the
    next-ranked model) and privileged models marked."""
    summary = summarise(scores)
    s = summary[summary["paradigm"] == paradigm]
    text = [f"{m:.4g} ± {c:.2g}" if np.isfinite(c) else f"{m:.4g}" for m, c in zip(s["mean"], s["ci95"])]
    wide = s.assign(text=text).pivot(index="model", columns="metric", values="text")
    means = s.pivot(index="model", columns="metric", values="mean")
    keys = [k for k in (primary, tiebreak) if k in means]
    asc = [not METRICS[k].higher_is_better for k in keys]
    names = list(means.sort_values(keys, ascending=asc).index) if keys else list(means.index)
    p = [paired_p(scores, paradigm, a, b, primary) for a, b in zip(names[:-1], names[1:])] + [float("nan")]
    cols = [primary] + [c for c in TABLE_METRICS if c in wide.columns and c != primary]
    table = wide.loc[names, cols].reset_index()
    table.insert(0, "rank", range(1, len(table) + 1))
    table.insert(2, "privileged", ["yes" if (e := _entry(m)) and e.card.privileged else "" for m in names])
    table.insert(4, "p vs next", [f"{x:.2g}" if np.isfinite(x) else "" for x in p])
    return table.set_index("rank")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# --- writing ----------------------------------------------------------------------------

def write(suite: Suite, results: list, out: Path) -> dict[str, Path]:
    """Write scores.csv, leaderboard.md, leaderboard.json and figures/ for a suite's results."""
    from switchbench.benchmark import plots

    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    scores = metrics_table(results)
    scores.to_csv(out / "scores.csv", index=False)
    ok = [r for r in results if isinstance(r, RunResult)]
    paradigm_ids = {r.config["paradigm"]: r.config["paradigm_id"] for r in ok}
    version = f"switchbench {switchbench.__version__}"
    md = [f"# Leaderboard: suite `{suite.name}`", "",
          f"{version}; mean ± 95% t-interval over seeds; `p vs next`: paired t-test across seeds against the "
          "next-ranked model; privileged models are told the task identity; `versions`: package / paradigm "
          "version of the entry. Every metric of every run is in `scores.csv` and `leaderboard.json`.", ""]
    figures = []
    for paradigm in scores.loc[scores["metric"] != "failed", "paradigm"].unique():   # paradigms with results
        check_slug(paradigm, "a paradigm name in a figure's file name")
        arrow = "higher" if METRICS[PRIMARY].higher_is_better else "lower"
        table = ranked(scores, paradigm)
        table["versions"] = f"{switchbench.__version__} / {paradigm_ids.get(paradigm, '?').split('/')[-1]}"
        md += [f"## {paradigm} (`{paradigm_ids.get(paradigm, '?')}`): ranked by {PRIMARY}, {arrow} is better", "",
               table.to_markdown(), ""]
        runs = [r for r in ok if r.config["paradigm"] == paradigm]
        if runs:
            figures += [plots.metric_bars(scores[scores["paradigm"] == paradigm], out / "figures" / f"{paradigm}_metrics.png"),
                        plots.switch_curves(runs, out / "figures" / f"{paradigm}_switch_time.png")]
    failed = [r for r in results if isinstance(r, Failure)]
    if failed:
        md += ["## Failed runs", ""] + [f"- {f.spec.model} on {f.spec.paradigm}, seed {f.spec.seed}: {f.reason}"
                                         for f in failed] + [""]
    md += ["Metrics: " + "; ".join(f"`{m.name}` ({'higher' if m.higher_is_better else 'lower'} is better): "
                                   f"{m.description}" for m in METRICS.values()), ""]
    (out / "leaderboard.md").write_text("\n".join(md))
    summary = summarise(scores)
    entries = []
    for (paradigm, model), g in summary.groupby(["paradigm", "model"]):
        cfg = next((r.config for r in ok if r.config["paradigm"] == paradigm and models.label(r.config["model"]) == model),
                   None)
        card = entry.card if (entry := _entry(model)) else None
        entries.append({
            "paradigm": paradigm, "paradigm_version": paradigm_ids.get(paradigm), "model": model,
            "card": asdict(card) if card else None, "package_version": switchbench.__version__,
            "config": {k: cfg[k] for k in ("paradigm_params", "model_params", "runner")} if cfg else None,
            "metrics": {row.metric: {"mean": row.mean, "ci95": None if np.isnan(row.ci95) else row.ci95, "n": int(row.n),
                                     "higher_is_better": row.higher_is_better} for row in g.itertuples()},
        })
    meta = {"schema_version": SCHEMA_VERSION, "suite": suite.name, "suite_file": suite.source,
            "package_version": switchbench.__version__, "git_commit": _git_commit(), "primary_metric": PRIMARY,
            "paradigm_versions": paradigm_ids, "entries": entries,
            "failed": [{**asdict(f.spec), "reason": f.reason} for f in failed]}
    (out / "leaderboard.json").write_text(json.dumps(meta, indent=1, default=float))
    return {"scores": out / "scores.csv", "markdown": out / "leaderboard.md", "json": out / "leaderboard.json",
            **{f.stem: f for f in figures}}


def run_suite(path: Path, jobs: int = 1, backend: str = "local", out: Path | None = None,
              threads: int = 1, cache: bool | str | None = None) -> dict[str, Path]:
    """Run a suite (resuming from the cache; ``cache="refresh"`` recomputes), print each
    paradigm's ranked table and write the results to ``out`` (default: a report folder under
    the cache, never ``results/``; checked writable before any run). When some runs failed,
    the report of the others is written and :class:`~switchbench.benchmark.suite.RunsFailed`
    is raised (its ``files`` the report's)."""
    suite = load_suite(path)
    out = check_out(Path(out) if out is not None else cache_root() / "reports" / suite.name)
    # the linear models run batched on the per-seed stream ("samples": the per-seed runner's numbers)
    results = run_many(suite.specs, jobs=jobs, backend=backend, threads=threads, desc=f"suite {suite.name}",
                       batched="samples", cache=cache)
    files = write(suite, results, out)
    print(files["markdown"].read_text())
    print(f"results written to {out}")
    failed = failure_lines(results)
    if failed:
        raise RunsFailed(failed, len(results), files)
    return files
