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
  are generated after that call (:func:`switchbench.tasksets.generate_trials`, which the
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
  reuses a stale pool (``pool_cache=False`` skips the disk).
- Batches are drawn from the pool (with replacement) by the env's seeded generator: the
  same seed gives the same batches, bit for bit. A pool freezes its trials' input noise:
  ``pool_size`` is the number of distinct trials (noise samples) a run can see. Pools are
  kept compact in memory (each task at its own length and input width; padding and cue are
  added per batch): about ``(pool_size + eval_pool_size) x time x inputs x 4`` bytes per
  task (~20 MB for ``yang19.go`` at the default dt of 20 ms, a fifth of that at dt = 100 ms).

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

**Null loss**: per task, the cross-entropy of the best constant predictor: class
frequencies per time step (of the end-aligned training pool). **Switch criterion**:
normalised loss <= 0.2. Not accuracy: the runner's accuracy counts every unmasked time
step, mostly fixation, so it is high before a response is learned; and not 0.1, which the
noisy decision tasks (low coherences) cannot reach at their irreducible error.

>>> import gymnasium, switchbench
>>> env = gymnasium.make("switchbench/CognitiveSwitch-v0", pool_size=32, eval_pool_size=8, batch_size=4,
...                      n_blocks=2, block_size=3, pool_cache=False).unwrapped
>>> x, info = env.reset(seed=0)
>>> x.shape, env.task_spec.task_names, env.task_spec.output_size, env.task_spec.dt
((75, 4, 35), ('yang19.go', 'yang19.anti'), 17, 20)
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np

from switchbench.errors import SwitchbenchError
from switchbench.losses import IGNORE, class_entropy
from switchbench.paradigms.base import SwitchEnv, TaskSpec
from switchbench.tasksets import NAMED_SETS, generate_trials, import_neurogym, make_task, pack_trials

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
    return Path(os.environ.get("SWITCHBENCH_CACHE", ".cache")) / "neurogym-pools"


def _ng_version() -> str:
    return import_neurogym().__version__


def pool_key(env_id: str, kwargs: Mapping[str, Any], seed: int, size: int) -> str:
    """The cache key of one pool: env id, kwargs, seed, size, neurogym version, pool format."""
    blob = json.dumps({"env": env_id, "kwargs": dict(kwargs), "seed": int(seed), "size": int(size),
                       "neurogym": _ng_version(), "format": POOL_FORMAT}, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_pool(env_id: str, kwargs: Mapping[str, Any], seed: int, size: int,
              cache: bool = True) -> dict[str, np.ndarray]:
    """One task's pool ``{"x": (n, T, obs), "y": (n, T), "lengths": (n,)}`` (end-aligned), from
    the disk cache when its key matches, else generated (and then cached, atomically)."""
    key = pool_key(env_id, kwargs, seed, size)
    path = pool_dir() / f"{env_id.replace('/', '_')}-{key}.npz"
    if cache and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    return {k: z[k] for k in ("x", "y", "lengths")}
        except (OSError, ValueError, KeyError):
            pass                                     # unreadable: regenerate and overwrite
    pool = pack_trials(generate_trials(env_id, kwargs, seed, size))
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, key=np.array(key), **pool)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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

    def __init__(self, envs: str | Sequence[str] = "yang19-pair", env_kwargs: Mapping[str, Mapping] | None = None,
                 dt: float | None = 20, seq_len: int | None = None, pool_size: int = 1024,
                 eval_pool_size: int = 512, pool_seed: int = 0, pool_cache: bool = True,
                 schedule: str | Sequence[int] = "blocked", block_size: int = 500, n_blocks: int = 10,
                 batch_size: int = 64, cue: bool = True):
        self.env_ids = resolve_envs(envs)
        self.n_tasks = len(self.env_ids)
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
        super().__init__(schedule=schedule, block_size=block_size, n_blocks=n_blocks, batch_size=batch_size, cue=cue)

        raw = [[load_pool(e, self.kwargs[e], _task_seed(pool_seed, e, part), size, pool_cache)
                for part, size in ((0, self.pool_size), (1, self.eval_pool_size))] for e in self.env_ids]
        longest = max(int(p["lengths"].max()) for pools in raw for p in pools)
        if seq_len is None:
            seq_len = longest
        elif not isinstance(seq_len, (int, np.integer)) or seq_len < longest:
            raise SwitchbenchError(f"seq_len must be an integer >= the longest trial in the pools ({longest} steps), "
                                   f"got {seq_len!r}: set seq_len={longest} or more, or leave it None (the longest)")
        self.seq_len = int(seq_len)
        obs = [pools[0]["x"].shape[2] for pools in raw]
        tasks = [make_task(e, self.kwargs[e]) for e in self.env_ids]
        self.n_actions = [int(t.action_space.n) for t in tasks]
        dts = {float(t.unwrapped.dt) for t in tasks}
        task_dt = dts.pop() if len(dts) == 1 else None           # None: the tasks' time steps differ
        n_in, n_out = max(obs), max(self.n_actions)
        input_size = n_in + (self.n_tasks if self.cue else 0)
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
        names = tuple(e[:-3] if e.endswith("-v0") else e for e in self.env_ids)
        self.task_spec = TaskSpec(
            name="switchbench/CognitiveSwitch-v0", input_size=input_size, output_size=n_out, n_tasks=self.n_tasks,
            loss="cross_entropy", sequence=True, null_loss=tuple(nulls), schedule=self.schedule,
            batch_size=self.batch_size, kind="sequence", task_names=names, switch_criterion=SWITCH_CRITERION,
            dt=(int(task_dt) if task_dt is not None and task_dt.is_integer() else task_dt))
        shape = (self.seq_len, self.batch_size)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape + (input_size,), np.float32)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, shape + (n_out,), np.float32)

    @staticmethod
    def _compact(pool: dict) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(pool["x"].transpose(1, 0, 2)), np.ascontiguousarray(pool["y"].T)

    def _fixation_action(self, env_id: str) -> int | None:
        name = getattr(make_task(env_id, self.kwargs[env_id]).action_space, "name", None) or {}
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

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info["performance"] = self.trial_score(action, info["target"], info["task"])
        info["performance_strict"] = performance_strict(action, info["target"], self.fixation[info["task"]])
        return obs, reward, terminated, truncated, info

    def trial_score(self, logits: np.ndarray, target: np.ndarray, task: int) -> float:
        """Yang et al.'s :func:`performance` of ``logits`` on trials ``target`` of ``task``."""
        return performance(logits, target, self.fixation[task], self.ring[task])

    def eval_batch(self, task: int, n: int, seed) -> tuple[np.ndarray, np.ndarray]:
        """Held-out trials of ``task`` from its held-out pool: ``x (seq_len, n, input_size)``, ``y (seq_len, n)``."""
        if not 0 <= task < self.n_tasks:
            raise SwitchbenchError(f"task {task} out of range 0..{self.n_tasks - 1}")
        idx = np.random.default_rng(seed).integers(0, self.eval_pool_size, size=n)
        return self._gather(task, self._eval_pools[task], idx)
