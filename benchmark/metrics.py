"""Metrics: each a function with its formula in the docstring, registered in ``METRICS``
with ``higher_is_better``.

Losses are the paradigm's task loss normalised per task by that task's null loss (the best
constant predictor), so 1 = "knows nothing" and 0 = "perfect".

>>> METRICS["forgetting_Rk"].higher_is_better
False
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    description: str


METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("final_loss", False, "mean normalised online loss over the last 10% of steps"),
    Metric("switch_time_early", False, "mean switch time (steps) over the first 3 switches"),
    Metric("switch_time_late", False, "mean switch time (steps) over the last 5 switches"),
    Metric("switch_censored", False, "fraction of switches that never met the criterion"),
    Metric("switch_censored_early", False, "fraction of the first 3 switches that never met the criterion"),
    Metric("switch_censored_late", False, "fraction of the last 5 switches that never met the criterion"),
    Metric("forgetting_R0", False, "forgetting on held-out sets, model as it is (R0)"),
    Metric("forgetting_Rk", False, "forgetting after k_adapt learning steps on a copy (Rk)"),
    Metric("bwt_R0", False, "backward transfer (final minus right-after-training loss), R0"),
    Metric("bwt_Rk", False, "backward transfer (final minus right-after-training loss), Rk"),
    Metric("specialisation", True, "best-match row-wise cosine between teachers and modules"),
    Metric("final_accuracy", True, "mean online accuracy over the last 10% of steps (classification)"),
    Metric("switch_cost_error", False, "error rate on switch minus repeat trials, mixed blocks (trial paradigms)"),
    Metric("switch_cost_loss", False, "cross-entropy on switch minus repeat trials, mixed blocks"),
    Metric("switch_cost_error_early", False, "switch cost (error) over the first 2 mixed blocks"),
    Metric("switch_cost_error_late", False, "switch cost (error) over the last 2 mixed blocks"),
    Metric("mixing_cost_error", False, "error rate on repeat trials in mixed minus pure blocks"),
    Metric("mixing_cost_loss", False, "cross-entropy on repeat trials in mixed minus pure blocks"),
    Metric("congruency_effect_error", False, "error rate on incongruent minus congruent trials"),
    Metric("composition_loss", False, "mean normalised loss over the first 100 steps of each never-seen composed "
           "task's first block"),
    Metric("composition_steps", False, "steps to the switch criterion on each never-seen composed task's first block"),
    Metric("final_performance", True, "mean online trial performance over the last 10% of steps (paradigms that "
           "score trials, e.g. Yang et al.'s on cognitive tasks)"),
    Metric("rule_composition_perf", True, "held-out performance of a trained task under a composed rule cue "
           "(e.g. anti + dlygo - go for dlyanti) over that under its own cue"),
    Metric("rule_composition_random", True, "the same under random cues of the composed cue's norm (the control)"),
    Metric("zero_shot_perf", True, "held-out performance of a never-trained task under its composed rule cue"),
    Metric("zero_shot_random", True, "the same under random cues of the composed cue's norm (the control)"),
    Metric("transfer_steps", False, "steps to the switch criterion on a held-out task learned after the curriculum, "
           "over the same from a fresh network of the same model"),
    Metric("transfer_steps_curriculum", False, "steps to the switch criterion on a held-out task after the curriculum"),
    Metric("transfer_steps_scratch", False, "steps to the switch criterion on a held-out task from a fresh network"),
    Metric("transfer_censored", False, "fraction of transfer runs (after the curriculum, from scratch) that never "
           "met the criterion within the budget"),
    Metric("final_performance_strict", True, "the same with the cognitive paradigm's stricter score (fixation kept "
           "at every fixation step; not Yang et al.'s)"),
    Metric("params", False, "trainable parameters"),
    Metric("params_changed_per_task", False, "parameters changed over the first block of each new task (mean)"),
    Metric("wall_ms_per_step", False, "wall time per learning step (ms), evaluation excluded"),
]}

#: robustness perturbations (kind -> levels), applied to the final model; see :func:`robustness`
ROBUSTNESS = {"weight_noise": (0.1, 0.3, 1.0), "unit_ablation": (0.1, 0.3), "module_silencing": (1,),
              "input_noise": (0.1, 0.5, 1.0)}
ROBUSTNESS_REPEATS = 3
_LEVEL_TEXT = {"weight_noise": "recurrent weights x (1 + {} N(0,1))", "unit_ablation": "{:.0%} of hidden units silenced",
               "module_silencing": "{} module(s) silenced", "input_noise": "input noise N(0, {}^2)"}
for _kind, _levels in ROBUSTNESS.items():
    for _level in _levels:
        _what = _LEVEL_TEXT[_kind].format(_level)
        for _m in (Metric(f"perf_drop_{_kind}_{_level:g}", False, f"drop in held-out performance, {_what}"),
                   Metric(f"loss_rise_{_kind}_{_level:g}", False, f"rise in held-out normalised loss, {_what}")):
            METRICS[_m.name] = _m

#: the metric that ranks models on a leaderboard
PRIMARY = "switch_time_late"


def _met(values: np.ndarray, criterion: str, threshold: float) -> np.ndarray:
    return values >= threshold if criterion == "accuracy" else values <= threshold


def switch_time(log: pd.DataFrame, criterion: str = "norm_loss", threshold: float = 0.1) -> pd.DataFrame:
    """Steps after each switch until the online criterion is first met.

    For each block ``b`` that starts with a switch (block 0 never does), with online values
    ``v_0, v_1, ...`` of the column ``criterion`` over the block's steps (the loss of each
    batch before learning on it)::

        switch_time[b] = min { i : v_i <= threshold }   (>= for "accuracy")

    A block that never meets it counts its full length and is flagged ``censored``.
    Returns one row per switch: ``block, task, switch_time, censored``.

    >>> log = pd.DataFrame({"block": [0, 0, 1, 1, 1], "task": [0, 0, 1, 1, 1], "switch": [False, False, True, False, False],
    ...                     "norm_loss": [1.0, 0.05, 0.9, 0.5, 0.08]})
    >>> switch_time(log).to_dict("records")
    [{'block': 1, 'task': 1, 'switch_time': 2, 'censored': False}]
    """
    rows = []
    for b, g in log.groupby("block", sort=True):
        if not g["switch"].iloc[0]:
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
    by_block = switch_cost_by_block(log)["cost"].to_numpy()

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
