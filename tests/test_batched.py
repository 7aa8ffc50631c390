"""The linear family's covariance engine (``sampler="wishart"``): its covariances have the
sample covariances' distribution, its runs agree with the run loop in distribution, same
seed same numbers (alone or batched), float64, its own cache entries, and run_many; a model
without a covariance form, or a paradigm without linear teachers, is refused."""
import numpy as np
import pandas as pd
import pytest

import conftest

from switchbench.benchmark import runner
from switchbench.benchmark.config import DEFAULT_K_ADAPT
from switchbench.models import covariance_engine
from switchbench.models.covariance_engine import sample_cov, wishart_cov
from switchbench.benchmark.suite import Failure, RunSpec, run_many
from switchbench.errors import SwitchbenchError

SMALL = dict(n_blocks=3, block_size=40, k_adapt=5, progress=False)


def wishart(model, seeds, **kw):
    return runner.run_seeds("blocked-linear", model, seeds, **{"sampler": "wishart", "cache": False, **SMALL, **kw})


def assert_same_run(a, b, rtol=2e-5, atol=1e-7):
    """Same log (exact for the bookkeeping columns, within tolerance for the numbers), R0/Rk, probes, metrics."""
    conftest.assert_same_run(a, b, rtol, atol, metric_rtol=1e-4, metric_atol=1e-5)


def test_a_composed_curriculum_has_the_run_loops_blocks_and_phases():
    """The paper's composition order (base blocks A, B, C, A, B, then composed CA, AB, BC)."""
    kw = dict(n_tasks=3, output_size=6, composition="task", n_blocks=8, block_size=30)
    (a,) = wishart("gated-linear", [1], **kw)
    b = runner.run("blocked-linear", "gated-linear", 1, cache=False, **{**SMALL, **kw})
    for r in (a, b):
        assert r.log.groupby("block")["task"].first().tolist() == [0, 1, 2, 0, 1, 5, 3, 4]
        assert r.log.loc[r.log["block"] == 5, "phase"].eq("compose").all()
    assert a.R0.shape == b.R0.shape == (8, 6)
    np.testing.assert_allclose(a.R0, b.R0, rtol=0.15, atol=0.02)


def test_the_manifold_weight_is_honoured():
    kw = dict(lam=0.3, tau_c=0.02)
    w5 = wishart("gated-linear", [2], manifold_weight=5.0, **kw)[0]
    w10 = wishart("gated-linear", [2], manifold_weight=10.0, **kw)[0]
    assert w5.config["model_params"]["manifold_weight"] == 5.0
    assert not np.allclose(w10.probes["gates"], w5.probes["gates"])


def test_float32_and_float64_share_their_draws():
    """float32 and float64 share their draws (made in float64), so they differ by rounding only."""
    w64, w32 = (wishart("gated-linear-forgetful", [1], dtype=dt)[0] for dt in ("float64", "float32"))
    assert w64.probes["gates"].dtype == np.float64 and w32.probes["gates"].dtype == np.float32
    assert not np.array_equal(w64.log["loss"], w32.log["loss"])
    assert_same_run(w64, w32, rtol=1e-4, atol=1e-6)


def test_same_seed_same_numbers_bit_for_bit():
    a, b = (wishart("gated-linear", [0, 1]) for _ in range(2))
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x.log, y.log, check_exact=True)
        np.testing.assert_array_equal(x.R0, y.R0)
        np.testing.assert_array_equal(x.Rk, y.Rk)
        np.testing.assert_array_equal(x.probes["modules"], y.probes["modules"])
    assert not np.array_equal(a[0].log["loss"], a[1].log["loss"])
    # a seed's numbers do not depend on the other seeds in its batch
    alone = wishart("gated-linear", [1])[0]
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


def test_wishart_matches_the_run_loop_in_distribution():
    """Same model initialisation, other data draws (and exact held-out losses): the metrics
    agree seed by seed within the data noise, and the loss curves agree on average."""
    kw = dict(n_blocks=4, block_size=300, k_adapt=10, progress=False, cache=False)
    seeds = range(4)
    w = runner.run_seeds("blocked-linear", "gated-linear", seeds, sampler="wishart", **kw)
    s = runner.run_seeds("blocked-linear", "gated-linear", seeds, sampler="stream", **kw)
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


def test_an_interleaved_curriculum_gives_each_seed_its_own_tasks():
    kw = dict(schedule="interleaved", n_blocks=2, block_size=300)
    w = wishart("gated-linear", [0, 1], **kw)
    s = runner.run_seeds("blocked-linear", "gated-linear", [0, 1], cache=False, **{**SMALL, **kw})
    for a, b in zip(w, s):
        assert a.log["task"].tolist() == b.log["task"].tolist()     # the run loop's curriculum, per seed
    assert w[0].log["task"].tolist() != w[1].log["task"].tolist()
    np.testing.assert_allclose(w[0].R0, s[0].R0, rtol=0.1, atol=0.01)


def test_runs_are_cached_under_their_own_keys_and_resume(monkeypatch):
    small = dict(n_blocks=2, block_size=20, k_adapt=3, progress=False)
    a = runner.run_seeds("blocked-linear", "gated-linear", [0, 1], sampler="wishart", **small)
    c = runner.run("blocked-linear", "gated-linear", 0, sampler="stream", **small)
    assert a[0].path != c.path and a[0].path.exists() and c.path.exists()
    assert a[0].config["runner"]["sampler"] == "wishart" and "sampler" not in c.config["runner"]

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a cached run")

    monkeypatch.setattr(covariance_engine, "train", boom)
    again = runner.run_seeds("blocked-linear", "gated-linear", [1, 0], sampler="wishart", **small)
    assert [r.path for r in again] == [a[1].path, a[0].path]
    assert_same_run(again[1], a[0], rtol=0, atol=1e-12)


def test_run_many_runs_wishart_where_asked_and_keeps_failures_per_seed():
    small = dict(n_blocks=2, block_size=20, k_adapt=3)
    specs = [RunSpec("blocked-linear", "gated-linear", s, {**small, "sampler": "wishart"}) for s in (0, 1)]
    specs += [RunSpec("blocked-linear", "deep-linear", 0, small),                                  # the run loop
              RunSpec("blocked-linear", "linear", 0, {**small, "sampler": "wishart", "tau_w": 1e-4}),  # diverges
              RunSpec("blocked-linear", "deep-linear", 1, {**small, "sampler": "wishart"})]        # refused
    res = run_many(specs, progress=False)
    assert [r.config["runner"].get("sampler") for r in res[:3]] == ["wishart", "wishart", None]
    assert [r.config["seed"] for r in res[:2]] == [0, 1]
    assert isinstance(res[3], Failure) and "non-finite" in res[3].reason
    assert isinstance(res[4], Failure) and "covariance form" in res[4].reason


def test_bad_input_is_a_clear_error():
    with pytest.raises(SwitchbenchError, match="sampler must be one of auto, wishart, stream, got 'bootstrap'"):
        wishart("gated-linear", [0], sampler="bootstrap")
    with pytest.raises(SwitchbenchError, match=r"deep-linear on blocked-linear \(seed 0\): sampler 'wishart' runs "
                                               "learners with a covariance form"):
        wishart("deep-linear", [0])
    with pytest.raises(SwitchbenchError, match="cue=False"):
        wishart("gated-linear", [0], cue=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("P", [1, 2, 3, 4, 5, 8, 9, 16, 33])
def test_the_gate_penalty_gradient_is_the_models_bit_for_bit(dtype, P):
    """The engine's numpy gradient of the gate penalty equals the model's torch one exactly
    (every bit, the sign of zeros included), for any number of paths and manifold weight."""
    import torch

    from switchbench.models.gated_linear import gate_penalty_grad

    rng = np.random.default_rng(P)
    for weight in (10.0, 5.0, 0.0, 0.1, 1 / 3, 2.7):
        for scale in (1e-3, 0.3, 1.0, 5.0):
            c = (scale * rng.standard_normal((64, P))).astype(dtype)
            c[rng.random(c.shape) < 0.05] = 0.0
            c[rng.random(c.shape) < 0.05] = -0.0
            ours, model = covariance_engine.gate_penalty_grad(c, weight), gate_penalty_grad(torch.from_numpy(c), weight).numpy()
            assert ours.dtype == model.dtype == dtype
            np.testing.assert_array_equal(ours.view(f"u{ours.itemsize}"), model.view(f"u{model.itemsize}"))


def make_zoo_linear(spec, seed):
    """A plug-in that returns the zoo's own linear learner unchanged (whose learn it could replace)."""
    from switchbench import models
    return models.get("linear").factory(spec, seed)


@pytest.mark.parametrize("paradigm, model, kw, engine", [
    ("blocked-linear", "gated-linear", {}, "wishart"),
    ("blocked-linear", "gated-linear-forgetful", {}, "wishart"),
    ("blocked-linear", "oracle-gates", {}, "wishart"),
    ("blocked-linear", "linear", {}, "wishart"),
    ("blocked-linear", "gated-linear", {"sampler": "auto"}, "wishart"),
    ("blocked-linear", "gated-linear", {"sampler": "stream"}, "stream"),
    ("blocked-linear", "deep-linear", {}, "stream"),                 # no covariance form (two layers)
    ("blocked-linear", "gated-linear-unitwise", {}, "stream"),       # a gate per unit: no covariance form
    ("blocked-linear", "gated-linear", {"cue": True}, "stream"),     # the cue enters the input
    ("blocked-linear", "gated-linear", {"loop_only": True}, "stream"),   # checkpoints, hidden states, CUDA
    ("blocked-linear", "test_batched:make_zoo_linear", {}, "stream"),    # a plug-in: only where asked for
    ("blocked-linear", "test_batched:make_zoo_linear", {"sampler": "wishart"}, "wishart"),
    ("digit-switch", "mlp", {}, "stream"),                           # no linear teachers
])
def test_the_default_sampler_picks_the_covariance_engine_only_where_it_is_exact(paradigm, model, kw, engine):
    rc = runner.prepare(paradigm, model, build=False, **kw)
    assert rc.runner.get("sampler", "stream") == engine
    assert ("sampler" in rc.config(0)["runner"]) == (engine == "wishart")   # the loop's keys are those it had


def test_the_default_sampler_runs_the_covariance_engine_in_this_process(monkeypatch):
    """Its seeds are one program: never split over workers, so no worker starts for them."""
    from switchbench.benchmark import suite

    def no_workers(*a, **k):
        raise AssertionError("started workers for one covariance-engine configuration")

    monkeypatch.setattr(suite, "_local", no_workers)
    res = run_many([RunSpec("blocked-linear", "gated-linear", s, dict(n_blocks=2, block_size=20))
                    for s in range(3)], jobs=2, progress=False, cache=False)
    assert [r.config["runner"]["sampler"] for r in res] == ["wishart"] * 3
    alone = wishart("gated-linear", [1], n_blocks=2, block_size=20, k_adapt=DEFAULT_K_ADAPT)
    assert_same_run(res[1], alone[0], rtol=0, atol=0)
