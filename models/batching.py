"""Seeds as a batch dimension: the learner protocol of the run loop.

The run loop trains S seeds of one configuration at once (S = 1 included: the loop is the
same). It builds one learner per seed with the model's factory, exactly as a single-seed
run does, then stacks them with :func:`stack` into one *seed-batched learner*::

    predict(x)          x (S, *x_shape) -> (S, *y_shape); no side effects
    learn(x, y)         one update of every seed; returns the loss of each seed before it,
                        a detached float tensor of shape (S,)
    observe_task(tasks) privileged models only: one task index per seed
    parameters()        tensors whose first dimension is the seed (S, ...): the loop counts
                        the parameters each seed changed
    probe()             optional: name -> tensor (S, ...)
    record_hidden(x)    optional: hidden states (S, T, B, H) of inputs x (S, T, B, in)
    unstack()           the S single-seed learners, independent copies in seed order
                        (robustness, probes after the curriculum, ``RunResult.learner``)
    to(device)          move every tensor (parameters, optimiser state, buffers) to a device

``x`` and ``y`` of seed ``s`` are exactly what a single-seed run of seed ``s`` would pass
to ``predict`` / ``learn``. A seed's numbers must not depend on the other seeds: a
learner class that can stack gives each seed its own parameters, optimiser state and
generator, and its batched arithmetic must agree with S single-seed learners (exactly
where the operations are the same; to float rounding where a batched product sums in
another order).

A learner class opts in with a class method ``stack(learners) -> seed-batched learner``.
Any other learner (a plug-in) runs in the same loop through :class:`Single`, one seed at a
time.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import torch


class WrongReturn(TypeError):
    """A learner's ``predict`` or ``learn`` returned a value of the wrong type (the runner
    reports it with the model's name)."""


def loss_value(out) -> float:
    """A single-seed ``learn``'s return value as a float: a number, or a one-element tensor."""
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        return float(out)
    if not isinstance(out, numbers.Real) or isinstance(out, bool):
        raise WrongReturn(f"learn returned {type(out).__name__}, expected a number (the loss before the update)")
    return float(out)


def can_stack(learner) -> bool:
    """Whether ``learner``'s class stacks several seeds into one batched learner (not when
    the instance replaces its class's ``predict`` or ``learn``: the stack would not call them)."""
    own = getattr(learner, "__dict__", {})
    return callable(getattr(type(learner), "stack", None)) and not ({"predict", "learn"} & set(own))


def stack(learners: Sequence) -> object:
    """One seed-batched learner from single-seed learners of one configuration (seed order)."""
    learners = list(learners)
    if not learners:
        raise ValueError("stack() needs at least one learner")
    if can_stack(learners[0]):
        return type(learners[0]).stack(learners)
    if len(learners) == 1:
        return Single(learners[0])
    raise TypeError(f"{type(learners[0]).__name__} cannot run several seeds at once (no stack class method); "
                    "run one seed per call")


class Single:
    """Any single-seed learner in the seed-batched protocol (S = 1)."""

    def __init__(self, learner):
        self.learner = learner

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self.learner.predict(x[0])
        if not isinstance(out, torch.Tensor):
            raise WrongReturn(f"predict returned {type(out).__name__}, expected a torch.Tensor")
        return out[None]

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tensor([loss_value(self.learner.learn(x[0], y[0]))], dtype=torch.float64)

    def observe_task(self, tasks: Sequence[int]) -> None:
        self.learner.observe_task(int(tasks[0]))

    def parameters(self) -> list[torch.Tensor]:
        params = getattr(self.learner, "parameters", None)
        return [p[None] for p in params()] if callable(params) else []

    def unstack(self) -> list:
        return [self.learner]

    def to(self, device) -> "Single":
        to = getattr(self.learner, "to", None)
        if callable(to):
            to(device)
        return self

    def __getattr__(self, name: str):
        # optional capabilities (probe, record_hidden) exist only where the learner has them
        if name in ("probe", "record_hidden"):
            fn = getattr(self.learner, name)            # AttributeError when absent: hasattr() is False

            def batched(*args):
                if name == "probe":
                    return {k: v[None] for k, v in fn().items()}
                return fn(args[0][0])[None]
            return batched
        raise AttributeError(name)
