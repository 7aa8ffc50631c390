"""One tuning protocol for every leaderboard entry (``switchbench tune SUITE``).

Each model card declares its tunable hyperparameters and their grid (``tunable``: at least
the learning rate or step size, the published default one of the points). For every
(paradigm, model) of a suite, the same number of configurations (the ``budget``: the whole
grid where it is that size; otherwise the default and a seeded draw of the rest) runs on
*validation* seeds (``first_seed``, ``first_seed + 1``, ...; disjoint from the scored seeds
0..N-1), with the suite's paradigm settings. A tunable parameter that the suite sets (its
``set``) is held at the suite's value: the grid varies the others only (a suite that fixes
the step size tunes, say, a regulariser's strength alone). The configuration with the best mean primary
metric over the validation seeds is selected (ties: the lower final loss; then the
default) among the *eligible* ones:

- a configuration with a failed seed (diverged, declined) is never eligible;
- a configuration must have learned: its mean final loss at most ``LEARNED_RATIO`` (2) times
  the lowest among the model's configurations. Switch time alone rewards a criterion met
  early by a network that barely learns (a tiny step size that neither learns nor forgets);
  this rule was added after seeing exactly that in the first full tuning run (cued-switch,
  ``lr_w`` 1e-4 selected for three models ending at a normalised loss of about 0.6 while
  ``lr_w`` 1e-2 reached 0.03), so it is a rule chosen after seeing a result, and says so.

The protocol's settings come from the suite file's optional ``[tuning]`` table (``budget``,
``seeds``, ``first_seed``; a ``[[paradigm]]`` may set its own ``tune_seeds``), else the
defaults below; ``--budget`` / ``--seeds`` on the command line override both. The result is ``tuning.csv``: one row
per (paradigm, model, configuration) with its validation scores and ``selected``, which
``switchbench leaderboard`` reads to score its "tuned" view.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from switchbench import models
from switchbench.benchmark.metrics import METRICS, PRIMARY, TIEBREAK
from switchbench.benchmark.suite import Failure, RunSpec, run_many
from switchbench.errors import SwitchbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUDGET = 3          # configurations per (paradigm, model)
VALIDATION_SEEDS = 2
FIRST_SEED = 1000   # validation seeds start here (scored seeds are 0..N-1)
LEARNED_RATIO = 2.0  # eligible: final loss <= this x the model's best configuration's (see the module docstring)
COLUMNS = ["paradigm", "model", "config", "default", "budget", "validation_seeds", PRIMARY, TIEBREAK, "failed",
           "eligible", "selected"]


def suite_id(suite) -> str:
    """A hash of the suite file as read (its tables and values, not its comments or layout),
    less the scored ``seeds`` (tuning runs on validation seeds): the identity a tuning table
    records, checked when a leaderboard reads it. ``models = "*"`` stays ``"*"``: a plug-in
    installed since does not make the suite another one (its model runs untuned)."""
    table = tomllib.loads(suite.source)
    table.pop("seeds", None)
    for entry in table.get("paradigm", []):
        entry.pop("seeds", None)
    return hashlib.sha256(json.dumps(table, sort_keys=True, default=str).encode()).hexdigest()[:12]


def protocol(suite, budget: int | None = None, seeds: int | None = None, first_seed: int | None = None) -> dict:
    """The protocol's settings: arguments, else the suite file's ``[tuning]`` table, else the defaults."""
    table = tomllib.loads(suite.source).get("tuning", {})
    out = {"budget": budget or table.get("budget", BUDGET), "seeds": seeds or table.get("seeds", VALIDATION_SEEDS),
           "first_seed": first_seed if first_seed is not None else table.get("first_seed", FIRST_SEED)}
    n_scored = max(s.seed for s in suite.specs) + 1
    if out["budget"] < 1 or out["seeds"] < 1:
        raise SwitchbenchError(f"tuning needs a budget and seeds >= 1, got {out['budget']} and {out['seeds']}")
    if out["first_seed"] < n_scored:
        raise SwitchbenchError(f"validation seeds must be disjoint from the scored seeds 0..{n_scored - 1}: "
                               f"first_seed {out['first_seed']} is one of them")
    return out


def configurations(model: str, budget: int, held=()) -> list[dict]:
    """The ``budget`` configurations of a model's grid that tuning runs, the default first;
    the parameters ``held`` (those a suite sets) are left out of the grid.

    >>> configurations("gated-linear", 3)
    [{}, {'dt': 0.0001}, {'dt': 0.01}]
    >>> configurations("gated-linear", 3, held={"dt"})
    [{}]
    """
    entry = models.get(model)
    defaults = entry.hparams()
    grid = [{k: v for k, v in c.items() if v != defaults[k] and k not in held} for c in entry.grid()]
    grid = [c for i, c in enumerate(grid) if c not in grid[:i]] or [{}]
    if len(grid) > budget:
        rest = np.random.default_rng(0).choice(len(grid) - 1, budget - 1, replace=False) + 1
        grid = [grid[0]] + [grid[i] for i in sorted(rest)]
    return grid


def tune(suite, budget: int | None = None, seeds: int | None = None, first_seed: int | None = None,
         jobs: int = 1, backend: str = "local", threads: int = 1, progress: bool = True,
         cache: bool | str | None = None, options=None) -> pd.DataFrame:
    """Run the protocol on a suite (a :class:`~switchbench.benchmark.leaderboard.Suite`); the tidy
    tuning table (one row per paradigm, model and configuration)."""
    p = protocol(suite, budget, seeds, first_seed)
    per_paradigm = {e["name"]: e["tune_seeds"] for e in tomllib.loads(suite.source).get("paradigm", [])
                    if "tune_seeds" in e and seeds is None}
    entries: dict[tuple[str, str], dict] = {}
    for s in suite.specs:
        if entries.setdefault((s.paradigm, s.model), s.overrides) != s.overrides:
            raise SwitchbenchError(f"tuning selects one configuration per (paradigm, model), and suite {suite.name!r} "
                                   f"runs {s.model} on {s.paradigm} with two settings: tune each in a suite of its own")
    specs, keys, val = [], [], {}
    for (paradigm, model), overrides in entries.items():
        n = per_paradigm.get(paradigm, p["seeds"])
        val[paradigm] = list(range(p["first_seed"], p["first_seed"] + n))
        for i, config in enumerate(configurations(model, p["budget"], held={k.removeprefix("model.") for k in overrides})):
            for seed in val[paradigm]:
                specs.append(RunSpec(paradigm, model, seed, {**overrides, **config}))
                keys.append((paradigm, model, i, json.dumps(config, sort_keys=True)))
    results = run_many(specs, jobs=jobs, backend=backend, threads=threads, progress=progress,
                       desc=f"tune {suite.name}", cache=cache, options=options)
    rows = {}
    for key, r in zip(keys, results):
        row = rows.setdefault(key, {"paradigm": key[0], "model": key[1], "config": key[3], "default": key[2] == 0,
                                    "budget": p["budget"],
                                    "validation_seeds": f"{val[key[0]][0]}-{val[key[0]][-1]}",
                                    PRIMARY: [], TIEBREAK: [], "failed": ""})
        if isinstance(r, Failure):
            row["failed"] = row["failed"] or r.reason
        else:
            row[PRIMARY].append(r.metrics.get(PRIMARY, np.nan))
            row[TIEBREAK].append(r.metrics.get(TIEBREAK, np.nan))
    table = pd.DataFrame(list(rows.values()))
    for m in (PRIMARY, TIEBREAK):
        table[m] = [float(np.mean(v)) if v else np.nan for v in table[m]]
    # the suite the table was made for (a table without it, written before, is checked by its pairs)
    return select(table)[COLUMNS].assign(suite=suite.name, suite_id=suite_id(suite))


def select(table: pd.DataFrame) -> pd.DataFrame:
    """Mark, per (paradigm, model), the ``eligible`` configurations (no failed seed, final loss
    <= ``LEARNED_RATIO`` x the model's lowest) and the ``selected`` one: best mean primary
    metric among the eligible (ties, or a paradigm without the metric, e.g. one block and no
    switch: lower final loss; then the default); the default where every configuration failed.

    >>> t = pd.DataFrame({"paradigm": "p", "model": "m", "config": ["{}", '{"lr": 1e-4}'], "default": [True, False],
    ...                   "switch_time_late": [6.0, 3.0], "final_loss": [0.03, 0.6], "failed": ""})
    >>> select(t)[["config", "eligible", "selected"]].values.tolist()   # fast switches, but it never learned
    [['{}', True, True], ['{"lr": 1e-4}', False, False]]
    """
    sign = -1 if METRICS[PRIMARY].higher_is_better else 1
    table = table.copy()
    table["selected"] = False
    ran = (table["failed"] == "") & (table[PRIMARY].notna() | table[TIEBREAK].notna())
    best_loss = table[ran].groupby(["paradigm", "model"])[TIEBREAK].transform("min").reindex(table.index)
    table["eligible"] = ran & ~(table[TIEBREAK] > LEARNED_RATIO * best_loss)
    for _, g in table.groupby(["paradigm", "model"], sort=False):
        ok = g[g["eligible"]]
        if ok.empty:
            best = g.index[g["default"]][0]
        else:   # no primary metric (a paradigm without switches): the final loss decides
            order = ok.assign(_p=(sign * ok[PRIMARY]).fillna(np.inf), _t=ok[TIEBREAK].fillna(np.inf),
                              _d=~ok["default"])
            best = order.sort_values(["_p", "_t", "_d"], kind="stable").index[0]
        table.loc[best, "selected"] = True
    return table


def selected(table: pd.DataFrame) -> dict[tuple[str, str], dict]:
    """(paradigm, model) -> the selected configuration's overrides ({} = the published defaults)."""
    rows = table[table["selected"]]
    return {(r.paradigm, r.model): json.loads(r.config) for r in rows.itertuples()}


def read_tuning(path: Path) -> pd.DataFrame:
    """A tuning table written by ``switchbench tune`` (a clear error if missing or malformed)."""
    path = Path(path)
    where = f"tuning table {str(path)!r}"
    if not path.is_file():
        raise SwitchbenchError(f"{where} not found: run `switchbench tune` first")
    try:
        text = path.read_bytes().decode("utf-8")
        table = pd.read_csv(io.StringIO(text), dtype={"failed": str, "config": str, "validation_seeds": str,
                                                           "suite": str, "suite_id": str})
    except OSError as e:
        raise SwitchbenchError(f"cannot read {where}: {e.strerror or type(e).__name__}") from None
    except UnicodeDecodeError:
        raise SwitchbenchError(f"{where} is not UTF-8 text") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError) as e:
        raise SwitchbenchError(f"{where} is not a CSV table: {str(e).splitlines()[0] if str(e) else ''}") from None
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise SwitchbenchError(f"{where} lacks columns {', '.join(missing)}")
    if table.empty:
        raise SwitchbenchError(f"{where} has no rows")
    for i, config in enumerate(table["config"]):
        try:
            value = json.loads(config) if isinstance(config, str) else None
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise SwitchbenchError(f"{where}, row {i + 1}: config must be a JSON object of parameters, e.g. "
                                   f'{{"lr": 0.01}}, got {config!r}')
    for column, low in (("budget", 1), (PRIMARY, None), (TIEBREAK, None)):
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = table[column].notna() & (numbers.isna() | (numbers < low if low is not None else False))
        if column == "budget":
            bad |= numbers.isna() | (numbers % 1 != 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SwitchbenchError(f"{where}, row {i + 1}: {column} must be "
                                   f"{'an integer >= 1' if column == 'budget' else 'a number'}, "
                                   f"got {table[column].iloc[i]!r}")
        table[column] = numbers.astype(int) if column == "budget" else numbers
    table["failed"] = table["failed"].fillna("").astype(str)
    for flag in ("selected", "eligible"):
        table[flag] = table[flag].astype(str).str.lower().eq("true")
    table["default"] = table["default"].astype(str).str.lower().eq("true")
    return table
