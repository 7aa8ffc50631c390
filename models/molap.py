"""Modular latent primitives (``modular-primitives``, after Marton, Lajoie & Rajan: MoLaP):
frozen recurrent modules pretrained on a corpus of neurogym tasks, per-task input and output
weights (:class:`ModularPrimitives`, whose docstring lists the assumptions), the corpus it
pretrains on, and its seed-stacked twin."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch

from switchbench.cache import atomic_path, cache_dir
from switchbench.errors import SwitchbenchError
from switchbench.losses import IGNORE, task_loss
from switchbench.models import leaky_rnn
from switchbench.models.leaky_rnn import (LR_GRID, TAU, W_REC_GAIN, LeakyRNN, StackedRNN, StackedTaskRNN,
                                          _classification_sequences, apply_to_optimiser, clip_and_step,
                                          derive_alpha, random_orthogonal, stack_like)
from switchbench.models.registry import register
from switchbench.models.state import LearningState

MOLAP = ("Marton, Lajoie & Rajan, Efficient and robust multi-task learning in the brain with modular latent "
         "primitives (arXiv preprint)")
PRETRAIN = ("pca", "end-to-end", "none")
PRETRAIN_FORMAT = 1      # bump when pretraining changes: cached modules are then not reused


def _source_digest() -> str:
    """A hash of the code that pretrains the modules: this module and the leaky RNN it trains."""
    h = hashlib.sha256()
    for path in (leaky_rnn.__file__, __file__):
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def _neurogym_corpus(env_ids, dt, n: int, seed: int, width: int, classes: int):
    """``n`` end-aligned trials per neurogym task: inputs ``(T, n, width)`` (zero-padded), targets ``(T, n)``.

    Made by :func:`switchbench.data.tasksets.generate_trials` (seeded through the task's own
    ``seed()``: neurogym 2.3.1 ignores ``reset(seed=)``), task ``i`` from ``seed + 7919 i``."""
    from switchbench.data.tasksets import generate_trials, pack_trials

    out = []
    for i, env_id in enumerate(env_ids):
        pool = pack_trials(generate_trials(env_id, {"dt": dt} if dt else {}, int(seed) + 7919 * i, n))
        (_, T, F), x = pool["x"].shape, pool["x"].transpose(1, 0, 2)
        if F > width:
            raise SwitchbenchError(f"modular-primitives: corpus task {env_id!r} has {F} inputs, more than the "
                                   f"paradigm's {width}")
        if pool["y"].max() >= classes:
            raise SwitchbenchError(f"modular-primitives: corpus task {env_id!r} has more actions than the paradigm's "
                                   f"{classes} outputs")
        padded = torch.zeros(T, n, width)
        padded[:, :, :F] = torch.from_numpy(x)
        out.append((padded, torch.from_numpy(pool["y"].T.copy())))
    return out


def corpus_ids(corpus, own: list[str], hold_out: bool) -> list[str]:
    """The neurogym ids of a pretraining corpus: ``corpus`` (a named set, one id or a list;
    None: ``own``, the paradigm's tasks), less ``own`` when ``hold_out``; never empty."""
    from switchbench.data.tasksets import NAMED_SETS

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
                               f"{own} (hold_out={hold_out}; pass another corpus, e.g. corpus='yang19')")
    return ids


class ModularPrimitives(LearningState, torch.nn.Module):
    """MoLaP-style learner: frozen pretrained recurrent modules, per-task input and output weights.

    The MoLaP abstract (no public code): modules "pre-trained on the statistics of the full
    corpus of tasks so as to be independent and maximally informative", then frozen; new
    tasks learn only input and output weights. Design assumptions (each one a choice of this
    implementation):

    1. **Modules**: ``n_modules`` leaky RNNs (the ``leaky-rnn`` update, ``module_size`` units
       each; default 4 x 64 = 256 units, ``leaky-rnn``'s size) with no recurrent connections
       between them (block-diagonal ``W_rec``).
    2. **Corpus**: trials of neurogym tasks (``corpus``: a named set, default ``"molap9"``, or
       a list of ids), made with neurogym's defaults at the paradigm's ``dt``
       (``corpus_dt`` overrides), ``corpus_trials`` per task, seeded by the model seed. By
       default (``hold_out=True``) the paradigm's own tasks are *removed* from it, so every
       scored task is one the modules never saw; ``hold_out=False`` includes them (say so
       when reporting).
    3. **Pretraining** (``pretrain``), before the curriculum (part of building the model, in
       no step's wall time; cached on disk, below):

       - ``"pca"`` (default): *independent and maximally informative*, read as: fit a
         multitask leaky RNN of the same size (full ``W_rec``, per-corpus-task input and
         output weights; Adam, ``pretrain_steps`` batches of ``pretrain_batch`` trials of
         random corpus tasks) on the corpus; take the leading ``n_modules x pcs_per_module``
         principal components of its hidden trajectories over all corpus trials (unpadded
         steps): uncorrelated, of maximal variance; deal them out round-robin into disjoint
         groups (module m gets components m, m + n_modules, ...); then train the modules,
         from a fresh initialisation with per-corpus-task input weights, to produce their own
         group (z-scored components, squared error, a readout per module seeing only its
         own units; same steps and batches). The assumption: PCA of a multitask network's
         activity stands for "the statistics of the corpus", and disjoint groups of
         uncorrelated components for "independent".
       - ``"end-to-end"``: the modules and per-corpus-task input and output weights trained
         directly on the corpus tasks' cross-entropy (no independence objective).
       - ``"none"``: the control, random frozen modules (a reservoir: the same initialisation,
         ``0.5 x`` a random orthogonal matrix per module) with the same per-task training.
    4. **Frozen**: the modules' recurrent weights and biases never change after
       pretraining; each task of the paradigm learns only its own fresh input and output
       weights (``W_in^k``, ``W_out^k``, ``b_out^k``; Adam, ``lr``) on the curriculum.
       Privileged: the runner tells it the task. So it cannot forget, and "parameters changed
       per new task" is the I/O weights alone.
    5. The cue columns of the input, when present, are constant within a task and act as a
       bias of its input weights. Recurrent and input noise while learning, none in
       ``predict``.

    Pretrained modules are cached under ``$SWITCHBENCH_CACHE/pretrained`` (``.npz``, read
    without pickle), keyed by everything that makes them (corpus, dt, sizes, pretraining
    settings, seed, the source of this module and of
    :mod:`switchbench.models.leaky_rnn`, torch and neurogym versions); pretraining draws from
    its own generator, so a cached and a fresh model give the same numbers.
    """

    learning_state = ("opt", "task")     # the modules' noise generator is saved by ``rnn``

    def __init__(self, spec, seed: int, *, n_modules: int, module_size: int, alpha: float, sigma_rec: float,
                 sigma_x: float, w_rec_gain: float, activation: str, lr: float, pretrain: str, pretrain_steps: int,
                 pretrain_batch: int, pretrain_lr: float, pcs_per_module: int, corpus_dt, corpus_trials: int,
                 corpus="molap9", hold_out: bool = True, pretrain_cache: bool = True):
        for name, v in (("n_modules", n_modules), ("module_size", module_size), ("pretrain_batch", pretrain_batch),
                        ("corpus_trials", corpus_trials), ("pcs_per_module", pcs_per_module)):
            if not (isinstance(v, int) and v > 0):
                raise SwitchbenchError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(pretrain_steps, int) and pretrain_steps >= 0):
            raise SwitchbenchError(f"pretrain_steps must be an integer >= 0, got {pretrain_steps!r}")
        if pretrain not in PRETRAIN:
            raise SwitchbenchError(f"unknown pretrain {pretrain!r}; valid: {', '.join(PRETRAIN)}")
        super().__init__()
        hidden = n_modules * module_size
        self.net_kw = dict(hidden=hidden, alpha=alpha, sigma_rec=sigma_rec, sigma_x=sigma_x, w_rec_gain=w_rec_gain,
                           activation=activation)
        self.rnn = LeakyRNN(spec.input_size, spec.output_size, **self.net_kw, lr=lr, seed=seed)
        self.register_buffer("block_mask", torch.block_diag(*[torch.ones(module_size, module_size)] * n_modules),
                             persistent=False)
        self.rnn.module_size = module_size
        self.n_modules, self.module_size, self.pcs_per_module = n_modules, module_size, pcs_per_module
        self.n_tasks, self.d_in, self.d_out, self.hidden = spec.n_tasks, spec.input_size, spec.output_size, hidden
        self.task = 0
        own = [f"{n}-v0" for n in spec.task_names]
        self.corpus = corpus_ids(corpus, own, hold_out) if pretrain != "none" else []
        self.pretrain = pretrain
        self.explained_variance = float("nan")         # "pca": variance share of the components the modules produce
        # pretraining has its own generator: a model loaded from the cache draws the same numbers afterwards
        pre_seed, = np.random.SeedSequence([int(seed), 1]).generate_state(1)
        settings = dict(pretrain=pretrain, steps=pretrain_steps, batch=pretrain_batch, lr=pretrain_lr,
                        pcs=pcs_per_module, corpus=self.corpus, corpus_dt=corpus_dt or spec.dt,
                        corpus_trials=corpus_trials, seed=int(pre_seed))
        w_rec, b = self._pretrained(spec, settings, pretrain_cache)
        with torch.no_grad():
            self.rnn.w_rec.copy_(w_rec)
            self.rnn.b.copy_(b)
        self.io = self._new_io(self.n_tasks, self.rnn.gen)
        for p in (self.rnn.w_rec, self.rnn.b):
            p.requires_grad_(False)
        self.opt = torch.optim.Adam([p for io in self.io for p in io], lr=lr)

    # --- pretraining ------------------------------------------------------------------
    def _fresh_modules(self, gen: torch.Generator, lr: float) -> LeakyRNN:
        """Fresh block-diagonal modules: an orthogonal matrix per module times the gain."""
        net = LeakyRNN(self.d_in, self.d_out, **self.net_kw, lr=lr, seed=0)
        net.gen = gen
        with torch.no_grad():
            net.w_rec.zero_()
            for m in range(self.n_modules):
                sl = slice(m * self.module_size, (m + 1) * self.module_size)
                net.w_rec[sl, sl] = self.net_kw["w_rec_gain"] * random_orthogonal(self.module_size, gen)
        return net

    def _pretrained(self, spec, settings: dict, use_cache: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen modules' ``(W_rec, b)``: from the disk cache when its key matches, else pretrained."""
        from switchbench.data.tasksets import import_neurogym

        blob = json.dumps({**settings, **self.net_kw, "modules": [self.n_modules, self.module_size],
                           "io": [self.d_in, self.d_out], "format": PRETRAIN_FORMAT, "torch": torch.__version__,
                           "neurogym": import_neurogym().__version__ if self.corpus else None,
                           "source": _source_digest()},
                          sort_keys=True, default=repr)
        key = hashlib.sha256(blob.encode()).hexdigest()[:20]
        path = cache_dir() / "pretrained" / f"modules-{key}.npz"
        if use_cache and path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    if str(z["key"]) == key:
                        self.explained_variance = float(z["explained_variance"])
                        return torch.from_numpy(z["w_rec"]), torch.from_numpy(z["b"])
            except (OSError, ValueError, KeyError):
                pass                                 # unreadable: pretrain again and overwrite
        gen = torch.Generator().manual_seed(settings["seed"])
        net = self._fresh_modules(gen, settings["lr"])
        if settings["pretrain"] != "none" and settings["steps"]:
            data = _neurogym_corpus(self.corpus, settings["corpus_dt"], settings["corpus_trials"], settings["seed"],
                                    self.d_in, self.d_out)
            if settings["pretrain"] == "end-to-end":
                self._fit_tasks(net, data, settings, mask=self.block_mask)
            else:
                teacher = LeakyRNN(self.d_in, self.d_out, **self.net_kw, lr=settings["lr"],
                                   seed=int(torch.randint(0, 2 ** 62, (1,), generator=gen)))
                teacher.gen = gen
                self._fit_tasks(teacher, data, settings, mask=None)
                targets = self._components(teacher, data)
                self._fit_components(net, data, targets, settings)
        w_rec, b = net.w_rec.detach().clone(), net.b.detach().clone()
        if use_cache:
            with atomic_path(path) as tmp:
                np.savez(tmp, key=np.array(key), w_rec=w_rec.numpy(), b=b.numpy(),
                         explained_variance=np.array(self.explained_variance))
        return w_rec, b

    def _new_io(self, n: int, gen: torch.Generator, d_out: int | None = None) -> torch.nn.ModuleList:
        """``n`` tasks' ``[W_in, W_out, b_out]`` (a module list of parameter lists)."""
        d_out = d_out or self.d_out
        limit = math.sqrt(6 / (self.hidden + d_out))
        return torch.nn.ModuleList(torch.nn.ParameterList([
            torch.randn(self.hidden, self.d_in, generator=gen) / math.sqrt(self.d_in),
            (2 * torch.rand(d_out, self.hidden, generator=gen) - 1) * limit,
            torch.zeros(d_out)]) for _ in range(n))

    def _fit_tasks(self, net: LeakyRNN, corpus, settings: dict, mask) -> None:
        """Train ``net``'s recurrence (kept block-diagonal by ``mask``) with per-corpus-task I/O on the tasks' loss."""
        io = self._new_io(len(corpus), net.gen)
        params = [net.w_rec, net.b] + [p for ps in io for p in ps]
        opt = torch.optim.Adam(params, lr=settings["lr"])
        for _ in range(settings["steps"]):
            k = int(torch.randint(0, len(corpus), (1,), generator=net.gen))
            x, y = corpus[k]
            idx = torch.randint(0, x.shape[1], (settings["batch"],), generator=net.gen)
            w_in, w_out, b_out = io[k]
            with torch.enable_grad():
                logits = net.hidden_states(x[:, idx], w_in, noise=True) @ w_out.T + b_out
                loss = task_loss(logits, y[:, idx], "cross_entropy")
                opt.zero_grad(set_to_none=True)
                loss.backward()
            if mask is not None:
                net.w_rec.grad.mul_(mask)          # modules stay separate
            clip_and_step(opt, params)
        net.corpus_w_in = [ps[0].detach() for ps in io]

    def _components(self, teacher: LeakyRNN, corpus) -> list[torch.Tensor]:
        """Per corpus task, the z-scored leading principal components of the teacher's hidden
        trajectories (unpadded steps of all corpus trials, no noise), dealt out round-robin:
        column ``j`` of the result belongs to module ``j % n_modules``."""
        n_pc = self.n_modules * self.pcs_per_module
        with torch.no_grad():
            hs = [teacher.hidden_states(x, w_in, noise=False) for (x, _), w_in in zip(corpus, teacher.corpus_w_in)]
        real = torch.cat([h[y != IGNORE] for h, (_, y) in zip(hs, corpus)])       # (samples, hidden)
        mean = real.mean(0)
        _, sv, vt = torch.linalg.svd(real - mean, full_matrices=False)
        var = sv.square()
        self.explained_variance = float(var[:n_pc].sum() / var.sum())
        scale = (var[:n_pc] / (len(real) - 1)).sqrt().clamp_min(1e-8)
        return [((h - mean) @ vt[:n_pc].T) / scale for h in hs]

    def _fit_components(self, net: LeakyRNN, corpus, targets: list[torch.Tensor], settings: dict) -> None:
        """Train the modules (with per-corpus-task input weights) so that module m's own readout
        produces its group of components: squared error on the unpadded steps."""
        n_pc = self.n_modules * self.pcs_per_module
        owner = torch.arange(n_pc) % self.n_modules                       # component j -> module j % M
        unit_module = torch.arange(self.hidden) // self.module_size
        readout_mask = (owner[:, None] == unit_module[None, :]).float()  # each module reads out its own group
        gen = net.gen
        w_ins = [torch.nn.Parameter(torch.randn(self.hidden, self.d_in, generator=gen) / math.sqrt(self.d_in))
                 for _ in corpus]
        readout = torch.nn.Parameter(torch.randn(n_pc, self.hidden, generator=gen) / math.sqrt(self.module_size))
        bias = torch.nn.Parameter(torch.zeros(n_pc))
        params = [net.w_rec, net.b, readout, bias] + w_ins
        opt = torch.optim.Adam(params, lr=settings["lr"])
        for _ in range(settings["steps"]):
            k = int(torch.randint(0, len(corpus), (1,), generator=gen))
            x, y = corpus[k]
            idx = torch.randint(0, x.shape[1], (settings["batch"],), generator=gen)
            keep = y[:, idx] != IGNORE
            with torch.enable_grad():
                z = net.hidden_states(x[:, idx], w_ins[k], noise=True) @ (readout * readout_mask).T + bias
                loss = (z - targets[k][:, idx]).square()[keep].mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
            net.w_rec.grad.mul_(self.block_mask)
            clip_and_step(opt, params)

    # --- the learner ------------------------------------------------------------------
    def _forward(self, x: torch.Tensor, task: int, noise: bool) -> torch.Tensor:
        w_in, w_out, b_out = self.io[task]
        return self.rnn.hidden_states(x, w_in, noise) @ w_out.T + b_out

    def observe_task(self, task: int) -> None:
        if not 0 <= task < self.n_tasks:
            raise SwitchbenchError(f"task {task} out of range 0..{self.n_tasks - 1}")
        self.task = int(task)

    def parameters(self, recurse: bool = True):
        """The trainable parameters: every task's input and output weights (modules are frozen)."""
        return [p for io in self.io for p in io]

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        apply_to_optimiser(self.opt, fn)
        return self

    def record_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The modules' hidden states driven by the active task's input weights (no noise, no side effects)."""
        with torch.no_grad():
            return self.rnn.hidden_states(x, self.io[self.task][0], noise=False)

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

    @classmethod
    def stack(cls, learners) -> "StackedModularPrimitives":
        return StackedModularPrimitives(learners)


class StackedModularPrimitives(StackedTaskRNN):
    """S :class:`ModularPrimitives` as one seed-batched learner (:class:`StackedTaskRNN`): each
    seed's frozen modules stacked ``(S, ...)``, its per-task input and output weights
    ``(S, tasks, ...)``."""

    def __init__(self, learners):
        super().__init__(learners)
        rnn = self.models[0].rnn
        self.alpha, self.sigma_rec, self.sigma_x, self.activation = rnn.alpha, rnn.sigma_rec, rnn.sigma_x, \
            rnn.activation
        self._frozen()

    def _frozen(self) -> None:
        self.frozen = [stack_like([getattr(m.rnn, name).detach() for m in self.models]) for name in ("w_rec", "b")]

    @staticmethod
    def _config(model) -> tuple:
        return (StackedRNN._config(model.rnn), model.n_tasks, [tuple(p.shape) for p in model.parameters()])

    def _task_params(self, model) -> list[list[torch.Tensor]]:
        return [list(io) for io in model.io]

    def _optimiser(self, model, task: int):
        return model.opt, model.parameters()

    def _weight(self, i: int) -> torch.Tensor:
        if i in (1, 2):
            return self.frozen[i - 1]                       # the modules' W_rec and b
        return self._pick(self.params[{0: 0, 3: 1, 4: 2}[i]])

    def _gens(self) -> list[torch.Generator]:
        return [m.rnn.gen for m in self.models]

    @property
    def unit_mask(self) -> torch.Tensor | None:
        masks = [m.rnn.unit_mask for m in self.models]
        if all(u is None for u in masks):
            return None
        return torch.stack([torch.ones_like(m.rnn.b) if u is None else u for m, u in zip(self.models, masks)])

    def to(self, device) -> "StackedModularPrimitives":
        super().to(device)
        self._frozen()
        return self


def _neurogym_tasks(spec):
    reason = _classification_sequences(spec)
    if reason:
        return reason
    if spec.name != "switchbench/CognitiveSwitch-v0":
        return "modular-primitives pretrains on the neurogym tasks of CognitiveSwitch-v0; it cannot run on " + spec.name
    return None


@register("modular-primitives", description="MoLaP: frozen recurrent modules pretrained for independent, informative "
          "components of a task corpus that excludes the scored tasks; each task learns only its input/output weights "
          "(privileged)", citation=MOLAP, privileged=True, kinds=("sequence",), supports=_neurogym_tasks,
          tuning="module update as leaky-rnn; 4 modules x 64 units (leaky-rnn's 256), 4 components each; corpus "
                 "molap9 less the scored tasks; 300 + 300 pretraining batches of 32: untuned",
          tunable={"lr": LR_GRID})
def make_modular_primitives(spec, seed, n_modules=4, module_size=64, alpha: float | None = None, tau=TAU, sigma_rec=0.05,
                            sigma_x=0.01, w_rec_gain=W_REC_GAIN, activation="softplus", lr=1e-3, pretrain="pca",
                            pretrain_steps=300, pretrain_batch=32, pretrain_lr=1e-3, pcs_per_module=4,
                            corpus_dt: float | None = None, corpus_trials=256, corpus="molap9", hold_out=True, pretrain_cache=True):
    """Modular latent primitives (Marton, Lajoie & Rajan): see :class:`ModularPrimitives` for its assumptions.
    ``pretrain="none"`` is the random-frozen-module control; ``"end-to-end"`` the earlier variant."""
    return ModularPrimitives(spec, seed, n_modules=n_modules, module_size=module_size,
                             alpha=derive_alpha(spec, alpha, tau), sigma_rec=sigma_rec, sigma_x=sigma_x,
                             w_rec_gain=w_rec_gain, activation=activation, lr=lr, pretrain=pretrain,
                             pretrain_steps=pretrain_steps, pretrain_batch=pretrain_batch, pretrain_lr=pretrain_lr,
                             pcs_per_module=pcs_per_module, corpus_dt=corpus_dt, corpus_trials=corpus_trials,
                             corpus=corpus, hold_out=hold_out, pretrain_cache=pretrain_cache)
