import pytest


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Every test gets its own empty run cache."""
    monkeypatch.setenv("SWITCHBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
