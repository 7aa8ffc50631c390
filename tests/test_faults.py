"""Faults that used to look like success or lose work: a model ending its process, a worker
dying, a write failing half-way, a corrupt pool or cache entry (the Slurm poll's bound is in
test_slurm.py, the bad-input shapes in test_reliability.py's property tests)."""
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import switchbench
from switchbench.benchmark import leaderboard
from switchbench.benchmark import storage
from switchbench.benchmark.suite import Failure, RunSpec, run_many

TINY = {"n_blocks": 3, "block_size": 20}
CLI = [sys.executable, "-m", "switchbench.benchmark.cli"]

ENDING = """
import os, sys
from switchbench import models

def _ending(spec, seed, end):
    net = models.get("linear").factory(spec, seed)
    def learn(x, y):
        end()
    net.learn = learn
    return net

def make_exit(spec, seed):
    return _ending(spec, seed, lambda: sys.exit(0))

def make_die(spec, seed):
    return _ending(spec, seed, lambda: os._exit(3))
"""


def cli(tmp_path, *args):
    env = {**os.environ, "SWITCHBENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}
    return subprocess.run([*CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_sys_exit_and_a_dying_worker_fail_their_runs_and_the_others_are_reported(tmp_path):
    """sys.exit(0) inside learn made `run` and `suite` exit 0 with no output; a worker dying
    (os._exit) aborted the whole suite with TerminatedWorkerError. Each is now its run's
    failure: the other models run, their report is written, exit 1 lists the failures."""
    (tmp_path / "ending.py").write_text(ENDING)
    (tmp_path / "s.toml").write_text('name = "ending"\nseeds = 1\n[[paradigm]]\nname = "blocked-linear"\n'
                                     'models = ["linear", "ending:make_exit", "ending:make_die", "deep-linear"]\n'
                                     'set = { n_blocks = 2, block_size = 10 }\n')
    out = cli(tmp_path, "suite", "s.toml", "--jobs", "2")
    assert out.returncode == 1, out.stderr
    assert "2 of 4 runs failed; the report of the others is written" in out.stderr
    assert "ending:make_exit on blocked-linear, seed 0: the run called sys.exit(0) (SystemExit)" in out.stderr
    assert "ending:make_die on blocked-linear, seed 0: its worker process died (TerminatedWorkerError" in out.stderr
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr
    report = json.loads((tmp_path / "cache" / "reports" / "ending" / "leaderboard.json").read_text())
    assert {e["model"] for e in report["entries"]} == {"linear", "deep-linear"}
    assert len(report["failed"]) == 2

    out = cli(tmp_path, "run", "--paradigm", "blocked-linear", "--model", "ending:make_exit", "--set", "n_blocks=2")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines()[-1] == "switchbench: error: the run called sys.exit(0) (SystemExit)"


def make_die(spec, seed):
    """A model whose learn kills its process (as a crash in native code would)."""
    net = switchbench.models.get("linear").factory(spec, seed)
    net.learn = lambda x, y: os._exit(3)
    return net


def test_a_worker_that_dies_is_found_among_those_running_beside_it():
    """Chunks run two at a time when one kills its worker: those running then are suspects,
    each is rerun alone, and only the one that dies again fails; the others' numbers are
    those of runs in this process."""
    specs = [RunSpec("blocked-linear", "test_faults:make_die", 0, TINY), RunSpec("blocked-linear", "linear", 0, TINY)]
    out = run_many(specs, jobs=2, progress=False, cache=False)
    assert isinstance(out[0], Failure) and "its worker process died" in out[0].reason, out[0]
    for r, model in zip(out[1:], ("linear",)):
        alone = switchbench.run("blocked-linear", model, cache=False, progress=False, **TINY)
        assert {k: v for k, v in r.metrics.items() if k != "wall_ms_per_step"} == \
               {k: v for k, v in alone.metrics.items() if k != "wall_ms_per_step"}


# --- report files are written atomically ------------------------------------------------------

def _half_then_full_disk(real):
    def write(self, data, *args, **kwargs):
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")
    return write


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fault", ["text", "figure"])
def test_a_write_failing_half_way_leaves_the_previous_report_whole(tmp_path, monkeypatch, fault):
    """A full disk while writing the report: every file of the previous report is still there,
    byte for byte (it was leaderboard.md or .json at half its size, or 0 bytes), and no
    temporary file is left behind."""
    res = switchbench.run("blocked-linear", "linear", progress=False, **TINY)
    suite = leaderboard.Suite("t", [], "")
    out = tmp_path / "out"
    leaderboard.write(suite, [res], out)
    before = _snapshot(out)
    assert {"leaderboard.json", "leaderboard.md", "scores.csv"} <= {p.name for p in before}
    changed = switchbench.run("blocked-linear", "linear", seed=1, progress=False, **TINY)   # a different report
    if fault == "text":
        monkeypatch.setattr(Path, "write_text", _half_then_full_disk(Path.write_text))
    else:
        import matplotlib.figure

        real = matplotlib.figure.Figure.savefig

        def savefig(self, fname, *args, **kwargs):
            real(self, fname, *args, **kwargs)
            Path(fname).write_bytes(Path(fname).read_bytes()[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    with pytest.raises(OSError, match="No space left"):
        leaderboard.write(suite, [changed], out)
    monkeypatch.undo()
    after = _snapshot(out)
    assert after.keys() == before.keys(), "no temporary file left, none missing"
    if fault == "text":
        assert after == before
    else:   # the tables were written whole before the figures; the figure that failed is the old one
        assert all(after[k] == before[k] for k in before if k.suffix == ".png")
        assert after[Path("scores.csv")] != before[Path("scores.csv")]        # seed 1's scores, whole


# --- corrupt caches heal --------------------------------------------------------------------

def _flip(path: Path):
    b = bytearray(path.read_bytes())
    b[len(b) // 2] ^= 0x10
    path.write_bytes(bytes(b))


def _truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("fault", [_truncate, _flip], ids=["truncated", "bit-flipped"])
def test_a_corrupt_neurogym_pool_is_regenerated_with_one_warning(_cache, capsys, fault):
    """A truncated or bit-flipped pool file failed every later cognitive run (BadZipFile):
    it is reported in one warning line and regenerated, to the same trials, and heals."""
    from switchbench.paradigms.cognitive import load_pool

    args = ("yang19.go-v0", {"dt": 20}, 7, 16)
    first = load_pool(*args)
    (path,) = list((_cache / "neurogym-pools").iterdir())
    fault(path)
    capsys.readouterr()
    again = load_pool(*args)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"neurogym pool {path} is corrupt" in err and "regenerating" in err
    assert all(np.array_equal(first[k], again[k]) for k in first)
    load_pool(*args)
    assert capsys.readouterr().err == ""        # healed: loads quietly


def test_a_cache_entry_of_deeply_nested_brackets_is_corrupt_and_recomputed(capsys):
    """config.json of brackets nested 100 000 deep raised RecursionError out of the run."""
    first = switchbench.run("blocked-linear", "linear", progress=False, **TINY)
    (first.path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    capsys.readouterr()
    again = switchbench.run("blocked-linear", "linear", progress=False, **TINY)
    err = capsys.readouterr().err
    assert f"cache entry {first.path} is corrupt (config.json unreadable (RecursionError))" in err
    assert again.metrics["final_loss"] == first.metrics["final_loss"] and storage.verify_entry(again.path, again.config)
