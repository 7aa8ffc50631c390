"""Non-linear gated networks on digit images: a frozen pretrained feature MLP feeding a gated
readout with fast, non-negative, bounded gates (``gated-mlp``), its forgetful control, and
ungated MLP baselines.

Sandbrink, Bauer, Proca, Saxe, Summerfield & Hummos (NeurIPS 2024), Sec. 6: the gated
network on top of a frozen CNN pretrained on digit identity; here, for the bundled 8x8
digits, a small MLP stands in for the CNN.

**Feature network** (``feature_network``): ``64 -> 100 -> 100 -> 10`` ReLU MLP pretrained
on digit identity with Adam on the *train* part of the digit split only (the same seeded
stratified split the paradigms use, :mod:`switchbench.data.digits`; the test part is never
seen), seeded by ``feature_seed``, then frozen. Its last hidden layer ``phi(x)`` (100
units) is the feature vector. It is trained once per configuration and cached on disk
under ``$SWITCHBENCH_CACHE/features`` (default ``.cache/features``), keyed by a hash of its
configuration (seed, sizes, epochs, split, torch version), written atomically (``.npz``, read without
pickle). The default ``feature_seed=0`` is fixed, as the paper's one pretrained CNN:
every run seed sees the same features (like the teachers of the linear paradigm).

**Gated readout**: with ``z = [phi(x_pixels), cue (if the input has one), 1]``,

    logits = sum_p c_p W_p z,        L = CE(logits, y) + lam * R(c)

with ``R`` the gate penalty of ``gated-linear`` (non-negative, ``|c|_1 = 1``;
:func:`switchbench.models.gated_linear.gate_penalty`). Plain gradient steps::

    W <- W - lr_w dL/dW,        c <- c - dt * lr_c dL/dc

(``optimizer="adam"`` uses Adam at ``lr_w`` for W instead). Defaults, the paper's settings
for this experiment: ``lr_w = 1e-3``, ``lr_c = 2``, ``dt = 0.1`` (gate step 0.2),
``lam = 0.1``, P = number of tasks, ``c_p = 1/P`` at start.

Note on non-negativity: the penalty is soft, and on these digits it loses. After the first
switch to the relabeled task, the idle path (which learned a little of the old task while
its gate was still 1/2) is *actively wrong* under cross-entropy, so the gradient drives its
gate negative and the path becomes the sign-flipped twin of a task-B readout. The gates
then switch cleanly in magnitude (one near +-1.3, the other near 0, per task) but one of
them is negative. A larger ``lam`` keeps them positive only partly (``lam = 1`` needs
``lr_c <= 0.5``, since the bound penalty's gate step ``dt * lr_c * lam * 100 / 11`` must
stay below 2, and then the gates mix rather than switch).

- ``gated-mlp``: the flexible model above;
- ``gated-mlp-forgetful``: the control, slow gates (gate step ``dt * lr_c = lr_w``), lam = 0;
- ``mlp``: the same network without gates: the feature MLP's layers (initialised from the
  pretrained network, *not* frozen) and one readout, all trained by gradient steps at the
  gated readout's ``lr_w = 1e-3`` (``switchbench tune`` searches 1e-4 to 1e-2); it never
  sees the cue (a cued paradigm's cue units are cut off its input);
- ``mlp-cued``: ``mlp`` with the task cue in its input (declines paradigms without one:
  set ``cue=True``), the classic cued network.

>>> import torch
>>> from switchbench import models
>>> from switchbench.paradigms.base import TaskSpec
>>> spec = TaskSpec("toy", 64, 10, 2, "cross_entropy", False, (2.3, 2.3), "blocked", 8, kind="classification")
>>> models.get("gated-mlp").decline_reason(spec) is None, models.get("mlp-cued").decline_reason(spec)
(True, 'mlp-cued needs the task cue in its input (64 pixels + 2 cue units): set cue=True')
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from switchbench.cache import atomic_path, cache_dir
from switchbench.data.digits import DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, N_PIXELS, digit_split
from switchbench.errors import SwitchbenchError
from switchbench.models.batching import stack_optimizer, unstack_optimizer_state
from switchbench.models.gated_linear import CITATION, gate_penalty
from switchbench.models.registry import register
from switchbench.models.torch_learner import ZooModule

FEATURE_VERSION = 1      # bump when the pretraining recipe changes: old cache files are then not reused
HIDDEN = (100, 100)


# --- the frozen feature network ---------------------------------------------------------

def _mlp_forward(layers, x: torch.Tensor, upto: int | None = None) -> torch.Tensor:
    """ReLU MLP; ``upto`` = number of layers to apply (ReLU after each hidden one); weights
    ``(..., out, in)`` and biases ``(..., out)`` may carry a leading seed dimension."""
    layers = layers[:upto] if upto is not None else layers
    h = x
    for i, (w, b) in enumerate(layers):
        h = h @ w.transpose(-1, -2) + b.unsqueeze(-2)      # a leading seed dimension broadcasts
        if upto is not None or i < len(layers) - 1:
            h = torch.relu(h)
    return h


def _init_layers(sizes, g: torch.Generator):
    """PyTorch's default Linear initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    out = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        bound = 1 / math.sqrt(i)
        out.append(((torch.rand(o, i, generator=g) * 2 - 1) * bound, (torch.rand(o, generator=g) * 2 - 1) * bound))
    return out


def feature_config(seed: int = 0, hidden=HIDDEN, epochs: int = 40, lr: float = 3e-3, batch: int = 64,
                   split_seed: int = DEFAULT_SPLIT_SEED, test_fraction: float = DEFAULT_TEST_FRACTION) -> dict:
    """The pretraining recipe of the feature network (also its cache key)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise SwitchbenchError(f"feature_seed must be a non-negative integer, got {seed!r}")
    return {"seed": int(seed), "hidden": list(hidden), "epochs": int(epochs), "lr": float(lr), "batch": int(batch),
            "split_seed": int(split_seed), "test_fraction": float(test_fraction), "version": FEATURE_VERSION,
            "torch": torch.__version__.split("+")[0]}


def feature_cache_path(config: dict) -> Path:
    """Where the pretrained network of ``config`` is cached (keyed by a hash of the config)."""
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "features" / f"digits-mlp-seed{config['seed']}-{key}.npz"


def pretrain(config: dict) -> tuple[list, float]:
    """Train the ``64 -> hidden -> 10`` MLP on digit identity (train part); returns its layers
    and its accuracy on the test part."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # tiny matrices: one thread is fastest, and the result never depends on it
    try:
        return _pretrain(config)
    finally:
        torch.set_num_threads(threads)


def _pretrain(config: dict) -> tuple[list, float]:
    d = digit_split(config["split_seed"], config["test_fraction"])
    g = torch.Generator().manual_seed(config["seed"])
    layers = _init_layers([N_PIXELS, *config["hidden"], 10], g)
    params = [p.requires_grad_() for wb in layers for p in wb]
    opt = torch.optim.Adam(params, lr=config["lr"])
    x, y = torch.from_numpy(d.x_train.copy()), torch.from_numpy(d.y_train.copy())
    for _ in range(config["epochs"]):
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), config["batch"]):
            idx = order[i: i + config["batch"]]
            loss = F.cross_entropy(_mlp_forward(layers, x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    layers = [(w.detach(), b.detach()) for w, b in layers]
    with torch.no_grad():
        acc = float((_mlp_forward(layers, torch.from_numpy(d.x_test.copy())).argmax(1) ==
                     torch.from_numpy(d.y_test.copy())).float().mean())
    return layers, acc


def _load_features(path: Path, config: dict) -> tuple[list, float]:
    """A cached feature network, checked: its stored recipe is ``config``, every layer has
    the recipe's shape and finite values (else an exception: the caller retrains)."""
    sizes = [N_PIXELS, *config["hidden"], 10]
    with np.load(path, allow_pickle=False) as z:
        if json.loads(str(z["config"])) != json.loads(json.dumps(config, sort_keys=True)):
            raise ValueError("another recipe")
        layers = [(torch.from_numpy(z[f"w{i}"]), torch.from_numpy(z[f"b{i}"])) for i in range(len(sizes) - 1)]
        acc = float(z["test_accuracy"])
    for i, (w, b) in enumerate(layers):
        if tuple(w.shape) != (sizes[i + 1], sizes[i]) or tuple(b.shape) != (sizes[i + 1],):
            raise ValueError(f"layer {i} has shape {tuple(w.shape)}")
        if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
            raise ValueError(f"layer {i} is not finite")
    return layers, acc


def feature_network(config: dict) -> tuple[list, float]:
    """The pretrained network of ``config``: loaded from the cache, else trained and cached atomically."""
    path = feature_cache_path(config)
    if path.exists():
        try:
            return _load_features(path, config)
        except Exception as e:  # noqa: BLE001 - truncated, edited or foreign: retrain and overwrite
            sys.stderr.write(f"switchbench: warning: feature cache {path} is corrupt ({type(e).__name__}); "
                             "retraining it\n")
    layers, acc = pretrain(config)
    with atomic_path(path) as tmp:
        np.savez(tmp, test_accuracy=acc, config=json.dumps(config, sort_keys=True),
                 **{f"w{i}": w.numpy() for i, (w, _) in enumerate(layers)},
                 **{f"b{i}": b.numpy() for i, (_, b) in enumerate(layers)})
    return layers, acc


# --- learners ---------------------------------------------------------------------------

def _check(optimizer: str, **positive):
    if optimizer not in ("adam", "sgd"):
        raise SwitchbenchError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    for name, v in positive.items():
        if not (isinstance(v, (int, float)) and v > 0):
            raise SwitchbenchError(f"{name} must be positive, got {v!r}")


class Adam:
    """``torch.optim.Adam`` over tensors whose gradients are computed by hand (``step(params, grads)``).

    Adam is elementwise: the Adam of S stacked seeds (:meth:`stacked`) updates each seed as its
    own Adam would; :meth:`sliced` is one seed's Adam again."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.opt = torch.optim.Adam(list(params), lr=lr, betas=betas, eps=eps)

    def step(self, params, grads):
        for p, g in zip(params, grads):
            p.grad = g
        self.opt.step()
        for p in params:
            p.grad = None

    def stacked(self, adams: list["Adam"], params) -> "Adam":
        """The Adam of ``params`` stacked over seeds (a leading dimension), from each seed's Adam."""
        new = copy.copy(self)
        new.opt = stack_optimizer([a.opt for a in adams], params)
        return new

    def sliced(self, s: int, params) -> "Adam":
        """Seed ``s``'s Adam over its own ``params``, from the Adam of stacked seeds."""
        d = self.opt.defaults
        new = Adam(params, d["lr"], d["betas"], d["eps"])
        unstack_optimizer_state(self.opt, s, new.opt)
        return new


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the batch (the last dimension of ``y``), one value per seed."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
    return ce.reshape(y.shape).mean(-1)


class GatedMLP(ZooModule):
    """Frozen features, P readouts ``W_p`` mixed by gates ``c_p`` (see the module docstring).

    Tensors: the frozen feature layers (buffers ``feature_w{i}``, ``feature_b{i}``, shared by
    stacked seeds), ``W`` (P, n_classes, d) and ``c`` (P,), parameters; ``lr_w``, ``lr_c`` (the
    gate step, ``dt * lr_c``), ``lam``; ``opt`` (Adam, or None for plain steps)."""

    def __init__(self, spec, seed: int, *, n_paths: int, lr_w: float, lr_c: float, dt: float, lam: float,
                 c_init: float | None, w_init: float, optimizer: str, feature_seed: int, learn_gates: bool = True):
        super().__init__()
        _check(lr_w=lr_w, dt=dt, optimizer=optimizer)
        if not isinstance(n_paths, (int, np.integer)) or n_paths < 1:
            raise SwitchbenchError(f"n_paths must be a positive integer, got {n_paths!r}")
        if lr_c < 0 or lam < 0:
            raise SwitchbenchError(f"lr_c and lam must be >= 0, got lr_c={lr_c!r}, lam={lam!r}")
        features, self.feature_accuracy = feature_network(feature_config(feature_seed))
        features = features[:-1]                  # drop the pretraining classifier: phi = last hidden layer
        for i, (w, b) in enumerate(features):
            self.register_buffer(f"feature_w{i}", w)
            self.register_buffer(f"feature_b{i}", b)
        self.n_features = len(features)
        self.shared = tuple(k for i in range(len(features)) for k in (f"feature_w{i}", f"feature_b{i}"))
        d = HIDDEN[-1] + (spec.input_size - N_PIXELS) + 1
        g = torch.Generator().manual_seed(int(seed))
        self.W = torch.nn.Parameter(torch.randn(n_paths, spec.output_size, d, generator=g) * (w_init / math.sqrt(d)),
                                    requires_grad=False)
        c = torch.full((n_paths,), 1.0 / n_paths if c_init is None else float(c_init))
        if learn_gates:
            self.c = torch.nn.Parameter(c, requires_grad=False)
        else:
            self.register_buffer("c", c)
        self.lr_w, self.lr_c, self.lam, self.learn_gates = lr_w, dt * lr_c, lam, learn_gates
        self.opt = Adam([self.W], lr_w) if optimizer == "adam" else None

    @property
    def features(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The frozen feature layers ``[(weight, bias), ...]``."""
        return [(getattr(self, f"feature_w{i}"), getattr(self, f"feature_b{i}")) for i in range(self.n_features)]

    def parameters(self, recurse: bool = True) -> list[torch.Tensor]:
        return [self.W, self.c] if self.learn_gates else [self.W]

    def _optimized(self) -> list[torch.Tensor]:
        return [self.W]

    def _z(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.W)
        phi = _mlp_forward(self.features, x[..., :N_PIXELS], upto=self.n_features)
        return torch.cat([phi, x[..., N_PIXELS:], x.new_ones(*x.shape[:-1], 1)], dim=-1)

    @staticmethod
    def _logits(z, W, c):
        return torch.einsum("...p,...pbo->...bo", c, torch.einsum("...bd,...pod->...pbo", z, W))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(self._z(x), self.W, self.c)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float | torch.Tensor:
        z, y = self._z(x), y.to(self.W.device)
        W, c = self.W.clone().requires_grad_(), self.c.clone().requires_grad_()
        with torch.enable_grad():
            task = _cross_entropy(self._logits(z, W, c), y)               # one per seed
            total = task + self.lam * gate_penalty(c) if (self.learn_gates and self.lam) else task
            gW, gc = torch.autograd.grad(total.sum(), (W, c))          # seeds are independent: each its own gradient
        if self.learn_gates:
            self.c -= self.lr_c * gc
        if self.opt is not None:
            self.opt.step([self.W], [gW])
        else:
            self.W -= self.lr_w * gW
        return self._loss_value(task)

    def probe(self) -> dict[str, torch.Tensor]:
        return {"gates": self.c.clone()}


class MLP(ZooModule):
    """The feature MLP (initialised from the pretrained network, trainable) with one readout,
    no gates; with ``cue=True`` the cue, if the input has one, enters the first layer, else the
    input is cut to its pixels (the network never sees the cue).

    Tensors: ``layers`` (weight, bias, weight, bias, ...), parameters; ``lr_w``; ``opt``."""

    def __init__(self, spec, seed: int, *, lr_w: float, optimizer: str, feature_seed: int, pretrained: bool,
                 cue: bool = True):
        super().__init__()
        _check(lr_w=lr_w, optimizer=optimizer)
        g = torch.Generator().manual_seed(int(seed))
        self.n_in = spec.input_size if cue else N_PIXELS
        fresh = _init_layers([self.n_in, *HIDDEN, spec.output_size], g)
        if pretrained:
            feats = feature_network(feature_config(feature_seed))[0][:-1]
            w0 = fresh[0][0].clone()
            w0[:, :N_PIXELS] = feats[0][0]
            w0[:, N_PIXELS:] *= 0.1                     # small random cue weights
            fresh = [(w0, feats[0][1].clone())] + [(w.clone(), b.clone()) for w, b in feats[1:]] + fresh[-1:]
        self.layers = torch.nn.ParameterList(torch.nn.Parameter(p, requires_grad=False) for wb in fresh for p in wb)
        self.lr_w = lr_w
        self.opt = Adam(self.layers, lr_w) if optimizer == "adam" else None

    def parameters(self, recurse: bool = True) -> list[torch.Tensor]:
        return list(self.layers)

    def _optimized(self) -> list[torch.Tensor]:
        return list(self.layers)

    def _forward(self, x, flat):
        return _mlp_forward(list(zip(flat[::2], flat[1::2])), x[..., :self.n_in].to(flat[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, list(self.layers))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float | torch.Tensor:
        params = [p.clone().requires_grad_() for p in self.layers]
        with torch.enable_grad():
            loss = _cross_entropy(self._forward(x, params), y.to(params[0].device))
            grads = torch.autograd.grad(loss.sum(), params)
        if self.opt is not None:
            self.opt.step(list(self.layers), grads)
        else:
            for p, g in zip(self.layers, grads):
                p -= self.lr_w * g
        return self._loss_value(loss)


# --- registration -----------------------------------------------------------------------

def _digits(spec):
    if spec.sequence:
        return "needs non-sequence inputs (a feedforward network)"
    if spec.input_size - N_PIXELS not in (0, spec.n_tasks):
        return (f"needs 8x8 digit images ({N_PIXELS} pixels, optionally + {spec.n_tasks} cue units), "
                f"got input_size {spec.input_size}")
    return None


def _digits_cued(spec):
    reason = _digits(spec)
    if reason is None and spec.input_size != N_PIXELS + spec.n_tasks:
        return (f"mlp-cued needs the task cue in its input ({N_PIXELS} pixels + {spec.n_tasks} cue units): "
                "set cue=True")
    return reason


KINDS = ("classification",)
TUNING = "the paper's settings (lr_w 1e-3, lr_c 2, dt 0.1, lam 0.1); no per-paradigm tuning"
TUNING_MLP = "the gated readout's learning rule and rate (lr_w 1e-3)"
#: the learning rate searched by ``switchbench tune``: the published lr_w and a decade either side
LR_GRID = (1e-4, 1e-3, 1e-2)


@register("gated-mlp", description="Frozen pretrained digit-feature MLP + gated readout with fast, non-negative, "
          "bounded gates", citation=CITATION, kinds=KINDS, supports=_digits, tuning=TUNING,
          tunable={"lr_w": LR_GRID})
def make_gated_mlp(spec, seed, n_paths: int | None = None, lr_w=1e-3, lr_c=2.0, dt=0.1, lam=0.1, c_init: float | None = None, w_init=0.01,
                   optimizer="sgd", feature_seed=0):
    """Gated readout over a frozen pretrained feature MLP, fast bounded gates."""
    return GatedMLP(spec, seed, n_paths=n_paths or spec.n_tasks, lr_w=lr_w, lr_c=lr_c, dt=dt, lam=lam, c_init=c_init,
                    w_init=w_init, optimizer=optimizer, feature_seed=feature_seed)


@register("gated-mlp-forgetful", description="Control: gated-mlp with slow gates (gate step = lr_w) and no gate "
          "penalty", citation=CITATION, kinds=KINDS, supports=_digits, tuning=TUNING,
          tunable={"lr_w": LR_GRID})
def make_gated_mlp_forgetful(spec, seed, n_paths: int | None = None, lr_w=1e-3, lr_c=1e-2, dt=0.1, lam=0.0, c_init: float | None = None,
                             w_init=0.01, optimizer="sgd", feature_seed=0):
    """The forgetful control: gates as slow as the weights (dt * lr_c = lr_w), no gate penalty."""
    return make_gated_mlp(spec, seed, n_paths=n_paths, lr_w=lr_w, lr_c=lr_c, dt=dt, lam=lam, c_init=c_init,
                          w_init=w_init, optimizer=optimizer, feature_seed=feature_seed)


@register("mlp", description="Baseline: the same MLP (pretrained initialisation, all layers trained), no gates, "
          "never sees the cue",
          kinds=KINDS, supports=_digits, tuning=TUNING_MLP,
          tunable={"lr_w": LR_GRID})
def make_mlp(spec, seed, lr_w=1e-3, optimizer="sgd", feature_seed=0, pretrained=True):
    """The feature MLP plus one readout, every layer trained (same rule as the gated readout); no gates,
    no cue (a cue in the input is cut off: use ``mlp-cued`` for the cued network)."""
    return MLP(spec, seed, lr_w=lr_w, optimizer=optimizer, feature_seed=feature_seed, pretrained=pretrained, cue=False)


@register("mlp-cued", description="Baseline: the ungated MLP with the task cue in its input", kinds=KINDS,
          supports=_digits_cued, tuning=TUNING_MLP, tunable={"lr_w": LR_GRID})
def make_mlp_cued(spec, seed, lr_w=1e-3, optimizer="sgd", feature_seed=0, pretrained=True):
    """The ungated MLP given the task cue with the pixels (needs ``cue=True``)."""
    return MLP(spec, seed, lr_w=lr_w, optimizer=optimizer, feature_seed=feature_seed, pretrained=pretrained)
