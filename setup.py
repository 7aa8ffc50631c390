"""Packaging is declarative (setup.cfg); this file only records, in the built package, the git
commit of the source it was built from (``switchbench/_build.json``), so that a leaderboard
names the commit of the code that made it, not of the folder it was run from."""
import json
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(HERE), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


class BuildWithCommit(build_py):
    def run(self):
        super().run()
        top = _git("rev-parse", "--show-toplevel")
        inside = top is not None and Path(top).resolve() == HERE    # not a parent folder's repository
        info = {"commit": _git("rev-parse", "HEAD") if inside else None,
                "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")) if inside else None}
        target = Path(self.build_lib) / "switchbench" / "_build.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(info))


setup(cmdclass={"build_py": BuildWithCommit})
