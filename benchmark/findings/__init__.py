"""Findings: paper claims re-measured with their checks.

One module per source: :mod:`.nta` (the gated-network paper, Sandbrink, Bauer, Proca et al.
2024), :mod:`.switching` (digit and cued task switching), :mod:`.cognitive` (Yang et al.'s
cognitive tasks), :mod:`.molap` (modular latent primitives, Marton et al.), :mod:`.compose`
(rule composition and transfer on cognitive tasks). Each finding is a
function registered with :func:`~.base.finding`; ``switchbench reproduce NAME`` runs it.
"""
from switchbench.benchmark.findings.base import FINDINGS, Check, Report, finding
from switchbench.benchmark.findings import nta, switching, cognitive, molap, compose  # noqa: F401  (register)
from switchbench.errors import unknown


def reproduce(name: str, **kwargs) -> Report:
    """Run the finding ``name`` and return its :class:`Report`."""
    if name not in FINDINGS:
        raise unknown("finding", name, FINDINGS)
    return FINDINGS[name](**kwargs)


__all__ = ["FINDINGS", "Check", "Report", "finding", "reproduce"]
