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


# --- 2. the cache key follows every module a plug-in runs -------------------------------------

CLI = [sys.executable, "-m", "switchbench.benchmark.cli"]
FACTORY = """
from mypkg.learners import make_learner

def make(spec, seed):
    return make_learner(spec, seed)
"""
LEARNER = """
from switchbench import models
TAU_W = {tau_w}

def make_learner(spec, seed):
    return models.get("linear").factory(spec, seed, tau_w=TAU_W)
"""


def _cli(tmp_path, *args, stdin=None):
    env = {**__import__("os").environ, "SWITCHBENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}
    return subprocess.run([*CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          input=stdin)


def test_editing_a_module_beside_the_factory_is_a_new_cache_key(tmp_path):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "models.py").write_text(FACTORY)
    (tmp_path / "mypkg" / "learners.py").write_text(LEARNER.format(tau_w=1.0))
    args = ["run", "--paradigm", "blocked-linear", "--model", "mypkg.models:make", "--set", "n_blocks=3",
            "--set", "block_size=20", "--format", "json"]

    def score():
        out = _cli(tmp_path, *args)
        assert out.returncode == 0, out.stderr
        rows = {r["metric"]: r for r in json.loads(out.stdout)}
        return rows["final_loss"]["value"], rows["final_loss"]["path"]

    first, path1 = score()
    (tmp_path / "mypkg" / "learners.py").write_text(LEARNER.format(tau_w=20.0))   # the factory's module unchanged
    second, path2 = score()
    assert path2 != path1 and second != first


def test_a_model_without_source_runs_and_is_never_cached(tmp_path):
    script = ("import switchbench\nfrom switchbench import models\n"
              "@models.register('stdin-linear')\ndef make(spec, seed):\n"
              "    return models.get('linear').factory(spec, seed)\n"
              "for seed in (0, 1):\n"
              "    r = switchbench.run('blocked-linear', 'stdin-linear', seed=seed, n_blocks=2, block_size=10, "
              "progress=False)\n    print(r.path, r.metrics['final_loss'])\n")
    env = {**__import__("os").environ, "SWITCHBENCH_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-"], input=script, env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("\n") == 1 and "runs code without a source file (module __main__" in out.stderr
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["None", "None"]
    assert not (tmp_path / "cache" / "runs").exists()


# --- 5. results/ only when asked; a tuning table of another suite is refused ----------------------

MINE = f'name = "mine"\nseeds = 1\n[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\nset = {{ {TINY} }}\n'


def test_a_users_leaderboard_never_writes_results_and_refuses_another_suites_tuning(tmp_path, capsys, _cache,
                                                                                    monkeypatch):
    import pandas as pd

    from switchbench.benchmark import tuning

    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    committed = pd.read_csv(leaderboard.Path(__file__).parents[1] / "results" / "tuning.csv")
    committed.to_csv(tmp_path / "results" / "tuning.csv", index=False)      # the full suite's, as committed
    path = _suite(tmp_path, MINE, "mine.toml")
    assert main(["leaderboard", str(path)]) == 0
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["tuning.csv"]     # results/ untouched
    assert (_cache / "reports" / "mine" / "leaderboard.md").is_file()
    assert "no " in capsys.readouterr().err            # published view only: the committed table is not read
    for args in (["--tuning", "results/tuning.csv"], ["--out", "results"]):
        assert main(["leaderboard", str(path), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "made for another suite than 'mine': it tunes" in err, args
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["tuning.csv"]
    # a table that tune writes records its suite; another suite (another set) is refused by that record
    table = tuning.select(pd.DataFrame({"paradigm": "blocked-linear", "model": "linear", "config": ["{}"],
                                        "default": True, "budget": 1, "validation_seeds": "1000-1000",
                                        "switch_time_late": 5.0, "final_loss": 0.1, "failed": ""}))
    mine = leaderboard.load_suite(path)
    table.assign(suite="mine", suite_id=leaderboard.suite_id(mine)).to_csv(tmp_path / "t.csv", index=False)
    leaderboard.check_tuning(tuning.read_tuning(tmp_path / "t.csv"), mine, "t.csv")
    other = _suite(tmp_path, MINE.replace("n_blocks = 2", "n_blocks = 3"), "other.toml")
    assert main(["leaderboard", str(other), "--tuning", "t.csv"]) == 2
    assert "was made for suite mine" in capsys.readouterr().err
    full = leaderboard.load_suite("full")       # the committed table is the full suite's, and still reads
    leaderboard.check_tuning(tuning.read_tuning(tmp_path / "results" / "tuning.csv"), full, "results/tuning.csv")
    # the scored seeds, comments and layout are not the suite's identity; its settings are
    same = _suite(tmp_path, "# a comment\n" + MINE.replace("seeds = 1", "seeds = 4"), "same.toml")
    assert leaderboard.suite_id(leaderboard.load_suite(same)) == leaderboard.suite_id(mine)
    assert leaderboard.suite_id(leaderboard.load_suite(other)) != leaderboard.suite_id(mine)
    assert leaderboard.default_out("full") == leaderboard.Path("results")


# --- 6. a plug-in that changes its input batch ------------------------------------------------

class Halving:
    """The linear model, but its predict halves the batch it is given, in place."""

    def __init__(self, spec, seed, where):
        from switchbench import models

        self.net, self.where = models.get("linear").factory(spec, seed), where

    def predict(self, x):
        if self.where == "predict":
            x.mul_(0.5)
        return self.net.predict(x)

    def learn(self, x, y):
        if self.where == "learn":
            y.add_(1.0)
        return self.net.learn(x, y)


def make_halving_predict(spec, seed):
    return Halving(spec, seed, "predict")


def make_shifting_learn(spec, seed):
    return Halving(spec, seed, "learn")


@pytest.mark.parametrize("factory, call", [("make_halving_predict", "predict"), ("make_shifting_learn", "learn")])
def test_a_model_that_changes_its_input_in_place_fails_its_run_and_is_never_cached(_cache, factory, call):
    import switchbench

    with pytest.raises(SwitchbenchError, match=rf"test_silent_numbers:{factory} on blocked-linear \(seed 0\): "
                                                rf"{call} changed its input in place"):
        switchbench.run("blocked-linear", f"test_silent_numbers:{factory}", **SMALL)
    assert not list((_cache / "runs").rglob("config.json")) if (_cache / "runs").exists() else True


def test_the_code_hash_follows_the_modules_a_plain_module_draws_on(tmp_path, monkeypatch):
    """A factory in a top-level module whose learner comes from another top-level module: both
    files are hashed (and nothing installed); an edit of the second is a new model source."""
    import importlib

    from switchbench.benchmark import config as C
    from switchbench import models

    (tmp_path / "sn_factory.py").write_text("import numpy as np\nfrom sn_learner import make_learner\n\n"
                                            "def make(spec, seed):\n    return make_learner(spec, seed)\n")
    (tmp_path / "sn_learner.py").write_text(LEARNER.format(tau_w=1.0))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("sn_factory")
    files, sourceless = C.code_files(module.make)
    assert [f.name for f in files] == ["sn_factory.py", "sn_learner.py"] and sourceless == []
    before = C.model_source("sn_factory:make")["source"]
    (tmp_path / "sn_learner.py").write_text(LEARNER.format(tau_w=2.0))
    assert C.model_source("sn_factory:make")["source"] != before
    assert C.model_source("linear")["source"] == C._file_hash(models.get("linear").factory.__code__.co_filename)[:16]
