"""Modular latent primitives (Marton, Lajoie & Rajan): efficiency, robustness and generalisation
on cognitive tasks, each against controls that could win.

The MoLaP abstract claims that frozen modules pretrained on a task corpus let new tasks be
learned with fewer parameters and updates, more robustly, and that generalisation to new
tasks is facilitated. Each finding here learns tasks that the modules never saw, one task per
run, and compares ``modular-primitives`` (pretrained for independent, informative
components; corpus molap9 less the scored task) with two controls of the same 256 hidden
units: **random-modules** (the same architecture and per-task training, modules random and
frozen: a reservoir) and **leaky-rnn** (Yang et al.'s network, every weight trained).

Runs are addressed in ``overrides`` by these labels (``random-modules/lr``,
``modular-primitives/pretrain_steps``, ...; plain keys go to every run; see
:func:`~.base.model_overrides`); ``overrides["tasks"]`` replaces a finding's list of tasks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from switchbench.benchmark import plots
from switchbench.benchmark.findings.base import Check, Report, _ok, finding, model_overrides
from switchbench.benchmark.runner import cache_root
from switchbench.benchmark.suite import RunSpec, run_many
from switchbench.paradigms.cognitive import SWITCH_CRITERION

#: the runs of every molap finding: one task alone, 600 batches of 64 trials, at dt = 100 ms
#: (the leaky RNN's tau stays Yang et al.'s 100 ms, so alpha = 1; dt 20 ms costs ~8x per step)
MOLAP_SETUP = {"n_blocks": 1, "block_size": 600, "dt": 100}
#: label -> (model, its parameters): the modular network and its two controls (256 hidden units each)
MOLAP_MODELS = {"modular-primitives": ("modular-primitives", {}),
                "random-modules": ("modular-primitives", {"pretrain": "none"}),
                "leaky-rnn": ("leaky-rnn", {})}
#: molap-efficiency / molap-robustness: tasks of the molap9 corpus, each held out of the modules' pretraining
MOLAP_HELD_OUT = ("yang19.dlyanti-v0", "yang19.dlygo-v0")
#: molap-generalisation: tasks outside the molap9 corpus altogether (a decision task, a reaction-time task)
MOLAP_NEW_TASKS = ("yang19.dm1-v0", "yang19.rtanti-v0")


def molap_runs(tasks, n_seeds: int, jobs: int, overrides: dict | None, progress: bool, desc: str) -> list:
    """One run per task, label of :data:`MOLAP_MODELS` and seed (cached: findings share them)."""
    overrides = dict(overrides or {})
    tasks = overrides.pop("tasks", tasks)
    specs = []
    for env in tasks:
        for label, (model, kw) in MOLAP_MODELS.items():
            params = {**MOLAP_SETUP, "envs": [env], **kw, **model_overrides(overrides, label)}
            specs += [RunSpec("cognitive-switch", model, s, params) for s in range(n_seeds)]
    results = _ok(run_many(specs, jobs=jobs, progress=progress, desc=desc), desc)
    labels = [label for _ in tasks for label in MOLAP_MODELS for _ in range(n_seeds)]
    for r, label in zip(results, labels):
        r.label = label
    return results


def task_name(r) -> str:
    return r.config["paradigm_params"]["envs"][0].removeprefix("yang19.").removesuffix("-v0")


def steps_to_criterion(r) -> float:
    """Learning steps until the online normalised loss first meets the paradigm's switch
    criterion (<= 0.2) on a single-task run; the block length when it never does (censored)."""
    column, threshold = SWITCH_CRITERION
    hit = np.flatnonzero(r.log[column].to_numpy() <= threshold)
    return float(hit[0]) if len(hit) else float(len(r.log))


def held_out_performance(r) -> float:
    return float(r.robustness.query("kind == 'none'")["score"].mean())


def _rows(results) -> pd.DataFrame:
    return pd.DataFrame([{"model": r.label, "task": task_name(r), "seed": r.config["seed"],
                          "steps to criterion": steps_to_criterion(r),
                          "censored": steps_to_criterion(r) >= len(r.log),
                          "held-out performance": held_out_performance(r),
                          "trainable parameters": r.metrics["params"],
                          "parameters changed": r.metrics["params_changed_per_task"]} for r in results])


def _ratio_checks(mean: pd.Series, measure: str, claim: str) -> list[Check]:
    """``modular-primitives / control < 1`` for both controls."""
    out = []
    for control in ("leaky-rnn", "random-modules"):
        ratio = float(mean["modular-primitives"] / max(mean[control], 1e-9))
        out.append(Check(f"{measure}, modular-primitives / {control}", ratio, f"< 1 ({claim})", ratio < 1))
    return out


def _censored_note(df: pd.DataFrame) -> list[str]:
    """A warning line when no run met the criterion: the step checks then compare block lengths."""
    if df["censored"].all():
        return [f"no run met the criterion within its {int(df['steps to criterion'].max())} steps: the step checks "
                "compare block lengths (FAIL by tie), not learning speed; lengthen the block (block_size) to measure it"]
    return []


def _corpus_note(results) -> str:
    kw = next(r.config["model_params"] for r in results if r.label == "modular-primitives")
    corpus, hold_out = kw.get("corpus", "molap9"), kw.get("hold_out", True)
    return (f"modular-primitives corpus: {corpus}, " + ("less the scored task where it has it (never seen by the "
            "modules)" if hold_out else "INCLUDING the scored task (hold_out=False)"))


def _figure(df: pd.DataFrame, measures, figures, name: str) -> Path:
    long = df.melt(id_vars=["model", "task", "seed", "censored"], value_vars=list(measures), var_name="measure")
    long["censored"] = long["censored"] & (long["measure"] == "steps to criterion")   # a bound on steps only
    out = Path(figures) if figures is not None else cache_root() / "reports" / "molap"
    return plots.grouped_bars(long, out / f"{name}.png", x="task", hue="model", censored="censored",
                              ylabels={"steps to criterion": "steps to criterion (learning steps)",
                                       "held-out performance": "held-out performance (fraction)",
                                       "parameters changed": "parameters changed (count)"})


@finding("molap-efficiency", source="Marton, Lajoie & Rajan (modular latent primitives), the abstract's efficiency claim")
def molap_efficiency(n_seeds: int = 3, *, jobs: int = 1, overrides: dict | None = None, figures: Path | None = None,
                     progress: bool = True) -> Report:
    """Fewer parameters and updates: a held-out corpus task learned by modular primitives vs both controls.

    Each task of :data:`MOLAP_HELD_OUT` (dlyanti, dlygo) is learned alone (one block of 600
    batches of 64 trials, dt 100 ms) by ``modular-primitives`` pretrained on the other molap9
    tasks, by random frozen modules and by ``leaky-rnn`` (256 hidden units each). Reported:
    trainable parameters and parameters changed (the modular networks train only the task's
    input and output weights: fewer by construction, so not a check), steps to the criterion
    (online normalised loss <= 0.2) and Yang et al.'s performance on held-out trials. Checks
    (means over tasks and seeds): steps to criterion, modular / each control < 1 (fewer
    updates); held-out performance within 0.1 of leaky-rnn's (comparable)."""
    results = molap_runs(MOLAP_HELD_OUT, n_seeds, jobs, overrides, progress, "molap-efficiency")
    df = _rows(results)
    mean = df.groupby("model")[["steps to criterion", "held-out performance"]].mean()
    gap = float(mean.loc["leaky-rnn", "held-out performance"] - mean.loc["modular-primitives", "held-out performance"])
    checks = _ratio_checks(mean["steps to criterion"], "steps to criterion", "fewer updates") + [
        Check("held-out performance, leaky-rnn minus modular-primitives", gap, "<= 0.1 (comparable)", gap <= 0.1)]
    table = df.groupby(["task", "model"])[["trainable parameters", "parameters changed", "steps to criterion",
                                           "censored", "held-out performance"]].mean()
    fig = _figure(df, ["steps to criterion", "held-out performance", "parameters changed"], figures,
                  "molap_efficiency")
    return Report("molap-efficiency", checks, [_corpus_note(results), "mean over seeds (censored: fraction of runs "
                                               "that never met the criterion):\n" + table.round(3).to_string()]
                  + _censored_note(df), [fig])


@finding("molap-robustness", source="Marton, Lajoie & Rajan (modular latent primitives), the abstract's robustness claim")
def molap_robustness(n_seeds: int = 3, *, jobs: int = 1, overrides: dict | None = None, figures: Path | None = None,
                     progress: bool = True) -> Report:
    """More robust: the performance drop of the final networks of molap-efficiency under damage.

    The same runs (from the cache), each perturbation of
    :data:`switchbench.benchmark.metrics.ROBUSTNESS` (recurrent weight noise, 10 and 30% unit
    ablation, input noise; module silencing for the modular networks only), 3 random
    repeats, scored by Yang et al.'s performance (last time step) on held-out trials.
    Checks: the mean drop over the perturbations all three networks have, modular / each
    control < 1 (more robust)."""
    results = molap_runs(MOLAP_HELD_OUT, n_seeds, jobs, overrides, progress, "molap-robustness")
    rows = []
    for r in results:
        t = r.robustness
        base = t[t["kind"] == "none"]["score"].mean()
        for (kind, level), g in t[t["kind"] != "none"].groupby(["kind", "level"]):
            rows.append({"model": r.label, "task": task_name(r), "seed": r.config["seed"],
                         "perturbation": f"{kind} {level:g}", "measure": "performance drop",
                         "value": float(base - g["score"].mean())})
    df = pd.DataFrame(rows)
    wide = df.groupby(["perturbation", "model"])["value"].mean().unstack("model")
    both = wide.dropna()
    checks = _ratio_checks(both.mean(), "mean performance drop over shared perturbations", "more robust")
    out = Path(figures) if figures is not None else cache_root() / "reports" / "molap"
    fig = plots.grouped_bars(df, out / "molap_robustness.png", x="perturbation", hue="model")
    intact = pd.DataFrame([(r.label, held_out_performance(r)) for r in results]).groupby(0)[1].mean()
    return Report("molap-robustness", checks, [
        "intact held-out performance: " + ", ".join(f"{k} {v:.3f}" for k, v in intact.items()),
        "performance drop (held-out trials), mean over tasks and seeds:\n" + wide.round(3).to_string()], [fig])


@finding("molap-generalisation", source="Marton, Lajoie & Rajan (modular latent primitives), the abstract's generalisation claim")
def molap_generalisation(n_seeds: int = 3, *, jobs: int = 1, overrides: dict | None = None,
                         figures: Path | None = None, progress: bool = True) -> Report:
    """Generalisation facilitated: steps to criterion on tasks outside the corpus, against the controls.

    Each task of :data:`MOLAP_NEW_TASKS` (dm1, rtanti: not in molap9, so the modules'
    pretraining corpus is all nine molap9 tasks) is learned alone as in molap-efficiency by
    the modular network and both controls. Checks (means over tasks and seeds): steps to the
    criterion (online normalised loss <= 0.2), modular / each control < 1 (faster)."""
    results = molap_runs(MOLAP_NEW_TASKS, n_seeds, jobs, overrides, progress, "molap-generalisation")
    df = _rows(results)
    mean = df.groupby("model")["steps to criterion"].mean()
    checks = _ratio_checks(mean, "steps to criterion on a task outside the corpus", "learned faster")
    table = df.groupby(["task", "model"])[["steps to criterion", "censored", "held-out performance"]].mean()
    fig = _figure(df, ["steps to criterion", "held-out performance"], figures, "molap_generalisation")
    return Report("molap-generalisation", checks, [_corpus_note(results), "mean over seeds:\n" +
                                                   table.round(3).to_string()] + _censored_note(df), [fig])
