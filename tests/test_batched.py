"""The batched engine: its per-sample path equals the per-seed runner, its Wishart path
draws the same distribution, same seed same numbers, float64, the cache and run_many."""
import numpy as np
import pandas as pd
import pytest

from switchbench.benchmark import batched, runner
from switchbench.benchmark.batched import run_batched, sample_cov, wishart_cov
from switchbench.benchmark.suite import Failure, RunSpec, run_many
from switchbench.errors import SwitchbenchError

SMALL = dict(n_blocks=3, block_size=40, k_adapt=5, progress=False)


def assert_same_run(a, b, rtol=2e-5, atol=1e-7):
    """Same log (exact for the bookkeeping columns, within tolerance for the numbers), R0/Rk, probes, metrics."""
    assert list(a.log.columns) == list(b.log.columns)
    num = [c for c in b.log.columns if b.log[c].dtype.kind == "f"]
    pd.testing.assert_frame_equal(a.log.drop(columns=num), b.log.drop(columns=num))
    for c in num:
        np.testing.assert_allclose(a.log[c], b.log[c], rtol=rtol, atol=atol, err_msg=c)
    np.testing.assert_allclose(a.R0, b.R0, rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.Rk, b.Rk, rtol=rtol, atol=atol)
    assert a.probes.keys() == b.probes.keys()
    for k in b.probes:
        np.testing.assert_allclose(a.probes[k], b.probes[k], rtol=rtol, atol=atol, err_msg=k)
    assert a.metrics.keys() == b.metrics.keys()
    for k in b.metrics:
        if k != "wall_ms_per_step":
            np.testing.assert_allclose(a.metrics[k], b.metrics[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_batched_and_per_seed_runs_agree_on_a_composed_curriculum():
    """The paper's composition order (base blocks A, B, C, A, B, then composed CA, AB, BC) in
    both engines: same tasks per block, same numbers."""
    kw = dict(n_tasks=3, output_size=6, composition="task", n_blocks=8, block_size=30, k_adapt=5, progress=False)
    (a,) = run_batched("blocked-linear", "gated-linear", [1], cache=False, **kw)
    b = runner.run("blocked-linear", "gated-linear", 1, cache=False, **kw)
    tasks = a.log.groupby("block")["task"].first().tolist()
    assert tasks == [0, 1, 2, 0, 1, 5, 3, 4] and a.log.loc[a.log["block"] == 5, "phase"].eq("compose").all()
    assert_same_run(a, b)


@pytest.mark.parametrize("model", ["gated-linear", "oracle-gates", "linear"])
def test_samples_path_equals_the_per_seed_runner(model):
    fast = run_batched("blocked-linear", model, [0, 3], cache=False, chunk=17, **SMALL)
    for seed, a in zip([0, 3], fast):
        b = runner.run("blocked-linear", model, seed, cache=False, **SMALL)
        assert a.config["runner"] == {**b.config["runner"], "engine": "batched", "sampler": "samples"}
        assert {k: v for k, v in a.config.items() if k != "runner"} == {k: v for k, v in b.config.items()
                                                                     if k != "runner"}
        assert_same_run(a, b)


@pytest.mark.parametrize("model", ["gated-linear", "gated-linear-forgetful"])
def test_samples_path_honours_the_manifold_weight(model):
    """manifold_weight = 5 (the paper's Fig. 5 weighting): batched = per-seed runner, and != the default w = 10."""
    kw = dict(SMALL, lam=0.3, tau_c=0.02, manifold_weight=5.0)
    fast = run_batched("blocked-linear", model, [2], cache=False, **kw)[0]
    slow = runner.run("blocked-linear", model, 2, cache=False, **kw)
    assert fast.config["model_params"]["manifold_weight"] == 5.0
    assert_same_run(fast, slow)
    default = run_batched("blocked-linear", model, [2], cache=False, **{**kw, "manifold_weight": 10.0})[0]
    assert not np.allclose(default.probes["gates"], fast.probes["gates"])


def test_float64_works_and_the_samples_path_equals_the_per_seed_runner_in_float64():
    a = run_batched("blocked-linear", "gated-linear-forgetful", [1], cache=False, dtype="float64", **SMALL)[0]
    b = runner.run("blocked-linear", "gated-linear-forgetful", 1, cache=False, dtype="float64", **SMALL)
    assert a.probes["modules"].dtype == np.float64
    # the env rounds its targets to float32: that is the only difference left
    assert_same_run(a, b, rtol=1e-6, atol=1e-9)
    # wishart: float32 and float64 share their draws (made in float64), so they differ by rounding only
    w64, w32 = (run_batched("blocked-linear", "gated-linear-forgetful", [1], sampler="wishart", cache=False,
                            dtype=dt, **SMALL)[0] for dt in ("float64", "float32"))
    assert w64.probes["gates"].dtype == np.float64 and w32.probes["gates"].dtype == np.float32
    assert not np.array_equal(w64.log["loss"], w32.log["loss"])
    assert_same_run(w64, w32, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("sampler", ["samples", "wishart"])
def test_same_seed_same_numbers_bit_for_bit(sampler):
    a, b = (run_batched("blocked-linear", "gated-linear", [0, 1], sampler=sampler, cache=False, **SMALL)
            for _ in range(2))
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x.log, y.log, check_exact=True)
        np.testing.assert_array_equal(x.R0, y.R0)
        np.testing.assert_array_equal(x.Rk, y.Rk)
        np.testing.assert_array_equal(x.probes["modules"], y.probes["modules"])
    assert not np.array_equal(a[0].log["loss"], a[1].log["loss"])
    # a seed's numbers do not depend on the other seeds in its batch
    alone = run_batched("blocked-linear", "gated-linear", [1], sampler=sampler, cache=False, **SMALL)[0]
    assert_same_run(alone, a[1], rtol=1e-6)


@pytest.mark.parametrize("batch, d", [(30, 6), (4, 6)])
def test_wishart_covariances_have_the_moments_of_sample_covariances(batch, d):
    """E[X^T X / B] = I and Var[(X^T X / B)_ij] = (1 + [i = j]) / B, for both samplers."""
    n = 20000
    rng = np.random.default_rng(0)
    wish = wishart_cov(rng, n, d, batch, np.float64)
    samp = sample_cov(rng.standard_normal((n, batch, d)), np.float64)
    eye = np.eye(d)
    var = (1 + eye) / batch
    for S in (wish, samp):
        assert np.allclose(S, S.transpose(0, 2, 1))
        z = (S.mean(0) - eye) / np.sqrt(var / n)                # standardised error of the mean
        assert np.abs(z).max() < 5, np.abs(z).max()
        np.testing.assert_allclose(S.var(0), var, rtol=0.1)
    np.testing.assert_allclose(wish.var(0), samp.var(0), rtol=0.12)
    # a fourth moment too: E[Sigma^2] = (1 + (d + 1) / B) I
    for S in (wish, samp):
        np.testing.assert_allclose(np.diagonal((S @ S).mean(0)), 1 + (d + 1) / batch, rtol=0.03)


def test_wishart_path_matches_the_samples_path_in_distribution():
    """Same model initialisation, other data draws: the metrics agree seed by seed within the
    data noise, and the loss curves agree on average."""
    kw = dict(n_blocks=4, block_size=300, k_adapt=10, progress=False, cache=False)
    seeds = range(4)
    w = run_batched("blocked-linear", "gated-linear", seeds, sampler="wishart", **kw)
    s = run_batched("blocked-linear", "gated-linear", seeds, sampler="samples", **kw)
    for a, b in zip(w, s):
        assert not np.array_equal(a.log["loss"], b.log["loss"])
        for k in ("final_loss", "forgetting_R0", "forgetting_Rk", "bwt_R0"):
            assert abs(a.metrics[k] - b.metrics[k]) <= 0.1 * abs(b.metrics[k]) + 0.01, (k, a.metrics[k], b.metrics[k])
        np.testing.assert_allclose(a.R0, b.R0, rtol=0.1, atol=0.01)
        np.testing.assert_allclose(a.probes["gates"], b.probes["gates"], atol=0.05)
    # mean online loss per block, pooled over seeds
    lw = np.mean([a.log.groupby("block")["norm_loss"].mean() for a in w], 0)
    ls = np.mean([b.log.groupby("block")["norm_loss"].mean() for b in s], 0)
    np.testing.assert_allclose(lw, ls, rtol=0.05)


def test_runs_are_cached_under_their_own_keys_and_resume(monkeypatch):
    small = dict(n_blocks=2, block_size=20, k_adapt=3, progress=False)
    a = run_batched("blocked-linear", "gated-linear", [0, 1], sampler="wishart", **small)
    b = run_batched("blocked-linear", "gated-linear", [0], sampler="samples", **small)[0]
    c = runner.run("blocked-linear", "gated-linear", 0, **small)
    assert len({a[0].path, b.path, c.path}) == 3 and all(p.exists() for p in (a[0].path, b.path, c.path))
    assert a[0].config["runner"]["sampler"] == "wishart"

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a cached run")

    monkeypatch.setattr(batched, "_run", boom)
    again = run_batched("blocked-linear", "gated-linear", [1, 0], sampler="wishart", **small)
    assert [r.path for r in again] == [a[1].path, a[0].path]
    assert_same_run(again[1], a[0], rtol=0, atol=1e-12)


def test_run_many_batches_what_it_can_and_keeps_failures_per_seed():
    small = dict(n_blocks=2, block_size=20, k_adapt=3)
    specs = [RunSpec("blocked-linear", "gated-linear", s, small) for s in (0, 1)]
    specs += [RunSpec("blocked-linear", "deep-linear", 0, small),               # not batchable: per seed
              RunSpec("blocked-linear", "linear", 0, {**small, "tau_w": 1e-4})]  # diverges: a Failure
    res = run_many(specs, progress=False, batched="wishart")
    assert [r.config["runner"].get("sampler") for r in res[:3]] == ["wishart", "wishart", None]
    assert [r.config["seed"] for r in res[:2]] == [0, 1]
    assert isinstance(res[3], Failure) and "non-finite" in res[3].reason


def test_bad_input_is_a_clear_error():
    with pytest.raises(SwitchbenchError, match="sampler"):
        run_batched("blocked-linear", "gated-linear", [0], sampler="bootstrap")
    with pytest.raises(SwitchbenchError, match="batched engine"):
        run_batched("blocked-linear", "deep-linear", [0])
    with pytest.raises(SwitchbenchError, match="cue"):
        run_batched("blocked-linear", "gated-linear", [0], cue=True)
