"""Fast start: what a command imports, checked in a fresh interpreter (``sys.modules``, not timing)."""
import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "pandas", "seaborn", "sklearn", "neurogym", "matplotlib", "scipy")


def imported_after(code: str, tmp_path) -> set[str]:
    """The heavy top-level packages in ``sys.modules`` after ``code`` runs in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                         env={**os.environ, "SWITCHBENCH_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["--version"]])
def test_the_command_line_parses_without_heavy_imports(argv, tmp_path):
    code = (f"from switchbench.benchmark.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass")
    assert imported_after(code, tmp_path) == set()


def test_import_switchbench_registers_paradigms_without_building_them(tmp_path):
    code = "import gymnasium, switchbench\nassert 'switchbench/CognitiveSwitch-v0' in gymnasium.registry"
    assert imported_after(code, tmp_path) == set()


def test_a_blocked_linear_run_imports_neither_neurogym_nor_scikit_learn(tmp_path):
    api = ("import switchbench\nswitchbench.run('blocked-linear', 'gated-linear', seed=0, n_blocks=2, block_size=20, "
           "cache=False, progress=False)")
    cli = ("from switchbench.benchmark.cli import main\nassert main(['run', '--paradigm', 'blocked-linear', '--model', "
           "'gated-linear', '--set', 'n_blocks=2', '--set', 'block_size=20', '--no-cache']) == 0")
    for code in (api, cli):
        mods = imported_after(code, tmp_path)
        assert "torch" in mods                      # it did run
        assert not mods & {"neurogym", "sklearn"}, code
