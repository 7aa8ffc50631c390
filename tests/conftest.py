import numpy as np
import pandas as pd
import pytest


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Every test gets its own empty run cache."""
    monkeypatch.setenv("SWITCHBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def one_thread():
    """One torch thread for tiny networks (faster, and fair to a shared 2-core machine); the
    caller's setting is restored afterwards. Use with ``pytest.mark.usefixtures("one_thread")``."""
    from switchbench.benchmark.runner import torch_threads

    with torch_threads(1):
        yield


def assert_same_run(a, b, rtol, atol, metric_rtol, metric_atol):
    """Two RunResults agree: the same log (bookkeeping columns exactly, numbers within
    ``rtol``/``atol``), R0/Rk and probes within ``rtol``/``atol``, and every metric but the
    wall time within ``metric_rtol``/``metric_atol``."""
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
            np.testing.assert_allclose(a.metrics[k], b.metrics[k], rtol=metric_rtol, atol=metric_atol, err_msg=k)
