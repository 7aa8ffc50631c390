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
