"""Configuration of a run: names and parameters resolved and checked, the runner's options,
the memory check, the paradigm built once, and the cache key of each seed.

:func:`prepare` turns what a user typed (a paradigm, a model, ``key=value`` overrides and
runner options) into a :class:`RunConfig`: one checked configuration for any number of
seeds. ``RunConfig.config(seed)`` is a seed's stored configuration (a plain dict, what
``RunResult.config`` holds) and ``RunConfig.key(seed)`` its cache key, computed once from
the configuration and :func:`code_versions` (the code hashed once per :class:`RunConfig`).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import math
import numbers
import os
import subprocess
import site
import sys
import sysconfig
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch

from switchbench import errors, models
from switchbench.errors import SwitchbenchError
from switchbench.paradigms import resolve
from switchbench.paradigms.base import SwitchEnv
from switchbench.params import Param, is_int, signature_params
from switchbench.version import __version__

DEFAULT_K_ADAPT = 50
DEFAULT_N_EVAL = 1000


# --- names and parameters ---------------------------------------------------------------

def resolve_paradigm(name: str) -> tuple[str, str, type]:
    """``(short name, Gymnasium id, env class)`` for a short name or a Gymnasium id."""
    return resolve(name)


def paradigm_params(env_cls: type) -> dict[str, Param]:
    """A paradigm's parameters, typed by its constructor's annotations (:mod:`switchbench.params`)."""
    return signature_params(env_cls.__init__, skip=1)


def split_overrides(env_cls: type, entry: models.ModelEntry, overrides: dict[str, Any]):
    """Split ``key=value`` overrides into paradigm and model parameters (``paradigm.key`` /
    ``model.key`` force a side); a key both accept, or neither, is an error; each value must
    have its parameter's declared type (:meth:`~switchbench.params.Param.check`)."""
    env_params, model_params = paradigm_params(env_cls), entry.params()
    env_kw, model_kw = {}, {}
    for key, value in overrides.items():
        side, _, bare = key.rpartition(".")
        if side == "paradigm" or (not side and bare in env_params and bare not in model_params):
            if bare not in env_params:
                raise SwitchbenchError(f"paradigm has no parameter {bare!r}; valid: {', '.join(sorted(env_params))}")
            env_params[bare].check(value)
            env_kw[bare] = value
        elif side == "model" or (not side and bare in model_params and bare not in env_params):
            if bare not in model_params:
                raise SwitchbenchError(f"model {entry.card.name!r} has no parameter {bare!r}; "
                                       f"valid: {', '.join(sorted(model_params)) or '(none)'}")
            model_params[bare].check(value)
            model_kw[bare] = value
        elif not side and bare in env_params:
            raise SwitchbenchError(f"{bare!r} is both a paradigm and a model parameter; "
                                   f"write paradigm.{bare}= or model.{bare}=")
        else:
            raise SwitchbenchError(f"unknown parameter {key!r}; paradigm: {', '.join(sorted(env_params))}; "
                                   f"model: {', '.join(sorted(model_params)) or '(none)'}")
    return ({**{k: p.default for k, p in env_params.items()}, **env_kw},
            {**{k: p.default for k, p in model_params.items()}, **model_kw})


def paradigm_side(env_cls: type, overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides that set the paradigm's parameters (``paradigm.key``, or a bare key the
    paradigm has), whatever the model: what decides which models a paradigm so set supports."""
    names = paradigm_params(env_cls)
    out = {}
    for key, value in overrides.items():
        side, _, bare = key.rpartition(".")
        if side in ("", "paradigm") and bare in names:
            out[bare] = value
    return out


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
    import switchbench.data
    import switchbench.paradigms

    folders = [Path(errors.__file__).parent] + [Path(p.__path__[0]) for p in (switchbench.data, switchbench.paradigms,
                                                                               models, switchbench.benchmark)]
    files = sorted({f for folder in folders for f in folder.rglob("*.py")})
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def source_commit() -> dict:
    """The git commit of switchbench's own source: recorded in the package when it was built
    (``_build.json``), else, for a source checkout, asked of git in the package's folder; never
    the commit of the current folder."""
    try:
        info = json.loads((Path(errors.__file__).parent / "_build.json").read_text())
    except (FileNotFoundError, OSError, ValueError):
        info = {"commit": None, "dirty": None}
        where = Path(errors.__file__).resolve().parent          # the package's own folder
        try:
            out = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                                 timeout=10)
            if out.returncode == 0:
                info["commit"] = out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return {**info, "source_hash": source_hash()}


@lru_cache(maxsize=None)
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@lru_cache(maxsize=None)
def distributions_of(top: str) -> list[str]:
    """The distributions that install the top-level package ``top``, sorted and without
    repeats: exactly ``sorted(set(importlib.metadata.packages_distributions().get(top, [])))``,
    without building that whole map (it parses the file list of every distribution that
    declares no ``top_level.txt``, a few tenths of a second) unless such a distribution's
    file list (``RECORD``) mentions ``top`` or is missing: the only case where such a
    distribution can install ``top``."""
    names = set()
    for dist in importlib.metadata.distributions():
        declared = (dist.read_text("top_level.txt") or "").split()
        if declared:
            if top in declared:
                names.add(dist.metadata["Name"])
            continue
        record = dist.read_text("RECORD")
        if not record or top in record:
            return sorted(set(_distributions().get(top, [])))
    return sorted(names)


def _file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    """The folders of installed code (the standard library, site-packages): modules there are
    identified by their distribution's version, not hashed."""
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots |= set(site.getsitepackages()) | {site.getusersitepackages()}
    return tuple(sorted(str(Path(r).resolve()) + os.sep for r in roots if r))


def _user_module(module) -> bool:
    """Whether ``module`` is code of the user's (a plug-in, a script), neither switchbench's own
    (in the source hash), nor installed (the standard library, site-packages), nor built in."""
    name = getattr(module, "__name__", "") or ""
    if name == "switchbench" or name.startswith("switchbench."):
        return False
    path = getattr(module, "__file__", None)
    if not path:     # built in, frozen, a namespace package; or made without a file (stdin, a notebook)
        spec = getattr(module, "__spec__", None)
        return spec is None and not hasattr(module, "__path__") or name == "__main__"
    return not str(Path(path).resolve()).startswith(_installed_roots())


def code_files(factory) -> tuple[list[Path], list[str]]:
    """What a model runs beyond switchbench and installed packages: ``(files, sourceless)``:
    the source files of the module that defines ``factory``, of every module whose classes,
    functions or module objects it (and so on, transitively) holds at its top level, and of
    every module of those modules' top-level packages (a learner in ``mypkg/learners.py``
    beside a factory in ``mypkg/models.py``); ``sourceless``: the user modules among them that
    have no source file (a script on stdin, a notebook cell), whose code no hash can follow."""
    start = inspect.getmodule(factory) or sys.modules.get(getattr(factory, "__module__", None) or "")
    todo, seen, files, sourceless = [start], set(), set(), []
    while todo:
        module = todo.pop()
        if module is None or module.__name__ in seen or not _user_module(module):
            continue
        seen.add(module.__name__)
        path = getattr(module, "__file__", None)
        if not path or not os.path.isfile(path):
            sourceless.append(module.__name__)
            continue
        files.add(Path(path).resolve())
        top = sys.modules.get(module.__name__.split(".")[0])
        if top is not None and getattr(top, "__path__", None) and _user_module(top):    # the whole package
            files |= {f.resolve() for p in top.__path__ for f in Path(p).rglob("*.py")}
        for value in list(vars(module).values()):
            if inspect.ismodule(value):
                todo.append(value)
            elif inspect.isclass(value) or inspect.isroutine(value):
                todo.append(inspect.getmodule(value))
    return sorted(files), sourceless


def model_source(model: str) -> dict:
    """What identifies a model's code beyond switchbench's own source: a hash of every source
    file it runs (:func:`code_files`: a plug-in's module, entry point or ``@register`` in user
    code, the modules it draws on and their packages), ``None`` where some of that code has no
    source file (its runs are not cached: :meth:`RunConfig.uncached`), and the version of the
    distribution that installed it.

    >>> model_source("linear")["module"]
    'switchbench.models.linear'
    """
    factory = models.get(model).factory
    module = inspect.getmodule(factory)
    name = getattr(module, "__name__", getattr(factory, "__module__", None))
    out = {"module": name, "source": None, "distribution": None}
    if not _user_module(module) and getattr(module, "__file__", None):   # switchbench's own or installed code
        out["source"] = _file_hash(module.__file__)[:16]
    else:
        files, sourceless = code_files(factory)
        if sourceless:
            out["sourceless"] = sourceless
        else:
            h = hashlib.sha256()
            for f in files:
                h.update(f"{f.name}\0{_file_hash(f)}\0".encode())
            out["source"] = h.hexdigest()[:16]
    top = (name or "").split(".")[0]
    dists = distributions_of(top)
    if dists:
        out["distribution"] = {d: _version(d) for d in dists}
    return out


def code_versions(model: str) -> dict:
    """Everything besides the configuration that a run's numbers depend on, all in its cache
    key: switchbench's version and source hash, the model's own code (:func:`model_source`)
    and the versions of torch, numpy and neurogym."""
    return {"switchbench": __version__, "source": source_hash(), "model": model_source(model),
            "torch": torch.__version__, "numpy": np.__version__, "neurogym": _version("neurogym")}


def run_key(config: dict) -> str:
    """The cache key of a run: a hash of its full configuration and :func:`code_versions`."""
    return _key(config, code_versions(config["model"]))


def _key(config: dict, code: dict) -> str:
    blob = json.dumps({"config": config, "code": code}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]



def make_config(short: str, gym_id: str, env_params: dict, model: str, model_params: dict, seed: int,
                runner: dict) -> dict:
    """The full configuration of one run (its cache key); ``runner`` holds the runner's own
    settings (k_adapt, n_eval, criterion, threshold; sampler where set)."""
    return _jsonable({"paradigm": short, "paradigm_id": gym_id, "paradigm_params": env_params, "model": model,
                      "model_params": model_params, "seed": int(seed), "runner": runner})



# --- options, memory and threads -------------------------------------------------------

RUNNER_OPTIONS = ("k_adapt", "n_eval", "criterion", "threshold", "sampler", "target_perf", "check_every")
#: the engines a run may ask for (``sampler``): ``"auto"`` (the default; :func:`resolve_sampler`),
#: ``"wishart"`` (the covariance engine of the linear family, :mod:`switchbench.models.covariance_engine`)
#: or ``"stream"`` (the run loop on the paradigm's own stream of samples)
SAMPLERS = ("auto", "wishart", "stream")
CRITERIA = ("norm_loss", "loss", "accuracy", "performance")
REFRESH = "refresh"


#: ``target_perf``: how often (learning steps) the held-out performance is checked, unless ``check_every`` says
DEFAULT_CHECK_EVERY = 50


def check_runner_options(k_adapt, n_eval, criterion, threshold, sampler=None, target_perf=None,
                         check_every=None) -> None:
    """The runner's own options, checked the same way wherever they come from (the Python
    API, ``--set``, a suite file)."""
    if target_perf is not None and not (isinstance(target_perf, numbers.Real) and not isinstance(target_perf, bool)
                                        and 0 < target_perf <= 1):
        raise SwitchbenchError(f"target_perf must be a performance in (0, 1], got {target_perf!r}")
    if check_every is not None and (not is_int(check_every) or check_every < 1):
        raise SwitchbenchError(f"check_every must be an integer >= 1, got {check_every!r}")
    if check_every is not None and target_perf is None:
        raise SwitchbenchError("check_every is how often target_perf is checked: set target_perf too")
    if sampler is not None and sampler not in SAMPLERS:
        raise SwitchbenchError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if target_perf is not None and sampler == "wishart":
        raise SwitchbenchError("target_perf stops the run loop; sampler 'wishart' has no loop to stop")
    if not is_int(k_adapt) or k_adapt < 0:
        raise SwitchbenchError(f"k_adapt must be an integer >= 0, got {k_adapt!r}")
    if not is_int(n_eval) or n_eval < 1:
        raise SwitchbenchError(f"n_eval must be an integer >= 1, got {n_eval!r}")
    if criterion is not None and criterion not in CRITERIA:
        raise SwitchbenchError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    if threshold is not None and not (isinstance(threshold, numbers.Real) and not isinstance(threshold, bool)
                                      and math.isfinite(threshold)):
        raise SwitchbenchError(f"threshold must be a finite number, got {threshold!r}")


def cache_mode(cache: bool | str | None) -> bool | str:
    """``True`` (load a verified entry, else run and store; also None), ``False`` (neither) or
    ``"refresh"`` (run and overwrite)."""
    if cache is None:
        return True
    if cache not in (True, False, REFRESH):
        raise SwitchbenchError(f"cache must be True, False or {REFRESH!r}, got {cache!r}")
    return cache


DEVICES = ("cpu", "cuda", "auto")


def pick_device(device: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` (an error without CUDA) or ``"auto"`` (CUDA where available)."""
    if device not in DEVICES:
        raise SwitchbenchError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SwitchbenchError("device 'cuda' asked for, but torch finds no CUDA device here (use cpu or auto)")
    return torch.device(device)


@dataclass(frozen=True)
class RunOptions:
    """How runs are carried out, checked once where they are made (one clear line when bad)
    and none of it in a run's cache key: the numbers do not depend on it (a run's
    configuration, the runner's ``sampler`` included, is :class:`RunConfig`'s).

    - ``device``: ``"cpu"``, ``"cuda"`` (refused at once where torch finds no CUDA device,
      even if every run is cached) or ``"auto"`` (CUDA where available);
    - ``threads``: torch threads per run (None: leave the caller's setting);
    - ``cache``: True (load a verified entry, else run and store), False (neither) or
      ``"refresh"`` (run and overwrite);
    - ``checkpoints`` / ``record_hidden``: keep the learner's state at every block end / its
      hidden states on the held-out inputs (in memory only, never cached).

    The covariance engine (``sampler="wishart"``) runs on the CPU and keeps no learner: it
    refuses ``device="cuda"``, ``checkpoints`` and ``record_hidden`` (:meth:`check_engine`),
    and where any of them is asked for, ``sampler="auto"`` picks the run loop (:attr:`loop_only`).

    >>> RunOptions(threads=2, cache=False)
    RunOptions(device='cpu', threads=2, cache=False, checkpoints=False, record_hidden=False)
    >>> RunOptions(device="tpu")
    Traceback (most recent call last):
    ...
    switchbench.errors.SwitchbenchError: device must be one of cpu, cuda, auto, got 'tpu'
    """

    device: str = "cpu"
    threads: int | None = 1
    cache: bool | str | None = True
    checkpoints: bool = False
    record_hidden: bool = False

    def __post_init__(self):
        pick_device(self.device)
        if self.threads is not None and (not is_int(self.threads) or self.threads < 1):
            raise SwitchbenchError(f"threads must be an integer >= 1, got {self.threads!r}")
        object.__setattr__(self, "cache", cache_mode(self.cache))
        for name in ("checkpoints", "record_hidden"):
            if not isinstance(getattr(self, name), bool):
                raise SwitchbenchError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def loop_only(self) -> bool:
        """Whether only the run loop can honour these options (a CUDA device, ``checkpoints``,
        ``record_hidden``): then ``sampler="auto"`` resolves to the stream (:func:`resolve_sampler`)."""
        return pick_device(self.device).type != "cpu" or self.checkpoints or self.record_hidden

    def check_engine(self, rc: RunConfig) -> None:
        """Refuse, in one line, the options that the engine of ``rc`` cannot honour."""
        if rc.runner.get("sampler") != "wishart":
            return
        asked = [f"device={self.device!r}"] if self.device == "cuda" else []
        asked += [name for name in ("checkpoints", "record_hidden") if getattr(self, name)]
        if asked:
            raise SwitchbenchError(f"sampler 'wishart' (the covariance engine: numpy on the CPU, no learner kept) "
                                   f"cannot honour {', '.join(asked)}; set sampler='stream' (or 'auto') to use the "
                                   "run loop")


@contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``threads`` torch threads (None: unchanged), then restore the caller's."""
    if threads is None:
        yield
        return
    if not is_int(threads) or threads < 1:
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
    ints = {k: int(v) for k, v in params.items() if is_int(v) and v > 0}
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


@contextmanager
def _rejected(short: str):
    """A paradigm's error on its parameters as one line (its own :class:`SwitchbenchError` as is)."""
    try:
        yield
    except SwitchbenchError:
        raise
    except MemoryError:
        raise SwitchbenchError(f"{short}: not enough memory to build it with these parameters") from None
    except Exception as e:  # noqa: BLE001 - a paradigm rejecting a parameter of the wrong type
        raise SwitchbenchError(f"{short} rejected its parameters: {type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}") from None


def make_env(short: str, gym_id: str, env_params: dict, k_adapt: int = DEFAULT_K_ADAPT,
             n_eval: int = DEFAULT_N_EVAL):
    """Build a paradigm (unwrapped), refusing with one line parameters it rejects or that
    would not fit in memory (checked from the shapes before and after building it)."""
    check_memory(memory_terms(env_params, k_adapt, n_eval))
    with _rejected(short):
        env = gymnasium.make(gym_id, disable_env_checker=True, **env_params).unwrapped
        x = np.asarray(env.eval_batch(0, 1, seed=(0, 0, 0))[0])
    check_memory(memory_terms(env_params, k_adapt, n_eval, sample=x.size, n_tasks=env.task_spec.n_tasks))
    return env


def spec_for(paradigm: str, env_params: dict, k_adapt: int = DEFAULT_K_ADAPT, n_eval: int = DEFAULT_N_EVAL):
    """A paradigm's :class:`~switchbench.paradigms.TaskSpec` without building its data
    (``task_spec_for``: ``null_loss`` None), its parameters checked as :func:`make_env`
    checks them, except those that only its data can check, and its memory estimated from
    the spec's shapes (one sample of ``input_size`` floats: time steps not counted)."""
    short, _, env_cls = resolve(paradigm)
    check_memory(memory_terms(env_params, k_adapt, n_eval))
    with _rejected(short):
        spec = env_cls.task_spec_for(**env_params)
    check_memory(memory_terms(env_params, k_adapt, n_eval, sample=spec.input_size, n_tasks=spec.n_tasks))
    return spec



# --- the configuration of a run ---------------------------------------------------------

@dataclass
class RunConfig:
    """One checked configuration (paradigm, model, parameters, runner options) for any
    number of seeds: what the run loop needs. Build it with :func:`prepare`."""

    paradigm: str                      # the paradigm's short name
    gym_id: str
    env_params: dict                   # every paradigm parameter (defaults included)
    model: str
    model_params: dict                 # every model hyperparameter (defaults included)
    entry: models.ModelEntry
    spec: Any                          # the paradigm's TaskSpec (null_loss None until a paradigm is built)
    runner: dict                       # k_adapt, n_eval, criterion, threshold (and sampler where set)
    env: Any = None                    # the paradigm built while checking: the first loop call takes it
    _code: dict | None = field(default=None, repr=False)

    @property
    def k_adapt(self) -> int:
        return self.runner["k_adapt"]

    @property
    def n_eval(self) -> int:
        return self.runner["n_eval"]

    def config(self, seed: int) -> dict:
        """The stored configuration of one seed (its cache key with the code versions)."""
        return make_config(self.paradigm, self.gym_id, self.env_params, self.model, self.model_params, seed,
                           self.runner)

    def key(self, seed: int) -> str:
        """The cache key of one seed (:func:`run_key`, the code hashed once per configuration)."""
        if self._code is None:
            self._code = code_versions(self.model)
        return _key(self.config(seed), self._code)

    def uncached(self) -> str | None:
        """Why no run of this configuration may be cached, or None: some of its model's code has
        no source file (:func:`code_files`), so that no cache key could tell its edits apart."""
        if self._code is None:
            self._code = code_versions(self.model)
        where = self._code["model"].get("sourceless")
        if where:
            return (f"model {self.model!r} runs code without a source file (module {', '.join(where)}: a script on "
                    "stdin or a notebook cell?), which no cache key can follow: its runs are not cached")
        return None

    def take_env(self):
        """A paradigm to run: the one built while checking (once), then new ones. The first
        one built here (``prepare(build=False)``) completes ``spec`` with its ``null_loss``."""
        env, self.env = self.env, None
        if env is not None:
            return env
        if self.spec.null_loss is None:
            env = make_env(self.paradigm, self.gym_id, self.env_params, self.k_adapt, self.n_eval)
            self.spec = env.task_spec
            return env
        return gymnasium.make(self.gym_id, disable_env_checker=True, **self.env_params).unwrapped

    def label(self, seeds) -> str:
        """``model on paradigm (seed 0)`` or ``(seeds 0, 1, 2)``: the prefix of every error line."""
        seeds = [int(s) for s in seeds]
        which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
        return f"{self.model} on {self.paradigm} ({which})"


def resolve_sampler(sampler: str | None, env_cls, env_params: dict, entry, spec, model_params: dict,
                    target_perf=None, loop_only: bool = False) -> str:
    """The engine of a configuration, ``"wishart"`` or ``"stream"``: as asked, or for ``"auto"``
    (and None) the covariance engine wherever it is exact and can run (a paradigm with linear
    teachers and no cue, one of the zoo's own learners with a covariance form, no
    ``target_perf``, no option that only the run loop honours: ``loop_only``), else the
    stream (the run loop). A plug-in never gets the engine unasked: the engine computes the
    zoo's learning rule, and a plug-in's learner may learn otherwise (its own ``learn``)."""
    if sampler in ("wishart", "stream"):
        return sampler
    if (target_perf is not None or loop_only or env_params.get("cue")
            or env_cls.ground_truth is SwitchEnv.ground_truth or entry.decline_reason(spec)
            or not (getattr(entry.factory, "__module__", None) or "").startswith("switchbench.models.")):
        return "stream"
    try:    # the covariance form may depend on the hyperparameters (gated-linear: one gate per path)
        learner = entry.build(spec, 0, **model_params)
    except Exception:  # noqa: BLE001 - a model that fails to build fails its runs in the loop, with their reason
        return "stream"
    return "wishart" if getattr(learner, "covariance_form", False) else "stream"


def prepare(paradigm: str, model: str, *, k_adapt: int = DEFAULT_K_ADAPT, n_eval: int = DEFAULT_N_EVAL,
            criterion: str | None = None, threshold: float | None = None, sampler: str | None = None,
            target_perf: float | None = None, check_every: int | None = None, build: bool = True,
            loop_only: bool = False, **overrides) -> RunConfig:
    """Resolve and check a configuration (one clear line when bad) and build its paradigm
    once; ``overrides`` set paradigm and model parameters by name (:func:`split_overrides`).
    ``build=False`` builds no data: the spec comes from :func:`spec_for` (``null_loss`` None
    until the first :meth:`RunConfig.take_env` builds the paradigm, where what only the data
    can check is checked); the configuration and cache keys are the same.

    ``sampler`` (default ``"auto"``) is resolved here (:func:`resolve_sampler`;
    ``loop_only``: the run's options need the run loop, :attr:`RunOptions.loop_only`); the
    configuration names it only where it is ``"wishart"``, so that run-loop configurations
    keep the keys they had before the sampler existed."""
    check_runner_options(k_adapt, n_eval, criterion, threshold, sampler, target_perf, check_every)
    short, gym_id, env_cls = resolve_paradigm(paradigm)
    if target_perf is not None and env_cls.trial_score is SwitchEnv.trial_score:
        raise SwitchbenchError(f"target_perf needs a paradigm that scores trials (Yang et al.'s performance: "
                               f"cognitive-switch, cognitive-compose); {short} does not")
    entry = models.get(model)
    env_params, model_params = split_overrides(env_cls, entry, overrides)
    if target_perf is not None and env_params.get("n_blocks", 1) != 1:
        raise SwitchbenchError(f"target_perf stops a one-block curriculum (n_blocks=1), got n_blocks="
                               f"{env_params['n_blocks']!r}")
    if build:
        env = make_env(short, gym_id, env_params, k_adapt, n_eval)
        spec = env.task_spec
    else:
        env, spec = None, spec_for(short, env_params, k_adapt, n_eval)
    criterion = criterion or spec.switch_criterion[0]
    threshold = spec.switch_criterion[1] if threshold is None else threshold
    if criterion == "accuracy" and spec.loss != "cross_entropy":
        raise SwitchbenchError(f"criterion 'accuracy' needs a classification paradigm; {short} is {spec.kind}")
    runner = {"k_adapt": k_adapt, "n_eval": n_eval, "criterion": criterion, "threshold": threshold}
    if resolve_sampler(sampler, env_cls, env_params, entry, spec, model_params, target_perf, loop_only) == "wishart":
        runner["sampler"] = "wishart"     # only here: run-loop configurations keep the configuration (and key) they had
    if target_perf is not None:  # likewise
        runner["target_perf"] = float(target_perf)
        runner["check_every"] = int(check_every or DEFAULT_CHECK_EVERY)
    return RunConfig(short, gym_id, _jsonable(env_params), model, _jsonable(model_params), entry, spec,
                     _jsonable(runner), env)


def check_seed(seed) -> int:
    if not is_int(seed) or seed < 0:
        raise SwitchbenchError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def validate(paradigm: str, model: str, overrides: dict[str, Any], loop_only: bool = False) -> RunConfig:
    """Fail early, with one clear line, on a bad name, parameter or configuration (runner
    options included: ``k_adapt``, ``n_eval``, ``criterion``, ``threshold``, ``sampler``), a
    model that declines the paradigm included; else the checked :class:`RunConfig`
    (``prepare(build=False)``: no data built yet), for :func:`~switchbench.benchmark.suite.run_many`
    to run without preparing it again."""
    rc = prepare(paradigm, model, build=False, loop_only=loop_only, **overrides)
    reason = rc.entry.decline_reason(rc.spec)
    if reason:
        raise SwitchbenchError(reason)
    return rc
