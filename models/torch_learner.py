"""Any ``torch.nn.Module`` as a switchbench learner: your network and optimiser, the paradigm's loss.

``TorchLearner(module, optimizer, spec=spec)`` trains ``module`` with the optimiser that
``optimizer(parameters)`` builds (default: SGD at lr 1e-2) on the paradigm's task loss
(``spec.loss``, :func:`switchbench.losses.task_loss`: half the squared error for regression,
cross-entropy over unmasked targets, ``-100`` = masked, for classification and sequences).

**The module's signature**: ``module(x) -> prediction``, where the prediction has the input's
leading shape and ``spec.output_size`` last (one logit per class for cross-entropy):

- ``(batch, input_size) -> (batch, output_size)`` for non-sequence paradigms;
- ``(time, batch, input_size) -> (time, batch, output_size)`` for sequence paradigms
  (``spec.sequence``; time first, as ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` expect by default).

A module that returns a tuple, such as ``nn.RNN``'s ``(output, hidden)``, is read by its
first element. Any other shape is a :class:`~switchbench.errors.SwitchbenchError`. Inputs are
cast to the dtype and device of the module's parameters.

**Hidden states** (``switchbench.run(..., record_hidden=True)``): ``hidden="rnn"`` names the
submodule (a name of ``module.named_modules()``) whose output :meth:`TorchLearner.record_hidden`
returns: its first element where it returns a tuple, and its outputs stacked on a new first
dimension where the module calls it several times (a loop over time steps). A subclass may
override ``record_hidden(x)`` instead; without either, ``record_hidden`` is None and a run
asking for hidden states fails before it trains, saying so.

**Subclasses** keep their class and methods when seeds run stacked. A subclass that
overrides ``forward``, ``predict`` or ``learn`` runs its seeds one after another (the
stacked arithmetic would bypass its methods).

**Several seeds at once** (:meth:`TorchLearner.stack`): learners of one configuration are
stacked with ``torch.func`` (``stack_module_state`` + ``functional_call`` + ``vmap``), one
optimiser over the stacked parameters ``(S, ...)``. This is each seed's own training when the
optimiser updates every element from its own gradient history (``STACKABLE_OPTIMIZERS``) and
the module has no buffers and no dropout; otherwise, or when ``vmap`` cannot run the module
(checked once on a dummy batch), the seeds run one after another (``mode == "loop"``).

>>> import torch
>>> from switchbench.paradigms.base import TaskSpec
>>> spec = TaskSpec("toy", 4, 2, 2, "mse", False, (1.0, 1.0), "blocked", 8)
>>> learner = TorchLearner(torch.nn.Linear(4, 2), lambda p: torch.optim.SGD(p, lr=0.1), spec=spec)
>>> learner.predict(torch.zeros(8, 4)).shape, sorted(learner.state_dict())
(torch.Size([8, 2]), ['_extra_state', 'module.bias', 'module.weight'])
"""
from __future__ import annotations

import copy
from typing import Callable, Iterable, Sequence

import torch

from switchbench.errors import SwitchbenchError
from switchbench.losses import task_loss
from switchbench.models.batching import stack_optimizer_state, unstack_optimizer_state
from switchbench.models.state import LearningState

#: optimisers whose update of an element depends only on that element's gradients (stackable)
STACKABLE_OPTIMIZERS = ("SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta")


def _sgd(params):
    return torch.optim.SGD(params, lr=1e-2)


def _cast(p: torch.Tensor, x, y=None):
    """``x`` (and ``y``) as tensors on ``p``'s device; floating ones in ``p``'s dtype."""
    x, y = torch.as_tensor(x), None if y is None else torch.as_tensor(y)
    x = x.to(device=p.device, dtype=p.dtype if x.is_floating_point() else x.dtype)
    if y is not None:
        y = y.to(device=p.device, dtype=p.dtype if y.is_floating_point() else y.dtype)
    return x, y


def _prediction(out, x: torch.Tensor, output_size: int, name: str) -> torch.Tensor:
    """The module's prediction (first element of a tuple), checked against the input's shape."""
    if isinstance(out, (tuple, list)):
        out = out[0] if out else None
    want = (*x.shape[:-1], output_size)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SwitchbenchError(f"{name} returned {got} for an input of shape {tuple(x.shape)}; expected {want} "
                               f"(the input's leading shape, then output_size {output_size})")
    return out


class TorchLearner(LearningState, torch.nn.Module):
    """A user ``nn.Module`` trained by ``optimizer(parameters)`` on the paradigm's loss (see the module docstring).

    Args:
        module: ``module(x) -> prediction`` (or a tuple whose first element is the prediction).
        optimizer: a factory ``params -> torch.optim.Optimizer`` (default: SGD, lr 1e-2).
        spec: the paradigm's :class:`~switchbench.paradigms.base.TaskSpec` (its ``loss`` and
            ``output_size``; ``input_size`` and ``sequence`` shape the dummy batch of :meth:`stack`).
        hidden: the name of the submodule whose output :meth:`record_hidden` returns (default:
            none; see the module docstring).

    ``state_dict()`` holds the module's tensors and the optimiser's state (``_extra_state``).
    """

    learning_state = ("optimizer",)

    def __init__(self, module: torch.nn.Module, optimizer: Callable[[list], torch.optim.Optimizer] | None = None, *,
                 spec, hidden: str | None = None):
        super().__init__()
        if not isinstance(module, torch.nn.Module):
            raise SwitchbenchError(f"TorchLearner needs a torch.nn.Module, got {type(module).__name__}")
        if spec.loss not in ("mse", "cross_entropy"):
            raise SwitchbenchError(f"TorchLearner: unknown loss {spec.loss!r}; valid: mse, cross_entropy")
        if hidden is not None and hidden not in dict(module.named_modules()):
            names = ", ".join(n for n, _ in module.named_modules() if n) or "none"
            raise SwitchbenchError(f"TorchLearner: hidden={hidden!r} is not a submodule of {type(module).__name__} "
                                   f"(its submodules: {names})")
        self.module = module
        self.spec = spec
        self.hidden = hidden
        self.make_optimizer = optimizer or _sgd
        self.optimizer = self.make_optimizer(list(module.parameters()))
        if not list(module.parameters()):
            raise SwitchbenchError(f"TorchLearner: {type(module).__name__} has no parameters to train")

    # --- one seed ----------------------------------------------------------------------

    def _cast(self, x: torch.Tensor, y: torch.Tensor | None = None):
        return _cast(next(self.module.parameters()), x, y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self._cast(x)
        return _prediction(self.module(x), x, self.spec.output_size, type(self.module).__name__)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The module's prediction of ``x`` (no gradient, no update)."""
        with torch.no_grad():
            return self(x)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimiser step on the task loss of ``(x, y)``; returns that loss (before the step)."""
        x, y = self._cast(x, y)
        self.optimizer.zero_grad()
        with torch.enable_grad():
            loss = task_loss(self(x), y, self.spec.loss)
            loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    @property
    def record_hidden(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """``record_hidden(x)``: the output of the submodule named by ``hidden`` on the input ``x``
        (no gradient, no update); None where no ``hidden`` was given (a subclass may define
        its own ``record_hidden(x)`` method instead)."""
        return None if self.hidden is None else self._record_hidden

    def _record_hidden(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self._cast(x)
        outs = []

        def keep(_module, _inputs, out):
            outs.append((out[0] if isinstance(out, (tuple, list)) else out).detach())

        handle = self.module.get_submodule(self.hidden).register_forward_hook(keep)
        try:
            with torch.no_grad():
                self.module(x)
        finally:
            handle.remove()
        if not outs:
            raise SwitchbenchError(f"TorchLearner: the submodule {self.hidden!r} was not called by "
                                   f"{type(self.module).__name__}.forward")
        return outs[0] if len(outs) == 1 else torch.stack(outs)

    def to(self, *args, **kwargs) -> "TorchLearner":
        """Move the module (in place) and the optimiser's state to a device or dtype."""
        super().to(*args, **kwargs)
        self.optimizer.load_state_dict(self.optimizer.state_dict())   # casts the state to its parameters
        return self

    # --- several seeds -----------------------------------------------------------------

    @property
    def stackable(self) -> bool:
        """Whether :meth:`stack` can run this learner's seeds as one batch (``torch.func``):
        not for a subclass that overrides ``forward``, ``predict`` or ``learn``."""
        own = all(getattr(type(self), m) is getattr(TorchLearner, m) for m in ("forward", "predict", "learn"))
        return (own and type(self.optimizer).__name__ in STACKABLE_OPTIMIZERS
                and type(self.optimizer).__module__.startswith("torch.optim")
                and not list(self.module.buffers())
                and not any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0
                            for m in self.module.modules()))

    @classmethod
    def stack(cls, learners: Sequence["TorchLearner"]):
        """The seed-batched learner of ``learners`` (see :mod:`switchbench.models.batching`)."""
        learners = list(learners)
        if len(learners) > 1 and all(learner.stackable for learner in learners):
            try:
                return StackedTorchLearner(learners)
            except _NotVmappable:
                pass
        return LoopedLearners(learners)


class _NotVmappable(Exception):
    pass


class StackedTorchLearner:
    """S :class:`TorchLearner` seeds as one: parameters ``(S, ...)``, ``vmap`` over the seed dimension."""

    mode = "vmap"

    def __init__(self, learners: list[TorchLearner]):
        from torch.func import functional_call, stack_module_state, vmap

        first = learners[0]
        self.spec, self.make_optimizer, self.n = first.spec, first.make_optimizer, len(learners)
        self.template = copy.deepcopy(first)      # unstack() gives back learners of its class (a subclass too)
        shapes = [[(k, tuple(p.shape), p.dtype) for k, p in learner.module.named_parameters()] for learner in learners]
        if any(s != shapes[0] for s in shapes):
            raise SwitchbenchError("TorchLearner.stack: the learners' modules have different parameters")
        self.names = [k for k, _, _ in shapes[0]]
        params, _ = stack_module_state([learner.module for learner in learners])
        trained = {k: p.requires_grad for k, p in first.module.named_parameters()}   # frozen ones stay frozen
        self.params = {k: v.detach().clone().requires_grad_(trained[k]) for k, v in params.items()}
        self.base = copy.deepcopy(first.module).to("meta")       # the structure only
        self.optimizer = self.make_optimizer(list(self.params.values()))
        stack_optimizer_state([learner.optimizer for learner in learners], self.optimizer)   # where they stepped before

        output_size, name = self.spec.output_size, type(first.module).__name__

        def one(p, x):
            return _prediction(functional_call(self.base, p, (x,)), x, output_size, name)

        def one_loss(p, x, y):
            return task_loss(one(p, x), y, self.spec.loss)

        self._predict = vmap(one)
        self._loss = vmap(one_loss)
        try:                                   # can vmap run this module? (once, on a dummy batch)
            lead = (self.n, 2, 2) if self.spec.sequence else (self.n, 2)
            p = next(iter(self.params.values()))
            with torch.no_grad():
                self._predict(self.params, torch.zeros(*lead, self.spec.input_size, dtype=p.dtype, device=p.device))
        except SwitchbenchError:
            raise
        except Exception as e:  # noqa: BLE001 - an operation without a vmap rule: loop over the seeds instead
            raise _NotVmappable(str(e)) from None

    def _cast(self, x, y=None):
        return _cast(next(iter(self.params.values())), x, y)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self._cast(x)
        with torch.no_grad():
            return self._predict(self.params, x)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = self._cast(x, y)
        self.optimizer.zero_grad()
        with torch.enable_grad():
            losses = self._loss(self.params, x, y)
            losses.sum().backward()              # seed s's parameters get the gradient of seed s's loss only
        self.optimizer.step()
        return losses.detach().float()

    def observe_task(self, tasks: Sequence[int]) -> None:
        pass

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def unstack(self) -> list[TorchLearner]:
        has_state = bool(self.optimizer.state)
        out = []
        device = next(iter(self.params.values())).device
        for s in range(self.n):
            learner = copy.deepcopy(self.template)
            learner.module.to(device)
            with torch.no_grad():
                for k, p in learner.module.named_parameters():
                    p.copy_(self.params[k][s])
            learner.optimizer = self.make_optimizer(list(learner.module.parameters()))
            if has_state:
                unstack_optimizer_state(self.optimizer, s, learner.optimizer)
            out.append(learner)
        return out

    def to(self, device) -> "StackedTorchLearner":
        for p in self.params.values():
            p.data = p.data.to(device)
        self.optimizer.load_state_dict(self.optimizer.state_dict())
        return self


class LoopedLearners:
    """S learners in the seed-batched protocol, one after another (exact; no speed-up)."""

    mode = "loop"

    def __init__(self, learners: Iterable):
        self.learners = list(learners)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([learner.predict(xs) for learner, xs in zip(self.learners, x)])

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tensor([learner.learn(xs, ys) for learner, xs, ys in zip(self.learners, x, y)], dtype=torch.float64)

    def observe_task(self, tasks: Sequence[int]) -> None:
        for learner, task in zip(self.learners, tasks):
            learner.observe_task(int(task))

    def parameters(self) -> list[torch.Tensor]:
        return [torch.stack(ps) for ps in zip(*(list(learner.parameters()) for learner in self.learners))]

    def unstack(self) -> list:
        return list(self.learners)

    def to(self, device) -> "LoopedLearners":
        for learner in self.learners:
            learner.to(device)
        return self


# --- the zoo's learners: nn.Modules whose arithmetic broadcasts over a leading seed dimension ----------

def _set_tensor(module: torch.nn.Module, name: str, value: torch.Tensor) -> None:
    """Replace the parameter or buffer ``name`` (dotted) of ``module`` by ``value`` (same kind)."""
    prefix, _, leaf = name.rpartition(".")
    owner = module.get_submodule(prefix) if prefix else module
    if leaf in owner._parameters:
        setattr(owner, leaf, torch.nn.Parameter(value, requires_grad=False))
    else:
        owner._buffers[leaf] = value


class ZooModule(LearningState, torch.nn.Module):
    """Base of the zoo's learners: a ``torch.nn.Module`` (``state_dict``, ``to(device)``) that
    learns by its own rule, so its parameters are registered with ``requires_grad=False``.

    Its arithmetic broadcasts over a leading seed dimension: :meth:`stack` stacks S learners'
    parameters and buffers into one learner of the same class with ``n_seeds = S``, whose
    ``predict`` / ``learn`` take ``(S, ...)`` batches (``learn`` then returns the loss of each
    seed, a tensor ``(S,)``). Tensors named in ``shared`` (frozen, equal across seeds) are
    not stacked. ``state_dict()`` also holds the optimiser's state. A learner with an optimiser (``self.opt``, :class:`switchbench.models.gated_mlp.Adam`)
    lists the tensors it optimises in ``_optimized()``; its state is stacked with them.
    """

    n_seeds: int | None = None                 # None: one seed; S: S seeds stacked
    shared: tuple[str, ...] = ()

    def _stacked_names(self) -> list[str]:
        names = [k for k, _ in self.named_parameters()] + [k for k, _ in self.named_buffers()]
        return [k for k in names if k not in self.shared]

    def __setattr__(self, name: str, value) -> None:
        # a plain tensor assigned to a parameter (``net.c = torch.tensor(...)``) becomes that parameter
        if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter) \
                and name in self.__dict__.get("_parameters", {}):
            value = torch.nn.Parameter(value, requires_grad=False)
        super().__setattr__(name, value)

    def _optimized(self) -> list[torch.Tensor]:
        """The tensors ``self.opt`` updates, in its order (none by default)."""
        return []

    def _loss_value(self, loss: torch.Tensor):
        """What ``learn`` returns: a float for one seed, the detached losses ``(S,)`` for stacked seeds."""
        return float(loss.detach()) if self.n_seeds is None else loss.detach()

    @classmethod
    def stack(cls, learners: Sequence["ZooModule"]) -> "ZooModule":
        """One learner of S seeds (``n_seeds = S``) from S single-seed learners of one configuration."""
        learners = list(learners)
        if any(type(m) is not cls or m.n_seeds is not None for m in learners):
            raise SwitchbenchError(f"{cls.__name__}.stack needs single-seed {cls.__name__} learners")
        new = copy.deepcopy(learners[0])
        tensors = [dict(m.named_parameters()) | dict(m.named_buffers()) for m in learners]
        for name in new._stacked_names():
            _set_tensor(new, name, torch.stack([t[name].detach() for t in tensors]))
        if getattr(new, "opt", None) is not None:
            new.opt = new.opt.stacked([m.opt for m in learners], new._optimized())
        new.n_seeds = len(learners)
        return new

    def unstack(self) -> list["ZooModule"]:
        """The S single-seed learners (independent copies, seed order)."""
        if self.n_seeds is None:
            return [self]
        out = []
        for s in range(self.n_seeds):
            one = copy.deepcopy(self)
            tensors = dict(one.named_parameters()) | dict(one.named_buffers())
            for name in one._stacked_names():
                _set_tensor(one, name, tensors[name][s].clone())
            if getattr(one, "opt", None) is not None:
                one.opt = self.opt.sliced(s, one._optimized())
            one.n_seeds = None
            out.append(one)
        return out

    def to(self, *args, **kwargs):
        """Move parameters, buffers and the optimiser's state."""
        super().to(*args, **kwargs)
        if getattr(self, "opt", None) is not None:
            self.opt.opt.load_state_dict(self.opt.opt.state_dict())
        return self
