"""Suites and leaderboards: run a suite file and rank models per paradigm.

A suite file (TOML)::

    name = "quick"
    seeds = 3                          # seeds 0..N-1 for every run

    [[paradigm]]
    name = "blocked-linear"
    models = "*"                       # every model that supports the paradigm, or a list
    set = { n_blocks = 10 }            # paradigm / model parameters (as --set)

Scores are kept long (paradigm, model, seed, metric, value) and summarised as the mean and
95% t-interval over seeds, ranked by the primary metric.
"""
from __future__ import annotations

import sys
from pathlib import Path

import gymnasium
import numpy as np
import pandas as pd
from scipy import stats

from switchbench import models
from switchbench.benchmark.metrics import METRICS, PRIMARY
from switchbench.benchmark.runner import cache_root, resolve_paradigm
from switchbench.benchmark.suite import RunSpec, metrics_table, run_many
from switchbench.errors import SwitchbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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
        params = None
        if entry.decline_reason(spec) is None:
            params = models.count_parameters(entry.build(spec, 0))
        c = entry.card
        rows.append({"name": name, "privileged": c.privileged, "kinds": ",".join(c.kinds),
                     f"params ({paradigm})": params, "description": c.description, "citation": c.citation,
                     "tuning": c.tuning})
    return pd.DataFrame(rows).set_index("name")


def load_suite(path: Path) -> tuple[str, list[RunSpec]]:
    """Expand a suite file into run specs."""
    try:
        suite = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SwitchbenchError(f"suite file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise SwitchbenchError(f"suite file {str(path)!r} is not valid TOML: {e}") from None
    name, n_seeds = suite.get("name", Path(path).stem), suite.get("seeds", 3)
    specs = []
    for entry in suite.get("paradigm", []):
        if "name" not in entry:
            raise SwitchbenchError(f"suite {name!r}: every [[paradigm]] needs a name")
        spec = gymnasium.make(resolve_paradigm(entry["name"])[1], disable_env_checker=True).unwrapped.task_spec
        chosen = entry.get("models", "*")
        if chosen == "*":
            chosen = [m for m in models.names() if models.get(m).decline_reason(spec) is None]
        for m in chosen:
            for s in range(entry.get("seeds", n_seeds)):
                specs.append(RunSpec(entry["name"], m, s, dict(entry.get("set", {}))))
    if not specs:
        raise SwitchbenchError(f"suite {name!r} lists no runs")
    return name, specs


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% t-interval half-width over seeds per (paradigm, model, metric)."""
    def ci(v):
        v = v.dropna()
        return float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else np.nan

    g = scores[scores["metric"] != "failed"].groupby(["paradigm", "model", "metric"])["value"]
    out = g.agg(mean="mean", n="count").join(g.agg(ci95=ci))
    return out.reset_index()


def ranked(summary: pd.DataFrame, paradigm: str, primary: str = PRIMARY) -> pd.DataFrame:
    """Wide table of one paradigm: models as rows ranked by the primary metric, 'mean ± ci'."""
    s = summary[summary["paradigm"] == paradigm]
    cell = s.assign(text=[f"{m:.4g} ± {c:.2g}" if np.isfinite(c) else f"{m:.4g}" for m, c in zip(s["mean"], s["ci95"])])
    wide = cell.pivot(index="model", columns="metric", values="text")
    order = s[s["metric"] == primary].set_index("model")["mean"]
    order = order.sort_values(ascending=not METRICS[primary].higher_is_better)
    wide = wide.loc[list(order.index) + [m for m in wide.index if m not in order.index]]
    wide.insert(0, "rank", range(1, len(wide) + 1))
    return wide


def run_suite(path: Path, jobs: int = 1) -> pd.DataFrame:
    """Run a suite, print each paradigm's ranked table and write its report under the cache."""
    name, specs = load_suite(path)
    results = run_many(specs, jobs=jobs, desc=f"suite {name}")
    scores = metrics_table(results)
    summary = summarise(scores)
    out = cache_root() / "reports" / name
    out.mkdir(parents=True, exist_ok=True)
    scores.to_csv(out / "scores.csv", index=False)
    lines = []
    for paradigm in scores["paradigm"].unique():
        table = ranked(summary, paradigm)
        arrow = "lower" if not METRICS[PRIMARY].higher_is_better else "higher"
        lines.append(f"## {paradigm} (ranked by {PRIMARY}, {arrow} is better; mean ± 95% CI over seeds)\n")
        lines.append(table.to_markdown())
        lines.append("")
    failed = scores[scores["metric"] == "failed"]
    for _, f in failed.iterrows():
        lines.append(f"failed: {f['model']} on {f['paradigm']} seed {f['seed']}: {f['reason']}")
    text = "\n".join(lines)
    (out / "summary.md").write_text(text + "\n")
    print(text)
    print(f"\nreport written to {out}")
    return scores

