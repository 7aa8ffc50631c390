"""Evaluation of a run: held-out losses, adaptation, robustness, per-step scores and the
metrics of a finished run (formulas in :mod:`switchbench.benchmark.metrics`).

The functions here see one seed's learner (``robustness``, ``predict_loss``) or one seed's
log (``compute_metrics``); the run loop (:mod:`switchbench.benchmark.loop`) calls them per
seed after it has evaluated all seeds at once.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import torch

from switchbench.benchmark import metrics as M
from switchbench.errors import SwitchbenchError
from switchbench.losses import IGNORE, task_loss
from switchbench.models.batching import WrongReturn, loss_value


def _seed_int(ss: np.random.SeedSequence) -> int:
    return int(ss.generate_state(1)[0])


def _split(t: torch.Tensor, chunks: int, sequence: bool) -> list[torch.Tensor]:
    return list(torch.chunk(t, chunks, dim=1 if sequence else 0))


SHAPE_HINT = ("; size the model from its spec: spec.input_size features per sample (the task cue included), "
              "spec.output_size outputs, batches (time, batch, features) where spec.sequence")


def _call(what: str, fn, *args, batched: bool = False):
    """Call into a model; anything it raises, a return value of the wrong type, or an input
    it changed in place (a batch that the loop, the other seeds or a later evaluation reuse:
    seen by the tensors' version counters, at no cost) becomes one clear line naming the
    model and the call (``learn`` returns a float, ``predict`` a tensor; ``batched``: a
    seed-batched learner's call, whose results the loop checks)."""
    versions = [a._version for a in args if isinstance(a, torch.Tensor) and not a.is_inference()]
    try:
        out = fn(*args)
    except SwitchbenchError:
        raise
    except WrongReturn as e:
        raise SwitchbenchError(f"{what.rsplit(': ', 1)[0]}: {e}") from None
    except MemoryError:
        raise SwitchbenchError(f"{what} ran out of memory") from None
    except Exception as e:  # noqa: BLE001 - third-party models may raise anything
        msg = str(e).splitlines()[0] if str(e) else ""
        if isinstance(e, RuntimeError) and "shape" in msg:   # e.g. torch's "mat1 and mat2 shapes cannot be multiplied"
            msg += SHAPE_HINT
        raise SwitchbenchError(f"{what} failed: {type(e).__name__}: {msg}") from e     # the model's traceback kept
    if versions != [a._version for a in args if isinstance(a, torch.Tensor) and not a.is_inference()]:
        raise SwitchbenchError(f"{what} changed its input in place (e.g. x.mul_(...)), which the other seeds and "
                               "later evaluations reuse: a model must leave its inputs as they are (copy them first)")
    call = what.rsplit(": ", 1)[-1]
    if call == "learn" and not batched:
        try:
            return loss_value(out)
        except WrongReturn as e:
            raise SwitchbenchError(f"{what.rsplit(': ', 1)[0]}: {e}") from None
    if call == "predict" and not isinstance(out, torch.Tensor):
        raise SwitchbenchError(f"{what} returned {type(out).__name__}, expected a torch.Tensor")
    return out


def after_curriculum_probes(learner, env, entry, config: dict, label: str) -> tuple:
    """The paradigm's own probes of the trained learner (rule-cue composition, transfer to
    held-out tasks: :mod:`switchbench.benchmark.probes`): the cue table and the transfer
    table (each None where the paradigm has no such probe)."""
    from switchbench.benchmark.probes import run_probes

    return run_probes(learner, env, entry, config, label)


def add_time(log: pd.DataFrame, model_params: dict) -> None:
    """A ``time`` column (step x dt) for continuous-time models, those with a hyperparameter
    ``dt`` (e.g. ``gated-linear``: dt = 1e-3), so that runs compare with papers that plot time.

    >>> log = pd.DataFrame({"step": [0, 1, 2]})
    >>> add_time(log, {"dt": 0.01}); log["time"].tolist()
    [0.0, 0.01, 0.02]
    """
    dt = model_params.get("dt")
    if isinstance(dt, (int, float)) and not isinstance(dt, bool) and dt > 0:
        log["time"] = log["step"] * float(dt)


def new_task_blocks(sched) -> np.ndarray:
    """True at the first step of each block in which a task is trained for the first time
    (``params_changed_per_task`` counts the parameters that differ at that block's end)."""
    out = np.zeros(len(sched.task), bool)
    seen: set[int] = set()
    for b in np.unique(sched.block):
        steps = np.flatnonzero(sched.block == b)
        tasks = set(np.unique(sched.task[steps]).tolist())
        out[steps[0]] = bool(tasks - seen)
        seen |= tasks
    return out


def predict_loss(learner, k: int, x: torch.Tensor, y: torch.Tensor, spec, privileged: bool,
                 label: str) -> tuple[torch.Tensor, float]:
    """The learner's prediction on task ``k``'s inputs ``x`` (told the task when privileged)
    and its loss on ``y`` normalised by the task's null loss."""
    if privileged:
        learner.observe_task(k)
    with torch.no_grad():
        pred = _call(f"{label}: predict", learner.predict, x)
    return pred, float(task_loss(pred, y, spec.loss)) / spec.null_loss[k]


def robustness(learner, env, held_out: list, privileged: bool, seed: int, label: str,
               repeats: int = M.ROBUSTNESS_REPEATS) -> pd.DataFrame:
    """The final model under each perturbation of :data:`metrics.ROBUSTNESS`, on the run's
    held-out sets: a tidy table (``kind``, ``level``, ``repeat``, ``task``, ``norm_loss``,
    ``score``), ``kind == "none"`` the intact model; formulas in :func:`metrics.robustness`.

    Damage is done to a deep copy by the learner's ``perturb(kind, level, generator)``
    (False: the kind does not apply, and it is left out); input noise is added here, on the
    unmasked steps only. Repeat ``r`` of a perturbation draws its damage from a generator
    seeded by ``(seed, kind, level, r)``: the same damaged network is scored on every task.
    """
    spec = env.task_spec
    classification = spec.loss == "cross_entropy"
    def score(net, k: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        pred, loss = predict_loss(net, k, x, y, spec, privileged, label)
        own = env.trial_score(pred.cpu().numpy(), y.cpu().numpy(), k)
        if own is not None:
            return loss, own
        return loss, accuracy(pred, y) if classification else float("nan")

    rows = []
    for k, (x, y) in enumerate(held_out):
        loss, sc = score(learner, k, x, y)
        rows.append(dict(kind="none", level=0.0, repeat=0, task=k, norm_loss=loss, score=sc))
    for i, (kind, levels) in enumerate(M.ROBUSTNESS.items()):
        for j, level in enumerate(levels):
            for r in range(repeats):
                gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, i, j, r]).generate_state(1)[0]))
                if kind == "input_noise":
                    net = learner
                else:
                    net = copy.deepcopy(learner)
                    if not _call(f"{label}: perturb", net.perturb, kind, level, gen):
                        break
                for k, (x, y) in enumerate(held_out):
                    if kind == "input_noise":
                        noise = level * torch.randn(x.shape, generator=gen, dtype=x.dtype)
                        if classification and spec.sequence:        # the trial's real steps only
                            noise = noise * (y != IGNORE).unsqueeze(-1)
                        x = x + noise
                    loss, sc = score(net, k, x, y)
                    rows.append(dict(kind=kind, level=float(level), repeat=r, task=k, norm_loss=loss, score=sc))
    return pd.DataFrame(rows)


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of unmasked targets (``!= -100``) whose arg-max logit is right."""
    keep = target != IGNORE
    return float((logits.argmax(-1) == target)[keep].float().mean()) if keep.any() else float("nan")



def compute_metrics(log: pd.DataFrame, R0: np.ndarray, Rk: np.ndarray, probes: dict, env, config: dict, *,
                    robustness: pd.DataFrame | None = None, cue_table: pd.DataFrame | None = None,
                    transfer_table: pd.DataFrame | None = None, measured: dict | None = None) -> dict:
    """All scalar metrics of one run: every metric registered in
    :mod:`switchbench.benchmark.metrics` that applies to it (arguments: :class:`~switchbench.benchmark.metrics.RunView`)."""
    return M.compute_metrics(M.RunView(log, R0, Rk, probes, env, config, robustness, cue_table, transfer_table,
                                       dict(measured or {})))


def check_finite(result) -> None:
    """A run is scored only if every number a model produces is finite: the online losses,
    R0 and Rk (held-out losses, as is and after adaptation), the intact model's losses in
    the robustness table and every metric that is not NaN (NaN marks a metric undefined for
    the run, such as forgetting with one block). Raises with the first offender named."""
    c = result.config
    label = f"{c['model']} on {c['paradigm']} (seed {c['seed']})"
    loss = result.log["loss"].to_numpy(dtype=float)
    if not np.isfinite(loss).all():
        raise SwitchbenchError(f"{label}: non-finite loss at step {int(np.flatnonzero(~np.isfinite(loss))[0])}")
    for name, R, what in (("R0", result.R0, "held-out loss"), ("Rk", result.Rk, "held-out loss after adaptation")):
        bad = np.argwhere(~np.isfinite(np.asarray(R, dtype=float)))
        if len(bad) or np.asarray(R).size == 0:
            b, k = bad[0] if len(bad) else (0, 0)
            raise SwitchbenchError(f"{label}: non-finite {what} ({name}[{b}, {k}]: task {k} after block {b}; "
                                   "a learning rate too large?)")
    rob = result.robustness
    if rob is not None and not np.isfinite(rob.loc[rob["kind"] == "none", "norm_loss"].to_numpy(dtype=float)).all():
        raise SwitchbenchError(f"{label}: non-finite held-out loss of the final model")
    for name, v in result.metrics.items():
        if isinstance(v, float) and math.isinf(v):
            raise SwitchbenchError(f"{label}: metric {name} is {v}")

