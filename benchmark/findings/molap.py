"""Modular latent primitives (Marton, Gagnon, Lajoie & Rajan): efficiency and robustness on cognitive tasks."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from switchbench.benchmark import plots
from switchbench.benchmark.findings.base import Check, Report, _ok, finding
from switchbench.benchmark.runner import cache_root
from switchbench.benchmark.suite import run_many, seeds


#: molap-efficiency / molap-robustness: each task is learned by networks that never saw it
MOLAP_HELD_OUT = ("yang19.dlyanti-v0", "yang19.dlygo-v0")
MOLAP_SETUP = {"n_blocks": 1, "block_size": 1500}
MOLAP_MODELS = {"leaky-rnn": {}, "modular-primitives": {"corpus": "molap9", "hold_out": True}}


def _molap_runs(n_seeds: int, jobs: int, progress: bool, setup: dict | None, model_params: dict | None,
                desc: str) -> list:
    """One run per held-out task, model and seed (shared by the two molap findings: cached once)."""
    setup = {**MOLAP_SETUP, **(setup or {})}
    specs = [s for env in MOLAP_HELD_OUT for m, kw in MOLAP_MODELS.items()
             for s in seeds("cognitive-switch", m, n_seeds, envs=[env], **setup, **kw,
                            **(model_params or {}).get(m, {}))]
    return _ok(run_many(specs, jobs=jobs, progress=progress, desc=desc), desc)


def _held_out_name(r) -> str:
    return r.config["paradigm_params"]["envs"][0].removeprefix("yang19.").removesuffix("-v0")


@finding("molap-efficiency")
def molap_efficiency(n_seeds: int = 3, jobs: int = 1, figures: Path | None = None, progress: bool = True,
                     setup: dict | None = None, model_params: dict | None = None) -> Report:
    """Modular primitives learn a held-out task with far fewer trained parameters at comparable performance.

    Each task of ``MOLAP_HELD_OUT`` (dlyanti, dlygo of the molap9 corpus) is learned alone
    (one block of 1500 batches of 64 trials, neurogym defaults, dt 100 ms) by ``leaky-rnn``
    (Yang et al.: every weight trained) and by ``modular-primitives`` pretrained on the other
    eight molap9 tasks (``corpus="molap9", hold_out=True``: its modules never saw the task),
    which then trains only that task's input and output weights. Measured: parameters changed
    while learning the task (``params_changed_per_task``) and Yang et al.'s performance of the
    final model on held-out trials. Checks: leaky-rnn changes >= 10x as many parameters; the
    modular network's held-out performance is within 0.1 of leaky-rnn's (mean over tasks and
    seeds)."""
    results = _molap_runs(n_seeds, jobs, progress, setup, model_params, "molap-efficiency")
    rows = [{"model": r.config["model"], "task": _held_out_name(r), "seed": r.config["seed"],
             "parameters changed": r.metrics["params_changed_per_task"],
             "held-out performance": float(r.robustness.query("kind == 'none'")["score"].mean()),
             "final online performance": r.metrics["final_performance"]} for r in results]
    df = pd.DataFrame(rows)
    mean = df.groupby("model")[["parameters changed", "held-out performance"]].mean()
    ratio = float(mean.loc["leaky-rnn", "parameters changed"] / mean.loc["modular-primitives", "parameters changed"])
    gap = float(mean.loc["leaky-rnn", "held-out performance"] - mean.loc["modular-primitives", "held-out performance"])
    checks = [Check("parameters changed while learning the held-out task, leaky-rnn / modular-primitives", ratio,
                    ">= 10", ratio >= 10),
              Check("held-out performance, leaky-rnn minus modular-primitives", gap, "<= 0.1 (comparable)",
                    gap <= 0.1)]
    table = df.groupby(["task", "model"])[["parameters changed", "held-out performance",
                                           "final online performance"]].mean()
    long = df.melt(id_vars=["model", "task", "seed"], value_vars=["parameters changed", "held-out performance"],
                   var_name="measure")
    out = Path(figures) if figures is not None else cache_root() / "reports" / "molap"
    fig = plots.grouped_bars(long, out / "molap_efficiency.png", x="task", hue="model")
    return Report("molap-efficiency", checks, ["mean over seeds:\n" + table.round(3).to_string()], [fig])


@finding("molap-robustness")
def molap_robustness(n_seeds: int = 3, jobs: int = 1, figures: Path | None = None, progress: bool = True,
                     setup: dict | None = None, model_params: dict | None = None) -> Report:
    """Modular primitives vs the fully shared leaky RNN: performance drop under damage (a report).

    The final networks of ``molap-efficiency`` (same runs, from the cache), each perturbation
    of :data:`switchbench.benchmark.metrics.ROBUSTNESS` (recurrent weight noise, 10 and 30%
    unit ablation, input noise; module silencing for the modular network only), 3 random
    repeats, scored by Yang et al.'s performance on held-out trials. The check states the
    modular-primitives claim (more robust than a fully shared network): its mean drop over
    the perturbations both networks have is below leaky-rnn's. Module silencing (one of
    three modules, a third of the units) is reported beside leaky-rnn's 30% unit ablation."""
    results = _molap_runs(n_seeds, jobs, progress, setup, model_params, "molap-robustness")
    rows = []
    for r in results:
        t = r.robustness
        base = t[t["kind"] == "none"]["score"].mean()
        for (kind, level), g in t[t["kind"] != "none"].groupby(["kind", "level"]):
            rows.append({"model": r.config["model"], "task": _held_out_name(r), "seed": r.config["seed"],
                         "perturbation": f"{kind} {level:g}", "measure": "performance drop",
                         "value": float(base - g["score"].mean())})
    df = pd.DataFrame(rows)
    wide = df.groupby(["perturbation", "model"])["value"].mean().unstack("model")
    both = wide.dropna()
    ratio = float(both["modular-primitives"].mean() / max(both["leaky-rnn"].mean(), 1e-9))
    checks = [Check("mean performance drop over shared perturbations, modular-primitives / leaky-rnn", ratio,
                    "< 1 (modular more robust)", ratio < 1)]
    out = Path(figures) if figures is not None else cache_root() / "reports" / "molap"
    fig = plots.grouped_bars(df, out / "molap_robustness.png", x="perturbation", hue="model")
    return Report("molap-robustness", checks, ["performance drop (held-out trials), mean over tasks and seeds:\n" +
                                               wide.round(3).to_string()], [fig])
