"""Suites: parallel runs, failures recorded, resuming after a kill, the leaderboard files."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from switchbench.benchmark import leaderboard
from switchbench.benchmark.suite import Failure, RunSpec, run_many
from switchbench.errors import SwitchbenchError

SUITE = """
name = "t"
seeds = 2
[[paradigm]]
name = "blocked-linear"
models = ["gated-linear", "linear", "oracle-gates"]
set = {{ n_blocks = {n_blocks}, block_size = {block_size} }}
"""


def write_suite(tmp_path, n_blocks=4, block_size=40):
    path = tmp_path / "suite.toml"
    path.write_text(SUITE.format(n_blocks=n_blocks, block_size=block_size))
    return path


def test_parallel_runs_equal_serial_runs_and_failures_are_recorded(tmp_path, monkeypatch):
    specs = [RunSpec("blocked-linear", m, s, {"n_blocks": 3, "block_size": 30}) for m in ("linear", "gated-linear")
             for s in (0, 1)]
    specs.append(RunSpec("blocked-linear", "linear", 0, {"n_blocks": 3, "block_size": 30, "dt": 1e9}))
    monkeypatch.setenv("SWITCHBENCH_CACHE", str(tmp_path / "a"))
    par = run_many(specs, jobs=2, progress=False)
    monkeypatch.setenv("SWITCHBENCH_CACHE", str(tmp_path / "b"))
    ser = run_many(specs, jobs=1, progress=False)
    assert isinstance(par[-1], Failure) and "non-finite loss" in par[-1].reason
    for p, s in zip(par[:-1], ser[:-1]):
        assert p.config == s.config
        assert {k: v for k, v in p.metrics.items() if k != "wall_ms_per_step"} == \
               {k: v for k, v in s.metrics.items() if k != "wall_ms_per_step"}


def test_killed_suite_keeps_finished_runs_and_resumes_without_redoing_them(tmp_path):
    suite = write_suite(tmp_path, n_blocks=6, block_size=400)
    env = {**os.environ, "SWITCHBENCH_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "switchbench.benchmark.cli", "suite", str(suite), "--jobs", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / "cache" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(runs.rglob("metrics.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in runs.rglob("metrics.json")}
    assert 2 <= len(finished) < 6, "kill the suite mid-way"
    assert not [p for p in runs.rglob(".tmp-*") if (p / "metrics.json").exists()]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    after = {p: p.stat().st_mtime_ns for p in runs.rglob("metrics.json")}
    assert len(after) == 6
    assert all(after[p] == t for p, t in finished.items())   # finished runs were kept, not redone


def test_leaderboard_files(tmp_path):
    suite = write_suite(tmp_path)
    files = leaderboard.run_suite(suite, jobs=1, out=tmp_path / "results")
    scores = pd.read_csv(files["scores"])
    assert list(scores.columns[:5]) == ["paradigm", "model", "seed", "metric", "value"]
    assert set(scores["model"]) == {"gated-linear", "linear", "oracle-gates"} and set(scores["seed"]) == {0, 1}
    meta = json.loads(files["json"].read_text())
    assert meta["schema_version"] == leaderboard.SCHEMA_VERSION and meta["package_version"]
    assert meta["paradigm_versions"] == {"blocked-linear": "switchbench/BlockedLinear-v0"}
    entry = next(e for e in meta["entries"] if e["model"] == "gated-linear")
    assert entry["config"]["paradigm_params"]["n_blocks"] == 4 and entry["card"]["citation"]
    assert entry["metrics"]["switch_time_late"]["higher_is_better"] is False
    mean = scores[(scores.model == "gated-linear") & (scores.metric == "final_loss")]["value"].mean()
    assert entry["metrics"]["final_loss"]["mean"] == pytest.approx(mean)
    md = files["markdown"].read_text()
    assert "Ranked by `switch_time_late` (lower is better" in md and "| oracle-gates †" in md   # privileged marked
    assert all(f.exists() and f.stat().st_size > 5000 for k, f in files.items() if k.endswith(("metrics", "time")))


def test_ranking_orders_by_the_primary_metric_and_pairs_seeds():
    rows = [{"paradigm": "p", "model": m, "seed": s, "metric": "switch_time_late", "value": v + s}
            for m, v in (("slow", 50), ("fast", 10), ("mid", 30)) for s in range(3)]
    rows += [{"paradigm": "p", "model": m, "seed": s, "metric": "final_loss", "value": 0.1}
             for m in ("slow", "fast", "mid") for s in range(3)]
    table = leaderboard.ranked(pd.DataFrame(rows), "p")
    assert table["model"].tolist() == ["fast", "mid", "slow"]
    # the differences are identical across seeds: the paired test says nothing (no variance)
    assert table["p vs next"].tolist()[:2] == ["n/a", "n/a"]


def test_bad_suites_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[[paradigm]]\nname = 'blocked-linear'\nmodels = ['nope']\n")
    with pytest.raises(SwitchbenchError, match="unknown model 'nope'"):
        leaderboard.load_suite(bad)
    bad.write_text("name = [")
    with pytest.raises(SwitchbenchError, match="not valid TOML"):
        leaderboard.load_suite(bad)
    with pytest.raises(SwitchbenchError, match="unknown backend 'mpi'"):
        run_many([], backend="mpi")


def test_shipped_suites_load():
    root = Path(__file__).resolve().parents[1] / "suites"
    for name in ("quick", "full"):
        suite = leaderboard.load_suite(root / f"{name}.toml")
        assert suite.source == leaderboard.load_suite(name).source     # the package's copy is the repository's
        assert suite.name == name and len(suite.specs) > 0


def test_the_full_suite_pins_the_stream_that_made_the_committed_leaderboard():
    """results/ was computed on the stream (no configuration names a sampler): the full suite
    says sampler = "stream" for blocked-linear, so that rerunning it recomputes those numbers and
    their configurations (config ids) are the committed ones; the quick suite takes the default,
    the covariance engine, for the linear family."""
    import json

    from switchbench.benchmark.config import prepare

    root = Path(__file__).resolve().parents[1]
    committed = json.loads((root / "results" / "leaderboard.json").read_text())["configs"]
    zoo = {c["model"] for c in committed.values()}           # not the plug-ins other tests register
    for name, engine in (("full", None), ("quick", "wishart")):
        linear = {s.model: s for s in leaderboard.load_suite(name).specs if s.paradigm == "blocked-linear"
                  and s.model in zoo}
        assert {"gated-linear", "linear", "deep-linear"} <= set(linear)
        for model, s in linear.items():
            rc = prepare(s.paradigm, s.model, build=False, **s.overrides)
            covariance = model in ("gated-linear", "gated-linear-forgetful", "oracle-gates", "linear")
            assert rc.runner.get("sampler") == (engine if covariance else None), (name, model)
            if name == "full":
                assert leaderboard.config_id(rc.config(0)) in committed, model
