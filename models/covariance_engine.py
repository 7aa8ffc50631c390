"""The covariance engine of the linear family: S seeds of one linear configuration as one
tensor program, with exact held-out losses (``sampler="wishart"``, a runner option).

For learners whose class declares ``covariance_form`` (the gated linear networks and the
one-layer linear map) on a paradigm with linear teachers
(:meth:`~switchbench.paradigms.base.SwitchEnv.ground_truth`) and no cue, with
``W_eff = sum_p c_p W_p`` (``linear``: P = 1, c = 1), a batch ``X`` (B x d_in) with targets
``Y = X W*^T`` enters the loss and every gradient only through its empirical covariance
``Sigma = X^T X / B``. With ``D = W_eff - W*`` and ``G = D Sigma``::

    loss     = 1/2 mean_b |W_eff x_b - y_b|^2 = 1/2 <G, D>_F        (logged before learning)
    dL/dW_p  = c_p G                dL/dc_p = <W_p, G>_F  (+ lam dR/dc, as the model)
    W_p <- W_p - (dt/tau_w) c_p G   c <- c - (dt/tau_c) dL/dc      (both from the old c, W)

so one step of all S seeds is a few batched products of (S, d_out, d_in) and
(S, d_in, d_in) arrays. The step loop runs in numpy (small arrays: less overhead per
operation than torch); the covariances are drawn in chunks of steps beforehand, in threads
(the adaptation batches of a block while it trains).

``B Sigma ~ Wishart(B, I)`` is drawn directly by the Bartlett decomposition
``B Sigma = A A^T``, ``A`` lower triangular, ``A_ii = sqrt(chi2(B - i))`` (i = 0..d-1),
``A_ij ~ N(0, 1)`` below the diagonal: d(d-1)/2 normals and d chi-squares per step instead
of B d normals, exactly the same distribution (for B < d: X drawn and ``X^T X / B``).
The stream is ``default_rng(stream seed)``, the adaptation batches
``default_rng((eval seed, 1 + block, task))``, with the run loop's seeds. Held-out losses
are the exact expectation over ``x ~ N(0, I)``: ``1/2 ||W_eff - W*_k||_F^2`` (``Sigma = I``),
not a sampled held-out set; so its numbers differ from the run loop's, and agree in
distribution. (The run loop itself is this engine's per-sample reference: same seeds,
the paradigm's own samples.)

The sampler is part of each run's configuration (``config["runner"]["sampler"]``), so its
runs never share cache entries with the run loop's. Arithmetic is in the model's ``dtype``
(float32 by default; ``dtype="float64"`` works). As in the run loop, the privileged
``oracle-gates`` get the gates its ``observe_task`` sets before each step (so its gates
probed at a block end are those the evaluation left: the last task's). The metric
``wall_ms_per_step`` is the batch's training time (covariances and updates, evaluation
excluded) per step and seed.

The interface: :func:`decline_reason` (can it run this learner on this paradigm?) and
:func:`train` (single-seed learners, the paradigm's teachers and curricula, the seeds'
streams -> arrays, :class:`Trained`); the run loop's :func:`~switchbench.benchmark.loop.run_wishart`
builds the learners, calls them and makes the arrays a :class:`~switchbench.benchmark.storage.RunResult`
per seed, scored as every run is.

>>> from switchbench.benchmark.runner import run
>>> res = run("blocked-linear", "gated-linear", seeds=[0, 1], sampler="wishart", n_blocks=2, block_size=20,
...           cache=False, progress=False)
>>> [r.config["seed"] for r in res], res[0].R0.shape, res[0].config["runner"]["sampler"]
([0, 1], (2, 2), 'wishart')
"""
from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from switchbench.errors import SwitchbenchError

def decline_reason(learner, env) -> str | None:
    """Why the covariance engine cannot run ``learner`` on ``env`` (None if it can)."""
    if not getattr(learner, "covariance_form", False):
        return (f"sampler 'wishart' runs learners with a covariance form (the gated linear networks, linear); "
                f"not a {type(learner).__name__}")
    if env.ground_truth() is None:
        return f"sampler 'wishart' needs a paradigm with linear teachers, not {env.task_spec.name}"
    if env.cue:
        return "sampler 'wishart' needs cue=False"
    return None


# --- the batched learner ------------------------------------------------------------------

@dataclass
class Batched:
    """N independent copies of ``y = sum_p c_p W_p x``; ``W`` is (N, P, d_out * d_in), ``c`` (N, P)."""

    W: np.ndarray
    c: np.ndarray
    shape: tuple[int, int]            # (d_out, d_in)
    lr_w: float                       # dt / tau_w
    lr_c: float                       # dt / tau_c
    lam: float
    learn_gates: bool
    manifold_weight: float = 10.0     # w of the gate penalty R = (N + w M) / (1 + w)

    def effective(self) -> np.ndarray:
        """``W_eff = sum_p c_p W_p``, shape (N, d_out, d_in)."""
        return (self.c[:, None, :] @ self.W).reshape(-1, *self.shape)

    def loss(self, sigma: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``1/2 tr(D Sigma D^T)`` per copy, ``D = W_eff - W*``: the mean batch loss."""
        D = self.effective() - target
        return 0.5 * np.einsum("nij,nij->n", D @ sigma, D)

    def learn(self, sigma: np.ndarray, target: np.ndarray) -> np.ndarray:
        """One gradient step on every copy (see the module docstring); the losses before it."""
        n = len(self.W)
        D = self.effective() - target
        G = D @ sigma                                          # dL/dW_eff = D Sigma
        loss = 0.5 * np.einsum("nij,nij->n", G, D)
        Gf = G.reshape(n, 1, -1)
        if self.learn_gates:
            grad_c = (self.W @ Gf.reshape(n, -1, 1))[..., 0]    # <W_p, G>
            if self.lam:
                grad_c = grad_c + self.lam * gate_penalty_grad(self.c, self.manifold_weight)
        self.W -= (self.lr_w * self.c)[:, :, None] * Gf
        if self.learn_gates:
            self.c -= self.lr_c * grad_c
        return loss

    def repeat(self, k: int) -> "Batched":
        """Copies ``[n0 x k, n1 x k, ...]`` (for the adaptation of every task at once)."""
        return Batched(np.repeat(self.W, k, axis=0), np.repeat(self.c, k, axis=0), self.shape, self.lr_w,
                       self.lr_c, self.lam, self.learn_gates, self.manifold_weight)


def gate_penalty_grad(c: np.ndarray, weight: float = 10.0) -> np.ndarray:
    """dR/dc of each row of ``c`` (N, P): the model's own :func:`~switchbench.models.gated_linear.gate_penalty_grad`
    (``weight``: its manifold weight w), bit for bit, in numpy: the same operations in the same
    order and dtype, without a torch call per step. The row sum ``|c|_1`` is the one operation
    whose order a reduction kernel chooses: for P <= 2 every order gives the same sum, so
    numpy adds; for P > 2 torch sums, as the model does.

    >>> import torch
    >>> from switchbench.models.gated_linear import gate_penalty_grad as model_grad
    >>> c = np.array([[0.5, -0.25, 0.0], [1.5, 0.25, 2.0]], dtype=np.float32)
    >>> np.array_equal(gate_penalty_grad(c, 5.0), model_grad(torch.from_numpy(c), 5.0).numpy())
    True
    """
    weight = float(weight)                       # a Python scalar, as the model gets: the arithmetic stays in c's dtype
    a = np.abs(c)
    if c.shape[-1] == 1:
        norm = a
    elif c.shape[-1] == 2:
        norm = a[..., :1] + a[..., 1:]
    else:
        norm = torch.from_numpy(a).sum(-1, keepdim=True).numpy()
    dn = -10 * (c < 0).astype(c.dtype)
    dm = 10 * (norm - 1) * np.sign(c)
    return (dn + weight * dm) / (1 + weight)


def from_learners(learners: list) -> tuple[Batched, bool]:
    """Stack the per-seed learners the registry built (same initialisation, same checks), in
    their ``dtype``; and whether they have gates and modules to probe."""
    from switchbench.models.gated_linear import GatedLinear
    from switchbench.models.linear import DeepLinear

    first = learners[0]
    dtype = np.float64 if first.dtype == torch.float64 else np.float32
    if isinstance(first, GatedLinear):
        W = np.stack([m.W.detach().numpy() for m in learners])
        c = np.stack([m.c.detach().numpy() for m in learners])
        hp = dict(lr_w=first.lr_w, lr_c=first.lr_c, lam=first.lam, learn_gates=first.learn_gates,
                  manifold_weight=first.manifold_weight)
        probes = True
    elif isinstance(first, DeepLinear) and len(first.layers) == 1:
        W = np.stack([m.layers[0].detach().numpy()[None] for m in learners])
        c = np.ones((len(learners), 1), dtype=W.dtype)
        hp = dict(lr_w=first.lr, lr_c=0.0, lam=0.0, learn_gates=False)
        probes = False
    else:
        raise SwitchbenchError(f"the batched engine cannot run a {type(first).__name__}")
    n, p, o, i = W.shape
    return Batched(W.reshape(n, p, o * i).astype(dtype), c.astype(dtype), (o, i), **hp), probes


# --- covariances ---------------------------------------------------------------------------

def sample_cov(x: np.ndarray, dtype) -> np.ndarray:
    """``X^T X / B`` for a stack of batches ``x`` (..., B, d), in ``dtype``."""
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float64 if dtype == np.float64 else torch.float32)
    return (xt.transpose(-1, -2) @ xt / x.shape[-2]).numpy()


def wishart_cov(rng: np.random.Generator, n: int, d: int, batch: int, dtype) -> np.ndarray:
    """``n`` draws of ``X^T X / B`` for ``X`` (B x d) with i.i.d. N(0, 1) entries, by the
    Bartlett decomposition (module docstring); shape (n, d, d)."""
    if batch < d:                                              # singular Wishart: draw X itself
        return sample_cov(rng.standard_normal((n, batch, d)), dtype)
    rows, cols = np.tril_indices(d, -1)
    A = np.zeros((n, d, d))
    A[:, rows, cols] = rng.standard_normal((n, len(rows)))
    diag = np.arange(d)
    A[:, diag, diag] = np.sqrt(2 * rng.standard_gamma((batch - diag) / 2, size=(n, d)))   # chi2(B - i)
    At = torch.from_numpy(A)
    return (At @ At.transpose(1, 2) / batch).numpy().astype(dtype)


# --- the program -----------------------------------------------------------------------------

def task_gates(learner, n_tasks: int) -> np.ndarray:
    """The gates ``observe_task(k)`` sets on a privileged learner (``oracle-gates``), one row per task."""
    told = copy.deepcopy(learner)
    gates = []
    for k in range(n_tasks):
        told.observe_task(k)
        gates.append(told.c.detach().numpy().copy())
    return np.asarray(gates)


@dataclass
class Trained:
    """What one program gives, per seed ``s`` (first index): ``loss`` (n_steps, S); ``gates``
    (n_steps, S, P) and ``modules`` (n_steps, S, P, d_out * d_in) where small enough (else
    None); ``R0``, ``Rk`` (S, n_blocks, K); ``probes`` (name -> (S, n_blocks, ...), empty
    without gates); ``changed``: per new-task block, the parameters it changed (S,);
    ``train_time``: seconds spent learning (covariances included, evaluation excluded);
    ``failed``: seed index -> the step of its first non-finite loss."""

    loss: np.ndarray
    gates: np.ndarray | None
    modules: np.ndarray | None
    R0: np.ndarray
    Rk: np.ndarray
    probes: dict[str, np.ndarray]
    changed: list[np.ndarray]
    train_time: float
    failed: dict[int, int]


def train(learners: list, teachers: np.ndarray, null_loss, curricula: list, streams: list[int],
          eval_seeds: list[int], *, batch_size: int, k_adapt: int, privileged: bool, snapshot: np.ndarray,
          chunk: int = 250, progress: bool = False, label: str = "") -> Trained:
    """Train the single-seed ``learners`` (one per seed, built by the registry) as one program.

    ``teachers`` (K, d_out, d_in): the paradigm's linear teachers, one per task; ``null_loss``:
    each task's loss of the zero prediction; ``curricula``: each seed's
    :class:`~switchbench.paradigms.base.Curriculum` (one block layout for all);
    ``streams``/``eval_seeds``: each seed's stream and evaluation seeds (module docstring);
    ``privileged``: set the gates ``observe_task`` sets before each step and evaluation;
    ``snapshot``: True at the steps where a block counted in ``changed`` starts; ``chunk``:
    steps whose covariances are drawn at once."""
    net, has_probe = from_learners(learners)
    dtype = net.W.dtype
    S, K, B, d = len(learners), len(teachers), batch_size, net.shape[1]
    gates_of = task_gates(learners[0], K).astype(dtype) if privileged else None
    teachers = teachers.astype(np.float32).astype(dtype)       # the env computes its targets in float32
    null = np.asarray(null_loss)
    sched = curricula[0]
    step_tasks = np.stack([c.task for c in curricula], axis=1)  # (n_steps, S)
    n_steps = sched.n_steps
    rngs = [np.random.default_rng(st) for st in streams]
    pool = ThreadPoolExecutor(max(1, torch.get_num_threads()))

    def train_covs():
        """(T, S, d, d) covariances of steps [t0, t0 + T), chunk by chunk; the next chunk is
        drawn in the pool while the caller learns from this one (after this one is drawn,
        so that each seed's generator is used in order)."""
        def one(s, t0, T):
            return wishart_cov(rngs[s], T, d, B, dtype)

        def submit(t0):
            return [pool.submit(one, s, t0, min(chunk, n_steps - t0)) for s in range(S)]

        jobs = submit(0)
        for t0 in range(0, n_steps, chunk):
            sigmas = np.stack([j.result() for j in jobs], axis=1)
            if t0 + chunk < n_steps:
                jobs = submit(t0 + chunk)
            yield sigmas

    # Held-out covariances (S, K, d, d): the identity (the exact expectation).
    held = np.broadcast_to(np.eye(d, dtype=dtype), (S, K, d, d))

    adapt_jobs = {}

    def draw_adapt(block):
        """Start drawing the adaptation batches of ``block`` in the pool (each from its own
        generator, so when they are drawn does not matter): done while the block trains."""
        def one(sk):
            e, k = eval_seeds[sk // K], sk % K
            return wishart_cov(np.random.default_rng((e, 1 + block, k)), k_adapt, d, B, dtype)
        if k_adapt and block not in adapt_jobs:
            adapt_jobs[block] = [pool.submit(one, sk) for sk in range(S * K)]

    def adapt_covs(block):
        """(k_adapt, S*K, d, d): the adaptation batches of every seed and task after ``block``."""
        draw_adapt(block)
        return np.stack([j.result() for j in adapt_jobs.pop(block)], axis=1)

    def held_loss(m: Batched, tasks: np.ndarray, sig: np.ndarray) -> np.ndarray:
        return m.loss(sig, teachers[tasks]) / null[tasks]

    def evaluate(block):
        r0 = np.empty((S, K))
        for k in range(K):
            if privileged:
                net.c[:] = gates_of[k]                          # observe_task(k), as the run loop does
            r0[:, k] = held_loss(net, np.full(S, k), held[:, k])
        copies, tasks = net.repeat(K), np.tile(np.arange(K), S)
        targets = teachers[tasks]
        if k_adapt:
            for sig in adapt_covs(block):
                if privileged:
                    copies.c[:] = gates_of[tasks]
                copies.learn(sig, targets)
        if privileged:
            copies.c[:] = gates_of[tasks]
        rk = held_loss(copies, tasks, held.reshape(S * K, d, d)).reshape(S, K)
        return r0, rk

    loss = np.empty((n_steps, S), dtype=dtype)
    P = net.c.shape[1]
    small = {"gates": has_probe and P <= 16, "modules": has_probe and net.W[0].size <= 16}
    gates = np.empty((n_steps, S, P), dtype=dtype) if small["gates"] else None
    mods = np.empty((n_steps, S) + net.W.shape[1:], dtype=dtype) if small["modules"] else None
    R0, Rk, probes = [], [], {"gates": [], "modules": []}
    train_time, t = 0.0, 0
    bar = tqdm(total=n_steps, desc=label, disable=not progress, mininterval=0.5, leave=False)
    block_end = np.append(sched.block[1:] != sched.block[:-1], True)
    block_start = np.append(True, block_end[:-1])
    new_tasks = np.append(True, (step_tasks[1:] != step_tasks[:-1]).any(1))   # some seed's task changes
    before, changed = None, []                                    # parameters changed per new task, per seed
    failed: dict[int, int] = {}
    try:
        with np.errstate(all="ignore"):
            t_start = time.perf_counter()
            for sigmas in train_covs():
                for sig in sigmas:
                    task = step_tasks[t]
                    if new_tasks[t]:
                        targets = teachers[task]
                    if block_start[t]:
                        draw_adapt(int(sched.block[t]))
                    if privileged:
                        net.c[:] = gates_of[task]
                    if snapshot[t]:
                        before = (net.W.copy(), net.c.copy())
                    loss[t] = net.learn(sig, targets)
                    if gates is not None:
                        gates[t] = net.c
                    if mods is not None:
                        mods[t] = net.W
                    if block_end[t]:
                        train_time += time.perf_counter() - t_start
                        if before is not None:
                            n = (net.W != before[0]).reshape(S, -1).sum(1)
                            if net.learn_gates:
                                n = n + (net.c != before[1]).sum(1)
                            changed.append(n)
                            before = None
                        r0, rk = evaluate(int(sched.block[t]))
                        R0.append(r0)
                        Rk.append(rk)
                        probes["gates"].append(net.c.copy())
                        probes["modules"].append(net.W.reshape(S, P, *net.shape).copy())
                        t_start = time.perf_counter()
                    t += 1
                bar.update(len(sigmas))
                for step, s in np.argwhere(~np.isfinite(loss[t - len(sigmas):t])):   # a seed's first non-finite loss
                    failed.setdefault(int(s), int(step) + t - len(sigmas))
                if len(failed) == S:
                    break
            train_time += time.perf_counter() - t_start
    finally:
        bar.close()
        pool.shutdown(cancel_futures=True)
    if len(failed) == S:
        return Trained(loss, gates, mods, np.empty((S, 0, K)), np.empty((S, 0, K)), {}, changed, train_time, failed)
    R0, Rk = np.stack(R0, axis=1), np.stack(Rk, axis=1)        # (S, n_blocks, K)
    probes = {k: np.stack(v, axis=1) for k, v in probes.items()} if has_probe else {}
    return Trained(loss, gates, mods, R0, Rk, probes, changed, train_time, failed)
