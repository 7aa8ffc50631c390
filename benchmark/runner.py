"""One run: a model learns a paradigm's curriculum with one seed; the runner logs every
step, evaluates at every block end and computes the metrics.

Read it top to bottom: resolve names and parameters -> seeds -> the learning loop
(predict, env.step, learn) -> evaluation matrices R0/Rk at each block end -> metrics ->
the run cache.

Seeds: ``numpy.random.SeedSequence(seed)`` spawns three children that seed, separately,
the paradigm stream, the model initialisation and the evaluation sets.
"""
from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import inspect
import json
import math
import numbers
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

import switchbench
from switchbench import models
from switchbench.benchmark import metrics as M
from switchbench.errors import SwitchbenchError, unknown
from switchbench.losses import IGNORE, task_loss
from switchbench.paradigms import PARADIGMS

DEFAULT_K_ADAPT = 50
DEFAULT_N_EVAL = 1000


@dataclass
class RunResult:
    """Everything one run produced; ``log`` is tidy (one row per step)."""

    config: dict
    log: pd.DataFrame
    metrics: dict[str, float]
    R0: np.ndarray                     # R0[b, k]: normalised held-out loss on task k at the end of block b
    Rk: np.ndarray                     # the same after k_adapt learning steps on a copy of the model
    probes: dict[str, np.ndarray] = field(default_factory=dict)   # name -> (n_blocks, ...) at block ends
    robustness: pd.DataFrame | None = None   # the final model under perturbations (models with ``perturb``)
    cue_probes: pd.DataFrame | None = None   # the final model under composed rule cues (paradigms with cue probes)
    path: Path | None = None           # where the run is cached

    @property
    def switch_times(self) -> pd.DataFrame:
        c = self.config["runner"]
        return M.switch_time(self.log, c["criterion"], c["threshold"])


# --- names and parameters ---------------------------------------------------------------

def resolve_paradigm(name: str) -> tuple[str, str, type]:
    """``(short name, Gymnasium id, env class)`` for a short name or a Gymnasium id."""
    for short, (gym_id, entry) in PARADIGMS.items():
        if name in (short, gym_id):
            module, _, cls = entry.partition(":")
            return short, gym_id, getattr(__import__(module, fromlist=[cls]), cls)
    raise unknown("paradigm", name, PARADIGMS)


def _defaults(fn, skip: int = 0) -> dict[str, Any]:
    params = list(inspect.signature(fn).parameters.values())[skip:]
    return {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def split_overrides(env_cls: type, entry: models.ModelEntry, overrides: dict[str, Any]):
    """Split ``key=value`` overrides into paradigm and model parameters (``paradigm.key`` /
    ``model.key`` force a side); a key both accept, or neither, is an error."""
    env_params, model_params = _defaults(env_cls.__init__, skip=1), entry.hparams()
    env_kw, model_kw = {}, {}
    for key, value in overrides.items():
        side, _, bare = key.rpartition(".")
        if side == "paradigm" or (not side and bare in env_params and bare not in model_params):
            if bare not in env_params:
                raise SwitchbenchError(f"paradigm has no parameter {bare!r}; valid: {', '.join(sorted(env_params))}")
            env_kw[bare] = value
        elif side == "model" or (not side and bare in model_params and bare not in env_params):
            if bare not in model_params:
                raise SwitchbenchError(f"model {entry.card.name!r} has no parameter {bare!r}; "
                                       f"valid: {', '.join(sorted(model_params)) or '(none)'}")
            model_kw[bare] = value
        elif not side and bare in env_params:
            raise SwitchbenchError(f"{bare!r} is both a paradigm and a model parameter; "
                                   f"write paradigm.{bare}= or model.{bare}=")
        else:
            raise SwitchbenchError(f"unknown parameter {key!r}; paradigm: {', '.join(sorted(env_params))}; "
                                   f"model: {', '.join(sorted(model_params)) or '(none)'}")
    for kw, defaults in ((env_kw, env_params), (model_kw, model_params)):
        for key, value in kw.items():
            check_type(key, value, defaults[key])
    return {**env_params, **env_kw}, {**model_params, **model_kw}


def check_type(key: str, value, default) -> None:
    """A parameter's value must have its default's type: a bool for a bool, an integer for
    an integer, a number for a float (other defaults, such as None or a string, are left to
    the paradigm or model to check)."""
    if isinstance(default, bool):
        ok, what = isinstance(value, (bool, np.bool_)), "true or false"
    elif _is_int(default):
        ok, what = _is_int(value), "an integer"
    elif isinstance(default, float):
        ok, what = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)), "a number"
    else:
        return
    if not ok:
        raise SwitchbenchError(f"{key} must be {what}, got {value!r}")


def validate(paradigm: str, model: str, overrides: dict[str, Any]) -> None:
    """Fail early, with one clear line, on a bad name, parameter or configuration (runner
    options included: ``k_adapt``, ``n_eval``, ``criterion``, ``threshold``)."""
    _, env, entry = configure(paradigm, model, 0, **overrides)
    reason = entry.decline_reason(env.task_spec)
    if reason:
        raise SwitchbenchError(reason)


def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return v


@lru_cache(maxsize=1)
def source_hash() -> str:
    """A hash of the installed package's source: a changed implementation never reuses a cached run.
    (The subpackages' folders are listed too: in an editable install they are not below the root.)"""
    import switchbench.benchmark
    import switchbench.paradigms

    packages = (switchbench, switchbench.paradigms, models, switchbench.benchmark)
    files = sorted({f for p in packages for f in Path(p.__path__[0]).rglob("*.py")})
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("SWITCHBENCH_CACHE", ".cache"))


@lru_cache(maxsize=None)
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_source(model: str) -> dict:
    """What identifies a model's code beyond switchbench's own source: a hash of the source
    file of the module that defines its factory (a plug-in's module, entry point or
    ``@register`` in user code) and the version of the distribution that installed it.

    >>> model_source("linear")["module"]
    'switchbench.models.linear'
    """
    factory = models.get(model).factory
    module = inspect.getmodule(factory)
    name = getattr(module, "__name__", getattr(factory, "__module__", None))
    out = {"module": name, "source": None, "distribution": None}
    path = getattr(module, "__file__", None)
    try:
        out["source"] = _file_hash(path)[:16] if path else \
            hashlib.sha256(inspect.getsource(factory).encode()).hexdigest()[:16]
    except (OSError, TypeError):
        out["source"] = None   # no source to read (a built-in or a compiled factory): the version below
    top = (name or "").split(".")[0]
    dists = sorted(set(_distributions().get(top, [])))
    if dists:
        out["distribution"] = {d: _version(d) for d in dists}
    return out


def code_versions(model: str) -> dict:
    """Everything besides the configuration that a run's numbers depend on, all in its cache
    key: switchbench's version and source hash, the model's own code (:func:`model_source`)
    and the versions of torch, numpy and neurogym."""
    return {"switchbench": switchbench.__version__, "source": source_hash(), "model": model_source(model),
            "torch": torch.__version__, "numpy": np.__version__, "neurogym": _version("neurogym")}


def run_key(config: dict) -> str:
    """The cache key of a run: a hash of its full configuration and :func:`code_versions`."""
    blob = json.dumps({"config": config, "code": code_versions(config["model"])}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def slug(name: str) -> str:
    """A file-name-safe form of a name: anything but letters, digits, ``.``, ``_`` and ``-``
    becomes ``_``, and no leading dot.

    >>> slug("my_pkg.models:make"), slug("../etc/x")
    ('my_pkg.models_make', '_etc_x')
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).lstrip(".") or "_"


def run_dir(config: dict) -> Path:
    name = f"{slug(config['model'])}-seed{config['seed']}-{run_key(config)}"
    return cache_root() / "runs" / slug(config["paradigm"]) / name


def make_config(short: str, gym_id: str, env_params: dict, model: str, model_params: dict, seed: int,
                runner: dict) -> dict:
    """The full configuration of one run (its cache key); ``runner`` holds the runner's own
    settings (k_adapt, n_eval, criterion, threshold; the batched engine adds its sampler)."""
    return _jsonable({"paradigm": short, "paradigm_id": gym_id, "paradigm_params": env_params, "model": model,
                      "model_params": model_params, "seed": int(seed), "runner": runner})


# --- options, memory and threads -------------------------------------------------------

RUNNER_OPTIONS = ("k_adapt", "n_eval", "criterion", "threshold")
CRITERIA = ("norm_loss", "loss", "accuracy", "performance")
REFRESH = "refresh"


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_runner_options(k_adapt, n_eval, criterion, threshold) -> None:
    """The runner's own options, checked the same way wherever they come from (the Python
    API, ``--set``, a suite file)."""
    if not _is_int(k_adapt) or k_adapt < 0:
        raise SwitchbenchError(f"k_adapt must be an integer >= 0, got {k_adapt!r}")
    if not _is_int(n_eval) or n_eval < 1:
        raise SwitchbenchError(f"n_eval must be an integer >= 1, got {n_eval!r}")
    if criterion is not None and criterion not in CRITERIA:
        raise SwitchbenchError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    if threshold is not None and not (isinstance(threshold, numbers.Real) and not isinstance(threshold, bool)
                                      and math.isfinite(threshold)):
        raise SwitchbenchError(f"threshold must be a finite number, got {threshold!r}")


def cache_mode(cache: bool | str | None) -> bool | str:
    """``True`` (load a verified entry, else run and store), ``False`` (neither) or
    ``"refresh"`` (run and overwrite); None reads ``$SWITCHBENCH_NO_CACHE`` (set: refresh)."""
    if cache is None:
        return REFRESH if os.environ.get("SWITCHBENCH_NO_CACHE") else True
    if cache not in (True, False, REFRESH):
        raise SwitchbenchError(f"cache must be True, False or {REFRESH!r}, got {cache!r}")
    return cache


@contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``threads`` torch threads (None: unchanged), then restore the caller's."""
    if threads is None:
        yield
        return
    if not _is_int(threads) or threads < 1:
        raise SwitchbenchError(f"threads must be an integer >= 1, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def available_memory() -> int:
    """Bytes this machine can still allocate: ``MemAvailable`` of ``/proc/meminfo``, else its physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def memory_terms(params: dict, k_adapt: int, n_eval: int, sample: int | None = None,
                 n_tasks: int | None = None) -> dict[str, int]:
    """A rough lower bound of the bytes one run allocates, per parameter that drives it,
    from the shapes alone: the curriculum and its step log (about 400 bytes a step), a
    teacher rotation of ``input_size`` squared, pools of trials (``*pool_size``, a kilobyte
    a trial), and, once one sample's size is known
    (``sample`` floats, time steps included), a training batch with the model's work on it
    (x 8), the held-out sets (``n_eval`` per task) and the adaptation batches (``k_adapt``).

    >>> memory_terms({"n_blocks": 10, "block_size": 100, "batch_size": 50}, 50, 1000)
    {'n_blocks x block_size': 400000, 'batch_size': 1600}
    """
    ints = {k: int(v) for k, v in params.items() if _is_int(v) and v > 0}
    schedule = params.get("schedule")
    blocks = len(schedule) if isinstance(schedule, (list, tuple)) else ints.get("n_blocks", 1)
    out = {"n_blocks x block_size": 400 * blocks * ints.get("block_size", 1)}
    if "input_size" in ints:
        out["input_size"] = 16 * ints["input_size"] ** 2
    for name in (k for k in ints if k.endswith("pool_size")):   # pools of trials: a kilobyte each at least
        out[name] = 1024 * ints[name]
    width = sample or ints.get("input_size", 1)
    batch = ints.get("batch_size", 1)
    out["batch_size"] = 32 * batch * width
    if sample:
        out["n_eval"] = 8 * (n_tasks or 1) * n_eval * sample
        out["k_adapt"] = 8 * k_adapt * batch * sample
    return out


def check_memory(terms: dict[str, int]) -> None:
    """Refuse, naming the parameter that drives it, a run that would not fit in memory."""
    total, avail = sum(terms.values()), available_memory()
    if total > avail:
        name = max(terms, key=terms.get)
        raise SwitchbenchError(f"this run would need at least {total / 2**30:.3g} GiB of memory, most of it for "
                               f"{name} ({terms[name] / 2**30:.3g} GiB), and {avail / 2**30:.3g} GiB are available: "
                               f"reduce {name}")


def make_env(short: str, gym_id: str, env_params: dict, k_adapt: int = DEFAULT_K_ADAPT,
             n_eval: int = DEFAULT_N_EVAL):
    """Build a paradigm (unwrapped), refusing with one line parameters it rejects or that
    would not fit in memory (checked from the shapes before and after building it)."""
    check_memory(memory_terms(env_params, k_adapt, n_eval))
    try:
        env = gymnasium.make(gym_id, disable_env_checker=True, **env_params).unwrapped
        x = np.asarray(env.eval_batch(0, 1, seed=(0, 0, 0))[0])
    except SwitchbenchError:
        raise
    except MemoryError:
        raise SwitchbenchError(f"{short}: not enough memory to build it with these parameters") from None
    except Exception as e:  # noqa: BLE001 - a paradigm rejecting a parameter of the wrong type
        raise SwitchbenchError(f"{short} rejected its parameters: {type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}") from None
    check_memory(memory_terms(env_params, k_adapt, n_eval, sample=x.size, n_tasks=env.task_spec.n_tasks))
    return env


# --- the run ----------------------------------------------------------------------------

def _seed_int(ss: np.random.SeedSequence) -> int:
    return int(ss.generate_state(1)[0])


def _split(t: torch.Tensor, chunks: int, sequence: bool) -> list[torch.Tensor]:
    return list(torch.chunk(t, chunks, dim=1 if sequence else 0))


SHAPE_HINT = ("; size the model from its spec: spec.input_size features per sample (the task cue included), "
              "spec.output_size outputs, batches (time, batch, features) where spec.sequence")


def _call(what: str, fn, *args):
    """Call into a model; anything it raises, or a return value of the wrong type, becomes
    one clear line naming the model and the call (``learn`` returns a float, ``predict`` a tensor)."""
    try:
        out = fn(*args)
    except SwitchbenchError:
        raise
    except MemoryError:
        raise SwitchbenchError(f"{what} ran out of memory") from None
    except Exception as e:  # noqa: BLE001 - third-party models may raise anything
        msg = str(e).splitlines()[0] if str(e) else ""
        if isinstance(e, RuntimeError) and "shape" in msg:   # e.g. torch's "mat1 and mat2 shapes cannot be multiplied"
            msg += SHAPE_HINT
        raise SwitchbenchError(f"{what} failed: {type(e).__name__}: {msg}") from None
    call = what.rsplit(": ", 1)[-1]
    if call == "learn":
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            return float(out)
        if not isinstance(out, numbers.Real) or isinstance(out, bool):
            raise SwitchbenchError(f"{what} returned {type(out).__name__}, expected a number (the loss before "
                                   "the update)")
        return float(out)
    if call == "predict" and not isinstance(out, torch.Tensor):
        raise SwitchbenchError(f"{what} returned {type(out).__name__}, expected a torch.Tensor")
    return out


def configure(paradigm: str, model: str, seed: int = 0, *, k_adapt: int = DEFAULT_K_ADAPT,
              n_eval: int = DEFAULT_N_EVAL, criterion: str | None = None, threshold: float | None = None,
              **overrides) -> tuple[dict, Any, models.ModelEntry]:
    """The full configuration of a run (its cache key), its environment and model entry;
    every option and parameter is checked first (one clear line when bad)."""
    check_runner_options(k_adapt, n_eval, criterion, threshold)
    if not _is_int(seed) or seed < 0:
        raise SwitchbenchError(f"seed must be an integer >= 0, got {seed!r}")
    short, gym_id, env_cls = resolve_paradigm(paradigm)
    entry = models.get(model)
    env_params, model_params = split_overrides(env_cls, entry, overrides)
    env = make_env(short, gym_id, env_params, k_adapt, n_eval)
    spec = env.task_spec
    criterion = criterion or spec.switch_criterion[0]
    threshold = spec.switch_criterion[1] if threshold is None else threshold
    if criterion == "accuracy" and spec.loss != "cross_entropy":
        raise SwitchbenchError(f"criterion 'accuracy' needs a classification paradigm; {short} is {spec.kind}")
    config = make_config(short, gym_id, env_params, model, model_params, seed,
                         {"k_adapt": k_adapt, "n_eval": n_eval, "criterion": criterion, "threshold": threshold})
    return config, env, entry


def is_cached(paradigm: str, model: str, seed: int = 0, **kwargs) -> bool:
    """Whether this run is in the cache, verified (a corrupt entry is removed with a warning)."""
    return load_cached(configure(paradigm, model, seed, **kwargs)[0]) is not None


def run(paradigm: str, model: str, seed: int = 0, *, cache: bool | str = True, progress: bool = True,
        threads: int | None = 1, **kwargs) -> RunResult:
    """Run ``model`` on ``paradigm`` with one ``seed``; keyword arguments are the runner's
    options (``k_adapt``, ``n_eval``, ``criterion``, ``threshold``) or set paradigm and model
    parameters by name (``paradigm.key`` / ``model.key`` where both have it).

    The result is cached under a hash of the full configuration and the code it ran
    (:func:`code_versions`); a cached run is verified and loaded instead of recomputed.
    ``cache=False`` neither loads nor stores; ``cache="refresh"`` recomputes and overwrites.
    ``threads``: torch threads for the run (default 1, as the command line's workers; None
    leaves the setting alone); the caller's setting is restored afterwards. A run whose
    losses or metrics are not finite raises :class:`~switchbench.errors.SwitchbenchError`.
    The switch criterion (a log column and threshold) defaults to the paradigm's own.
    """
    mode = cache_mode(cache)
    config, env, entry = configure(paradigm, model, seed, **kwargs)
    if mode is True and (hit := load_cached(config)) is not None:
        return hit
    with torch_threads(threads):
        result = _run(config, env, entry, progress)
    check_finite(result)
    if mode:
        result.path = save_run(result, run_dir(config), overwrite=mode == REFRESH)
    return result


def _run(config: dict, env, entry: models.ModelEntry, progress: bool) -> RunResult:
    """The learning loop, block-end evaluations and metrics of one configured run."""
    model, seed = config["model"], config["seed"]
    spec, short, model_params = env.task_spec, config["paradigm"], config["model_params"]
    k_adapt, n_eval = config["runner"]["k_adapt"], config["runner"]["n_eval"]

    stream_ss, model_ss, eval_ss = np.random.SeedSequence(int(seed)).spawn(3)
    learner = entry.build(spec, _seed_int(model_ss), **model_params)
    privileged = entry.card.privileged
    label = f"{model} on {short} (seed {seed})"

    # Held-out sets, one per task, fixed for the whole run.
    eval_int = _seed_int(eval_ss)
    held_out = [tuple(map(torch.as_tensor, env.eval_batch(k, n_eval, seed=(eval_int, 0, k))))
                for k in range(spec.n_tasks)]

    def held_out_loss(learner, k: int) -> float:
        return predict_loss(learner, k, *held_out[k], spec, privileged, label)[1]

    def evaluate(block: int) -> tuple[list[float], list[float]]:
        r0 = [held_out_loss(learner, k) for k in range(spec.n_tasks)]
        rk = []
        for k in range(spec.n_tasks):
            adapted = copy.deepcopy(learner)
            if k_adapt:
                xa, ya = map(torch.as_tensor, env.eval_batch(k, k_adapt * spec.batch_size, seed=(eval_int, 1 + block, k)))
                for xb, yb in zip(_split(xa, k_adapt, spec.sequence), _split(ya, k_adapt, spec.sequence)):
                    if privileged:
                        adapted.observe_task(k)
                    _call(f"{label}: learn", adapted.learn, xb, yb)
            rk.append(held_out_loss(adapted, k))
        return r0, rk

    obs, info = env.reset(seed=_seed_int(stream_ss))
    sched = env.curriculum
    n_steps = sched.n_steps
    cols: dict[str, list] = {k: [] for k in ("step", "block", "task", "phase", "switch", "loss")}
    classification = spec.loss == "cross_entropy"
    if classification:
        cols["accuracy"] = []
    probe_cols: dict[str, list] = {}
    R0, Rk, probes = [], [], {}
    train_time = 0.0
    has_probe = hasattr(learner, "probe")
    has_params = callable(getattr(learner, "parameters", None))
    snapshot, before, changed = new_task_blocks(sched), None, []    # parameters changed per new task
    for t in tqdm(range(n_steps), desc=label, disable=not progress, mininterval=0.5, leave=False):
        if has_params and snapshot[t]:
            before = [p.detach().clone() for p in learner.parameters()]
        t0 = time.perf_counter()
        if privileged:
            learner.observe_task(int(sched.task[t]))
        x = torch.from_numpy(obs)
        with torch.no_grad():
            pred = _call(f"{label}: predict", learner.predict, x)
        obs, reward, terminated, _, info = env.step(pred.detach().numpy())
        learned = _call(f"{label}: learn", learner.learn, x, torch.from_numpy(info["target"]))
        train_time += time.perf_counter() - t0
        if not (math.isfinite(reward) and math.isfinite(learned)):
            raise SwitchbenchError(f"{label}: non-finite loss at step {t} (a learning rate too large?)")
        for k in ("step", "block", "task", "phase", "switch"):
            cols[k].append(info[k])
        cols["loss"].append(-reward)
        if classification:
            cols["accuracy"].append(accuracy(pred, torch.from_numpy(info["target"])))
        for k in ("performance", "performance_strict"):   # the paradigm's trial scores (e.g. Yang et al.'s)
            if k in info:
                cols.setdefault(k, []).append(float(info[k]))
        if "trial_switch" in info:   # trial-structured paradigms: switch / repeat, congruency columns
            for k, v in trial_stats(pred, info).items():
                cols.setdefault(k, []).append(v)
        if has_probe:
            for name, v in learner.probe().items():
                if v.numel() <= 16:
                    for i, val in enumerate(v.detach().reshape(-1).tolist()):
                        probe_cols.setdefault(f"{name}_{i}", []).append(val)
        if terminated or sched.block[t + 1] != sched.block[t]:   # end of a block: evaluate and probe
            if before is not None:
                changed.append(sum(int((p.detach() != b).sum()) for p, b in zip(learner.parameters(), before)))
                before = None
            r0, rk = evaluate(int(sched.block[t]))
            R0.append(r0)
            Rk.append(rk)
            if has_probe:
                for name, v in learner.probe().items():
                    probes.setdefault(name, []).append(v.detach().cpu().numpy())

    log = pd.DataFrame({"paradigm": short, "model": models.label(model), "seed": int(seed), **cols, **probe_cols})
    log["norm_loss"] = log["loss"] / np.asarray(spec.null_loss)[log["task"].to_numpy()]
    add_time(log, model_params)
    R0, Rk = np.asarray(R0), np.asarray(Rk)
    probes = {k: np.stack(v) for k, v in probes.items()}
    metrics = compute_metrics(log, R0, Rk, probes, env, config)
    metrics["params"] = float(models.count_parameters(learner) or float("nan"))
    metrics["params_changed_per_task"] = float(np.mean(changed)) if changed else float("nan")
    metrics["wall_ms_per_step"] = 1e3 * train_time / n_steps
    robust = None
    if callable(getattr(learner, "perturb", None)):
        robust = robustness(learner, env, held_out, privileged, eval_int, label)
        metrics.update(M.robustness(robust))
    cue_table = after_curriculum_probes(learner, env, entry, config, label, metrics)
    return RunResult(config=config, log=log, metrics=metrics, R0=R0, Rk=Rk, probes=probes, robustness=robust,
                     cue_probes=cue_table)


def after_curriculum_probes(learner, env, entry, config: dict, label: str, metrics: dict) -> pd.DataFrame | None:
    """The paradigm's own probes of the trained learner (rule-cue composition, transfer to
    held-out tasks: :mod:`switchbench.benchmark.probes`); adds their metrics, returns the cue table."""
    from switchbench.benchmark.probes import run_probes

    table, extra = run_probes(learner, env, entry, config, label)
    metrics.update(extra)
    return table


def add_time(log: pd.DataFrame, model_params: dict) -> None:
    """A ``time`` column (step x dt) for continuous-time models, those with a hyperparameter
    ``dt`` (e.g. ``gated-linear``: dt = 1e-3), so that runs compare with papers that plot time.

    >>> log = pd.DataFrame({"step": [0, 1, 2]})
    >>> add_time(log, {"dt": 0.01}); log["time"].tolist()
    [0.0, 0.01, 0.02]
    """
    dt = model_params.get("dt")
    if isinstance(dt, (int, float)) and not isinstance(dt, bool) and dt > 0:
        log["time"] = log["step"] * float(dt)


def new_task_blocks(sched) -> np.ndarray:
    """True at the first step of each block in which a task is trained for the first time
    (``params_changed_per_task`` counts the parameters that differ at that block's end)."""
    out = np.zeros(len(sched.task), bool)
    seen: set[int] = set()
    for b in np.unique(sched.block):
        steps = np.flatnonzero(sched.block == b)
        tasks = set(np.unique(sched.task[steps]).tolist())
        out[steps[0]] = bool(tasks - seen)
        seen |= tasks
    return out


def predict_loss(learner, k: int, x: torch.Tensor, y: torch.Tensor, spec, privileged: bool,
                 label: str) -> tuple[torch.Tensor, float]:
    """The learner's prediction on task ``k``'s inputs ``x`` (told the task when privileged)
    and its loss on ``y`` normalised by the task's null loss."""
    if privileged:
        learner.observe_task(k)
    with torch.no_grad():
        pred = _call(f"{label}: predict", learner.predict, x)
    return pred, float(task_loss(pred, y, spec.loss)) / spec.null_loss[k]


def robustness(learner, env, held_out: list, privileged: bool, seed: int, label: str,
               repeats: int = M.ROBUSTNESS_REPEATS) -> pd.DataFrame:
    """The final model under each perturbation of :data:`metrics.ROBUSTNESS`, on the run's
    held-out sets: a tidy table (``kind``, ``level``, ``repeat``, ``task``, ``norm_loss``,
    ``score``), ``kind == "none"`` the intact model; formulas in :func:`metrics.robustness`.

    Damage is done to a deep copy by the learner's ``perturb(kind, level, generator)``
    (False: the kind does not apply, and it is left out); input noise is added here, on the
    unmasked steps only. Repeat ``r`` of a perturbation draws its damage from a generator
    seeded by ``(seed, kind, level, r)``: the same damaged network is scored on every task.
    """
    spec = env.task_spec
    classification = spec.loss == "cross_entropy"
    trial_score = getattr(env, "trial_score", None)

    def score(net, k: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        pred, loss = predict_loss(net, k, x, y, spec, privileged, label)
        if trial_score is not None:
            return loss, trial_score(pred.numpy(), y.numpy(), k)
        return loss, accuracy(pred, y) if classification else float("nan")

    rows = []
    for k, (x, y) in enumerate(held_out):
        loss, sc = score(learner, k, x, y)
        rows.append(dict(kind="none", level=0.0, repeat=0, task=k, norm_loss=loss, score=sc))
    for i, (kind, levels) in enumerate(M.ROBUSTNESS.items()):
        for j, level in enumerate(levels):
            for r in range(repeats):
                gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, i, j, r]).generate_state(1)[0]))
                if kind == "input_noise":
                    net = learner
                else:
                    net = copy.deepcopy(learner)
                    if not _call(f"{label}: perturb", net.perturb, kind, level, gen):
                        break
                for k, (x, y) in enumerate(held_out):
                    if kind == "input_noise":
                        noise = level * torch.randn(x.shape, generator=gen, dtype=x.dtype)
                        if classification and spec.sequence:        # the trial's real steps only
                            noise = noise * (y != IGNORE).unsqueeze(-1)
                        x = x + noise
                    loss, sc = score(net, k, x, y)
                    rows.append(dict(kind=kind, level=float(level), repeat=r, task=k, norm_loss=loss, score=sc))
    return pd.DataFrame(rows)


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of unmasked targets (``!= -100``) whose arg-max logit is right."""
    keep = target != IGNORE
    return float((logits.argmax(-1) == target)[keep].float().mean()) if keep.any() else float("nan")


def trial_stats(logits: torch.Tensor, info: dict) -> dict:
    """Per-step columns for paradigms whose ``info`` marks trials (``trial_switch``,
    ``trial_repeat``, optional ``congruent``, each shaped like the target; ``mixed``): for
    each group g of unmasked targets (switch, repeat, congruent, incongruent) its count
    ``n_g``, mean cross-entropy ``loss_g`` and error rate ``error_g`` (NaN when ``n_g = 0``)."""
    target = torch.as_tensor(info["target"])
    keep = target != IGNORE
    flat = logits.reshape(-1, logits.shape[-1]).float()
    ce = torch.nn.functional.cross_entropy(flat, target.reshape(-1), reduction="none",
                                           ignore_index=IGNORE).reshape(target.shape)
    err = (logits.argmax(-1) != target).float()
    groups = {"switch": info["trial_switch"], "repeat": info["trial_repeat"]}
    if "congruent" in info:
        groups["congruent"] = info["congruent"]
        groups["incongruent"] = ~np.asarray(info["congruent"], dtype=bool)
    out = {"mixed": bool(info.get("mixed", True))}
    for name, m in groups.items():
        m = torch.as_tensor(np.asarray(m, dtype=bool)) & keep
        n = int(m.sum())
        out[f"n_{name}"] = n
        out[f"loss_{name}"] = float(ce[m].mean()) if n else float("nan")
        out[f"error_{name}"] = float(err[m].mean()) if n else float("nan")
    return out


def compute_metrics(log: pd.DataFrame, R0: np.ndarray, Rk: np.ndarray, probes: dict, env, config: dict) -> dict:
    """All scalar metrics of one run (see :mod:`switchbench.benchmark.metrics`)."""
    c = config["runner"]
    train = log[log["phase"] == "train"]
    tail = train.iloc[-max(1, len(train) // 10):]
    out = {"final_loss": float(tail["norm_loss"].mean())}
    if "accuracy" in log:
        out["final_accuracy"] = float(tail["accuracy"].mean())
    for k in ("performance", "performance_strict"):
        if k in log:
            out[f"final_{k}"] = float(tail[k].mean())
    if "n_switch" in log:
        out.update(M.trial_metrics(log))
    out.update(M.switch_time_summary(M.switch_time(log, c["criterion"], c["threshold"])))
    trained = M.trained_matrix(log, R0.shape[0], R0.shape[1])
    out["forgetting_R0"], out["forgetting_Rk"] = M.forgetting(R0, trained), M.forgetting(Rk, trained)
    out["bwt_R0"], out["bwt_Rk"] = M.backward_transfer(R0, trained), M.backward_transfer(Rk, trained)
    if (log["phase"] == "compose").any():
        comp = M.composition(log, 100, c["criterion"], c["threshold"])
        out["composition_loss"], out["composition_steps"] = float(comp["loss_k"].mean()), float(comp["steps"].mean())
    teachers = getattr(env, "teachers", None)
    if teachers is not None and "modules" in probes and probes["modules"].ndim == 4:
        mods = probes["modules"][-1][..., : teachers.shape[-1]]
        if mods.shape[1:] == teachers.shape[1:]:
            out["specialisation"] = M.specialisation(teachers, mods)[0]
    return out


def check_finite(result: RunResult) -> None:
    """A run is scored only if every number a model produces is finite: the online losses,
    R0 and Rk (held-out losses, as is and after adaptation), the intact model's losses in
    the robustness table and every metric that is not NaN (NaN marks a metric undefined for
    the run, such as forgetting with one block). Raises with the first offender named."""
    c = result.config
    label = f"{c['model']} on {c['paradigm']} (seed {c['seed']})"
    loss = result.log["loss"].to_numpy(dtype=float)
    if not np.isfinite(loss).all():
        raise SwitchbenchError(f"{label}: non-finite loss at step {int(np.flatnonzero(~np.isfinite(loss))[0])}")
    for name, R, what in (("R0", result.R0, "held-out loss"), ("Rk", result.Rk, "held-out loss after adaptation")):
        bad = np.argwhere(~np.isfinite(np.asarray(R, dtype=float)))
        if len(bad) or np.asarray(R).size == 0:
            b, k = bad[0] if len(bad) else (0, 0)
            raise SwitchbenchError(f"{label}: non-finite {what} ({name}[{b}, {k}]: task {k} after block {b}; "
                                   "a learning rate too large?)")
    rob = result.robustness
    if rob is not None and not np.isfinite(rob.loc[rob["kind"] == "none", "norm_loss"].to_numpy(dtype=float)).all():
        raise SwitchbenchError(f"{label}: non-finite held-out loss of the final model")
    for name, v in result.metrics.items():
        if isinstance(v, float) and math.isinf(v):
            raise SwitchbenchError(f"{label}: metric {name} is {v}")


# --- the run cache ----------------------------------------------------------------------

def warn(message: str) -> None:
    """One warning line on stderr (beside any progress bars)."""
    tqdm.write(f"switchbench: warning: {message}", file=sys.stderr)


class CorruptEntry(SwitchbenchError):
    """A cache entry that does not verify (missing, truncated or edited files)."""


def _meta_checksum(meta: dict) -> str:
    return hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True)
                          .encode()).hexdigest()


def save_run(result: RunResult, path: Path, overwrite: bool = False) -> Path:
    """Write a run atomically: into a temporary folder beside ``path``, then one rename.

    ``config.json`` holds the configuration, the cache key, :func:`code_versions`, a
    SHA-256 of every other file and a checksum of itself, all verified by :func:`load_run`.
    An existing entry is kept (another process finished the same run first) unless
    ``overwrite``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".tmp-"))
    try:
        # gzip level 1: several times faster to write than the default 9, files a little larger
        result.log.to_csv(tmp / "log.csv.gz", index=False, compression={"method": "gzip", "compresslevel": 1})
        arrays = {"R0": result.R0, "Rk": result.Rk, **{f"probe.{k}": v for k, v in result.probes.items()}}
        np.savez_compressed(tmp / "arrays.npz", **arrays)
        if result.robustness is not None:
            result.robustness.to_csv(tmp / "robustness.csv", index=False)
        if result.cue_probes is not None:
            result.cue_probes.to_csv(tmp / "cue_probes.csv", index=False)
        (tmp / "metrics.json").write_text(json.dumps(result.metrics, indent=1, sort_keys=True))
        meta = {"config": result.config, "key": run_key(result.config), "code": code_versions(result.config["model"]),
                "files": {f.name: _file_hash(f) for f in sorted(tmp.iterdir())}}
        meta["checksum"] = _meta_checksum(meta)
        (tmp / "config.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        old = None
        if overwrite and path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=".old-"))
            try:
                os.replace(path, old / "entry")
            except OSError:
                pass
        try:
            os.replace(tmp, path)
        except OSError:   # another process finished the same run first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def verify_entry(path: Path, config: dict | None = None) -> dict:
    """The metadata of a cache entry after checking it: ``config.json`` reads and matches its
    own checksum, every file listed is there with its SHA-256, and (given ``config``) the
    entry is of that configuration and of the code now installed (its key). Raises
    :class:`CorruptEntry` with the reason."""
    path = Path(path)
    try:
        meta = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise CorruptEntry(f"config.json unreadable ({type(e).__name__})") from None
    if not isinstance(meta, dict) or not {"config", "key", "files", "checksum"} <= set(meta):
        raise CorruptEntry("config.json lacks its configuration, key or checksums")
    if meta["checksum"] != _meta_checksum(meta):
        raise CorruptEntry("config.json does not match its checksum")
    if not {"metrics.json", "arrays.npz", "log.csv.gz"} <= set(meta["files"]):
        raise CorruptEntry("the entry lists no metrics, arrays or log")
    for name, digest in meta["files"].items():
        f = path / name
        if name != Path(name).name or not f.is_file():
            raise CorruptEntry(f"{name} is missing")
        if _file_hash(f) != digest:
            raise CorruptEntry(f"{name} does not match its checksum")
    if config is not None and (json.dumps(meta["config"], sort_keys=True) != json.dumps(config, sort_keys=True)
                               or meta["key"] != run_key(config)):
        raise CorruptEntry("it holds another configuration")
    return meta


def load_run(path: Path, config: dict | None = None) -> RunResult:
    """Load a cached run after :func:`verify_entry` (JSON, CSV and ``.npz`` read without pickle)."""
    path = Path(path)
    meta = verify_entry(path, config)
    try:
        with np.load(path / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        probes = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("probe.")}
        log = pd.read_csv(path / "log.csv.gz")
        robust = pd.read_csv(path / "robustness.csv") if "robustness.csv" in meta["files"] else None
        cue = pd.read_csv(path / "cue_probes.csv") if "cue_probes.csv" in meta["files"] else None
        metrics = json.loads((path / "metrics.json").read_text())
        return RunResult(config=meta["config"], log=log, metrics=metrics, R0=arrays["R0"], Rk=arrays["Rk"],
                         probes=probes, robustness=robust, path=path, cue_probes=cue)
    except CorruptEntry:
        raise
    except Exception as e:  # noqa: BLE001 - verified files that still do not parse
        raise CorruptEntry(f"unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def load_cached(config: dict) -> RunResult | None:
    """The cached run of ``config`` if its entry verifies; a corrupt entry is reported (one
    warning line naming its path) and removed, so that the run is recomputed (None)."""
    path = run_dir(config)
    if not path.exists():
        return None
    try:
        return load_run(path, config)
    except CorruptEntry as e:
        warn(f"cache entry {path} is corrupt ({e}); recomputing it")
        trash = Path(tempfile.mkdtemp(dir=path.parent, prefix=".corrupt-"))
        try:
            os.replace(path, trash / "entry")
        except OSError:
            pass    # another process moved it first
        shutil.rmtree(trash, ignore_errors=True)
        return None
