"""Block schedules: which task is active at each learning step.

A schedule is one of

- ``"blocked"``: tasks cycle A B A B ... one per block of ``block_size`` steps;
- ``"interleaved"``: a random task at every step (blocks are then only bookkeeping:
  the evaluation points);
- an explicit list of task ids, one per block (e.g. ``[0, 1, 2, 0]``).

>>> s = make_schedule("blocked", n_tasks=2, n_blocks=3, block_size=2)
>>> s.task.tolist(), s.block.tolist(), s.switch.tolist()
([0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 2, 2], [False, False, True, False, True, False])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from switchbench.errors import SwitchbenchError


@dataclass(frozen=True)
class Schedule:
    """Per-step arrays (``task``, ``block``, ``switch``) and per-block ``phase`` names."""

    task: np.ndarray
    block: np.ndarray
    switch: np.ndarray
    phases: tuple[str, ...]
    block_size: int

    @property
    def n_steps(self) -> int:
        return len(self.task)

    @property
    def n_blocks(self) -> int:
        return len(self.phases)

    def block_tasks(self) -> list[int]:
        """The task of each block (for interleaved schedules: the most frequent one)."""
        return [int(np.bincount(self.task[self.block == b]).argmax()) for b in range(self.n_blocks)]


def make_schedule(
    schedule: str | Sequence[int],
    n_tasks: int,
    n_blocks: int,
    block_size: int,
    rng: np.random.Generator | None = None,
    phases: Sequence[str] | None = None,
) -> Schedule:
    """Build the per-step task sequence of a curriculum (see the module docstring)."""
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise SwitchbenchError(f"block_size must be a positive integer, got {block_size!r}")
    if isinstance(schedule, str):
        if not isinstance(n_blocks, (int, np.integer)) or n_blocks < 1:
            raise SwitchbenchError(f"n_blocks must be a positive integer, got {n_blocks!r}")
        if schedule == "blocked":
            per_block = np.arange(n_blocks) % n_tasks
            task = np.repeat(per_block, block_size)
        elif schedule == "interleaved":
            rng = rng if rng is not None else np.random.default_rng()
            task = rng.integers(0, n_tasks, size=n_blocks * block_size)
        else:
            raise SwitchbenchError(f"unknown schedule {schedule!r}; valid: blocked, interleaved, or a list of task ids")
    else:
        per_block = np.asarray(list(schedule))
        if per_block.ndim != 1 or len(per_block) == 0 or not np.issubdtype(per_block.dtype, np.integer):
            raise SwitchbenchError(f"a schedule list must be a non-empty list of task ids, got {schedule!r}")
        if per_block.min() < 0 or per_block.max() >= n_tasks:
            raise SwitchbenchError(f"schedule task ids must lie in 0..{n_tasks - 1}, got {list(per_block)}")
        n_blocks = len(per_block)
        task = np.repeat(per_block, block_size)
    block = np.repeat(np.arange(n_blocks), block_size)
    switch = np.zeros(len(task), dtype=bool)
    switch[block_size::block_size] = True
    phases = tuple(phases) if phases is not None else ("train",) * n_blocks
    if len(phases) != n_blocks:
        raise SwitchbenchError(f"{len(phases)} phases given for {n_blocks} blocks")
    return Schedule(task=task.astype(np.int64), block=block, switch=switch, phases=phases, block_size=int(block_size))
