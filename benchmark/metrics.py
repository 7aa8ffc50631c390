"""Metrics: each one decorated function, with its name, direction, unit, description and its
formula in the docstring::

    @register_metric("final_loss", higher_is_better=False, unit="normalised loss",
                     description="mean normalised online loss over the last 10% of steps")
    def final_loss(run: RunView) -> float | None:
        '''mean(norm_loss) over the last 10% of the training steps'''
        return float(run.tail["norm_loss"].mean())

The function gets a :class:`RunView` of one finished run (its log, evaluation matrices,
probes, the paradigm, its configuration, the tables of the after-curriculum probes and
what the run loop measured) and returns a number, or None where the metric does not apply
to that run (it is then left out). :func:`compute_metrics` runs every registered metric;
``switchbench list metrics``, the leaderboard (keys, directions, definitions) and the web
page read :data:`METRICS`. A plug-in registers a metric the same way, from its own module
(imported before the runs, e.g. by the module of its model).

Losses are the paradigm's task loss normalised per task by that task's null loss (the best
constant predictor), so 1 = "knows nothing" and 0 = "perfect".

>>> METRICS["forgetting_Rk"].higher_is_better, METRICS["switch_time_late"].unit
(False, 'steps')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from switchbench.errors import SwitchbenchError


@dataclass(frozen=True)
class Metric:
    """A registered metric (:func:`register_metric`): what ``list metrics`` and the leaderboard show."""

    name: str
    higher_is_better: bool
    description: str
    unit: str = ""


#: metric name -> :class:`Metric`, in registration order (the order of ``list metrics`` and of a run's metrics)
METRICS: dict[str, Metric] = {}
_COMPUTE: dict[str, Callable[["RunView"], Any]] = {}


def register_metric(name: str, *, higher_is_better: bool, unit: str = "", description: str = ""):
    """Decorator: register ``fn(run: RunView) -> float | None`` as the metric ``name``
    (``description`` defaults to the docstring's first line). Registering a name again
    replaces it (a plug-in reloaded)."""
    if not isinstance(higher_is_better, bool):
        raise SwitchbenchError(f"metric {name!r}: higher_is_better must be True or False, got {higher_is_better!r}")

    def deco(fn):
        text = description or (fn.__doc__ or "").strip().split("\n")[0]
        METRICS[name] = Metric(name, higher_is_better, text, unit)
        _COMPUTE[name] = fn
        return fn

    return deco


@dataclass
class RunView:
    """One finished run as the metrics see it: ``log`` (one row per step), ``R0``/``Rk``
    (n_blocks, K) held-out losses, ``probes`` (name -> per-block array), the paradigm ``env``,
    the run's ``config``; the after-curriculum tables (None where the run has none):
    ``robustness`` (:func:`switchbench.benchmark.evaluation.robustness`), ``cue_table`` and
    ``transfer_table`` (:mod:`switchbench.benchmark.probes`); ``measured``: what the run loop
    measured (``params``, ``params_changed_per_task``, ``wall_ms_per_step``)."""

    log: pd.DataFrame
    R0: np.ndarray
    Rk: np.ndarray
    probes: dict
    env: Any
    config: dict
    robustness: pd.DataFrame | None = None
    cue_table: pd.DataFrame | None = None
    transfer_table: pd.DataFrame | None = None
    measured: dict = field(default_factory=dict)

    @property
    def criterion(self) -> tuple[str, float]:
        return self.config["runner"]["criterion"], self.config["runner"]["threshold"]

    @cached_property
    def tail(self) -> pd.DataFrame:
        """The last 10% of the training steps (at least one)."""
        train = self.log[self.log["phase"] == "train"]
        return train.iloc[-max(1, len(train) // 10):]

    @cached_property
    def switch_times(self) -> pd.DataFrame:
        return switch_time(self.log, *self.criterion)

    @cached_property
    def trained(self) -> np.ndarray:
        return trained_matrix(self.log, self.R0.shape[0], self.R0.shape[1])

    @cached_property
    def trials(self) -> dict[str, float]:
        return trial_metrics(self.log) if "n_switch" in self.log else {}

    @cached_property
    def composed(self) -> pd.DataFrame | None:
        return composition(self.log, 100, *self.criterion) if (self.log["phase"] == "compose").any() else None

    @cached_property
    def cues(self) -> dict[str, float]:
        return rule_composition(self.cue_table) if self.cue_table is not None else {}

    @cached_property
    def transferred(self) -> dict[str, float]:
        return transfer(self.transfer_table) if self.transfer_table is not None else {}

    @cached_property
    def robust(self) -> dict[str, float]:
        return robustness(self.robustness) if self.robustness is not None else {}


def compute_metrics(run: RunView) -> dict[str, float]:
    """Every registered metric that applies to ``run`` (those returning None are left out), in
    the order of :data:`METRICS`."""
    out = {}
    for name, fn in _COMPUTE.items():
        value = fn(run)
        if value is not None:
            out[name] = value
    return out


NAN = float("nan")

#: robustness perturbations (kind -> levels), applied to the final model; see :func:`robustness`
ROBUSTNESS = {"weight_noise": (0.1, 0.3, 1.0), "unit_ablation": (0.1, 0.3), "module_silencing": (1,),
              "input_noise": (0.1, 0.5, 1.0)}
ROBUSTNESS_REPEATS = 3
_LEVEL_TEXT = {"weight_noise": "recurrent weights x (1 + {} N(0,1))", "unit_ablation": "{:.0%} of hidden units silenced",
               "module_silencing": "{} module(s) silenced", "input_noise": "input noise N(0, {}^2)"}

#: the metric that ranks models on a leaderboard
PRIMARY = "switch_time_late"
#: what breaks ties of the primary metric (on a leaderboard and when tuning selects a configuration)
TIEBREAK = "final_loss"


def _met(values: np.ndarray, criterion: str, threshold: float) -> np.ndarray:
    return values >= threshold if criterion == "accuracy" else values <= threshold


def switch_time(log: pd.DataFrame, criterion: str = "norm_loss", threshold: float = 0.1) -> pd.DataFrame:
    """Steps after each switch until the online criterion is first met.

    For each block ``b`` that starts with a switch (block 0 never does), with online values
    ``v_0, v_1, ...`` of the column ``criterion`` over the block's steps (the loss of each
    batch before learning on it)::

        switch_time[b] = min { i : v_i <= threshold }   (>= for "accuracy")

    A block that never meets it counts its full length and is flagged ``censored``. A block
    that mixes tasks (the log's ``mixed`` column, cued-switch's AABB and random blocks) has no
    block-level switch to time: its task changes from trial to trial (its switch costs measure
    that), so it is left out. Returns one row per switch: ``block, task, switch_time, censored``.

    >>> log = pd.DataFrame({"block": [0, 0, 1, 1, 1], "task": [0, 0, 1, 1, 1], "switch": [False, False, True, False, False],
    ...                     "norm_loss": [1.0, 0.05, 0.9, 0.5, 0.08]})
    >>> switch_time(log).to_dict("records")
    [{'block': 1, 'task': 1, 'switch_time': 2, 'censored': False}]
    """
    rows = []
    for b, g in log.groupby("block", sort=True):
        if not g["switch"].iloc[0] or ("mixed" in g and bool(g["mixed"].iloc[0])):
            continue
        hit = np.flatnonzero(_met(g[criterion].to_numpy(), criterion, threshold))
        censored = len(hit) == 0
        rows.append({"block": int(b), "task": int(g["task"].iloc[0]),
                     "switch_time": len(g) if censored else int(hit[0]), "censored": censored})
    return pd.DataFrame(rows, columns=["block", "task", "switch_time", "censored"])


def switch_time_summary(times: pd.DataFrame, early: int = 3, late: int = 5) -> dict[str, float]:
    """Early (mean over the first ``early`` switches) vs late (last ``late``) switch time, and the
    fraction of censored switches (never met the criterion) overall, early and late."""
    st = times["switch_time"].to_numpy(dtype=float)
    cens = times["censored"].to_numpy(dtype=float)
    nan = float("nan")
    return {"switch_time_early": float(st[:early].mean()) if len(st) else nan,
            "switch_time_late": float(st[-late:].mean()) if len(st) else nan,
            "switch_censored": float(cens.mean()) if len(st) else nan,
            "switch_censored_early": float(cens[:early].mean()) if len(st) else nan,
            "switch_censored_late": float(cens[-late:].mean()) if len(st) else nan}


def forgetting(R: np.ndarray, trained: np.ndarray) -> float:
    """Forgetting from an evaluation matrix ``R[b, k]`` (normalised loss on task k's held-out set
    at the end of block b) and ``trained[b, k]`` (task k was trained during block b).

    For each task k and each block b in the second half of the curriculum in which k is not
    trained, with ``L`` the last block before b that trained k::

        forgetting[b, k] = R[b, k] - min_{b' <= L} R[b', k]

    and the metric is the mean over all such (b, k); NaN where there are none (e.g. an
    interleaved schedule trains every task in every block). Positive = forgotten.

    >>> R = np.array([[0.1, 1.0], [0.6, 0.1], [0.1, 0.7]])
    >>> trained = np.array([[True, False], [False, True], [True, False]])
    >>> forgetting(R, trained)   # second half = blocks 1, 2: (0.6 - 0.1 + 0.7 - 0.1) / 2
    0.55
    """
    n_blocks = R.shape[0]
    vals = []
    for b in range(n_blocks // 2, n_blocks):
        for k in range(R.shape[1]):
            before = np.flatnonzero(trained[:b, k])
            if trained[b, k] or len(before) == 0:
                continue
            vals.append(R[b, k] - R[: before[-1] + 1, k].min())
    return round(float(np.mean(vals)), 12) if vals else float("nan")


def backward_transfer(R: np.ndarray, trained: np.ndarray) -> float:
    """Backward transfer: for every block b before the last and every task k trained in it,
    ``R[-1, k] - R[b, k]`` (final loss minus the loss right after training), averaged.
    Positive = the later curriculum made k worse.

    >>> backward_transfer(np.array([[0.1, 1.0], [0.6, 0.2]]), np.array([[True, False], [False, True]]))
    0.5
    """
    vals = [R[-1, k] - R[b, k] for b in range(R.shape[0] - 1) for k in np.flatnonzero(trained[b])]
    return round(float(np.mean(vals)), 12) if vals else float("nan")


def rowwise_cosine(teachers: np.ndarray, modules: np.ndarray) -> np.ndarray:
    """``C[k, p]`` = mean over output rows i of cos(teacher_k[i, :], module_p[i, :])."""
    t = teachers / np.maximum(np.linalg.norm(teachers, axis=-1, keepdims=True), 1e-12)
    m = modules / np.maximum(np.linalg.norm(modules, axis=-1, keepdims=True), 1e-12)
    return np.einsum("koi,poi->kp", t, m) / teachers.shape[1]


def specialisation(teachers: np.ndarray, modules: np.ndarray) -> tuple[float, np.ndarray]:
    """Specialisation of modules to teachers: the row-wise cosine ``C[k, p]``
    (:func:`rowwise_cosine`), matched one-to-one by the Hungarian algorithm to maximise the
    total; returns the mean matched cosine and, per teacher, its module (-1 if none).

    >>> T = np.stack([np.eye(2), -np.eye(2)])
    >>> specialisation(T, T[::-1])
    (1.0, array([1, 0]))
    """
    C = rowwise_cosine(np.asarray(teachers, float), np.asarray(modules, float))
    rows, cols = linear_sum_assignment(-C)
    match = np.full(C.shape[0], -1)
    match[rows] = cols
    return round(float(C[rows, cols].mean()), 12), match


def trained_matrix(log: pd.DataFrame, n_blocks: int, n_tasks: int) -> np.ndarray:
    """``trained[b, k]``: task k had a training step in block b."""
    trained = np.zeros((n_blocks, n_tasks), dtype=bool)
    train = log[log["phase"] == "train"]
    trained[train["block"].to_numpy(), train["task"].to_numpy()] = True
    return trained


# --- trial paradigms: switch, mixing and congruency costs ------------------------------

def pooled(log: pd.DataFrame, measure: str, group: str) -> float:
    """Mean of ``measure`` (``"error"`` or ``"loss"``) over all trials of ``group`` in ``log``,
    from the per-step columns ``{measure}_{group}`` (a step's mean) and ``n_{group}`` (its count)::

        pooled = sum_t n_t * m_t / sum_t n_t      (NaN when there are no such trials)
    """
    n = log[f"n_{group}"].to_numpy(dtype=float)
    m = log[f"{measure}_{group}"].to_numpy(dtype=float)
    return float(np.nansum(n * np.nan_to_num(m)) / n.sum()) if n.sum() > 0 else float("nan")


def _train_mixed(log: pd.DataFrame, mixed: bool = True) -> pd.DataFrame:
    log = log[log["phase"] == "train"] if "phase" in log else log
    return log[log["mixed"].astype(bool) == mixed] if "mixed" in log else (log if mixed else log.iloc[:0])


def switch_cost(log: pd.DataFrame, measure: str = "error") -> float:
    """Switch cost: performance on switch trials minus repeat trials, over mixed blocks::

        switch_cost = pooled(measure, switch) - pooled(measure, repeat)

    (:func:`pooled` over the training steps of blocks that mix tasks). Positive = switch
    trials are worse (higher error or loss), as in people.

    >>> log = pd.DataFrame({"mixed": True, "n_switch": [10, 0, 30], "error_switch": [0.5, np.nan, 0.1],
    ...                     "n_repeat": [0, 20, 10], "error_repeat": [np.nan, 0.05, 0.15]})
    >>> round(switch_cost(log), 6)   # (5 + 3) / 40 - (1 + 1.5) / 30
    0.116667
    """
    mixed = _train_mixed(log)
    return pooled(mixed, measure, "switch") - pooled(mixed, measure, "repeat")


def switch_cost_by_block(log: pd.DataFrame, measure: str = "error") -> pd.DataFrame:
    """:func:`switch_cost` of each mixed block (practice): columns ``block, switch, repeat, cost``."""
    rows = []
    for b, g in _train_mixed(log).groupby("block", sort=True):
        sw, rep = pooled(g, measure, "switch"), pooled(g, measure, "repeat")
        rows.append({"block": int(b), "switch": sw, "repeat": rep, "cost": sw - rep})
    return pd.DataFrame(rows, columns=["block", "switch", "repeat", "cost"])


def mixing_cost(log: pd.DataFrame, measure: str = "error") -> float:
    """Mixing cost: repeat trials in mixed blocks minus repeat trials in pure (single-task) blocks::

        mixing_cost = pooled_mixed(measure, repeat) - pooled_pure(measure, repeat)

    NaN when the curriculum has no pure or no mixed blocks.

    >>> log = pd.DataFrame({"mixed": [True, False], "n_repeat": [10, 10], "error_repeat": [0.3, 0.1]})
    >>> round(mixing_cost(log), 6)
    0.2
    """
    return pooled(_train_mixed(log), measure, "repeat") - pooled(_train_mixed(log, False), measure, "repeat")


def congruency_effect(log: pd.DataFrame, measure: str = "error") -> float:
    """Congruency effect: incongruent minus congruent trials (both tasks give the same response
    on congruent ones), over mixed blocks: ``pooled(incongruent) - pooled(congruent)``."""
    mixed = _train_mixed(log)
    return pooled(mixed, measure, "incongruent") - pooled(mixed, measure, "congruent")


def trial_metrics(log: pd.DataFrame, early: int = 2, late: int = 2) -> dict[str, float]:
    """Switch cost (error and loss; overall, over the first ``early`` and last ``late`` mixed
    blocks), mixing cost and congruency effect of one run's log."""
    by_block = switch_cost_by_block(log)["cost"].to_numpy(float)     # empty (object) without mixed blocks

    def mean(v):
        v = v[np.isfinite(v)]
        return float(v.mean()) if len(v) else float("nan")

    out = {"switch_cost_error": switch_cost(log, "error"), "switch_cost_loss": switch_cost(log, "loss"),
           "switch_cost_error_early": mean(by_block[:early]), "switch_cost_error_late": mean(by_block[-late:]),
           "mixing_cost_error": mixing_cost(log, "error"), "mixing_cost_loss": mixing_cost(log, "loss")}
    if "n_congruent" in log:
        out["congruency_effect_error"] = congruency_effect(log, "error")
    return out


# --- composition ------------------------------------------------------------------------

def composition(log: pd.DataFrame, k: int = 100, criterion: str = "norm_loss", threshold: float = 0.1) -> pd.DataFrame:
    """Generalisation to never-seen composed tasks: for the first block of each task whose
    first appearance is in a ``"compose"`` phase block, with online values ``v_0, v_1, ...``::

        loss_k = mean(norm_loss_0 .. norm_loss_{k-1})
        steps  = min { i : v_i <= threshold }      (>= for "accuracy"; block length if never: censored)

    One row per composed task: ``task, block, loss_k, steps, censored``. Compare with the same
    model on novel random tasks of the same shape (``probe="novel"``): :func:`composition_score`.

    >>> log = pd.DataFrame({"block": [0, 0, 1, 1, 2, 2], "task": [0, 0, 2, 2, 2, 2], "norm_loss": [1, 1, .3, .05, .01, .01],
    ...                     "phase": ["train"] * 2 + ["compose"] * 4})
    >>> composition(log, k=2).to_dict("records")
    [{'task': 2, 'block': 1, 'loss_k': 0.175, 'steps': 1, 'censored': False}]
    """
    rows = []
    seen = set(log.loc[log["phase"] != "compose", "task"])
    for b, g in log[log["phase"] == "compose"].groupby("block", sort=True):
        task = int(g["task"].iloc[0])
        if task in seen:
            continue
        seen.add(task)
        hit = np.flatnonzero(_met(g[criterion].to_numpy(), criterion, threshold))
        rows.append({"task": task, "block": int(b), "loss_k": round(float(g["norm_loss"].iloc[:k].mean()), 12),
                     "steps": int(hit[0]) if len(hit) else len(g), "censored": len(hit) == 0})
    return pd.DataFrame(rows, columns=["task", "block", "loss_k", "steps", "censored"])


def composition_score(composed: pd.DataFrame, novel: pd.DataFrame) -> float:
    """Mean ``loss_k`` on composed tasks over the same on novel tasks (from :func:`composition`):
    below 1 means composing known parts beat learning a new task of the same shape."""
    return float(composed["loss_k"].mean() / novel["loss_k"].mean())


# --- rule-cue composition and transfer (cognitive tasks; :mod:`switchbench.benchmark.probes`) ----

def rule_composition(table: pd.DataFrame) -> dict[str, float]:
    """Composition of rule cues (Yang et al. 2019, Fig. 6), from the tidy cue-probe table
    (``metric``, ``task``, ``role``, ``performance``: one row per probe task and cue, each on
    the same held-out trials). With ``P_k(c)`` task k's performance under cue c (the cue
    replaces the rule input at every time step)::

        rule_composition_perf   = mean_{k trained}  P_k(composed) / P_k(own)
        rule_composition_random = mean_{k trained}  mean_r P_k(random_r) / P_k(own)
        zero_shot_perf          = mean_{k never trained}  P_k(composed)
        zero_shot_random        = mean_{k never trained}  mean_r P_k(random_r)

    ``composed`` is the signed sum of tasks' one-hot cues (e.g. ``anti + dlygo - go`` for
    dlyanti), ``random_r`` a random direction of the same norm. A never-trained task has no
    trained own cue, so its score is not a ratio. NaN where a ratio's ``P_k(own)`` is 0.

    >>> t = pd.DataFrame({"metric": "rule_composition", "task": 3, "role": ["own", "composed", "random", "random"],
    ...                   "performance": [0.9, 0.72, 0.0, 0.18]})
    >>> {k: round(v, 3) for k, v in rule_composition(t).items()}
    {'rule_composition_perf': 0.8, 'rule_composition_random': 0.1}
    """
    perf = table.groupby(["metric", "task", "role"])["performance"].mean().unstack("role")
    out = {}
    if "rule_composition" in perf.index:
        p = perf.loc["rule_composition"]
        own = p["own"].where(p["own"] > 0)
        out["rule_composition_perf"] = float((p["composed"] / own).mean())
        out["rule_composition_random"] = float((p["random"] / own).mean()) if "random" in p else float("nan")
    if "zero_shot" in perf.index:
        p = perf.loc["zero_shot"]
        out["zero_shot_perf"] = float(p["composed"].mean())
        out["zero_shot_random"] = float(p["random"].mean()) if "random" in p else float("nan")
    return out


def transfer(table: pd.DataFrame) -> dict[str, float]:
    """Transfer to tasks kept out of the curriculum, from the tidy table (``task``, ``network``
    = ``"curriculum"`` (a copy of the trained learner) or ``"scratch"`` (a fresh network of
    the same model and seed), ``steps``, ``censored``). ``S`` is the number of batches
    learned until one meets the run's switch criterion online, counting that one (1 = met
    at once); the budget where never (censored)::

        transfer_steps = mean_k S_curriculum(k) / mean_k S_scratch(k)     (< 1: the curriculum helped)

    beside ``transfer_steps_curriculum``, ``transfer_steps_scratch`` (the means) and
    ``transfer_censored`` (censored fraction; both censored gives 1: no evidence either way).

    >>> t = pd.DataFrame({"task": [4, 4], "network": ["curriculum", "scratch"], "steps": [60, 240],
    ...                   "censored": [False, False]})
    >>> transfer(t)["transfer_steps"]
    0.25
    """
    s = table.groupby("network")["steps"].mean()
    return {"transfer_steps": float(s["curriculum"] / s["scratch"]),
            "transfer_steps_curriculum": float(s["curriculum"]), "transfer_steps_scratch": float(s["scratch"]),
            "transfer_censored": float(table["censored"].mean())}


def robustness(table: pd.DataFrame) -> dict[str, float]:
    """Robustness of the final model, from its tidy perturbation table (columns ``kind``,
    ``level``, ``task``, ``repeat``, ``norm_loss``, ``score``; ``kind == "none"`` the intact
    model), for each perturbation ``(kind, level)`` in :data:`ROBUSTNESS`:

    - ``perf_drop_{kind}_{level} = mean_k score(none, k) - mean_{k, r} score(kind, level, k, r)``
    - ``loss_rise_{kind}_{level} = mean_{k, r} L(kind, level, k, r) - mean_k L(none, k)``

    over tasks ``k`` and random repeats ``r`` (each repeat draws new damage, the same for
    every task). ``score`` is the paradigm's trial performance where it has one, else
    accuracy; ``L`` the held-out normalised loss. The perturbations (on a copy of the
    learner: :meth:`switchbench.models.leaky_rnn.LeakyRNN.perturb`): ``weight_noise``
    multiplies each recurrent weight by ``1 + level * xi``; ``unit_ablation`` silences a
    random ``level`` fraction of hidden units; ``module_silencing`` silences ``level`` whole
    modules (modular models only); ``input_noise`` adds ``N(0, level^2)`` to every input of
    the trial's real (unmasked) steps. A perturbation a model does not support is absent
    (NaN).

    >>> t = pd.DataFrame({"kind": ["none", "unit_ablation"], "level": [0, 0.1], "task": [0, 0], "repeat": [0, 0],
    ...                   "norm_loss": [0.1, 0.4], "score": [0.9, 0.6]})
    >>> r = robustness(t)
    >>> round(r["perf_drop_unit_ablation_0.1"], 3), round(r["loss_rise_unit_ablation_0.1"], 3)
    (0.3, 0.3)
    """
    base = table[table["kind"] == "none"]
    out = {}
    for (kind, level), g in table[table["kind"] != "none"].groupby(["kind", "level"]):
        out[f"perf_drop_{kind}_{level:g}"] = float(base["score"].mean() - g["score"].mean())
        out[f"loss_rise_{kind}_{level:g}"] = float(g["norm_loss"].mean() - base["norm_loss"].mean())
    return out


# --- the registered metrics (the order of ``list metrics``) ------------------------------------

@register_metric("final_loss", higher_is_better=False, unit="normalised loss",
                 description="mean normalised online loss over the last 10% of steps")
def final_loss(run: RunView) -> float:
    """``mean(norm_loss)`` over the last 10% of the training steps (at least one)."""
    return float(run.tail["norm_loss"].mean())


def _switch_mean(column: str, which: slice):
    def fn(run: RunView) -> float:
        v = run.switch_times[column].to_numpy(dtype=float)
        return float(v[which].mean()) if len(v) else NAN
    return fn


@register_metric("switch_time_early", higher_is_better=False, unit="steps",
                 description="mean switch time (steps) over the first 3 switches")
def switch_time_early(run: RunView) -> float:
    """``mean(switch_time[:3])`` (:func:`switch_time`; NaN without switches)."""
    return _switch_mean("switch_time", slice(None, 3))(run)


@register_metric("switch_time_late", higher_is_better=False, unit="steps",
                 description="mean switch time (steps) over the last 5 switches")
def switch_time_late(run: RunView) -> float:
    """``mean(switch_time[-5:])`` (:func:`switch_time`; NaN without switches)."""
    return _switch_mean("switch_time", slice(-5, None))(run)


@register_metric("switch_censored", higher_is_better=False, unit="fraction",
                 description="fraction of switches that never met the criterion")
def switch_censored(run: RunView) -> float:
    """``mean(censored)`` over all switches (:func:`switch_time`)."""
    return _switch_mean("censored", slice(None))(run)


@register_metric("switch_censored_early", higher_is_better=False, unit="fraction",
                 description="fraction of the first 3 switches that never met the criterion")
def switch_censored_early(run: RunView) -> float:
    """``mean(censored[:3])`` (:func:`switch_time`)."""
    return _switch_mean("censored", slice(None, 3))(run)


@register_metric("switch_censored_late", higher_is_better=False, unit="fraction",
                 description="fraction of the last 5 switches that never met the criterion")
def switch_censored_late(run: RunView) -> float:
    """``mean(censored[-5:])`` (:func:`switch_time`)."""
    return _switch_mean("censored", slice(-5, None))(run)


@register_metric("forgetting_R0", higher_is_better=False, unit="normalised loss",
                 description="forgetting on held-out sets, model as it is (R0)")
def forgetting_R0(run: RunView) -> float:
    """:func:`forgetting` of ``R0`` (held-out losses at each block end)."""
    return forgetting(run.R0, run.trained)


@register_metric("forgetting_Rk", higher_is_better=False, unit="normalised loss",
                 description="forgetting after k_adapt learning steps on a copy (Rk)")
def forgetting_Rk(run: RunView) -> float:
    """:func:`forgetting` of ``Rk`` (held-out losses after k_adapt learning steps on a copy)."""
    return forgetting(run.Rk, run.trained)


@register_metric("bwt_R0", higher_is_better=False, unit="normalised loss",
                 description="backward transfer (final minus right-after-training loss), R0")
def bwt_R0(run: RunView) -> float:
    """:func:`backward_transfer` of ``R0``."""
    return backward_transfer(run.R0, run.trained)


@register_metric("bwt_Rk", higher_is_better=False, unit="normalised loss",
                 description="backward transfer (final minus right-after-training loss), Rk")
def bwt_Rk(run: RunView) -> float:
    """:func:`backward_transfer` of ``Rk``."""
    return backward_transfer(run.Rk, run.trained)


@register_metric("specialisation", higher_is_better=True, unit="cosine",
                 description="best-match row-wise cosine between teachers and modules")
def specialisation_metric(run: RunView) -> float | None:
    """:func:`specialisation` of the final modules (probe ``modules``) to the building-block
    teachers (a paradigm with linear teachers; modules of the teachers' shape, any cue inputs
    cut off)."""
    truth = run.env.ground_truth()
    if truth is None or "modules" not in run.probes:
        return None
    teachers = truth[: run.env.task_spec.n_base_tasks or len(truth)]
    mods = run.probes["modules"][-1]                  # (modules, output, input with any cue)
    if mods.ndim == teachers.ndim and mods[..., : teachers.shape[-1]].shape[1:] == teachers.shape[1:]:
        return specialisation(teachers, mods[..., : teachers.shape[-1]])[0]
    return None


@register_metric("final_accuracy", higher_is_better=True, unit="fraction",
                 description="mean online accuracy over the last 10% of steps (classification)")
def final_accuracy(run: RunView) -> float | None:
    """``mean(accuracy)`` over the last 10% of the training steps (classification)."""
    return float(run.tail["accuracy"].mean()) if "accuracy" in run.log else None


def _trial(name: str, higher: bool, unit: str, description: str, formula: str) -> None:
    def fn(run: RunView) -> float | None:
        return run.trials.get(name)
    fn.__doc__ = formula
    fn.__name__ = fn.__qualname__ = name
    register_metric(name, higher_is_better=higher, unit=unit, description=description)(fn)


_trial("switch_cost_error", False, "error rate",
       "error rate on switch minus repeat trials, mixed blocks (trial paradigms)",
       "``switch_cost(log, 'error')`` (:func:`switch_cost`)")
_trial("switch_cost_loss", False, "cross-entropy", "cross-entropy on switch minus repeat trials, mixed blocks",
       "``switch_cost(log, 'loss')`` (:func:`switch_cost`)")
_trial("switch_cost_error_early", False, "error rate", "switch cost (error) over the first 2 mixed blocks",
       "mean of :func:`switch_cost_by_block` over the first 2 mixed blocks (finite ones)")
_trial("switch_cost_error_late", False, "error rate", "switch cost (error) over the last 2 mixed blocks",
       "mean of :func:`switch_cost_by_block` over the last 2 mixed blocks (finite ones)")
_trial("mixing_cost_error", False, "error rate", "error rate on repeat trials in mixed minus pure blocks",
       "``mixing_cost(log, 'error')`` (:func:`mixing_cost`)")
_trial("mixing_cost_loss", False, "cross-entropy", "cross-entropy on repeat trials in mixed minus pure blocks",
       "``mixing_cost(log, 'loss')`` (:func:`mixing_cost`)")
_trial("congruency_effect_error", False, "error rate", "error rate on incongruent minus congruent trials",
       "``congruency_effect(log, 'error')`` (:func:`congruency_effect`; paradigms with congruent trials)")


@register_metric("composition_loss", higher_is_better=False, unit="normalised loss",
                 description="mean normalised loss over the first 100 steps of each never-seen composed task's "
                             "first block")
def composition_loss(run: RunView) -> float | None:
    """``mean_k loss_k`` of :func:`composition` (k = 100 steps)."""
    return None if run.composed is None else float(run.composed["loss_k"].mean())


@register_metric("composition_steps", higher_is_better=False, unit="steps",
                 description="steps to the switch criterion on each never-seen composed task's first block")
def composition_steps(run: RunView) -> float | None:
    """``mean_k steps_k`` of :func:`composition`."""
    return None if run.composed is None else float(run.composed["steps"].mean())


@register_metric("final_performance", higher_is_better=True, unit="fraction",
                 description="mean online trial performance over the last 10% of steps (paradigms that score "
                             "trials, e.g. Yang et al.'s on cognitive tasks)")
def final_performance(run: RunView) -> float | None:
    """``mean(performance)`` over the last 10% of the training steps."""
    return float(run.tail["performance"].mean()) if "performance" in run.log else None


def _picked(name: str, source: str, higher: bool, unit: str, description: str, formula: str) -> None:
    def fn(run: RunView) -> float | None:
        return getattr(run, source).get(name)
    fn.__doc__ = formula
    fn.__name__ = fn.__qualname__ = name
    register_metric(name, higher_is_better=higher, unit=unit, description=description)(fn)


_picked("rule_composition_perf", "cues", True, "ratio",
        "held-out performance of a trained task under a composed rule cue (e.g. anti + dlygo - go for dlyanti) "
        "over that under its own cue", "``mean_k P_k(composed) / P_k(own)`` (:func:`rule_composition`)")
_picked("rule_composition_random", "cues", True, "ratio",
        "the same under random cues of the composed cue's norm (the control)",
        "``mean_k mean_r P_k(random_r) / P_k(own)`` (:func:`rule_composition`)")
_picked("zero_shot_perf", "cues", True, "performance",
        "held-out performance of a never-trained task under its composed rule cue",
        "``mean_k P_k(composed)`` over never-trained tasks (:func:`rule_composition`)")
_picked("zero_shot_random", "cues", True, "performance",
        "the same under random cues of the composed cue's norm (the control)",
        "``mean_k mean_r P_k(random_r)`` over never-trained tasks (:func:`rule_composition`)")
_picked("transfer_steps", "transferred", False, "ratio",
        "steps to the switch criterion on a held-out task learned after the curriculum, over the same from a "
        "fresh network of the same model", "``mean_k S_curriculum(k) / mean_k S_scratch(k)`` (:func:`transfer`)")
_picked("transfer_steps_curriculum", "transferred", False, "steps",
        "steps to the switch criterion on a held-out task after the curriculum",
        "``mean_k S_curriculum(k)`` (:func:`transfer`)")
_picked("transfer_steps_scratch", "transferred", False, "steps",
        "steps to the switch criterion on a held-out task from a fresh network",
        "``mean_k S_scratch(k)`` (:func:`transfer`)")
_picked("transfer_censored", "transferred", False, "fraction",
        "fraction of transfer runs (after the curriculum, from scratch) that never met the criterion within "
        "the budget", "the censored fraction of the transfer table (:func:`transfer`)")


@register_metric("final_performance_strict", higher_is_better=True, unit="fraction",
                 description="the same with the cognitive paradigm's stricter score (fixation kept at every "
                             "fixation step; not Yang et al.'s)")
def final_performance_strict(run: RunView) -> float | None:
    """``mean(performance_strict)`` over the last 10% of the training steps."""
    return float(run.tail["performance_strict"].mean()) if "performance_strict" in run.log else None


@register_metric("params", higher_is_better=False, unit="count", description="trainable parameters")
def params(run: RunView) -> float | None:
    """The trained learner's parameter count (NaN for a learner without ``parameters()``)."""
    return run.measured.get("params")


@register_metric("params_changed_per_task", higher_is_better=False, unit="count",
                 description="parameters changed over the first block of each new task (mean)")
def params_changed_per_task(run: RunView) -> float | None:
    """mean over the blocks that train a task for the first time of the parameters that differ
    at the block's end from its start (measured by the run loop)."""
    return run.measured.get("params_changed_per_task")


@register_metric("wall_ms_per_step", higher_is_better=False, unit="ms",
                 description="wall time per learning step (ms), evaluation excluded")
def wall_ms_per_step(run: RunView) -> float | None:
    """training time / steps / seeds of the call (measured by the run loop; evaluation excluded)."""
    return run.measured.get("wall_ms_per_step")


@register_metric("pretrain_corpus_perf", higher_is_better=True, unit="performance",
                 description="the pretraining's worst corpus task performance (models that pretrain; at build time)")
def pretrain_corpus_perf(run: RunView) -> float | None:
    """A model's ``build_metrics["pretrain_corpus_perf"]`` (``modular-primitives``: its teacher's
    Yang et al. performance on held-out corpus trials, the minimum over the corpus tasks)."""
    return run.measured.get("pretrain_corpus_perf")


@register_metric("pretrain_memory", higher_is_better=True, unit="accuracy",
                 description="the pretrained modules' memory: a response direction decoded after the delay")
def pretrain_memory(run: RunView) -> float | None:
    """A model's ``build_metrics["pretrain_memory"]`` (``modular-primitives``: chance ~0.2)."""
    return run.measured.get("pretrain_memory")


@register_metric("pretrain_steps", higher_is_better=False, unit="steps",
                 description="the pretraining's batches (the teacher's, to its corpus criterion or cap)")
def pretrain_steps(run: RunView) -> float | None:
    """A model's ``build_metrics["pretrain_steps"]``."""
    return run.measured.get("pretrain_steps")


@register_metric("steps_to_target", higher_is_better=False, unit="steps",
                 description="learning steps until the held-out perf_min met target_perf (the cap when never: "
                             "see target_met)")
def steps_to_target(run: RunView) -> float | None:
    """With the runner option ``target_perf``: the steps trained when the minimum over the
    trained tasks of Yang et al.'s held-out performance first met it (checked every
    ``check_every`` steps), else the cap (``block_size``; censored, ``target_met`` 0)."""
    return run.measured.get("steps_to_target")


@register_metric("target_met", higher_is_better=True, unit="fraction",
                 description="whether the run met target_perf within its cap (1) or was censored (0)")
def target_met(run: RunView) -> float | None:
    """1.0 when the run stopped at ``target_perf``, 0.0 when it trained its whole block without meeting it."""
    return run.measured.get("target_met")


for _kind, _levels in ROBUSTNESS.items():
    for _level in _levels:
        _what = _LEVEL_TEXT[_kind].format(_level)
        _picked(f"perf_drop_{_kind}_{_level:g}", "robust", False, "performance",
                f"drop in held-out performance, {_what}", "``perf_drop`` of :func:`robustness`")
        _picked(f"loss_rise_{_kind}_{_level:g}", "robust", False, "normalised loss",
                f"rise in held-out normalised loss, {_what}", "``loss_rise`` of :func:`robustness`")
