"""The recurrent model zoo for cognitive (sequence) paradigms: Yang et al.'s leaky RNN
(``leaky-rnn``), a separate one per task (``per-task-rnn``), the leaky RNN with
continual-learning regularisers at task boundaries (``leaky-rnn-ewc``, ``leaky-rnn-si``;
:class:`ConsolidatedRNN`), with gated readouts (``gated-rnn``; :class:`GatedRNN`), and
modular latent primitives (``modular-primitives``; :class:`ModularPrimitives`).

**Leaky RNN** (Yang, Joglekar, Song, Newsome & Wang 2019, Nat. Neurosci.), discretised
with ``alpha = dt / tau`` (default 0.2: dt = 20 ms, tau = 100 ms)::

    h_t = (1 - alpha) h_{t-1} + alpha f(W_rec h_{t-1} + W_in x_t + b + sqrt(2 / alpha) sigma_rec xi_t)
    logits_t = W_out h_t + b_out,            h_0 = 0,  xi_t ~ N(0, I)

``f`` softplus (default, as the paper) or relu; ``hidden = 256`` units (smaller for quick
runs); recurrent noise ``sigma_rec = 0.05`` while learning; ``predict`` runs without noise
(and so has no side effects); initialisation after the paper's code defaults (as read
here): ``W_rec`` random orthogonal, ``W_in ~ N(0, 1/n_in)``, ``W_out ~ N(0, 1/hidden)``, biases 0, all from the
model's own ``torch.Generator`` seeded by the run. The rule input is the paradigm's cue
(``cue=True``), part of ``x``. Loss: the paradigm's cross-entropy over unmasked targets
(the paper used a masked squared error on sigmoid outputs); one ``torch.optim.Adam``
step (lr 1e-3) per batch, each gradient element clipped to [-1, 1] first (as the paper's
code; every model here does so).

**Per-task RNN**: one leaky RNN per task, each with its own Adam; privileged (the runner
calls ``observe_task(task)`` before each step and evaluation), so it never forgets and
never transfers: the upper bound on retention and the lower bound on sharing.

>>> import torch
>>> from switchbench import models
>>> from switchbench.paradigms.base import TaskSpec
>>> spec = TaskSpec("toy", 5, 3, 2, "cross_entropy", True, (1.0, 1.0), "blocked", 4, kind="sequence")
>>> net = models.get("leaky-rnn").build(spec, seed=0, hidden=8)
>>> net.predict(torch.zeros(6, 4, 5)).shape
torch.Size([6, 4, 3])
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from switchbench.errors import SwitchbenchError
from switchbench.losses import task_loss
from switchbench.models.registry import register

YANG19 = ("Yang, Joglekar, Song, Newsome & Wang (2019), Task representations in neural networks trained to "
          "perform many cognitive tasks, Nat. Neurosci. 22:297")
ACTIVATIONS = {"softplus": F.softplus, "relu": torch.relu}
GRAD_CLIP = 1.0          # Yang et al.'s code clips every gradient element to [-1, 1] before Adam


def clip_and_step(opt: torch.optim.Optimizer, params) -> None:
    """One optimiser step after clipping each gradient element to ``[-GRAD_CLIP, GRAD_CLIP]``."""
    torch.nn.utils.clip_grad_value_([p for p in params if p.grad is not None], GRAD_CLIP)
    opt.step()


class LeakyRNN:
    """A leaky (rate) RNN with a linear readout at every step, trained by Adam (see the module docstring)."""

    def __init__(self, d_in: int, d_out: int, *, hidden: int, alpha: float, sigma_rec: float, activation: str,
                 lr: float, seed: int):
        if not (isinstance(hidden, int) and hidden > 0):
            raise SwitchbenchError(f"hidden must be a positive integer, got {hidden!r}")
        if not 0 < alpha <= 1:
            raise SwitchbenchError(f"alpha = dt / tau must lie in (0, 1], got {alpha!r}")
        if not (sigma_rec >= 0 and lr > 0):
            raise SwitchbenchError(f"sigma_rec must be >= 0 and lr > 0, got {sigma_rec!r}, {lr!r}")
        if activation not in ACTIVATIONS:
            raise SwitchbenchError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        self.alpha, self.sigma_rec, self.activation = float(alpha), float(sigma_rec), activation
        self.gen = torch.Generator().manual_seed(int(seed))
        g = self.gen
        q, r = torch.linalg.qr(torch.randn(hidden, hidden, generator=g, dtype=torch.float64))
        w_rec = (q * torch.sign(torch.diagonal(r))).float()          # a random orthogonal matrix
        self.w_in = torch.nn.Parameter(torch.randn(hidden, d_in, generator=g) / math.sqrt(d_in))
        self.w_rec = torch.nn.Parameter(w_rec)
        self.b = torch.nn.Parameter(torch.zeros(hidden))
        self.w_out = torch.nn.Parameter(torch.randn(d_out, hidden, generator=g) / math.sqrt(hidden))
        self.b_out = torch.nn.Parameter(torch.zeros(d_out))
        self.params = [self.w_in, self.w_rec, self.b, self.w_out, self.b_out]
        self.opt = torch.optim.Adam(self.params, lr=lr)
        self.unit_mask: torch.Tensor | None = None     # robustness: silenced units (0) stay at 0
        self.module_size: int | None = None            # set by modular models: units per module

    def parameters(self):
        return list(self.params)

    def perturb(self, kind: str, level: float, gen: torch.Generator) -> bool:
        """Damage this network in place (call it on a copy; :mod:`switchbench.benchmark.metrics`,
        robustness); False where ``kind`` does not apply to it.

        - ``weight_noise``: every recurrent weight times ``1 + level * xi``, ``xi ~ N(0, 1)``
          (relative noise; absent synapses stay absent);
        - ``unit_ablation``: a random ``level`` fraction of the hidden units silenced (held at 0);
        - ``module_silencing``: ``level`` random modules silenced (modular networks only).
        """
        hidden = self.w_rec.shape[0]
        mask = torch.ones(hidden) if self.unit_mask is None else self.unit_mask.clone()
        if kind == "weight_noise":
            with torch.no_grad():
                self.w_rec.mul_(1 + level * torch.randn(self.w_rec.shape, generator=gen))
            return True
        if kind == "unit_ablation":
            mask[torch.randperm(hidden, generator=gen)[:round(level * hidden)]] = 0
        elif kind == "module_silencing" and self.module_size:
            for m in torch.randperm(hidden // self.module_size, generator=gen)[:int(level)].tolist():
                mask[m * self.module_size:(m + 1) * self.module_size] = 0
        else:
            return False
        self.unit_mask = mask
        return True

    def forward(self, x: torch.Tensor, noise: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and hidden states ``(time, batch, hidden)`` for inputs ``(time, batch, features)``."""
        hs = self.hidden_states(x, self.w_in, noise)
        return self.readout(hs), hs

    def hidden_states(self, x: torch.Tensor, w_in: torch.Tensor, noise: bool) -> torch.Tensor:
        """The hidden states ``(time, batch, hidden)`` driven through input weights ``w_in``."""
        f = ACTIVATIONS[self.activation]
        x = x.float()
        drive = x @ w_in.T + self.b                                # the input part, all steps at once
        if noise and self.sigma_rec > 0:
            scale = math.sqrt(2 / self.alpha) * self.sigma_rec
            drive = drive + scale * torch.randn(drive.shape, generator=self.gen)
        h = x.new_zeros(x.shape[1], self.w_rec.shape[0])
        hs = []
        for t in range(x.shape[0]):
            h = (1 - self.alpha) * h + self.alpha * f(h @ self.w_rec.T + drive[t])
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


class PerTaskRNN:
    """One :class:`LeakyRNN` per task; ``observe_task`` picks the active one."""

    def __init__(self, n_tasks: int, seed: int, **kw):
        seeds = torch.randint(0, 2 ** 62, (n_tasks,), generator=torch.Generator().manual_seed(int(seed))).tolist()
        self.nets = [LeakyRNN(**kw, seed=s) for s in seeds]
        self.task = 0

    def observe_task(self, task: int) -> None:
        if not 0 <= task < len(self.nets):
            raise SwitchbenchError(f"task {task} out of range 0..{len(self.nets) - 1}")
        self.task = int(task)

    def parameters(self):
        return [p for net in self.nets for p in net.parameters()]

    def perturb(self, kind: str, level: float, gen: torch.Generator) -> bool:
        return all([net.perturb(kind, level, gen) for net in self.nets])

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets[self.task].predict(x)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return self.nets[self.task].learn(x, y)


def _classification_sequences(spec):
    if not spec.sequence or spec.loss != "cross_entropy":
        return "needs sequence paradigms with classification targets ((time, batch, features) inputs, cross_entropy)"
    return None


#: the learning rate searched by ``switchbench tune``: the published Adam rate and a decade either side
LR_GRID = (1e-4, 1e-3, 1e-2)
TUNING = "defaults as published (alpha 0.2, sigma_rec 0.05, softplus, Adam 1e-3); hidden 256; no per-paradigm tuning"


@register("leaky-rnn", description="Yang et al. 2019: a leaky RNN (alpha 0.2, recurrent noise), readout per step, Adam",
          citation=YANG19, kinds=("sequence",), supports=_classification_sequences, tuning=TUNING,
          tunable={"lr": LR_GRID})
def make_leaky_rnn(spec, seed, hidden=256, alpha=0.2, sigma_rec=0.05, activation="softplus", lr=1e-3):
    """Yang et al.'s leaky RNN; the rule input is the paradigm's cue."""
    return LeakyRNN(spec.input_size, spec.output_size, hidden=hidden, alpha=alpha, sigma_rec=sigma_rec,
                    activation=activation, lr=lr, seed=seed)


@register("per-task-rnn", description="A separate leaky RNN per task (privileged: told the task)", citation=YANG19,
          privileged=True, kinds=("sequence",), supports=_classification_sequences, tuning=TUNING,
          tunable={"lr": LR_GRID})
def make_per_task_rnn(spec, seed, hidden=256, alpha=0.2, sigma_rec=0.05, activation="softplus", lr=1e-3):
    """One leaky RNN per task, each with its own Adam; the runner tells it the task."""
    return PerTaskRNN(spec.n_tasks, seed, d_in=spec.input_size, d_out=spec.output_size, hidden=hidden, alpha=alpha,
                      sigma_rec=sigma_rec, activation=activation, lr=lr)


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
        w = torch.randn(n_paths, d_out, hidden, generator=self.gen) / math.sqrt(hidden)
        self.w_out = torch.nn.Parameter(w)
        self.b_out = torch.nn.Parameter(torch.zeros(n_paths, d_out))
        self.params = [self.w_in, self.w_rec, self.b, self.w_out, self.b_out]
        self.opt = torch.optim.Adam(self.params, lr=self.opt.defaults["lr"])
        self.c = torch.full((n_paths,), 1.0 / n_paths)
        self.lr_c, self.lam = float(lr_c), float(lam)

    def parameters(self):
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


@register("leaky-rnn-ewc", description="Leaky RNN with elastic weight consolidation at task boundaries (privileged)",
          citation=EWC, privileged=True, kinds=("sequence",), supports=_classification_sequences,
          tuning="leaky-rnn defaults; lam 100, Fisher from the last 4 batches: untuned",
          tunable={"lr": LR_GRID})
def make_leaky_rnn_ewc(spec, seed, hidden=256, alpha=0.2, sigma_rec=0.05, activation="softplus", lr=1e-3,
                       lam=100.0, fisher_batches=4):
    """Yang et al.'s leaky RNN with EWC (Kirkpatrick et al. 2017); told the task for its boundaries."""
    return ConsolidatedRNN(spec.input_size, spec.output_size, hidden=hidden, alpha=alpha, sigma_rec=sigma_rec,
                           activation=activation, lr=lr, seed=seed, method="ewc", strength=lam,
                           fisher_batches=fisher_batches)


@register("leaky-rnn-si", description="Leaky RNN with synaptic intelligence (c, xi) at task boundaries (privileged)",
          citation=SI, privileged=True, kinds=("sequence",), supports=_classification_sequences,
          tuning="leaky-rnn defaults; c 1.0, xi 0.01: untuned",
          tunable={"lr": LR_GRID})
def make_leaky_rnn_si(spec, seed, hidden=256, alpha=0.2, sigma_rec=0.05, activation="softplus", lr=1e-3,
                      c=1.0, xi=0.01):
    """Yang et al.'s leaky RNN with synaptic intelligence (Zenke et al. 2017); told the task for its boundaries."""
    return ConsolidatedRNN(spec.input_size, spec.output_size, hidden=hidden, alpha=alpha, sigma_rec=sigma_rec,
                           activation=activation, lr=lr, seed=seed, method="si", strength=c, xi=xi)


@register("gated-rnn", description="Leaky RNN with P readouts mixed by fast non-negative bounded gates",
          citation=YANG19, kinds=("sequence",), supports=_classification_sequences,
          tuning="leaky-rnn defaults; gates: lr_c 0.2, lam 0.1 (gated-network paper), untuned",
          tunable={"lr": LR_GRID})
def make_gated_rnn(spec, seed, hidden=256, alpha=0.2, sigma_rec=0.05, activation="softplus", lr=1e-3,
                   n_paths=None, lr_c=0.2, lam=0.1):
    """Yang et al.'s leaky RNN with gated readouts (one per task unless ``n_paths``)."""
    return GatedRNN(spec.input_size, spec.output_size, hidden=hidden, alpha=alpha, sigma_rec=sigma_rec,
                    activation=activation, lr=lr, seed=seed, n_paths=n_paths or spec.n_tasks, lr_c=lr_c, lam=lam)


# --- modular latent primitives --------------------------------------------------------------

MOLAP = ("Marton, Lajoie & Rajan, Efficient and robust multi-task learning in the brain with modular latent "
         "primitives (arXiv preprint)")


def _neurogym_corpus(env_ids, dt, n: int, seed: int, width: int):
    """``n`` end-aligned trials per neurogym task: inputs ``(T, n, width)`` (zero-padded), targets ``(T, n)``.

    Made by :func:`switchbench.tasksets.generate_trials` (seeded through the task's own
    ``seed()``: neurogym 2.3.1 ignores ``reset(seed=)``), task ``i`` from ``seed + 7919 i``."""
    from switchbench.tasksets import generate_trials, pack_trials

    out = []
    for i, env_id in enumerate(env_ids):
        pool = pack_trials(generate_trials(env_id, {"dt": dt} if dt else {}, int(seed) + 7919 * i, n))
        (_, T, F), x = pool["x"].shape, pool["x"].transpose(1, 0, 2)
        if F > width:
            raise SwitchbenchError(f"modular-primitives: corpus task {env_id!r} has {F} inputs, more than the "
                                   f"paradigm's {width}")
        padded = torch.zeros(T, n, width)
        padded[:, :, :F] = torch.from_numpy(x)
        out.append((padded, torch.from_numpy(pool["y"].T.copy())))
    return out


def corpus_ids(corpus, own: list[str], hold_out: bool) -> list[str]:
    """The neurogym ids of a pretraining corpus: ``corpus`` (a named set, one id or a list;
    None: ``own``, the paradigm's tasks), less ``own`` when ``hold_out``; never empty."""
    from switchbench.tasksets import NAMED_SETS

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
                               f"{own} (hold_out={hold_out})")
    return ids


class ModularPrimitives:
    """MoLaP-style learner: frozen pretrained recurrent modules, per-task input and output weights.

    Design assumptions (the paper's method as read here; each one a choice of this
    implementation):

    1. **Modules**: ``n_modules`` leaky RNNs (the ``leaky-rnn`` update, ``module_size`` units
       each) with no recurrent connections between them (block-diagonal ``W_rec``): the
       structural bias that keeps the primitives separate. Their independence is structural
       only; the paper's objective for "independent and maximally informative" modules is
       not reproduced.
    2. **Pretraining on the corpus statistics**: before the curriculum, the modules learn
       (Adam, ``pretrain_lr``) on a corpus of trials of *all* the paradigm's tasks, drawn at
       random, ``pretrain_steps`` batches of ``pretrain_batch`` trials, with per-task input
       and output weights learned alongside. The corpus comes straight from neurogym:
       ``corpus`` (a named set of :mod:`switchbench.paradigms.cognitive`, e.g. ``"molap9"``,
       or a list of neurogym ids; default: the paradigm's own tasks, whose names are neurogym
       ids on ``CognitiveSwitch-v0``), without the paradigm's tasks when ``hold_out=True`` (so
       a task can be learned that the modules never saw), made with neurogym's defaults
       except ``corpus_dt`` (match the paradigm's ``dt``), ``corpus_trials`` trials per task,
       seeded by the model seed. Pretraining is part of building the model (its cost is in
       no step's wall time).
    3. **Frozen**: after pretraining the modules' recurrent weights and biases never change;
       the per-task input and output weights are re-initialised, and each task then learns
       only its own (``W_in^k``, ``W_out^k``, ``b_out^k``; Adam, ``lr``) on the curriculum.
       Privileged: the runner tells it the task. So it cannot forget, and "parameters changed
       per new task" is the I/O weights alone.
    4. The cue columns of the input, when present, are constant within a task and act as a
       bias of its input weights. Recurrent noise ``sigma_rec`` while learning, none in
       ``predict``.
    """

    def __init__(self, spec, seed: int, *, n_modules: int, module_size: int, alpha: float, sigma_rec: float,
                 activation: str, lr: float, pretrain_steps: int, pretrain_batch: int, pretrain_lr: float,
                 corpus_dt, corpus_trials: int, corpus=None, hold_out: bool = False):
        for name, v in (("n_modules", n_modules), ("module_size", module_size), ("pretrain_batch", pretrain_batch),
                        ("corpus_trials", corpus_trials)):
            if not (isinstance(v, int) and v > 0):
                raise SwitchbenchError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(pretrain_steps, int) and pretrain_steps >= 0):
            raise SwitchbenchError(f"pretrain_steps must be an integer >= 0, got {pretrain_steps!r}")
        hidden = n_modules * module_size
        self.rnn = LeakyRNN(spec.input_size, spec.output_size, hidden=hidden, alpha=alpha, sigma_rec=sigma_rec,
                            activation=activation, lr=pretrain_lr, seed=seed)
        blocks = torch.block_diag(*[torch.ones(module_size, module_size)] * n_modules)
        self.block_mask = blocks
        self.rnn.module_size = module_size
        with torch.no_grad():
            self.rnn.w_rec.mul_(blocks)
            for m in range(n_modules):                 # an orthogonal matrix per module
                sl = slice(m * module_size, (m + 1) * module_size)
                q, r = torch.linalg.qr(torch.randn(module_size, module_size, generator=self.rnn.gen,
                                                   dtype=torch.float64))
                self.rnn.w_rec[sl, sl] = (q * torch.sign(torch.diagonal(r))).float()
        self.n_tasks, self.d_in, self.d_out, self.hidden = spec.n_tasks, spec.input_size, spec.output_size, hidden
        self.task = 0
        own = [f"{n}-v0" for n in spec.task_names]
        self.corpus = corpus_ids(corpus, own, hold_out)
        if pretrain_steps:
            data = _neurogym_corpus(self.corpus, corpus_dt, corpus_trials, seed, spec.input_size)
            self.io = self._new_io(len(data))
            self._pretrain(data, pretrain_steps, pretrain_batch, pretrain_lr)
        self.io = self._new_io(self.n_tasks)
        for p in (self.rnn.w_rec, self.rnn.b):
            p.requires_grad_(False)
        self.opt = torch.optim.Adam([p for io in self.io for p in io], lr=lr)

    def _new_io(self, n: int) -> list[list[torch.nn.Parameter]]:
        g = self.rnn.gen
        return [[torch.nn.Parameter(torch.randn(self.hidden, self.d_in, generator=g) / math.sqrt(self.d_in)),
                 torch.nn.Parameter(torch.randn(self.d_out, self.hidden, generator=g) / math.sqrt(self.hidden)),
                 torch.nn.Parameter(torch.zeros(self.d_out))] for _ in range(n)]

    def _forward(self, x: torch.Tensor, task: int, noise: bool) -> torch.Tensor:
        w_in, w_out, b_out = self.io[task]
        return self.rnn.hidden_states(x, w_in, noise) @ w_out.T + b_out

    def _pretrain(self, corpus, steps: int, batch: int, lr: float) -> None:
        params = [self.rnn.w_rec, self.rnn.b] + [p for io in self.io for p in io]
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(steps):
            k = int(torch.randint(0, len(corpus), (1,), generator=self.rnn.gen))
            x, y = corpus[k]
            idx = torch.randint(0, x.shape[1], (batch,), generator=self.rnn.gen)
            with torch.enable_grad():
                loss = task_loss(self._forward(x[:, idx], k, noise=True), y[:, idx], "cross_entropy")
                opt.zero_grad(set_to_none=True)
                loss.backward()
            self.rnn.w_rec.grad.mul_(self.block_mask)      # modules stay separate
            clip_and_step(opt, params)

    def observe_task(self, task: int) -> None:
        if not 0 <= task < self.n_tasks:
            raise SwitchbenchError(f"task {task} out of range 0..{self.n_tasks - 1}")
        self.task = int(task)

    def parameters(self):
        """The trainable parameters: every task's input and output weights (modules are frozen)."""
        return [p for io in self.io for p in io]

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


def _neurogym_tasks(spec):
    reason = _classification_sequences(spec)
    if reason:
        return reason
    if spec.name != "switchbench/CognitiveSwitch-v0":
        return "modular-primitives pretrains on the neurogym tasks of CognitiveSwitch-v0; it cannot run on " + spec.name
    return None


@register("modular-primitives", description="MoLaP: frozen recurrent modules pretrained on the task corpus; "
          "each task learns only its input/output weights (privileged)", citation=MOLAP, privileged=True,
          kinds=("sequence",), supports=_neurogym_tasks,
          tuning="module update as leaky-rnn; 3 modules x 32 units, 2000 pretraining batches of 32: untuned",
          tunable={"lr": LR_GRID})
def make_modular_primitives(spec, seed, n_modules=3, module_size=32, alpha=0.2, sigma_rec=0.05, activation="softplus",
                            lr=1e-3, pretrain_steps=2000, pretrain_batch=32, pretrain_lr=1e-3, corpus_dt=None,
                            corpus_trials=256, corpus=None, hold_out=False):
    """Modular latent primitives (Marton, Lajoie & Rajan): see :class:`ModularPrimitives` for its assumptions."""
    return ModularPrimitives(spec, seed, n_modules=n_modules, module_size=module_size, alpha=alpha,
                             sigma_rec=sigma_rec, activation=activation, lr=lr, pretrain_steps=pretrain_steps,
                             pretrain_batch=pretrain_batch, pretrain_lr=pretrain_lr, corpus_dt=corpus_dt,
                             corpus_trials=corpus_trials, corpus=corpus, hold_out=hold_out)
