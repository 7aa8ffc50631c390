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

import torch
import torch.nn.functional as F

from switchbench.errors import SwitchbenchError
from switchbench.losses import IGNORE
from switchbench.models.gated_mlp import Adam
from switchbench.models.registry import register


class GRUNet:
    """``h_t = GRU(x_t, h_{t-1})``, ``logits_t = W h_t + b``; one Adam step per batch of sequences."""

    def __init__(self, d_in: int, d_out: int, hidden: int, lr: float, seed: int):
        if not (isinstance(hidden, int) and hidden > 0) or not lr > 0:
            raise SwitchbenchError(f"hidden must be a positive integer and lr positive, got {hidden!r}, {lr!r}")
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

    def parameters(self):
        return list(self.params)

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


def _sequences(spec):
    return None if spec.sequence else "needs sequence paradigms ((time, batch, features) inputs)"


@register("gru", description="Baseline: a GRU with a linear readout per time step (sequence paradigms)",
          kinds=("sequence",), supports=_sequences, tuning="defaults (hidden 64, Adam lr 3e-3)",
          tunable={"lr": (3e-4, 3e-3, 3e-2)})
def make_gru(spec, seed, hidden=64, lr=3e-3):
    """A GRU over time with a linear readout at every step, trained with Adam."""
    return GRUNet(spec.input_size, spec.output_size, hidden, lr, seed)
