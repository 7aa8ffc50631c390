"""Plugging in a model from another package: the example package's entry point is found,
its card listed, and the model scored from the command line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "external_model"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True)
    return target


def cli(site, tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(site), "SWITCHBENCH_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "switchbench.benchmark.cli", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True)


def test_external_model_is_listed_with_its_card(site, tmp_path):
    out = cli(site, tmp_path, "list", "models")
    assert out.returncode == 0, out.stderr
    line = next(l for l in out.stdout.splitlines() if l.startswith("example-rls"))
    assert "recursive least squares" in line and "Haykin" in line


def test_external_model_is_scored(site, tmp_path):
    out = cli(site, tmp_path, "run", "--paradigm", "blocked-linear", "--model", "example-rls",
              "--set", "n_blocks=4", "--set", "block_size=100", "--set", "forget=0.5")
    assert out.returncode == 0, out.stderr
    path = next(l.split(": ", 1)[1] for l in out.stdout.splitlines() if l.startswith("seed 0: "))
    metrics = json.loads((tmp_path / path / "metrics.json").read_text())
    assert metrics["switch_time_late"] <= 5      # least squares with fast forgetting re-fits a switched task within a few batches
