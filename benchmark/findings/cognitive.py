"""Cognitive tasks (Yang et al. 2019, neurogym): forgetting under a blocked curriculum."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from switchbench.benchmark import plots
from switchbench.benchmark.findings.base import Check, Report, _ok, finding, model_overrides
from switchbench.benchmark.runner import cache_root
from switchbench.benchmark.suite import RunSpec, run_many


#: cognitive-forgetting: go / anti, 6 blocks of 200 batches (the full suite has 300), dt = 100 ms
#: (the leaky RNN's tau stays Yang et al.'s 100 ms, so alpha = 1)
FORGETTING_SETUP = {"envs": "yang19-pair", "n_blocks": 6, "block_size": 200, "dt": 100}
#: label -> (model, its parameters); random-modules is the modular network's control (random frozen modules)
FORGETTING_MODELS = {"leaky-rnn": ("leaky-rnn", {}), "leaky-rnn-ewc": ("leaky-rnn-ewc", {}),
                     "leaky-rnn-si": ("leaky-rnn-si", {}), "gated-rnn": ("gated-rnn", {}),
                     "modular-primitives": ("modular-primitives", {}),
                     "random-modules": ("modular-primitives", {"pretrain": "none"}),
                     "per-task-rnn": ("per-task-rnn", {})}


@finding("cognitive-forgetting", source="Yang et al. 2019 (Nat. Neurosci.) and the continual-learning methods' papers (EWC, SI); thresholds ours")
def cognitive_forgetting(n_seeds: int = 3, *, jobs: int = 1, overrides: dict | None = None,
                         figures: Path | None = None, progress: bool = True) -> Report:
    """Forgetting under a blocked schedule of cognitive tasks: leaky RNN, EWC, SI, gated RNN, modular primitives.

    ``cognitive-switch`` with go / anti (Yang et al.'s tasks; anti reverses go's response)
    blocked A B A B A B, 200 batches of 64 trials each, dt 100 ms, every model with its
    defaults (256 hidden units; ``per-task-rnn``: the no-sharing reference; random-modules:
    ``modular-primitives`` with random frozen modules). Forgetting (DESIGN.md) on held-out
    trials, R0 (as is) and Rk (after 50 adaptation steps), the final held-out normalised loss
    and Yang et al.'s performance. Checks: the shared leaky RNN forgets (R0 > 0.05); EWC and
    SI each forget less than it; the modular network ends with a lower held-out loss (mean
    over both tasks) than the leaky RNN of the same size, which forgets, and than random
    frozen modules, which do not forget either (so pretraining, not freezing alone, must
    earn it). ``overrides`` address runs by these labels (``random-modules/lr``)."""
    setup = dict(FORGETTING_SETUP)
    specs, labels = [], []
    for label, (model, kw) in FORGETTING_MODELS.items():
        params = {**setup, **kw, **model_overrides(overrides, label)}
        specs += [RunSpec("cognitive-switch", model, s, params) for s in range(n_seeds)]
        labels += [label] * n_seeds
    results = _ok(run_many(specs, jobs=jobs, progress=progress, desc="cognitive-forgetting"), "cognitive-forgetting")
    rows = []
    for label, r in zip(labels, results):
        base = {"model": label, "seed": r.config["seed"]}
        intact = r.robustness.query("kind == 'none'") if r.robustness is not None else None
        rows += [{**base, "measure": "forgetting (R0)", "value": r.metrics["forgetting_R0"]},
                 {**base, "measure": "forgetting (Rk)", "value": r.metrics["forgetting_Rk"]},
                 {**base, "measure": "final held-out loss", "value": float(r.R0[-1].mean())},
                 {**base, "measure": "final held-out performance",
                  "value": float(intact["score"].mean()) if intact is not None else float("nan")}]
    df = pd.DataFrame(rows)
    table = df.groupby(["model", "measure"])["value"].mean().unstack("measure")
    f0, loss = table["forgetting (R0)"], table["final held-out loss"]
    checks = [Check("leaky-rnn forgetting (R0)", float(f0["leaky-rnn"]), "> 0.05 (a shared network forgets)",
                    f0["leaky-rnn"] > 0.05)]
    for m in ("leaky-rnn-ewc", "leaky-rnn-si"):
        checks.append(Check(f"{m} forgetting (R0) minus leaky-rnn's", float(f0[m] - f0["leaky-rnn"]), "< 0",
                            f0[m] < f0["leaky-rnn"]))
    for control in ("leaky-rnn", "random-modules"):
        d = float(loss["modular-primitives"] - loss[control])
        checks.append(Check(f"final held-out loss, modular-primitives minus {control}", d,
                            "< 0 (modular keeps both tasks better)", d < 0))
    out = Path(figures) if figures is not None else cache_root() / "reports" / "cognitive-forgetting"
    fig = plots.grouped_bars(df.dropna(subset=["value"]), out / "cognitive_forgetting.png", hue=None)
    return Report("cognitive-forgetting", checks, ["mean over seeds:\n" + table.round(4).to_string()], [fig])
