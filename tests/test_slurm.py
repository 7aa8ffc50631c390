"""Scale-out for real: a small suite submitted as a Slurm job array (submitit) to the
one-node cluster that `.ci/slurm-up.sh` starts gives the same metrics as a local run at the
same thread count."""
import shutil
import subprocess

import pytest

from switchbench.benchmark.suite import Failure, RunSpec, run_many


def _slurm_idle() -> bool:
    if not shutil.which("sinfo"):
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    return out.returncode == 0 and "idle" in out.stdout.split()


pytestmark = pytest.mark.skipif(not _slurm_idle(), reason="no idle Slurm node here: .ci/slurm-up.sh starts a "
                                "one-node cluster (needs root and Debian's slurm-wlm and munge)")

SPECS = [RunSpec("blocked-linear", m, s, {"n_blocks": 3, "block_size": 50}) for m in ("gated-linear", "linear")
         for s in (0, 1)]


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
