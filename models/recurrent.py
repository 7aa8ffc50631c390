"""The recurrent model zoo for cognitive (sequence) paradigms: Yang et al.'s leaky RNN
(``leaky-rnn``), a separate one per task (``per-task-rnn``), the leaky RNN with
continual-learning regularisers at task boundaries (``leaky-rnn-ewc``, ``leaky-rnn-si``;
:class:`ConsolidatedRNN`), with gated readouts (``gated-rnn``; :class:`GatedRNN`), and
modular latent primitives (``modular-primitives``; :class:`ModularPrimitives`).

**Leaky RNN** (Yang, Joglekar, Song, Newsome & Wang 2019, Nat. Neurosci.; defaults read
from their code, gyyang/multitask ``train.py`` and ``network.py``)::

    u_t = x_t + sqrt(2 / alpha) sigma_x eta_t                        (input noise)
    h_t = (1 - alpha) h_{t-1} + alpha f(W_rec h_{t-1} + W_in u_t + b + sqrt(2 / alpha) sigma_rec xi_t)
    logits_t = W_out h_t + b_out,            h_0 = 0,  xi_t, eta_t ~ N(0, I)

``alpha = dt / tau`` with ``tau = 100`` ms and ``dt`` the paradigm's time step
(``spec.dt``; the cognitive paradigm's default is Yang et al.'s 20 ms, so alpha 0.2; at
``dt = 100`` alpha is 1); paradigms without a ``dt`` get alpha 0.2; ``alpha=`` overrides.
``f`` softplus (default, as the paper) or relu; ``hidden = 256`` units; recurrent noise
``sigma_rec = 0.05`` and input noise ``sigma_x = 0.01`` while learning; ``predict`` runs
without noise (and so has no side effects; their evaluation kept the noise). Initialisation
as their code: ``W_rec = 0.5 x`` a random orthogonal matrix (their ``_w_rec_start`` for
softplus and relu; ``w_rec_gain``), ``W_in ~ N(0, 1/n_in)``, ``W_out`` Glorot-uniform, biases
0, all from the model's own ``torch.Generator`` seeded by the run. The rule input is the
paradigm's cue (``cue=True``), part of ``x``. Loss: the paradigm's cross-entropy over
unmasked targets (the paper used a masked squared error on sigmoid outputs); one
``torch.optim.Adam`` step (lr 1e-3) per batch, each gradient element clipped to [-1, 1]
first (as their code; every model here does so).

**Per-task RNN**: one leaky RNN per task, each with its own Adam; privileged (the runner
calls ``observe_task(task)`` before each step and evaluation), so it never forgets and
never transfers: the upper bound on retention and the lower bound on sharing.

**PyTorch and seeds.** Every model here is a :class:`torch.nn.Module` (``state_dict()``;
``.to(device)`` moves the Adam state too, and gives the noise a generator on that device
seeded from the model's own) used through ``predict`` / ``learn``; ``parameters()`` are the
tensors it trains; ``record_hidden(x)`` returns the noiseless hidden states. Each class's
``stack(learners)`` makes S single-seed learners one seed-batched learner
(:mod:`switchbench.models.batching`): weights stacked seed-first and multiplied batched,
each seed's noise from its own generator in the single-seed order, each seed's update its
own (one Adam over the stacks on the sum of the seeds' losses, or, for the per-task models,
each seed's own Adam on views of the stacks), so a stacked seed agrees with its single-seed
learner to float rounding (a batched product may round differently from the single ``mm``).
On a CPU the step is dominated by the matrix products, which stacking does not reduce.

>>> import torch
>>> from switchbench import models
>>> from switchbench.paradigms.base import TaskSpec
>>> spec = TaskSpec("toy", 5, 3, 2, "cross_entropy", True, (1.0, 1.0), "blocked", 4, kind="sequence")
>>> net = models.get("leaky-rnn").build(spec, seed=0, hidden=8)
>>> net.predict(torch.zeros(6, 4, 5)).shape, net.alpha          # no dt in this spec: alpha 0.2
(torch.Size([6, 4, 3]), 0.2)
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from switchbench.errors import SwitchbenchError
from switchbench.losses import IGNORE, task_loss
from switchbench.models.registry import register

YANG19 = ("Yang, Joglekar, Song, Newsome & Wang (2019), Task representations in neural networks trained to "
          "perform many cognitive tasks, Nat. Neurosci. 22:297")
ACTIVATIONS = {"softplus": F.softplus, "relu": torch.relu}
GRAD_CLIP = 1.0          # Yang et al.'s code clips every gradient element to [-1, 1] before Adam
TAU = 100.0              # Yang et al.'s time constant (ms)
W_REC_GAIN = 0.5         # Yang et al.'s recurrent initial scale for softplus / relu units (x a random orthogonal matrix)


def derive_alpha(spec, alpha: float | None, tau: float) -> float:
    """``alpha`` if given, else ``spec.dt / tau`` (the paradigm's ms per step), else 0.2
    (Yang et al.'s 20 ms / 100 ms) for paradigms without a time step."""
    if alpha is not None:
        return alpha
    if not (isinstance(tau, (int, float)) and tau > 0):
        raise SwitchbenchError(f"tau must be a positive number of ms, got {tau!r}")
    dt = getattr(spec, "dt", None)
    if dt is None:
        return 0.2
    if dt > tau:
        raise SwitchbenchError(f"alpha = dt / tau = {dt} / {tau} > 1: use a paradigm dt <= tau or set alpha")
    return dt / tau


def random_orthogonal(n: int, gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


def clip_and_step(opt: torch.optim.Optimizer, params) -> None:
    """One optimiser step after clipping each gradient element to ``[-GRAD_CLIP, GRAD_CLIP]``."""
    torch.nn.utils.clip_grad_value_([p for p in params if p.grad is not None], GRAD_CLIP)
    opt.step()


# --- devices and seed stacks: helpers shared by the zoo's modules ------------------------------

def apply_to_optimiser(opt: torch.optim.Optimizer, fn) -> None:
    """Apply ``fn`` (a :meth:`torch.nn.Module._apply` function: ``.to(device)``, ...) to the
    optimiser's state tensors (Adam's moments; its ``step`` count stays where Adam keeps it)."""
    for state in opt.state.values():
        for k, v in state.items():
            if torch.is_tensor(v) and k != "step":
                state[k] = fn(v)


def generator_on(gen: torch.Generator, device: torch.device) -> torch.Generator:
    """``gen`` if it draws on ``device``, else a generator there seeded from it: the noise on
    another device is a different stream, reproducible per seed on that device."""
    if gen.device == device or (gen.device.type == device.type and device.index is None):
        return gen
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=gen, device=gen.device))
    return torch.Generator(device).manual_seed(seed)


def stack_like(tensors) -> torch.Tensor:
    """``torch.stack`` that keeps a transposed layout (the orthogonal ``W_rec`` comes out of QR
    column-major): each seed's slice is laid out as the single-seed tensor, so products with it
    take the same kernel and round the same."""
    t0 = tensors[0]
    if t0.dim() >= 2 and not t0.is_contiguous() and t0.mT.is_contiguous():
        return torch.stack([t.mT for t in tensors]).mT
    return torch.stack(list(tensors))


def adam_settings(opt: torch.optim.Optimizer) -> list:
    """The optimiser's settings (learning rate, betas, ...): learners stacked under one Adam must share them."""
    return [(k, repr(v)) for k, v in sorted(opt.param_groups[0].items()) if k != "params"]


def stack_adam(opts, singles: list[list[torch.Tensor]], stacked: list[torch.Tensor]) -> torch.optim.Adam:
    """One Adam over ``stacked`` (seed-first stacks of the ``singles``' parameters) with the
    settings and moments of the single-seed Adams ``opts``. Adam is elementwise, so with the sum
    of the seeds' losses as objective each seed's update is its single-seed update."""
    group = {k: v for k, v in opts[0].param_groups[0].items() if k != "params"}
    opt = torch.optim.Adam(stacked, **group)
    for i, p in enumerate(stacked):
        states = [o.state.get(ps[i], {}) for o, ps in zip(opts, singles)]
        if not any(states):
            continue
        if not all(states) or len({float(st["step"]) for st in states}) > 1:
            raise SwitchbenchError("cannot stack learners that took different numbers of optimiser steps")
        opt.state[p] = {k: v.clone() if k == "step" else stack_like([st[k] for st in states])
                        for k, v in states[0].items()}
    return opt


def unstack_adam(opt: torch.optim.Adam, stacked: list[torch.Tensor], single_opt, single: list[torch.Tensor],
                 s: int) -> None:
    """Seed ``s``'s slice of the stacked Adam's state into the single-seed ``single_opt``."""
    for P, p in zip(stacked, single):
        state = opt.state.get(P)
        single_opt.state.pop(p, None)
        if state:
            single_opt.state[p] = {k: v.clone() if k == "step" else v[s].clone() for k, v in state.items()}


def seed_noise(gens: list[torch.Generator], shape, scale: float) -> torch.Tensor:
    """``scale`` times standard normal noise ``(S, *shape)``: seed ``s``'s slice from ``gens[s]``,
    drawn as the single-seed learner draws it."""
    out = torch.empty((len(gens), *shape), device=gens[0].device)
    for o, g in zip(out, gens):
        torch.randn(shape, generator=g, out=o)
    return out.mul_(scale)


def leak(h: torch.Tensor, r: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1 - alpha) h + alpha r``; at ``alpha = 1`` (dt = tau) just ``r``, the same numbers in fewer operations."""
    return r if alpha == 1 else (1 - alpha) * h + alpha * r


class LeakyRNN(torch.nn.Module):
    """A leaky (rate) RNN with a linear readout at every step, trained by Adam (see the module docstring).

    A :class:`torch.nn.Module` (weights in ``state_dict()``; ``.to(device)`` also moves the Adam
    state and gives the noise a generator on that device, seeded from this one), but not called
    as one: ``predict``, ``learn`` and ``record_hidden`` are the learner. ``parameters()`` are
    the trained tensors. :meth:`stack` makes S seeds one seed-batched learner
    (:class:`StackedRNN`)."""

    def __init__(self, d_in: int, d_out: int, *, hidden: int, alpha: float, sigma_rec: float, activation: str,
                 lr: float, seed: int, sigma_x: float = 0.0, w_rec_gain: float = W_REC_GAIN):
        super().__init__()
        if not (isinstance(hidden, int) and hidden > 0):
            raise SwitchbenchError(f"hidden must be a positive integer, got {hidden!r}")
        if not 0 < alpha <= 1:
            raise SwitchbenchError(f"alpha = dt / tau must lie in (0, 1], got {alpha!r}")
        if not (sigma_rec >= 0 and sigma_x >= 0 and lr > 0 and w_rec_gain >= 0):
            raise SwitchbenchError(f"sigma_rec, sigma_x and w_rec_gain must be >= 0 and lr > 0, got {sigma_rec!r}, "
                                   f"{sigma_x!r}, {w_rec_gain!r}, {lr!r}")
        if activation not in ACTIVATIONS:
            raise SwitchbenchError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        self.alpha, self.sigma_rec, self.sigma_x, self.activation = float(alpha), float(sigma_rec), float(sigma_x), \
            activation
        self.gen = torch.Generator().manual_seed(int(seed))
        g = self.gen
        w_rec = w_rec_gain * random_orthogonal(hidden, g)
        self.w_in = torch.nn.Parameter(torch.randn(hidden, d_in, generator=g) / math.sqrt(d_in))
        self.w_rec = torch.nn.Parameter(w_rec)
        self.b = torch.nn.Parameter(torch.zeros(hidden))
        limit = math.sqrt(6 / (hidden + d_out))                        # Glorot-uniform, as TensorFlow's default
        self.w_out = torch.nn.Parameter((2 * torch.rand(d_out, hidden, generator=g) - 1) * limit)
        self.b_out = torch.nn.Parameter(torch.zeros(d_out))
        self.params = [self.w_in, self.w_rec, self.b, self.w_out, self.b_out]
        self.opt = torch.optim.Adam(self.params, lr=lr)
        self.register_buffer("unit_mask", None, persistent=False)   # robustness: silenced units (0) stay at 0
        self.module_size: int | None = None            # set by modular models: units per module

    def parameters(self, recurse: bool = True):
        """The trained tensors (what the runner counts and compares)."""
        return list(self.params)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        apply_to_optimiser(self.opt, fn)
        self.gen = generator_on(self.gen, self.w_rec.device)
        return self

    @classmethod
    def stack(cls, learners) -> "StackedRNN":
        """S single-seed networks of one configuration as one seed-batched learner."""
        return StackedRNN(learners)

    def record_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden states ``(time, batch, hidden)`` for inputs ``x``, without noise or side effects."""
        with torch.no_grad():
            return self.hidden_states(x, self.w_in, noise=False)

    def perturb(self, kind: str, level: float, gen: torch.Generator) -> bool:
        """Damage this network in place (call it on a copy; :mod:`switchbench.benchmark.metrics`,
        robustness); False where ``kind`` does not apply to it.

        - ``weight_noise``: every recurrent weight times ``1 + level * xi``, ``xi ~ N(0, 1)``
          (relative noise; absent synapses stay absent);
        - ``unit_ablation``: a random ``level`` fraction of the hidden units silenced (held at 0);
        - ``module_silencing``: ``level`` random modules silenced (modular networks only).
        """
        hidden = self.w_rec.shape[0]
        mask = torch.ones(hidden) if self.unit_mask is None else self.unit_mask.cpu()
        if kind == "weight_noise":
            with torch.no_grad():
                self.w_rec.mul_(1 + level * torch.randn(self.w_rec.shape, generator=gen).to(self.w_rec.device))
            return True
        if kind == "unit_ablation":
            mask[torch.randperm(hidden, generator=gen)[:round(level * hidden)]] = 0
        elif kind == "module_silencing" and self.module_size:
            for m in torch.randperm(hidden // self.module_size, generator=gen)[:int(level)].tolist():
                mask[m * self.module_size:(m + 1) * self.module_size] = 0
        else:
            return False
        self.unit_mask = mask.to(self.w_rec.device)
        return True

    def forward(self, x: torch.Tensor, noise: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and hidden states ``(time, batch, hidden)`` for inputs ``(time, batch, features)``."""
        hs = self.hidden_states(x, self.w_in, noise)
        return self.readout(hs), hs

    def hidden_states(self, x: torch.Tensor, w_in: torch.Tensor, noise: bool) -> torch.Tensor:
        """The hidden states ``(time, batch, hidden)`` driven through input weights ``w_in``."""
        f = ACTIVATIONS[self.activation]
        x = x.float()
        if noise and self.sigma_x > 0:
            x = x + math.sqrt(2 / self.alpha) * self.sigma_x * torch.randn(x.shape, generator=self.gen,
                                                                            device=self.gen.device)
        drive = x @ w_in.T + self.b                                # the input part, all steps at once
        if noise and self.sigma_rec > 0:
            scale = math.sqrt(2 / self.alpha) * self.sigma_rec
            drive = drive + scale * torch.randn(drive.shape, generator=self.gen, device=self.gen.device)
        h = x.new_zeros(x.shape[1], self.w_rec.shape[0])
        hs = []
        for drive_t in drive.unbind(0):         # unbind, not drive[t]: its backward is one stack, not T zero-filled copies
            h = leak(h, f(h @ self.w_rec.T + drive_t), self.alpha)
            if self.unit_mask is not None:
                h = h * self.unit_mask
            hs.append(h)
        return torch.stack(hs)

    def readout(self, hs: torch.Tensor) -> torch.Tensor:
        return hs @ self.w_out.T + self.b_out

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.forward(x, noise=False)[0]

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.enable_grad():
            logits, _ = self.forward(x, noise=True)
            loss = task_loss(logits, y, "cross_entropy")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        clip_and_step(self.opt, self.params)
        return float(loss.detach())


class StackedRNN:
    """S :class:`LeakyRNN` s of one configuration (seed order) as one seed-batched learner
    (:mod:`switchbench.models.batching`): inputs ``(S, time, batch, features)``, weights stacked
    seed-first and multiplied batched (``torch.bmm``), one Adam over the stacks whose objective
    is the *sum* of the seeds' losses (so each seed's gradient, clip and update are its own),
    each seed's noise drawn from that seed's generator in the single-seed order. It agrees with
    the S single-seed learners to float rounding (a batched product may sum in another order)."""

    def __init__(self, learners):
        self.nets = [copy.deepcopy(n) for n in learners]    # each seed's generator, settings and other state
        first = self.nets[0]
        key = self._config(first)
        if any(type(n) is not type(first) or self._config(n) != key for n in self.nets):
            raise SwitchbenchError(f"stack() needs learners of one class and configuration, got {len(self.nets)} "
                                   "that differ")
        self.alpha, self.sigma_rec, self.sigma_x, self.activation = key[:4]
        self.params = [torch.nn.Parameter(stack_like([n.params[i].detach() for n in self.nets]))
                       for i in range(len(first.params))]
        self.opt = stack_adam([n.opt for n in self.nets], [n.params for n in self.nets], self.params)
        masks = [n.unit_mask for n in self.nets]
        self.unit_mask = None if all(m is None for m in masks) else \
            torch.stack([torch.ones_like(first.b) if m is None else m for m in masks]).detach()

    @staticmethod
    def _config(net) -> tuple:
        return (net.alpha, net.sigma_rec, net.sigma_x, net.activation, [tuple(p.shape) for p in net.params],
                adam_settings(net.opt))

    def _weight(self, i: int) -> torch.Tensor:
        """The ``i``-th weight of the single learner's order, stacked ``(S, ...)``."""
        return self.params[i]

    def _gens(self) -> list[torch.Generator]:
        return [n.gen for n in self.nets]

    w_in = property(lambda self: self._weight(0))
    w_rec = property(lambda self: self._weight(1))
    b = property(lambda self: self._weight(2))
    w_out = property(lambda self: self._weight(3))
    b_out = property(lambda self: self._weight(4))

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params)

    def hidden_states(self, x: torch.Tensor, w_in: torch.Tensor, noise: bool) -> torch.Tensor:
        """Hidden states ``(S, time, batch, hidden)`` of inputs ``(S, time, batch, features)``
        through input weights ``w_in`` ``(S, hidden, features)``; :meth:`LeakyRNN.hidden_states` per seed."""
        f = ACTIVATIONS[self.activation]
        S, T, B, _ = x.shape
        gens = self._gens()
        x = x.float()
        if noise and self.sigma_x > 0:
            x = x + seed_noise(gens, x.shape[1:], math.sqrt(2 / self.alpha) * self.sigma_x)
        drive = torch.bmm(x.reshape(S, T * B, -1), w_in.mT).reshape(S, T, B, -1) + self.b[:, None, None]
        if noise and self.sigma_rec > 0:
            drive = drive + seed_noise(gens, drive.shape[1:], math.sqrt(2 / self.alpha) * self.sigma_rec)
        h = x.new_zeros(S, B, drive.shape[-1])
        w_rec_t = self.w_rec.mT
        mask = None if self.unit_mask is None else self.unit_mask[:, None]
        hs = []
        for drive_t in drive.unbind(1):
            h = leak(h, f(torch.bmm(h, w_rec_t) + drive_t), self.alpha)
            if mask is not None:
                h = h * mask
            hs.append(h)
        return torch.stack(hs, 1)

    def readout(self, hs: torch.Tensor) -> torch.Tensor:
        S, T, B, H = hs.shape
        return torch.bmm(hs.reshape(S, T * B, H), self.w_out.mT).reshape(S, T, B, -1) + self.b_out[:, None, None]

    def logits(self, x: torch.Tensor, noise: bool) -> torch.Tensor:
        return self.readout(self.hidden_states(x, self.w_in, noise))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.logits(x, noise=False)

    def record_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(S, time, batch, hidden)`` of inputs ``x``, without noise or side effects."""
        with torch.no_grad():
            return self.hidden_states(x, self.w_in, noise=False)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            losses = seed_losses(self.logits(x, noise=True), y)
            self.opt.zero_grad(set_to_none=True)
            losses.sum().backward()
        clip_and_step(self.opt, self.params)
        return losses.detach()

    def unstack(self) -> list:
        """Independent single-seed learners (seed order) with the current weights, Adam state and generators."""
        out = []
        for s, net in enumerate(self.nets):
            net = copy.deepcopy(net)
            with torch.no_grad():
                for p, P in zip(net.params, self.params):
                    p.copy_(P[s])
            unstack_adam(self.opt, self.params, net.opt, net.params, s)
            net.unit_mask = None if self.unit_mask is None else self.unit_mask[s].clone()
            out.append(net)
        return out

    def to(self, device) -> "StackedRNN":
        """Move the stacked weights, Adam state, masks and each seed's generator to ``device``."""
        device = torch.device(device)
        for net in self.nets:
            net.to(device)
        for p in self.params:
            p.data = p.data.to(device)
        apply_to_optimiser(self.opt, lambda t: t.to(device))
        if self.unit_mask is not None:
            self.unit_mask = self.unit_mask.to(device)
        return self


def seed_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each seed's cross-entropy ``(S,)`` of ``logits`` ``(S, ..., classes)`` against ``y`` ``(S, ...)``,
    computed per seed exactly as a single-seed learner computes its loss."""
    return torch.stack([task_loss(logits[s], y[s], "cross_entropy") for s in range(len(logits))])


class StackedTaskRNN(StackedRNN):
    """Base of the seed-batched learners with per-task weights (``per-task-rnn``,
    ``modular-primitives``), whose seeds may be told different tasks: the trained weights are
    stacked ``(S, tasks, ...)`` and seed s computes with its task's slice. Each seed's update is
    its own single-seed learner's clip and Adam step (the single-seed learners' weights are
    views of the stacks), so the updates are those of the single seeds exactly."""

    def __init__(self, learners):
        self.models = [copy.deepcopy(n) for n in learners]
        first = self.models[0]
        if any(type(m) is not type(first) or self._config(m) != self._config(first) for m in self.models):
            raise SwitchbenchError(f"stack() needs learners of one class and configuration, got {len(self.models)} "
                                   "that differ")
        self.tasks = [m.task for m in self.models]
        per_task = [self._task_params(m) for m in self.models]
        self.params = [torch.nn.Parameter(stack_like([stack_like([ps[i].detach() for ps in tp]) for tp in per_task]))
                       for i in range(len(per_task[0][0]))]
        self._link()

    def _task_params(self, model) -> list[list[torch.Tensor]]:
        """A single-seed learner's trained tensors, task by task."""
        raise NotImplementedError

    def _optimiser(self, model, task: int) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
        """The single-seed learner's optimiser for ``task`` and the tensors it clips."""
        raise NotImplementedError

    def _link(self) -> None:
        """Make the single-seed learners' weights views of the stacks."""
        for s, m in enumerate(self.models):
            for k, ps in enumerate(self._task_params(m)):
                for p, P in zip(ps, self.params):
                    p.data = P.data[s, k]

    def _pick(self, P: torch.Tensor) -> torch.Tensor:
        """Each seed's slice of its task: ``(S, tasks, ...) -> (S, ...)``."""
        return P[torch.arange(len(self.tasks), device=P.device), torch.tensor(self.tasks, device=P.device)]

    def observe_task(self, tasks) -> None:
        for m, k in zip(self.models, tasks, strict=True):
            m.observe_task(int(k))
        self.tasks = [m.task for m in self.models]

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            losses = seed_losses(self.logits(x, noise=True), y)
            for P in self.params:
                P.grad = None
            losses.sum().backward()
        for s, (m, k) in enumerate(zip(self.models, self.tasks)):
            ps = self._task_params(m)[k]
            for p, P in zip(ps, self.params):
                p.grad = P.grad[s, k]
            clip_and_step(*self._optimiser(m, k))
            for p in ps:
                p.grad = None
        for P in self.params:
            P.grad = None
        return losses.detach()

    def unstack(self) -> list:
        """Independent copies of the single-seed learners (their weights are the stacks' slices)."""
        return [copy.deepcopy(m) for m in self.models]

    def to(self, device) -> "StackedTaskRNN":
        for m in self.models:
            m.to(device)
        for P in self.params:
            P.data = P.data.to(device)
        self._link()
        return self


class PerTaskRNN(torch.nn.Module):
    """One :class:`LeakyRNN` per task (``nets``, a module list); ``observe_task`` picks the active one."""

    def __init__(self, n_tasks: int, seed: int, **kw):
        super().__init__()
        seeds = torch.randint(0, 2 ** 62, (n_tasks,), generator=torch.Generator().manual_seed(int(seed))).tolist()
        self.nets = torch.nn.ModuleList([LeakyRNN(**kw, seed=s) for s in seeds])
        self.task = 0

    def observe_task(self, task: int) -> None:
        if not 0 <= task < len(self.nets):
            raise SwitchbenchError(f"task {task} out of range 0..{len(self.nets) - 1}")
        self.task = int(task)

    def parameters(self, recurse: bool = True):
        """Every task's network's trained tensors, task by task."""
        return [p for net in self.nets for p in net.parameters()]

    def perturb(self, kind: str, level: float, gen: torch.Generator) -> bool:
        return all([net.perturb(kind, level, gen) for net in self.nets])

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets[self.task].predict(x)

    def record_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The active task's network's hidden states (see :meth:`LeakyRNN.record_hidden`)."""
        return self.nets[self.task].record_hidden(x)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return self.nets[self.task].learn(x, y)

    @classmethod
    def stack(cls, learners) -> "StackedPerTaskRNN":
        return StackedPerTaskRNN(learners)


class StackedPerTaskRNN(StackedTaskRNN):
    """S :class:`PerTaskRNN` s as one seed-batched learner (:class:`StackedTaskRNN`): weights
    ``(S, tasks, ...)``; seed s runs, with its own noise, the network of its task."""

    def __init__(self, learners):
        super().__init__(learners)
        net = self.models[0].nets[0]
        self.alpha, self.sigma_rec, self.sigma_x, self.activation = net.alpha, net.sigma_rec, net.sigma_x, \
            net.activation

    @staticmethod
    def _config(model) -> tuple:
        return tuple(StackedRNN._config(net) for net in model.nets)

    def _task_params(self, model) -> list[list[torch.Tensor]]:
        return [net.params for net in model.nets]

    def _optimiser(self, model, task: int):
        return model.nets[task].opt, model.nets[task].params

    def _weight(self, i: int) -> torch.Tensor:
        return self._pick(self.params[i])

    def _gens(self) -> list[torch.Generator]:
        return [m.nets[k].gen for m, k in zip(self.models, self.tasks)]

    @property
    def unit_mask(self) -> torch.Tensor | None:
        nets = [m.nets[k] for m, k in zip(self.models, self.tasks)]
        if all(n.unit_mask is None for n in nets):
            return None
        return torch.stack([torch.ones_like(n.b) if n.unit_mask is None else n.unit_mask for n in nets]).detach()


def _classification_sequences(spec):
    if not spec.sequence or spec.loss != "cross_entropy":
        return "needs sequence paradigms with classification targets ((time, batch, features) inputs, cross_entropy)"
    return None


#: the learning rate searched by ``switchbench tune``: the published Adam rate and a decade either side
LR_GRID = (1e-4, 1e-3, 1e-2)
TUNING = ("defaults as published (tau 100 ms: alpha = dt / tau, W_rec 0.5 x orthogonal, sigma_rec 0.05, sigma_x 0.01, "
          "softplus, Adam 1e-3); hidden 256; no per-paradigm tuning")


def _leaky(spec, hidden, alpha, tau, sigma_rec, sigma_x, w_rec_gain, activation, lr) -> dict:
    """The leaky RNN's keyword arguments, alpha derived from the paradigm's dt (:func:`derive_alpha`)."""
    return dict(hidden=hidden, alpha=derive_alpha(spec, alpha, tau), sigma_rec=sigma_rec, sigma_x=sigma_x,
                w_rec_gain=w_rec_gain, activation=activation, lr=lr)


@register("leaky-rnn", description="Yang et al. 2019: a leaky RNN (tau 100 ms, alpha = dt / tau, recurrent and input "
          "noise), readout per step, Adam", citation=YANG19, kinds=("sequence",), supports=_classification_sequences,
          tuning=TUNING,
          tunable={"lr": LR_GRID})
def make_leaky_rnn(spec, seed, hidden=256, alpha: float | None = None, tau=TAU, sigma_rec=0.05, sigma_x=0.01, w_rec_gain=W_REC_GAIN,
                   activation="softplus", lr=1e-3):
    """Yang et al.'s leaky RNN; the rule input is the paradigm's cue."""
    return LeakyRNN(spec.input_size, spec.output_size, seed=seed,
                    **_leaky(spec, hidden, alpha, tau, sigma_rec, sigma_x, w_rec_gain, activation, lr))


@register("per-task-rnn", description="A separate leaky RNN per task (privileged: told the task)", citation=YANG19,
          privileged=True, kinds=("sequence",), supports=_classification_sequences, tuning=TUNING,
          tunable={"lr": LR_GRID})
def make_per_task_rnn(spec, seed, hidden=256, alpha: float | None = None, tau=TAU, sigma_rec=0.05, sigma_x=0.01,
                      w_rec_gain=W_REC_GAIN, activation="softplus", lr=1e-3):
    """One leaky RNN per task, each with its own Adam; the runner tells it the task."""
    return PerTaskRNN(spec.n_tasks, seed, d_in=spec.input_size, d_out=spec.output_size,
                      **_leaky(spec, hidden, alpha, tau, sigma_rec, sigma_x, w_rec_gain, activation, lr))


# --- continual-learning regularisers: EWC and synaptic intelligence ------------------------

EWC = "Kirkpatrick et al. (2017), Overcoming catastrophic forgetting in neural networks, PNAS 114:3521"
SI = "Zenke, Poole & Ganguli (2017), Continual learning through synaptic intelligence, ICML"


class ConsolidatedRNN(LeakyRNN):
    """A leaky RNN whose loss adds a quadratic anchor to earlier tasks' weights:

    - ``method="ewc"``: ``L + lam/2 sum_k sum_i F_k,i (theta_i - theta*_k,i)^2``, one anchor per
      earlier task k (replaced when k is trained again), ``F_k`` the diagonal empirical Fisher;
    - ``method="si"``: ``L + c sum_i Omega_i (theta_i - theta*_i)^2`` with, accumulated at each
      task boundary, ``Omega_i += omega_i / (Delta_i^2 + xi)``, ``omega_i = -sum_t g_i,t dtheta_i,t``
      the path integral of the *task* loss gradient times the update since the last boundary,
      ``Delta_i`` the weight change over the task, ``theta*`` the weights at the boundary.

    Task boundaries are where ``learn`` sees a task (from ``observe_task``) other than the one
    it last learned, so evaluation calls to ``observe_task`` (predict only) are not
    boundaries. Assumptions: EWC's Fisher is estimated at the boundary from the last
    ``fisher_batches`` batches of the task, as the mean squared gradient of micro-batches of
    8 trials times 8 (the per-trial Fisher where the mean gradient is ~0), without recurrent
    noise; the anchor of the task being learned is left out of its own penalty (a revisited
    task relearns freely, then gets a new anchor); the penalty's gradient is added in closed
    form before the Adam step.
    """

    MICRO = 8

    def __init__(self, *args, method: str, strength: float, xi: float = 0.01, fisher_batches: int = 4, **kw):
        super().__init__(*args, **kw)
        if method not in ("ewc", "si"):
            raise SwitchbenchError(f"unknown consolidation method {method!r}; valid: ewc, si")
        if not (strength >= 0 and xi > 0 and isinstance(fisher_batches, int) and fisher_batches > 0):
            raise SwitchbenchError("strength must be >= 0, xi > 0 and fisher_batches a positive integer, got "
                                   f"{strength!r}, {xi!r}, {fisher_batches!r}")
        self.method, self.strength, self.xi, self.fisher_batches = method, float(strength), float(xi), fisher_batches
        self.task, self.last = 0, None
        self.anchors: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}   # EWC: task -> (F, theta*)
        self.recent: list[tuple[torch.Tensor, torch.Tensor]] = []
        zeros = [torch.zeros_like(p) for p in self.params]
        self.omega, self.Omega = zeros, [z.clone() for z in zeros]                   # SI
        self.start = [p.detach().clone() for p in self.params]
        self.star = [p.detach().clone() for p in self.params]

    def observe_task(self, task: int) -> None:
        self.task = int(task)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        for name in ("omega", "Omega", "start", "star"):
            setattr(self, name, [fn(t) for t in getattr(self, name)])
        self.anchors = {k: ([fn(f) for f in F], [fn(t) for t in theta]) for k, (F, theta) in self.anchors.items()}
        self.recent = [(fn(x), fn(y)) for x, y in self.recent]
        return self

    def _fisher(self) -> list[torch.Tensor]:
        F = [torch.zeros_like(p) for p in self.params]
        n = 0
        for x, y in self.recent:
            for xs, ys in zip(torch.split(x, self.MICRO, dim=1), torch.split(y, self.MICRO, dim=1)):
                with torch.enable_grad():
                    loss = task_loss(self.forward(xs, noise=False)[0], ys, "cross_entropy")
                    grads = torch.autograd.grad(loss, self.params, allow_unused=True)
                for f, g in zip(F, grads):
                    if g is not None:
                        f += g.detach().square() * xs.shape[1]
                n += 1
        return [f / max(n, 1) for f in F]

    def _consolidate(self) -> None:
        theta = [p.detach().clone() for p in self.params]
        if self.method == "ewc":
            self.anchors[self.last] = (self._fisher(), theta)
            self.recent = []
        else:
            for O, w, t, s in zip(self.Omega, self.omega, theta, self.start):
                O += w / ((t - s).square() + self.xi)
                w.zero_()
            self.start, self.star = theta, [t.clone() for t in theta]

    def _penalty_grads(self) -> list[torch.Tensor]:
        out = [torch.zeros_like(p) for p in self.params]
        with torch.no_grad():
            if self.method == "ewc":
                for fisher, star in (v for k, v in self.anchors.items() if k != self.task):
                    for o, f, p, s in zip(out, fisher, self.params, star):
                        o += self.strength * f * (p - s)
            else:
                for o, O, p, s in zip(out, self.Omega, self.params, self.star):
                    o += 2 * self.strength * O * (p - s)
        return out

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if self.last is not None and self.task != self.last:
            self._consolidate()
        self.last = self.task
        with torch.enable_grad():
            logits, _ = self.forward(x, noise=True)
            loss = task_loss(logits, y, "cross_entropy")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        task_grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in self.params]
        before = [p.detach().clone() for p in self.params]
        for p, g in zip(self.params, self._penalty_grads()):
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad += g
        clip_and_step(self.opt, self.params)
        with torch.no_grad():
            if self.method == "si":
                for w, g, p, b in zip(self.omega, task_grads, self.params, before):
                    w -= g * (p - b)
            else:
                self.recent = (self.recent + [(x, y)])[-self.fisher_batches:]
        return float(loss.detach())

    @classmethod
    def stack(cls, learners) -> "StackedConsolidatedRNN":
        return StackedConsolidatedRNN(learners)


class StackedConsolidatedRNN(StackedRNN):
    """S :class:`ConsolidatedRNN` s as one seed-batched learner (:class:`StackedRNN`): each seed
    has its own task, boundaries and anchors. SI's path integrals and importances are stacked
    ``(S, ...)``; EWC's anchors stay with each seed, its Fisher computed at that seed's boundary
    by its single-seed code on its current weights."""

    def __init__(self, learners):
        super().__init__(learners)
        first = self.nets[0]
        self.method, self.strength, self.xi = first.method, first.strength, first.xi
        self.si = {name: [torch.stack([getattr(n, name)[i] for n in self.nets]).clone() for i in range(len(self.params))]
                   for name in ("omega", "Omega", "start", "star")}

    @staticmethod
    def _config(net) -> tuple:
        return StackedRNN._config(net) + (net.method, net.strength, net.xi, net.fisher_batches)

    def observe_task(self, tasks) -> None:
        for net, k in zip(self.nets, tasks, strict=True):
            net.observe_task(int(k))

    def _consolidate(self, s: int) -> None:
        net = self.nets[s]
        theta = [P[s].detach().clone() for P in self.params]
        if self.method == "ewc":
            with torch.no_grad():
                for p, t in zip(net.params, theta):
                    p.copy_(t)
            net.anchors[net.last] = (net._fisher(), theta)
            net.recent = []
            return
        si = self.si
        for O, w, t, st, star in zip(si["Omega"], si["omega"], theta, si["start"], si["star"]):
            O[s] += w[s] / ((t - st[s]).square() + self.xi)
            w[s].zero_()
            st[s], star[s] = t, t

    def _penalty_grads(self) -> list[torch.Tensor]:
        out = [torch.zeros_like(P) for P in self.params]
        with torch.no_grad():
            if self.method == "ewc":
                for s, net in enumerate(self.nets):
                    for fisher, star in (v for k, v in net.anchors.items() if k != net.task):
                        for o, f, P, st in zip(out, fisher, self.params, star):
                            o[s] += self.strength * f * (P[s] - st)
            else:
                for o, O, P, st in zip(out, self.si["Omega"], self.params, self.si["star"]):
                    o += 2 * self.strength * O * (P - st)
        return out

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        for s, net in enumerate(self.nets):
            if net.last is not None and net.task != net.last:
                self._consolidate(s)
            net.last = net.task
        with torch.enable_grad():
            losses = seed_losses(self.logits(x, noise=True), y)
            self.opt.zero_grad(set_to_none=True)
            losses.sum().backward()
        task_grads = [P.grad.detach().clone() for P in self.params]
        before = [P.detach().clone() for P in self.params]
        for P, g in zip(self.params, self._penalty_grads()):
            P.grad += g
        clip_and_step(self.opt, self.params)
        with torch.no_grad():
            if self.method == "si":
                for w, g, P, b in zip(self.si["omega"], task_grads, self.params, before):
                    w -= g * (P - b)
            else:
                for s, net in enumerate(self.nets):
                    net.recent = (net.recent + [(x[s], y[s])])[-net.fisher_batches:]
        return losses.detach()

    def unstack(self) -> list:
        nets = super().unstack()
        for s, net in enumerate(nets):
            for name, stacked in self.si.items():
                setattr(net, name, [t[s].clone() for t in stacked])
        return nets

    def to(self, device) -> "StackedConsolidatedRNN":
        super().to(device)
        self.si = {name: [t.to(device) for t in ts] for name, ts in self.si.items()}
        return self


# --- gated readouts: the gated network's fast, non-negative, bounded gates on an RNN ---------

class GatedRNN(LeakyRNN):
    """A leaky RNN with P readouts mixed by gates ``c``: ``logits_t = sum_p c_p (W_p h_t + b_p)``.

    The gates of ``gated-linear`` (Sandbrink et al. 2024): a fast plain gradient step
    ``c <- c - lr_c (dL/dc + lam dR/dc)`` with its penalty ``R`` (non-negative, ``|c|_1 = 1``;
    :func:`switchbench.models.gated_linear.gate_penalty`), ``c_p = 1/P`` at start; the RNN and
    readouts learn by Adam as ``leaky-rnn``. Assumptions: the gates sit on the readouts (one
    per task by default, ``n_paths``), not on recurrent modules, so the recurrent dynamics are
    shared; ``lr_c = 0.2`` and ``lam = 0.1`` are the gated-network paper's gate step and
    penalty for its digit experiment, untuned here. Without the cue (``cue=False``) the gates
    must find the task from the errors alone.
    """

    def __init__(self, d_in: int, d_out: int, *, n_paths: int, lr_c: float, lam: float, **kw):
        super().__init__(d_in, d_out, **kw)
        if not (isinstance(n_paths, int) and n_paths > 0 and lr_c > 0 and lam >= 0):
            raise SwitchbenchError(f"n_paths must be a positive integer, lr_c > 0 and lam >= 0, got "
                                   f"{n_paths!r}, {lr_c!r}, {lam!r}")
        hidden = self.w_rec.shape[0]
        limit = math.sqrt(6 / (hidden + d_out))                        # Glorot-uniform per readout
        self.w_out = torch.nn.Parameter((2 * torch.rand(n_paths, d_out, hidden, generator=self.gen) - 1) * limit)
        self.b_out = torch.nn.Parameter(torch.zeros(n_paths, d_out))
        self.params = [self.w_in, self.w_rec, self.b, self.w_out, self.b_out]
        self.opt = torch.optim.Adam(self.params, lr=self.opt.defaults["lr"])
        self.register_buffer("c", torch.full((n_paths,), 1.0 / n_paths))
        self.lr_c, self.lam = float(lr_c), float(lam)

    def parameters(self, recurse: bool = True):
        """The trained tensors and the gates ``c`` (learned by their own step)."""
        return list(self.params) + [self.c]

    def readout(self, hs: torch.Tensor) -> torch.Tensor:
        per_path = torch.einsum("tbh,pdh->ptbd", hs, self.w_out) + self.b_out[:, None, None, :]
        return torch.tensordot(self.c, per_path, dims=1)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float:
        from switchbench.models.gated_linear import gate_penalty_grad

        self.c.requires_grad_(True)
        try:
            with torch.enable_grad():
                logits, _ = self.forward(x, noise=True)
                loss = task_loss(logits, y, "cross_entropy")
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
            grad_c = self.c.grad.detach().clone()
        finally:
            self.c.grad = None
            self.c.requires_grad_(False)
        clip_and_step(self.opt, self.params)
        with torch.no_grad():
            self.c -= self.lr_c * (grad_c + self.lam * gate_penalty_grad(self.c))
        return float(loss.detach())

    def probe(self) -> dict[str, torch.Tensor]:
        return {"gates": self.c.clone()}

    @classmethod
    def stack(cls, learners) -> "StackedGatedRNN":
        return StackedGatedRNN(learners)


class StackedGatedRNN(StackedRNN):
    """S :class:`GatedRNN` s as one seed-batched learner (:class:`StackedRNN`; gates ``c`` ``(S, P)``)."""

    def __init__(self, learners):
        super().__init__(learners)
        self.c = torch.stack([n.c for n in self.nets]).clone()
        self.lr_c, self.lam = self.nets[0].lr_c, self.nets[0].lam

    @staticmethod
    def _config(net) -> tuple:
        return StackedRNN._config(net) + (net.lr_c, net.lam)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params) + [self.c]

    def readout(self, hs: torch.Tensor) -> torch.Tensor:
        S, T, B, H = hs.shape
        P, D = self.w_out.shape[1:3]
        per_path = torch.bmm(hs.reshape(S, T * B, H), self.w_out.reshape(S, P * D, H).mT).reshape(S, T, B, P, D)
        return torch.einsum("sp,stbpd->stbd", self.c, per_path + self.b_out[:, None, None])

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from switchbench.models.gated_linear import gate_penalty_grad

        self.c.requires_grad_(True)
        try:
            losses = super().learn(x, y)
            grad_c = self.c.grad.detach().clone()
        finally:
            self.c.grad = None
            self.c.requires_grad_(False)
        with torch.no_grad():
            self.c -= self.lr_c * (grad_c + self.lam * gate_penalty_grad(self.c))
        return losses

    def probe(self) -> dict[str, torch.Tensor]:
        return {"gates": self.c.clone()}

    def unstack(self) -> list:
        nets = super().unstack()
        for net, c in zip(nets, self.c):
            net.c.copy_(c)
        return nets

    def to(self, device) -> "StackedGatedRNN":
        super().to(device)
        self.c = self.c.to(device)
        return self


@register("leaky-rnn-ewc", description="Leaky RNN with elastic weight consolidation at task boundaries (privileged)",
          citation=EWC, privileged=True, kinds=("sequence",), supports=_classification_sequences,
          tuning="leaky-rnn defaults; lam 100, Fisher from the last 4 batches: untuned",
          tunable={"lr": LR_GRID})
def make_leaky_rnn_ewc(spec, seed, hidden=256, alpha: float | None = None, tau=TAU, sigma_rec=0.05, sigma_x=0.01,
                       w_rec_gain=W_REC_GAIN, activation="softplus", lr=1e-3, lam=100.0, fisher_batches=4):
    """Yang et al.'s leaky RNN with EWC (Kirkpatrick et al. 2017); told the task for its boundaries."""
    return ConsolidatedRNN(spec.input_size, spec.output_size, seed=seed, method="ewc", strength=lam,
                           fisher_batches=fisher_batches,
                           **_leaky(spec, hidden, alpha, tau, sigma_rec, sigma_x, w_rec_gain, activation, lr))


@register("leaky-rnn-si", description="Leaky RNN with synaptic intelligence (c, xi) at task boundaries (privileged)",
          citation=SI, privileged=True, kinds=("sequence",), supports=_classification_sequences,
          tuning="leaky-rnn defaults; c 1.0, xi 0.01: untuned",
          tunable={"lr": LR_GRID})
def make_leaky_rnn_si(spec, seed, hidden=256, alpha: float | None = None, tau=TAU, sigma_rec=0.05, sigma_x=0.01,
                      w_rec_gain=W_REC_GAIN, activation="softplus", lr=1e-3, c=1.0, xi=0.01):
    """Yang et al.'s leaky RNN with synaptic intelligence (Zenke et al. 2017); told the task for its boundaries."""
    return ConsolidatedRNN(spec.input_size, spec.output_size, seed=seed, method="si", strength=c, xi=xi,
                           **_leaky(spec, hidden, alpha, tau, sigma_rec, sigma_x, w_rec_gain, activation, lr))


@register("gated-rnn", description="Leaky RNN with P readouts mixed by fast non-negative bounded gates",
          citation=YANG19, kinds=("sequence",), supports=_classification_sequences,
          tuning="leaky-rnn defaults; gates: lr_c 0.2, lam 0.1 (gated-network paper), untuned",
          tunable={"lr": LR_GRID})
def make_gated_rnn(spec, seed, hidden=256, alpha: float | None = None, tau=TAU, sigma_rec=0.05, sigma_x=0.01, w_rec_gain=W_REC_GAIN,
                   activation="softplus", lr=1e-3, n_paths: int | None = None, lr_c=0.2, lam=0.1):
    """Yang et al.'s leaky RNN with gated readouts (one per task unless ``n_paths``)."""
    return GatedRNN(spec.input_size, spec.output_size, seed=seed, n_paths=n_paths or spec.n_tasks, lr_c=lr_c, lam=lam,
                    **_leaky(spec, hidden, alpha, tau, sigma_rec, sigma_x, w_rec_gain, activation, lr))


# --- modular latent primitives --------------------------------------------------------------

MOLAP = ("Marton, Lajoie & Rajan, Efficient and robust multi-task learning in the brain with modular latent "
         "primitives (arXiv preprint)")
PRETRAIN = ("pca", "end-to-end", "none")
PRETRAIN_FORMAT = 1      # bump when pretraining changes: cached modules are then not reused


def _neurogym_corpus(env_ids, dt, n: int, seed: int, width: int, classes: int):
    """``n`` end-aligned trials per neurogym task: inputs ``(T, n, width)`` (zero-padded), targets ``(T, n)``.

    Made by :func:`switchbench.data.tasksets.generate_trials` (seeded through the task's own
    ``seed()``: neurogym 2.3.1 ignores ``reset(seed=)``), task ``i`` from ``seed + 7919 i``."""
    from switchbench.data.tasksets import generate_trials, pack_trials

    out = []
    for i, env_id in enumerate(env_ids):
        pool = pack_trials(generate_trials(env_id, {"dt": dt} if dt else {}, int(seed) + 7919 * i, n))
        (_, T, F), x = pool["x"].shape, pool["x"].transpose(1, 0, 2)
        if F > width:
            raise SwitchbenchError(f"modular-primitives: corpus task {env_id!r} has {F} inputs, more than the "
                                   f"paradigm's {width}")
        if pool["y"].max() >= classes:
            raise SwitchbenchError(f"modular-primitives: corpus task {env_id!r} has more actions than the paradigm's "
                                   f"{classes} outputs")
        padded = torch.zeros(T, n, width)
        padded[:, :, :F] = torch.from_numpy(x)
        out.append((padded, torch.from_numpy(pool["y"].T.copy())))
    return out


def corpus_ids(corpus, own: list[str], hold_out: bool) -> list[str]:
    """The neurogym ids of a pretraining corpus: ``corpus`` (a named set, one id or a list;
    None: ``own``, the paradigm's tasks), less ``own`` when ``hold_out``; never empty."""
    from switchbench.data.tasksets import NAMED_SETS

    if corpus is None:
        ids = list(own)
    elif isinstance(corpus, str):
        ids = list(NAMED_SETS.get(corpus, (corpus,)))
    elif isinstance(corpus, (list, tuple)) and corpus and all(isinstance(c, str) for c in corpus):
        ids = list(corpus)
    else:
        raise SwitchbenchError(f"corpus must be a named task set ({', '.join(NAMED_SETS)}) or a list of neurogym "
                               f"env ids, got {corpus!r}")
    if hold_out:
        ids = [i for i in ids if i not in own]
    if not ids:
        raise SwitchbenchError(f"the pretraining corpus is empty: corpus {corpus!r} less the paradigm's tasks "
                               f"{own} (hold_out={hold_out}; pass another corpus, e.g. corpus='yang19')")
    return ids


class ModularPrimitives(torch.nn.Module):
    """MoLaP-style learner: frozen pretrained recurrent modules, per-task input and output weights.

    The MoLaP abstract (no public code): modules "pre-trained on the statistics of the full
    corpus of tasks so as to be independent and maximally informative", then frozen; new
    tasks learn only input and output weights. Design assumptions (each one a choice of this
    implementation):

    1. **Modules**: ``n_modules`` leaky RNNs (the ``leaky-rnn`` update, ``module_size`` units
       each; default 4 x 64 = 256 units, ``leaky-rnn``'s size) with no recurrent connections
       between them (block-diagonal ``W_rec``).
    2. **Corpus**: trials of neurogym tasks (``corpus``: a named set, default ``"molap9"``, or
       a list of ids), made with neurogym's defaults at the paradigm's ``dt``
       (``corpus_dt`` overrides), ``corpus_trials`` per task, seeded by the model seed. By
       default (``hold_out=True``) the paradigm's own tasks are *removed* from it, so every
       scored task is one the modules never saw; ``hold_out=False`` includes them (say so
       when reporting).
    3. **Pretraining** (``pretrain``), before the curriculum (part of building the model, in
       no step's wall time; cached on disk, below):

       - ``"pca"`` (default): *independent and maximally informative*, read as: fit a
         multitask leaky RNN of the same size (full ``W_rec``, per-corpus-task input and
         output weights; Adam, ``pretrain_steps`` batches of ``pretrain_batch`` trials of
         random corpus tasks) on the corpus; take the leading ``n_modules x pcs_per_module``
         principal components of its hidden trajectories over all corpus trials (unpadded
         steps): uncorrelated, of maximal variance; deal them out round-robin into disjoint
         groups (module m gets components m, m + n_modules, ...); then train the modules,
         from a fresh initialisation with per-corpus-task input weights, to produce their own
         group (z-scored components, squared error, a readout per module seeing only its
         own units; same steps and batches). The assumption: PCA of a multitask network's
         activity stands for "the statistics of the corpus", and disjoint groups of
         uncorrelated components for "independent".
       - ``"end-to-end"``: the modules and per-corpus-task input and output weights trained
         directly on the corpus tasks' cross-entropy (no independence objective).
       - ``"none"``: the control, random frozen modules (a reservoir: the same initialisation,
         ``0.5 x`` a random orthogonal matrix per module) with the same per-task training.
    4. **Frozen**: the modules' recurrent weights and biases never change after
       pretraining; each task of the paradigm learns only its own fresh input and output
       weights (``W_in^k``, ``W_out^k``, ``b_out^k``; Adam, ``lr``) on the curriculum.
       Privileged: the runner tells it the task. So it cannot forget, and "parameters changed
       per new task" is the I/O weights alone.
    5. The cue columns of the input, when present, are constant within a task and act as a
       bias of its input weights. Recurrent and input noise while learning, none in
       ``predict``.

    Pretrained modules are cached under ``$SWITCHBENCH_CACHE/pretrained`` (``.npz``, read
    without pickle), keyed by everything that makes them (corpus, dt, sizes, pretraining
    settings, seed, this file's source, torch and neurogym versions); pretraining draws from
    its own generator, so a cached and a fresh model give the same numbers.
    """

    def __init__(self, spec, seed: int, *, n_modules: int, module_size: int, alpha: float, sigma_rec: float,
                 sigma_x: float, w_rec_gain: float, activation: str, lr: float, pretrain: str, pretrain_steps: int,
                 pretrain_batch: int, pretrain_lr: float, pcs_per_module: int, corpus_dt, corpus_trials: int,
                 corpus="molap9", hold_out: bool = True, pretrain_cache: bool = True):
        for name, v in (("n_modules", n_modules), ("module_size", module_size), ("pretrain_batch", pretrain_batch),
                        ("corpus_trials", corpus_trials), ("pcs_per_module", pcs_per_module)):
            if not (isinstance(v, int) and v > 0):
                raise SwitchbenchError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(pretrain_steps, int) and pretrain_steps >= 0):
            raise SwitchbenchError(f"pretrain_steps must be an integer >= 0, got {pretrain_steps!r}")
        if pretrain not in PRETRAIN:
            raise SwitchbenchError(f"unknown pretrain {pretrain!r}; valid: {', '.join(PRETRAIN)}")
        super().__init__()
        hidden = n_modules * module_size
        self.net_kw = dict(hidden=hidden, alpha=alpha, sigma_rec=sigma_rec, sigma_x=sigma_x, w_rec_gain=w_rec_gain,
                           activation=activation)
        self.rnn = LeakyRNN(spec.input_size, spec.output_size, **self.net_kw, lr=lr, seed=seed)
        self.register_buffer("block_mask", torch.block_diag(*[torch.ones(module_size, module_size)] * n_modules),
                             persistent=False)
        self.rnn.module_size = module_size
        self.n_modules, self.module_size, self.pcs_per_module = n_modules, module_size, pcs_per_module
        self.n_tasks, self.d_in, self.d_out, self.hidden = spec.n_tasks, spec.input_size, spec.output_size, hidden
        self.task = 0
        own = [f"{n}-v0" for n in spec.task_names]
        self.corpus = corpus_ids(corpus, own, hold_out) if pretrain != "none" else []
        self.pretrain = pretrain
        self.explained_variance = float("nan")         # "pca": variance share of the components the modules produce
        # pretraining has its own generator: a model loaded from the cache draws the same numbers afterwards
        pre_seed, = np.random.SeedSequence([int(seed), 1]).generate_state(1)
        settings = dict(pretrain=pretrain, steps=pretrain_steps, batch=pretrain_batch, lr=pretrain_lr,
                        pcs=pcs_per_module, corpus=self.corpus, corpus_dt=corpus_dt or spec.dt,
                        corpus_trials=corpus_trials, seed=int(pre_seed))
        w_rec, b = self._pretrained(spec, settings, pretrain_cache)
        with torch.no_grad():
            self.rnn.w_rec.copy_(w_rec)
            self.rnn.b.copy_(b)
        self.io = self._new_io(self.n_tasks, self.rnn.gen)
        for p in (self.rnn.w_rec, self.rnn.b):
            p.requires_grad_(False)
        self.opt = torch.optim.Adam([p for io in self.io for p in io], lr=lr)

    # --- pretraining ------------------------------------------------------------------
    def _fresh_modules(self, gen: torch.Generator, lr: float) -> LeakyRNN:
        """Fresh block-diagonal modules: an orthogonal matrix per module times the gain."""
        net = LeakyRNN(self.d_in, self.d_out, **self.net_kw, lr=lr, seed=0)
        net.gen = gen
        with torch.no_grad():
            net.w_rec.zero_()
            for m in range(self.n_modules):
                sl = slice(m * self.module_size, (m + 1) * self.module_size)
                net.w_rec[sl, sl] = self.net_kw["w_rec_gain"] * random_orthogonal(self.module_size, gen)
        return net

    def _pretrained(self, spec, settings: dict, use_cache: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen modules' ``(W_rec, b)``: from the disk cache when its key matches, else pretrained."""
        from switchbench.data.tasksets import cache_dir, import_neurogym

        blob = json.dumps({**settings, **self.net_kw, "modules": [self.n_modules, self.module_size],
                           "io": [self.d_in, self.d_out], "format": PRETRAIN_FORMAT, "torch": torch.__version__,
                           "neurogym": import_neurogym().__version__ if self.corpus else None,
                           "source": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()},
                          sort_keys=True, default=repr)
        key = hashlib.sha256(blob.encode()).hexdigest()[:20]
        path = cache_dir() / "pretrained" / f"modules-{key}.npz"
        if use_cache and path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    if str(z["key"]) == key:
                        self.explained_variance = float(z["explained_variance"])
                        return torch.from_numpy(z["w_rec"]), torch.from_numpy(z["b"])
            except (OSError, ValueError, KeyError):
                pass                                 # unreadable: pretrain again and overwrite
        gen = torch.Generator().manual_seed(settings["seed"])
        net = self._fresh_modules(gen, settings["lr"])
        if settings["pretrain"] != "none" and settings["steps"]:
            data = _neurogym_corpus(self.corpus, settings["corpus_dt"], settings["corpus_trials"], settings["seed"],
                                    self.d_in, self.d_out)
            if settings["pretrain"] == "end-to-end":
                self._fit_tasks(net, data, settings, mask=self.block_mask)
            else:
                teacher = LeakyRNN(self.d_in, self.d_out, **self.net_kw, lr=settings["lr"],
                                   seed=int(torch.randint(0, 2 ** 62, (1,), generator=gen)))
                teacher.gen = gen
                self._fit_tasks(teacher, data, settings, mask=None)
                targets = self._components(teacher, data)
                self._fit_components(net, data, targets, settings)
        w_rec, b = net.w_rec.detach().clone(), net.b.detach().clone()
        if use_cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, key=np.array(key), w_rec=w_rec.numpy(), b=b.numpy(),
                             explained_variance=np.array(self.explained_variance))
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return w_rec, b

    def _new_io(self, n: int, gen: torch.Generator, d_out: int | None = None) -> torch.nn.ModuleList:
        """``n`` tasks' ``[W_in, W_out, b_out]`` (a module list of parameter lists)."""
        d_out = d_out or self.d_out
        limit = math.sqrt(6 / (self.hidden + d_out))
        return torch.nn.ModuleList(torch.nn.ParameterList([
            torch.randn(self.hidden, self.d_in, generator=gen) / math.sqrt(self.d_in),
            (2 * torch.rand(d_out, self.hidden, generator=gen) - 1) * limit,
            torch.zeros(d_out)]) for _ in range(n))

    def _fit_tasks(self, net: LeakyRNN, corpus, settings: dict, mask) -> None:
        """Train ``net``'s recurrence (kept block-diagonal by ``mask``) with per-corpus-task I/O on the tasks' loss."""
        io = self._new_io(len(corpus), net.gen)
        params = [net.w_rec, net.b] + [p for ps in io for p in ps]
        opt = torch.optim.Adam(params, lr=settings["lr"])
        for _ in range(settings["steps"]):
            k = int(torch.randint(0, len(corpus), (1,), generator=net.gen))
            x, y = corpus[k]
            idx = torch.randint(0, x.shape[1], (settings["batch"],), generator=net.gen)
            w_in, w_out, b_out = io[k]
            with torch.enable_grad():
                logits = net.hidden_states(x[:, idx], w_in, noise=True) @ w_out.T + b_out
                loss = task_loss(logits, y[:, idx], "cross_entropy")
                opt.zero_grad(set_to_none=True)
                loss.backward()
            if mask is not None:
                net.w_rec.grad.mul_(mask)          # modules stay separate
            clip_and_step(opt, params)
        net.corpus_w_in = [ps[0].detach() for ps in io]

    def _components(self, teacher: LeakyRNN, corpus) -> list[torch.Tensor]:
        """Per corpus task, the z-scored leading principal components of the teacher's hidden
        trajectories (unpadded steps of all corpus trials, no noise), dealt out round-robin:
        column ``j`` of the result belongs to module ``j % n_modules``."""
        n_pc = self.n_modules * self.pcs_per_module
        with torch.no_grad():
            hs = [teacher.hidden_states(x, w_in, noise=False) for (x, _), w_in in zip(corpus, teacher.corpus_w_in)]
        real = torch.cat([h[y != IGNORE] for h, (_, y) in zip(hs, corpus)])       # (samples, hidden)
        mean = real.mean(0)
        _, sv, vt = torch.linalg.svd(real - mean, full_matrices=False)
        var = sv.square()
        self.explained_variance = float(var[:n_pc].sum() / var.sum())
        scale = (var[:n_pc] / (len(real) - 1)).sqrt().clamp_min(1e-8)
        return [((h - mean) @ vt[:n_pc].T) / scale for h in hs]

    def _fit_components(self, net: LeakyRNN, corpus, targets: list[torch.Tensor], settings: dict) -> None:
        """Train the modules (with per-corpus-task input weights) so that module m's own readout
        produces its group of components: squared error on the unpadded steps."""
        n_pc = self.n_modules * self.pcs_per_module
        owner = torch.arange(n_pc) % self.n_modules                       # component j -> module j % M
        unit_module = torch.arange(self.hidden) // self.module_size
        readout_mask = (owner[:, None] == unit_module[None, :]).float()  # each module reads out its own group
        gen = net.gen
        w_ins = [torch.nn.Parameter(torch.randn(self.hidden, self.d_in, generator=gen) / math.sqrt(self.d_in))
                 for _ in corpus]
        readout = torch.nn.Parameter(torch.randn(n_pc, self.hidden, generator=gen) / math.sqrt(self.module_size))
        bias = torch.nn.Parameter(torch.zeros(n_pc))
        params = [net.w_rec, net.b, readout, bias] + w_ins
        opt = torch.optim.Adam(params, lr=settings["lr"])
        for _ in range(settings["steps"]):
            k = int(torch.randint(0, len(corpus), (1,), generator=gen))
            x, y = corpus[k]
            idx = torch.randint(0, x.shape[1], (settings["batch"],), generator=gen)
            keep = y[:, idx] != IGNORE
            with torch.enable_grad():
                z = net.hidden_states(x[:, idx], w_ins[k], noise=True) @ (readout * readout_mask).T + bias
                loss = (z - targets[k][:, idx]).square()[keep].mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
            net.w_rec.grad.mul_(self.block_mask)
            clip_and_step(opt, params)

    # --- the learner ------------------------------------------------------------------
    def _forward(self, x: torch.Tensor, task: int, noise: bool) -> torch.Tensor:
        w_in, w_out, b_out = self.io[task]
        return self.rnn.hidden_states(x, w_in, noise) @ w_out.T + b_out

    def observe_task(self, task: int) -> None:
        if not 0 <= task < self.n_tasks:
            raise SwitchbenchError(f"task {task} out of range 0..{self.n_tasks - 1}")
        self.task = int(task)

    def parameters(self, recurse: bool = True):
        """The trainable parameters: every task's input and output weights (modules are frozen)."""
        return [p for io in self.io for p in io]

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        apply_to_optimiser(self.opt, fn)
        return self

    def record_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The modules' hidden states driven by the active task's input weights (no noise, no side effects)."""
        with torch.no_grad():
            return self.rnn.hidden_states(x, self.io[self.task][0], noise=False)

    def perturb(self, kind: str, level: float, gen: torch.Generator) -> bool:
        """As :meth:`LeakyRNN.perturb` on the modules (``module_silencing`` silences whole modules)."""
        return self.rnn.perturb(kind, level, gen)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._forward(x, self.task, noise=False)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.enable_grad():
            loss = task_loss(self._forward(x, self.task, noise=True), y, "cross_entropy")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        clip_and_step(self.opt, self.parameters())
        return float(loss.detach())

    @classmethod
    def stack(cls, learners) -> "StackedModularPrimitives":
        return StackedModularPrimitives(learners)


class StackedModularPrimitives(StackedTaskRNN):
    """S :class:`ModularPrimitives` as one seed-batched learner (:class:`StackedTaskRNN`): each
    seed's frozen modules stacked ``(S, ...)``, its per-task input and output weights
    ``(S, tasks, ...)``."""

    def __init__(self, learners):
        super().__init__(learners)
        rnn = self.models[0].rnn
        self.alpha, self.sigma_rec, self.sigma_x, self.activation = rnn.alpha, rnn.sigma_rec, rnn.sigma_x, \
            rnn.activation
        self._frozen()

    def _frozen(self) -> None:
        self.frozen = [stack_like([getattr(m.rnn, name).detach() for m in self.models]) for name in ("w_rec", "b")]

    @staticmethod
    def _config(model) -> tuple:
        return (StackedRNN._config(model.rnn), model.n_tasks, [tuple(p.shape) for p in model.parameters()])

    def _task_params(self, model) -> list[list[torch.Tensor]]:
        return [list(io) for io in model.io]

    def _optimiser(self, model, task: int):
        return model.opt, model.parameters()

    def _weight(self, i: int) -> torch.Tensor:
        if i in (1, 2):
            return self.frozen[i - 1]                       # the modules' W_rec and b
        return self._pick(self.params[{0: 0, 3: 1, 4: 2}[i]])

    def _gens(self) -> list[torch.Generator]:
        return [m.rnn.gen for m in self.models]

    @property
    def unit_mask(self) -> torch.Tensor | None:
        masks = [m.rnn.unit_mask for m in self.models]
        if all(u is None for u in masks):
            return None
        return torch.stack([torch.ones_like(m.rnn.b) if u is None else u for m, u in zip(self.models, masks)])

    def to(self, device) -> "StackedModularPrimitives":
        super().to(device)
        self._frozen()
        return self


def _neurogym_tasks(spec):
    reason = _classification_sequences(spec)
    if reason:
        return reason
    if spec.name != "switchbench/CognitiveSwitch-v0":
        return "modular-primitives pretrains on the neurogym tasks of CognitiveSwitch-v0; it cannot run on " + spec.name
    return None


@register("modular-primitives", description="MoLaP: frozen recurrent modules pretrained for independent, informative "
          "components of a task corpus that excludes the scored tasks; each task learns only its input/output weights "
          "(privileged)", citation=MOLAP, privileged=True, kinds=("sequence",), supports=_neurogym_tasks,
          tuning="module update as leaky-rnn; 4 modules x 64 units (leaky-rnn's 256), 4 components each; corpus "
                 "molap9 less the scored tasks; 300 + 300 pretraining batches of 32: untuned",
          tunable={"lr": LR_GRID})
def make_modular_primitives(spec, seed, n_modules=4, module_size=64, alpha: float | None = None, tau=TAU, sigma_rec=0.05,
                            sigma_x=0.01, w_rec_gain=W_REC_GAIN, activation="softplus", lr=1e-3, pretrain="pca",
                            pretrain_steps=300, pretrain_batch=32, pretrain_lr=1e-3, pcs_per_module=4,
                            corpus_dt: float | None = None, corpus_trials=256, corpus="molap9", hold_out=True, pretrain_cache=True):
    """Modular latent primitives (Marton, Lajoie & Rajan): see :class:`ModularPrimitives` for its assumptions.
    ``pretrain="none"`` is the random-frozen-module control; ``"end-to-end"`` the earlier variant."""
    return ModularPrimitives(spec, seed, n_modules=n_modules, module_size=module_size,
                             alpha=derive_alpha(spec, alpha, tau), sigma_rec=sigma_rec, sigma_x=sigma_x,
                             w_rec_gain=w_rec_gain, activation=activation, lr=lr, pretrain=pretrain,
                             pretrain_steps=pretrain_steps, pretrain_batch=pretrain_batch, pretrain_lr=pretrain_lr,
                             pcs_per_module=pcs_per_module, corpus_dt=corpus_dt, corpus_trials=corpus_trials,
                             corpus=corpus, hold_out=hold_out, pretrain_cache=pretrain_cache)
