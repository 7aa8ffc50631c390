"""Scale-out for real: a small suite submitted as a Slurm job array (submitit) to the
one-node cluster that `.ci/slurm-up.sh` starts gives the same metrics as a local run at the
same thread count. Without a cluster: fake Slurm commands, a sacct that always fails."""
import os
import shutil
import subprocess
import threading

import pytest

from switchbench.benchmark.suite import Failure, RunSpec, run_many


def _slurm_idle() -> bool:
    if not shutil.which("sinfo"):
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    return out.returncode == 0 and "idle" in out.stdout.split()


needs_slurm = pytest.mark.skipif(not _slurm_idle(), reason="no idle Slurm node here: .ci/slurm-up.sh starts a "
                                "one-node cluster (needs root and Debian's slurm-wlm and munge)")

SPECS = [RunSpec("blocked-linear", m, s, {"n_blocks": 3, "block_size": 50}) for m in ("gated-linear", "linear")
         for s in (0, 1)]


@needs_slurm
def test_slurm_array_gives_the_local_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBENCH_CACHE", str(tmp_path / "local"))
    local = run_many(SPECS, jobs=1, threads=1, progress=False)
    monkeypatch.setenv("SWITCHBENCH_CACHE", str(tmp_path / "slurm"))
    remote = run_many(SPECS, jobs=2, threads=1, backend="slurm", progress=False,
                      slurm={"timeout_min": 10})
    assert not [r for r in remote if isinstance(r, Failure)], [r.reason for r in remote if isinstance(r, Failure)]
    assert list((tmp_path / "slurm" / "slurm").iterdir()), "the runs went through Slurm (job folders)"
    for a, b in zip(local, remote):
        assert a.config == b.config
        for k, v in a.metrics.items():
            if k != "wall_ms_per_step":
                assert b.metrics[k] == pytest.approx(v, rel=1e-6, abs=1e-9, nan_ok=True), k


def test_a_failing_sacct_is_a_bounded_wait_and_a_failure_per_run(tmp_path, monkeypatch):
    """Fake sbatch, srun and scancel that accept everything and a sacct that always fails: the
    jobs' state is never known, so each is given up on after ``status_timeout_s`` and its runs
    are failures that say why (before, the suite polled forever)."""
    pytest.importorskip("submitit")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, body in {"sbatch": 'echo "Submitted batch job 4242"', "srun": "exit 0", "scancel": "exit 0",
                       "sacct": 'echo "sacct: error: Slurm accounting storage is disabled" >&2; exit 1'}.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SWITCHBENCH_CACHE", str(tmp_path / "cache"))
    got = []
    poll = threading.Thread(target=lambda: got.append(run_many(SPECS, jobs=2, backend="slurm", progress=False,
                                                               slurm={"status_timeout_s": 2})), daemon=True)
    poll.start()
    poll.join(timeout=120)
    assert not poll.is_alive(), "still polling after 120 s"
    out = got[0]
    assert all(isinstance(r, Failure) for r in out) and len(out) == len(SPECS)
    assert all("slurm job 4242_" in r.reason and "no state from Slurm (sacct) for 2 s" in r.reason for r in out), \
        [r.reason for r in out]
