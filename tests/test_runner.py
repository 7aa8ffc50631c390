"""The runner: determinism, the run cache, parameter routing and one-line errors."""
import gzip

import gymnasium
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import switchbench
from switchbench import models
from switchbench.benchmark import config, evaluation, runner, storage
from switchbench.errors import SwitchbenchError

SMALL = dict(n_blocks=4, block_size=30, progress=False)


def test_same_seed_same_numbers_other_seed_other_numbers():
    a = switchbench.run("blocked-linear", "gated-linear", seed=0, cache=False, **SMALL)
    b = switchbench.run("blocked-linear", "gated-linear", seed=0, cache=False, **SMALL)
    c = switchbench.run("blocked-linear", "gated-linear", seed=1, cache=False, **SMALL)
    pd.testing.assert_frame_equal(a.log, b.log)
    np.testing.assert_array_equal(a.R0, b.R0)
    np.testing.assert_array_equal(a.Rk, b.Rk)
    assert not np.array_equal(a.log["loss"], c.log["loss"])
    assert a.R0.shape == a.Rk.shape == (4, 2) and a.probes["gates"].shape == (4, 2)
    assert a.probes["modules"].shape == (4, 2, 10, 20)
    assert list(a.log.columns[:9]) == ["paradigm", "model", "seed", "step", "block", "task", "phase", "switch", "loss"]
    assert {"gates_0", "gates_1", "norm_loss"} <= set(a.log.columns) and len(a.log) == 120
    np.testing.assert_allclose(a.log["norm_loss"], a.log["loss"] / 0.25, rtol=1e-12)


def test_seed_sequence_children_seed_the_stream_and_the_model():
    """seed -> SeedSequence(seed).spawn(3): child 0 seeds the paradigm stream, child 1 the model."""
    a = switchbench.run("blocked-linear", "gated-linear", seed=5, cache=False, n_blocks=1, block_size=1,
                        progress=False, k_adapt=0, w_init=1.0, sampler="stream")
    stream, model, _ = np.random.SeedSequence(5).spawn(3)
    env = gymnasium.make("switchbench/BlockedLinear-v0").unwrapped
    x, _ = env.reset(seed=evaluation._seed_int(stream))
    net = models.get("gated-linear").build(env.task_spec, evaluation._seed_int(model), w_init=1.0)
    y = torch.from_numpy(x @ env.teachers[0].T.astype(np.float32))
    expected = float(0.5 * ((net.predict(torch.from_numpy(x)) - y) ** 2).sum(1).mean())
    assert a.log["loss"].iloc[0] == pytest.approx(expected, rel=1e-5)


def test_run_is_cached_atomically_and_loaded_without_recomputing(monkeypatch, _cache):
    """The run loop's entries (``sampler="stream"``: the default would pick the covariance
    engine, whose caching test_batched checks) load without building a learner."""
    first = switchbench.run("blocked-linear", "linear", seed=2, sampler="stream", **SMALL)
    assert first.path is not None and first.path.is_relative_to(_cache)
    assert sorted(p.name for p in first.path.iterdir()) == ["arrays.npz", "config.json", "log.csv.gz", "metrics.json"]
    assert not list(first.path.parent.glob(".tmp-*"))

    def boom(*a, **k):
        raise AssertionError("a cached run was recomputed")

    monkeypatch.setattr(models.ModelEntry, "build", boom)
    again = switchbench.run("blocked-linear", "linear", seed=2, sampler="stream", **SMALL)
    assert again.path == first.path and again.metrics == first.metrics
    np.testing.assert_array_equal(again.R0, first.R0)
    pd.testing.assert_frame_equal(again.log, first.log, check_dtype=False)
    with pytest.raises(AssertionError, match="recomputed"):   # another configuration is another key
        switchbench.run("blocked-linear", "linear", seed=2, tau_w=2.0, sampler="stream", **SMALL)


def test_privileged_models_are_told_the_task():
    r = switchbench.run("blocked-linear", "oracle-gates", seed=0, cache=False, dt=0.05, **SMALL)
    gates = r.log[["gates_0", "gates_1"]].to_numpy()
    np.testing.assert_array_equal(gates.argmax(1), r.log["task"].to_numpy())
    assert r.R0[-1].max() < 0.5          # the oracle knows both tasks at once


def test_gated_network_forgets_in_R0_but_recovers_in_Rk():
    r = switchbench.run("blocked-linear", "gated-linear", seed=0, cache=False, n_blocks=6, block_size=400,
                        dt=0.01, progress=False)
    assert r.metrics["forgetting_R0"] > r.metrics["forgetting_Rk"]


def test_overrides_are_routed_and_ambiguous_or_unknown_keys_are_errors():
    _, _, env_cls = config.resolve_paradigm("blocked-linear")
    env_p, model_p = config.split_overrides(env_cls, models.get("gated-linear"), {"n_blocks": 3, "tau_c": 0.1})
    assert env_p["n_blocks"] == 3 and model_p["tau_c"] == 0.1 and model_p["tau_w"] == 1.3
    entry = models.get("test_runner:make_with_batch_size")
    with pytest.raises(SwitchbenchError, match="'batch_size' is both a paradigm and a model parameter"):
        config.split_overrides(env_cls, entry, {"batch_size": 3})
    env_p, model_p = config.split_overrides(env_cls, entry, {"paradigm.batch_size": 3, "model.batch_size": 4})
    assert env_p["batch_size"] == 3 and model_p["batch_size"] == 4
    with pytest.raises(SwitchbenchError, match="unknown parameter 'bogus'; paradigm: batch_size"):
        config.split_overrides(env_cls, entry, {"bogus": 1})
    with pytest.raises(SwitchbenchError, match="unknown paradigm 'nope'; valid: blocked-linear"):
        config.resolve_paradigm("nope")
    assert config.resolve_paradigm("switchbench/BlockedLinear-v0")[0] == "blocked-linear"


def make_with_batch_size(spec, seed, batch_size=1):
    return models.get("linear").factory(spec, seed)


def make_wrong_shape(spec, seed):
    net = models.get("linear").factory(spec, seed)
    net.predict = lambda x: torch.zeros(x.shape[0], spec.output_size + 1)
    return net


def make_crashing(spec, seed):
    net = models.get("linear").factory(spec, seed)

    def learn(x, y):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\nlong internal detail")

    net.learn = learn
    return net


@pytest.mark.parametrize("model, overrides, message", [
    ("linear", {"dt": 1e9}, r"linear on blocked-linear \(seed 0\): non-finite loss at step \d+"),
    ("test_runner:make_wrong_shape", {}, r"prediction has shape \(200, 11\), expected \(200, 10\)"),
    ("test_runner:make_crashing", {}, r"learn failed: RuntimeError: mat1 and mat2 shapes cannot be multiplied; size the model from its spec"),
])
def test_bad_models_fail_with_one_line(model, overrides, message):
    with pytest.raises(SwitchbenchError, match=message) as e:
        switchbench.run("blocked-linear", model, cache=False, **SMALL, **overrides)
    assert "\n" not in str(e.value)


def test_new_task_blocks_mark_the_first_block_of_each_new_task():
    from switchbench.benchmark.evaluation import new_task_blocks
    from switchbench.paradigms.schedules import make_schedule

    blocked = make_schedule([0, 1, 0, 2, 1], n_tasks=3, n_blocks=5, block_size=3)
    assert np.flatnonzero(new_task_blocks(blocked)).tolist() == [0, 3, 9]
    mixed = make_schedule("interleaved", n_tasks=2, n_blocks=3, block_size=50, rng=np.random.default_rng(0))
    assert np.flatnonzero(new_task_blocks(mixed)).tolist() == [0]      # both tasks appear in the first block


def test_linear_models_report_parameters_changed_per_new_task():
    res = switchbench.run("blocked-linear", "gated-linear", seed=0, n_blocks=3, block_size=5, cache=False,
                          progress=False)
    assert res.metrics["params_changed_per_task"] == res.metrics["params"] == 2 * 10 * 20 + 2
    assert res.robustness is None and not any(k.startswith("perf_drop") for k in res.metrics)


_PLAIN = st.text(st.sampled_from(list("ab-_.:; 0é")), min_size=1, max_size=4)    # written as they are
_ANY = st.text(st.sampled_from(list("ab ,\"\n\r")), max_size=3)                   # quoting, or empty


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 6), floats=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=6, max_size=6),
       ints=st.lists(st.integers(-2**63, 2**63 - 1), min_size=6, max_size=6), odd=st.booleans(), data=st.data())
def test_a_logs_csv_text_is_exactly_what_pandas_writes(n, floats, ints, odd, data):
    """The cache writes a run's log with storage.csv_text where it has a text: then it is
    pandas' own ``to_csv`` text, character for character (floats of any magnitude, NaN, inf,
    -0.0, integers, booleans, strings); fields that would need quoting fall back to pandas."""
    words = data.draw(st.lists(_ANY if odd else _PLAIN, min_size=n, max_size=n))
    name = data.draw(_ANY if odd else _PLAIN)
    df = pd.DataFrame({"step": np.array(ints[:n], dtype=np.int64), "x": np.array(floats[:n], dtype=np.float64),
                       "switch": [i % 2 == 0 for i in range(n)], "phase": words, f"{name}": [0.25] * n})
    if not odd:
        assert storage.csv_text(df) is not None
    text = storage.csv_text(df)
    assert text is None or text == df.to_csv(index=False)


def test_a_run_log_is_written_by_the_fast_path_and_reads_back(_cache):
    (r,) = runner.run_seeds("blocked-linear", "gated-linear", [0], sampler="wishart", cache=True, **SMALL)
    assert storage.csv_text(r.log) is not None
    assert gzip.decompress((r.path / "log.csv.gz").read_bytes()) == r.log.to_csv(index=False).encode()
    assert storage.load_run(r.path).log.shape == r.log.shape
