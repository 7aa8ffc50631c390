"""The command line: listings, runs, and one-line errors with a non-zero exit."""
import pytest

from switchbench.benchmark.cli import main
from switchbench.benchmark.commands.options import parse_set

TINY = ["--set", "n_blocks=3", "--set", "block_size=20"]


def test_list_models_shows_cards(capsys):
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    for name in ("gated-linear", "gated-linear-forgetful", "oracle-gates", "linear", "deep-linear"):
        assert name in out
    assert "Sandbrink" in out and "True" in out   # citation and the privileged flag


def test_run_prints_a_metric_table_and_where_runs_are_cached(capsys, _cache):
    assert main(["run", "--paradigm", "blocked-linear", "--model", "gated-linear", "--seeds", "2", *TINY]) == 0
    out = capsys.readouterr().out
    assert "switch_time_late" in out and "mean" in out
    assert out.count(str(_cache)) == 2


@pytest.mark.parametrize("argv, message", [
    (["run", "--paradigm", "blocked-linear", "--model", "nope"], "unknown model 'nope'; valid: deep-linear"),
    (["run", "--paradigm", "nope", "--model", "linear"], "unknown paradigm 'nope'"),
    (["run", "--paradigm", "blocked-linear", "--model", "linear", "--set", "tau_c=1"], "unknown parameter 'tau_c'"),
    (["run", "--paradigm", "blocked-linear", "--model", "linear", "--set", "oops"], "--set expects key=value"),
    (["run", "--paradigm", "blocked-linear", "--model", "linear", "--set", "n_blocks=-2"], "n_blocks must be"),
    (["run", "--paradigm", "blocked-linear", "--model", "linear", "--set", "dt=1e9", *TINY], "non-finite loss"),
    (["reproduce", "nta-fig3"], "unknown finding 'nta-fig3'; valid: "),
    (["reproduce", "nta-fig5", "--set", "finding.grid=1"], "nta-fig5 has no option 'finding.grid'; valid: "),
    (["suite", "missing.toml"], "suite file 'missing.toml' not found"),
])
def test_errors_are_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]          # progress bars may come before it
    assert last.startswith("switchbench: error: ") and message in last and "Traceback" not in err


def test_set_values_are_python_literals_else_strings():
    assert parse_set(["a=1", "b=[1, 2]", "c=iid", "d=True", "model.e=0.5"]) == {
        "a": 1, "b": [1, 2], "c": "iid", "d": True, "model.e": 0.5}


def test_reproduce_takes_overrides_and_prints_pass_fail_and_differs(capsys, _cache, tmp_path):
    """One corner of nta-fig5 (a single block: nothing specialises yet): the specialised
    regions (fast gates; lam 0.1) FAIL, lam = 0 PASSes, the published maps are DIFFERS lines; exit 1."""
    argv = ["reproduce", "nta-fig5", "--seeds", "1", "--figures", str(tmp_path), "--set", "finding.blocks=(10,)",
            "--set", "finding.tau_c=(0.005,)", "--set", "finding.lam=(0.0, 0.1)", "--set", "finding.t_total=0.5"]
    assert main(argv) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "== nta-fig5: PASS 1, FAIL 2, DIFFERS 2", lines[0]
    status = {line.split("  ")[0].strip() for line in lines if line[:4] in ("PASS", "FAIL", "DIFF")}
    assert status == {"PASS", "FAIL", "DIFFERS"}
    assert any("published 0.9998, paper code 0.5" in line for line in lines)
    assert sum("[criterion chosen after seeing the result]" in line for line in lines) == 3
