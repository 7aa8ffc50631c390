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
    Metric("forgetting_R0", False, "forgetting on held-out sets, model as it is (R0)"),
    Metric("forgetting_Rk", False, "forgetting after k_adapt learning steps on a copy (Rk)"),
    Metric("bwt_R0", False, "backward transfer (final minus right-after-training loss), R0"),
    Metric("bwt_Rk", False, "backward transfer (final minus right-after-training loss), Rk"),
    Metric("specialisation", True, "best-match row-wise cosine between teachers and modules"),
    Metric("params", False, "trainable parameters"),
    Metric("wall_ms_per_step", False, "wall time per learning step (ms), evaluation excluded"),
]}

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
    """Early (mean over the first ``early`` switches) vs late (last ``late``) switch time, censored fraction."""
    st = times["switch_time"].to_numpy(dtype=float)
    nan = float("nan")
    return {"switch_time_early": float(st[:early].mean()) if len(st) else nan,
            "switch_time_late": float(st[-late:].mean()) if len(st) else nan,
            "switch_censored": float(times["censored"].mean()) if len(st) else nan}


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
