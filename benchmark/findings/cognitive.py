"""Cognitive tasks (Yang et al. 2019, neurogym): forgetting under a blocked curriculum."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from switchbench.benchmark import plots
from switchbench.benchmark.findings.base import Check, Report, _ok, finding
from switchbench.benchmark.runner import cache_root
from switchbench.benchmark.suite import run_many, seeds


#: cognitive-forgetting: the full suite's cognitive setting (go / anti, 6 blocks of 300 batches)
FORGETTING_SETUP = {"envs": "yang19-pair", "n_blocks": 6, "block_size": 300}
FORGETTING_MODELS = ("leaky-rnn", "leaky-rnn-ewc", "leaky-rnn-si", "gated-rnn", "modular-primitives", "per-task-rnn")


@finding("cognitive-forgetting")
def cognitive_forgetting(n_seeds: int = 3, jobs: int = 1, figures: Path | None = None, progress: bool = True,
                         setup: dict | None = None, model_params: dict | None = None) -> Report:
    """Forgetting under a blocked schedule of cognitive tasks: leaky RNN, EWC, SI, gated RNN, modular primitives.

    ``cognitive-switch`` with go / anti (Yang et al.'s tasks; anti reverses go's response)
    blocked A B A B A B, 300 batches of 64 trials each, every model with its defaults
    (``per-task-rnn``: the no-sharing reference). Forgetting (DESIGN.md) on held-out trials,
    R0 (as is) and Rk (after 50 adaptation steps), and the final held-out performance. Checks:
    the shared leaky RNN forgets (R0 > 0.05); EWC and SI each forget less than it; the modular
    network, whose trained weights are per task, does not forget (R0 <= 0.01)."""
    setup = {**FORGETTING_SETUP, **(setup or {})}
    specs = [s for m in FORGETTING_MODELS
             for s in seeds("cognitive-switch", m, n_seeds, **setup, **(model_params or {}).get(m, {}))]
    results = _ok(run_many(specs, jobs=jobs, progress=progress, desc="cognitive-forgetting"), "cognitive-forgetting")
    rows = []
    for r in results:
        base = {"model": r.config["model"], "seed": r.config["seed"]}
        rows += [{**base, "measure": "forgetting (R0)", "value": r.metrics["forgetting_R0"]},
                 {**base, "measure": "forgetting (Rk)", "value": r.metrics["forgetting_Rk"]},
                 {**base, "measure": "final held-out performance",
                  "value": float(r.robustness.query("kind == 'none'")["score"].mean())
                  if r.robustness is not None else float("nan")}]
    df = pd.DataFrame(rows)
    table = df.groupby(["model", "measure"])["value"].mean().unstack("measure")
    f0 = table["forgetting (R0)"]
    checks = [Check("leaky-rnn forgetting (R0)", float(f0["leaky-rnn"]), "> 0.05 (a shared network forgets)",
                    f0["leaky-rnn"] > 0.05)]
    for m in ("leaky-rnn-ewc", "leaky-rnn-si"):
        checks.append(Check(f"{m} forgetting (R0) minus leaky-rnn's", float(f0[m] - f0["leaky-rnn"]), "< 0",
                            f0[m] < f0["leaky-rnn"]))
    checks.append(Check("modular-primitives forgetting (R0)", float(f0["modular-primitives"]), "<= 0.01",
                        f0["modular-primitives"] <= 0.01))
    out = Path(figures) if figures is not None else cache_root() / "reports" / "cognitive-forgetting"
    fig = plots.grouped_bars(df.dropna(subset=["value"]), out / "cognitive_forgetting.png", hue=None)
    return Report("cognitive-forgetting", checks, ["mean over seeds:\n" + table.round(4).to_string()], [fig])
