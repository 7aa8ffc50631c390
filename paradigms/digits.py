"""``switchbench/DigitSwitch-v0``: the same digit images under two labelings, switched in blocks.

The non-linear task-switching experiment of Sandbrink, Bauer, Proca, Saxe, Summerfield &
Hummos (NeurIPS 2024, Sec. 6), on scikit-learn's bundled 8x8 digits instead of MNIST
(see :mod:`switchbench.data.digits`: 1797 images, shipped with scikit-learn, nothing downloaded).

- ``tasks="identity-relabel"`` (default, as in the paper): task A = digit identity, task B
  = the relabeling ``y -> y // 2 + 5 * (y % 2)``; 10 classes each.
- ``tasks="parity-magnitude"``: the classic bivalent pair, parity (0 = even, 1 = odd) and
  magnitude (0 = < 5, 1 = >= 5); 2 classes each.

Inputs are the 64 pixels scaled to 0..1 (plus the task one-hot with ``cue=True``); targets
are int64 class indices; the loss is cross-entropy over ``output_size`` = the largest
class count of the tasks. The training stream draws images uniformly, with replacement,
from the train part of a seeded stratified split (``split_seed``, ``test_fraction``);
``eval_batch`` draws from the test part only. The null loss of a task is the entropy (in
nats) of its class frequencies in the train part: the loss of the best constant predictor.
The default switch criterion is online accuracy >= 0.85.

>>> import gymnasium, switchbench
>>> env = gymnasium.make("switchbench/DigitSwitch-v0", n_blocks=2, block_size=3).unwrapped
>>> x, info = env.reset(seed=0)
>>> x.shape, env.task_spec.output_size, env.task_spec.task_names
((100, 64), 10, ('identity', 'relabel'))
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from switchbench.data.digits import (DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, LABELINGS, N_CLASSES, N_PIXELS,
                                digit_split)
from switchbench.errors import SwitchbenchError
from switchbench.losses import class_entropy
from switchbench.paradigms.base import SwitchEnv, TaskSpec

#: ``tasks`` presets -> the labeling of each task
TASK_SETS = {"identity-relabel": ("identity", "relabel"), "parity-magnitude": ("parity", "magnitude")}
ACCURACY_CRITERION = ("accuracy", 0.85)


def resolve_tasks(tasks: str | Sequence[str]) -> tuple[str, ...]:
    """A ``tasks`` preset name or a list of labeling names -> the labeling names."""
    names = TASK_SETS.get(tasks) if isinstance(tasks, str) else tuple(tasks)
    if not names or any(n not in LABELINGS for n in names):
        raise SwitchbenchError(f"unknown tasks {tasks!r}; valid: {', '.join(TASK_SETS)}, or a list of "
                               f"labelings from {', '.join(LABELINGS)}")
    return tuple(names)


class DigitData:
    """The split and per-task labels that a digit paradigm draws from."""

    def __init__(self, task_names: tuple[str, ...], split_seed: int, test_fraction: float):
        self.check(split_seed, test_fraction)
        self.split = digit_split(int(split_seed), float(test_fraction))
        self.task_names = task_names
        self.n_classes = max(N_CLASSES[n] for n in task_names)
        self.null_loss = tuple(class_entropy(LABELINGS[n](self.split.y_train), self.n_classes) for n in task_names)

    @staticmethod
    def check(split_seed, test_fraction) -> None:
        """The split's parameters, checked without making the split."""
        if not isinstance(split_seed, (int, np.integer)) or isinstance(split_seed, bool) or split_seed < 0:
            raise SwitchbenchError(f"split_seed must be a non-negative integer, got {split_seed!r}")
        if not isinstance(test_fraction, (int, float, np.floating)):
            raise SwitchbenchError(f"test_fraction must be a number, got {test_fraction!r}")
        if not 0.05 <= float(test_fraction) <= 0.95:
            raise SwitchbenchError(f"test_fraction must lie in 0.05..0.95, got {test_fraction!r}")

    def draw(self, task: int, rng: np.random.Generator, n: int, test: bool = False):
        """``n`` images drawn uniformly with replacement: ``(x, label under task, digit)``."""
        x, y = (self.split.x_test, self.split.y_test) if test else (self.split.x_train, self.split.y_train)
        idx = rng.integers(0, len(y), size=n)
        digit = y[idx]
        return x[idx], LABELINGS[self.task_names[task]](digit), digit

    def draw_steps(self, tasks: np.ndarray, rng: np.random.Generator, n: int):
        """``draw(task, rng, n)`` for each task of ``tasks`` in turn, in one draw of the stream:
        ``(x (m, n, 64), labels (m, n), digits (m, n))``."""
        x, y = self.split.x_train, self.split.y_train
        idx = rng.integers(0, len(y), size=len(tasks) * n).reshape(len(tasks), n)
        digits = y[idx]
        labels = np.empty(digits.shape, np.int64)
        for k in np.unique(tasks):
            labels[tasks == k] = LABELINGS[self.task_names[k]](digits[tasks == k])
        return x[idx], labels, digits


class DigitSwitchEnv(SwitchEnv):
    """Digit images under task-specific labelings, switched in blocks (see the module docstring)."""

    SMALL_SETTINGS = {"": {"n_blocks": 3, "block_size": 4, "batch_size": 8, "cue": True}}

    def __init__(self, tasks: str | Sequence[str] = "identity-relabel", split_seed: int = DEFAULT_SPLIT_SEED,
                 test_fraction: float = DEFAULT_TEST_FRACTION, batch_size: int = 100,
                 schedule: str | Sequence[int] = "blocked", block_size: int = 1000, n_blocks: int = 10,
                 cue: bool = False):
        names = resolve_tasks(tasks)
        DigitData.check(split_seed, test_fraction)
        self.n_tasks = len(names)
        super().__init__(schedule=schedule, block_size=block_size, n_blocks=n_blocks, batch_size=batch_size, cue=cue)
        self.task_spec = TaskSpec(
            name="switchbench/DigitSwitch-v0",
            input_size=N_PIXELS + (self.n_tasks if cue else 0),
            output_size=max(N_CLASSES[n] for n in names),
            n_tasks=self.n_tasks,
            loss="cross_entropy",
            sequence=False,
            null_loss=None,
            schedule=self.schedule,
            batch_size=batch_size,
            kind="classification",
            task_names=names,
            switch_criterion=ACCURACY_CRITERION,
        )
        self._make_spaces(self.task_spec.input_size, self.task_spec.output_size)
        if self._spec_only:                                   # task_spec_for: no digit split
            return
        self.data = DigitData(names, split_seed, test_fraction)
        self.task_spec = dataclasses.replace(self.task_spec, null_loss=self.data.null_loss)

    def _draw(self, task: int, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x, y, _ = self.data.draw(task, rng, n)
        return x, y

    def _draw_steps(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, None]:
        """Steps ``start .. stop - 1`` in one draw of the stream (:meth:`DigitData.draw_steps`)."""
        tasks = self._sched.task[start:stop]
        x, y, _ = self.data.draw_steps(tasks, self.np_random, self.batch_size)
        return self._with_cues(x, tasks), y, None

    def eval_batch(self, task: int, n: int, seed) -> tuple[np.ndarray, np.ndarray]:
        """Held-out data of ``task`` from the test part of the split (``n`` draws with replacement)."""
        if not 0 <= task < self.n_tasks:
            raise SwitchbenchError(f"task {task} out of range 0..{self.n_tasks - 1}")
        x, y, _ = self.data.draw(task, np.random.default_rng(seed), n, test=True)
        return self._with_cue(x, task), y
