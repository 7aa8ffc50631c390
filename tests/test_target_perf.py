"""Runner option ``target_perf``: train until Yang et al.'s criterion (held-out perf_min), stop there."""
import numpy as np
import pytest

from switchbench.benchmark.runner import run
from switchbench.errors import SwitchbenchError

#: a small two-task cognitive run that learns in a few hundred steps
SMALL = dict(envs=["yang19.go-v0", "yang19.anti-v0"], schedule="interleaved", n_blocks=1, dt=100,
             pool_size=512, eval_pool_size=256, n_eval=256, batch_size=32, pool_cache=False, hidden=128, lr=1e-2)
TARGET = 0.5


def _run(block_size, target=TARGET, seed=0, **kw):
    return run("cognitive-switch", "leaky-rnn", seed, block_size=block_size, target_perf=target, check_every=25,
               cache=False, progress=False, **{**SMALL, **kw})


@pytest.fixture(scope="module")
def met_and_checks():
    """A run that meets the target, and the perf_min its checks read (spied on)."""
    from switchbench.benchmark.loop import Call

    seen, read = [], Call.held_out_performance

    def spy(self):
        seen.append(read(self))
        return seen[-1]

    mp = pytest.MonkeyPatch()
    mp.setattr(Call, "held_out_performance", spy)
    try:
        return _run(1000), [float(v[0]) for v in seen]
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def met(met_and_checks):
    return met_and_checks[0]


def test_stops_at_first_check_that_meets_the_target(met_and_checks):
    met, checks = met_and_checks
    steps = met.metrics["steps_to_target"]
    assert met.metrics["target_met"] == 1.0
    assert steps < 1000 and steps % 25 == 0 and len(met.log) == steps
    assert list(met.log["step"]) == list(range(int(steps)))
    # every trained task meets it on the held-out trials at the stop (perf_min, not one task's)
    intact = met.robustness.query("kind == 'none'").groupby("task")["score"].mean()
    assert len(intact) == 2 and (intact >= TARGET).all()
    # one check every 25 steps; every check before the last missed the target, the last met it
    assert len(checks) == steps // 25
    assert all(c < TARGET for c in checks[:-1]) and checks[-1] >= TARGET
    # the perf_min the last check read is the held-out score the result reports (same trials)
    assert checks[-1] == pytest.approx(intact.min())


def test_censored_at_the_cap_and_deterministic():
    a, b = _run(50, target=1.0), _run(50, target=1.0)
    assert a.metrics["target_met"] == 0.0 and a.metrics["steps_to_target"] == 50 == len(a.log)
    np.testing.assert_array_equal(a.log["loss"], b.log["loss"])


def test_stacked_seeds_stop_each_at_its_own_step(met):
    both = run("cognitive-switch", "leaky-rnn", seeds=[0, 1], block_size=1000, target_perf=TARGET, check_every=25,
               cache=False, progress=False, **SMALL)
    assert both[0].metrics["steps_to_target"] == met.metrics["steps_to_target"]
    np.testing.assert_array_equal(both[0].log["loss"], met.log["loss"])
    assert both[1].metrics["target_met"] == 1.0


@pytest.mark.parametrize("paradigm, kw, message", [
    ("blocked-linear", {"target_perf": 0.9}, "scores trials"),
    ("cognitive-switch", {"target_perf": 0.9, "n_blocks": 2}, "one-block"),
    ("cognitive-switch", {"target_perf": 1.5, "n_blocks": 1}, "target_perf must be"),
    ("cognitive-switch", {"check_every": 10, "n_blocks": 1}, "set target_perf too"),
    ("cognitive-switch", {"target_perf": 0.9, "check_every": 0, "n_blocks": 1}, "check_every must be"),
])
def test_bad_target_perf_is_one_line(paradigm, kw, message):
    model = "linear" if paradigm == "blocked-linear" else "leaky-rnn"
    with pytest.raises(SwitchbenchError, match=message):
        run(paradigm, model, 0, cache=False, progress=False, **kw)
