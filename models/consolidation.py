"""The leaky RNN with continual-learning regularisers at task boundaries: elastic weight
consolidation (``leaky-rnn-ewc``) and synaptic intelligence (``leaky-rnn-si``), both
:class:`ConsolidatedRNN` (see its docstring), with their seed-stacked twin."""
from __future__ import annotations

import torch

from switchbench.errors import SwitchbenchError
from switchbench.models.leaky_rnn import (LR_GRID, TAU, W_REC_GAIN, LeakyRNN, StackedRNN, _classification_sequences,
                                          _leaky, clip_and_step, objective_and_loss, seed_losses)
from switchbench.models.registry import register

EWC = "Kirkpatrick et al. (2017), Overcoming catastrophic forgetting in neural networks, PNAS 114:3521"
SI = "Zenke, Poole & Ganguli (2017), Continual learning through synaptic intelligence, ICML"
#: the strengths' tuning grids (a decade apart, the defaults among them): EWC's lambda around
#: the 100 used untuned before; SI's c around the c 0.1 and 1 (xi 0.01) of Yang et al.'s
#: continual-learning runs (their code's job list)
LAM_GRID = (10.0, 100.0, 1000.0, 10000.0)
C_GRID = (0.01, 0.1, 1.0, 10.0)


class ConsolidatedRNN(LeakyRNN):
    """A leaky RNN whose loss adds a quadratic anchor to earlier tasks' weights:

    - ``method="ewc"``: ``L + lam/2 sum_k sum_i F_k,i (theta_i - theta*_k,i)^2``, one anchor per
      earlier task k (replaced when k is trained again), ``F_k`` the diagonal empirical Fisher;
    - ``method="si"``: ``L + c sum_i Omega_i (theta_i - theta*_i)^2`` with, accumulated at each
      task boundary, ``Omega_i <- max(0, Omega_i + omega_i / (Delta_i^2 + xi))``,
      ``omega_i = -sum_t g_i,t dtheta_i,t`` the path integral of the *task* loss gradient times
      the update since the last boundary, ``Delta_i`` the weight change over the task,
      ``theta*`` the weights at the boundary. The clip at 0 is Yang et al.'s (2019; their code's
      sequential training keeps every importance non-negative): with Adam and noise a path
      integral can come out negative, and a negative importance would push a weight *away*
      from its anchor.

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
    #: the state of the next steps beyond the weights (saved by ``state_dict``, :class:`~switchbench.models.state.LearningState`)
    learning_state = LeakyRNN.learning_state + ("task", "last", "anchors", "recent", "omega", "Omega", "start", "star")

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
                    objective, _ = objective_and_loss(self.forward(xs, noise=False)[0], ys, self.loss, self.dt)
                    grads = torch.autograd.grad(objective, self.params, allow_unused=True)
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
                O.add_(w / ((t - s).square() + self.xi)).clamp_(min=0)
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
            objective, loss = objective_and_loss(logits, y, self.loss, self.dt)
            self.opt.zero_grad(set_to_none=True)
            objective.backward()
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
            O[s] = (O[s] + w[s] / ((t - st[s]).square() + self.xi)).clamp(min=0)
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
            objectives, losses = seed_losses(self.logits(x, noise=True), y, self.nets[0].loss, self.nets[0].dt)
            self.opt.zero_grad(set_to_none=True)
            objectives.sum().backward()
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



@register("leaky-rnn-ewc", description="Leaky RNN with elastic weight consolidation at task boundaries (privileged)",
          citation=EWC, privileged=True, kinds=("sequence",), supports=_classification_sequences,
          tuning="leaky-rnn defaults; lam 100 and Fisher from the last 4 batches by default; lam tunable",
          tunable={"lr": LR_GRID, "lam": LAM_GRID})
def make_leaky_rnn_ewc(spec, seed, hidden=256, alpha: float | None = None, tau=TAU, sigma_rec=0.05, sigma_x=0.01,
                       w_rec_gain=W_REC_GAIN, activation="softplus", lr=1e-3, lam=100.0, fisher_batches=4,
                       loss="cross_entropy"):
    """Yang et al.'s leaky RNN with EWC (Kirkpatrick et al. 2017); told the task for its boundaries.
    The Fisher information is of the training loss (``loss``)."""
    return ConsolidatedRNN(spec.input_size, spec.output_size, seed=seed, method="ewc", strength=lam,
                           fisher_batches=fisher_batches, loss=loss, dt=spec.dt,
                           **_leaky(spec, hidden, alpha, tau, sigma_rec, sigma_x, w_rec_gain, activation, lr))


@register("leaky-rnn-si", description="Leaky RNN with synaptic intelligence (c, xi) at task boundaries (privileged)",
          citation=SI, privileged=True, kinds=("sequence",), supports=_classification_sequences,
          tuning="leaky-rnn defaults; c 1.0 and xi 0.01 by default; c tunable",
          tunable={"lr": LR_GRID, "c": C_GRID})
def make_leaky_rnn_si(spec, seed, hidden=256, alpha: float | None = None, tau=TAU, sigma_rec=0.05, sigma_x=0.01,
                      w_rec_gain=W_REC_GAIN, activation="softplus", lr=1e-3, c=1.0, xi=0.01, loss="cross_entropy"):
    """Yang et al.'s leaky RNN with synaptic intelligence (Zenke et al. 2017); told the task for its boundaries."""
    return ConsolidatedRNN(spec.input_size, spec.output_size, seed=seed, method="si", strength=c, xi=xi,
                           loss=loss, dt=spec.dt,
                           **_leaky(spec, hidden, alpha, tau, sigma_rec, sigma_x, w_rec_gain, activation, lr))
