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


def test_nta_fig5_small_grid_specialises_only_with_long_blocks_and_gate_penalty(tmp_path):
    """A 2 x 2 corner of `switchbench reproduce nta-fig5` (one seed, 3 instead of 7 time
    units): with tau_c = 0.005 and lam = 0.1, blocks of 10 tau_w specialise the modules while
    blocks of tau_w do not, and lam = 0 never does; grids, checks and figure are complete."""
    from switchbench.benchmark.reproduce import _fig5_schedule, nta_fig5

    assert [_fig5_schedule(r, 7.0, 0.1, 1e-3) for r in (10, 8, 6, 4, 1)] == [
        (1000, 8), (800, 9), (600, 12), (400, 18), (100, 71)]
    report = nta_fig5(n_seeds=1, progress=False, figures=tmp_path, blocks=(10, 1), tau_cs=(0.1,), lams=(0.0, 0.1),
                      t_total=3.0)
    table = report.notes[[i for i, n in enumerate(report.notes) if n.startswith("regularisation grid (")][0]]
    rows = {line.split()[0]: [float(v) for v in line.split("|")[0].split()[1:]] for line in table.splitlines()[3:]}
    assert set(rows) == {"10", "1"} and all(len(v) == 2 for v in rows.values())
    assert rows["10"][1] > 0.99                     # long blocks, penalised fast gates: specialised
    assert rows["1"][1] < 0.8 and rows["10"][0] < 0.6 and rows["1"][0] < 0.8   # tau_B = tau_w, or lam = 0: not
    names = [c.name for c in report.checks]
    assert len(names) == 3 and all(0 <= c.value <= 1 for c in report.checks)   # (10, 1) is borderline: unchecked
    reg = [c for c in report.checks if c.name.startswith("regularisation")]
    assert all(c.passed for c in reg), [c.line() for c in reg]
    assert report.figures[0].exists() and report.figures[0].stat().st_size > 10_000
