"""``switchbench list``: paradigms, models (their cards), metrics or findings; ``--params``:
every declared parameter of the paradigms or the models."""
from __future__ import annotations

from typing import TYPE_CHECKING

from switchbench.benchmark.commands.options import command, table
from switchbench.errors import SwitchbenchError

if TYPE_CHECKING:
    import pandas as pd

LISTABLE = ("paradigms", "models", "metrics", "findings")


def add(sub) -> None:
    s = command(sub, "list", "list paradigms, models (their cards), metrics or findings",
                "List what switchbench knows: paradigms (CLI name and Gymnasium id), models (cards: description, "
                "citation, privileged, kinds, parameters), metrics (higher_is_better, definition) or findings.",
                "switchbench list models", "switchbench list")
    s.add_argument("what", nargs="?", choices=LISTABLE, metavar="WHAT",
                   help=f"one of {', '.join(LISTABLE)} (default: all of them)")
    s.add_argument("--params", action="store_true",
                   help="paradigms or models: one row per parameter, its type and default (what --set KEY=VALUE "
                        "accepts, checked against that type)")
    s.set_defaults(fn=main)


def main(args) -> int:
    import pandas as pd

    what = args.what or "all"
    if getattr(args, "params", False):
        if what not in ("paradigms", "models"):
            raise SwitchbenchError("--params lists the parameters of paradigms or models: "
                                   "switchbench list paradigms --params")
        print(table(param_table(what)))
        return 0
    if what in ("paradigms", "all"):
        from switchbench.paradigms import PARADIGMS
        print(table(pd.DataFrame([{"name": k, "id": v[0]} for k, v in PARADIGMS.items()]).set_index("name")))
    if what in ("models", "all"):
        from switchbench.benchmark.leaderboard import model_cards
        print(table(model_cards()))
    if what in ("metrics", "all"):
        from switchbench.benchmark.metrics import METRICS
        print(table(pd.DataFrame([vars(m) for m in METRICS.values()]).set_index("name")))
    if what in ("findings", "all"):
        from switchbench.benchmark.findings import FINDINGS
        print("\n".join(f"{k}: {(v.__doc__ or '').strip().splitlines()[0]}" for k, v in FINDINGS.items()))
    return 0


def param_table(what: str) -> pd.DataFrame:
    """Every declared parameter of the paradigms or of the models: name, type, default."""
    import pandas as pd

    from switchbench.params import type_name

    if what == "paradigms":
        from switchbench.benchmark.config import paradigm_params
        from switchbench.paradigms import PARADIGMS, resolve

        owners = {name: paradigm_params(resolve(name)[2]) for name in PARADIGMS}
    else:
        from switchbench import models

        owners = {name: models.get(name).params() for name in models.names()}
    rows = [{what[:-1]: owner, "parameter": p.name, "type": type_name(p.type), "default": repr(p.default)}
            for owner, params in owners.items() for p in params.values()]
    return pd.DataFrame(rows).set_index([what[:-1], "parameter"])
