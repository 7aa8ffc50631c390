"""What a learner's ``state_dict()`` carries besides its tensors: the state its next learning
steps depend on (:class:`LearningState`).

A module's ``state_dict()`` holds its parameters and buffers. A learner that trains itself
also depends on its optimiser's state (Adam's moments and step count), its noise
generator and plain attributes (the task it was told, a consolidation method's anchors).
:class:`LearningState` puts them into the ``state_dict()`` as PyTorch's ``_extra_state``
(:meth:`torch.nn.Module.get_extra_state`), so that ``load_state_dict`` restores a learner
that takes the same next steps as the one saved, and a checkpoint of a run is complete.

>>> import torch
>>> class Net(LearningState, torch.nn.Module):
...     learning_state = ("opt", "task")
...     def __init__(self):
...         super().__init__()
...         self.w = torch.nn.Parameter(torch.ones(2))
...         self.opt, self.task = torch.optim.Adam([self.w], lr=0.1), 0
>>> a, b = Net(), Net()
>>> a.w.grad = torch.ones(2); a.opt.step(); a.task = 1
>>> b.load_state_dict(a.state_dict())
<All keys matched successfully>
>>> b.task, float(b.opt.state[b.w]["step"]), b.opt.state[b.w]["exp_avg"] is a.opt.state[a.w]["exp_avg"]
(1, 1.0, False)
"""
from __future__ import annotations

import copy

import torch

from switchbench.errors import SwitchbenchError


def _optimizer(value) -> torch.optim.Optimizer | None:
    """``value`` if it is a torch optimiser, the one it wraps as ``.opt`` (the zoo's Adam), else None."""
    if isinstance(value, torch.optim.Optimizer):
        return value
    inner = getattr(value, "opt", None)
    return inner if isinstance(inner, torch.optim.Optimizer) else None


class LearningState:
    """Mixin for a ``torch.nn.Module`` learner (see the module docstring): the attributes
    named in ``learning_state`` enter ``state_dict()`` under ``_extra_state`` and are restored
    by ``load_state_dict``, as copies (never shared with the source). An optimiser (or an
    object holding one as ``.opt``) is saved as its ``state_dict()`` and loaded into this
    learner's own; a ``torch.Generator`` as its state (on a generator of the same device
    type); anything else as a deep copy. Attributes a learner does not have are skipped."""

    learning_state: tuple[str, ...] = ("opt", "gen")

    def get_extra_state(self) -> dict:
        out = {}
        for name in self.learning_state:
            if not hasattr(self, name):
                continue
            value = getattr(self, name)
            opt = _optimizer(value)
            if opt is not None:
                out[name] = {"optimizer": opt.state_dict()}
            elif isinstance(value, torch.Generator):
                out[name] = {"generator": value.get_state(), "device": value.device.type}
            else:
                out[name] = {"value": value}
        return out

    def set_extra_state(self, state: dict) -> None:
        for name, saved in state.items():
            current = getattr(self, name, None)
            opt = _optimizer(current)
            if "optimizer" in saved and opt is not None:
                opt.load_state_dict(copy.deepcopy(saved["optimizer"]))
            elif "generator" in saved and isinstance(current, torch.Generator):
                if current.device.type != saved["device"]:
                    raise SwitchbenchError(f"{type(self).__name__}.load_state_dict: the noise generator was saved on "
                                           f"{saved['device']}, this learner is on {current.device.type}: move it there "
                                           "first")
                current.set_state(saved["generator"].clone())
            elif "value" in saved and opt is None and not isinstance(current, torch.Generator):
                setattr(self, name, copy.deepcopy(saved["value"]))
            else:
                raise SwitchbenchError(f"{type(self).__name__}.load_state_dict: {name!r} was saved as "
                                       f"{next(iter(saved))}, this learner has {type(current).__name__} "
                                       "(a state of another configuration)")
