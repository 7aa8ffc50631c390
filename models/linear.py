"""Ungated linear baselines: one matrix (``linear``) and a two-layer deep linear network
(``deep-linear``, the gated-network paper's monolithic baseline ``y = W2 W1 x``).

Both learn by plain gradient steps on ``1/2 sum_out (y - y*)^2`` (mean over the batch) with
learning rate ``dt / tau_w`` (paper defaults dt = 1e-3, tau_w = 1.3), small Gaussian
initialisation ``N(0, (w_init / sqrt(fan_in))^2)``.

>>> import torch
>>> from switchbench import models
>>> from switchbench.paradigms.base import TaskSpec
>>> spec = TaskSpec("toy", 4, 2, 2, "mse", False, (1.0, 1.0), "blocked", 8)
>>> net = models.get("deep-linear").build(spec, seed=0, hidden=3)
>>> [tuple(p.shape) for p in net.parameters()]
[(3, 4), (2, 3)]
"""
from __future__ import annotations

import math

import torch

from switchbench.errors import SwitchbenchError
from switchbench.losses import task_loss
from switchbench.models.gated_linear import CITATION, DTYPES
from switchbench.models.registry import register


class DeepLinear:
    """A product of linear layers ``y = W_L ... W_1 x`` trained by plain gradient descent (autograd)."""

    def __init__(self, sizes: list[int], *, lr: float, w_init: float, seed: int, dtype: str = "float32"):
        if dtype not in DTYPES:
            raise SwitchbenchError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        g = torch.Generator().manual_seed(int(seed))
        self.dtype = DTYPES[dtype]
        self.layers = [(torch.randn(o, i, generator=g, dtype=torch.float64) * w_init / math.sqrt(i)).to(self.dtype)
                       for i, o in zip(sizes[:-1], sizes[1:])]
        self.lr = lr

    def parameters(self):
        return list(self.layers)

    def _forward(self, x, layers):
        h = x.to(self.dtype)
        for w in layers:
            h = h @ w.T
        return h

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, self.layers)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float:
        layers = [w.detach().requires_grad_() for w in self.layers]
        loss = task_loss(self._forward(x, layers), y.to(self.dtype), "mse")
        grads = torch.autograd.grad(loss, layers)
        self.layers = [(w - self.lr * g).detach() for w, g in zip(layers, grads)]
        return float(loss.detach())


def _regression_only(spec):
    return None if not spec.sequence else "needs non-sequence inputs"


@register("linear", description="Baseline: one ungated linear map, plain gradient descent", citation=CITATION,
          supports=_regression_only)
def make_linear(spec, seed, dt=1e-3, tau_w=1.3, w_init=0.01, dtype="float32"):
    """One linear map ``y = W x``."""
    return DeepLinear([spec.input_size, spec.output_size], lr=dt / tau_w, w_init=w_init, seed=seed, dtype=dtype)


@register("deep-linear", description="Baseline: two-layer monolithic deep linear network y = W2 W1 x",
          citation=CITATION, supports=_regression_only)
def make_deep_linear(spec, seed, hidden=None, dt=1e-3, tau_w=1.3, w_init=0.01, dtype="float32"):
    """Two-layer deep linear network; ``hidden`` defaults to n_tasks * output_size (the gated net's capacity)."""
    hidden = hidden or spec.n_tasks * spec.output_size
    return DeepLinear([spec.input_size, hidden, spec.output_size], lr=dt / tau_w, w_init=w_init, seed=seed,
                      dtype=dtype)
