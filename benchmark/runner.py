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
import inspect
import json
import math
import os
import shutil
import tempfile
import time
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
    return {**env_params, **env_kw}, {**model_params, **model_kw}


def validate(paradigm: str, model: str, overrides: dict[str, Any]) -> None:
    """Fail early, with one clear line, on a bad name, parameter or configuration."""
    _, gym_id, env_cls = resolve_paradigm(paradigm)
    entry = models.get(model)
    env_params, _ = split_overrides(env_cls, entry, overrides)
    reason = entry.decline_reason(gymnasium.make(gym_id, disable_env_checker=True, **env_params).unwrapped.task_spec)
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


def run_key(config: dict) -> str:
    blob = json.dumps({"config": config, "version": switchbench.__version__, "source": source_hash()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_dir(config: dict) -> Path:
    name = config["model"].replace(":", "_").replace("/", "_")
    return cache_root() / "runs" / config["paradigm"] / f"{name}-seed{config['seed']}-{run_key(config)}"


def make_config(short: str, gym_id: str, env_params: dict, model: str, model_params: dict, seed: int,
                runner: dict) -> dict:
    """The full configuration of one run (its cache key); ``runner`` holds the runner's own
    settings (k_adapt, n_eval, criterion, threshold; the batched engine adds its sampler)."""
    return _jsonable({"paradigm": short, "paradigm_id": gym_id, "paradigm_params": env_params, "model": model,
                      "model_params": model_params, "seed": int(seed), "runner": runner})


# --- the run ----------------------------------------------------------------------------

def _seed_int(ss: np.random.SeedSequence) -> int:
    return int(ss.generate_state(1)[0])


def _split(t: torch.Tensor, chunks: int, sequence: bool) -> list[torch.Tensor]:
    return list(torch.chunk(t, chunks, dim=1 if sequence else 0))


SHAPE_HINT = ("; size the model from its spec: spec.input_size features per sample (the task cue included), "
              "spec.output_size outputs, batches (time, batch, features) where spec.sequence")


def _call(what: str, fn, *args):
    """Call into a model; anything it raises becomes one clear line naming the model and call."""
    try:
        return fn(*args)
    except SwitchbenchError:
        raise
    except Exception as e:  # noqa: BLE001 - third-party models may raise anything
        msg = str(e).splitlines()[0] if str(e) else ""
        if isinstance(e, RuntimeError) and "shape" in msg:   # e.g. torch's "mat1 and mat2 shapes cannot be multiplied"
            msg += SHAPE_HINT
        raise SwitchbenchError(f"{what} failed: {type(e).__name__}: {msg}") from None


def configure(paradigm: str, model: str, seed: int = 0, *, k_adapt: int = DEFAULT_K_ADAPT,
              n_eval: int = DEFAULT_N_EVAL, criterion: str | None = None, threshold: float | None = None,
              **overrides) -> tuple[dict, Any, models.ModelEntry]:
    """The full configuration of a run (its cache key), its environment and model entry."""
    short, gym_id, env_cls = resolve_paradigm(paradigm)
    entry = models.get(model)
    env_params, model_params = split_overrides(env_cls, entry, overrides)
    env = gymnasium.make(gym_id, disable_env_checker=True, **env_params).unwrapped
    spec = env.task_spec
    criterion = criterion or spec.switch_criterion[0]
    threshold = spec.switch_criterion[1] if threshold is None else threshold
    config = make_config(short, gym_id, env_params, model, model_params, seed,
                         {"k_adapt": k_adapt, "n_eval": n_eval, "criterion": criterion, "threshold": threshold})
    return config, env, entry


def is_cached(paradigm: str, model: str, seed: int = 0, **kwargs) -> bool:
    """Whether this run is already in the cache."""
    return (run_dir(configure(paradigm, model, seed, **kwargs)[0]) / "metrics.json").exists()


def run(paradigm: str, model: str, seed: int = 0, *, cache: bool = True, progress: bool = True,
        **kwargs) -> RunResult:
    """Run ``model`` on ``paradigm`` with one ``seed``; keyword arguments are the runner's
    options (``k_adapt``, ``n_eval``, ``criterion``, ``threshold``) or set paradigm and model
    parameters by name (``paradigm.key`` / ``model.key`` where both have it).

    The result is cached under a hash of the full configuration, the package version and
    its source; a cached run is loaded instead of recomputed (``cache=False`` skips both).
    The switch criterion (a log column and threshold) defaults to the paradigm's own.
    """
    config, env, entry = configure(paradigm, model, seed, **kwargs)
    path = run_dir(config)
    if cache and (path / "metrics.json").exists():
        return load_run(path)
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
        if "performance" in info:    # the paradigm's own trial score (e.g. Yang et al.'s performance)
            cols.setdefault("performance", []).append(float(info["performance"]))
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
    result = RunResult(config=config, log=log, metrics=metrics, R0=R0, Rk=Rk, probes=probes, robustness=robust)
    if cache:
        result.path = save_run(result, path)
    return result


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
    if "performance" in log:
        out["final_performance"] = float(tail["performance"].mean())
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


# --- the run cache ----------------------------------------------------------------------

def save_run(result: RunResult, path: Path) -> Path:
    """Write a run atomically: into a temporary folder beside ``path``, then one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".tmp-"))
    try:
        meta = {**result.config, "version": switchbench.__version__, "source_hash": source_hash()}
        (tmp / "config.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        # gzip level 1: several times faster to write than the default 9, files a little larger
        result.log.to_csv(tmp / "log.csv.gz", index=False, compression={"method": "gzip", "compresslevel": 1})
        arrays = {"R0": result.R0, "Rk": result.Rk, **{f"probe.{k}": v for k, v in result.probes.items()}}
        np.savez_compressed(tmp / "arrays.npz", **arrays)
        if result.robustness is not None:
            result.robustness.to_csv(tmp / "robustness.csv", index=False)
        (tmp / "metrics.json").write_text(json.dumps(result.metrics, indent=1, sort_keys=True))
        try:
            os.replace(tmp, path)
        except OSError:   # another process finished the same run first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_run(path: Path) -> RunResult:
    """Load a cached run (JSON, CSV and ``.npz`` read without pickle)."""
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    for k in ("version", "source_hash"):
        config.pop(k, None)
    with np.load(path / "arrays.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    probes = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("probe.")}
    log = pd.read_csv(path / "log.csv.gz")
    robust = pd.read_csv(path / "robustness.csv") if (path / "robustness.csv").exists() else None
    return RunResult(config=config, log=log, metrics=json.loads((path / "metrics.json").read_text()),
                     R0=arrays["R0"], Rk=arrays["Rk"], probes=probes, robustness=robust, path=path)
