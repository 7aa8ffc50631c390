"""Findings: paper claims re-measured with their checks (PASS / FAIL).

One module per source: :mod:`.nta` (the gated-network paper, Sandbrink, Bauer, Proca et al.
2024), :mod:`.switching` (digit and cued task switching), :mod:`.cognitive` (Yang et al.'s
cognitive tasks), :mod:`.molap` (modular latent primitives, Marton et al.). Each finding is a
function registered with :func:`finding`; ``switchbench reproduce NAME`` runs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from switchbench.benchmark.suite import Failure
from switchbench.errors import SwitchbenchError

#: name -> finding function, filled by :func:`finding` as the source modules are imported
FINDINGS: dict = {}


def model_overrides(overrides: dict | None, model: str) -> dict:
    """The ``--set``-style overrides for one model's runs of a finding.

    Every finding takes ``overrides``: plain keys (``paradigm.key`` / ``model.key`` to force a
    side, as ``--set``) apply to every run; a key written ``MODEL/key`` only to that model's.

    >>> model_overrides({"n_blocks": 4, "leaky-rnn/lr": 0.1, "gru/lr": 0.2}, "leaky-rnn")
    {'n_blocks': 4, 'lr': 0.1}
    """
    out = {}
    for key, value in (overrides or {}).items():
        model_name, sep, bare = key.rpartition("/")
        if not sep:
            out[key] = value
        elif model_name == model:
            out[bare] = value
    return out


def finding(name: str):
    """Register a finding function under ``name`` (``switchbench reproduce NAME``).

    One signature for every finding: ``fn(n_seeds=<its default>, *, jobs=1, overrides=None,
    figures=None, progress=True) -> Report`` (``overrides``: see :func:`model_overrides`)."""
    def register(fn):
        if name in FINDINGS:
            raise SwitchbenchError(f"finding {name!r} is registered twice")
        FINDINGS[name] = fn
        return fn
    return register


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


def _t_interval(values) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (NaN half-width with one seed)."""
    from scipy import stats

    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    h = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return m, m - h, m + h
