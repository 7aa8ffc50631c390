"""Digit paradigms (DigitSwitch, CuedSwitch), the gated MLP and its baselines, trial metrics.

(check_env and same-seed determinism of both paradigms run in test_paradigms via SMALL.)"""
import gymnasium
import numpy as np
import pandas as pd
import pytest
import torch

import switchbench
from switchbench import models
from switchbench.benchmark import metrics as M
from switchbench.paradigms.cued import trial_stats
from switchbench.data.digits import LABELINGS, congruent, digit_split
from switchbench.errors import SwitchbenchError
from switchbench.models import gated_mlp
from switchbench.paradigms.base import TaskSpec


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny networks: one torch thread is much faster on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def _features(tmp_path_factory):
    """The default feature network, pretrained once for this module."""
    import os
    root = tmp_path_factory.mktemp("features-cache")
    old = os.environ.get("SWITCHBENCH_CACHE")
    os.environ["SWITCHBENCH_CACHE"] = str(root)
    try:
        path = gated_mlp.feature_cache_path(gated_mlp.feature_config(0))
        gated_mlp.feature_network(gated_mlp.feature_config(0))
    finally:
        if old is None:
            del os.environ["SWITCHBENCH_CACHE"]
        else:
            os.environ["SWITCHBENCH_CACHE"] = old
    return path


@pytest.fixture(autouse=True)
def _shared_features(_features, _cache):
    """Each test's own (empty) cache gets the module's pretrained feature network."""
    import shutil
    (_cache / "features").mkdir(parents=True, exist_ok=True)
    shutil.copy(_features, _cache / "features" / _features.name)


def digit_of(split, x):
    """The digit class of each image row (images looked up by their bytes in the split)."""
    table = {}
    for xs, ys in ((split.x_train, split.y_train), (split.x_test, split.y_test)):
        for row, y in zip(xs, ys):
            table.setdefault(row.tobytes(), set()).add(int(y))
    labels = [table[np.ascontiguousarray(r).tobytes()] for r in x]
    assert all(len(s) == 1 for s in labels), "ambiguous image"
    return np.array([next(iter(s)) for s in labels])


# --- data and paradigms -----------------------------------------------------------------

def test_split_is_seeded_stratified_and_disjoint():
    a, b, c = digit_split(0), digit_split(0), digit_split(1)
    assert np.array_equal(a.idx_train, b.idx_train) and not np.array_equal(a.idx_train, c.idx_train)
    assert len(np.intersect1d(a.idx_train, a.idx_test)) == 0
    assert len(a.idx_train) + len(a.idx_test) == 1797
    train_freq = np.bincount(a.y_train, minlength=10) / len(a.y_train)
    test_freq = np.bincount(a.y_test, minlength=10) / len(a.y_test)
    np.testing.assert_allclose(train_freq, test_freq, atol=0.004)     # stratified by digit
    with pytest.raises(SwitchbenchError, match="test_fraction"):
        digit_split(0, 1.5)


def test_relabelings_and_congruency():
    y = np.arange(10)
    assert LABELINGS["identity"](y).tolist() == list(range(10))
    assert LABELINGS["relabel"](y).tolist() == [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]
    assert sorted(LABELINGS["relabel"](y).tolist()) == list(range(10))      # a permutation
    assert LABELINGS["parity"](y).tolist() == [0, 1] * 5
    assert LABELINGS["magnitude"](y).tolist() == [0] * 5 + [1] * 5
    assert np.flatnonzero(~congruent(y)).tolist() == [1, 3, 6, 8]


@pytest.mark.parametrize("tasks, names", [("identity-relabel", ("identity", "relabel")),
                                          ("parity-magnitude", ("parity", "magnitude"))])
def test_digit_switch_targets_follow_the_active_labeling(tasks, names):
    env = gymnasium.make("switchbench/DigitSwitch-v0", tasks=tasks, n_blocks=2, block_size=2, batch_size=50).unwrapped
    split = env.data.split
    x, info = env.reset(seed=0)
    seen = []
    for _ in range(4):
        nxt, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
        digits = digit_of(split, x)
        np.testing.assert_array_equal(info["target"], LABELINGS[names[info["task"]]](digits))
        assert info["target"].dtype == np.int64
        seen.append(info["task"])
        x = nxt
    assert seen == [0, 0, 1, 1]
    n_classes = 10 if tasks == "identity-relabel" else 2
    assert env.task_spec.output_size == n_classes and env.task_spec.switch_criterion == ("accuracy", 0.85)
    assert env.task_spec.null_loss == pytest.approx((np.log(n_classes),) * 2, abs=0.01)   # ~balanced classes
    # the stream draws from the train part, eval_batch from the test part only
    train, test = {r.tobytes() for r in split.x_train}, {r.tobytes() for r in split.x_test}
    xe, ye = env.eval_batch(1, 200, seed=0)
    assert all(r.tobytes() in test for r in xe)
    assert all(r.tobytes() in train for r in x)
    np.testing.assert_array_equal(ye, LABELINGS[names[1]](digit_of(split, xe)))


def test_cued_trials_mode_marks_switches_repeats_and_congruency():
    env = gymnasium.make("switchbench/CuedSwitch-v0", n_blocks=2, block_size=6, batch_size=40).unwrapped
    split = env.data.split
    x, _ = env.reset(seed=1)
    tasks = env.curriculum.task
    runs = np.diff(np.flatnonzero(np.diff(tasks)))
    assert set(runs.tolist()) == {2}                                     # AABB: runs of two trials
    prev = None
    for t in range(len(tasks)):
        nxt, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
        task = info["task"]
        np.testing.assert_array_equal(x[:, 64:], np.tile(np.eye(2)[task], (40, 1)))   # the cue
        digits = digit_of(split, x[:, :64])
        np.testing.assert_array_equal(info["target"], LABELINGS[("parity", "magnitude")[task]](digits))
        np.testing.assert_array_equal(info["congruent"], LABELINGS["parity"](digits) == LABELINGS["magnitude"](digits))
        assert info["trial_switch"].all() == (prev is not None and prev != task)
        assert info["trial_repeat"].all() == (prev is not None and prev == task)
        assert info["mixed"] is True
        prev, x = task, nxt


@pytest.mark.parametrize("kwargs, expect", [
    ({"schedule": "blocked"}, lambda task, mixed: task.tolist() == [0] * 4 + [1] * 4 + [0] * 4 and not mixed.any()),
    ({"schedule": "random", "p_switch": 0.0}, lambda task, mixed: len(set(task.tolist())) == 1 and mixed.all()),
    ({"schedule": "random", "p_switch": 1.0}, lambda task, mixed: (np.diff(task) != 0).all()),
    ({"schedule": [1, "aabb", 0]}, lambda task, mixed: task[:4].tolist() == [1] * 4 and mixed.tolist() == [0, 1, 0]),
    ({"schedule": "pure-mixed", "n_blocks": 4}, lambda task, mixed: mixed.tolist() == [0, 0, 1, 1]),
])
def test_cued_schedules(kwargs, expect):
    env = gymnasium.make("switchbench/CuedSwitch-v0", **{"n_blocks": 3, "block_size": 4, "batch_size": 2, **kwargs})
    env.reset(seed=0)
    u = env.unwrapped
    assert expect(u.curriculum.task, u._mixed)


def test_sequence_mode_masks_cues_and_trial_labels():
    n_trials, csi, b = 5, 2, 16
    env = gymnasium.make("switchbench/CuedSwitch-v0", mode="sequence", n_trials=n_trials, csi=csi, batch_size=b,
                         n_blocks=1, block_size=3, schedule="aabb").unwrapped
    x, info = env.reset(seed=0)
    T = n_trials * (csi + 1)
    assert x.shape == (T, b, 66) and env.task_spec.sequence and env.task_spec.kind == "sequence"
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    resp = np.arange(n_trials) * (csi + 1) + csi
    expected_mask = np.zeros((T, b), bool)
    expected_mask[resp] = True
    np.testing.assert_array_equal(info["mask"], expected_mask)
    np.testing.assert_array_equal(info["target"] != -100, expected_mask)
    assert not x[~expected_mask][:, :64].any()                      # pixels only at response steps
    assert (x[..., 64:].sum(-1) == 1).all()                          # the cue at every step
    cue = x[..., 64:].argmax(-1)                                     # (T, b) task of each step
    assert (cue.reshape(n_trials, csi + 1, b) == cue[resp][:, None]).all()   # one cue per trial
    tasks = cue[resp]                                                # (n_trials, b)
    assert (tasks[0] == info["task"]).all()
    np.testing.assert_array_equal(info["trial_switch"][resp[1:]], tasks[1:] != tasks[:-1])
    np.testing.assert_array_equal(info["trial_repeat"][resp[1:]], tasks[1:] == tasks[:-1])
    assert not info["trial_switch"][resp[0]].any() and not info["trial_repeat"][resp[0]].any()
    assert not (info["trial_switch"] & ~expected_mask).any()
    runs_ok = [set(np.diff(np.flatnonzero(np.diff(tasks[:, j]))).tolist()) <= {2} for j in range(b)]
    assert all(runs_ok)                                              # AABB within each sequence
    xe, ye = env.eval_batch(1, 8, seed=0)
    assert xe.shape == (T, 8, 66) and (xe[..., 65] == 1).all() and ((ye != -100) == expected_mask[:, :8]).all()


@pytest.mark.parametrize("env_id, kwargs, message", [
    ("switchbench/DigitSwitch-v0", {"tasks": "colour"}, "unknown tasks 'colour'"),
    ("switchbench/DigitSwitch-v0", {"test_fraction": 0.0}, "test_fraction must lie"),
    ("switchbench/DigitSwitch-v0", {"split_seed": "one"}, "split_seed must be a non-negative integer"),
    ("switchbench/CuedSwitch-v0", {"mode": "movie"}, "unknown mode 'movie'"),
    ("switchbench/CuedSwitch-v0", {"schedule": "abab"}, "unknown schedule 'abab'"),
    ("switchbench/CuedSwitch-v0", {"schedule": [0, 2]}, "a schedule list needs"),
    ("switchbench/CuedSwitch-v0", {"csi": -1}, "csi must be an integer >= 0"),
    ("switchbench/CuedSwitch-v0", {"p_switch": 2}, "p_switch must lie in 0..1"),
])
def test_bad_configuration_is_a_clear_error(env_id, kwargs, message):
    with pytest.raises(SwitchbenchError, match=message):
        gymnasium.make(env_id, **kwargs)


# --- models ---------------------------------------------------------------------------

DIGIT_SPEC = TaskSpec("digits", 64, 10, 2, "cross_entropy", False, (2.3, 2.3), "blocked", 8, kind="classification")


def test_models_decline_what_they_cannot_run():
    linear = TaskSpec("lin", 20, 10, 2, "mse", False, (0.25, 0.25), "blocked", 8)
    assert "supports classification" in models.get("gated-mlp").decline_reason(linear)
    wrong = TaskSpec("x", 30, 10, 2, "cross_entropy", False, (2.3, 2.3), "blocked", 8, kind="classification")
    assert "needs 8x8 digit images" in models.get("mlp").decline_reason(wrong)
    assert "set cue=True" in models.get("mlp-cued").decline_reason(DIGIT_SPEC)
    seq = gymnasium.make("switchbench/CuedSwitch-v0", mode="sequence").unwrapped.task_spec
    assert models.get("gated-mlp").decline_reason(seq) is not None
    with pytest.raises(SwitchbenchError, match="set cue=True"):
        switchbench.run("digit-switch", "mlp-cued", cache=False, progress=False, n_blocks=1, block_size=2)
    for kw, message in (({"optimizer": "rmsprop"}, "optimizer must be"), ({"n_paths": -1}, "n_paths must be"),
                        ({"lr_w": -1.0}, "lr_w must be positive"), ({"feature_seed": -1}, "feature_seed must be")):
        with pytest.raises(SwitchbenchError, match=message):
            models.get("gated-mlp").build(DIGIT_SPEC, 0, **kw)


@pytest.mark.parametrize("model, paradigm, kw, target", [
    ("gated-mlp", "digit-switch", {}, 0.95),
    ("gated-mlp-forgetful", "digit-switch", {}, 0.9),
    ("mlp", "digit-switch", {"lr_w": 1e-2}, 0.95),     # its default 1e-3 (the gated readout's) is slower
    ("mlp-cued", "cued-switch", {"schedule": "random", "optimizer": "adam", "block_size": 400}, 0.95),
])
def test_models_learn_a_tiny_run_to_a_stated_accuracy(model, paradigm, kw, target):
    r = switchbench.run(paradigm, model, seed=0, cache=False, progress=False, k_adapt=0, n_eval=300,
                        **{"n_blocks": 1, "block_size": 150, **kw})
    assert r.log["accuracy"].iloc[:5].mean() < 0.8                  # it starts low ...
    assert r.metrics["final_accuracy"] >= target                      # ... and learns
    assert 1 - r.R0.min() > 0                                         # held-out loss below the null loss


def test_gated_mlp_gates_switch_after_a_task_switch():
    r = switchbench.run("digit-switch", "gated-mlp", seed=0, cache=False, progress=False, k_adapt=0, n_eval=200,
                        n_blocks=3, block_size=150)
    g = np.abs(r.probes["gates"])                                     # (blocks, paths): |c| (see the model notes)
    on = int(g[0].argmax())
    off = 1 - on
    assert g[0, on] > 0.8 and g[0, off] < 0.3                         # block 0: one path carries task A
    assert g[1, off] > g[0, off] + 0.5 and g[1, on] < 0.3             # after the switch the other path takes over
    assert g[2, on] > 0.8 and g[2, off] < 0.3                         # and back
    forgetful = switchbench.run("digit-switch", "gated-mlp-forgetful", seed=0, cache=False, progress=False, k_adapt=0,
                                n_eval=200, n_blocks=2, block_size=150)
    assert np.abs(np.diff(forgetful.probes["gates"], axis=1)).max() < 0.05   # slow gates stay together


def test_models_survive_deepcopy_and_predict_without_side_effects():
    import copy
    net = models.get("gated-mlp").build(DIGIT_SPEC, seed=0)
    x = torch.rand(8, 64)
    y = torch.arange(8) % 10
    before = net.predict(x).clone()
    twin = copy.deepcopy(net)
    net.learn(x, y)
    torch.testing.assert_close(twin.predict(x), before)
    assert not torch.equal(net.predict(x), before)


def test_feature_network_is_cached_reused_and_keyed_by_seed(monkeypatch, _cache):
    cfg0, cfg1 = gated_mlp.feature_config(0, epochs=2), gated_mlp.feature_config(1, epochs=2)
    p0, p1 = gated_mlp.feature_cache_path(cfg0), gated_mlp.feature_cache_path(cfg1)
    assert p0 != p1 and p0.parent == _cache / "features"
    before = {q.name for q in p0.parent.iterdir()}
    layers0, acc0 = gated_mlp.feature_network(cfg0)
    assert p0.exists() and not p1.exists() and 0.5 < acc0 <= 1
    assert {q.name for q in p0.parent.iterdir()} - before == {p0.name}   # written atomically: no temporary left
    with monkeypatch.context() as m:
        m.setattr(gated_mlp, "pretrain", lambda config: pytest.fail("pretrained again"))
        again, acc_again = gated_mlp.feature_network(cfg0)            # loaded, not retrained
    assert acc_again == acc0 and all(torch.equal(a, b) for wb, wb2 in zip(layers0, again) for a, b in zip(wb, wb2))
    layers1, _ = gated_mlp.feature_network(cfg1)
    assert p1.exists() and not torch.equal(layers0[0][0], layers1[0][0])
    assert gated_mlp.feature_cache_path(gated_mlp.feature_config(0, epochs=3)) != p0   # every setting is in the key


# --- trial metrics ----------------------------------------------------------------------

def test_switch_and_mixing_cost_on_a_hand_made_log():
    log = pd.DataFrame({
        "phase": "train", "block": [0, 0, 1, 1, 1],
        "mixed": [False, False, True, True, True],
        "n_switch": [0, 0, 10, 0, 10], "error_switch": [np.nan, np.nan, 0.4, np.nan, 0.2],
        "loss_switch": [np.nan, np.nan, 1.0, np.nan, 0.6],
        "n_repeat": [10, 30, 0, 20, 0], "error_repeat": [0.1, 0.05, np.nan, 0.15, np.nan],
        "loss_repeat": [0.3, 0.2, np.nan, 0.5, np.nan],
    })
    assert M.switch_cost(log, "error") == pytest.approx(0.3 - 0.15)
    assert M.switch_cost(log, "loss") == pytest.approx(0.8 - 0.5)
    assert M.mixing_cost(log, "error") == pytest.approx(0.15 - (1 + 1.5) / 40)
    by_block = M.switch_cost_by_block(log)
    assert by_block["block"].tolist() == [1] and by_block["cost"].iloc[0] == pytest.approx(0.15)
    assert np.isnan(M.mixing_cost(log[log["mixed"]]))                   # no pure blocks: undefined


def test_trial_stats_split_loss_and_error_by_trial_type():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    info = {"target": np.array([0, 0, 1, -100]), "trial_switch": np.array([True, True, False, False]),
            "trial_repeat": np.array([False, False, True, True]), "congruent": np.array([True, False, True, True]),
            "mixed": True}
    s = trial_stats(logits, info)
    assert s["n_switch"] == 2 and s["n_repeat"] == 1                    # the masked target does not count
    assert s["error_switch"] == 0.5 and s["error_repeat"] == 1.0
    assert s["loss_repeat"] == pytest.approx(2 + np.log1p(np.exp(-2)))
    assert s["error_congruent"] == 0.5 and s["error_incongruent"] == 1.0 and s["mixed"] is True


def test_a_cued_run_logs_trial_columns_and_costs():
    r = switchbench.run("cued-switch", "gated-mlp", seed=0, cache=False, progress=False, k_adapt=2, n_eval=100,
                        n_blocks=4, block_size=40, schedule="pure-mixed")
    for col in ("loss_switch", "error_repeat", "n_incongruent", "mixed"):
        assert col in r.log
    assert r.log.groupby("block")["mixed"].first().tolist() == [False, False, True, True]
    for k in ("final_accuracy", "switch_cost_error", "switch_cost_loss", "mixing_cost_error",
              "congruency_effect_error"):
        assert np.isfinite(r.metrics[k]), k
        assert k in M.METRICS
    assert r.metrics["switch_cost_error"] == pytest.approx(M.switch_cost(r.log, "error"))


# --- findings (small versions of `switchbench reproduce nonlinear-switch switch-cost`) ---

def test_nonlinear_switch_finding_passes_and_both_checks_fail_when_the_flexible_model_cannot_learn(tmp_path):
    from switchbench.benchmark.findings.switching import nonlinear_switch
    small = {"n_blocks": 10, "block_size": 100, "k_adapt": 0, "n_eval": 200}
    fast = nonlinear_switch(2, figures=tmp_path, progress=False, overrides=small)
    assert [c.status for c in fast.checks] == ["PASS", "PASS"], [c.line() for c in fast.checks]
    assert fast.figures[0].exists() and fast.figures[0].stat().st_size > 10_000
    frozen = nonlinear_switch(2, figures=tmp_path / "frozen", progress=False,
                              overrides={**small, "gated-mlp/lr_w": 1e-12, "gated-mlp/lr_c": 1e-12})
    assert [c.status for c in frozen.checks] == ["FAIL", "FAIL"], [c.line() for c in frozen.checks]


def test_switch_cost_finding_passes_and_fails_when_nothing_learns(tmp_path):
    from switchbench.benchmark.findings.switching import switch_cost
    small = {"n_blocks": 4, "block_size": 300, "k_adapt": 0, "n_eval": 200, "gru/n_blocks": 2, "gru/block_size": 20}
    rep = switch_cost(3, figures=tmp_path, progress=False, overrides=small)
    assert [c.name.split(":")[0] for c in rep.checks] == ["gated-mlp", "mlp-cued"]
    assert [c.status for c in rep.checks] == ["PASS", "PASS"], [c.line() for c in rep.checks]
    assert any("Rogers & Monsell 1995" in n for n in rep.notes)
    assert rep.figures[0].exists()
    frozen = switch_cost(3, figures=tmp_path / "frozen", progress=False, overrides={
        **small, "gated-mlp/lr_w": 1e-12, "gated-mlp/lr_c": 1e-12, "mlp-cued/lr_w": 1e-12})
    assert [c.status for c in frozen.checks] == ["FAIL", "FAIL"], [c.line() for c in frozen.checks]


class ZeroLearner:
    """Predicts zero logits; learns nothing (a stand-in for a recurrent model)."""

    def __init__(self, spec):
        self.spec = spec

    def predict(self, x):
        return torch.zeros(*x.shape[:-1], self.spec.output_size)

    def learn(self, x, y):
        return float(np.log(self.spec.output_size))


def make_zero(spec, seed):
    return ZeroLearner(spec)


def test_the_runner_logs_sequence_mode_trials():
    r = switchbench.run("cued-switch", "test_digits:make_zero", seed=0, cache=False, progress=False, k_adapt=1,
                        n_eval=20, mode="sequence", n_trials=4, csi=1, batch_size=10, n_blocks=2, block_size=5)
    log = r.log
    assert len(log) == 10 and (log["n_switch"] + log["n_repeat"] == 3 * 10).all()   # trials 2..4 of 10 sequences
    assert np.allclose(log["loss_switch"], np.log(2)) and np.allclose(log["loss"], np.log(2))
    assert log["accuracy"].between(0, 1).all() and r.R0.shape == (2, 2)
    assert r.metrics["switch_cost_loss"] == pytest.approx(0, abs=1e-6)


def test_gru_learns_cued_sequences():
    r = switchbench.run("cued-switch", "gru", seed=0, cache=False, progress=False, k_adapt=0, n_eval=50,
                        mode="sequence", n_trials=4, csi=1, batch_size=50, n_blocks=1, block_size=150,
                        schedule="random")
    assert r.log["accuracy"].iloc[:5].mean() < 0.75 and r.metrics["final_accuracy"] >= 0.9
    assert models.get("gru").decline_reason(DIGIT_SPEC) is not None       # not for single-step inputs
