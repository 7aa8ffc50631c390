"""A small recurrent network for sequence paradigms (``gru``): a GRU over time and a linear
readout at every time step, cross-entropy over the unmasked targets, Adam.

For ``CuedSwitch-v0`` in ``mode="sequence"``: the hidden state carries over from trial to
trial within a sequence, so the previous task's state can cost time on a switch trial,
and the cue-stimulus interval gives it time to prepare.

>>> import torch
>>> from switchbench import models
>>> from switchbench.paradigms.base import TaskSpec
>>> spec = TaskSpec("toy", 5, 2, 2, "cross_entropy", True, (0.69, 0.69), "blocked", 4, kind="sequence")
>>> models.get("gru").build(spec, seed=0, hidden=8).predict(torch.zeros(3, 4, 5)).shape
torch.Size([3, 4, 2])
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from switchbench.errors import SwitchbenchError
from switchbench.losses import IGNORE
from switchbench.models.gated_mlp import Adam
from switchbench.models.batching import stack_optimizer, unstack_optimizer_state
from switchbench.models.leaky_rnn import adam_settings, apply_to_optimiser, seed_losses
from switchbench.models.registry import register
from switchbench.models.state import LearningState


class GRUNet(LearningState, torch.nn.Module):
    """``h_t = GRU(x_t, h_{t-1})``, ``logits_t = W h_t + b``; one Adam step per batch of sequences.

    A :class:`torch.nn.Module` (``state_dict()``, Adam's state included; ``.to(device)`` moves the Adam state too) used
    through ``predict`` / ``learn``; :meth:`stack` makes S seeds one seed-batched learner
    (:class:`StackedGRU`)."""

    def __init__(self, d_in: int, d_out: int, hidden: int, lr: float, seed: int):
        if not (isinstance(hidden, int) and hidden > 0) or not lr > 0:
            raise SwitchbenchError(f"hidden must be a positive integer and lr positive, got {hidden!r}, {lr!r}")
        super().__init__()
        self.gru = torch.nn.GRU(d_in, hidden)
        self.out = torch.nn.Linear(hidden, d_out)
        self.params = [p for m in (self.gru, self.out) for p in m.parameters()]
        g = torch.Generator().manual_seed(int(seed))
        bound = hidden ** -0.5                 # PyTorch's GRU / Linear initialisation, from our own generator
        with torch.no_grad():
            for p in self.params:
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)
                p.requires_grad_(False)
        self.opt = Adam(self.params, lr)

    def parameters(self, recurse: bool = True):
        """The trained tensors: the GRU's, then the readout's."""
        return list(self.params)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        apply_to_optimiser(self.opt.opt, fn)
        return self

    @classmethod
    def stack(cls, learners) -> "StackedGRU":
        """S single-seed GRUs of one configuration as one seed-batched learner."""
        return StackedGRU(learners)

    def record_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden states ``(time, batch, hidden)`` for inputs ``x`` (no side effects)."""
        with torch.no_grad():
            return self.gru(x.float())[0]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(x.float())
        return self.out(h)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._forward(x)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float:
        for p in self.params:
            p.requires_grad_(True)
        logits = self._forward(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)
        grads = torch.autograd.grad(loss, self.params)
        for p in self.params:
            p.requires_grad_(False)
        with torch.no_grad():
            self.opt.step(self.params, grads)
        return float(loss.detach())


class StackedGRU:
    """S :class:`GRUNet` s of one configuration (seed order) as one seed-batched learner
    (:mod:`switchbench.models.batching`): the GRU written out (PyTorch's equations and gate
    order ``r, z, n``) with seed-first stacked weights and batched products, one Adam over the
    stacks on the sum of the seeds' losses (each seed's update is its own). Agrees with the
    single-seed learners to float rounding (the fused GRU and the batched products may round
    differently)."""

    def __init__(self, learners):
        self.nets = [copy.deepcopy(n) for n in learners]
        configs = [([tuple(p.shape) for p in n.params], adam_settings(n.opt.opt)) for n in self.nets]
        if any(type(n) is not type(self.nets[0]) for n in self.nets) or any(c != configs[0] for c in configs):
            raise SwitchbenchError("stack() needs GRUs of one configuration (sizes and optimiser settings)")
        self.params = [torch.nn.Parameter(torch.stack([n.params[i].detach() for n in self.nets]))
                       for i in range(len(self.nets[0].params))]
        self.opt = stack_optimizer([n.opt.opt for n in self.nets], self.params)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params)

    def record_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(S, time, batch, hidden)`` of inputs ``(S, time, batch, features)``."""
        with torch.no_grad():
            return self._hidden(x)

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        w_ih, w_hh, b_ih, b_hh = self.params[:4]
        S, T, B, _ = x.shape
        gi = torch.baddbmm(b_ih[:, None], x.float().reshape(S, T * B, -1), w_ih.mT).reshape(S, T, B, -1)
        h = gi.new_zeros(S, B, w_hh.shape[-1])
        hs = []
        for gi_t in gi.unbind(1):
            gh = torch.baddbmm(b_hh[:, None], h, w_hh.mT)
            ir, iz, in_ = gi_t.chunk(3, -1)
            hr, hz, hn = gh.chunk(3, -1)
            r, z = torch.sigmoid(hr + ir), torch.sigmoid(hz + iz)
            n = torch.tanh(in_ + hn * r)
            h = (h - n) * z + n
            hs.append(h)
        return torch.stack(hs, 1)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        hs = self._hidden(x)
        S, T, B, H = hs.shape
        w, b = self.params[4:]
        return torch.baddbmm(b[:, None], hs.reshape(S, T * B, H), w.mT).reshape(S, T, B, -1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._logits(x)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            objectives, losses = seed_losses(self._logits(x), y)
            grads = torch.autograd.grad(objectives.sum(), self.params)
        for p, g in zip(self.params, grads):
            p.grad = g
        self.opt.step()
        for p in self.params:
            p.grad = None
        return losses.detach()

    def unstack(self) -> list:
        """Independent single-seed GRUs (seed order) with the current weights and Adam state."""
        out = []
        for s, net in enumerate(self.nets):
            net = copy.deepcopy(net)
            with torch.no_grad():
                for p, P in zip(net.params, self.params):
                    p.copy_(P[s])
            unstack_optimizer_state(self.opt, s, net.opt.opt)
            out.append(net)
        return out

    def to(self, device) -> "StackedGRU":
        for p in self.params:
            p.data = p.data.to(device)
        apply_to_optimiser(self.opt, lambda t: t.to(device))
        for net in self.nets:
            net.to(device)
        return self


def _sequences(spec):
    return None if spec.sequence else "needs sequence paradigms ((time, batch, features) inputs)"


@register("gru", description="Baseline: a GRU with a linear readout per time step (sequence paradigms)",
          kinds=("sequence",), supports=_sequences, tuning="defaults (hidden 64, Adam lr 3e-3)",
          tunable={"lr": (3e-4, 3e-3, 3e-2)})
def make_gru(spec, seed, hidden=64, lr=3e-3):
    """A GRU over time with a linear readout at every step, trained with Adam."""
    return GRUNet(spec.input_size, spec.output_size, hidden, lr, seed)
