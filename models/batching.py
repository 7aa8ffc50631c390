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
time. The stacking classes share :func:`stack_like` (weights stacked seed-first) and
:func:`stack_optimizer` / :func:`unstack_optimizer_state` (an elementwise optimiser such as
Adam over the stacks, from and back to each seed's own optimiser).

**Which mechanism, measured.** A plug-in ``torch.nn.Module`` (:class:`~switchbench.models.torch_learner.TorchLearner`)
stacks by the generic mechanism, ``torch.func.stack_module_state`` + ``functional_call`` +
``vmap``. The zoo keeps its own, because the measurement says so:
``python benchmarks/seed_batching.py --seeds 5 --repeats 10`` (one CPU thread, the thread's
CPU time per learning step, medians, alternating in one process; a shared 2-core Xeon at
load average 14, torch 2.13, the recurrent engine of December 6th, 2026), S = 5:

============  =============  ==============  ==============
model         zoo's own      generic vmap    seeds in turn
============  =============  ==============  ==============
gated-mlp     1.2 ms         2.1 ms (1.81x)  4.5 ms (3.8x)
leaky-rnn     189 ms         253 ms (1.34x)  178 ms (0.94x)
gru           86 ms          cannot run      109 ms (1.27x)
============  =============  ==============  ==============

(gated-mlp on digit-switch, batch 64, Adam; leaky-rnn and gru at their defaults on
cognitive-switch at dt 20 ms, 75 steps, batch 64.) The generic path gives the zoo's numbers
(gated-mlp exactly; leaky-rnn to 1e-6 relative) but is slower: the zoo's linear and MLP
learners are one class whose arithmetic broadcasts over a leading seed dimension
(:class:`~switchbench.models.torch_learner.ZooModule`); ``vmap`` cannot run the leaky
family's own forward pass (its engine's hand-written backward writes with ``out=``, and
its noise comes from per-seed generators), so its generic version is a functional time
loop under autograd, 1.34x the hand-written :class:`~switchbench.models.leaky_rnn.StackedRNN`;
and ``torch.nn.GRU`` has no batching rule, so only the hand-written
:class:`~switchbench.models.gru.StackedGRU` batches the GRU. (At S = 5 on one thread the leaky
RNN's stacked step took 1.06x its five single-seed steps in turn: a question for the
recurrent engine's benchmark, ``benchmarks/recurrent_speed.py``.)
"""
from __future__ import annotations

import copy
import numbers
from typing import Sequence

import torch

from switchbench.errors import SwitchbenchError


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


def stack_like(tensors) -> torch.Tensor:
    """``torch.stack`` that keeps a transposed layout (the orthogonal ``W_rec`` comes out of QR
    column-major): each seed's slice is laid out as the single-seed tensor, so products with it
    take the same kernel and round the same."""
    t0 = tensors[0]
    if t0.dim() >= 2 and not t0.is_contiguous() and t0.mT.is_contiguous():
        return torch.stack([t.mT for t in tensors]).mT
    return torch.stack(list(tensors))


def _flat_params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The optimiser's parameters in the order of its ``state_dict`` indices."""
    return [p for group in opt.param_groups for p in group["params"]]


def _per_element(key: str, value, param: torch.Tensor) -> bool:
    """Whether an optimiser state entry holds one value per element of ``param`` (Adam's
    moments; not its ``step`` count)."""
    return key != "step" and torch.is_tensor(value) and value.shape == param.shape


def stack_optimizer_state(singles: Sequence[torch.optim.Optimizer], stacked: torch.optim.Optimizer) -> None:
    """Load into ``stacked`` (an optimiser with the singles' settings over seed-first stacks of
    their parameters, in their order) the single-seed optimisers' state: per-element entries
    stacked seed-first in the layout of the stacked parameter, the others (``step``) shared,
    so they must agree. For an elementwise optimiser (Adam, SGD, RMSprop, ...) with the sum of
    the seeds' losses as objective, each seed's update is then its single-seed update."""
    states = [o.state_dict()["state"] for o in singles]
    if not any(states):
        return
    flat, stacks = _flat_params(singles[0]), _flat_params(stacked)
    if any(st.keys() != states[0].keys() or any(st[i].keys() != states[0][i].keys() for i in st) for st in states):
        raise SwitchbenchError("cannot stack learners whose optimisers hold different state "
                               "(different numbers of optimiser steps)")
    state = {}
    for i, first in states[0].items():
        state[i] = {}
        for k, v in first.items():
            if _per_element(k, v, flat[i]):
                out = torch.empty_like(stacks[i], dtype=v.dtype)
                for o, st in zip(out, states):
                    o.copy_(st[i][k])
                state[i][k] = out
            elif all(torch.equal(st[i][k], v) if torch.is_tensor(v) else st[i][k] == v for st in states):
                state[i][k] = copy.deepcopy(v)
            else:
                raise SwitchbenchError(f"cannot stack learners whose optimisers differ in {k!r} "
                                       "(different numbers of optimiser steps)")
    stacked.load_state_dict({**singles[0].state_dict(), "state": state})


def stack_optimizer(singles: Sequence[torch.optim.Optimizer], params: Sequence[torch.Tensor]) -> torch.optim.Optimizer:
    """One optimiser of the singles' class and settings (group by group) over ``params``,
    seed-first stacks of their parameters in their order, with their stacked state
    (:func:`stack_optimizer_state`)."""
    first, params, groups, start = singles[0], list(params), [], 0
    for group in first.param_groups:
        end = start + len(group["params"])
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": params[start:end]})
        start = end
    opt = type(first)(groups, **first.defaults)
    stack_optimizer_state(singles, opt)
    return opt


def unstack_optimizer_state(stacked: torch.optim.Optimizer, s: int, single: torch.optim.Optimizer) -> None:
    """Load seed ``s``'s slice of ``stacked``'s state (:func:`stack_optimizer_state`) into its
    single-seed optimiser ``single`` (over that seed's parameters, in the same order)."""
    stacks, sd = _flat_params(stacked), stacked.state_dict()
    sd["state"] = {i: {k: v[s].clone() if _per_element(k, v, stacks[i]) else copy.deepcopy(v) for k, v in st.items()}
                   for i, st in sd["state"].items()}
    single.load_state_dict(sd)


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
