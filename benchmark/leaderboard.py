"""Suites and leaderboards: run a suite file, rank models per paradigm, write the results.

A suite file (TOML; the shipped ones, ``quick`` and ``full``, are package data and are found
by name from any folder; a path works too)::

    name = "quick"
    seeds = 3                          # seeds 0..N-1 for every run

    [[paradigm]]
    name = "blocked-linear"
    models = "*"                       # every model that supports the paradigm, or a list
    set = { n_blocks = 10 }            # paradigm / model parameters (as --set)

Scores are kept long (paradigm, model, seed, metric, value, plus ``view`` and ``config_id``)
and exported as headline tables: per paradigm, models ranked by the primary metric (mean and
95% t-interval over seeds). Ranks are shared where intervals overlap (chained between
neighbours); ``p`` compares each model with the next by an exact paired permutation test
over seeds, Holm-corrected across the table ("n/a" where the paired differences have no
variance). Two views: ``published`` (every model at its card's defaults) and ``tuned`` (each
model at the configuration ``switchbench tune`` selected on validation seeds, the same budget
for every model; :mod:`switchbench.benchmark.tuning`).

Outputs (``write``): ``scores.csv`` (long), ``leaderboard.md``, ``leaderboard.json`` (schema
version, package and paradigm versions, the commit the package was built from,
configurations), ``figures/`` and the static site ``site/index.html``.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import json
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import switchbench
from switchbench import models
from switchbench.benchmark.config import source_commit
from switchbench.benchmark.metrics import METRICS, PRIMARY, TIEBREAK
from switchbench.benchmark.reporting import fmt, is_privileged, model_entry, registered
from switchbench.benchmark.runner import RunResult, cache_root
from switchbench.cache import write_atomic
from switchbench.benchmark.suite import (Failure, RunSpec, RunsFailed, check_out, check_slug, failure_lines,
                                         metrics_table, read_suite, run_many)
from switchbench.benchmark.tuning import suite_id
from switchbench.errors import SwitchbenchError
from switchbench.paradigms import task_spec

SCHEMA_VERSION = 2
DEFAULT_SUITE = "full"
#: metrics that differ between identical models (timing) and are left out of the duplicate check
NOISY = ("wall_ms_per_step",)
#: the paradigm-specific headline column beside switch time, final loss and forgetting
SPECIFIC = ("rule_composition_perf", "specialisation", "final_performance", "final_accuracy")
#: what ranks a paradigm without the primary metric (one block: no switch), the first it has
FALLBACK = ("final_performance", "final_accuracy", TIEBREAK)
#: a run whose normalised final loss exceeds this (or is not finite) has exploded: flagged, never ranked
LOSS_BOUND = 1e3


@dataclass(frozen=True)
class Suite:
    name: str
    specs: list[RunSpec]
    source: str


def model_cards(paradigm: str = "blocked-linear") -> pd.DataFrame:
    """One row per model: its card and its parameter count on ``paradigm``'s defaults."""
    spec = task_spec(paradigm)
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
                     "tunable": "; ".join(f"{k} in {list(v)}" for k, v in c.tunable.items()), "tuning": c.tuning})
    return pd.DataFrame(rows).set_index("name")


def bundled_suites() -> list[str]:
    """Names of the suite files shipped with the package."""
    return sorted(p.name[:-5] for p in importlib.resources.files("switchbench.suites").iterdir()
                  if p.name.endswith(".toml"))


def suite_path(name: str | Path):
    """A suite file: an existing path, else the shipped suite of that name (``quick``, ``full``;
    ``suites/quick.toml`` also names the shipped one where no such file is here)."""
    path = Path(name)
    if path.is_file():
        return path
    stem = path.name.removesuffix(".toml")
    if stem in bundled_suites() and (str(path.parent) == "." or path.parent.name == "suites"):
        return importlib.resources.files("switchbench.suites") / f"{stem}.toml"
    raise SwitchbenchError(f"suite file {str(name)!r} not found (nor a shipped suite: {', '.join(bundled_suites())})")


def load_suite(path) -> Suite:
    """Expand a suite file (a path or a shipped suite's name) into run specs (checked against
    its schema: :func:`suite.read_suite`)."""
    return Suite(*read_suite(suite_path(path)))


def default_out(path) -> Path:
    """Where ``leaderboard`` and ``tune`` write without ``--out``: ``results/`` (the committed
    leaderboard) for the shipped full suite only; any other suite's report folder under the
    cache (``$SWITCHBENCH_CACHE/reports/NAME``), so that a user's suite never overwrites it."""
    path = suite_path(path)
    shipped = importlib.resources.files("switchbench.suites") / f"{DEFAULT_SUITE}.toml"
    if isinstance(path, Path) and Path(str(path)).resolve() != Path(str(shipped)).resolve():
        return cache_root() / "reports" / load_suite(path).name
    return Path("results")


def check_tuning(table: pd.DataFrame, suite: Suite, path) -> None:
    """Refuse a tuning table made for another suite: its recorded identity (:func:`suite_id`)
    must be the suite's; a table without one (written before it was recorded) may tune no
    (paradigm, model) that the suite does not run."""
    where = f"tuning table {str(path)!r}"
    if "suite_id" in table:
        ids = set(table["suite_id"].astype(str))
        if ids != {suite_id(suite)}:
            made = ", ".join(sorted(set(table["suite"].astype(str)))) if "suite" in table else "another suite"
            raise SwitchbenchError(f"{where} was made for suite {made} (id {', '.join(sorted(ids))}), not for suite "
                                   f"{suite.name!r} (id {suite_id(suite)}): run `switchbench tune` on this suite")
        return
    pairs = {(s.paradigm, s.model) for s in suite.specs}
    extra = sorted(set(zip(table["paradigm"].astype(str), table["model"].astype(str))) - pairs)
    if extra:
        raise SwitchbenchError(f"{where} was made for another suite than {suite.name!r}: it tunes {extra[0][1]} on "
                               f"{extra[0][0]}, which this suite does not run; run `switchbench tune` on this suite")


# --- statistics -------------------------------------------------------------------------

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
    """Two-sided exact paired permutation test (sign flips of the per-seed differences, all
    2^n of them up to 16 seeds) of ``metric`` between models a and b over their common seeds.
    NaN where fewer than 2 seeds are shared or the differences have no variance (the test then
    says nothing: e.g. both models censored on every seed).

    >>> s = pd.DataFrame({"paradigm": "p", "metric": "m", "seed": [0, 1, 2, 3] * 2,
    ...                   "model": ["a"] * 4 + ["b"] * 4, "value": [1, 2, 3, 4, 2, 4, 5, 7]})
    >>> paired_p(s, "p", "a", "b", "m")   # a < b on all 4 seeds: 2 of 16 sign patterns as extreme
    0.125
    """
    s = scores[(scores["paradigm"] == paradigm) & (scores["metric"] == metric)]
    wide = s.pivot_table(index="seed", columns="model", values="value")
    if a not in wide or b not in wide:
        return float("nan")
    d = (wide[a] - wide[b]).dropna().to_numpy()
    if len(d) < 2 or np.allclose(d, d[0]):
        return float("nan")
    res = stats.permutation_test((d,), np.mean, permutation_type="samples", alternative="two-sided",
                                 n_resamples=np.inf if len(d) <= 16 else 9999, random_state=0)
    return float(res.pvalue)


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment of p-values (NaN entries are left out of the family).

    >>> holm([0.01, float("nan"), 0.04, 0.03]).round(3).tolist()
    [0.03, nan, 0.06, 0.06]
    """
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    order = idx[np.argsort(p[idx])]
    m, running = len(order), 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out


def shared_ranks(means, ci95, higher_is_better: bool = False) -> list[int]:
    """Competition ranks (1, 1, 3, ...) of models sorted best first, where a model shares the
    rank of the one before it when their 95% intervals overlap (chained).

    >>> shared_ranks([1, 2, 10, 1000, 1000], [1.5, 0.5, 1, 0, 0])
    [1, 1, 3, 4, 4]
    """
    lo = np.asarray(means, float) - np.nan_to_num(np.asarray(ci95, float))
    hi = np.asarray(means, float) + np.nan_to_num(np.asarray(ci95, float))
    ranks = []
    for i in range(len(lo)):
        overlap = i > 0 and (lo[i] <= hi[i - 1] if not higher_is_better else hi[i] >= lo[i - 1])
        ranks.append(ranks[-1] if overlap else i + 1)
    return ranks


# --- formatting -------------------------------------------------------------------------

def _cell(mean: float, ci: float) -> str:
    return fmt(mean) if not np.isfinite(ci) else f"{fmt(mean)} ± {fmt(ci, 2)}"


def headline_metrics(scores: pd.DataFrame, paradigm: str) -> list[str]:
    """The paradigm's headline metrics: switch time, censored fraction, final loss, forgetting
    and one that only some paradigms have (specialisation, performance or accuracy)."""
    have = set(scores.loc[scores["paradigm"] == paradigm, "metric"])
    specific = next((m for m in SPECIFIC if m in have and scores.loc[(scores["paradigm"] == paradigm)
                                                                      & (scores["metric"] == m), "value"].notna().any()),
                    None)
    return [m for m in (PRIMARY, "switch_censored_late", TIEBREAK, "forgetting_Rk", specific) if m and m in have]


def exploded(scores: pd.DataFrame, paradigm: str) -> dict[str, tuple[int, int]]:
    """Models with a run whose normalised final loss is beyond :data:`LOSS_BOUND` (or not
    finite) on ``paradigm``: model -> (such seeds, seeds).

    >>> s = pd.DataFrame({"paradigm": "p", "metric": "final_loss", "seed": [0, 1, 0, 1],
    ...                   "model": ["a", "a", "b", "b"], "value": [0.1, 3.5e11, 0.2, 0.3]})
    >>> exploded(s, "p")
    {'a': (1, 2)}
    """
    s = scores[(scores["paradigm"] == paradigm) & (scores["metric"] == TIEBREAK)]
    out = {}
    for model, g in s.groupby("model"):
        bad = int((~np.isfinite(g["value"].to_numpy(float)) | (g["value"].to_numpy(float) > LOSS_BOUND)).sum())
        if bad:
            out[model] = (bad, len(g))
    return out


def rank_metric(scores: pd.DataFrame, paradigm: str, primary: str = PRIMARY) -> str:
    """The metric that ranks ``paradigm``: ``primary`` where some model has it, else the first
    of :data:`FALLBACK` that some model has (a one-block paradigm has no switch to time)."""
    s = scores[(scores["paradigm"] == paradigm) & scores["value"].notna()]
    have = set(s["metric"])
    return next((m for m in (primary, *FALLBACK) if m in have), primary)


def ranked(scores: pd.DataFrame, paradigm: str, primary: str = PRIMARY, tiebreak: str = TIEBREAK,
           labels: dict[str, str] | None = None) -> pd.DataFrame:
    """The headline table of one paradigm (at most 8 columns): models sorted by the primary
    metric (then ``tiebreak``), shared ranks, ``censored`` (fraction of the late switches that
    never met the criterion), ``p vs next`` (exact paired permutation test against the next
    model, Holm-corrected over the table) and a few more metrics, 'mean ± 95% t-interval';
    privileged models carry a dagger. ``labels``: model -> text appended to its name.

    A paradigm without the primary metric is ranked by :func:`rank_metric`'s choice (its
    column comes first). A model with an exploded run (:func:`exploded`) is listed last with
    the rank ``not ranked``, never ranked by its numbers. ``table.attrs``: ``ranked_by``
    and ``caveats`` (sentences the page and the markdown show beside the table)."""
    summary = summarise(scores)
    s = summary[summary["paradigm"] == paradigm]
    means = s.pivot(index="model", columns="metric", values="mean")
    cis = s.pivot(index="model", columns="metric", values="ci95")
    if means.empty:
        return pd.DataFrame()
    by = rank_metric(scores, paradigm, primary)
    caveats = [] if by == primary else [f"No model has {primary} here (no block switches the task: one block, or "
                                        f"blocks that mix tasks trial by trial); ranked by {by}."]
    bad = exploded(scores, paradigm)
    caveats += [f"{m}: normalised final loss beyond {LOSS_BOUND:g} (or not finite) on {k} of {n} seeds: the run "
                "exploded; listed, not ranked." for m, (k, n) in bad.items()]
    keys = [k for k in dict.fromkeys((by, tiebreak)) if k in means]
    asc = [not METRICS[k].higher_is_better for k in keys]
    order = list(means.sort_values(keys, ascending=asc, na_position="last").index) if keys else list(means.index)
    names = [m for m in order if m not in bad]
    hib = METRICS[by].higher_is_better if by in METRICS else False
    prim_m = means.loc[names, by] if by in means else pd.Series(np.nan, index=names)
    prim_c = cis.loc[names, by] if by in cis else pd.Series(np.nan, index=names)
    p = [paired_p(scores, paradigm, a, b, by) for a, b in zip(names[:-1], names[1:])] + [float("nan")]
    p_adj = list(holm(p)) + [float("nan")] * len(bad)
    ranks = shared_ranks(prim_m.to_numpy(), prim_c.to_numpy(), hib) + ["not ranked"] * len(bad)
    if len(names) > 1 and len(set(ranks[:len(names)])) == 1:
        caveats.append(f"Every model's interval of {by} overlaps the next one's: the table separates no model.")
    names += list(bad)
    table = pd.DataFrame({
        "rank": ranks,
        "model": [f"{m}{' †' if is_privileged(m) else ''}{(labels or {}).get(registered(m), '')}" for m in names]})
    p_text = [fmt(x, 2) if np.isfinite(x) else ("n/a" if i < len(names) - len(bad) - 1 else "")
              for i, x in enumerate(p_adj)]
    shown = headline_metrics(scores, paradigm)
    if by != primary and by in means:
        shown = [by] + [m for m in shown if m not in (by, primary, "switch_censored_late")]
    for m in shown:
        if m == "switch_censored_late":
            table["censored"] = [f"{v:.0%}" if np.isfinite(v) else "n/a" for v in means.loc[names, m]]
            table["p vs next"] = p_text
        else:
            table[m] = [_cell(a, b) if x not in bad or m != tiebreak else f"exploded ({fmt(a)})"
                        for x, a, b in zip(names, means.loc[names, m], cis.loc[names, m])]
    if "p vs next" not in table:
        table.insert(3 if by in means else 2, "p vs next", p_text)
    empty = [c for c in table.columns[2:] if c != "p vs next" and (table[c] == "n/a").all()]
    table = table.drop(columns=empty).set_index("rank")      # a metric no model has here (forgetting, one block)
    table.attrs.update(ranked_by=by, caveats=caveats)
    return table


def overall(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Across paradigms (as MTEB does): each model's mean rank over the paradigms it runs, and
    how many, best first (a model not ranked on a paradigm, its run exploded, is left out there);
    privileged models keep their dagger."""
    rows = [{"model": model, "paradigm": paradigm, "rank": rank}
            for paradigm, t in tables.items() for rank, model in zip(t.index, t["model"])
            if isinstance(rank, (int, np.integer))]
    if not rows:
        return pd.DataFrame(columns=["model", "mean rank", "paradigms"])
    df = pd.DataFrame(rows)
    df["model"] = df["model"].str.replace(r" †| \[[^\]]*\]$", "", regex=True)   # the dagger, a tuned setting
    out = df.groupby("model")["rank"].agg(["mean", "count"]).rename(columns={"mean": "mean rank",
                                                                             "count": "paradigms"})
    out = out.sort_values(["mean rank", "paradigms"], ascending=[True, False]).reset_index()
    out["mean rank"] = out["mean rank"].map(fmt)
    ranks = {m: ", ".join(f"{p} {r}" for p, r in zip(g["paradigm"], g["rank"])) for m, g in df.groupby("model")}
    out["ranks"] = out["model"].map(ranks)
    out["model"] = [f"{m} †" if is_privileged(m) else m for m in out["model"]]
    return out


def duplicates(scores: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(paradigm, model a, model b) whose scores are identical on every seed and metric (timing
    left out): one of them is the other under a second name, and may not be published twice."""
    s = scores[(scores["metric"] != "failed") & ~scores["metric"].isin(NOISY)]
    found = []
    for paradigm, g in s.groupby("paradigm"):
        blobs = {}
        for model, gm in g.groupby("model"):
            key = gm.sort_values(["seed", "metric"])[["seed", "metric", "value"]].round(12).to_json(orient="values")
            if key in blobs:
                found.append((paradigm, blobs[key], model))
            blobs.setdefault(key, model)
    return found


# --- provenance -------------------------------------------------------------------------

def config_id(config: dict) -> str:
    """A short id of a run's configuration without its seed (resolved in leaderboard.json)."""
    blob = json.dumps({k: config[k] for k in ("paradigm", "paradigm_params", "model", "model_params", "runner")},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


# --- running and writing ----------------------------------------------------------------

def view_specs(suite: Suite, tuning: pd.DataFrame | None) -> dict[str, list[RunSpec]]:
    """The runs of each view: ``published`` (the suite as written) and, given the selected
    rows of a tuning table, ``tuned`` (each model at its selected configuration)."""
    views = {"published": list(suite.specs)}
    if tuning is not None:
        from switchbench.benchmark.tuning import selected

        chosen = selected(tuning)
        views["tuned"] = [RunSpec(s.paradigm, s.model, s.seed, {**s.overrides, **chosen.get((s.paradigm, s.model), {})})
                          for s in suite.specs]
    return views


def run_views(views: dict[str, list[RunSpec]], jobs: int = 1, backend: str = "local", threads: int = 1,
              desc: str = "runs", cache: bool | str | None = None, options=None) -> dict[str, list]:
    """Run every view's specs once (a tuned configuration equal to the published one is the
    same run, cached once); results per view in the order given."""
    unique = list({json.dumps(asdict(s), sort_keys=True, default=str): s
                   for specs in views.values() for s in specs}.values())
    results = run_many(unique, jobs=jobs, backend=backend, threads=threads, desc=desc, cache=cache, options=options)
    by_key = {json.dumps(asdict(s), sort_keys=True, default=str): r for s, r in zip(unique, results)}
    return {v: [by_key[json.dumps(asdict(s), sort_keys=True, default=str)] for s in specs]
            for v, specs in views.items()}


def _flat(config: dict) -> dict:
    """A configuration's parameters and runner options by name (a model parameter that a
    paradigm parameter shares its name with as ``model.NAME``)."""
    env = config["paradigm_params"]
    return {**env, **{(f"model.{k}" if k in env else k): v for k, v in config["model_params"].items()},
            **config["runner"]}


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def setting_labels(configs: list[dict]) -> dict[str, str]:
    """``config_id`` -> the text appended to the model's name in the reports: where a view
    runs one (paradigm, model) in more than one configuration (two ``[[paradigm]]`` blocks of
    one paradigm with different ``set``), the settings that tell them apart, e.g.
    ``" (n_blocks=4)"``, so that each is a row of its own, never pooled; ``""`` otherwise."""
    groups: dict[tuple, dict[str, dict]] = {}
    for c in configs:
        groups.setdefault((c["paradigm"], c["model"]), {})[config_id(c)] = _flat(c)
    out = {}
    for group in groups.values():
        flats = list(group.values())
        keys = [k for k in dict.fromkeys(k for f in flats for k in f)
                if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]
        for i, f in group.items():
            out[i] = " (" + ", ".join(f"{k}={_value(f.get(k))}" for k in keys) + ")" if len(group) > 1 else ""
    return out


def scores_of(results_by_view: dict[str, list]) -> pd.DataFrame:
    """The long score table of every view, with ``view`` and ``config_id`` columns; a model
    that a view runs in several configurations is labelled by its settings
    (:func:`setting_labels`): one row each in every table."""
    tables = []
    for view, results in results_by_view.items():
        t = metrics_table(results)
        ok = [r for r in results if isinstance(r, RunResult)]
        ids = [config_id(r.config) if isinstance(r, RunResult) else "" for r in results]
        n = [len(r.metrics) if isinstance(r, RunResult) else 1 for r in results]
        t["view"] = view
        t["config_id"] = np.repeat(ids, n) if len(t) else []
        t["model"] = t["model"] + t["config_id"].map(setting_labels([r.config for r in ok])).fillna("")
        tables.append(t)
    return pd.concat(tables, ignore_index=True)


def _check_duplicates(scores: pd.DataFrame) -> None:
    dup = sorted({d for view in scores["view"].unique() for d in duplicates(scores[scores["view"] == view])})
    if dup:
        raise SwitchbenchError("refusing to publish duplicate entries (identical on every seed and metric): "
                               + "; ".join(f"{a} and {b} on {p}" for p, a, b in dup))


def _labels(tuning: pd.DataFrame | None, paradigm: str) -> dict[str, str]:
    if tuning is None:
        return {}
    from switchbench.benchmark.tuning import selected

    chosen = {models.label(m): c for (p, m), c in selected(tuning).items() if p == paradigm}   # a plug-in: its name
    return {m: " [" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.items()) + "]"
            for m, c in chosen.items() if c}


def _tuning_caveats(tuning: pd.DataFrame | None, paradigm: str) -> list[str]:
    """What limits a paradigm's tuned view: a selection made on a single validation seed."""
    if tuning is None or paradigm not in set(tuning["paradigm"]):
        return []
    seeds = str(tuning.loc[tuning["paradigm"] == paradigm, "validation_seeds"].iloc[0])
    first, _, last = seeds.partition("-")
    if last and first != last:
        return []
    return [f"Tuned on a single validation seed ({first}): a setting that is unstable on other seeds can be "
            "selected; read this view beside the published one."]


def metric_key(scores: pd.DataFrame) -> pd.DataFrame:
    """The metrics of the headline tables, with direction and definition."""
    shown = [m for p in scores["paradigm"].unique() for m in headline_metrics(scores, p)]
    rows = [{"metric": "censored" if m == "switch_censored_late" else m,
             "better": "higher" if METRICS[m].higher_is_better else "lower", "definition": METRICS[m].description}
            for m in dict.fromkeys(shown) if m in METRICS]
    return pd.DataFrame(rows)


def protocol_text(tuning: pd.DataFrame | None) -> str:
    """One line stating the tuning budget and validation seeds (or that there was none)."""
    if tuning is None:
        return "No tuning table: only the published view (every model at its card's defaults)."
    from switchbench.benchmark.tuning import LEARNED_RATIO

    b = int(tuning["budget"].max())
    seeds = "; ".join(f"{p}: {v}" for p, v in tuning.groupby("paradigm", sort=False)["validation_seeds"].first().items())
    return (f"Tuned view: every (paradigm, model) searched over its card's grid, at most {b} configurations each, "
            f"on validation seeds ({seeds}) disjoint from the scored seeds, selected by {PRIMARY} (ties: {TIEBREAK}) "
            f"among the configurations that learned ({TIEBREAK} at most {LEARNED_RATIO:g}x the model's best).")


def settings_text(suite: Suite, paradigm: str) -> list[str]:
    """The suite's settings of ``paradigm`` (its ``set``), one sentence shown beside its tables:
    those every run shares, then a model's own where all its runs share one setting (a model run
    under several settings has its rows labelled instead, :func:`scores_of`); none where the
    suite sets nothing there."""
    specs = [s for s in suite.specs if s.paradigm == paradigm]
    if not specs:
        return []
    shared = {k: v for k, v in specs[0].overrides.items()
              if all(k in s.overrides and s.overrides[k] == v for s in specs)}
    per_model: dict[str, dict] = {}
    for s in specs:
        per_model.setdefault(s.model, {})[json.dumps(s.overrides, sort_keys=True, default=str)] = s.overrides
    own = {m: {k: v for k, v in next(iter(sets.values())).items() if k not in shared}
           for m, sets in per_model.items() if len(sets) == 1}
    own = {m: o for m, o in own.items() if o}

    def kv(d: dict) -> str:
        return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in d.items())

    parts = ([kv(shared)] if shared else []) + [f"{models.label(m)} also {kv(o)}" for m, o in own.items()]
    if not parts:
        return []
    return ["Settings: " + "; ".join(parts) + " (the suite's `set`; every other parameter at its default)."]


def engine_text(results: list, paradigm: str) -> list[str]:
    """Where some runs of ``paradigm`` ran on the covariance engine (``sampler="wishart"``),
    one sentence naming those models and the engine of the others; none where every run is
    the run loop's."""
    runs = [r for r in results if isinstance(r, RunResult) and r.config["paradigm"] == paradigm]
    engine = sorted({models.label(r.config["model"]) for r in runs if r.config["runner"].get("sampler") == "wishart"})
    if not engine:
        return []
    loop = sorted({models.label(r.config["model"]) for r in runs} - set(engine))
    return [f"Engines: {', '.join(engine)} on the covariance engine (sampler 'wishart': batch covariances drawn "
            "exactly, held-out losses exact expectations)" + (f"; {', '.join(loop)} on the run loop (the paradigm's "
                                                              "own samples, sampled held-out losses)" if loop else "")
            + ". The two agree in distribution, not number by number."]


def build(suite: Suite, results_by_view: dict[str, list], tuning: pd.DataFrame | None = None) -> dict:
    """Everything a report shows: the scores, per view the ranked tables and the overall table,
    the metric key, the failures and the provenance."""
    scores = scores_of(results_by_view)
    _check_duplicates(scores)
    ok = [r for rs in results_by_view.values() for r in rs if isinstance(r, RunResult)]
    paradigm_ids = {r.config["paradigm"]: r.config["paradigm_id"] for r in ok}
    tables = {}
    for view in results_by_view:
        s = scores[scores["view"] == view]
        per, caveats = {}, {}
        for paradigm in s["paradigm"].unique():
            t = ranked(s, paradigm, labels=_labels(tuning, paradigm) if view == "tuned" else None)
            if not t.empty:       # a paradigm whose runs all failed has no table (its failures are listed)
                per[paradigm] = t
                caveats[paradigm] = settings_text(suite, paradigm) + engine_text(results_by_view[view], paradigm) + \
                    list(t.attrs.get("caveats", [])) + (
                    _tuning_caveats(tuning, paradigm) if view == "tuned" else [])
        tables[view] = {"paradigms": per, "overall": overall(per), "caveats": caveats}
    failed = [r for rs in results_by_view.values() for r in rs if isinstance(r, Failure)]
    seeds = scores[scores["metric"] != "failed"].groupby("paradigm")["seed"].nunique().to_dict()
    return {"suite": suite, "scores": scores, "tables": tables, "paradigm_ids": paradigm_ids, "failed": failed,
            "key": metric_key(scores), "tuning": tuning, "protocol": protocol_text(tuning), "seeds": seeds,
            "configs": {config_id(r.config): {k: r.config[k] for k in ("paradigm", "model", "paradigm_params",
                                                                         "model_params", "runner")} for r in ok}}


def markdown(report: dict, full: bool = True) -> str:
    """The report as markdown: per view, the headline tables and the overall table; with
    ``full``, also the metric key and the failed runs (the terminal gets ``full=False``)."""
    arrow = "higher" if METRICS[PRIMARY].higher_is_better else "lower"
    md = [f"# Leaderboard: suite `{report['suite'].name}`", "",
          f"switchbench {switchbench.__version__}. Cells: mean ± 95% t-interval over seeds "
          f"({', '.join(f'{p}: {n}' for p, n in report['seeds'].items())}). Ranked by `{PRIMARY}` ({arrow} is better; "
          f"ties by `{TIEBREAK}`); models whose intervals overlap share a rank. `censored`: fraction of those switches "
          "that never met the criterion (counted at their block's length). `p vs next`: exact paired permutation "
          "test over seeds against the next model, Holm-corrected over the table; n/a where the paired differences "
          "have no variance. † privileged (told the task identity).", "", report["protocol"], ""]
    for view, t in report["tables"].items():
        md += [f"## View: {view}" + (" (every model at its card's defaults)" if view == "published" else
                                     " (equal tuning budget; the selected setting in brackets)"), ""]
        for paradigm, table in t["paradigms"].items():
            md += [f"### {paradigm} (`{report['paradigm_ids'].get(paradigm, '?')}`, {report['seeds'].get(paradigm)} "
                   "seeds)", "", table.to_markdown(), ""]
            md += [f"> {c}" for c in t.get("caveats", {}).get(paradigm, [])] + (
                [""] if t.get("caveats", {}).get(paradigm) else [])
        if len(t["paradigms"]) > 1:
            md += [f"### Overall ({view}): mean rank over the paradigms a model runs", "",
                   t["overall"].to_markdown(index=False), ""]
    if full:
        if report["failed"]:
            md += ["## Failed runs", ""] + [f"- {f.spec.model} on {f.spec.paradigm}, seed {f.spec.seed}: {f.reason}"
                                             for f in report["failed"]] + [""]
        md += ["## Metrics", "", report["key"].to_markdown(index=False), "",
               "Every metric of every run is in `scores.csv` (column `config_id`, resolved in `leaderboard.json`).", ""]
    return "\n".join(md)


def to_json(report: dict) -> dict:
    """leaderboard.json: provenance, configurations and per view every (paradigm, model)'s summary."""
    entries = []
    for view in report["tables"]:
        s = report["scores"][report["scores"]["view"] == view]
        summary = summarise(s)
        for (paradigm, model), g in summary.groupby(["paradigm", "model"]):
            ids = sorted(set(s.loc[(s["paradigm"] == paradigm) & (s["model"] == model), "config_id"]) - {""})
            card = entry.card if (entry := model_entry(model)) else None
            entries.append({
                "view": view, "paradigm": paradigm, "paradigm_version": report["paradigm_ids"].get(paradigm),
                "model": model, "card": asdict(card) if card else None, "package_version": switchbench.__version__,
                "config_id": ids[0] if ids else None,
                "config": report["configs"].get(ids[0]) if ids else None,
                "metrics": {row.metric: {"mean": row.mean, "ci95": None if np.isnan(row.ci95) else row.ci95,
                                         "n": int(row.n), "higher_is_better": row.higher_is_better}
                            for row in g.itertuples()},
            })
    source = source_commit()
    return {"schema_version": SCHEMA_VERSION, "suite": report["suite"].name, "suite_file": report["suite"].source,
            "package_version": switchbench.__version__, "git_commit": source["commit"], "source": source,
            "primary_metric": PRIMARY, "tiebreak": TIEBREAK, "protocol": report["protocol"],
            "tuning": None if report["tuning"] is None else report["tuning"].to_dict(orient="records"),
            "paradigm_versions": report["paradigm_ids"], "configs": report["configs"], "entries": entries,
            "failed": [{**asdict(f.spec), "reason": f.reason} for f in report["failed"]]}


def write(suite: Suite, results, out: Path, tuning: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write scores.csv, leaderboard.md, leaderboard.json, figures/ and site/index.html, each
    file atomically (a failed write leaves the file before it whole), the tables only once all
    of them are made. ``results``: a list of run results (the published view) or view -> list."""
    from switchbench.benchmark import plots, site

    out = Path(out)
    results_by_view = results if isinstance(results, dict) else {"published": results}
    report = build(suite, results_by_view, tuning)
    texts = {"scores": report["scores"].to_csv(index=False), "markdown": markdown(report),   # all made before any
             "json": json.dumps(to_json(report), indent=1, default=float)}                   # file is written
    (out / "figures").mkdir(parents=True, exist_ok=True)
    files = {"scores": out / "scores.csv", "markdown": out / "leaderboard.md", "json": out / "leaderboard.json"}
    for what, path in files.items():
        write_atomic(path, texts[what])
    figures = {}
    scores = report["scores"]        # one colour per model on every chart of a paradigm's tab (both views)
    colours = {p: plots.model_colours(scores.loc[scores["paradigm"] == p, "model"].unique())
               for p in scores["paradigm"].unique()}
    for view, rs in results_by_view.items():
        s = report["scores"][report["scores"]["view"] == view]
        for paradigm in report["tables"][view]["paradigms"]:
            check_slug(paradigm, "a paradigm name in a figure's file name")
            runs = [r for r in rs if isinstance(r, RunResult) and r.config["paradigm"] == paradigm]
            stem = f"{paradigm}_{view}"
            figures[f"{stem}_metrics"] = plots.metric_bars(s[s["paradigm"] == paradigm],
                                                           out / "figures" / f"{stem}_metrics.png",
                                                           colours=colours[paradigm],
                                                           exploded=exploded(s, paradigm))
            labels = setting_labels([r.config for r in runs])
            curves = plots.switch_curves(runs, out / "figures" / f"{stem}_switch_time.png", colours=colours[paradigm],
                                         names=[models.label(r.config["model"]) + labels[config_id(r.config)]
                                                for r in runs])
            if curves is not None:            # no switch (one block): no figure rather than empty axes
                figures[f"{stem}_switch_time"] = curves
    files.update(figures)
    files["site"] = site.write_site(report, figures, out / "site")
    return files


def run_suite(path, jobs: int = 1, backend: str = "local", out: Path | None = None, threads: int = 1,
              tuning: Path | None = None, cache: bool | str | None = None, options=None) -> dict[str, Path]:
    """Run a suite (resuming from the cache; ``cache="refresh"`` recomputes) in its published
    view and, given a tuning table (``switchbench tune``), its tuned view; print the headline
    tables and write the results to ``out`` (default: a report folder under the cache, never
    ``results/``; checked writable before any run). When some runs failed, the report of the
    others is written and :class:`~switchbench.benchmark.suite.RunsFailed` is raised (its
    ``files`` the report's). ``options`` (a :class:`~switchbench.benchmark.config.RunOptions`),
    where given, replaces ``threads`` and ``cache``."""
    from switchbench.benchmark.tuning import read_tuning

    suite = load_suite(path)
    table = read_tuning(tuning) if tuning is not None else None
    if table is not None:
        check_tuning(table, suite, tuning)
    out = check_out(Path(out) if out is not None else cache_root() / "reports" / suite.name)
    results = run_views(view_specs(suite, table), jobs=jobs, backend=backend, threads=threads,
                        desc=f"suite {suite.name}", cache=cache, options=options)
    files = write(suite, results, out, table)
    report_md = files["markdown"].read_text().split("\n## Failed runs")[0].split("\n## Metrics")[0]
    print("\n".join(line if line.startswith(("|", "#")) else textwrap.fill(line, 100)
                    for line in report_md.splitlines()))   # tables as they are, prose wrapped for a terminal
    print(f"full report (metric key, every metric, figures): {files['markdown']}, {files['json']}, {files['scores']}")
    print(f"web page: {files['site']}")
    failed = failure_lines([r for rs in results.values() for r in rs])
    if failed:
        raise RunsFailed(sorted(set(failed)), sum(len(rs) for rs in results.values()), files,
                         [r.trace for rs in results.values() for r in rs if isinstance(r, Failure) and r.trace])
    return files
