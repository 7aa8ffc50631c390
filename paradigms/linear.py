"""``switchbench/BlockedLinear-v0``: linear teacher tasks switched in blocks.

The central paradigm of Sandbrink, Bauer, Proca, Saxe, Summerfield & Hummos (NeurIPS 2024,
"Flexible task abstractions emerge in linear networks with fast and bounded units"):
K teachers ``W*_k`` (``output_size x input_size``), inputs ``x ~ N(0, I)``, targets
``y = W*_k x`` for the active task ``k``.

- ``teachers="orthogonal"`` (default): a random rotation of the ``input_size`` identity
  basis, its first ``K * output_size`` rows scaled by ``1/sqrt(input_size)`` and split
  into K teachers: orthonormal rows (up to the scale), mutually orthogonal row spaces.
- ``teachers="iid"``: entries ``N(0, 1/input_size)``.

Teachers come from ``teacher_seed`` (fixed by default, as in the paper: every student
seed faces the same teachers); the input stream comes from the reset seed. The null loss
of task k (best constant predictor: zero) is ``1/2 E|y|^2 = 1/2 ||W*_k||_F^2`` (0.25 with
the defaults).

>>> import gymnasium, switchbench
>>> env = gymnasium.make("switchbench/BlockedLinear-v0", n_blocks=2, block_size=3)
>>> x, info = env.reset(seed=0)
>>> x.shape, info["task"], [round(v, 9) for v in env.unwrapped.task_spec.null_loss]
((200, 20), 0, [0.25, 0.25])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import special_ortho_group

from switchbench.errors import SwitchbenchError
from switchbench.paradigms.base import SwitchEnv, TaskSpec


def make_teachers(n_tasks: int, input_size: int, output_size: int, kind: str, seed: int) -> np.ndarray:
    """K teacher matrices, shape ``(K, output_size, input_size)``, float64."""
    rng = np.random.default_rng(seed)
    if kind == "orthogonal":
        if n_tasks * output_size > input_size:
            raise SwitchbenchError(
                f"orthogonal teachers need n_tasks * output_size <= input_size, got {n_tasks} * {output_size} > {input_size}")
        rotation = special_ortho_group.rvs(input_size, random_state=rng) if input_size > 1 else np.ones((1, 1))
        rows = rotation[: n_tasks * output_size] / np.sqrt(input_size)
        return rows.reshape(n_tasks, output_size, input_size)
    if kind == "iid":
        return rng.standard_normal((n_tasks, output_size, input_size)) / np.sqrt(input_size)
    raise SwitchbenchError(f"unknown teachers {kind!r}; valid: orthogonal, iid")


class BlockedLinearEnv(SwitchEnv):
    """Linear teachers switched in blocks (see the module docstring)."""

    def __init__(self, n_tasks: int = 2, input_size: int = 20, output_size: int = 10, teachers: str = "orthogonal",
                 teacher_seed: int = 0, batch_size: int = 200, schedule: str | Sequence[int] = "blocked",
                 block_size: int = 1000, n_blocks: int = 20, cue: bool = False):
        for name, v in (("n_tasks", n_tasks), ("input_size", input_size), ("output_size", output_size)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise SwitchbenchError(f"{name} must be a positive integer, got {v!r}")
        self.n_tasks = n_tasks
        self.teachers = make_teachers(n_tasks, input_size, output_size, teachers, teacher_seed)
        self._teachers32 = self.teachers.astype(np.float32)
        super().__init__(schedule=schedule, block_size=block_size, n_blocks=n_blocks, batch_size=batch_size, cue=cue)
        self.task_spec = TaskSpec(
            name="switchbench/BlockedLinear-v0",
            input_size=input_size + (n_tasks if cue else 0),
            output_size=output_size,
            n_tasks=n_tasks,
            loss="mse",
            sequence=False,
            null_loss=tuple(float(0.5 * np.sum(w ** 2)) for w in self.teachers),
            schedule=self.schedule,
            batch_size=batch_size,
            kind="regression",
            task_names=tuple(chr(ord("A") + k) if n_tasks <= 26 else str(k) for k in range(n_tasks)),
        )
        self._make_spaces(self.task_spec.input_size, output_size)

    def _draw(self, task: int, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((n, self.teachers.shape[2]), dtype=np.float32)
        return x, x @ self._teachers32[task].T
