"""Many runs at once: a list of (paradigm, model, seed, overrides) run in parallel worker
processes (joblib; one torch thread per worker), each cached as it finishes, so an
interrupted sweep loses no finished run and resumes where it stopped.

A run that fails (an exception, a NaN loss, a model declining the paradigm) is recorded as
a :class:`Failure` with its reason; the others go on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from switchbench.benchmark.runner import RunResult, run
from switchbench.errors import SwitchbenchError


@dataclass(frozen=True)
class RunSpec:
    paradigm: str
    model: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    spec: RunSpec
    reason: str


def _one(spec: RunSpec, threads: int) -> RunResult | Failure:
    import torch

    torch.set_num_threads(threads)
    try:
        return run(spec.paradigm, spec.model, spec.seed, progress=False, **spec.overrides)
    except SwitchbenchError as e:
        return Failure(spec, str(e))


def run_many(specs: Iterable[RunSpec], jobs: int = 1, progress: bool = True, desc: str = "runs"):
    """Run every spec (cached ones load at once); results in the order given."""
    specs = list(specs)
    if jobs == 1:
        it = (_one(s, 1) for s in specs)
    else:
        it = Parallel(n_jobs=jobs, return_as="generator")(delayed(_one)(s, 1) for s in specs)
    return list(tqdm(it, total=len(specs), desc=desc, disable=not progress))


def seeds(paradigm: str, model: str, n: int, **overrides) -> list[RunSpec]:
    """Seeds 0..n-1 of one configuration."""
    return [RunSpec(paradigm, model, s, dict(overrides)) for s in range(n)]


def metrics_table(results) -> pd.DataFrame:
    """Tidy long table: paradigm, model, seed, metric, value (failed runs as ``failed`` rows)."""
    rows = []
    for r in results:
        if isinstance(r, Failure):
            rows.append({"paradigm": r.spec.paradigm, "model": r.spec.model, "seed": r.spec.seed,
                         "metric": "failed", "value": float("nan"), "reason": r.reason})
            continue
        for name, value in r.metrics.items():
            rows.append({"paradigm": r.config["paradigm"], "model": r.config["model"], "seed": r.config["seed"],
                         "metric": name, "value": value, "reason": ""})
    return pd.DataFrame(rows, columns=["paradigm", "model", "seed", "metric", "value", "reason"])
