"""Yang et al.'s leaky RNN (``leaky-rnn``) and a separate one per task (``per-task-rnn``),
with what the rest of the recurrent zoo builds on: the seed-stacked learners
(:class:`StackedRNN`, :class:`StackedTaskRNN`) and the device and seed-stack helpers. The
other recurrent families live beside it: EWC and SI in :mod:`switchbench.models.consolidation`,
gated readouts in :mod:`switchbench.models.gated_rnn`, modular latent primitives in
:mod:`switchbench.models.molap`, the GRU in :mod:`switchbench.models.gru`.

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
paradigm's cue (``cue=True``), part of ``x``. Loss (``loss=``): ``"cross_entropy"``
(default), the paradigm's cross-entropy over unmasked targets, or ``"yang"``, their code's
masked squared error on sigmoid outputs (:func:`yang_objective`); either way ``learn``
returns the paradigm's cross-entropy of the batch, so logs and metrics keep one unit. One
``torch.optim.Adam`` step (lr 1e-3) per batch, each gradient element clipped to [-1, 1]
first (as their code; every model here does so).

**Per-task RNN**: one leaky RNN per task, each with its own Adam; privileged (the runner
calls ``observe_task(task)`` before each step and evaluation), so it never forgets and
never transfers: the upper bound on retention and the lower bound on sharing.

**PyTorch and seeds.** Every model here is a :class:`torch.nn.Module` (``state_dict()``:
its weights and what its next steps depend on, Adam's state and the noise generator;
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

**The engine.** Every model of the leaky family runs its time steps through
:func:`recurrence`: the input projections (and the noise) of all steps in one product before
the loop, only the recurrence in the loop, and backpropagation through time written out
(:class:`_Recurrence`: per step one ``addmm`` with ``W_rec`` (the drive, or the carried
gradient, added in the product) and a few elementwise operations, ``W_rec``'s gradient over
all steps in one product afterwards), so autograd sees a handful of operations instead of a
graph of several per time step. It agrees with autograd through the time loop to float
rounding (tested); ``benchmarks/recurrent_speed.py`` times it.

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
import math

import torch
import torch.nn.functional as F

from switchbench.errors import SwitchbenchError
from switchbench.losses import IGNORE, task_loss
from switchbench.models.batching import stack_like, stack_optimizer, unstack_optimizer_state
from switchbench.models.registry import register
from switchbench.models.state import LearningState

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


#: the training losses of the leaky family (``loss=``): the paradigm's, or Yang et al.'s
LOSSES = ("cross_entropy", "yang")
#: Yang et al.'s targets (task.py, loss_type "lsq"): every output at rest, the fixation output
#: while fixating and the peak of the ring's bump while responding (it rests on the 0.05)
YANG_REST, YANG_ON = 0.05, 0.8
YANG_RING_WIDTH = math.pi / 8     # the bump's angular width (their add_y_loc)
YANG_UNCHECKED_MS = 100           # a trial's first 100 ms and its response's first 100 ms are not checked
YANG_WEIGHTS = (1.0, 5.0, 2.0)    # cost mask before / after the response starts, and the fixation output's factor


def yang_objective(logits: torch.Tensor, y: torch.Tensor, dt: float) -> torch.Tensor:
    """Yang et al.'s training loss (their code: ``task.py``'s targets and ``add_c_mask``,
    ``network.py``'s ``loss_type="lsq"``) for yang19 outputs: class 0 is fixation and classes
    ``1..R`` a ring of response directions ``2 pi (k - 1) / R`` (``R`` = outputs - 1).

    Outputs are ``sigmoid(logits)``; targets are 0.05, plus the fixation output at 0.8 while the
    target is fixation, plus ``0.8 exp(-d^2 / 2 (pi/8)^2)`` on each ring output while the target
    is a direction (``d``: the angular distance to it). Each error is multiplied by a cost
    mask before squaring (as their code): 0 over a trial's first ``int(100 / dt)`` steps and
    over the first ``int(100 / dt)`` steps of its response, 1 before the response, 5 from then
    on, the fixation output's doubled. The mean over outputs and unpadded (step, trial) pairs
    (``y == -100`` is padding; their batches have no padding). ``logits (time, batch, outputs)``,
    ``y (time, batch)``."""
    T, B, n = logits.shape
    if n < 3:
        raise SwitchbenchError(f"loss='yang' needs a fixation output and a ring of >= 2 outputs, got {n} outputs")
    valid = y != IGNORE
    respond = valid & (y > 0)
    t = torch.arange(T, device=y.device)[:, None]
    start = torch.where(valid, t, T).amin(0)          # each trial's first unpadded step
    onset = torch.where(respond, t, T).amin(0)        # its first response step (T: none)
    skip = int(YANG_UNCHECKED_MS / dt)
    before, after, fixation_factor = YANG_WEIGHTS
    cost = torch.where(t < onset, before, after)
    cost = torch.where((t - start < skip) | ((t >= onset) & (t - onset < skip)) | ~valid, 0.0, cost)
    ring = n - 1
    step = 2 * math.pi / ring
    pref = torch.arange(ring, device=logits.device) * step
    d = ((y.clamp(min=1) - 1)[..., None] * step - pref).abs()
    d = torch.minimum(d, 2 * math.pi - d)
    bump = YANG_ON * torch.exp(-0.5 * (d / YANG_RING_WIDTH).square()) * respond[..., None]
    fix = torch.where(valid & (y == 0), YANG_ON, YANG_REST)[..., None]
    target = torch.cat([fix, YANG_REST + bump], dim=-1).to(logits.dtype)
    weight = cost[..., None].repeat(1, 1, n).to(logits.dtype)
    weight[..., 0] *= fixation_factor
    err = (target - torch.sigmoid(logits)) * weight
    return err.square().sum() / (valid.sum() * n).clamp_min(1)


def objective_and_loss(logits: torch.Tensor, y: torch.Tensor, loss: str, dt: float | None):
    """The training objective (``loss``) and the paradigm's cross-entropy of ``logits``: the
    same tensor for ``"cross_entropy"``."""
    if loss == "cross_entropy":
        ce = task_loss(logits, y, "cross_entropy")
        return ce, ce
    with torch.no_grad():                       # only reported: no graph for it
        ce = task_loss(logits, y, "cross_entropy")
    return yang_objective(logits, y, dt), ce


def check_loss(loss: str, dt: float | None) -> None:
    if loss not in LOSSES:
        raise SwitchbenchError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    if loss == "yang" and not (isinstance(dt, (int, float)) and dt > 0):
        raise SwitchbenchError(f"loss='yang' needs a paradigm with a time step in ms (its 100 ms masks), got dt={dt!r}")


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


def adam_settings(opt: torch.optim.Optimizer) -> list:
    """The optimiser's settings (learning rate, betas, ...): learners stacked under one Adam must share them."""
    return [(k, repr(v)) for k, v in sorted(opt.param_groups[0].items()) if k != "params"]


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


# --- the recurrence: a time loop forward, backpropagation through time by hand ----------------

def _run(drive: torch.Tensor, w_rec: torch.Tensor, alpha: float, activation: str, mask, keep: bool):
    """``h_t = mask * leak(h_{t-1}, f(W_rec h_{t-1} + drive_t))`` from ``h_0 = 0``: the hidden
    states ``(..., time, batch, hidden)`` and, if ``keep``, the pre-activations. Each step is
    one product with the drive added in (``addmm``: the same numbers as the product and the
    sum apart) into the outputs and the activation, in :func:`leak`'s arithmetic."""
    f = ACTIVATIONS[activation]
    w_t = w_rec.mT.contiguous()                 # h W^T as a product with a row-major operand (the faster kernel)
    mm = torch.addmm if w_t.dim() == 2 else torch.baddbmm
    hs = torch.empty_like(drive)
    zs = torch.empty_like(drive) if keep else None
    z_buf = None if keep else drive.new_empty(drive.shape[:-3] + drive.shape[-2:])
    h = None
    for t, (drive_t, h_t) in enumerate(zip(drive.unbind(-3), hs.unbind(-3))):
        z = zs.select(-3, t) if keep else z_buf
        if h is None:                           # h_0 = 0: z_1 is the drive
            z.copy_(drive_t)
        else:
            mm(drive_t, h, w_t, out=z)
        if alpha == 1:
            h_t.copy_(f(z))
        elif h is None:                         # h_1 = alpha f(z_1)
            torch.mul(f(z), alpha, out=h_t)
        else:                                   # h + alpha (f(z) - h): leak() to float rounding
            torch.lerp(h, f(z), alpha, out=h_t)
        if mask is not None:
            h_t.mul_(mask)
        h = h_t
    return hs, zs


class _Recurrence(torch.autograd.Function):
    """:func:`recurrence` with its backward pass through time written out: the activation's
    derivative of all steps in one call, then per step one product with ``W_rec`` (the carry
    to the step before) and two elementwise operations; the gradient of ``W_rec`` over all
    steps in one product afterwards."""

    @staticmethod
    def forward(ctx, drive, w_rec, alpha, activation, mask):
        hs, zs = _run(drive, w_rec, alpha, activation, mask, keep=True)
        ctx.save_for_backward(hs, zs, w_rec, mask)
        ctx.alpha, ctx.activation = alpha, activation
        return hs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_hs):
        hs, zs, w_rec, mask = ctx.saved_tensors
        alpha = ctx.alpha
        # dL/dz_t = alpha f'(z_t) (mask dL/dh_t): f' of every step at once (softplus' = sigmoid), over the
        # saved pre-activations (no longer needed; autograd refuses a second backward pass through them)
        grad_z = torch.sigmoid(zs, out=zs) if ctx.activation == "softplus" else torch.gt(zs, 0, out=zs)
        if alpha != 1:
            grad_z.mul_(alpha)
        w = w_rec.contiguous()                  # dz W as a product with a row-major operand
        mm = torch.addmm if w.dim() == 2 else torch.baddbmm
        grad_hs = grad_hs.unbind(-3)
        T = len(grad_hs)
        g = grad_hs[-1].clone()                 # dL/dh_t, through the readout and through h_{t+1}
        for t in range(T - 1, -1, -1):
            if mask is not None:
                g.mul_(mask)
            dz = grad_z.select(-3, t).mul_(g)
            if t:                               # dL/dh_{t-1} = dL/dh_{t-1} (readout) + (1 - alpha) mask g_t + dz_t W
                torch.add(grad_hs[t - 1], g, alpha=1 - alpha, out=g) if alpha != 1 else g.copy_(grad_hs[t - 1])
                mm(g, dz, w, out=g)             # in place: the product accumulated into g, no copy
        grad_w = None
        if ctx.needs_input_grad[1] and T > 1:   # sum_t dz_t^T h_{t-1}, h_0 = 0
            grad_w = grad_z[..., 1:, :, :].flatten(-3, -2).mT @ hs[..., :-1, :, :].flatten(-3, -2)
        elif ctx.needs_input_grad[1]:
            grad_w = torch.zeros_like(w_rec)
        return grad_z, grad_w, None, None, None


def recurrence(drive: torch.Tensor, w_rec: torch.Tensor, alpha: float, activation: str,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """The leaky recurrence ``h_t = mask * ((1 - alpha) h_{t-1} + alpha f(W_rec h_{t-1} + drive_t))``,
    ``h_0 = 0``, of drives ``(time, batch, hidden)`` (or seed-stacked ``(S, time, batch, hidden)``
    with ``W_rec`` ``(S, hidden, hidden)`` and ``mask`` ``(S, 1, hidden)``): the hidden states,
    same shape as ``drive``. Differentiable in ``drive`` and ``W_rec`` by a hand-written
    backward pass (:class:`_Recurrence`; the tests check it against autograd through the loop).
    """
    if torch.is_grad_enabled() and (drive.requires_grad or w_rec.requires_grad):
        return _Recurrence.apply(drive, w_rec, alpha, activation, mask)
    return _run(drive, w_rec, alpha, activation, mask, keep=False)[0]


class LeakyRNN(LearningState, torch.nn.Module):
    """A leaky (rate) RNN with a linear readout at every step, trained by Adam (see the module docstring).

    A :class:`torch.nn.Module` (weights, Adam state and noise generator in ``state_dict()``; ``.to(device)`` also moves the Adam
    state and gives the noise a generator on that device, seeded from this one), but not called
    as one: ``predict``, ``learn`` and ``record_hidden`` are the learner. ``parameters()`` are
    the trained tensors. :meth:`stack` makes S seeds one seed-batched learner
    (:class:`StackedRNN`)."""

    def __init__(self, d_in: int, d_out: int, *, hidden: int, alpha: float, sigma_rec: float, activation: str,
                 lr: float, seed: int, sigma_x: float = 0.0, w_rec_gain: float = W_REC_GAIN,
                 loss: str = "cross_entropy", dt: float | None = None):
        super().__init__()
        check_loss(loss, dt)
        self.loss, self.dt = loss, dt
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
        x = x.float()
        if noise and self.sigma_x > 0:
            x = torch.randn(x.shape, generator=self.gen, device=self.gen.device).mul_(
                math.sqrt(2 / self.alpha) * self.sigma_x).add_(x)
        drive = torch.addmm(self.b, x.flatten(0, -2), w_in.T)     # the input part, all steps at once
        if noise and self.sigma_rec > 0:
            scale = math.sqrt(2 / self.alpha) * self.sigma_rec
            drive.add_(torch.randn(drive.shape, generator=self.gen, device=self.gen.device).mul_(scale))
        drive = drive.view(*x.shape[:-1], -1)
        return recurrence(drive, self.w_rec, self.alpha, self.activation, self.unit_mask)

    def readout(self, hs: torch.Tensor) -> torch.Tensor:
        return hs @ self.w_out.T + self.b_out

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.forward(x, noise=False)[0]

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.enable_grad():
            logits, _ = self.forward(x, noise=True)
            objective, loss = objective_and_loss(logits, y, self.loss, self.dt)
            self.opt.zero_grad(set_to_none=True)
            objective.backward()
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
        self.opt = stack_optimizer([n.opt for n in self.nets], self.params)
        masks = [n.unit_mask for n in self.nets]
        self.unit_mask = None if all(m is None for m in masks) else \
            torch.stack([torch.ones_like(first.b) if m is None else m for m in masks]).detach()

    @staticmethod
    def _config(net) -> tuple:
        return (net.alpha, net.sigma_rec, net.sigma_x, net.activation, [tuple(p.shape) for p in net.params],
                adam_settings(net.opt), net.loss, net.dt)

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
        S, T, B, _ = x.shape
        gens = self._gens()
        x = x.float()
        if noise and self.sigma_x > 0:
            x = seed_noise(gens, x.shape[1:], math.sqrt(2 / self.alpha) * self.sigma_x).add_(x)
        drive = torch.baddbmm(self.b[:, None], x.reshape(S, T * B, -1), w_in.mT)
        if noise and self.sigma_rec > 0:
            drive.add_(seed_noise(gens, drive.shape[1:], math.sqrt(2 / self.alpha) * self.sigma_rec))
        drive = drive.view(S, T, B, -1)
        mask = None if self.unit_mask is None else self.unit_mask[:, None]
        return recurrence(drive, self.w_rec, self.alpha, self.activation, mask)

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
            objectives, losses = seed_losses(self.logits(x, noise=True), y, self.nets[0].loss, self.nets[0].dt)
            self.opt.zero_grad(set_to_none=True)
            objectives.sum().backward()
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
            unstack_optimizer_state(self.opt, s, net.opt)
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


def seed_losses(logits: torch.Tensor, y: torch.Tensor, loss: str = "cross_entropy",
                dt: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each seed's training objective and cross-entropy ``(S,)`` of ``logits`` ``(S, ..., classes)``
    against ``y`` ``(S, ...)`` (:func:`objective_and_loss`), computed per seed exactly as a
    single-seed learner computes them."""
    pairs = [objective_and_loss(logits[s], y[s], loss, dt) for s in range(len(logits))]
    return torch.stack([o for o, _ in pairs]), torch.stack([c for _, c in pairs])


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
            m = self.models[0]
            objectives, losses = seed_losses(self.logits(x, noise=True), y, m.loss, m.dt)
            for P in self.params:
                P.grad = None
            objectives.sum().backward()
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


class PerTaskRNN(LearningState, torch.nn.Module):
    """One :class:`LeakyRNN` per task (``nets``, a module list); ``observe_task`` picks the active one."""

    learning_state = ("task",)

    def __init__(self, n_tasks: int, seed: int, **kw):
        super().__init__()
        seeds = torch.randint(0, 2 ** 62, (n_tasks,), generator=torch.Generator().manual_seed(int(seed))).tolist()
        self.nets = torch.nn.ModuleList([LeakyRNN(**kw, seed=s) for s in seeds])
        self.task = 0

    loss = property(lambda self: self.nets[0].loss)
    dt = property(lambda self: self.nets[0].dt)

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
                   activation="softplus", lr=1e-3, loss="cross_entropy"):
    """Yang et al.'s leaky RNN; the rule input is the paradigm's cue; ``loss="yang"``: their squared error."""
    return LeakyRNN(spec.input_size, spec.output_size, seed=seed, loss=loss, dt=spec.dt,
                    **_leaky(spec, hidden, alpha, tau, sigma_rec, sigma_x, w_rec_gain, activation, lr))


@register("per-task-rnn", description="A separate leaky RNN per task (privileged: told the task)", citation=YANG19,
          privileged=True, kinds=("sequence",), supports=_classification_sequences, tuning=TUNING,
          tunable={"lr": LR_GRID})
def make_per_task_rnn(spec, seed, hidden=256, alpha: float | None = None, tau=TAU, sigma_rec=0.05, sigma_x=0.01,
                      w_rec_gain=W_REC_GAIN, activation="softplus", lr=1e-3, loss="cross_entropy"):
    """One leaky RNN per task, each with its own Adam; the runner tells it the task."""
    return PerTaskRNN(spec.n_tasks, seed, d_in=spec.input_size, d_out=spec.output_size, loss=loss, dt=spec.dt,
                      **_leaky(spec, hidden, alpha, tau, sigma_rec, sigma_x, w_rec_gain, activation, lr))
