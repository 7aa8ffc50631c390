"""The command line explains itself: every option's help with its default, an example per
command, versions, and `run` output that fits a terminal or feeds a script."""
import io
import json
import os
import re
import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest

from switchbench.benchmark.cli import build_parser, main
from switchbench.benchmark.commands.run import format_scores

TINY = ["--set", "n_blocks=3", "--set", "block_size=20"]


def subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_option_has_help_with_its_default_and_the_command_an_example(name):
    parser = subcommands()[name]
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{name} {action.option_strings or action.dest}: no help text"
        if not action.required and not (action.nargs is None and not action.option_strings):
            assert "default" in action.help, f"{name} {action.option_strings or action.dest}: default not stated"
    examples = [line.strip() for line in (parser.epilog or "").splitlines() if line.strip().startswith("switchbench ")]
    assert examples, f"{name}: no example"
    for example in examples:     # each example parses (argparse exits on a bad option)
        argv = shlex.split(example.split("  #")[0].split(" > ")[0])[1:]
        assert build_parser().parse_args(argv).command == name


def test_version_names_the_versions_results_depend_on(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for package in ("switchbench", "torch", "numpy", "gymnasium", "neurogym"):
        assert f"{package} {version(package)}" in out


def scores(n_seeds=5, n_metrics=30):
    names = ["final_loss", "switch_time_late", "specialisation"] + [f"extra_{i}" for i in range(n_metrics - 3)]
    rows = [{"paradigm": "blocked-linear", "model": "m", "seed": s, "metric": m, "value": 0.123456 * (s + 1)}
            for s in range(n_seeds) for m in names]
    return pd.DataFrame(rows)


def test_table_has_a_row_per_metric_and_fits_the_terminal():
    paths = {s: f"/cache/run{s}" for s in range(5)}
    wide = format_scores(scores(), "table", paths, width=200)
    narrow = format_scores(scores(), "table", paths, width=60)
    table = [line for line in narrow.splitlines() if not line.startswith(("seed ", "("))][1:]
    assert max(len(line) for line in table) <= 60
    assert "seed 4" in wide.splitlines()[1] and "seed 4" not in narrow.splitlines()[1]
    assert "seed columns not shown" in narrow
    assert len([line for line in wide.splitlines() if line.startswith(("final_loss", "extra_"))]) == 28
    rows = {line.split()[0]: line.split()[1:] for line in wide.splitlines()[2:] if line[:1].isalpha()}
    assert rows["specialisation"][0] == "higher" and rows["final_loss"][0] == "lower"
    assert float(rows["final_loss"][1]) == pytest.approx(0.123456 * 3, rel=1e-3)        # the mean over seeds
    lines = [line for line in wide.splitlines() if line.startswith(("final_loss", "switch_time_late"))]
    assert lines[0].startswith("final_loss")   # metrics in the order of METRICS, not alphabetical


def test_one_seed_keeps_its_column_however_narrow():
    text = format_scores(scores(n_seeds=1), "table", {0: "/c/r0"}, width=20)
    assert "seed 0" in text and "mean" not in text


def test_run_formats_for_scripts(capsys):
    argv = ["run", "--paradigm", "blocked-linear", "--model", "linear", "--seeds", "2", *TINY]
    assert main([*argv, "--format", "csv"]) == 0
    tidy = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(tidy.columns) == ["paradigm", "model", "seed", "metric", "value", "path"]
    assert sorted(tidy["seed"].unique()) == [0, 1] and all(Path(p).exists() for p in tidy["path"])
    assert main([*argv, "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert pd.DataFrame(records).set_index(["seed", "metric"])["value"].to_dict() == pytest.approx(
        tidy.set_index(["seed", "metric"])["value"].to_dict())
    assert main([*argv, "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert re.search(r"^\| final_loss +\| lower +\|", md, re.M) and re.search(r"\|\s*seed 1\s*\|", md)


def test_model_module_in_the_current_folder_is_found_and_labelled_by_its_name(tmp_path):
    """`--model my_models:make` works from the folder holding my_models.py (no PYTHONPATH), and
    the report names the model as registered."""
    (tmp_path / "my_models.py").write_text(
        "from switchbench import models\n\n"
        "@models.register('my-linear', description='a linear readout')\n"
        "def make(spec, seed, lr=0.1):\n"
        "    return models.get('linear').factory(spec, seed)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SWITCHBENCH_CACHE"] = str(tmp_path / "cache")
    exe = Path(sys.executable).parent / "switchbench"
    out = subprocess.run([str(exe), "run", "--paradigm", "blocked-linear", "--model", "my_models:make", *TINY,
                          "--format", "csv"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    tidy = pd.read_csv(io.StringIO(out.stdout))
    assert set(tidy["model"]) == {"my-linear"}


def test_help_and_version_import_no_heavy_library():
    """`switchbench --help` answers at once: the CLI module, and `import switchbench` under it,
    leave torch, pandas, scikit-learn, seaborn and neurogym to the commands that use them."""
    code = ("import sys, switchbench.benchmark.cli as c\n"
            "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'pandas', 'sklearn', 'seaborn', 'neurogym', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
