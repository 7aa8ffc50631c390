"""A paradigm's TaskSpec without its data: ``EnvClass.task_spec_for(**params)`` /
``switchbench.paradigms.task_spec(name, **params)`` equal the built environment's spec but
``null_loss``, and neither they nor the checks that use them (``validate``, suite files,
model cards, cached runs) build data."""
import dataclasses

import gymnasium
import pytest

import switchbench.paradigms.cognitive as cognitive
import switchbench.paradigms.digits as digits
import switchbench.paradigms.linear as linear
from switchbench.benchmark import leaderboard, runner
from switchbench.errors import SwitchbenchError
from switchbench.paradigms import PARADIGMS, SwitchEnv, TaskSpec, task_spec

POOLS = {"pool_size": 16, "eval_pool_size": 4, "pool_cache": False}
CASES = [
    ("blocked-linear", {}),
    ("blocked-linear", {"cue": True, "composition": "subtask", "probe": "novel", "n_blocks": 8}),
    ("blocked-linear", {"teachers": "iid", "n_tasks": 3, "output_size": 4, "schedule": "interleaved"}),
    ("digit-switch", {}),
    ("digit-switch", {"tasks": "parity-magnitude", "cue": True, "schedule": [1, 0, 1]}),
    ("cued-switch", {}),
    ("cued-switch", {"mode": "sequence", "cue": False, "schedule": [0, "aabb", "random"]}),
    ("cognitive-switch", {"envs": "dm-pair", "dt": 100, **POOLS}),
    ("cognitive-switch", {"envs": ["yang19.go-v0", "yang19.dlygo-v0", "yang19.anti-v0"], "dt": 100,
                          "env_kwargs": {"yang19.go-v0": {"dt": 50}}, "held_out_tasks": "anti",
                          "compose": {"anti": "dlygo - go"}, **POOLS}),
    ("cognitive-compose", POOLS),
    ("cognitive-compose", {"cue": False, "compose": None, "dt": 20, **POOLS}),
]


def test_every_paradigm_has_a_case():
    assert {name for name, _ in CASES} == set(PARADIGMS)


@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_spec_without_data_equals_the_built_spec(name, params):
    spec = task_spec(name, **params)
    built = gymnasium.make(PARADIGMS[name][0], disable_env_checker=True, **params).unwrapped.task_spec
    assert spec.null_loss is None and len(built.null_loss) == built.n_tasks and min(built.null_loss) > 0
    for field in dataclasses.fields(spec):
        if field.name != "null_loss":
            assert getattr(spec, field.name) == getattr(built, field.name), field.name
    assert spec == dataclasses.replace(built, null_loss=None)


def test_mixed_time_steps_give_no_dt():
    # one task at 50 ms, the other at 100 ms: the spec declares no common dt (read from the tasks, not the data)
    assert task_spec("cognitive-switch", dt=100, env_kwargs={"yang19.go-v0": {"dt": 50}}).dt is None


@pytest.fixture
def no_data(monkeypatch):
    """Every data builder of the paradigms raises: teachers, the digit split, neurogym trials."""
    def refuse(*args, **kwargs):
        raise AssertionError("data built")

    monkeypatch.setattr(linear, "make_teachers", refuse)
    monkeypatch.setattr(digits, "digit_split", refuse)
    monkeypatch.setattr(cognitive, "load_pool", refuse)
    monkeypatch.setattr(cognitive, "generate_trials", refuse)


@pytest.mark.usefixtures("no_data")
@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_spec_builds_no_data(name, params):
    assert task_spec(name, **params).n_tasks >= 2
    with pytest.raises(AssertionError, match="data built"):     # the builders refused are the ones used
        gymnasium.make(PARADIGMS[name][0], disable_env_checker=True, **params)


@pytest.mark.parametrize("name,params,message", [
    ("blocked-linear", {"composition": "mix"}, "unknown composition 'mix'"),
    ("blocked-linear", {"n_tasks": 3, "output_size": 10}, "orthogonal teachers need"),
    ("blocked-linear", {"schedule": "sometimes"}, "schedule"),
    ("digit-switch", {"test_fraction": 0.99}, "test_fraction must lie in 0.05..0.95"),
    ("cued-switch", {"schedule": [0, "nope"]}, "a schedule list needs"),
    ("cognitive-switch", {"envs": ["yang19.nope-v0", "yang19.go-v0"]}, "unknown neurogym env"),
    ("cognitive-switch", {"compose": {"anti": "go + bogus"}}, "cannot read rule-cue expression"),
])
def test_spec_checks_the_parameters_as_the_constructor(name, params, message):
    with pytest.raises(SwitchbenchError, match=message):
        task_spec(name, **params)
    with pytest.raises(SwitchbenchError, match=message):
        gymnasium.make(PARADIGMS[name][0], disable_env_checker=True, **params)


@pytest.mark.usefixtures("no_data")
def test_validation_suites_and_model_cards_build_no_data(tmp_path):
    runner.validate("cognitive-switch", "leaky-rnn", {"envs": "dm-pair", "dt": 100})
    runner.validate("digit-switch", "mlp-cued", {"cue": True})
    with pytest.raises(SwitchbenchError, match="mlp-cued needs the task cue"):
        runner.validate("digit-switch", "mlp-cued", {"cue": False})
    with pytest.raises(SwitchbenchError, match="reduce pool_size"):          # memory, from the parameters
        runner.validate("cognitive-switch", "leaky-rnn", {"pool_size": 10 ** 15})
    suite = tmp_path / "s.toml"
    suite.write_text("name = 's'\nseeds = 1\n[[paradigm]]\nname = 'cognitive-compose'\n"
                     "set = { dt = 100, block_size = 10 }\n")
    specs = leaderboard.load_suite(suite).specs
    assert {s.model for s in specs} >= {"leaky-rnn", "gru"} and "gated-linear" not in {s.model for s in specs}
    cards = leaderboard.model_cards("digit-switch")
    assert cards.loc["mlp", "params (digit-switch)"] > 0


def test_prepare_without_data_has_the_same_keys_and_completes_the_spec_when_built():
    kw = {"n_blocks": 2, "block_size": 3, "batch_size": 8}
    lazy = runner.prepare("digit-switch", "mlp", build=False, **kw)
    eager = runner.prepare("digit-switch", "mlp", **kw)
    assert lazy.env is None and lazy.spec.null_loss is None
    assert lazy.config(0) == eager.config(0) and lazy.key(0) == eager.key(0)
    env = lazy.take_env()
    assert lazy.spec == eager.spec == env.task_spec and lazy.spec.null_loss is not None


def test_data_errors_surface_when_the_paradigm_is_built():
    # seq_len below the longest trial is known only from the pools: checked when the run builds them
    rc = runner.prepare("cognitive-switch", "leaky-rnn", build=False, seq_len=2, dt=100, **POOLS)
    with pytest.raises(SwitchbenchError, match="seq_len must be an integer >= the longest trial"):
        rc.take_env()


def test_a_paradigm_that_ignores_spec_only_is_built_and_its_null_loss_dropped():
    built = []

    class Tiny(SwitchEnv):                           # a user's paradigm that knows nothing of task_spec_for
        n_tasks = 2

        def __init__(self, size: int = 3):
            super().__init__(block_size=2, n_blocks=2, batch_size=4)
            built.append(size)
            self.task_spec = TaskSpec("tiny", size, 1, 2, "mse", False, (1.0, 1.0), "blocked", 4)

    spec = Tiny.task_spec_for(size=5)
    assert built == [5] and spec.input_size == 5 and spec.null_loss is None
