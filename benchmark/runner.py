"""Runs: a model learns a paradigm's curriculum, one seed or several at once; every run is
logged step by step, evaluated at every block end, scored and cached per seed.

The public entry. The parts, each a file to read top to bottom:

- :mod:`~switchbench.benchmark.config`: names, parameters and runner options checked, the
  paradigm built once, each seed's configuration and cache key (:class:`RunConfig`);
- :mod:`~switchbench.benchmark.loop`: the one run loop, seeds as a batch dimension;
- :mod:`~switchbench.benchmark.evaluation`: held-out losses, robustness, metrics;
- :mod:`~switchbench.benchmark.storage`: the verified run cache and :class:`RunResult`.

Its API (``__all__``): :func:`run`, :func:`run_seeds`, :func:`run_group`, :func:`prepare`,
:func:`validate`, :class:`RunConfig`, :class:`RunOptions`, :class:`RunResult`,
:func:`load_run`, :func:`cache_root`, :func:`torch_threads`.

Seeds: ``numpy.random.SeedSequence(seed).spawn(3)`` spawns three children that seed,
separately, the paradigm stream, the model initialisation and the evaluation sets; a seed's
result is the same whether it runs alone or with other seeds (so the cache key never holds
how many seeds ran together).
"""
from __future__ import annotations

from typing import Sequence

from switchbench.benchmark import loop
from switchbench.benchmark.config import REFRESH, RunConfig, RunOptions, check_seed, prepare, torch_threads, validate
from switchbench.benchmark.evaluation import check_finite
from switchbench.benchmark.storage import RunResult, cache_root, load_cached, load_run, run_dir, save_run, warn
from switchbench.errors import SwitchbenchError

#: the documented API (every other part is imported from the module that defines it)
__all__ = ["run", "run_seeds", "run_group", "prepare", "validate", "RunConfig", "RunOptions", "RunResult",
           "load_run", "cache_root", "torch_threads"]


def run(paradigm: str, model: str, seed: int = 0, *, seeds: Sequence[int] | None = None,
        cache: bool | str = True, progress: bool = True, threads: int | None = 1, device: str = "cpu",
        checkpoints: bool = False, record_hidden: bool = False, **kwargs):
    """Run ``model`` on ``paradigm`` with one ``seed`` (a :class:`RunResult`), or with every
    seed of ``seeds`` at once (a list of :class:`RunResult`, one per seed in order: see
    :func:`run_seeds`). Keyword arguments are the runner's options (``k_adapt``, ``n_eval``,
    ``criterion``, ``threshold``, ``sampler``, ``target_perf``, ``check_every``) or set
    paradigm and model parameters by name (``paradigm.key`` / ``model.key`` where both have it).

    ``target_perf`` (one-block curricula of a paradigm that scores trials: cognitive-switch,
    cognitive-compose) trains each seed until it meets Yang et al.'s criterion, as their
    code's ``perf_min > target_perf``: every ``check_every`` steps (default 50) the minimum
    over the trained tasks of the performance on the held-out trials is read, and the run
    stops at the first check that meets it; ``block_size`` is the cap. Metrics
    ``steps_to_target`` (the steps trained) and ``target_met`` (0: censored at the cap). Its
    seeds run one per call (each stops at its own step).

    The result is cached under a hash of the full configuration and the code it ran
    (:func:`~switchbench.benchmark.config.code_versions`); a cached run is verified and
    loaded instead of recomputed. ``cache=False`` neither loads nor stores;
    ``cache="refresh"`` recomputes and overwrites.
    ``threads``: torch threads for the run (default 1, as the command line's workers; None
    leaves the setting alone); the caller's setting is restored afterwards. A run whose
    losses or metrics are not finite raises :class:`~switchbench.errors.SwitchbenchError`.
    The switch criterion (a log column and threshold) defaults to the paradigm's own.

    ``sampler``: ``"wishart"`` is the linear family's covariance engine
    (:mod:`switchbench.models.covariance_engine`: exact held-out expectations, batch covariances
    drawn directly) instead of the run loop; other models refuse it, and it refuses
    ``device="cuda"``, ``checkpoints`` and ``record_hidden`` (one line each). ``"stream"`` is
    the run loop. ``"auto"`` (the default) is the engine wherever it is exact and can honour
    the options (the zoo's linear family on ``blocked-linear``:
    :func:`~switchbench.benchmark.config.resolve_sampler`), else the run loop; a run's
    configuration names ``"sampler": "wishart"`` where the engine made it.

    Outputs kept in memory, never cached: ``RunResult.learner`` is the trained learner
    (None for a run loaded from the cache: ``cache="refresh"`` or ``cache=False`` recompute
    it); ``checkpoints=True`` keeps its state at every block end (``state_dict()`` where it
    has one, else a copy); ``record_hidden=True`` stores the learner's ``record_hidden(x)``,
    its hidden states on each task's held-out inputs (``RunResult.hidden``, one tensor per
    task; a learner without that method fails the run before it trains). With either of
    these two, cached seeds are recomputed (the cache entry is kept, not rewritten), so the
    outputs asked for are never None. ``device``: ``"cpu"``
    (default), ``"cuda"`` or ``"auto"`` (CUDA where available); it is not part of the
    cache key (a run on another device gives the same numbers up to float rounding).
    ``threads``, ``cache``, ``device``, ``checkpoints`` and ``record_hidden`` are checked
    together, before anything runs or loads, as a :class:`RunOptions`.
    """
    out = run_seeds(paradigm, model, [seed] if seeds is None else seeds, cache=cache, progress=progress,
                    threads=threads, device=device, checkpoints=checkpoints, record_hidden=record_hidden, **kwargs)
    return out[0] if seeds is None else out


def run_seeds(paradigm: str, model: str, seeds: Sequence[int], *, cache: bool | str = True, progress: bool = True,
              threads: int | None = 1, device: str = "cpu", checkpoints: bool = False, record_hidden: bool = False,
              **kwargs) -> list[RunResult]:
    """Run ``model`` on ``paradigm`` for every seed of ``seeds`` through one run loop (seeds
    as a batch dimension where the model stacks them; options as :func:`run`): one
    :class:`RunResult` per seed, in order. Cached seeds load, the others run, each cached
    as it would be alone. The first failed seed raises (the others are cached first)."""
    options = RunOptions(device=device, threads=threads, cache=cache, checkpoints=checkpoints,
                         record_hidden=record_hidden)
    seeds = [check_seed(s) for s in seeds]
    if not seeds:
        raise SwitchbenchError("seeds must list at least one seed")
    rc = prepare(paradigm, model, build=False, loop_only=options.loop_only, **kwargs)   # cached seeds load unbuilt
    out = run_group(rc, seeds, options, progress=progress)
    for r in out:
        if isinstance(r, SwitchbenchError):
            raise r
    return out


def run_group(rc: RunConfig, seeds: Sequence[int], options: RunOptions = RunOptions(), *,
              progress: bool = True) -> list:
    """The seeds of one configuration: each a :class:`RunResult` (loaded from the cache, or
    run and saved as soon as the call finishes) or the :class:`SwitchbenchError` that failed it.
    Options the engine of ``rc`` cannot honour are refused first (:meth:`RunOptions.check_engine`).
    ``checkpoints`` or ``record_hidden`` among ``options``: every seed runs (what they keep is
    never cached); an existing cache entry is kept."""
    options.check_engine(rc)
    mode, seeds, done = options.cache, [int(s) for s in seeds], {}
    if mode and (why := rc.uncached()):
        if why not in _WARNED:
            _WARNED.add(why)
            warn(why)
        mode = False
    if len(set(seeds)) != len(seeds):
        raise SwitchbenchError(f"seeds must differ, got {seeds}")
    in_memory = options.checkpoints or options.record_hidden    # never cached: recompute
    if mode is True and not in_memory:    # verified entries only; a corrupt one is reported and recomputed
        done = {s: hit for s in seeds if (hit := load_cached(rc.config(s), rc.key(s))) is not None}
    todo = [s for s in seeds if s not in done]
    if todo:
        with torch_threads(options.threads):
            results = _run(rc, todo, progress, options)
        for s, r in zip(todo, results):
            if isinstance(r, RunResult):
                try:
                    check_finite(r)
                    if mode:
                        r.path = save_run(r, run_dir(r.config, rc.key(s)), overwrite=mode == REFRESH, key=rc.key(s))
                except SwitchbenchError as e:
                    r = e
            done[s] = r
    return [done[s] for s in seeds]


_WARNED: set[str] = set()      # the reasons for not caching already given (once a process)


def _run(rc: RunConfig, seeds: list[int], progress: bool, options: RunOptions) -> list:
    """One engine call for ``seeds``: the run loop, or the covariance engine where asked for."""
    if rc.runner.get("sampler") == "wishart":
        return loop.run_wishart(rc, seeds, progress)
    return loop.run(rc, seeds, progress, device=options.device, checkpoints=options.checkpoints,
                    record_hidden=options.record_hidden)
