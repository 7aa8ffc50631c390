"""The gated linear network with fast, non-negative, bounded gates, and its controls.

Sandbrink, Bauer, Proca, Saxe, Summerfield & Hummos (NeurIPS 2024), "Flexible task
abstractions emerge in linear networks with fast and bounded units".

Model: ``y = sum_p c_p W_p x`` with P paths (modules ``W_p``, gates ``c_p``).
Loss: ``L = 1/2 sum_out (y - y*)^2`` (mean over the batch) ``+ lam * R(c)`` with

    R(c) = (N + w * M) / (1 + w)               (w = manifold_weight, 10 by default)
    N    = 10 * sum_p relu(-c_p)               (gates non-negative)
    M    = 10 * 1/2 * (|c|_1 - 1)^2            (gates bounded: |c|_1 = 1)

The two terms are weighted by normalised coefficients, as the paper's code does
(``[('nonnegative', 1), ('gating_manifold_L1', w)]``): w = 10 for Fig. 2 (our default),
w = 5 for its Fig. 5 and the composition figure.

Learning is Euler-discretised gradient flow, plain gradient steps with hand-written
gradients (checked against autograd in the tests)::

    W <- W - (dt / tau_w) dL/dW,    c <- c - (dt / tau_c) dL/dc

Defaults are the paper's Fig. 2 ones: dt = 1e-3, tau_w = 1.3, tau_c = 0.03, lam = 0.1,
c_p = 0.5 at start, ``W ~ N(0, (0.01 / sqrt(d_in))^2)``.

- ``gated-linear``: the flexible model above;
- ``gated-linear-forgetful``: the paper's control, slow gates (tau_c = tau_w), lam = 0;
- ``oracle-gates``: gates clamped to the one-hot of the true task (privileged upper bound);
- ``gated-linear-unitwise``: one gate per (path, output unit), ``y_o = sum_p c_po (W_p x)_o``,
  for subtask composition; its penalty bounds the L2 norm over all gates,
  ``R = (N + w M2) / (1 + w)`` with ``M2 = 1/2 (||c||_2 - 1)^2`` (the paper's
  ``gating_manifold_L2`` over the flattened gates; the default w = ``manifold_weight`` = 10
  is our assumption, carried over from the main model). Paper defaults for this case:
  lam = 0.025, tau_c = 0.005, tau_w = 0.2, dt = 0.01.

>>> import torch
>>> from switchbench import models
>>> from switchbench.paradigms.base import TaskSpec
>>> spec = TaskSpec("toy", 4, 2, 2, "mse", False, (1.0, 1.0), "blocked", 8)
>>> net = models.get("gated-linear").build(spec, seed=0)
>>> net.predict(torch.zeros(8, 4)).shape
torch.Size([8, 2])
"""
from __future__ import annotations

import math

import torch

from switchbench.errors import SwitchbenchError
from switchbench.models.registry import register
from switchbench.models.torch_learner import ZooModule

CITATION = ("Sandbrink, Bauer, Proca, Saxe, Summerfield & Hummos (2024). Flexible task abstractions emerge in "
            "linear networks with fast and bounded units. NeurIPS.")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def check_manifold_weight(weight) -> float:
    """The manifold weight ``w`` as a float; a :class:`SwitchbenchError` unless it is >= 0."""
    try:
        w = float(weight)
    except (TypeError, ValueError):
        w = float("nan")
    if not w >= 0 or w == float("inf"):
        raise SwitchbenchError(f"manifold_weight must be a finite number >= 0, got {weight!r}")
    return w


def gate_penalty(c: torch.Tensor, weight: float = 10.0) -> torch.Tensor:
    """R(c) = (N + w M) / (1 + w) with N = 10 sum relu(-c), M = 5 (|c|_1 - 1)^2, w = ``weight``;
    one value per row of a stack of gate vectors ``(..., P)``."""
    n = 10 * torch.relu(-c).sum(-1)
    m = 5 * (c.abs().sum(-1) - 1) ** 2
    return (n + weight * m) / (1 + weight)


def gate_penalty_grad(c: torch.Tensor, weight: float = 10.0) -> torch.Tensor:
    """dR/dc, written out (the subgradient 0 is used at c_p = 0); row-wise for a stack of gate vectors."""
    dn = -10 * (c < 0).to(c.dtype)
    dm = 10 * (c.abs().sum(-1, keepdim=True) - 1) * torch.sign(c)
    return (dn + weight * dm) / (1 + weight)


def l2_gate_penalty(c: torch.Tensor, weight: float = 10.0) -> torch.Tensor:
    """R(c) = (N + w M2) / (1 + w) with N = 10 sum relu(-c), M2 = 1/2 (||c||_2 - 1)^2 over all gates."""
    return (10 * torch.relu(-c).sum() + weight * 0.5 * (c.norm() - 1) ** 2) / (1 + weight)


def l2_gate_penalty_grad(c: torch.Tensor, weight: float = 10.0, dims: tuple[int, ...] | None = None) -> torch.Tensor:
    """dR/dc of :func:`l2_gate_penalty`, written out; the norm is over ``dims`` (all gates by
    default; ``(-2, -1)`` for each seed's (P, d_out) gates in a stack)."""
    norm = (c.norm() if dims is None else c.square().sum(dims, keepdim=True).sqrt()).clamp_min(1e-12)
    return (-10 * (c < 0).to(c.dtype) + weight * (norm - 1) * c / norm) / (1 + weight)


class GatedLinear(ZooModule):
    """P linear paths ``W_p`` mixed by gates ``c_p`` (see the module docstring).

    Tensors: ``W`` (P, d_out, d_in) and ``c`` (P,), parameters (``c`` a buffer where the gates
    do not learn); learning rates ``lr_w = dt / tau_w``, ``lr_c = dt / tau_c``; ``dtype``.
    Stacked seeds (:meth:`stack`) put a seed dimension first: ``W`` (S, P, d_out, d_in).
    """
    covariance_form = property(lambda self: self.c.ndim == 1)   # one gate per path: models.covariance_engine can run it

    def __init__(self, d_in: int, d_out: int, n_paths: int, *, dt: float, tau_w: float, tau_c: float, lam: float,
                 c_init: float, w_init: float, seed: int, learn_gates: bool = True, dtype: str = "float32",
                 manifold_weight: float = 10.0):
        super().__init__()
        if dtype not in DTYPES:
            raise SwitchbenchError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        for name, v in (("dt", dt), ("tau_w", tau_w), ("tau_c", tau_c)):
            if not v > 0:
                raise SwitchbenchError(f"{name} must be positive, got {v!r}")
        self.manifold_weight = check_manifold_weight(manifold_weight)
        self.dtype = DTYPES[dtype]
        g = torch.Generator().manual_seed(int(seed))
        W = torch.randn(n_paths, d_out, d_in, generator=g, dtype=torch.float64).to(self.dtype)
        W *= w_init / math.sqrt(d_in)
        self.W = torch.nn.Parameter(W, requires_grad=False)
        c = torch.full(self._gate_shape(n_paths, d_out), float(c_init), dtype=self.dtype)
        if learn_gates:
            self.c = torch.nn.Parameter(c, requires_grad=False)
        else:
            self.register_buffer("c", c)
        self.lr_w, self.lr_c, self.lam, self.learn_gates = dt / tau_w, dt / tau_c, lam, learn_gates

    _gate_sum = (-2, -1)                  # dL/dc_p sums over the batch and the outputs

    @staticmethod
    def _gate_shape(n_paths: int, d_out: int) -> tuple[int, ...]:
        return (n_paths,)

    def _gates(self) -> torch.Tensor:
        """The gates shaped against the paths' outputs ``(..., P, B, d_out)``."""
        return self.c[..., None, None]

    def _penalty_grad(self) -> torch.Tensor:
        return gate_penalty_grad(self.c, self.manifold_weight)

    def parameters(self, recurse: bool = True) -> list[torch.Tensor]:
        return [self.W, self.c] if self.learn_gates else [self.W]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(self.W).unsqueeze(-3) @ self.W.transpose(-1, -2)         # (..., P, B, d_out): each path's output
        return (self._gates() * h).sum(-3)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float | torch.Tensor:
        x, y = x.to(self.W), y.to(self.W)
        h = x.unsqueeze(-3) @ self.W.transpose(-1, -2)                    # (..., P, B, d_out)
        gates = self._gates()
        err = (gates * h).sum(-3) - y                                      # (..., B, d_out)
        n = x.shape[-2]
        loss = 0.5 * err.square().sum((-2, -1)) / n
        grad_w = (gates * err.unsqueeze(-3)).transpose(-1, -2) @ x.unsqueeze(-3) / n   # (c_p * e)^T x / B
        if self.learn_gates:
            grad_c = (h * err.unsqueeze(-3)).sum(self._gate_sum) / n        # <h_p(o), e(_o)> / B
            if self.lam:
                grad_c = grad_c + self.lam * self._penalty_grad()
            self.c -= self.lr_c * grad_c
        self.W -= self.lr_w * grad_w
        return self._loss_value(loss)

    def probe(self) -> dict[str, torch.Tensor]:
        return {"gates": self.c.clone(), "modules": self.W.clone()}


class UnitwiseGatedLinear(GatedLinear):
    """One gate per (path, output unit): ``y_o = sum_p c_po (W_p x)_o``; ``c`` is (P, d_out)."""

    _gate_sum = (-2,)                     # dL/dc_po sums over the batch

    @staticmethod
    def _gate_shape(n_paths: int, d_out: int) -> tuple[int, ...]:
        return (n_paths, d_out)

    def _gates(self) -> torch.Tensor:
        return self.c[..., :, None, :]

    def _penalty_grad(self) -> torch.Tensor:
        return l2_gate_penalty_grad(self.c, self.manifold_weight, dims=(-2, -1))


class OracleGates(GatedLinear):
    """Gates clamped to the one-hot of the task the runner announces (one task per seed when stacked)."""

    def observe_task(self, task) -> None:
        self.c.copy_(torch.nn.functional.one_hot(torch.as_tensor(task), self.c.shape[-1]))


def _linear_only(spec):
    return None if not spec.sequence else "needs non-sequence inputs"


#: the step size searched by ``switchbench tune``: the published dt and a decade either side
#: (dt scales every rate of a continuous-time model at once: weights and gates)
DT_GRID = (1e-4, 1e-3, 1e-2)


@register("gated-linear", description="Gated linear network: fast, non-negative, bounded gates over P linear paths",
          citation=CITATION, supports=_linear_only, tunable={"dt": DT_GRID})
def make_gated_linear(spec, seed, n_paths: int | None = None, dt=1e-3, tau_w=1.3, tau_c=0.03, lam=0.1, c_init=0.5, w_init=0.01,
                      dtype="float32", manifold_weight=10.0):
    """Gated linear network with fast, non-negative, bounded gates (paper Fig. 2 defaults;
    ``manifold_weight`` w weighs the penalty terms, ``R = (N + w M) / (1 + w)``)."""
    return GatedLinear(spec.input_size, spec.output_size, n_paths or spec.n_base_tasks or spec.n_tasks, dt=dt, tau_w=tau_w, tau_c=tau_c,
                       lam=lam, c_init=c_init, w_init=w_init, seed=seed, dtype=dtype, manifold_weight=manifold_weight)


@register("gated-linear-forgetful", description="Control: the gated network with slow gates (tau_c = tau_w) and no "
          "gate penalty (lam = 0)", citation=CITATION, supports=_linear_only,
          tunable={"dt": DT_GRID})
def make_gated_linear_forgetful(spec, seed, n_paths: int | None = None, dt=1e-3, tau_w=1.3, tau_c=1.3, lam=0.0, c_init=0.5,
                                w_init=0.01, dtype="float32", manifold_weight=10.0):
    """The paper's forgetful control: gates as slow as the weights, no gate penalty."""
    return make_gated_linear(spec, seed, n_paths=n_paths, dt=dt, tau_w=tau_w, tau_c=tau_c, lam=lam, c_init=c_init,
                             w_init=w_init, dtype=dtype, manifold_weight=manifold_weight)


@register("oracle-gates", description="Upper bound: gates set to the true task's one-hot (privileged)",
          citation=CITATION, privileged=True, supports=_linear_only, tunable={"dt": DT_GRID})
def make_oracle_gates(spec, seed, dt=1e-3, tau_w=1.3, w_init=0.01, dtype="float32"):
    """One path per task, gates clamped to the true task: only the weights learn."""
    net = OracleGates(spec.input_size, spec.output_size, spec.n_tasks, dt=dt, tau_w=tau_w, tau_c=1.0, lam=0.0,
                      c_init=0.0, w_init=w_init, seed=seed, learn_gates=False, dtype=dtype)
    net.observe_task(0)
    return net


@register("gated-linear-unitwise", description="Gated linear network with one gate per (path, output unit), for "
          "subtask composition", citation=CITATION, supports=_linear_only,
          tunable={"dt": (1e-3, 1e-2, 1e-1)})
def make_gated_linear_unitwise(spec, seed, n_paths: int | None = None, dt=0.01, tau_w=0.2, tau_c=0.005, lam=0.025, c_init=0.5,
                               w_init=0.01, dtype="float32", manifold_weight=10.0):
    """Unit-wise gates (P x d_out) with an L2 bound over all gates (paper's subtask-composition defaults;
    ``R = (N + w M2) / (1 + w)``, w = ``manifold_weight``)."""
    return UnitwiseGatedLinear(spec.input_size, spec.output_size, n_paths or spec.n_base_tasks or spec.n_tasks,
                               dt=dt, tau_w=tau_w, tau_c=tau_c, lam=lam, c_init=c_init, w_init=w_init, seed=seed,
                               dtype=dtype, manifold_weight=manifold_weight)
