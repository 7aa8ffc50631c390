"""``switchbench/CognitiveSwitch-v0``: switching between neurogym's cognitive tasks.

Any list of registered neurogym env ids (``envs``; or a named set, below) with their
keyword arguments (``env_kwargs``: env id -> kwargs; ``dt`` sets every env's time step
unless its kwargs do) is switched by the usual schedules (``"blocked"`` with
``block_size`` steps, ``"interleaved"``, or a list of task ids, one per block;
:mod:`switchbench.paradigms.schedules`). One step is one batch of ``batch_size`` trials
of the active task, shape ``(time, batch, features)``; neurogym's tasks themselves are
reused, not rewritten.

**Named sets** (``NAMED_SETS``): ``"yang19"`` (neurogym's 20 tasks of Yang et al. 2019),
``"molap9"`` (the delay/memory corpus: go, dlygo, anti, dlyanti, dlydm1, dlydm2,
ctxdlydm1, ctxdlydm2, multidlydm), and pairs for quick runs: ``"yang19-pair"`` (go +
anti, the default), ``"molap9-pair"`` (dlygo + dlyanti), ``"dm-pair"`` (dm1 + dm2).

**Trials**: each sequence of a batch is one whole trial, *end-aligned*: trials shorter than
``seq_len`` (default: the longest trial in the pools) are padded at the start with zero
inputs and ``-100`` targets, so every trial's response is at the last time step.
Targets are neurogym's ground-truth action at every step (int64; class 0 is fixation in
neurogym's tasks), ``-100`` where padded; the loss is the cross-entropy over unmasked
targets.

**One interface for mixed tasks**: inputs are padded with zeros to the widest task's
observation (each task's own inputs first), the cue (``cue=True``: the one-hot of the task
at every time step) appended; outputs to the largest action space. What is real is
declared: ``env.input_mask`` (n_tasks, input_size) and ``env.output_mask`` (n_tasks,
output_size), and ``info["output_mask"]`` beside ``info["mask"]`` (time, batch: the
unpadded steps). A padded class is never a target.

**Trial pools** (the workarounds for neurogym 2.3.1):

- ``env.reset(seed=...)`` does not seed a neurogym task's own ``rng``; only
  ``env.seed(n)`` does (and for wrapped tasks such as ``yang19.go``, the outermost
  neurogym object's ``seed``, which also seeds its sub-tasks and their scheduler). Pools
  are generated after that call (:func:`switchbench.data.tasksets.generate_trials`, which the
  corpus-pretrained models share), so a pool is a function of its seed.
- ``neurogym.Dataset`` has no seed, returns views into its cache that later calls
  overwrite, and is slow (tens of ms per 64 x 100 batch). It is not used: each task's
  trials are made by its own ``new_trial()`` and copied out.
- Each task has a training pool (``pool_size`` trials) and a held-out pool
  (``eval_pool_size`` trials, for ``eval_batch``) generated once, from seeds derived from
  ``pool_seed`` and the env id (fixed task structure, like a teacher seed: every run seed
  sees the same pools), and cached on disk under ``$SWITCHBENCH_CACHE/neurogym-pools``
  (default ``.cache/``), written atomically (``.npz``, read without pickle). The file
  name is a hash of the env id, its kwargs, the pool seed and part, the pool size, the
  neurogym version and ``POOL_FORMAT``; a changed task, kwargs, seed or version never
  reuses a stale pool, and a corrupt file is regenerated with a warning
  (``pool_cache=False`` skips the disk).
- Batches are drawn from the pool (with replacement) by the env's seeded generator: the
  same seed gives the same batches, bit for bit. A pool freezes its trials' input noise:
  ``pool_size`` is the number of distinct trials (noise samples) a run can see. Pools are
  kept compact in memory (each task at its own length and input width; padding and cue are
  added per batch): about ``(pool_size + eval_pool_size) x time x inputs x 4`` bytes per
  task (~20 MB for ``yang19.go`` at the default dt of 20 ms, a fifth of that at dt = 100 ms).

**Timing** (``timing``): ``"neurogym"`` (default) serves neurogym's tasks as they are;
``"yang"`` gives Yang et al.'s go / anti family (go, anti, rtgo, rtanti, dlygo, dlyanti:
their Go, Anti, RT Go, RT Anti, Dly Go, Dly Anti) the trials of their code
(:mod:`switchbench.data.yang_tasks`), other tasks keeping neurogym's. neurogym departs from
Yang's there: its Go and Anti switch the stimulus off when the response starts (Yang's keep it
on through the response, so Anti needs no memory), its RT tasks replace the fixation input
by the stimulus (Yang's keep fixation on: respond to the stimulus), and every epoch has a
fixed length (Yang's are random: Go / Anti fixation 300-700 ms and stimulus 500-1500 ms before
the response; Dly delays 200-1600 ms; RT waits 500-2500 ms). Yang-timed trials are longer
and of varying length (end-aligned, as every trial: at dt = 20 ms up to 170 steps, against
neurogym's 100). A pool's cache key names the timing where it changes the trials.

**Time step**: ``dt`` (ms) defaults to Yang et al.'s 20 ms (neurogym's own default is
100 ms); it sets every env's time step unless its ``env_kwargs`` do, and is declared as
``task_spec.dt`` so that models derive ``alpha = dt / tau`` (the leaky RNN: tau = 100 ms).
Trials at 20 ms are 5x longer than at 100 ms (``yang19.go``: 75 vs 15 steps) and a
256-unit leaky RNN's step about 8x dearer; the committed suites state ``dt = 100``.

**Performance** (Yang et al. 2019, their code's ``get_perf``): judged at each trial's last
time step only, on the softmax of the logits. "Fixating" is the fixation class's
probability above 0.5. A trial whose last target is fixation is right when fixating;
otherwise when not fixating and the response is right: for tasks with a ring of choices
(neurogym's ``dim_ring``, e.g. all yang19 tasks: 16 directions) the population-vector
angle of the choice probabilities within 0.2 pi of the target's direction, else the
arg-max over the choices. :func:`performance`, reported per step as ``info["performance"]`` and logged
as the ``performance`` column. The stricter score of earlier versions (arg-max right at the
last step *and* fixation kept at every step whose target is fixation) is kept under its own
name, :func:`performance_strict` (``info["performance_strict"]``, column
``performance_strict``); it is not Yang et al.'s. ``accuracy`` counts all unmasked steps.

**Spec without the pools**: ``CognitiveSwitchEnv.task_spec_for(**params)`` makes each
neurogym task (its spaces and ``dt``: neurogym is imported, no trial generated) but no pool.

**Null loss**: per task, the cross-entropy of the best constant predictor: class
frequencies per time step (of the end-aligned training pool). **Switch criterion**:
normalised loss <= 0.2. Not accuracy: the runner's accuracy counts every unmasked time
step, mostly fixation, so it is high before a response is learned; and not 0.1, which the
noisy decision tasks (low coherences) cannot reach at their irreducible error.

**Composition probes** (new parameters; the runner runs them after the curriculum,
:mod:`switchbench.benchmark.probes`): ``held_out_tasks`` keeps tasks out of the curriculum
(they keep their cue unit, inputs and outputs); ``compose`` (task -> expression such as
``"anti + dlygo - go"``) scores the task's held-out trials with its rule cue replaced by the
signed sum of those tasks' one-hot cues (Yang et al. 2019, Fig. 6), beside its own cue, the
expression's leading parts and random cues of the same norm (:meth:`cue_probes`);
``transfer_budget`` learns each held-out task for at most that many steps after the
curriculum (:meth:`transfer_probe`, :meth:`train_batches`). The ``cognitive-compose``
preset (:class:`CognitiveComposeEnv`) turns them on.

>>> import gymnasium, switchbench
>>> env = gymnasium.make("switchbench/CognitiveSwitch-v0", pool_size=32, eval_pool_size=8, batch_size=4,
...                      n_blocks=2, block_size=3, pool_cache=False).unwrapped
>>> x, info = env.reset(seed=0)
>>> x.shape, env.task_spec.task_names, env.task_spec.output_size, env.task_spec.dt
((75, 4, 35), ('yang19.go', 'yang19.anti'), 17, 20)
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import re
import sys
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np

from switchbench.cache import atomic_path, cache_dir
from switchbench.errors import SwitchbenchError
from switchbench.losses import IGNORE, class_entropy
from switchbench.paradigms.base import Cue, CueProbe, SwitchEnv, TaskSpec, TransferProbe
from switchbench.paradigms.schedules import make_schedule
from switchbench.data.tasksets import (NAMED_SETS, YANG_TIMED, check_timing, generate_trials, import_neurogym,
                                       make_task, pack_trials, task_timing)

POOL_FORMAT = 1          # bump when pool generation changes: old cache files are then not reused
SWITCH_CRITERION = ("norm_loss", 0.2)

# --- task ids --------------------------------------------------------------------------------

def resolve_envs(envs: str | Sequence[str]) -> tuple[str, ...]:
    """Env ids of a named set, one id, or a list of ids (not yet checked against neurogym)."""
    if isinstance(envs, str):
        return NAMED_SETS.get(envs, (envs,))
    ids = tuple(envs)
    if not ids or not all(isinstance(e, str) for e in ids):
        raise SwitchbenchError(f"envs must be a named set ({', '.join(NAMED_SETS)}) or a non-empty list of "
                               f"neurogym env ids, got {envs!r}")
    if len(set(ids)) != len(ids):
        raise SwitchbenchError(f"envs lists a task twice: {list(ids)}")
    return ids


# --- the on-disk pool cache ----------------------------------------------------------------

def pool_dir() -> Path:
    """Where pools are cached: ``$SWITCHBENCH_CACHE/neurogym-pools`` (default ``.cache/``)."""
    return cache_dir() / "neurogym-pools"


def _ng_version() -> str:
    return import_neurogym().__version__


def pool_key(env_id: str, kwargs: Mapping[str, Any], seed: int, size: int, timing: str = "neurogym") -> str:
    """The cache key of one pool: env id, kwargs, seed, size, neurogym version, pool format and,
    where it changes the trials (:func:`~switchbench.data.tasksets.task_timing`), the timing."""
    timing = task_timing(env_id, timing)
    blob = json.dumps({"env": env_id, "kwargs": dict(kwargs), "seed": int(seed), "size": int(size),
                       "neurogym": _ng_version(), "format": POOL_FORMAT,
                       **({"timing": timing} if timing != "neurogym" else {})}, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_pool(env_id: str, kwargs: Mapping[str, Any], seed: int, size: int,
              cache: bool = True, timing: str = "neurogym") -> dict[str, np.ndarray]:
    """One task's pool ``{"x": (n, T, obs), "y": (n, T), "lengths": (n,)}`` (end-aligned), from
    the disk cache when its key matches, else generated (and then cached, atomically). A cached
    file that does not load (truncated, a flipped bit caught by the zip's CRC-32s, another
    pool's key) is reported in one warning line and regenerated."""
    key = pool_key(env_id, kwargs, seed, size, timing)
    path = pool_dir() / f"{env_id.replace('/', '_')}-{key}.npz"
    if cache and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:   # the zip's CRC-32s catch a flipped bit
                if str(z["key"]) != key:
                    raise ValueError("another pool's key")
                return {k: z[k] for k in ("x", "y", "lengths")}
        except Exception as e:  # noqa: BLE001 - truncated, bit-flipped or foreign: regenerate and overwrite
            sys.stderr.write(f"switchbench: warning: neurogym pool {path} is corrupt ({type(e).__name__}); "
                             "regenerating it\n")
    pool = pack_trials(generate_trials(env_id, kwargs, seed, size, timing))
    if cache:
        with atomic_path(path) as tmp:
            np.savez(tmp, key=np.array(key), **pool)
    return pool


def _task_seed(pool_seed: int, env_id: str, part: int) -> int:
    ss = np.random.SeedSequence([int(pool_seed), zlib.crc32(env_id.encode()), part])
    return int(ss.generate_state(1)[0])


# --- metrics of this paradigm ------------------------------------------------------------

def null_loss(y: np.ndarray, n_classes: int) -> float:
    """Cross-entropy of the best constant predictor, class frequencies per time step:
    ``sum_t n_t H(p_t) / sum_t n_t`` over unmasked targets ``y`` (time, batch)."""
    total, count = 0.0, 0
    for yt in y:
        yt = yt[yt != IGNORE]
        if len(yt):
            total += len(yt) * class_entropy(yt, n_classes)
            count += len(yt)
    return total / max(count, 1)


def _last_steps(target: np.ndarray):
    keep = target != IGNORE
    has = keep.any(0)
    last = keep.shape[0] - 1 - np.argmax(keep[::-1], axis=0)        # last unmasked step of each trial
    return keep, has, last


def performance(logits, target, fixation: int | None = 0, ring: int | None = None) -> float:
    """Yang et al.'s performance (their ``get_perf``): the fraction of trials (columns of
    ``target`` (time, batch), ``-100`` masked) right at their last unmasked step.

    With ``p`` the softmax of ``logits`` there, "fixating" is ``p[fixation] > 0.5`` (never
    without a fixation class). A trial whose last target is ``fixation`` is right when
    fixating; otherwise when not fixating and the response is right: with a ``ring`` of
    choices (classes ``1..ring`` at angles ``2 pi (c - 1) / ring``) the population vector of
    ``p[1..ring]`` points within ``0.2 pi`` of the target's angle, else the arg-max over the
    classes other than ``fixation`` is the target. NaN without trials.

    >>> t = np.array([[0, 0], [5, 0]])                         # trial 0 responds 5 (of a ring of 16)
    >>> near = np.eye(17)[np.array([[0, 0], [6, 0]])] * 10     # one direction off: 0.125 pi
    >>> performance(near, t, ring=16), performance(near, t)    # Yang's ring tolerance vs exact choice
    (1.0, 0.5)
    """
    target = np.asarray(target)
    keep, has, last = _last_steps(target)
    if not has.any():
        return float("nan")
    cols = np.arange(target.shape[1])
    z = np.asarray(logits, dtype=np.float64)[last, cols]          # (batch, classes) at the last steps
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    y = target[last, cols]
    fixating = p[:, fixation] > 0.5 if fixation is not None else np.zeros(len(y), bool)
    if ring:
        pref = 2 * np.pi * np.arange(ring) / ring
        q = p[:, 1:ring + 1]
        angle = np.arctan2(q @ np.sin(pref), q @ np.cos(pref))
        want = 2 * np.pi * (y - 1) / ring
        dist = np.abs(np.mod(angle - want + np.pi, 2 * np.pi) - np.pi)
        response = (dist < 0.2 * np.pi) & (y >= 1) & (y <= ring)
    else:                                                         # the arg-max over the choices
        choices = z.copy()
        if fixation is not None:
            choices[:, fixation] = -np.inf
        response = choices.argmax(-1) == y
    should_fix = y == fixation if fixation is not None else np.zeros(len(y), bool)
    ok = np.where(should_fix, fixating, response & ~fixating)
    return float(ok[has].mean())


def performance_strict(logits, target, fixation: int | None = 0) -> float:
    """A stricter score than Yang et al.'s (what switchbench called performance before; not theirs): the
    arg-max at the last unmasked step is the target's *and*, when ``fixation`` is a class, it
    is ``fixation`` at every step whose target is ``fixation`` (one broken fixation step fails
    the trial). NaN without trials."""
    pred = np.asarray(logits).argmax(-1)
    target = np.asarray(target)
    keep, has, last = _last_steps(target)
    if not has.any():
        return float("nan")
    cols = np.arange(target.shape[1])
    ok = pred[last, cols] == target[last, cols]
    if fixation is not None:
        fix = keep & (target == fixation)
        ok &= ~(fix & (pred != fixation)).any(0)
    return float(ok[has].mean())


# --- the environment -----------------------------------------------------------------------

class CognitiveSwitchEnv(SwitchEnv):
    """Switching between neurogym tasks, batches served from seeded trial pools (see the module docstring)."""

    SMALL_SETTINGS = {"": {"envs": "yang19-pair", "pool_size": 16, "eval_pool_size": 4, "n_blocks": 2, "block_size": 2,
                           "batch_size": 4}}

    def __init__(self, envs: str | Sequence[str] = "yang19-pair", env_kwargs: Mapping[str, Mapping] | None = None,
                 dt: float | None = 20, seq_len: int | None = None, pool_size: int = 1024,
                 eval_pool_size: int = 512, pool_seed: int = 0, pool_cache: bool = True,
                 schedule: str | Sequence[int] = "blocked", block_size: int = 500, n_blocks: int = 10,
                 batch_size: int = 64, cue: bool = True,
                 held_out_tasks: str | Sequence[str] = (), compose: Mapping[str, str] | None = None,
                 transfer_budget: int = 0, timing: str = "neurogym"):
        self.env_ids = resolve_envs(envs)
        self.n_tasks = len(self.env_ids)
        self.held_out = self._held_out(held_out_tasks)          # composition probes: before the curriculum is made
        env_kwargs = dict(env_kwargs or {})
        bad = sorted(set(env_kwargs) - set(self.env_ids))
        if bad:
            raise SwitchbenchError(f"env_kwargs names envs not in envs: {', '.join(bad)}; "
                                   f"envs: {', '.join(self.env_ids)}")
        if not all(isinstance(v, Mapping) for v in env_kwargs.values()):
            raise SwitchbenchError(f"env_kwargs must map env ids to dicts of keyword arguments, got {env_kwargs!r}")
        for name, v, low in (("pool_size", pool_size, 1), ("eval_pool_size", eval_pool_size, 1)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
                raise SwitchbenchError(f"{name} must be an integer >= {low}, got {v!r}")
        if dt is not None and not (isinstance(dt, (int, float)) and dt > 0):
            raise SwitchbenchError(f"dt must be a positive number (ms) or None, got {dt!r}")
        self.kwargs = {e: {**({"dt": dt} if dt is not None else {}), **dict(env_kwargs.get(e, {}))}
                       for e in self.env_ids}
        self.pool_size, self.eval_pool_size, self.pool_seed = int(pool_size), int(eval_pool_size), int(pool_seed)
        self.timing = check_timing(timing)
        if timing == "yang" and not set(self.env_ids) & set(YANG_TIMED):
            raise SwitchbenchError("timing='yang' changes only Yang et al.'s go / anti family "
                                   f"({', '.join(YANG_TIMED)}); none of envs is one")
        super().__init__(schedule=schedule, block_size=block_size, n_blocks=n_blocks, batch_size=batch_size, cue=cue)

        tasks = [make_task(e, self.kwargs[e], timing) for e in self.env_ids]
        obs = [int(t.observation_space.shape[0]) for t in tasks]
        self.n_actions = [int(t.action_space.n) for t in tasks]
        dts = {float(t.unwrapped.dt) for t in tasks}
        task_dt = dts.pop() if len(dts) == 1 else None           # None: the tasks' time steps differ
        n_in, n_out = max(obs), max(self.n_actions)
        input_size = n_in + (self.n_tasks if self.cue else 0)
        names = tuple(e[:-3] if e.endswith("-v0") else e for e in self.env_ids)
        self.task_spec = TaskSpec(
            name="switchbench/CognitiveSwitch-v0", input_size=input_size, output_size=n_out, n_tasks=self.n_tasks,
            loss="cross_entropy", sequence=True, null_loss=None, schedule=self.schedule,
            batch_size=self.batch_size, kind="sequence", task_names=names, switch_criterion=SWITCH_CRITERION,
            dt=(int(task_dt) if task_dt is not None and task_dt.is_integer() else task_dt))
        self._init_probes(compose, transfer_budget)
        if self._spec_only:                                   # task_spec_for: no trial pools
            return

        raw = [[load_pool(e, self.kwargs[e], _task_seed(pool_seed, e, part), size, pool_cache, timing)
                for part, size in ((0, self.pool_size), (1, self.eval_pool_size))] for e in self.env_ids]
        longest = max(int(p["lengths"].max()) for pools in raw for p in pools)
        if seq_len is None:
            seq_len = longest
        elif not isinstance(seq_len, (int, np.integer)) or seq_len < longest:
            raise SwitchbenchError(f"seq_len must be an integer >= the longest trial in the pools ({longest} steps), "
                                   f"got {seq_len!r}: set seq_len={longest} or more, or leave it None (the longest)")
        self.seq_len = int(seq_len)
        self.input_mask = np.zeros((self.n_tasks, input_size), bool)
        self.output_mask = np.zeros((self.n_tasks, n_out), bool)
        self._n_in = n_in
        # per task, compact (its own length and inputs, time first): x (t_k, n, obs_k), y (t_k, n)
        self._pools = [self._compact(pools[0]) for pools in raw]
        self._eval_pools = [self._compact(pools[1]) for pools in raw]
        for k in range(self.n_tasks):
            self.input_mask[k, :obs[k]] = True
            if self.cue:
                self.input_mask[k, n_in:] = True
            self.output_mask[k, :self.n_actions[k]] = True
        self.trial_lengths = tuple(tuple(int(v) for v in np.unique(pools[0]["lengths"])) for pools in raw)
        self.fixation = tuple(self._fixation_action(e) for e in self.env_ids)
        self.ring = tuple(self._ring(t) for t in tasks)
        nulls = []
        for k, e in enumerate(self.env_ids):
            nl = null_loss(self._pools[k][1], n_out)
            if not nl > 0:
                raise SwitchbenchError(f"neurogym env {e!r}: its targets are the same at every time step in all "
                                       "pooled trials (null loss 0); nothing to learn")
            nulls.append(nl)
        self.task_spec = dataclasses.replace(self.task_spec, null_loss=tuple(nulls))
        shape = (self.seq_len, self.batch_size)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape + (input_size,), np.float32)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, shape + (n_out,), np.float32)

    @staticmethod
    def _compact(pool: dict) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(pool["x"].transpose(1, 0, 2)), np.ascontiguousarray(pool["y"].T)

    def _fixation_action(self, env_id: str) -> int | None:
        name = getattr(make_task(env_id, self.kwargs[env_id], self.timing).action_space, "name", None) or {}
        return 0 if name.get("fixation") == 0 else None

    @staticmethod
    def _ring(task) -> int | None:
        """The number of ring directions when the task's choices are classes ``1..dim_ring`` (yang19)."""
        n = getattr(task.unwrapped, "dim_ring", None)
        choice = (getattr(task.action_space, "name", None) or {}).get("choice")
        return int(n) if n and choice is not None and list(choice) == list(range(1, int(n) + 1)) else None

    # --- batches ------------------------------------------------------------------------
    def _gather(self, task: int, pool: tuple[np.ndarray, np.ndarray], idx: np.ndarray):
        """Trials ``idx`` of a pool in the common interface: ``x (seq_len, len(idx), input_size)``
        (inputs padded with zeros, start-padded in time, the cue at every step), ``y (seq_len,
        len(idx))`` (``-100`` where padded). Fresh arrays, never views of the pool."""
        px, py = pool
        t, _, f = px.shape
        T, n = self.seq_len, len(idx)
        x = np.zeros((T, n, self.task_spec.input_size), np.float32)
        y = np.full((T, n), IGNORE, np.int64)
        x[T - t:, :, :f] = px[:, idx]
        y[T - t:] = py[:, idx]
        if self.cue:
            x[:, :, self._n_in + task] = 1.0
        return x, y

    def _load(self, t: int) -> np.ndarray:
        task = int(self._sched.task[t])
        idx = self.np_random.integers(0, self.pool_size, size=self.batch_size)
        x, self._y = self._gather(task, self._pools[task], idx)
        self._extra = {"mask": self._y != IGNORE, "output_mask": self.output_mask[task]}
        return x

    def _draw_steps(self, start: int, stop: int):
        """Steps ``start .. stop - 1`` with one draw of the stream (every step's pool indices),
        then each task's trials gathered at once, as :meth:`_gather` gathers them."""
        tasks = self._sched.task[start:stop]
        m, T, b = len(tasks), self.seq_len, self.batch_size
        idx = self.np_random.integers(0, self.pool_size, size=m * b).reshape(m, b)
        x = np.zeros((m, T, b, self.task_spec.input_size), np.float32)
        y = np.full((m, T, b), IGNORE, np.int64)
        for k in np.unique(tasks):
            steps = np.flatnonzero(tasks == k)
            px, py = self._pools[k]
            t, _, f = px.shape
            x[steps, T - t:, :, :f] = px[:, idx[steps]].transpose(1, 0, 2, 3)
            y[steps, T - t:] = py[:, idx[steps]].transpose(1, 0, 2)
            if self.cue:
                x[steps, :, :, self._n_in + k] = 1.0
        mask = y != IGNORE
        extras = [{"mask": mask[j], "output_mask": self.output_mask[k]} for j, k in enumerate(tasks.tolist())]
        return x, y, extras

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info["performance"] = self.trial_score(action, info["target"], info["task"])
        info["performance_strict"] = performance_strict(action, info["target"], self.fixation[info["task"]])
        return obs, reward, terminated, truncated, info

    def trial_columns(self, pred, info: dict) -> dict[str, float]:
        """The step's ``performance`` (Yang et al.'s) and ``performance_strict`` columns, as
        ``step()`` scores them into its ``info``."""
        task, target = info["task"], info["target"]
        return {"performance": self.trial_score(pred, target, task),
                "performance_strict": performance_strict(pred, target, self.fixation[task])}

    def trial_score(self, logits: np.ndarray, target: np.ndarray, task: int) -> float:
        """Yang et al.'s :func:`performance` of ``logits`` on trials ``target`` of ``task``."""
        return performance(logits, target, self.fixation[task], self.ring[task])

    def eval_batch(self, task: int, n: int, seed) -> tuple[np.ndarray, np.ndarray]:
        """Held-out trials of ``task`` from its held-out pool: ``x (seq_len, n, input_size)``, ``y (seq_len, n)``."""
        if not 0 <= task < self.n_tasks:
            raise SwitchbenchError(f"task {task} out of range 0..{self.n_tasks - 1}")
        idx = np.random.default_rng(seed).integers(0, self.eval_pool_size, size=n)
        return self._gather(task, self._eval_pools[task], idx)

    # --- composition probes (held-out tasks, composed rule cues, transfer) ---------------
    def task_index(self, name: str) -> int:
        """The task id of ``name``: a neurogym id (``"yang19.dlyanti-v0"``), a task name
        (``"yang19.dlyanti"``) or its last part (``"dlyanti"``) where that is unambiguous."""
        hits = [k for k, e in enumerate(self.env_ids) if name in (e, e.removesuffix("-v0"),
                                                                  e.removesuffix("-v0").rsplit(".", 1)[-1])]
        if len(hits) != 1:
            raise SwitchbenchError(f"{'ambiguous' if hits else 'unknown'} task {name!r}; tasks: {', '.join(self.env_ids)}")
        return hits[0]

    def _held_out(self, names) -> tuple[int, ...]:
        names = (names,) if isinstance(names, str) else tuple(names)
        ids = tuple(sorted({self.task_index(n) for n in names}))
        if len(ids) == self.n_tasks:
            raise SwitchbenchError("held_out_tasks holds out every task; the curriculum needs at least one")
        return ids

    @property
    def trained_tasks(self) -> tuple[int, ...]:
        """The tasks of the curriculum: every task but ``held_out_tasks``."""
        return tuple(k for k in range(self.n_tasks) if k not in self.held_out)

    def _make_curriculum(self, rng: np.random.Generator):
        """The schedule over the trained tasks (named schedules draw from them only; a listed
        schedule may not name a held-out task). Without held-out tasks: the base schedule."""
        if not self.held_out:
            return super()._make_curriculum(rng)
        if not isinstance(self.schedule, str):
            bad = sorted({int(k) for k in self.schedule} & set(self.held_out))
            if bad:
                raise SwitchbenchError(f"the schedule lists held-out task(s) {bad}; held_out_tasks keeps them out "
                                       "of the curriculum")
            return super()._make_curriculum(rng)
        trained = np.asarray(self.trained_tasks)
        s = make_schedule(self.schedule, len(trained), self.n_blocks, self.block_size, rng, self._phases)
        return dataclasses.replace(s, task=trained[s.task])

    def cue_terms(self, expression: str) -> list[tuple[int, int]]:
        """``(sign, task)`` of each term of a rule-cue expression such as ``"anti + dlygo - go"``
        (task names as :meth:`task_index`; the longest name that matches is read)."""
        names = sorted({a for e in self.env_ids for a in (e, e.removesuffix("-v0"),
                                                          e.removesuffix("-v0").rsplit(".", 1)[-1])},
                       key=len, reverse=True)
        terms, rest = [], expression.strip() if isinstance(expression, str) else ""
        while rest:
            m = re.match(r"([+-]?)\s*", rest) if not terms else re.match(r"([+-])\s*", rest)
            name = next((n for n in names if m and rest[m.end():].startswith(n)), None)
            if name is None:
                raise SwitchbenchError(f"cannot read rule-cue expression {expression!r} at {rest!r}: expected "
                                       f"{'a sign and ' if terms else ''}a task name; tasks: {', '.join(self.env_ids)}")
            terms.append((-1 if m.group(1) == "-" else 1, self.task_index(name)))
            rest = rest[m.end() + len(name):].lstrip()
        if not terms:
            raise SwitchbenchError(f"empty rule-cue expression {expression!r}; write e.g. 'anti + dlygo - go'")
        return terms

    def cue_vector(self, expression: str) -> np.ndarray:
        """The rule cue of an expression: the signed sum of its tasks' one-hot cues, ``(n_tasks,)``.

        >>> import gymnasium, switchbench
        >>> env = gymnasium.make("switchbench/CognitiveSwitch-v0", pool_size=8, eval_pool_size=8,
        ...                      pool_cache=False).unwrapped
        >>> env.cue_vector("anti - go").tolist()
        [-1.0, 1.0]
        """
        v = np.zeros(self.n_tasks, np.float32)
        for sign, k in self.cue_terms(expression):
            v[k] += sign
        return v

    def eval_batch_cued(self, task: int, cue: np.ndarray, n: int, seed) -> tuple[np.ndarray, np.ndarray]:
        """``eval_batch(task, n, seed)`` (the same trials) with the rule cue replaced by ``cue``
        ``(n_tasks,)`` at every time step, as Yang et al.'s ``replace_rule``: the model sees only it."""
        if not self.cue:
            raise SwitchbenchError("rule-cue probes need cue=True")
        cue = np.asarray(cue, np.float32)
        if cue.shape != (self.n_tasks,):
            raise SwitchbenchError(f"a rule cue has {self.n_tasks} entries (one per task), got shape {cue.shape}")
        x, y = self.eval_batch(task, n, seed)
        x[:, :, self._n_in:] = cue
        return x, y

    def _init_probes(self, compose, transfer_budget) -> None:
        if not isinstance(transfer_budget, (int, np.integer)) or isinstance(transfer_budget, bool) or transfer_budget < 0:
            raise SwitchbenchError(f"transfer_budget must be an integer >= 0 (steps), got {transfer_budget!r}")
        if transfer_budget and not self.held_out:
            raise SwitchbenchError("transfer_budget > 0 needs held_out_tasks: tasks to learn after the curriculum")
        self.transfer_budget = int(transfer_budget)
        if compose is None:
            compose = {}
        if not isinstance(compose, Mapping) or not all(isinstance(v, str) for v in compose.values()):
            raise SwitchbenchError(f"compose must map task names to rule-cue expressions, e.g. "
                                   f"{{'dlyanti': 'anti + dlygo - go'}}, got {compose!r}")
        if compose and not self.cue:
            raise SwitchbenchError("compose needs cue=True (the composed cue replaces the task's rule cue)")
        self.compose = {self.task_index(t): (e, self.cue_terms(e)) for t, e in compose.items()}

    def cue_probes(self, seed, n_random: int = 5) -> list[CueProbe]:
        """One :class:`CueProbe` per ``compose`` entry: the task under its own cue, under each
        leading part of the expression (``"anti"``, ``"anti + dlygo"``: Yang et al.'s Fig. 6
        rows), the whole expression, and ``n_random`` random cues (Gaussian directions over the
        cue units scaled to the composed cue's norm; drawn from ``seed``)."""
        rng = np.random.default_rng(seed)
        probes = []
        for task, (expression, terms) in self.compose.items():
            own = np.zeros(self.n_tasks, np.float32)
            own[task] = 1
            short = [n.rsplit(".", 1)[-1] for n in self.task_spec.task_names]
            cues, v = [Cue("own", short[task], own)], np.zeros(self.n_tasks, np.float32)
            for i, (sign, k) in enumerate(terms):
                v = v.copy()
                v[k] += sign
                label = " ".join(f"{'-' if s < 0 else '+' if j else ''} {short[t]}".strip()
                                 for j, (s, t) in enumerate(terms[:i + 1]))
                cues.append(Cue("composed" if i == len(terms) - 1 else "partial", label, v))
            for _ in range(n_random):
                r = rng.standard_normal(self.n_tasks)
                cues.append(Cue("random", "random", (r * np.linalg.norm(v) / np.linalg.norm(r)).astype(np.float32)))
            probes.append(CueProbe("zero_shot" if task in self.held_out else "rule_composition", task, expression,
                                   tuple(cues)))
        return probes

    def transfer_probe(self) -> TransferProbe | None:
        """The held-out tasks, each learned after the curriculum for ``transfer_budget`` steps (None if 0)."""
        return TransferProbe(self.held_out, self.transfer_budget) if self.transfer_budget else None

    def train_batches(self, task: int, n_steps: int, seed):
        """``n_steps`` batches of ``task`` from its training pool (as the curriculum's), drawn from ``seed``."""
        rng = np.random.default_rng(seed)
        for _ in range(n_steps):
            yield self._gather(task, self._pools[task], rng.integers(0, self.pool_size, size=self.batch_size))


# --- the composition preset --------------------------------------------------------------

#: ``cognitive-compose``: six of Yang et al.'s tasks, rtanti held out; two composed cues
COMPOSE_PRESET = {
    "envs": tuple(f"yang19.{n}-v0" for n in ("go", "anti", "dlygo", "dlyanti", "rtgo", "rtanti")),
    "dt": 100, "schedule": "interleaved", "n_blocks": 1, "block_size": 1800,
    "held_out_tasks": ("rtanti",), "compose": {"dlyanti": "anti + dlygo - go", "rtanti": "anti + rtgo - go"},
    "transfer_budget": 300,
}


class CognitiveComposeEnv(CognitiveSwitchEnv):
    """``cognitive-compose`` (``switchbench/CognitiveCompose-v0``): ``CognitiveSwitch-v0`` with
    other defaults, :data:`COMPOSE_PRESET` (its ``task_spec`` is CognitiveSwitch-v0's: the same
    environment). At dt = 100 ms (as the leaderboard's cognitive-switch entry), go, anti,
    dlygo, dlyanti and rtgo interleaved (a random task per batch, as
    Yang et al. trained) for one block of 1800 steps (the budget of the leaderboard's
    cognitive-switch entry; no switches, so no switch time or forgetting); then dlyanti under ``anti + dlygo - go`` (``rule_composition_perf``),
    rtanti, never trained, under ``anti + rtgo - go`` (``zero_shot_perf``), and rtanti learned
    for at most 300 steps after the curriculum and from scratch (``transfer_steps``). Every
    parameter of CognitiveSwitch-v0 can still be set."""

    SMALL_SETTINGS = {"": {"pool_size": 16, "eval_pool_size": 4, "n_blocks": 2, "block_size": 3, "batch_size": 4}}

    def __init__(self, **kwargs):
        super().__init__(**{**COMPOSE_PRESET, **kwargs})


_parent = inspect.signature(CognitiveSwitchEnv.__init__, eval_str=True)     # the types, not their text
CognitiveComposeEnv.__init__.__signature__ = _parent.replace(parameters=[
    p.replace(default=COMPOSE_PRESET.get(p.name, p.default), kind=p.KEYWORD_ONLY) if i else p
    for i, p in enumerate(_parent.parameters.values())])
