"""Declared parameters: a paradigm's constructor or a model's factory, read as typed
:class:`Param` (name, type, default) from its signature.

The type is the parameter's annotation (``n_blocks: int = 20``, ``dt: float | None = 20``),
so the signature is the one place that declares it; an unannotated parameter is typed by
its default (``lr=1e-3``: a number; ``hidden=64``: an integer; ``pretrained=True``: true or
false; ``optimizer="sgd"``: a string; a default of None: anything). The runner checks
every ``key=value`` override against its type (:meth:`Param.check`) before the paradigm or
model sees it; the paradigm or model still checks ranges and names.

>>> from switchbench.params import signature_params
>>> def make(spec, seed, hidden: int | None = None, lr=1e-3): ...
>>> ps = signature_params(make, skip=2)
>>> [str(p) for p in ps.values()]
['hidden: int | None = None', 'lr: float = 0.001']
>>> ps["lr"].check(3)                     # an integer is a number
>>> ps["hidden"].check(2.5)
Traceback (most recent call last):
    ...
switchbench.errors.SwitchbenchError: hidden must be an integer or None, got 2.5
"""
from __future__ import annotations

import collections.abc
import inspect
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

from switchbench.errors import SwitchbenchError


@dataclass(frozen=True)
class Param:
    """One declared parameter: its ``name``, ``type`` (a type hint; ``Any`` when undeclared)
    and ``default``."""

    name: str
    type: Any
    default: Any

    def check(self, value) -> None:
        """Raise a one-line :class:`SwitchbenchError` unless ``value`` has this parameter's type."""
        if not _matches(value, self.type):
            raise SwitchbenchError(f"{self.name} must be {describe(self.type)}, got {value!r}")

    def __str__(self) -> str:
        return f"{self.name}: {type_name(self.type)} = {self.default!r}"


def typed_by_default(default) -> Any:
    """The type of an unannotated parameter, from its default: bool, int, float or str; else Any."""
    for t in (bool, str, float):
        if isinstance(default, t):
            return t
    return int if is_int(default) else Any


def signature_params(fn, skip: int = 0) -> dict[str, Param]:
    """The keyword parameters of ``fn`` after its first ``skip`` (``self``; ``spec, seed``),
    typed by their annotations, else by their defaults."""
    try:
        sig = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, SyntaxError):   # an annotation that does not evaluate here: read as undeclared
        sig = inspect.signature(fn)
    out = {}
    for p in list(sig.parameters.values())[skip:]:
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        tp = p.annotation
        if tp is p.empty or isinstance(tp, str):
            tp = typed_by_default(p.default)
        out[p.name] = Param(p.name, tp, p.default)
    return out


def is_int(v) -> bool:
    """An integer (Python's or numpy's), not a bool.

    >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(np.True_), is_int(3.0)
    (True, True, False, False, False)
    """
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _union_args(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _matches(value, tp) -> bool:
    if tp is Any or tp is inspect.Parameter.empty:
        return True
    arms = _union_args(tp)
    if arms is not None:
        return any(_matches(value, a) for a in arms)
    if tp is None or tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, (bool, np.bool_))
    if tp is int:
        return is_int(value)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    origin, args = typing.get_origin(tp) or tp, typing.get_args(tp)
    if origin in (collections.abc.Sequence, list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:      # tuple[int, str]: one type per place
            return len(args) == len(value) and all(map(_matches, value, args))
        return not args or all(_matches(v, args[0]) for v in value)
    if origin in (collections.abc.Mapping, dict):
        return isinstance(value, collections.abc.Mapping) and (
            not args or all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items()))
    return isinstance(origin, type) and isinstance(value, origin)


_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "None"}
_NAMES = {bool: "bool", int: "int", float: "float", str: "str", type(None): "None"}


def describe(tp) -> str:
    """A type in words, for error messages: ``int | None`` -> ``"an integer or None"``."""
    arms = _union_args(tp)
    if arms is not None:
        return " or ".join(describe(a) for a in arms)
    if tp in _WORDS:
        return _WORDS[tp]
    origin, args = typing.get_origin(tp) or tp, typing.get_args(tp)
    if origin in (collections.abc.Sequence, list, tuple):
        return "a list" + (f" of {_plural(args[0])}" if len(args) == 1 else "")
    if origin in (collections.abc.Mapping, dict):
        return "a table" + (f" of {_plural(args[0])} to {_plural(args[1])}" if len(args) == 2 else "")
    return "anything" if tp is Any else f"a {getattr(origin, '__name__', str(origin))}"


def _plural(tp) -> str:
    words = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
    return words.get(tp, "values" if tp is Any else type_name(tp))


def type_name(tp) -> str:
    """A type as written in a signature: ``int | None``, ``str | Sequence[int]``, ``Any``."""
    arms = _union_args(tp)
    if arms is not None:
        return " | ".join(type_name(a) for a in arms)
    if tp in _NAMES:
        return _NAMES[tp]
    if tp is Any:
        return "Any"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    name = getattr(origin or tp, "__name__", str(origin or tp))
    return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
