"""Paper findings, each re-measured and printed with its value and PASS/FAIL.

``switchbench reproduce nta-fig2`` runs the gated-network paper's Fig. 2 experiment (two
orthogonal teachers, 20 blocks of 1000 steps, 10 seeds, paper defaults) for the flexible
model and its forgetful control. Time in the paper is ``step x dt`` (dt = 1e-3 here).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gymnasium
import numpy as np

from switchbench.benchmark import metrics as M
from switchbench.benchmark import plots
from switchbench.benchmark.runner import cache_root
from switchbench.benchmark.suite import Failure, run_many, seeds
from switchbench.errors import SwitchbenchError, unknown


@dataclass
class Check:
    name: str
    value: float
    target: str
    passed: bool

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.value:.4g} (target {self.target})"


@dataclass
class Report:
    finding: str
    checks: list[Check]
    notes: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def _ok(results, what):
    bad = [r for r in results if isinstance(r, Failure)]
    if bad:
        raise SwitchbenchError(f"{what}: {bad[0].reason}")
    return results


def nta_fig2(n_seeds: int = 10, jobs: int = 1, figures: Path | None = None, progress: bool = True,
             **overrides) -> Report:
    """Fig. 2 of the gated-network paper: specialisation, gate switching and faster switching.

    Checks (``overrides`` shrink the curriculum for tests, e.g. ``n_blocks=10``):

    - flexible: every teacher's best-match module has cosine >= 0.99 (minimum over seeds);
    - flexible: at the end of each of the last 5 blocks the active teacher's matched gate is
      >= 0.9 and every other gate <= 0.1 (worst case over seeds and blocks);
    - forgetful control: mean best-match cosine <= 0.8;
    - switch time to the paper's criterion (raw loss <= 0.1, normalised 0.4) falls:
      mean over the last 5 switches <= 0.2 x the first 3 for the flexible model, and not
      so (> 0.2) for the forgetful control.
    """
    labels = {"flexible": "gated-linear", "forgetful": "gated-linear-forgetful"}
    specs = [s for m in labels.values() for s in seeds("blocked-linear", m, n_seeds, **overrides)]
    results = _ok(run_many(specs, jobs=jobs, progress=progress, desc="nta-fig2"), "nta-fig2")
    runs = {label: [r for r in results if r.config["model"] == m] for label, m in labels.items()}
    env = gymnasium.make("switchbench/BlockedLinear-v0",
                         **{k: v for k, v in runs["flexible"][0].config["paradigm_params"].items()}).unwrapped
    teachers, dt = env.teachers, runs["flexible"][0].config["model_params"]["dt"]

    checks, notes = [], []
    cos_min, gate_on, gate_off = 1.0, 1.0, 0.0
    for r in runs["flexible"]:
        mods = r.probes["modules"][-1][..., : teachers.shape[-1]]
        match = M.specialisation(teachers, mods)[1]
        C = M.rowwise_cosine(teachers, mods)
        cos_min = min(cos_min, float(C[np.arange(len(match)), match].min()))
        block_tasks = r.log.groupby("block")["task"].first().to_numpy()
        for b in range(len(block_tasks) - 5, len(block_tasks)):
            g = r.probes["gates"][b]
            on = match[block_tasks[b]]
            gate_on = min(gate_on, float(g[on]))
            gate_off = max(gate_off, float(np.delete(g, on).max()))
    checks.append(Check("flexible: min best-match teacher-module cosine", cos_min, ">= 0.99", cos_min >= 0.99))
    checks.append(Check("flexible: min matched gate, last 5 block ends", gate_on, ">= 0.9", gate_on >= 0.9))
    checks.append(Check("flexible: max other gate, last 5 block ends", gate_off, "<= 0.1", gate_off <= 0.1))
    forget_cos = float(np.mean([r.metrics["specialisation"] for r in runs["forgetful"]]))
    checks.append(Check("forgetful: mean best-match cosine", forget_cos, "<= 0.8 (paper code ~0.70)",
                        forget_cos <= 0.8))
    for label in labels:
        times = [M.switch_time(r.log, "loss", 0.1) for r in runs[label]]
        early = float(np.mean([M.switch_time_summary(t)["switch_time_early"] for t in times]))
        late = float(np.mean([M.switch_time_summary(t)["switch_time_late"] for t in times]))
        ratio = late / early
        flexible = label == "flexible"
        checks.append(Check(f"{label}: switch time last 5 / first 3 (loss <= 0.1)", ratio,
                            "<= 0.2" if flexible else "> 0.2 (no such fall)", ratio <= 0.2 if flexible else ratio > 0.2))
        notes.append(f"{label}: switch time {early * dt:.3f} -> {late * dt:.3f} time units "
                     f"({early:.0f} -> {late:.0f} steps, dt = {dt:g}; paper: 0.94 -> 0.05 for the flexible model)")
    wall = np.mean([r.metrics["wall_ms_per_step"] for r in results])
    notes.append(f"{len(results)} runs, {wall:.3f} ms per learning step (per-seed loop)")
    figs = []
    out = figures if figures is not None else cache_root() / "reports" / "nta-fig2"
    figs.append(plots.nta_fig2(runs, teachers, dt, Path(out) / "nta_fig2.png"))
    return Report("nta-fig2", checks, notes, figs)


FINDINGS = {"nta-fig2": nta_fig2}


def reproduce(name: str, **kwargs) -> Report:
    if name not in FINDINGS:
        raise unknown("finding", name, FINDINGS)
    return FINDINGS[name](**kwargs)
