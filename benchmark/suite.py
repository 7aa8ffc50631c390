"""Many runs at once: a list of (paradigm, model, seed, overrides), run in parallel
worker processes (joblib, ``backend="local"``) or as a Slurm job array (submitit,
``backend="slurm"``), one torch thread per worker unless told otherwise.

Every run is cached as soon as it finishes (atomically), and cached runs are loaded, not
recomputed: an interrupted sweep loses no finished run and resumes where it stopped. A run
that fails (an exception, a NaN loss, a model declining the paradigm) is recorded as a
:class:`Failure` with its reason; the others go on.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from switchbench import models
from switchbench.benchmark.runner import RunResult, cache_root, is_cached, run
from switchbench.errors import SwitchbenchError

BACKENDS = ("local", "slurm")


@dataclass(frozen=True)
class RunSpec:
    paradigm: str
    model: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    spec: RunSpec
    reason: str


def run_one(spec: RunSpec, threads: int = 1, cache_dir: str | None = None) -> RunResult | Failure:
    """One run in a worker: set the torch thread count (and the cache), run, never raise."""
    import torch

    torch.set_num_threads(threads)
    if cache_dir is not None:
        os.environ["SWITCHBENCH_CACHE"] = cache_dir
    try:
        return run(spec.paradigm, spec.model, spec.seed, progress=False, **spec.overrides)
    except SwitchbenchError as e:
        return Failure(spec, str(e))
    except Exception as e:  # noqa: BLE001 - a broken model must not stop the suite
        return Failure(spec, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")


def _indexed(i: int, spec: RunSpec, threads: int):
    return i, run_one(spec, threads)


def _cached(spec: RunSpec) -> bool:
    try:
        return is_cached(spec.paradigm, spec.model, spec.seed, **spec.overrides)
    except SwitchbenchError:
        return False   # run_one records the failure with its reason


def _run_batched(specs: list[RunSpec], sampler: str, results: list, bar) -> None:
    """Run the specs the batched engine takes, one batched program per (paradigm, model,
    overrides), in this process; a group it declines or that fails is left (None) for the
    per-seed runner, which then records each seed's own failure."""
    from switchbench.benchmark.batched import MODELS, run_batched

    groups: dict[str, list[int]] = {}
    for i, s in enumerate(specs):
        if s.model in MODELS:
            groups.setdefault(json.dumps([s.paradigm, s.model, s.overrides], sort_keys=True, default=str), []).append(i)
    for idx in groups.values():
        s = specs[idx[0]]
        try:
            res = run_batched(s.paradigm, s.model, [specs[i].seed for i in idx], sampler=sampler, progress=False,
                              **s.overrides)
        except Exception:  # noqa: BLE001 - declined or failed: the per-seed runner records why
            continue
        for i, r in zip(idx, res):
            results[i] = r
        bar.update(len(idx))


def run_many(specs: Iterable[RunSpec], jobs: int = 1, progress: bool = True, desc: str = "runs",
             backend: str = "local", threads: int = 1, slurm: dict | None = None,
             batched: str | None = None) -> list[RunResult | Failure]:
    """Run every spec; results in the order given. Cached runs load in this process; the
    rest run on ``jobs`` local workers or as a Slurm array of at most ``jobs`` at once.

    ``batched``: a sampler of :mod:`switchbench.benchmark.batched` (``"samples"`` or
    ``"wishart"``) to run first, in this process, the seeds of each configuration that
    engine supports as one batched program (cached under their own keys); None (default)
    runs every spec through the per-seed runner.
    """
    if backend not in BACKENDS:
        raise SwitchbenchError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    specs = list(specs)
    results: list = [None] * len(specs)
    bar = tqdm(total=len(specs), desc=desc, disable=not progress)
    if batched:
        _run_batched(specs, batched, results, bar)
    todo = [i for i, s in enumerate(specs) if results[i] is None and not _cached(s)]
    _load_cached(specs, results, set(todo), threads, bar)   # first, so that the bar counts them from the start
    if backend == "slurm" and todo:
        done = _slurm(specs, todo, jobs, threads, slurm or {})
    elif jobs == 1 or len(todo) <= 1:
        done = ((i, run_one(specs[i], threads)) for i in todo)
    else:
        par = Parallel(n_jobs=jobs, return_as="generator_unordered")
        done = par(delayed(_indexed)(i, specs[i], threads) for i in todo)
    for i, r in done:
        results[i] = r
        bar.update()
    bar.close()
    return results


def _load_cached(specs: list[RunSpec], results: list, todo: set[int], threads: int, bar) -> None:
    """Load the cached runs (every spec not in ``todo`` and not done yet), one bar step each."""
    for i, s in enumerate(specs):
        if results[i] is None and i not in todo:
            results[i] = run_one(s, threads)
            bar.update()


def _slurm(specs, todo, jobs, threads, options):
    """Submit the runs in ``todo`` as one Slurm job array through submitit; yield as they end."""
    try:
        import submitit
    except ImportError:
        raise SwitchbenchError("the slurm backend needs submitit: pip install 'switchbench[slurm]'") from None
    cache = str(cache_root().resolve())
    executor = submitit.AutoExecutor(folder=Path(cache) / "slurm" / "%j", cluster="slurm")
    executor.update_parameters(slurm_array_parallelism=jobs, cpus_per_task=threads,
                               timeout_min=options.get("timeout_min", 60), **options.get("parameters", {}))
    try:
        submitted = executor.map_array(run_one, [specs[i] for i in todo], [threads] * len(todo), [cache] * len(todo))
    except Exception as e:  # noqa: BLE001 - sbatch missing, cluster down, bad parameters
        raise SwitchbenchError(f"slurm submission failed: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    pending = dict(zip(submitted, todo))
    while pending:
        for job in [j for j in pending if j.done()]:
            i = pending.pop(job)
            try:
                yield i, job.result()
            except Exception as e:  # noqa: BLE001 - the job itself died (killed, timed out)
                yield i, Failure(specs[i], f"slurm job {job.job_id} failed: {str(e).splitlines()[0]}")
        if pending:
            time.sleep(0.5)


def seeds(paradigm: str, model: str, n: int, **overrides) -> list[RunSpec]:
    """Seeds 0..n-1 of one configuration."""
    return [RunSpec(paradigm, model, s, dict(overrides)) for s in range(n)]


def metrics_table(results) -> pd.DataFrame:
    """Tidy long table: paradigm, model, seed, metric, value (failed runs as ``failed`` rows); a
    ``module:factory`` model is labelled by its registered name (:func:`switchbench.models.label`)."""
    rows = []
    for r in results:
        if isinstance(r, Failure):
            rows.append({"paradigm": r.spec.paradigm, "model": models.label(r.spec.model), "seed": r.spec.seed,
                         "metric": "failed", "value": float("nan"), "reason": r.reason})
            continue
        for name, value in r.metrics.items():
            rows.append({"paradigm": r.config["paradigm"], "model": models.label(r.config["model"]), "seed": r.config["seed"],
                         "metric": name, "value": value, "reason": ""})
    return pd.DataFrame(rows, columns=["paradigm", "model", "seed", "metric", "value", "reason"])
