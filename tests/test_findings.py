"""A small version of `switchbench reproduce nta-fig2` (2 seeds, 14 blocks): the flexible
model's checks pass, and they fail when its gates are made slow."""
import pytest

from switchbench.benchmark.findings.nta import nta_fig2


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


def test_nta_fig5_small_grid_specialises_only_with_long_blocks_fast_and_penalised_gates(tmp_path):
    """A corner of `switchbench reproduce nta-fig5` (one seed, 3 instead of 7 time units):
    blocks of 10 tau_w specialise the modules with fast penalised gates (tau_w/tau_c = 20,
    lam 0.1 or 0.3) but not with slow gates (tau_w/tau_c = 1) or lam = 0; the checks say so,
    and they fail when the schedule is too short to specialise anything."""
    from switchbench.benchmark.findings.nta import _fig5_schedule, nta_fig5

    assert [_fig5_schedule(r, 7.0, 0.1, 1e-3) for r in (10, 8, 6, 4, 1)] == [
        (1000, 8), (800, 9), (600, 12), (400, 18), (100, 71)]
    report = nta_fig5(n_seeds=1, progress=False, figures=tmp_path, blocks=(10,), tau_cs=(0.005, 0.1),
                      lams=(0.0, 0.1), t_total=3.0)
    checks = {c.name.split(", ", 1)[1].split(":")[0]: c for c in report.checks}
    assert set(checks) == {"fast gates (tau_w/tau_c >= 10), blocks >= 4 tau_w",
                           "slow gates (tau_w/tau_c <= 5), any block length", "lam >= 0.1, blocks >= 4 tau_w",
                           "lam = 0, any block length"}
    assert all(c.passed for c in report.checks), [c.line() for c in report.checks]
    assert checks["fast gates (tau_w/tau_c >= 10), blocks >= 4 tau_w"].value > 0.99
    assert checks["lam = 0, any block length"].value < 0.6
    assert "paper code (3 seeds)" in report.notes[0] and report.figures[0].stat().st_size > 10_000
    short = nta_fig5(n_seeds=1, progress=False, figures=tmp_path / "short", blocks=(10,), tau_cs=(0.005,),
                     lams=(0.1,), t_total=0.5)             # one block: nothing can specialise yet
    specialised = [c for c in short.checks if c.target.startswith(">=")]
    assert len(specialised) == 2 and not any(c.passed for c in specialised)
