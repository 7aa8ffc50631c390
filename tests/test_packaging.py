"""The wheel: one `switchbench` namespace with every subpackage, installable into a clean
virtual environment, importable from outside the repository with its entry points."""
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # Built from a clean copy of the source: an in-tree build/ folder would carry stale modules.
    src = tmp_path_factory.mktemp("src") / "switchbench"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "build", "dist",
                                                                  "*.egg-info", "__pycache__", "results"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True)
    (whl,) = out.glob("switchbench-*.whl")
    return whl


def test_wheel_has_one_namespace_and_every_subpackage(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"switchbench"}
    for folder in ("paradigms", "models", "benchmark"):
        # every module, nested subpackages included (setup.cfg must list each one)
        sources = sorted(p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*.py")
                         if "__pycache__" not in p.parts)
        packaged = sorted(n.removeprefix(f"switchbench/{folder}/") for n in names
                          if n.startswith(f"switchbench/{folder}/") and n.endswith(".py"))
        assert sources == packaged, folder
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "switchbench = switchbench.benchmark.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


IMPORT_ALL = """
import importlib, pkgutil, sys
import switchbench
assert "site-packages" in switchbench.__file__, switchbench.__file__
mods = [m.name for m in pkgutil.walk_packages(switchbench.__path__, "switchbench.")]
for m in mods:
    importlib.import_module(m)
from importlib.metadata import entry_points
(ep,) = [e for e in entry_points(group="console_scripts") if e.name == "switchbench"]
ep.load()
import gymnasium
gymnasium.make("switchbench/BlockedLinear-v0")
print(len(mods))
"""


def test_wheel_installs_into_a_clean_venv_and_imports_from_outside(wheel, tmp_path):
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", str(ROOT / "constraints.txt")]
    subprocess.run(pip + ["torch==2.13.0"], check=True)
    subprocess.run(pip + [str(wheel)], check=True)
    out = subprocess.run([str(py), "-c", IMPORT_ALL], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 15
    cli = subprocess.run([str(env / "bin" / "switchbench"), "list", "models"], cwd=tmp_path, capture_output=True,
                         text=True)
    assert cli.returncode == 0 and "gated-linear" in cli.stdout, cli.stderr


def test_source_hash_reads_every_module_of_the_package(monkeypatch):
    """A cached run belongs to the code that made it: the source hash reads every module of
    every subpackage setup.cfg lists (in an editable install the mapped folders are not below
    the root, so each must be listed; a module it missed could change without a recompute)."""
    import configparser
    import importlib

    from switchbench.benchmark import config

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    # switchbench.suites holds package data (its module is a docstring; a run's key holds its configuration)
    names = [n for n in cfg["options"]["packages"].split() if n != "switchbench.suites"]
    files = {f.resolve() for n in names for f in Path(importlib.import_module(n).__path__[0]).glob("*.py")}
    read = set()
    original = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.add(self.resolve()) or original(self))
    config.source_hash.__wrapped__()
    assert "switchbench.data" in names and len(files) > 40
    assert files <= read, sorted(str(f) for f in files - read)


def test_timing_scripts_live_outside_the_package_and_import_what_exists():
    """The timing scripts (benchmarks/) are not installed nor hashed (editing one never
    invalidates a cached run), and every name they import from switchbench exists."""
    import ast
    import configparser
    import importlib

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    folders = [line.split("=")[1].strip() for line in cfg["options"]["package_dir"].strip().splitlines()]
    assert not any(f.split("/")[0] == "benchmarks" for f in folders)
    scripts = sorted((ROOT / "benchmarks").glob("*.py"))
    assert {p.name for p in scripts} >= {"engine_speed.py", "speed.py", "pool_speed.py"}
    for script in scripts:
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("switchbench"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{script.name}: {node.module}.{alias.name}"
            elif isinstance(node, ast.ImportFrom) and node.module.startswith("_") and node.module != "__future__":  # the scripts' own helpers
                assert (ROOT / "benchmarks" / f"{node.module}.py").is_file(), f"{script.name}: {node.module}"
