"""Declared parameters: typed by a constructor's or factory's annotations (else by their
defaults), read by the override split, its type checks, its errors and ``list --params``."""
from typing import Sequence

import pytest

from switchbench import models
from switchbench.benchmark import config
from switchbench.benchmark.cli import main
from switchbench.benchmark.config import paradigm_params
from switchbench.errors import SwitchbenchError
from switchbench.paradigms.cognitive import CognitiveComposeEnv, CognitiveSwitchEnv
from switchbench.params import Param, signature_params


def make_annotated(spec, seed, width: int | None = None, lr: float = 1, names: Sequence[str] = ()):
    return models.get("linear").factory(spec, seed)


def make_unresolvable(spec, seed, hidden: "NoSuchType" = 8):   # noqa: F821 - an annotation that does not evaluate
    return models.get("linear").factory(spec, seed)


def split(paradigm, model, **overrides):
    return config.split_overrides(config.resolve_paradigm(paradigm)[2], models.get(model), overrides)


def test_paradigm_parameters_are_typed_by_the_constructor_annotations():
    params = paradigm_params(CognitiveSwitchEnv)
    assert params["dt"] == Param("dt", float | None, 20) and params["seq_len"].type == int | None
    # the preset's signature carries the parent's types with its own defaults
    compose = paradigm_params(CognitiveComposeEnv)
    assert compose["held_out_tasks"] == Param("held_out_tasks", str | Sequence[str], ("rtanti",))
    assert compose["dt"].type == params["dt"].type and compose["dt"].default == 100


def test_annotations_decide_where_the_default_would_mislead():
    # dt defaults to the integer 20 but is declared a float (or None): both are accepted
    env_p, _ = split("cognitive-switch", "leaky-rnn", dt=12.5)
    assert env_p["dt"] == 12.5 and env_p["pool_size"] == 1024
    assert split("cognitive-switch", "leaky-rnn", **{"paradigm.dt": None})[0]["dt"] is None
    with pytest.raises(SwitchbenchError, match=r"^dt must be a number or None, got 'fast'$"):
        split("cognitive-switch", "leaky-rnn", dt="fast")


@pytest.mark.parametrize("paradigm,model,overrides,message", [
    ("blocked-linear", "linear", {"n_blocks": 2.5}, "n_blocks must be an integer, got 2.5"),
    ("blocked-linear", "linear", {"cue": 1}, "cue must be true or false, got 1"),
    ("blocked-linear", "linear", {"schedule": [0, "b"]}, "schedule must be a string or a list of integers"),
    ("blocked-linear", "linear", {"teachers": 3}, "teachers must be a string, got 3"),
    ("cognitive-switch", "leaky-rnn", {"compose": {"anti": 1}},
     "compose must be a table of strings to strings or None"),
    ("cognitive-switch", "leaky-rnn", {"envs": ["yang19.go-v0", 2]}, "envs must be a string or a list of strings"),
    ("blocked-linear", "gated-linear", {"tau_c": "slow"}, "tau_c must be a number, got 'slow'"),
    ("cognitive-switch", "gru", {"hidden": 6.5}, "hidden must be an integer, got 6.5"),
    # zoo parameters that default to None are typed by their annotations
    ("blocked-linear", "gated-linear", {"n_paths": 2.5}, "n_paths must be an integer or None, got 2.5"),
    ("blocked-linear", "deep-linear", {"hidden": "wide"}, "hidden must be an integer or None, got 'wide'"),
    ("cognitive-switch", "leaky-rnn", {"alpha": "fast"}, "alpha must be a number or None, got 'fast'"),
])
def test_values_of_the_wrong_type_are_one_line_errors(paradigm, model, overrides, message):
    with pytest.raises(SwitchbenchError, match=message) as e:
        split(paradigm, model, **overrides)
    assert "\n" not in str(e.value)


def test_model_factories_are_typed_by_annotations_else_by_defaults():
    entry = models.get("test_params:make_annotated")
    assert entry.params() == {"width": Param("width", int | None, None), "lr": Param("lr", float, 1),
                              "names": Param("names", Sequence[str], ())}
    assert entry.hparams() == {"width": None, "lr": 1, "names": ()}
    _, model_p = config.split_overrides(config.resolve_paradigm("blocked-linear")[2], entry,
                                        {"lr": 0.5, "width": 4, "names": ["a"]})
    assert model_p == {"width": 4, "lr": 0.5, "names": ["a"]}
    with pytest.raises(SwitchbenchError, match="width must be an integer or None, got 2.5"):
        config.split_overrides(config.resolve_paradigm("blocked-linear")[2], entry, {"width": 2.5})
    assert signature_params(make_unresolvable, skip=2)["hidden"].type is int      # by its default
    assert models.get("gru").params()["lr"] == Param("lr", float, 3e-3)


def test_list_params_shows_types_and_defaults(capsys):
    assert main(["list", "paradigms", "--params"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.split()[:1] == ["dt"])    # cognitive-switch's first
    assert row.split()[1:] == ["float", "|", "None", "20"]
    assert main(["list", "models", "--params"]) == 0
    assert "hidden" in capsys.readouterr().out
    assert main(["list", "metrics", "--params"]) == 2
    assert "--params lists the parameters of paradigms or models" in capsys.readouterr().err
