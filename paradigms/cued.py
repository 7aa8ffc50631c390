"""``switchbench/CuedSwitch-v0``: cued trial-by-trial switching between parity and magnitude.

The task-switching paradigm of cognitive psychology (Rogers & Monsell 1995; Monsell 2003)
on the bundled 8x8 digits (:mod:`switchbench.data.digits`): on every trial a cue says which
task to do with the digit, task 0 = parity (response 0 = even, 1 = odd), task 1 =
magnitude (0 = < 5, 1 = >= 5). Both tasks use the same two responses, so a digit is
*congruent* when both tasks give the same response (0, 2, 4, 5, 7, 9) and incongruent
otherwise (1, 3, 6, 8). Training images come from the train part of the digit split, the
held-out ``eval_batch`` from the test part.

**Schedules** (``schedule``): the kind of each block of ``block_size`` steps,

- ``"aabb"`` (default): alternating runs, the task changes every ``run_length`` trials
  (AABB for ``run_length=2``; the sequence continues across blocks, its phase is random);
- ``"random"``: the task changes from one trial to the next with probability ``p_switch``;
- ``"blocked"``: pure single-task blocks, parity and magnitude alternating by block;
- ``"pure-mixed"``: the cycle pure parity, pure magnitude, AABB, AABB (for mixing costs);
- a list with one entry per block: a task id (a pure block) or ``"aabb"`` / ``"random"``.

Blocks are the evaluation points; ``info["switch"]`` marks block starts as everywhere,
``info["mixed"]`` whether the block mixes tasks.

**Modes** (``mode``):

- ``"trials"`` (default): one step is one *trial position* shared by the whole batch:
  ``batch_size`` independent digits, all under the same task, with its cue
  (``cue=True``: the task one-hot is appended, input 66). The trial sequence runs over
  steps, so trial ``t`` is a *switch* trial when its task differs from trial ``t - 1``'s
  and a *repeat* trial when it is the same (the very first step is neither). Whatever
  carries the last task into the next trial (fast gates, recent weight changes) can
  produce switch costs. Targets ``(batch,)``.
- ``"sequence"``: one step is a batch of ``n_trials``-trial sequences, shape
  ``(time, batch, features)`` with ``time = n_trials * (csi + 1)``. Each trial shows the
  cue alone for ``csi`` steps (the cue-stimulus interval), then cue and digit for one
  step, the response step. Targets are ``-100`` except at response steps, so a recurrent
  model carries its state across trials within a sequence. Each sequence's first trial
  has the step's task (``info["task"]``), later trials follow the block's schedule
  (``"aabb"`` sequences start at a random position in their run). A sequence's first trial
  is neither switch nor repeat.

**Per-trial info** (same shape as the target, False where there is no trial response):
``trial_switch``, ``trial_repeat``, ``congruent``; ``mixed`` (bool, the block mixes tasks);
in sequence mode ``mask`` (time, batch): the response steps.

Null loss: entropy of each task's response frequencies in the train part (about ln 2);
the default switch criterion: online accuracy >= 0.85.

>>> import gymnasium, switchbench
>>> env = gymnasium.make("switchbench/CuedSwitch-v0", n_blocks=1, block_size=4, batch_size=2).unwrapped
>>> x, info = env.reset(seed=0)
>>> x.shape, env.curriculum.task.tolist()
((2, 66), [1, 0, 0, 1])
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import gymnasium as gym
import numpy as np

from switchbench.data.digits import DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, LABELINGS, N_PIXELS, congruent
from switchbench.errors import SwitchbenchError
from switchbench.paradigms.base import SwitchEnv, TaskSpec
from switchbench.paradigms.digits import ACCURACY_CRITERION, DigitData
from switchbench.paradigms.schedules import Schedule

MIXED_KINDS = ("aabb", "random")
PRESETS = {"aabb": ("aabb",), "random": ("random",), "blocked": (0, 1), "pure-mixed": (0, 1, "aabb", "aabb")}
MODES = ("trials", "sequence")


class CuedSwitchEnv(SwitchEnv):
    """Cued parity/magnitude switching on digit images (see the module docstring)."""

    SMALL_SETTINGS = {"": {"n_blocks": 3, "block_size": 4, "batch_size": 8, "schedule": "pure-mixed"},
                      "sequence": {"n_blocks": 2, "block_size": 3, "batch_size": 4, "mode": "sequence", "n_trials": 3,
                                   "csi": 1, "schedule": "random"}}

    def __init__(self, mode: str = "trials", schedule: str | Sequence = "aabb", run_length: int = 2,
                 p_switch: float = 0.5, n_trials: int = 8, csi: int = 1, split_seed: int = DEFAULT_SPLIT_SEED,
                 test_fraction: float = DEFAULT_TEST_FRACTION, batch_size: int = 100, block_size: int = 1000,
                 n_blocks: int = 10, cue: bool = True):
        if mode not in MODES:
            raise SwitchbenchError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        for name, v, low in (("run_length", run_length, 1), ("n_trials", n_trials, 1), ("csi", csi, 0)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
                raise SwitchbenchError(f"{name} must be an integer >= {low}, got {v!r}")
        if not 0.0 <= p_switch <= 1.0:
            raise SwitchbenchError(f"p_switch must lie in 0..1, got {p_switch!r}")
        self.mode, self.run_length, self.p_switch, self.n_trials, self.csi = mode, int(run_length), float(
            p_switch), int(n_trials), int(csi)
        names = ("parity", "magnitude")
        DigitData.check(split_seed, test_fraction)
        self.n_tasks = 2
        super().__init__(schedule=schedule, block_size=block_size, n_blocks=n_blocks, batch_size=batch_size, cue=cue)
        sequence = mode == "sequence"
        self.task_spec = TaskSpec(
            name="switchbench/CuedSwitch-v0",
            input_size=N_PIXELS + (self.n_tasks if cue else 0),
            output_size=2,
            n_tasks=self.n_tasks,
            loss="cross_entropy",
            sequence=sequence,
            null_loss=None,
            schedule=self.schedule,
            batch_size=batch_size,
            kind="sequence" if sequence else "classification",
            task_names=names,
            switch_criterion=ACCURACY_CRITERION,
        )
        if sequence:
            shape = (self.n_steps_per_seq, batch_size)
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape + (self.task_spec.input_size,), np.float32)
            self.action_space = gym.spaces.Box(-np.inf, np.inf, shape + (2,), np.float32)
        else:
            self._make_spaces(self.task_spec.input_size, 2)
        if self._spec_only:                                   # task_spec_for: no digit split
            return
        self.data = DigitData(names, split_seed, test_fraction)
        self.task_spec = dataclasses.replace(self.task_spec, null_loss=self.data.null_loss)

    @property
    def n_steps_per_seq(self) -> int:
        """Time steps of one trial sequence (sequence mode)."""
        return self.n_trials * (self.csi + 1)

    # --- the curriculum -----------------------------------------------------------------
    def block_kinds(self) -> list:
        """The kind of each block: a task id (pure block), ``"aabb"`` or ``"random"``."""
        s = self.schedule
        if isinstance(s, str):
            if s not in PRESETS:
                raise SwitchbenchError(f"unknown schedule {s!r}; valid: {', '.join(PRESETS)}, or a list with a task "
                                       "id or 'aabb'/'random' per block")
            if not isinstance(self.n_blocks, (int, np.integer)) or self.n_blocks < 1:
                raise SwitchbenchError(f"n_blocks must be a positive integer, got {self.n_blocks!r}")
            return [PRESETS[s][b % len(PRESETS[s])] for b in range(self.n_blocks)]
        kinds = list(s)
        ok = all(k in MIXED_KINDS or (isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                                      and 0 <= k < self.n_tasks) for k in kinds)
        if not kinds or not ok:
            raise SwitchbenchError(f"a schedule list needs one entry per block, each a task id 0..{self.n_tasks - 1} "
                                   f"or one of {', '.join(MIXED_KINDS)}; got {s!r}")
        return [k if isinstance(k, str) else int(k) for k in kinds]

    def _make_curriculum(self, rng: np.random.Generator) -> Schedule:
        kinds = self.block_kinds()
        if not isinstance(self.block_size, (int, np.integer)) or self.block_size < 1:
            raise SwitchbenchError(f"block_size must be a positive integer, got {self.block_size!r}")
        n, bs = len(kinds), int(self.block_size)
        task = np.zeros(n * bs, dtype=np.int64)
        offset = int(rng.integers(0, 2 * self.run_length))      # the phase of the AABB sequence
        pos, prev = 0, int(rng.integers(0, 2))
        for b, kind in enumerate(kinds):
            for t in range(b * bs, (b + 1) * bs):
                if not isinstance(kind, str):
                    task[t] = kind
                elif self.mode == "sequence":
                    task[t] = rng.integers(0, 2)                  # the first trial of this step's sequences
                elif kind == "aabb":
                    task[t] = ((pos + offset) // self.run_length) % 2
                    pos += 1
                else:
                    task[t] = 1 - prev if rng.random() < self.p_switch else prev
                prev = int(task[t])
        block = np.repeat(np.arange(n), bs)
        switch = np.zeros(n * bs, dtype=bool)
        switch[bs::bs] = True
        self._mixed = np.array([isinstance(k, str) for k in kinds])
        self._kinds = kinds
        return Schedule(task=task, block=block, switch=switch, phases=("train",) * n, block_size=bs)

    # --- batches ------------------------------------------------------------------------
    def _cue(self, tasks: np.ndarray) -> np.ndarray:
        return np.eye(self.n_tasks, dtype=np.float32)[tasks]

    def _trials(self, tasks: np.ndarray, digits: np.ndarray, images: np.ndarray):
        """Sequences ``(time, batch, features)`` and targets ``(time, batch)`` from per-trial
        tasks, digits and images of shape ``(n_trials, batch[, 64])``."""
        n_trials, b = tasks.shape
        T, step = self.n_steps_per_seq, self.csi + 1
        x = np.zeros((T, b, self.task_spec.input_size), dtype=np.float32)
        y = np.full((T, b), -100, dtype=np.int64)
        resp = np.arange(n_trials) * step + self.csi           # response (stimulus) steps
        x[resp, :, :N_PIXELS] = images
        if self.cue:
            for j in range(step):
                x[np.arange(n_trials) * step + j, :, N_PIXELS:] = self._cue(tasks)
        labels = np.where(tasks == 0, LABELINGS["parity"](digits), LABELINGS["magnitude"](digits))
        y[resp] = labels
        return x, y, resp

    def _sequence_tasks(self, first: int, kind, rng: np.random.Generator, b: int) -> np.ndarray:
        tasks = np.empty((self.n_trials, b), dtype=np.int64)
        tasks[0] = first
        if not isinstance(kind, str):
            tasks[:] = kind
        elif kind == "aabb":
            phase = rng.integers(0, self.run_length, size=b)      # position of trial 0 within its run
            for i in range(1, self.n_trials):
                tasks[i] = np.where((phase + i) % self.run_length == 0, 1 - tasks[i - 1], tasks[i - 1])
        else:
            flips = rng.random((self.n_trials - 1, b)) < self.p_switch
            for i in range(1, self.n_trials):
                tasks[i] = np.where(flips[i - 1], 1 - tasks[i - 1], tasks[i - 1])
        return tasks

    def _load(self, t: int) -> np.ndarray:
        s, rng, b = self._sched, self.np_random, self.batch_size
        task, block = int(s.task[t]), int(s.block[t])
        mixed = bool(self._mixed[block])
        if self.mode == "trials":
            x, self._y, digit = self.data.draw(task, rng, b)
            switch = t > 0 and int(s.task[t - 1]) != task
            self._extra = {"trial_switch": np.full(b, switch), "trial_repeat": np.full(b, t > 0 and not switch),
                           "congruent": congruent(digit), "mixed": mixed}
            return self._with_cue(x, task)
        tasks = self._sequence_tasks(task, self._kinds[block], rng, b)
        idx = rng.integers(0, len(self.data.split.y_train), size=tasks.shape)
        digits = self.data.split.y_train[idx]
        x, self._y, resp = self._trials(tasks, digits, self.data.split.x_train[idx])
        self._extra = self._sequence_info(tasks, digits, resp, mixed)
        return x

    def _draw_steps(self, start: int, stop: int):
        """Trials mode: steps ``start .. stop - 1`` in one draw of the stream (the digits of
        every step's batch); sequence mode draws step by step (each step's draws interleave
        task runs and digits)."""
        if self.mode != "trials":
            return super()._draw_steps(start, stop)
        s, b = self._sched, self.batch_size
        tasks = s.task[start:stop]
        x, y, digits = self.data.draw_steps(tasks, self.np_random, b)
        extras = []
        for j, t in enumerate(range(start, stop)):
            switch = t > 0 and int(s.task[t - 1]) != int(tasks[j])
            extras.append({"trial_switch": np.full(b, switch), "trial_repeat": np.full(b, t > 0 and not switch),
                           "congruent": congruent(digits[j]), "mixed": bool(self._mixed[int(s.block[t])])})
        return self._with_cues(x, tasks), y, extras

    def _sequence_info(self, tasks, digits, resp, mixed) -> dict:
        shape = (self.n_steps_per_seq, tasks.shape[1])
        out = {k: np.zeros(shape, dtype=bool) for k in ("trial_switch", "trial_repeat", "congruent", "mask")}
        out["trial_switch"][resp[1:]] = tasks[1:] != tasks[:-1]
        out["trial_repeat"][resp[1:]] = tasks[1:] == tasks[:-1]
        out["congruent"][resp] = congruent(digits)
        out["mask"][resp] = True
        out["mixed"] = mixed
        return out

    def trial_columns(self, pred, info: dict) -> dict:
        """Switch / repeat and congruency columns of the step (:func:`trial_stats`)."""
        return trial_stats(pred, info)

    def eval_batch(self, task: int, n: int, seed) -> tuple[np.ndarray, np.ndarray]:
        """Held-out data of ``task`` from the test part: ``n`` cued trials, or in sequence mode
        ``n`` single-task sequences ``(time, n, features)``."""
        if not 0 <= task < self.n_tasks:
            raise SwitchbenchError(f"task {task} out of range 0..{self.n_tasks - 1}")
        rng = np.random.default_rng(seed)
        if self.mode == "trials":
            x, y, _ = self.data.draw(task, rng, n, test=True)
            return self._with_cue(x, task), y
        idx = rng.integers(0, len(self.data.split.y_test), size=(self.n_trials, n))
        tasks = np.full((self.n_trials, n), task, dtype=np.int64)
        x, y, _ = self._trials(tasks, self.data.split.y_test[idx], self.data.split.x_test[idx])
        return x, y


def trial_stats(logits: torch.Tensor, info: dict) -> dict:
    """Per-step columns for paradigms whose ``info`` marks trials (``trial_switch``,
    ``trial_repeat``, optional ``congruent``, each shaped like the target; ``mixed``): for
    each group g of unmasked targets (switch, repeat, congruent, incongruent) its count
    ``n_g``, mean cross-entropy ``loss_g`` and error rate ``error_g`` (NaN when ``n_g = 0``)."""
    import torch   # here: importing the paradigms stays light

    from switchbench.losses import IGNORE

    target = torch.as_tensor(info["target"])
    keep = target != IGNORE
    flat = logits.reshape(-1, logits.shape[-1]).float()
    ce = torch.nn.functional.cross_entropy(flat, target.reshape(-1), reduction="none",
                                           ignore_index=IGNORE).reshape(target.shape)
    err = (logits.argmax(-1) != target).float()
    groups = {"switch": info["trial_switch"], "repeat": info["trial_repeat"]}
    if "congruent" in info:
        groups["congruent"] = info["congruent"]
        groups["incongruent"] = ~np.asarray(info["congruent"], dtype=bool)
    out = {"mixed": bool(info.get("mixed", True))}
    for name, m in groups.items():
        m = torch.as_tensor(np.asarray(m, dtype=bool)) & keep
        n = int(m.sum())
        out[f"n_{name}"] = n
        out[f"loss_{name}"] = float(ce[m].mean()) if n else float("nan")
        out[f"error_{name}"] = float(err[m].mean()) if n else float("nan")
    return out

