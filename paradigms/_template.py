"""A template paradigm, short and working: copy it to ``paradigms/my_paradigm.py`` to start a
new one (see CONTRIBUTING.md, "Add a paradigm"). It is not registered: a copy is, by a row
of ``PARADIGMS`` in ``paradigms/__init__.py``.

Two regression tasks on Gaussian inputs ``x ~ N(0, I)``: task A's target is ``x @ w``, task
B's ``-x @ w``, for one fixed random readout ``w`` (from ``readout_seed``): a switch flips
the map, so a single linear learner must relearn it at every switch.

What a paradigm provides (the base class :class:`~switchbench.paradigms.base.SwitchEnv`
does the rest: the schedule of blocks, ``reset``/``step``, the task cue, drawing ahead):

1. ``__init__``: check the parameters (one clear :class:`SwitchbenchError` each), set
   ``self.n_tasks``, call ``super().__init__`` with the curriculum's parameters, set
   ``self.task_spec`` (``null_loss=None``) and return if ``self._spec_only`` (the spec
   without the data), then build the data, complete ``null_loss`` and the spaces;
2. ``_draw(task, rng, n) -> (x, y)``: ``n`` samples of ``task`` from the stream ``rng``
   (numpy arrays, float32 inputs, without the cue).

>>> env = TemplateEnv(n_blocks=2, block_size=3, batch_size=4)
>>> x, info = env.reset(seed=0)
>>> x.shape, info["task"], env.task_spec.task_names
((4, 8), 0, ('A', 'B'))
>>> TemplateEnv.task_spec_for(input_size=5, cue=True).input_size      # the spec, no data built
7
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from switchbench.errors import SwitchbenchError
from switchbench.paradigms.base import SwitchEnv, TaskSpec

SIGNS = (1.0, -1.0)          # task A, task B


class TemplateEnv(SwitchEnv):
    """Two tasks, ``y = x @ w`` and ``y = -x @ w``, switched in blocks (see the module docstring)."""

    #: small settings the tests run a registered paradigm on (see ``SwitchEnv.SMALL_SETTINGS``)
    SMALL_SETTINGS = {"": {"n_blocks": 3, "block_size": 4, "batch_size": 8}}

    def __init__(self, input_size: int = 8, readout_seed: int = 0, batch_size: int = 32,
                 schedule: str | Sequence[int] = "blocked", block_size: int = 100, n_blocks: int = 4,
                 cue: bool = False):
        if not isinstance(input_size, (int, np.integer)) or isinstance(input_size, bool) or input_size < 1:
            raise SwitchbenchError(f"input_size must be a positive integer, got {input_size!r}")
        self.n_tasks = len(SIGNS)
        super().__init__(schedule=schedule, block_size=block_size, n_blocks=n_blocks, batch_size=batch_size,
                         cue=cue)
        self.task_spec = TaskSpec(name="switchbench/Template-v0", input_size=input_size + (self.n_tasks if cue else 0),
                                  output_size=1, n_tasks=self.n_tasks, loss="mse", sequence=False, null_loss=None,
                                  schedule=self.schedule, batch_size=batch_size, kind="regression",
                                  task_names=("A", "B"))
        if self._spec_only:                       # task_spec_for: the spec only, no data
            return
        rng = np.random.default_rng(readout_seed)
        self.w = (rng.standard_normal((input_size, 1)) / np.sqrt(input_size)).astype(np.float32)
        null = float(0.5 * np.sum(self.w.astype(np.float64) ** 2))   # loss of the best constant (zero): 1/2 E|y|^2
        self.task_spec = dataclasses.replace(self.task_spec, null_loss=(null, null))
        self._make_spaces(self.task_spec.input_size, 1)

    def _draw(self, task: int, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((n, self.w.shape[0]), dtype=np.float32)
        return x, SIGNS[task] * (x @ self.w)
