"""The Python API explains itself: progress that counts cached runs, model labels in reports,
the `time` column, Gymnasium's episode length, documented TaskSpec fields, and errors that
say how to fix them."""
import re
from dataclasses import fields

import gymnasium
import numpy as np
import pytest
import torch

import switchbench
from switchbench import models
from switchbench.benchmark import suite
from switchbench.benchmark.suite import RunSpec, metrics_table, run_many
from switchbench.errors import SwitchbenchError
from switchbench.paradigms import PARADIGMS, TaskSpec

SMALL = {"n_blocks": 3, "block_size": 20}
GATED = "switchbench.models.gated_linear:make_gated_linear"   # a registered factory named by its path


def test_progress_bar_counts_cached_runs_from_the_start(monkeypatch):
    specs = [RunSpec("blocked-linear", "linear", s, SMALL) for s in range(3)]
    run_many(specs[:2], progress=False)                      # seeds 0 and 1 are cached
    seen = []                                                # bar position when each new run starts
    bars = []

    class Bar:                                               # records what tqdm would show
        def __init__(self, *a, **kw):
            self.n = 0
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def close(self):
            pass

    run_chunk = suite.run_chunk

    def spy(chunk, *args, **kwargs):
        seen.append((bars[-1].n, [s.seed for s in chunk]))
        return run_chunk(chunk, *args, **kwargs)

    monkeypatch.setattr(suite, "tqdm", Bar)
    monkeypatch.setattr(suite, "run_chunk", spy)
    results = run_many(specs)
    assert seen == [(2, [2])]           # the two cached runs were counted before the new one started
    assert bars[-1].n == 3 and [r.config["seed"] for r in results] == [0, 1, 2]


def test_a_module_factory_path_is_labelled_by_its_registered_name():
    assert models.label(GATED) == "gated-linear" and models.label("linear") == "linear"
    assert models.label("test_usability:make_plain") == "test_usability:make_plain"   # not registered: the path
    res = run_many([RunSpec("blocked-linear", GATED, 0, SMALL)], progress=False)
    assert set(metrics_table(res)["model"]) == {"gated-linear"}
    assert set(res[0].log["model"]) == {"gated-linear"}


class Plain:
    """A model without a continuous-time dt."""

    def __init__(self, spec):
        self.W = torch.zeros(spec.output_size, spec.input_size)

    def predict(self, x):
        return x @ self.W.T

    def learn(self, x, y):
        return float(0.5 * (x @ self.W.T - y).square().sum(1).mean())


def make_plain(spec, seed):
    return Plain(spec)


def make_misshapen(spec, seed):
    net = Plain(spec)
    net.W = torch.zeros(spec.output_size, spec.input_size + 1)   # sized without looking at the cue
    return net


def test_time_column_is_step_times_dt_for_continuous_time_models():
    res = switchbench.run("blocked-linear", "gated-linear", cache=False, progress=False, dt=0.01, **SMALL)
    assert np.allclose(res.log["time"], res.log["step"] * 0.01) and res.log["time"].iloc[-1] == pytest.approx(0.59)
    plain = switchbench.run("blocked-linear", "test_usability:make_plain", cache=False, progress=False, **SMALL)
    assert "time" not in plain.log


@pytest.mark.parametrize("short", ["blocked-linear", "digit-switch", "cued-switch"])
def test_gymnasium_episode_length_is_the_curriculum(short):
    gym_id = PARADIGMS[short][0]
    env = gymnasium.make(gym_id, n_blocks=3, block_size=4, batch_size=8)
    assert env.spec.max_episode_steps == 12 == env.unwrapped.episode_steps
    env.reset(seed=0)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape, np.float32))
        steps += 1
    assert steps == 12 and terminated         # the curriculum ends it, not the time limit alone
    assert gymnasium.make(gym_id, n_blocks=40, block_size=1000).spec.max_episode_steps == 40_000   # never cut short


def test_default_registration_states_the_episode_length():
    assert gymnasium.make("switchbench/BlockedLinear-v0").spec.max_episode_steps == 20 * 1000


def test_taskspec_documents_every_field():
    doc = TaskSpec.__doc__
    for f in fields(TaskSpec):
        assert re.search(rf"^\s+{f.name}: \S", doc, re.M), f"TaskSpec.{f.name} is not documented"


def test_shape_errors_say_how_to_fix_them():
    with pytest.raises(SwitchbenchError, match=r"got 3 \* 10 > 20: lower output_size or n_tasks, raise input_size"):
        gymnasium.make("switchbench/BlockedLinear-v0", n_tasks=3)
    env = gymnasium.make("switchbench/BlockedLinear-v0", **SMALL, batch_size=8).unwrapped
    env.reset(seed=0)
    with pytest.raises(SwitchbenchError, match=r"expected \(8, 10\) = \(batch, output_size\): predict\(x\) must "
                                               r"return 10 outputs for each sample"):
        env.step(np.zeros((8, 3), np.float32))
    with pytest.raises(SwitchbenchError, match=r"predict failed: RuntimeError: .*shape.*; size the model from its "
                                               r"spec: spec.input_size features per sample \(the task cue included\)"):
        switchbench.run("blocked-linear", "test_usability:make_misshapen", cache=False, progress=False, **SMALL)


def test_refusing_a_paradigm_kind_says_how_to_accept_it():
    @models.register("test-regression-only")
    def make(spec, seed):
        return Plain(spec)

    seq = TaskSpec("seq", 5, 3, 2, "cross_entropy", True, (1.0, 1.0), "blocked", 4, kind="sequence")
    reason = models.get("test-regression-only").decline_reason(seq)
    assert reason == ("model 'test-regression-only' supports regression paradigms, not sequence: register it with "
                      "kinds=('regression', 'sequence') if it handles sequence batches")
