"""No number that is silently wrong: a configuration listed twice is refused (its seeds would
count twice), distinct configurations of one model are reported apart (never pooled),
``models = "*"`` follows the suite's own settings, the cache key follows every module a
plug-in runs, the committed results/ are written only when asked, a tuning table of another
suite is refused, and a plug-in that edits its input batch cannot change another's numbers."""
import json
import subprocess
import sys

import pytest

from switchbench.benchmark import leaderboard
from switchbench.benchmark.cli import main
from switchbench.benchmark.suite import read_suite
from switchbench.errors import SwitchbenchError

TINY = "n_blocks = 2, block_size = 10"


def _suite(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --- 1. seeds counted twice ---------------------------------------------------------------

@pytest.mark.parametrize("body", [
    f'[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear", "linear"]\nset = {{ {TINY} }}\n',
    f'[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\nset = {{ {TINY} }}\n' * 2,
    # the same configuration, once with a runner default written out and a model alias of the paradigm's id
    f'[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\nset = {{ {TINY} }}\n'
    f'[[paradigm]]\nname = "blocked-linear"\nmodels = ["deep-linear", "linear"]\nseeds = 1\n'
    f'set = {{ {TINY}, k_adapt = 50 }}\n',
])
def test_a_configuration_listed_twice_is_refused_before_any_run(tmp_path, capsys, _cache, body):
    path = _suite(tmp_path, 'name = "dup"\nseeds = 2\n' + body)
    assert main(["suite", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "linear on blocked-linear is listed twice with the same settings" in err
    assert not (_cache / "runs").exists()


def test_two_settings_of_one_paradigm_are_two_rows_never_pooled(tmp_path, capsys):
    path = _suite(tmp_path, 'name = "two"\nseeds = 2\n'
                            '[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\nset = { n_blocks = 2, block_size = 10 }\n'
                            '[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\nset = { n_blocks = 3, block_size = 10 }\n')
    leaderboard.run_suite(path, out=tmp_path / "out")
    out = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    rows = {e["model"]: e for e in out["entries"]}
    assert sorted(rows) == ["linear (n_blocks=2)", "linear (n_blocks=3)"]
    assert {e["metrics"]["final_loss"]["n"] for e in rows.values()} == {2}          # 2 seeds each, not 4
    assert {e["config"]["paradigm_params"]["n_blocks"] for e in rows.values()} == {2, 3}
    assert all(e["card"]["name"] == "linear" for e in rows.values())
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "| linear (n_blocks=2) " in md and "| linear (n_blocks=3) " in md


def test_tuning_refuses_two_settings_of_one_model(tmp_path):
    from switchbench.benchmark.tuning import tune

    path = _suite(tmp_path, 'name = "two"\nseeds = 1\n'
                            '[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\nset = { n_blocks = 2 }\n'
                            '[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\nset = { n_blocks = 3 }\n')
    with pytest.raises(SwitchbenchError, match="one configuration per"):
        tune(leaderboard.load_suite(path))


# --- 3. models = "*" follows the suite's settings -------------------------------------------

def test_every_model_is_chosen_for_the_paradigm_as_the_suite_sets_it(tmp_path):
    path = _suite(tmp_path, 'name = "cues"\nseeds = 1\n'
                            '[[paradigm]]\nname = "digit-switch"\nmodels = "*"\nset = { cue = true }\n'
                            '[[paradigm]]\nname = "cued-switch"\nmodels = "*"\nset = { cue = false }\n'
                            '[[paradigm]]\nname = "digit-switch"\nmodels = "*"\n')
    chosen = {}
    for s in read_suite(path)[1]:
        chosen.setdefault((s.paradigm, json.dumps(s.overrides)), set()).add(s.model)
    assert "mlp-cued" in chosen["digit-switch", '{"cue": true}']
    assert "mlp-cued" not in chosen["cued-switch", '{"cue": false}'] and "mlp" in chosen["cued-switch", '{"cue": false}']
    assert "mlp-cued" not in chosen["digit-switch", "{}"]


# --- 12. small ------------------------------------------------------------------------------

SMALL = dict(n_blocks=2, block_size=10, progress=False)


def test_an_empty_cache_variable_never_caches_into_the_current_folder(tmp_path, monkeypatch):
    import switchbench

    monkeypatch.setenv("SWITCHBENCH_CACHE", "")
    monkeypatch.chdir(tmp_path)
    res = switchbench.run("blocked-linear", "linear", **SMALL)
    assert res.path.is_relative_to(".cache") and (tmp_path / ".cache" / "runs").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache"]


@pytest.mark.parametrize("link", ["dangling", "looping"])
def test_a_broken_symlink_at_an_entry_is_reported_and_replaced(_cache, capsys, monkeypatch, link):
    import switchbench
    from switchbench.benchmark import runner as R

    rc = R.prepare("blocked-linear", "linear", build=False, n_blocks=2, block_size=10)
    path = R.run_dir(rc.config(0), rc.key(0))
    path.parent.mkdir(parents=True)
    path.symlink_to(path if link == "looping" else path.parent / "nowhere")
    res = switchbench.run("blocked-linear", "linear", **SMALL)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cache entry {path} is a broken symbolic link" in err
    assert res.path == path and not path.is_symlink() and R.verify_entry(path, res.config)
    computed = []
    monkeypatch.setattr(R, "_run", lambda *a, **k: computed.append(1))
    assert switchbench.run("blocked-linear", "linear", **SMALL).metrics == res.metrics and not computed
    assert capsys.readouterr().err == ""


def test_an_entry_that_cannot_be_written_is_reported_even_on_refresh(_cache, capsys, monkeypatch):
    import switchbench
    from switchbench.benchmark import runner as R

    rc = R.prepare("blocked-linear", "linear", build=False, n_blocks=2, block_size=10)
    path = R.run_dir(rc.config(0), rc.key(0))
    path.parent.mkdir(parents=True)
    path.symlink_to(path)
    switchbench.run("blocked-linear", "linear", cache="refresh", **SMALL)   # refresh: nothing is read first
    assert f"run not cached: cannot write its entry {path}" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal where there is no CUDA")
def test_a_missing_device_fails_before_cached_runs_load(tmp_path, capsys, _cache):
    import switchbench

    switchbench.run("blocked-linear", "linear", **SMALL)
    assert main(["run", "--paradigm", "blocked-linear", "--model", "linear", "--set", "n_blocks=2",
                 "--set", "block_size=10", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CUDA device" in err
    with pytest.raises(SwitchbenchError, match="no CUDA device"):
        switchbench.run("blocked-linear", "linear", device="cuda", **SMALL)


def test_the_callers_thread_count_is_restored_whatever_threads_a_run_asks_for():
    import torch

    import switchbench

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for threads in (4, 5, 6):
            for kw in ({}, {"sampler": "wishart"}):
                switchbench.run("blocked-linear", "linear", cache=False, threads=threads, **SMALL, **kw)
                assert torch.get_num_threads() == 2, (threads, kw)
    finally:
        torch.set_num_threads(before)
