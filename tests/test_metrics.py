"""Metrics on cases with known answers."""
import numpy as np
import pandas as pd
import pytest

from switchbench.benchmark import metrics as M


def block_log(curves, block_size):
    rows = []
    for b, curve in enumerate(curves):
        for i, v in enumerate(curve):
            rows.append({"block": b, "task": b % 2, "switch": b > 0 and i == 0, "phase": "train", "norm_loss": v,
                         "accuracy": 1 - v})
    return pd.DataFrame(rows)


def test_switch_time_counts_steps_to_criterion_and_flags_censored_blocks():
    log = block_log([[1, 1, 1, 1], [1, 0.5, 0.1, 0.0], [1, 1, 1, 1], [0.05, 1, 1, 1]], 4)
    t = M.switch_time(log)
    assert t["block"].tolist() == [1, 2, 3]          # block 0 is not a switch
    assert t["switch_time"].tolist() == [2, 4, 0]
    assert t["censored"].tolist() == [False, True, False]
    assert M.switch_time(log, "norm_loss", 0.5)["switch_time"].tolist() == [1, 4, 0]
    assert M.switch_time(log, "accuracy", 0.95)["switch_time"].tolist() == [3, 4, 0]   # >= for accuracy
    s = M.switch_time_summary(t, early=2, late=1)
    assert s == {"switch_time_early": 3.0, "switch_time_late": 0.0, "switch_censored": pytest.approx(1 / 3),
                 "switch_censored_early": 0.5, "switch_censored_late": 0.0}


def test_forgetting_uses_the_best_loss_up_to_the_last_training_block():
    trained = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], bool)
    R = np.array([[0.2, 1.0], [0.9, 0.3], [0.1, 0.8], [0.7, 0.2]])
    # second half: blocks 2, 3. Block 2: task 1 (last trained 1): 0.8 - min(1.0, 0.3) = 0.5
    # block 3: task 0 (last trained 2): 0.7 - min(0.2, 0.9, 0.1) = 0.6
    assert M.forgetting(R, trained) == pytest.approx(0.55)
    assert M.forgetting(np.zeros((4, 2)), trained) == 0
    assert np.isnan(M.forgetting(R, np.ones((4, 2), bool)))   # interleaved: never "after last trained"
    # backward transfer: final row minus right-after-training, blocks 0..2
    assert M.backward_transfer(R, trained) == pytest.approx(((0.7 - 0.2) + (0.2 - 0.3) + (0.7 - 0.1)) / 3)


def test_specialisation_is_invariant_to_module_order_and_scale_and_zero_for_orthogonal_modules():
    rng = np.random.default_rng(0)
    T = rng.standard_normal((3, 4, 6))
    score, match = M.specialisation(T, 5 * T[[2, 0, 1]])
    assert score == pytest.approx(1.0) and match.tolist() == [1, 2, 0]
    Q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    T2 = Q[:4][None].repeat(2, 0)
    mods = Q[[4, 5, 4, 5]][None].repeat(2, 0)    # rows orthogonal to every teacher row
    assert M.specialisation(T2, mods)[0] == pytest.approx(0.0, abs=1e-12)
    # partial: one module right, one orthogonal -> 0.5
    assert M.specialisation(T2[:2], np.stack([T2[0], mods[0]]))[0] == pytest.approx(0.5)


def test_trained_matrix_marks_blocks_with_training_steps():
    log = pd.DataFrame({"block": [0, 0, 1, 1], "task": [0, 1, 1, 1], "phase": ["train"] * 3 + ["probe"]})
    assert M.trained_matrix(log, 2, 2).tolist() == [[True, True], [False, True]]


def test_every_metric_states_higher_is_better():
    assert all(isinstance(m.higher_is_better, bool) for m in M.METRICS.values())
    assert M.METRICS["specialisation"].higher_is_better and not M.METRICS["switch_time_late"].higher_is_better
    assert M.PRIMARY in M.METRICS


@pytest.fixture
def own_registry():
    """Metrics registered by a test stay in that test (the registry restored in place: other
    modules hold it by name)."""
    saved = [(d, dict(d)) for d in (M.METRICS, M._COMPUTE)]
    yield
    for d, items in saved:
        d.clear()
        d.update(items)


def test_a_plug_in_metric_is_computed_for_every_run_and_listed(own_registry, capsys):
    """One decorated function in a plug-in module: every run reports it, ``list metrics`` and
    the leaderboard's directions read it; a metric returning None is left out of a run."""
    import switchbench
    from switchbench.benchmark import leaderboard
    from switchbench.benchmark.cli import main

    @M.register_metric("loss_spread", higher_is_better=False, unit="normalised loss",
                       description="max minus min normalised online loss")
    def loss_spread(run):
        """``max(norm_loss) - min(norm_loss)`` over all steps."""
        return float(run.log["norm_loss"].max() - run.log["norm_loss"].min())

    @M.register_metric("never", higher_is_better=True)
    def never(run):
        """A metric that applies to no run."""
        return None

    r = switchbench.run("blocked-linear", "gated-linear", n_blocks=2, block_size=20, cache=False, progress=False)
    assert r.metrics["loss_spread"] == float(r.log["norm_loss"].max() - r.log["norm_loss"].min())
    assert "never" not in r.metrics and list(r.metrics)[-1] == "loss_spread"       # registration order
    w = switchbench.run("blocked-linear", "gated-linear", n_blocks=2, block_size=20, cache=False, progress=False,
                        sampler="wishart")
    assert w.metrics["loss_spread"] > 0                                             # the covariance engine too
    assert M.METRICS["never"].description == "A metric that applies to no run."
    assert main(["list", "metrics"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("loss_spread"))
    assert "max minus min" in row and "normalised loss" in row
    scores = pd.DataFrame({"paradigm": "p", "model": "m", "seed": 0, "metric": ["loss_spread"], "value": [0.5]})
    assert leaderboard.summarise(scores)["higher_is_better"].tolist() == [False]


def test_a_metric_states_its_direction():
    with pytest.raises(Exception, match="higher_is_better must be True or False"):
        M.register_metric("vague", higher_is_better=None)


def test_trial_metrics_of_a_curriculum_without_mixed_blocks_are_nan_not_an_error():
    """cued-switch with schedule="blocked" has pure blocks only: no switch or repeat trials to
    compare, so every switch cost is NaN (it failed every run with a TypeError before)."""
    log = pd.DataFrame({"phase": ["train"] * 4, "block": [0, 0, 1, 1], "mixed": [False] * 4,
                        "n_switch": [0] * 4, "n_repeat": [10] * 4, "error_switch": [np.nan] * 4,
                        "error_repeat": [0.2] * 4, "loss_switch": [np.nan] * 4, "loss_repeat": [0.5] * 4})
    out = M.trial_metrics(log)
    assert set(out) >= {"switch_cost_error", "switch_cost_error_early", "switch_cost_error_late"}
    assert all(np.isnan(v) for v in out.values())


def test_a_mixed_block_has_no_block_level_switch_time():
    """In a mixed block (cued-switch's AABB) the task changes trial by trial, so the block start
    is no task switch: only the pure block is timed (mixed blocks were timed before)."""
    log = pd.DataFrame({"block": [0, 0, 1, 1, 2, 2], "task": [0, 0, 1, 1, 0, 0],
                        "switch": [False, False, True, False, True, False],
                        "mixed": [False, False, True, True, False, False],
                        "accuracy": [0.5, 0.9, 0.9, 0.9, 0.5, 0.9]})
    times = M.switch_time(log, "accuracy", 0.85)
    assert times["block"].tolist() == [2] and times["switch_time"].tolist() == [1]
