"""The model registry: names -> learner factories with a small model card.

A model is a factory ``make(spec, seed, **hparams) -> Learner``. Three ways to add one:

1. ``@switchbench.models.register("my-model", description=..., citation=...)`` on the factory;
2. the entry-point group ``switchbench.models`` (``my-model = my_pkg.module:make``) in the
   package that provides it;
3. ``module:factory`` given where a model name is expected (e.g. ``--model my_pkg.mod:make``).

A built-in model is declared once, by ``@register`` on its factory in a module of this
package; the modules are imported on the first look-up of a name (:func:`names`,
:func:`get`), so a new module is found without a list to edit. The tests run every
registered built-in model (``tests/test_models.py``).

>>> from switchbench import models
>>> models.get("gated-linear").card.privileged, models.get("oracle-gates").card.privileged
(False, True)
"""
from __future__ import annotations

import importlib
import inspect
import itertools
import os
import pkgutil
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Optional, Protocol, runtime_checkable

import torch

from switchbench.errors import SwitchbenchError, unknown
from switchbench.params import Param, signature_params

ENTRY_POINT_GROUP = "switchbench.models"

#: the package whose modules declare the built-in models (each with ``@register``)
BUILTIN_PACKAGE = "switchbench.models"
_imported = False


def _import_builtins() -> None:
    """Import every module of :data:`BUILTIN_PACKAGE` once, so that their ``@register``
    declarations run: a built-in model is declared once, where its factory is written."""
    global _imported
    if _imported:
        return
    package = importlib.import_module(BUILTIN_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}")
    _imported = True


@runtime_checkable
class Learner(Protocol):
    """What the runner needs from a model (``probe`` and ``observe_task`` are optional)."""

    def predict(self, x: torch.Tensor) -> torch.Tensor: ...   # no side effects
    def learn(self, x: torch.Tensor, y: torch.Tensor) -> float: ...  # one update; the task loss before it


@dataclass(frozen=True)
class ModelCard:
    """What a model is, shown by ``switchbench list models`` and stored with its scores."""

    name: str
    description: str = ""
    citation: str = ""
    privileged: bool = False            # needs the task identity (the runner calls observe_task)
    kinds: tuple[str, ...] = ("regression",)   # paradigm kinds it supports
    tuning: str = "defaults as published; no per-paradigm tuning"
    #: hyperparameter -> grid searched by ``switchbench tune`` (the published default is one point)
    tunable: dict[str, tuple] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelEntry:
    factory: Callable[..., Any]
    card: ModelCard
    supports: Optional[Callable[[Any], Optional[str]]] = field(default=None)

    def params(self) -> dict[str, Param]:
        """The factory's hyperparameters after ``spec, seed``, typed by their annotations, else
        by their defaults (:mod:`switchbench.params`)."""
        return signature_params(self.factory, skip=2)

    def hparams(self) -> dict[str, Any]:
        """The factory's hyperparameters and their defaults."""
        return {k: p.default for k, p in self.params().items()}

    def grid(self) -> list[dict[str, Any]]:
        """Every configuration of the card's ``tunable`` grid (product over its parameters),
        the published defaults first.

        >>> from switchbench import models
        >>> models.get("gated-linear").grid()[0]
        {'dt': 0.001}
        """
        names = list(self.card.tunable)
        defaults = self.hparams()
        configs = [dict(zip(names, values)) for values in itertools.product(*self.card.tunable.values())]
        configs.sort(key=lambda c: any(c[k] != defaults[k] for k in names))   # stable: the default first
        return configs

    def decline_reason(self, spec) -> Optional[str]:
        """Why this model cannot run on a paradigm with ``spec``, or None if it can."""
        if spec.kind not in self.card.kinds:
            accept = tuple(self.card.kinds) + (spec.kind,)
            return (f"model {self.card.name!r} supports {', '.join(self.card.kinds)} paradigms, not {spec.kind}: "
                    f"register it with kinds={accept!r} if it handles {spec.kind} batches")
        return self.supports(spec) if self.supports is not None else None

    def build(self, spec, seed: int, **hparams):
        """Validate ``hparams`` against the factory's signature and build the learner."""
        valid = self.hparams()
        bad = sorted(set(hparams) - set(valid))
        if bad:
            raise SwitchbenchError(f"model {self.card.name!r} has no parameter {', '.join(map(repr, bad))}; "
                                   f"valid: {', '.join(sorted(valid)) or '(none)'}")
        reason = self.decline_reason(spec)
        if reason:
            raise SwitchbenchError(reason)
        learner = self.factory(spec, seed, **hparams)
        if not isinstance(learner, Learner):
            raise SwitchbenchError(f"model {self.card.name!r}: factory returned {type(learner).__name__}, "
                                   "which lacks predict(x) and learn(x, y)")
        return learner


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, *, description: str = "", citation: str = "", privileged: bool = False,
             kinds: tuple[str, ...] = ("regression",), tuning: str | None = None,
             supports: Callable[[Any], Optional[str]] | None = None, tunable: dict[str, Any] | None = None):
    """Decorator that registers a learner factory ``make(spec, seed, **hparams)`` under ``name``.

    ``tunable``: hyperparameter -> grid of values that ``switchbench tune`` searches (each grid
    must contain the factory's default, the published setting)."""

    def deco(factory):
        card = ModelCard(name=name, description=description or (inspect.getdoc(factory) or "").split("\n")[0],
                         citation=citation, privileged=privileged, kinds=tuple(kinds),
                         tunable={k: tuple(v) for k, v in (tunable or {}).items()},
                         **({"tuning": tuning} if tuning else {}))
        entry = ModelEntry(factory=factory, card=card, supports=supports)
        defaults = entry.hparams()
        for key, values in card.tunable.items():
            if key not in defaults or defaults[key] not in values:
                raise SwitchbenchError(f"model {name!r}: tunable {key!r} must be a parameter of the factory and "
                                       f"its grid {list(values)} must contain the default {defaults.get(key)!r}")
        _REGISTRY[name] = entry
        factory.switchbench_entry = entry
        return factory

    return deco


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _from_object(name: str, obj) -> ModelEntry:
    entry = getattr(obj, "switchbench_entry", None)
    if entry is not None:
        return entry
    if not callable(obj):
        raise SwitchbenchError(f"model {name!r} does not name a callable factory")
    return ModelEntry(factory=obj, card=ModelCard(name=name, description=(inspect.getdoc(obj) or "").split("\n")[0],
                                                  kinds=("regression", "classification", "sequence")))


def _load_path(path: str):
    module, _, attr = path.partition(":")
    _current_folder_on_path()
    try:
        obj = importlib.import_module(module)
    except (ImportError, TypeError, ValueError) as e:   # TypeError: a relative name such as '..x'
        raise SwitchbenchError(f"cannot import model module {module!r}: {e}") from None
    except SyntaxError as e:
        raise SwitchbenchError(f"cannot import model module {module!r}: SyntaxError: {e.msg} "
                               f"({e.filename}, line {e.lineno})") from None
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the plug-in's own code failed as it was imported
        text = str(e).splitlines()[0] if str(e) else ""
        raise SwitchbenchError(f"cannot import model module {module!r}: it raised {type(e).__name__}"
                               + (f": {text}" if text else "")) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SwitchbenchError(f"module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _current_folder_on_path() -> None:
    """Let ``module:factory`` name a module in the current folder, as ``python -m`` does (appended
    after the installed packages, so that a local folder never shadows one of them)."""
    here = os.getcwd()
    if not any(p in ("", here) for p in sys.path):
        sys.path.append(here)


def get(name: str) -> ModelEntry:
    """The registry entry of a model name, an entry-point name or a ``module:factory`` path."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" not in name:
        _import_builtins()
        if name in _REGISTRY:
            return _REGISTRY[name]
    if ":" in name:
        return _from_object(name, _load_path(name))
    eps = _entry_points()
    if name in eps:
        try:
            obj = eps[name].load()
        except Exception as e:  # a broken plug-in must not take the whole registry down
            raise SwitchbenchError(f"model entry point {name!r} failed to load: {e}") from None
        return _from_object(name, obj)
    raise unknown("model", name, names())


def label(name: str) -> str:
    """The name reports show for a model: a ``module:factory`` path whose factory is registered
    (``@register("my-model")``) is shown by that name; any other name as given.

    >>> label("gated-linear"), label("switchbench.models.gated_linear:make_gated_linear")
    ('gated-linear', 'gated-linear')
    """
    if ":" not in name:
        return name
    try:
        return get(name).card.name
    except SwitchbenchError:
        return name


def names() -> list[str]:
    """All model names: built-in, registered and from entry points."""
    _import_builtins()
    return sorted(set(_REGISTRY) | set(_entry_points()))


def builtin_names() -> list[str]:
    """The models declared by the modules of this package (not plug-ins), in name order."""
    _import_builtins()
    return sorted(n for n, e in _REGISTRY.items() if (e.factory.__module__ or "").startswith(BUILTIN_PACKAGE + "."))


def count_parameters(learner) -> int | None:
    """Trainable parameters of a learner exposing ``parameters()`` (tensors), else None."""
    params = getattr(learner, "parameters", None)
    if params is None:
        return None
    return int(sum(p.numel() for p in params()))
