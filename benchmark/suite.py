"""Many runs at once: a list of (paradigm, model, seed, overrides), run in parallel
worker processes (joblib, ``backend="local"``) or as a Slurm job array (submitit,
``backend="slurm"``), one torch thread per worker unless told otherwise.

The seeds of one configuration run together through the run loop (one call per chunk of
seeds: :func:`plan`). Every run is cached as soon as its call finishes (atomically), and
cached runs are loaded, not recomputed: an interrupted sweep loses no finished call and
resumes where it stopped. A run that fails (an exception, a NaN loss, a model declining the
paradigm) is recorded as a :class:`Failure` with its reason; the others go on.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from switchbench import models
from switchbench.benchmark.config import DEFAULT_K_ADAPT, DEFAULT_N_EVAL, check_seed
from switchbench.benchmark.runner import RunOptions, RunResult, cache_root, prepare, run_group
from switchbench.benchmark.storage import load_cached
from switchbench.errors import SwitchbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BACKENDS = ("local", "slurm")
#: a Slurm job whose state sacct has not told for this long (sacct failing, the job lost) is
#: given up on as failed (``slurm={"status_timeout_s": ...}`` changes it)
STATUS_TIMEOUT_S = 600


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
    trace: str = ""      # the formatted traceback, chained causes included (``--debug`` prints it)


def _trace(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__))


def run_chunk(specs: list[RunSpec], options: RunOptions = RunOptions(), cache_dir: str | None = None,
              rc=None) -> list[RunResult | Failure]:
    """Seeds of one configuration (specs that differ in their seed only) through one run
    loop call (:func:`~switchbench.benchmark.runner.run_group`), in a worker or this
    process, with ``options`` (torch threads: the caller's setting is restored) and the cache
    folder ``cache_dir``; each seed is cached as soon as the call ends (``rc``: the specs'
    :class:`~switchbench.benchmark.config.RunConfig` when already prepared in this process).
    Never raises: a failure is recorded per seed with its reason."""
    if cache_dir is not None:
        os.environ["SWITCHBENCH_CACHE"] = cache_dir
    first = specs[0]
    try:
        rc = rc or prepare(first.paradigm, first.model, loop_only=options.loop_only, **first.overrides)
        out = run_group(rc, [check_seed(s.seed) for s in specs], options, progress=False)
        return [Failure(s, str(r), _trace(r)) if isinstance(r, SwitchbenchError) else r for s, r in zip(specs, out)]
    except SwitchbenchError as e:
        return [Failure(s, str(e), _trace(e)) for s in specs]
    except SystemExit as e:     # a model calling sys.exit() fails its run; it never ends the suite (nor exits 0)
        return [Failure(s, f"the run called sys.exit({e.code!r}) (SystemExit)", _trace(e)) for s in specs]
    except Exception as e:  # noqa: BLE001 - a broken model must not stop the suite
        return [Failure(s, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", _trace(e))
                for s in specs]


def _watch_parent(parent: int) -> None:
    """In a worker process: exit at once when the process that started the suite is gone
    (killed, even with SIGKILL), instead of idling on with its memory for minutes."""
    global _WATCHING
    if _WATCHING or os.getpid() == parent:
        return
    _WATCHING = True
    child = os.getppid() == parent     # a direct child is re-parented the moment its parent dies

    def gone() -> bool:
        if child:
            return os.getppid() != parent
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False

    def watch():
        while not gone():
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="switchbench-parent-watch", daemon=True).start()


_WATCHING = False


def _indexed(i: int, specs: list[RunSpec], options: RunOptions, parent: int | None = None,
             marks: str | None = None):
    """Chunk ``i`` in a worker; ``marks``: a folder where a file named ``i`` says the chunk
    is running (left behind when its worker dies: see :func:`_local`)."""
    if parent is not None:
        _watch_parent(parent)
    mark = Path(marks) / str(i) if marks else None
    if mark:
        mark.touch()
    out = i, run_chunk(specs, options)
    if mark:
        mark.unlink(missing_ok=True)
    return out


def _local(specs: list[RunSpec], chunks: list[list[int]], jobs: int, options: RunOptions):
    """Run the chunks on ``jobs`` local worker processes; yield ``(chunk index, results)`` as
    they end. A worker that dies (a crash in native code, ``os._exit``, the kernel's OOM
    killer) breaks the whole pool: the chunks that were running then are rerun one at a time
    in a pool of their own, so that the one whose worker dies again is that chunk's failure;
    the other chunks go on (finished seeds are cached, so nothing runs twice)."""
    from joblib.externals.loky.process_executor import BrokenProcessPool

    queue, alone = list(range(len(chunks))), []
    while queue or alone:
        batch = [alone.pop(0)] if alone else queue
        left = set(batch)
        with tempfile.TemporaryDirectory(prefix="switchbench-running-") as marks:
            par = Parallel(n_jobs=max(2, min(jobs, len(batch))), return_as="generator_unordered")
            try:
                for c, res in par(delayed(_indexed)(c, [specs[i] for i in chunks[c]], options, os.getpid(), marks)
                                  for c in batch):
                    left.discard(c)
                    yield c, res
            except BrokenProcessPool as e:
                running = {int(p.name) for p in Path(marks).iterdir()} & left or set(left)
                if len(batch) == 1 or len(running) == 1:
                    codes = re.search(r"exit codes of the workers are (\{.*?\})", str(e))
                    why = f"its worker process died ({type(e).__name__}" + (f", exit codes {codes[1]})" if codes else ")")
                    for c in sorted(running):
                        yield c, [Failure(specs[i], why) for i in chunks[c]]
                else:
                    alone += sorted(running)
                left -= running
        if batch is queue:
            queue = sorted(left)


def plan(specs: list[RunSpec], unique: list[int], results: list, jobs: int, options: RunOptions,
         bar, checked=None) -> tuple[list[list[int]], dict]:
    """Group the specs (those of indices ``unique``) by configuration (paradigm, model, overrides): cached seeds load here
    (``cache=True``, verified) into ``results``; the rest become chunks of spec indices, one
    run loop call each. With one worker, a configuration is one chunk; with several, each
    configuration runs in as few chunks as keep ``jobs`` workers busy (:func:`_together`),
    except that the covariance engine's seeds are always one chunk (its batched step costs
    the same for one seed or ten: splitting would only start workers); a lone chunk runs in
    this process. ``options``: the checked :class:`RunOptions` (its ``cache`` and ``loop_only``).
    Also returns each chunk's prepared configuration (by chunk index; None where preparing
    failed). ``checked``: the :class:`~switchbench.benchmark.config.RunConfig` of specs of
    one configuration, already prepared by the caller (not prepared again)."""
    groups: dict[str, list[int]] = {}
    for i in unique:
        s = specs[i]
        groups.setdefault(json.dumps([s.paradigm, s.model, s.overrides], sort_keys=True, default=str), []).append(i)
    if checked is not None and len(groups) > 1:
        raise ValueError("a checked configuration is given for specs of several configurations")
    todo: list[tuple[list[int], bool, object]] = []
    for idx in groups.values():
        s, rc = specs[idx[0]], None
        try:
            rc = checked or prepare(s.paradigm, s.model, build=False, loop_only=options.loop_only, **s.overrides)
            if options.cache is True and not rc.uncached():
                for i in idx:
                    seed = specs[i].seed
                    if isinstance(seed, int) and seed >= 0 and (hit := load_cached(rc.config(seed), rc.key(seed))):
                        results[i] = hit
                        bar.update()
        except (Exception, SystemExit):  # noqa: BLE001 - a bad spec: run_chunk records each seed's failure
            rc = None
        rest = [i for i in idx if results[i] is None]
        if rest:
            todo.append((rest, _together(rc, jobs, len(rest)), rc))
    chunks, prepared = [], {}
    per_group = max(1, -(-jobs // max(1, len(todo))))          # ceil(jobs / groups)
    for rest, together, rc in todo:
        if rc is not None and rc.runner.get("sampler") == "wishart":
            n = 1       # one numpy program whose steps cost the same for 1 or 10 seeds: never split
        else:
            n = min(len(rest), per_group) if together else len(rest)
        for j in range(n):
            prepared[len(chunks)] = rc
            chunks.append(rest[j::n])
    return chunks, prepared


def _together(rc, jobs: int, n: int) -> bool:
    """Whether seeds of the configuration ``rc`` may share a chunk: yes, except where the
    configuration failed to prepare (each seed then reports its failure on its own) or
    ``target_perf`` stops each seed at its own step (one seed per call anyway: one per chunk
    keeps the workers busy). A model that cannot stack runs a chunk's seeds one per call in
    its worker, each learner built once: no learner is built here to ask whether it stacks,
    so a configuration of S seeds builds S learners, whatever ``jobs``."""
    if rc is None:
        return False
    if jobs == 1 or n == 1 or rc.runner.get("sampler") == "wishart":
        return True
    return rc.runner.get("target_perf") is None


def run_many(specs: Iterable[RunSpec], jobs: int = 1, progress: bool = True, desc: str = "runs",
             backend: str = "local", threads: int = 1, slurm: dict | None = None,
             cache: bool | str | None = None, device: str = "cpu",
             options: RunOptions | None = None, rc=None) -> list[RunResult | Failure]:
    """Run every spec; results in the order given. Specs that differ only in their seed run
    together through the run loop (seeds as a batch dimension where the model stacks them:
    :func:`plan`); cached runs load (verified) in this process; the rest run on ``jobs``
    local workers (which exit when this process dies) or as a Slurm array of at most
    ``jobs`` at once, ``threads`` torch threads each. Each finished call's seeds are cached
    at once, so an interrupted sweep loses no finished call.

    ``cache``: as in :func:`~switchbench.benchmark.runner.run` (``"refresh"`` recomputes
    and overwrites; None: as True). ``device``: where the run loop computes (``"cpu"``,
    ``"cuda"``, ``"auto"``). ``options``, where given, is a checked
    :class:`~switchbench.benchmark.config.RunOptions` that replaces ``threads``, ``cache``
    and ``device``. ``rc``, where given, is the checked configuration of every spec (specs
    that differ in their seed only), as :func:`~switchbench.benchmark.config.validate`
    returns it: it is not prepared again in this process (a worker process prepares its
    own: its paradigm is built where it runs).
    """
    if backend not in BACKENDS:
        raise SwitchbenchError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    options = options or RunOptions(device=device, threads=threads, cache=cache)   # the device checked here:
    threads = options.threads                                                      # before any cached run loads
    for name, v in (("jobs", jobs), ("threads", threads)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise SwitchbenchError(f"{name} must be an integer >= 1, got {v!r}")
    if threads > MAX_THREADS:
        raise SwitchbenchError(f"threads must be an integer in 1..{MAX_THREADS}, got {threads}")
    cache = options.cache
    specs = list(specs)
    results: list = [None] * len(specs)
    bar = tqdm(total=len(specs), desc=desc, disable=not progress)
    first: dict[str, int] = {}          # a spec listed twice runs once
    same = {i: first.setdefault(json.dumps(asdict(s), sort_keys=True, default=str), i) for i, s in enumerate(specs)}
    chunks, prepared = plan(specs, [i for i, j in same.items() if i == j], results, jobs, options, bar, rc)
    if backend == "slurm" and chunks:
        done = _slurm(specs, chunks, jobs, options, slurm or {})
    elif jobs == 1 or len(chunks) <= 1:
        done = ((c, run_chunk([specs[i] for i in chunk], options, None, prepared[c]))
                for c, chunk in enumerate(chunks))
    else:
        done = _local(specs, chunks, jobs, options)
    for c, res in done:
        for i, r in zip(chunks[c], res):
            results[i] = r
        bar.update(len(res))
    for i, j in same.items():
        if i != j:
            results[i] = results[j]
            bar.update()
    bar.close()
    return results


def _slurm(specs, chunks, jobs, run_options, options):
    """Submit the chunks as one Slurm job array through submitit; yield them as they end."""
    try:
        import submitit
    except ImportError:
        raise SwitchbenchError("the slurm backend needs submitit: pip install 'switchbench[slurm]'") from None
    if not shutil.which("sbatch"):
        raise SwitchbenchError("the slurm backend needs Slurm's sbatch on the PATH; none found (use --backend local)")
    cache = str(cache_root().resolve())
    try:
        executor = submitit.AutoExecutor(folder=Path(cache) / "slurm" / "%j", cluster="slurm")
        executor.update_parameters(slurm_array_parallelism=jobs, cpus_per_task=run_options.threads,
                                   timeout_min=options.get("timeout_min", 60), **options.get("parameters", {}))
        submitted = executor.map_array(run_chunk, [[specs[i] for i in chunk] for chunk in chunks],
                                       [run_options] * len(chunks), [cache] * len(chunks))
    except Exception as e:  # noqa: BLE001 - sbatch missing, cluster down, bad parameters
        raise SwitchbenchError(f"slurm submission failed: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    pending = dict(zip(submitted, range(len(chunks))))
    limit = options.get("status_timeout_s", STATUS_TIMEOUT_S)
    unknown: dict = {}          # job -> since when Slurm has given no state for it
    while pending:
        for job in list(pending):
            if job.done():
                c = pending.pop(job)
                try:
                    yield c, job.result()
                except Exception as e:  # noqa: BLE001 - the job itself died (killed, timed out)
                    yield c, [Failure(specs[i], f"slurm job {job.job_id} failed: {str(e).splitlines()[0]}")
                              for i in chunks[c]]
            elif job.watcher.get_state(job.job_id, mode="cache").upper() != "UNKNOWN":
                unknown.pop(job, None)
            elif time.monotonic() - unknown.setdefault(job, time.monotonic()) > limit:
                c = pending.pop(job)
                try:
                    job.cancel(check=False)
                except Exception:  # noqa: BLE001 - scancel failing too: the job is given up on all the same
                    pass
                yield c, [Failure(specs[i], f"slurm job {job.job_id}: no state from Slurm (sacct) for {limit:g} s; "
                                            "gave up waiting for it") for i in chunks[c]]
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


# --- suite files ----------------------------------------------------------------------------

#: the suite file's schema: key -> (type, what it must be); anything else is refused
MAX_SEEDS = 10_000
#: torch threads (and Slurm CPUs) per run: more is a typo, and OpenMP runs out of memory making them
MAX_THREADS = 1024
SUITE_FIELDS = {"name": (str, "a name of letters, digits, '.', '_' or '-'"),
                "seeds": (int, f"an integer in 1..{MAX_SEEDS}"),
                "paradigm": (list, "an array of [[paradigm]] tables"),
                "tuning": (dict, "a table of the tuning protocol: budget, seeds, first_seed")}
#: the optional [tuning] table (switchbench tune; see switchbench.benchmark.tuning)
TUNING_FIELDS = {"budget": (int, f"an integer in 1..{MAX_SEEDS}: configurations per (paradigm, model)"),
                 "seeds": (int, f"an integer in 1..{MAX_SEEDS}: validation seeds"),
                 "first_seed": (int, f"an integer in 1..{MAX_SEEDS}: the first validation seed")}
PARADIGM_FIELDS = {"name": (str, "a paradigm name"), "models": (list, '"*" or a list of model names'),
                   "seeds": (int, f"an integer in 1..{MAX_SEEDS}"),
                   "set": (dict, "a table of parameters, e.g. { n_blocks = 10 }"),
                   "tune_seeds": (int, f"an integer in 1..{MAX_SEEDS}: this paradigm's validation seeds")}
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_slug(name, what: str) -> str:
    """``name`` if it can name a file inside an output folder (letters, digits, ``.``, ``_``,
    ``-``; no leading dot, no ``/``), else a clear error."""
    if not isinstance(name, str) or not SLUG.fullmatch(name) or len(name) > 100:
        raise SwitchbenchError(f"{what} must be letters, digits, '.', '_' or '-' (not starting with '.'), "
                               f"got {name!r}")
    return name


def _check_fields(table: dict, fields: dict, where: str) -> None:
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise SwitchbenchError(f"{where}: unknown key {unknown[0]!r}; valid: {', '.join(fields)}")
    for key, value in table.items():
        kind, what = fields[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if key == "models":
            ok = value == "*" or (isinstance(value, list) and len(value) > 0 and all(isinstance(m, str) for m in value))
        if kind is int and ok:
            ok = 1 <= value <= MAX_SEEDS
        if not ok:
            raise SwitchbenchError(f"{where}: {key} must be {what}, got {value!r}")


def read_suite(path: Path) -> tuple[str, list[RunSpec], str]:
    """Read and check a suite file (TOML) against its schema (every field's type and range,
    unknown keys refused), expand it into run specs and check every run's parameters before
    any work, from the paradigms' data-free specs (``spec_for``: no data built; what only
    the data can check fails that run when it builds it): ``(name, specs, text)``; a bad
    file is one clear error line."""
    from switchbench.benchmark.config import (RUNNER_OPTIONS, check_runner_options, paradigm_side, resolve_paradigm,
                                              spec_for, split_overrides)

    path = Path(path)
    try:
        text = path.read_text()
        suite = tomllib.loads(text)
    except FileNotFoundError:
        raise SwitchbenchError(f"suite file {str(path)!r} not found") from None
    except IsADirectoryError:
        raise SwitchbenchError(f"suite file {str(path)!r} is a directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SwitchbenchError(f"cannot read suite file {str(path)!r}: {type(e).__name__}") from None
    except tomllib.TOMLDecodeError as e:
        raise SwitchbenchError(f"suite file {str(path)!r} is not valid TOML: {e}") from None
    except RecursionError:
        raise SwitchbenchError(f"suite file {str(path)!r} nests arrays or tables too deeply") from None
    _check_fields(suite, SUITE_FIELDS, f"suite file {str(path)!r}")
    _check_fields(suite.get("tuning", {}), TUNING_FIELDS, f"suite file {str(path)!r}, [tuning]")
    name = check_slug(suite.get("name", path.stem), f"suite file {str(path)!r}: name")
    n_seeds = suite.get("seeds", 3)
    specs, seen = [], {}      # seen: each configuration (resolved parameters) -> the index of its block
    for i, entry in enumerate(suite.get("paradigm", [])):
        where = f"suite {name!r}, [[paradigm]] {i + 1}"
        if not isinstance(entry, dict):
            raise SwitchbenchError(f"{where}: must be a table")
        _check_fields(entry, PARADIGM_FIELDS, where)
        if "name" not in entry:
            raise SwitchbenchError(f"{where}: every [[paradigm]] needs a name")
        short, _, env_cls = resolve_paradigm(entry["name"])
        overrides = dict(entry.get("set", {}))
        for key, value in overrides.items():
            if _has_date(value):
                raise SwitchbenchError(f"{where}: set.{key} is a TOML date or time ({value!r}); parameters are "
                                       "numbers, strings, booleans, arrays or tables")
        runner = {k: overrides[k] for k in RUNNER_OPTIONS if k in overrides}
        check_runner_options(**{"k_adapt": 0, "n_eval": 1, "criterion": None, "threshold": None, **runner})
        chosen = entry.get("models", "*")
        params = {k: v for k, v in overrides.items() if k not in RUNNER_OPTIONS}
        if chosen == "*":          # the models that support the paradigm as this block sets it
            spec = spec_for(short, paradigm_side(env_cls, params))
            chosen = [m for m in models.names() if _supports(m, spec)]
        env_params = None
        for m in chosen:
            env_params, model_params = split_overrides(env_cls, models.get(m), params)
            key = json.dumps([short, m, env_params, model_params, {**RUNNER_DEFAULTS, **runner}], sort_keys=True,
                             default=repr)
            if key in seen:
                where = f"{seen[key] + 1} and {i + 1}" if seen[key] != i else f"{i + 1}, twice"
                raise SwitchbenchError(f"suite {name!r}: {m} on {short} is listed twice with the same settings "
                                       f"([[paradigm]] {where}): each seed would count twice; list it once")
            seen[key] = i
        if env_params is not None:   # the paradigm's parameters (the same for every model) fit; no data built
            spec_for(short, env_params, **{k: runner[k] for k in ("k_adapt", "n_eval") if k in runner})
        for m in chosen:
            for s in range(entry.get("seeds", n_seeds)):
                specs.append(RunSpec(short, m, s, overrides))
    if not specs:
        raise SwitchbenchError(f"suite {name!r} lists no runs")
    return name, specs, text


def _has_date(value) -> bool:
    """Whether a TOML value is, or holds, a date, time or date-time."""
    if isinstance(value, (datetime.date, datetime.time)):
        return True
    if isinstance(value, dict):
        return any(_has_date(v) for v in value.values())
    return isinstance(value, list) and any(_has_date(v) for v in value)


#: the runner's options where a suite leaves them unset (two blocks that differ only in writing a default are one
#: configuration)
RUNNER_DEFAULTS = {"k_adapt": DEFAULT_K_ADAPT, "n_eval": DEFAULT_N_EVAL, "criterion": None, "threshold": None, "sampler": None,
                   "target_perf": None, "check_every": None}


def _supports(model: str, spec) -> bool:
    try:
        entry = models.get(model)
    except SwitchbenchError:
        return False    # a broken plug-in is left out of "*"
    return entry.decline_reason(spec) is None


def check_out(out: Path) -> Path:
    """Make sure the output folder ``out`` can be written, before any run starts."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkstemp(dir=out, prefix=".write-test-")[1])
        probe.unlink()
    except OSError as e:
        raise SwitchbenchError(f"cannot write to the output folder {str(out)!r}: {e.strerror or type(e).__name__}") \
            from None
    return out


def failure_lines(results) -> list[str]:
    """One line per failed run: model, paradigm, seed and reason."""
    return [f"{f.spec.model} on {f.spec.paradigm}, seed {f.spec.seed}: {f.reason}"
            for f in results if isinstance(f, Failure)]


class RunsFailed(SwitchbenchError):
    """Some runs of a suite failed; the report of the others is written (``files``); the
    command line lists the reasons and exits 1."""

    def __init__(self, failed: list[str], total: int, files: dict, traces: list[str] = ()):
        super().__init__(f"{len(failed)} of {total} runs failed; the report of the others is written")
        self.failed, self.total, self.files, self.traces = failed, total, files, list(traces)
