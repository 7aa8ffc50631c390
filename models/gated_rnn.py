"""The leaky RNN with gated readouts (``gated-rnn``): the gated network's fast, non-negative,
bounded gates on an RNN (:class:`GatedRNN`), with its seed-stacked twin."""
from __future__ import annotations

import math

import torch

from switchbench.errors import SwitchbenchError
from switchbench.losses import task_loss
from switchbench.models.leaky_rnn import (LR_GRID, TAU, W_REC_GAIN, YANG19, LeakyRNN, StackedRNN,
                                          _classification_sequences, _leaky, clip_and_step)
from switchbench.models.registry import register

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


@register("gated-rnn", description="Leaky RNN with P readouts mixed by fast non-negative bounded gates",
          citation=YANG19, kinds=("sequence",), supports=_classification_sequences,
          tuning="leaky-rnn defaults; gates: lr_c 0.2, lam 0.1 (gated-network paper), untuned",
          tunable={"lr": LR_GRID})
def make_gated_rnn(spec, seed, hidden=256, alpha: float | None = None, tau=TAU, sigma_rec=0.05, sigma_x=0.01, w_rec_gain=W_REC_GAIN,
                   activation="softplus", lr=1e-3, n_paths: int | None = None, lr_c=0.2, lam=0.1):
    """Yang et al.'s leaky RNN with gated readouts (one per task unless ``n_paths``)."""
    return GatedRNN(spec.input_size, spec.output_size, seed=seed, n_paths=n_paths or spec.n_tasks, lr_c=lr_c, lam=lam,
                    **_leaky(spec, hidden, alpha, tau, sigma_rec, sigma_x, w_rec_gain, activation, lr))
