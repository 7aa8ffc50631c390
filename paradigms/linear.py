"""``switchbench/BlockedLinear-v0``: linear teacher tasks switched in blocks.

The central paradigm of Sandbrink, Bauer, Proca, Saxe, Summerfield & Hummos (NeurIPS 2024,
"Flexible task abstractions emerge in linear networks with fast and bounded units"):
K teachers ``W*_k`` (``output_size x input_size``), inputs ``x ~ N(0, I)``, targets
``y = W*_k x`` for the active task ``k``.

- ``teachers="orthogonal"`` (default): a random rotation of the ``input_size`` identity
  basis, its first ``K * output_size`` rows scaled by ``1/sqrt(input_size)`` and split
  into K teachers: orthonormal rows (up to the scale), mutually orthogonal row spaces.
- ``teachers="iid"``: entries ``N(0, 1/input_size)``.

Composition (``composition=``), after the paper's composition experiments and ordered as its
code (curriculum ``A_B_C__AB_BC_CA__``) orders them: blocks ``b < int(compose_after * (n_blocks
- 1))`` (its switch point ``int(0.75 num_blocks)`` with ``num_blocks + 1`` blocks run) cycle the
K base tasks, ``b mod K``; every later block trains the never-seen composed task ``b mod K``
(``info["phase"] == "compose"``) of the pairs (A, B), (B, C), ..., (last, A). With the paper's
32 blocks and K = 3: 23 base blocks A, B, C, ..., B, then CA, AB, BC, ... (its first composed
task, CA, shares no module with the base task B just trained):

- ``"task"``: ``AB = mix * A + (1 - mix) * B`` (``mix`` = 0.5);
- ``"subtask"``: ``AB`` takes the even output rows of A and the odd rows of B;
- ``probe="novel"`` replaces each composed teacher by a random teacher of the same shape
  and norm (orthogonal rows of a fresh rotation, rescaled): the control that says how much
  of the speed on composed tasks is composition rather than plain learning speed.

Task ids: 0..K-1 are the base tasks, K..2K-1 the composed ones (``task_spec.n_base_tasks``
= K).

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

import dataclasses
from typing import Sequence

import numpy as np
from scipy.stats import special_ortho_group

from switchbench.errors import SwitchbenchError
from switchbench.paradigms.base import SwitchEnv, TaskSpec


def check_teachers(n_tasks: int, input_size: int, output_size: int, kind: str) -> None:
    """Raise unless :func:`make_teachers` can make ``kind`` teachers of these shapes."""
    if kind not in ("orthogonal", "iid"):
        raise SwitchbenchError(f"unknown teachers {kind!r}; valid: orthogonal, iid")
    if kind == "orthogonal" and n_tasks * output_size > input_size:
        raise SwitchbenchError(
            f"orthogonal teachers need n_tasks * output_size <= input_size, got {n_tasks} * {output_size} > "
            f"{input_size}: lower output_size or n_tasks, raise input_size, or use teachers='iid'")


def make_teachers(n_tasks: int, input_size: int, output_size: int, kind: str, seed: int) -> np.ndarray:
    """K teacher matrices, shape ``(K, output_size, input_size)``, float64."""
    check_teachers(n_tasks, input_size, output_size, kind)
    rng = np.random.default_rng(seed)
    if kind == "orthogonal":
        rotation = special_ortho_group.rvs(input_size, random_state=rng) if input_size > 1 else np.ones((1, 1))
        rows = rotation[: n_tasks * output_size] / np.sqrt(input_size)
        return rows.reshape(n_tasks, output_size, input_size)
    return rng.standard_normal((n_tasks, output_size, input_size)) / np.sqrt(input_size)      # iid


def compose_teachers(teachers: np.ndarray, kind: str, mix: float = 0.5) -> np.ndarray:
    """Composed teachers of the pairs (k, k+1 mod K): ``"task"`` mixes them
    (``mix * A + (1 - mix) * B``), ``"subtask"`` takes A's even and B's odd output rows."""
    nxt = np.roll(teachers, -1, axis=0)
    if kind == "task":
        return mix * teachers + (1 - mix) * nxt
    if kind == "subtask":
        out = nxt.copy()
        out[:, ::2] = teachers[:, ::2]
        return out
    raise SwitchbenchError(f"unknown composition {kind!r}; valid: task, subtask")


def novel_like(teachers: np.ndarray, seed: int) -> np.ndarray:
    """Random teachers with the shapes and Frobenius norms of ``teachers`` (the control)."""
    k, out, d_in = teachers.shape
    rng = np.random.default_rng([seed, 1])
    novel = []
    for w in teachers:
        q = special_ortho_group.rvs(d_in, random_state=rng)[:out] if d_in > 1 else np.ones((1, 1))
        novel.append(q * np.linalg.norm(w) / np.linalg.norm(q))
    return np.stack(novel)


class BlockedLinearEnv(SwitchEnv):
    """Linear teachers switched in blocks (see the module docstring)."""

    SMALL_SETTINGS = {"": {"n_blocks": 3, "block_size": 4, "batch_size": 8}}

    def __init__(self, n_tasks: int = 2, input_size: int = 20, output_size: int = 10, teachers: str = "orthogonal",
                 teacher_seed: int = 0, batch_size: int = 200, schedule: str | Sequence[int] = "blocked",
                 block_size: int = 1000, n_blocks: int = 20, cue: bool = False, composition: str | None = None,
                 mix: float = 0.5, compose_after: float = 0.75, probe: str = "composed"):
        for name, v in (("n_tasks", n_tasks), ("input_size", input_size), ("output_size", output_size)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise SwitchbenchError(f"{name} must be a positive integer, got {v!r}")
        check_teachers(n_tasks, input_size, output_size, teachers)
        names = [chr(ord("A") + k) if n_tasks <= 26 else str(k) for k in range(n_tasks)]
        phases = None
        if composition is not None:
            if composition not in ("task", "subtask"):
                raise SwitchbenchError(f"unknown composition {composition!r}; valid: task, subtask")
            if probe not in ("composed", "novel"):
                raise SwitchbenchError(f"unknown probe {probe!r}; valid: composed, novel")
            if schedule != "blocked":
                raise SwitchbenchError("composition needs schedule='blocked' (training cycles the base tasks)")
            if not 0 < compose_after < 1:
                raise SwitchbenchError(f"compose_after must lie in (0, 1), got {compose_after!r}")
            n_train = int(compose_after * (n_blocks - 1))           # the paper's code's switch point
            if n_train < 1 or n_train >= n_blocks:
                raise SwitchbenchError(f"{n_blocks} blocks leave no training or no composed block (compose_after "
                                       f"{compose_after} x ({n_blocks} - 1) = {n_train} training blocks): raise "
                                       "n_blocks or move compose_after")
            schedule = [b % n_tasks + (n_tasks if b >= n_train else 0) for b in range(n_blocks)]
            phases = ["train"] * n_train + ["compose"] * (n_blocks - n_train)
            names += [f"{names[k]}{names[(k + 1) % n_tasks]}" for k in range(n_tasks)]
        self.composition, self.n_tasks = composition, len(names)
        super().__init__(schedule=schedule, block_size=block_size, n_blocks=n_blocks, batch_size=batch_size, cue=cue,
                         phases=phases)
        self.task_spec = TaskSpec(
            name="switchbench/BlockedLinear-v0",
            input_size=input_size + (self.n_tasks if cue else 0),
            output_size=output_size,
            n_tasks=self.n_tasks,
            loss="mse",
            sequence=False,
            null_loss=None,
            schedule=self.schedule,
            batch_size=batch_size,
            kind="regression",
            task_names=tuple(names),
            n_base_tasks=n_tasks,
        )
        if self._spec_only:                                   # task_spec_for: no teachers
            return
        self.teachers = make_teachers(n_tasks, input_size, output_size, teachers, teacher_seed)
        task_teachers = self.teachers
        if composition is not None:
            composed = compose_teachers(self.teachers, composition, mix)
            if probe == "novel":
                composed = novel_like(composed, teacher_seed)
            task_teachers = np.concatenate([self.teachers, composed])
        self.task_teachers = task_teachers
        self._teachers32 = task_teachers.astype(np.float32)
        self.task_spec = dataclasses.replace(self.task_spec,
                                             null_loss=tuple(float(0.5 * np.sum(w ** 2)) for w in task_teachers))
        self._make_spaces(self.task_spec.input_size, output_size)

    def ground_truth(self) -> np.ndarray:
        """The teacher of every task, composed ones included: ``(n_tasks, output_size, input_size)``."""
        return self.task_teachers

    def _draw(self, task: int, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((n, self.teachers.shape[2]), dtype=np.float32)
        return x, x @ self._teachers32[task].T

    def _draw_steps(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, None]:
        """Steps ``start .. stop - 1`` in one draw: ``m`` batches of ``_draw`` are one ``(m B, d)``
        array of the stream, and each step's targets the same ``(B, d) @ (d, out)`` product."""
        tasks = self._sched.task[start:stop]
        m, b = len(tasks), self.batch_size
        x = self.np_random.standard_normal((m * b, self.teachers.shape[2]), dtype=np.float32).reshape(m, b, -1)
        y = x @ self._teachers32[tasks].transpose(0, 2, 1)
        return self._with_cues(x, tasks), y, None
