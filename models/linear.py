"""Ungated linear baselines: one matrix (``linear``) and a two-layer deep linear network
(``deep-linear``, the gated-network paper's monolithic baseline ``y = W2 W1 x``).

Both learn by plain gradient steps on ``1/2 sum_out (y - y*)^2`` (mean over the batch) with
learning rate ``dt / tau_w`` (paper defaults dt = 1e-3, tau_w = 1.3) and Gaussian
initialisation ``N(0, (w_init / sqrt(fan_in))^2)``. Gradients are written out (backprop
through the product, checked against autograd in the tests). ``linear`` starts small like
the gated network (w_init = 0.01); ``deep-linear`` starts at the standard scale (w_init = 1):
from 0.01 a two-layer network stays on its initial saddle for the whole 20 000-step
curriculum (measured: normalised loss 0.97 at the end), which would make it no baseline.

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
from switchbench.models.gated_linear import CITATION, DTYPES
from switchbench.models.registry import register
from switchbench.models.torch_learner import ZooModule


class DeepLinear(ZooModule):
    """A product of linear layers ``y = W_L ... W_1 x`` trained by plain gradient descent
    (hand-written backprop). ``layers``: the matrices ``W_l`` (out, in), parameters; ``lr``;
    ``dtype``. Stacked seeds (:meth:`stack`) put a seed dimension first: (S, out, in)."""
    covariance_form = property(lambda self: len(self.layers) == 1)   # one layer: models.covariance_engine can run it

    def __init__(self, sizes: list[int], *, lr: float, w_init: float, seed: int, dtype: str = "float32"):
        super().__init__()
        if dtype not in DTYPES:
            raise SwitchbenchError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        g = torch.Generator().manual_seed(int(seed))
        self.dtype = DTYPES[dtype]
        self.layers = torch.nn.ParameterList(
            torch.nn.Parameter((torch.randn(o, i, generator=g, dtype=torch.float64) * w_init / math.sqrt(i))
                               .to(self.dtype), requires_grad=False)
            for i, o in zip(sizes[:-1], sizes[1:]))
        self.lr = lr

    def parameters(self, recurse: bool = True) -> list[torch.Tensor]:
        return list(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(self.layers[0])
        for w in self.layers:
            h = h @ w.transpose(-1, -2)
        return h

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float | torch.Tensor:
        acts = [x.to(self.layers[0])]                  # h_0 = x, h_l = h_{l-1} W_l^T
        for w in self.layers:
            acts.append(acts[-1] @ w.transpose(-1, -2))
        err = acts[-1] - y.to(acts[-1])
        n = err.shape[-2]
        loss = 0.5 * err.square().sum((-2, -1)) / n
        g = err / n                                    # dL/dh_L
        grads = []
        for w, h in zip(reversed(self.layers), reversed(acts[:-1])):
            grads.append(g.transpose(-1, -2) @ h)      # dL/dW_l = g_l^T h_{l-1}
            g = g @ w                                  # dL/dh_{l-1}
        for w, gw in zip(self.layers, reversed(grads)):
            w -= self.lr * gw
        return self._loss_value(loss)


def _regression_only(spec):
    return None if not spec.sequence else "needs non-sequence inputs"


@register("linear", description="Baseline: one ungated linear map, plain gradient descent", citation=CITATION,
          supports=_regression_only, tunable={"dt": (1e-4, 1e-3, 1e-2)})
def make_linear(spec, seed, dt=1e-3, tau_w=1.3, w_init=0.01, dtype="float32"):
    """One linear map ``y = W x``."""
    return DeepLinear([spec.input_size, spec.output_size], lr=dt / tau_w, w_init=w_init, seed=seed, dtype=dtype)


@register("deep-linear", description="Baseline: two-layer monolithic deep linear network y = W2 W1 x",
          citation=CITATION, supports=_regression_only, tunable={"dt": (1e-4, 1e-3, 1e-2)},
          tuning="the paper's settings (dt 1e-3, tau_w 1.3, w_init 0.01: small weights start near the saddle)")
def make_deep_linear(spec, seed, hidden: int | None = None, dt=1e-3, tau_w=1.3, w_init=0.01, dtype="float32"):
    """Two-layer deep linear network; ``hidden`` defaults to n_tasks * output_size (the gated net's capacity)."""
    hidden = hidden or spec.n_tasks * spec.output_size
    return DeepLinear([spec.input_size, hidden, spec.output_size], lr=dt / tau_w, w_init=w_init, seed=seed,
                      dtype=dtype)
