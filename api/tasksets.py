"""Named sets of neurogym tasks, shared by the cognitive paradigm and the models that
pretrain on a task corpus (``modular-primitives``), so that neither imports the other.

>>> from switchbench.tasksets import NAMED_SETS
>>> len(NAMED_SETS["yang19"]), NAMED_SETS["yang19-pair"]
(20, ('yang19.go-v0', 'yang19.anti-v0'))
"""
from __future__ import annotations

_YANG19 = ("go", "rtgo", "dlygo", "anti", "rtanti", "dlyanti", "dm1", "dm2", "ctxdm1", "ctxdm2", "multidm",
           "dlydm1", "dlydm2", "ctxdlydm1", "ctxdlydm2", "multidlydm", "dms", "dnms", "dmc", "dnmc")
_MOLAP9 = ("go", "dlygo", "anti", "dlyanti", "dlydm1", "dlydm2", "ctxdlydm1", "ctxdlydm2", "multidlydm")


def _yang(*names: str) -> tuple[str, ...]:
    return tuple(f"yang19.{n}-v0" for n in names)


#: named task sets -> neurogym env ids
NAMED_SETS = {
    "yang19": _yang(*_YANG19),
    "molap9": _yang(*_MOLAP9),
    "yang19-pair": _yang("go", "anti"),
    "molap9-pair": _yang("dlygo", "dlyanti"),
    "dm-pair": _yang("dm1", "dm2"),
}
