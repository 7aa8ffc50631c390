"""A small version of `switchbench reproduce nta-fig2` (2 seeds, 14 blocks): the flexible
model's checks pass, and they fail when its gates are made slow."""
import pytest

from switchbench.benchmark.reproduce import nta_fig2


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("figs")
    fast = nta_fig2(n_seeds=2, jobs=2, figures=out, progress=False, n_blocks=14)
    slow = nta_fig2(n_seeds=2, jobs=2, figures=out / "slow", progress=False, n_blocks=14, tau_c=1.3)
    return fast, slow


def test_flexible_model_specialises_switches_gates_and_speeds_up(reports):
    fast, _ = reports
    for check in fast.checks:
        assert check.passed, check.line()
    assert fast.figures[0].exists() and fast.figures[0].stat().st_size > 10_000


def test_the_checks_fail_when_the_gates_are_slow(reports):
    _, slow = reports
    flexible = {c.name: c for c in slow.checks if c.name.startswith("flexible")}
    assert not flexible["flexible: min best-match teacher-module cosine"].passed
    assert not flexible["flexible: switch time last 5 / first 3 (loss <= 0.1)"].passed
