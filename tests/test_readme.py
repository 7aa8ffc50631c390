"""The README as a user reads it: its fences render, its Python blocks run (at a small
size where they would take minutes), and its shell commands name real commands, options,
paradigms, models, findings and files; the quick path's commands are run."""
import io
import re
import shlex
import textwrap
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

import switchbench
from switchbench import models
from switchbench.benchmark.cli import build_parser, main
from switchbench.benchmark.commands.options import parse_set
from switchbench.errors import SwitchbenchError

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^( *)```(\w*)\s*$")
TINY = {"n_blocks": 2, "block_size": 50}   # what the Python blocks' runs are shrunk to
#: models the README itself defines (the decorator example) or installs (examples/external_model)
README_MODELS = {"my-regression", "example-rls", "your-model"}
#: the README's placeholders in commands, and a value for each
PLACEHOLDERS = {"N": "2", "SUITE": "suites/quick.toml"}


def blocks() -> list[tuple[str, str, int]]:
    """Fenced blocks as ``(language, dedented body, first line number)``."""
    out, current = [], None
    for n, line in enumerate(TEXT.splitlines(), 1):
        m = FENCE.match(line)
        if not m:
            if current is not None:
                current[1].append(line)
            continue
        if current is None:
            current = (m.group(2), [], n, m.group(1))
        else:
            lang, body, start, indent = current
            out.append((lang, textwrap.dedent("\n".join(body)), start))
            current = None
    return out


def python_blocks() -> dict[str, str]:
    return {f"README.md:{start}": body for lang, body, start in blocks() if lang == "python"}


def test_fences_open_and_close_in_pairs():
    """A stray fence opens a block that swallows the prose after it, until the next fence
    (which then shows up as a 'closing' fence with a language)."""
    inside = False
    for n, line in enumerate(TEXT.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            assert not (inside and m.group(2)), f"README.md:{n}: a fence with a language closes a block"
            inside = not inside
    assert not inside, "README.md: the last code block is never closed"
    assert all(body.strip() for _, body, _ in blocks()), "README.md: an empty code block (a stray fence?)"


@pytest.mark.parametrize("where", sorted(python_blocks()))
def test_python_block_runs(where, monkeypatch):
    """Every Python block runs as written; ``switchbench.run`` runs a small curriculum."""
    run = switchbench.run
    monkeypatch.setattr(switchbench, "run", lambda *a, **kw: run(*a, **{**kw, **TINY, "progress": False}))
    exec(compile(python_blocks()[where], where, "exec"), {"__name__": "readme"})


def test_use_block_names_metrics_that_exist(monkeypatch):
    """The keys the Use block's comment promises in ``res.metrics`` are there."""
    block = next(b for b in python_blocks().values() if "res.metrics" in b)
    promised = re.findall(r'"(\w+)": \.\.\.', block)
    assert promised
    ns = {}
    run = switchbench.run
    monkeypatch.setattr(switchbench, "run", lambda *a, **kw: run(*a, **{**kw, **TINY, "progress": False}))
    exec(compile(block, "README.md", "exec"), ns)
    assert set(promised) <= set(ns["res"].metrics)
    assert {"loss", "norm_loss", "time"} <= set(ns["res"].log.columns)


def test_decorator_example_registers_scores_and_says_how_to_accept_other_kinds():
    block = next(b for b in python_blocks().values() if "@register" in b)
    exec(compile(block, "README.md", "exec"), {})
    res = switchbench.run("blocked-linear", "my-regression", seed=0, cache=False, progress=False, n_blocks=4,
                          block_size=200, lr=0.5)
    assert res.metrics["final_loss"] < 0.2 and res.metrics["forgetting_R0"] > 0.5   # learns, and forgets
    # as the README says: classification paradigms are refused with a line on how to accept them
    with pytest.raises(SwitchbenchError, match=r"not classification: register it with "
                                               r"kinds=\('regression', 'classification'\)"):
        switchbench.run("digit-switch", "my-regression", cache=False, progress=False, **TINY)


# --- shell commands ---------------------------------------------------------------------

def _variants(line: str) -> list[str]:
    """Expand the README's optional parts: ``[a|b]`` -> without, with a, with b."""
    m = re.search(r"\[([^\[\]]+)\]", line)
    if not m:
        return [" ".join(line.split())]
    options = [""] + m.group(1).split("|")
    return [v for o in options for v in _variants(line[:m.start()] + o + line[m.end():])]


def commands() -> list[str]:
    """Every ``switchbench ...`` command: lines of bash blocks and inline code spans."""
    lines = [line.split("  #")[0] for lang, body, _ in blocks() if lang == "bash"
             for line in body.splitlines() if line.startswith("switchbench ")]
    lines += [" ".join(span.split()) for span in re.findall(r"`(switchbench [^`]+)`", TEXT)]
    return sorted({v for line in lines for v in _variants(line)})


def test_the_readme_shows_commands():
    cmds = commands()
    for sub in ("list", "run", "reproduce", "suite", "leaderboard", "--version"):
        assert any(c.split()[1] == sub for c in cmds), sub


@pytest.mark.parametrize("command", commands())
def test_command_parses_and_names_what_exists(command):
    argv = [PLACEHOLDERS.get(a, a) for a in shlex.split(command)[1:]]
    if argv[-1:] in (["--help"], ["--version"]):
        with pytest.raises(SystemExit) as e, redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
        assert e.value.code == 0
        return
    args = build_parser().parse_args(argv)        # argparse exits (fails the test) on a bad option
    if args.command == "reproduce":
        from switchbench.benchmark.findings import FINDINGS
        assert set(args.findings) <= set(FINDINGS), args.findings
    if args.command in ("suite", "leaderboard"):
        path = getattr(args, "file", None) or args.suite
        if path is not None and path.startswith("suites/"):
            assert (ROOT / path).exists(), path
    if args.command == "run":
        if args.model in models.names():
            from switchbench.benchmark.runner import validate
            validate(args.paradigm, args.model, parse_set(args.set))   # names and --set keys exist
        else:
            assert args.model in README_MODELS or ":" in args.model, args.model


def test_quick_path_commands_run(capsys, tmp_path, monkeypatch):
    """The Use section's commands, run: listings as written; runs with a small curriculum."""
    monkeypatch.chdir(ROOT)
    use = next(body for lang, body, _ in blocks() if lang == "bash" and "switchbench list" in body)
    ran, out = 0, ""
    for line in use.splitlines():
        for cmd in _variants(line.split("  #")[0]):
            argv = shlex.split(cmd)[1:]
            if argv[0] == "list" and argv[1:] != ["models"]:      # `list` alone lists the models too
                assert main(argv) == 0
                out += capsys.readouterr().out
                ran += 1
            elif argv[0] == "run":
                assert main([*argv, "--set", "block_size=20", *(["--set", "n_blocks=2"] if "n_blocks=" not in cmd
                                                                  else [])]) == 0
                printed = capsys.readouterr().out
                if "--format csv" in cmd:
                    scores = pd.read_csv(io.StringIO(printed))
                    assert list(scores.columns) == ["paradigm", "model", "seed", "metric", "value", "path"]
                    assert "switch_time_late" in set(scores["metric"])
                else:
                    assert "switch_time_late" in printed
                ran += 1
    assert ran >= 6
    assert "blocked-linear" in out and "gated-linear" in out and "nta-fig2" in out and "higher_is_better" in out


def test_setup_commands_exist():
    """``make run`` and ``make test`` are Makefile targets; the main job's suite loads."""
    from switchbench.benchmark.leaderboard import load_suite

    setup = next(body for lang, body, _ in blocks() if lang == "bash" and "make run" in body)
    makefile = (ROOT / "Makefile").read_text()
    for line in setup.splitlines():
        target = line.split("#")[0].split()[1]
        assert re.search(rf"^{target}:", makefile, re.M), target
    suite = re.search(r"^run:.*\n\t.*suite (\S+)", makefile, re.M).group(1)
    assert load_suite(ROOT / suite if (ROOT / suite).exists() else suite).specs   # a file or a shipped suite
