"""Reliability: a score belongs to the code and data that made it, a corrupt cache entry is
recomputed (never served), a non-finite number fails its run, a report survives partial
failure, names never become paths outside the output folder, bad input is one line and
exit 2 (never a traceback), workers die with their suite, and the API leaves the caller's
torch threads alone."""
import contextlib
import datetime
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import switchbench
from switchbench import models
from switchbench.benchmark import leaderboard
from switchbench.benchmark import config as C
from switchbench.benchmark import runner as R
from switchbench.benchmark import storage as S
from switchbench.benchmark.cli import main
from switchbench.benchmark.commands.options import parse_set
from switchbench.benchmark.suite import Failure, RunSpec, run_many
from switchbench.errors import SwitchbenchError
from switchbench.paradigms import PARADIGMS

TINY = {"n_blocks": 3, "block_size": 20}
CLI = [sys.executable, "-m", "switchbench.benchmark.cli"]


def cli(tmp_path, *args, cwd=None, **env):
    env = {**os.environ, "SWITCHBENCH_CACHE": str(tmp_path / "cache"), **env}
    return subprocess.run([*CLI, *args], env=env, cwd=cwd or tmp_path, capture_output=True, text=True, timeout=600)


def entries(cache: Path) -> list[Path]:
    return sorted(p.parent for p in (cache / "runs").rglob("config.json") if not p.parent.name.startswith("."))


# --- 1. a score belongs to the code that made it ------------------------------------------

PLUGIN = """
from switchbench import models
TAU_W = {tau_w}

def make(spec, seed):
    '''a plug-in: the linear model at a learning rate fixed in this file'''
    return models.get("linear").factory(spec, seed, tau_w=TAU_W)
"""


def test_a_plugin_edited_between_two_runs_gives_new_metrics_and_no_cache_recomputes(tmp_path):
    (tmp_path / "mymod.py").write_text(PLUGIN.format(tau_w=1.0))
    args = ["run", "--paradigm", "blocked-linear", "--model", "mymod:make", "--set", "n_blocks=3",
            "--set", "block_size=20"]

    def metrics(*extra):
        out = cli(tmp_path, *args, *extra, PYTHONPATH=str(tmp_path))
        assert out.returncode == 0, out.stderr
        path = tmp_path / next(l.split(": ", 1)[1] for l in out.stdout.splitlines() if l.startswith("seed 0: "))
        return path, json.loads((path / "metrics.json").read_text())

    path1, first = metrics()
    (tmp_path / "mymod.py").write_text(PLUGIN.format(tau_w=20.0))
    path2, second = metrics()
    assert path2 != path1 and second["final_loss"] != first["final_loss"]   # not the old score
    meta = json.loads((path2 / "config.json").read_text())
    assert meta["code"]["model"]["module"] == "mymod" and meta["code"]["torch"] == torch.__version__
    stamp = (path2 / "metrics.json").stat().st_mtime_ns
    path3, third = metrics("--no-cache")
    assert path3 == path2 and (path3 / "metrics.json").stat().st_mtime_ns != stamp   # recomputed, overwritten
    assert {k: v for k, v in third.items() if k != "wall_ms_per_step"} == \
           {k: v for k, v in second.items() if k != "wall_ms_per_step"}


def test_the_cache_key_holds_the_model_source_and_library_versions(monkeypatch):
    config = C.prepare("blocked-linear", "linear", build=False, **TINY).config(0)
    key = C.run_key(config)
    monkeypatch.setattr(np, "__version__", "0.0.0")
    assert C.run_key(config) != key
    monkeypatch.undo()
    monkeypatch.setattr(C, "model_source", lambda model: {"module": "x", "source": "edited", "distribution": None})
    assert C.run_key(config) != key



def test_the_distributions_in_the_cache_key_are_packages_distributions_own():
    """config.distributions_of(top) answers without the full map where it can, and always as
    importlib.metadata.packages_distributions() would: every installed top-level name, and
    names no distribution installs."""
    import importlib.metadata

    full = importlib.metadata.packages_distributions()
    for top in sorted(set(full) | {"switchbench", "torch", "numpy", "no_such_package_xyz"}):
        assert C.distributions_of(top) == sorted(set(full.get(top, []))), top
    assert C.distributions_of("switchbench") == ["switchbench"]


# --- 2. a cache entry is verified ---------------------------------------------------------

def _truncate(f: Path):
    f.write_bytes(f.read_bytes()[: max(1, f.stat().st_size // 2)])


def _edit(f: Path):
    if f.suffix == ".json":   # still valid JSON: only the checksums can tell
        data = json.loads(f.read_text())
        key = next(k for k, v in data.items() if isinstance(v, (int, float)) or k == "config")
        data[key] = 123.0 if key != "config" else {**data["config"], "seed": 7}
        f.write_text(json.dumps(data))
    else:
        b = bytearray(f.read_bytes())
        b[len(b) // 2] ^= 0xFF
        f.write_bytes(bytes(b))


FAULTS = {"truncated": _truncate, "edited": _edit, "deleted": Path.unlink}


def test_every_corrupt_cache_file_is_reported_and_recomputed_never_served(monkeypatch, capsys):
    kw = dict(progress=False, mode="sequence", n_blocks=2, block_size=5, batch_size=8, n_trials=2, hidden=16,
              n_eval=20, k_adapt=1)    # a recurrent model: its entry has every file, robustness.csv too
    first = switchbench.run("cued-switch", "leaky-rnn", **kw)
    files = sorted(p.name for p in first.path.iterdir())
    assert files == ["arrays.npz", "config.json", "log.csv.gz", "metrics.json", "robustness.csv"]
    computed = []
    real = R._run
    monkeypatch.setattr(R, "_run", lambda *a, **k: computed.append(1) or real(*a, **k))
    served_stale, lost = 0, 0
    for name in files:
        for fault, inject in FAULTS.items():
            capsys.readouterr()
            inject(first.path / name)
            again = switchbench.run("cued-switch", "leaky-rnn", **kw)
            err = capsys.readouterr().err
            assert f"cache entry {first.path} is corrupt" in err and err.count("\n") == 1, (name, fault, err)
            served_stale += again.metrics.get("final_loss") != first.metrics["final_loss"]
            assert again.path == first.path and S.verify_entry(again.path, again.config)
            reloaded = switchbench.run("cued-switch", "leaky-rnn", **kw)       # now it loads cleanly
            lost += json.dumps(reloaded.metrics, sort_keys=True) != json.dumps(again.metrics, sort_keys=True)
    assert len(computed) == len(files) * len(FAULTS)      # every corrupt entry recomputed ...
    assert served_stale == 0 and lost == 0                 # ... to the same numbers; none served
    assert not [p for p in first.path.parent.iterdir() if p.name.startswith(".")]   # nothing left aside


def test_an_entry_of_another_configuration_is_not_served(capsys):
    a = switchbench.run("blocked-linear", "linear", seed=0, progress=False, **TINY)
    b_config = C.prepare("blocked-linear", "linear", build=False, **TINY).config(1)
    S.run_dir(b_config).parent.mkdir(parents=True, exist_ok=True)
    os.rename(a.path, S.run_dir(b_config))           # seed 0's entry under seed 1's key
    b = switchbench.run("blocked-linear", "linear", seed=1, progress=False, **TINY)
    assert "corrupt (it holds another configuration)" in capsys.readouterr().err
    assert b.config["seed"] == 1 and b.metrics["final_loss"] != a.metrics["final_loss"]


def test_a_truncated_digit_feature_cache_heals(_cache, capsys):
    from switchbench.models.gated_mlp import feature_cache_path, feature_config, feature_network

    config = feature_config(0, epochs=1)
    layers, acc = feature_network(config)
    path = feature_cache_path(config)
    _truncate(path)
    again, acc2 = feature_network(config)
    assert "feature cache" in capsys.readouterr().err and acc2 == acc
    assert all(torch.equal(w, w2) for (w, _), (w2, _) in zip(layers, again))
    assert feature_network(config)[1] == acc and capsys.readouterr().err == ""    # healed: loads quietly


# --- 3. non-finite numbers fail the run ---------------------------------------------------

def test_non_finite_held_out_losses_fail_the_run_and_are_never_cached(_cache):
    with pytest.raises(SwitchbenchError, match=r"non-finite held-out loss after adaptation \(Rk\[0, 0\]"):
        switchbench.run("blocked-linear", "linear", progress=False, n_blocks=3, block_size=1, tau_w=1e-6)
    assert not (_cache / "runs").exists() or not entries(_cache)
    out = run_many([RunSpec("blocked-linear", "linear", 0, {"n_blocks": 3, "block_size": 1, "tau_w": 1e-6})],
                   progress=False)
    assert isinstance(out[0], Failure) and "non-finite" in out[0].reason


@pytest.mark.parametrize("options, message", [
    ({"n_eval": 0}, "n_eval must be an integer >= 1, got 0"),
    ({"k_adapt": -1}, "k_adapt must be an integer >= 0"),
    ({"n_eval": 2.5}, "n_eval must be an integer"),
    ({"threshold": float("nan")}, "threshold must be a finite number"),
    ({"criterion": "loss2"}, "criterion must be one of"),
])
def test_runner_options_are_checked_wherever_they_come_from(tmp_path, capsys, options, message):
    with pytest.raises(SwitchbenchError, match=message):
        switchbench.run("blocked-linear", "linear", progress=False, **TINY, **options)
    sets = [a for k, v in options.items() for a in ("--set", f"{k}={v}")]
    assert main(["run", "--paradigm", "blocked-linear", "--model", "linear", *sets]) == 2
    assert message in capsys.readouterr().err
    suite = tmp_path / "s.toml"
    table = ", ".join(f"{k} = {json.dumps(v) if not isinstance(v, float) or np.isfinite(v) else 'nan'}"
                      for k, v in options.items())
    suite.write_text(f'name = "s"\n[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\nset = {{ {table} }}\n')
    assert main(["suite", str(suite)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_set_nan_is_a_float():
    assert np.isnan(parse_set(["lam=nan"])["lam"]) and parse_set(["x=-inf"])["x"] == float("-inf")


def make_str_loss(spec, seed):
    net = models.get("linear").factory(spec, seed)
    net.learn = lambda x, y: "0.5"
    return net


def test_a_plugin_returning_the_wrong_type_is_named():
    with pytest.raises(SwitchbenchError, match=r"test_reliability:make_str_loss on blocked-linear \(seed 0\): "
                                               r"learn returned str, expected a number"):
        switchbench.run("blocked-linear", "test_reliability:make_str_loss", cache=False, progress=False, **TINY)


# --- 4, 5, 6: reports -------------------------------------------------------------------

def make_broken(spec, seed):
    raise RuntimeError("broken on purpose")


def test_a_paradigm_whose_runs_all_fail_leaves_the_others_ranked_and_exits_1(tmp_path, capsys):
    suite = tmp_path / "s.toml"
    suite.write_text('name = "partial"\nseeds = 1\n'
                     '[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\n'
                     'set = { n_blocks = 3, block_size = 20 }\n'
                     '[[paradigm]]\nname = "digit-switch"\nmodels = ["test_reliability:make_broken"]\n'
                     'set = { n_blocks = 2, block_size = 5 }\n')
    assert main(["leaderboard", str(suite), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 runs failed" in err and "broken on purpose" in err and "Traceback" not in err
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "## blocked-linear" in md and "## digit-switch" not in md and "broken on purpose" in md
    assert (tmp_path / "out" / "figures" / "blocked-linear_published_metrics.png").exists()


def test_an_unwritable_out_is_refused_before_any_run(tmp_path, capsys, _cache):
    (tmp_path / "file").write_text("")
    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\n[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\n')
    assert main(["leaderboard", str(suite), "--out", str(tmp_path / "file" / "out")]) == 2
    assert "cannot write to the output folder" in capsys.readouterr().err
    assert not (_cache / "runs").exists()


@pytest.mark.parametrize("name", ["/tmp/x", "../up", "a/b", ".hidden", ""])
def test_suite_names_must_be_slugs(tmp_path, name):
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = {json.dumps(name)}\n[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\n')
    with pytest.raises(SwitchbenchError, match="name must be letters, digits"):
        leaderboard.load_suite(suite)


def test_a_paradigm_name_is_never_a_path(tmp_path):
    res = switchbench.run("blocked-linear", "linear", progress=False, **TINY)
    res.config = {**res.config, "paradigm": "../../escape"}
    with pytest.raises(SwitchbenchError, match="paradigm name in a figure's file name"):
        leaderboard.write(leaderboard.Suite("t", [], ""), [res], tmp_path / "out")
    assert not (tmp_path / "escape").exists()
    assert S.slug("../../x") == "_.._x" and S.slug("a:b/c") == "a_b_c"


# --- 7. one line and exit 2, never a traceback --------------------------------------------

def _call_main(argv) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    return rc, err.getvalue()


@contextlib.contextmanager
def _chdir(path: Path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _files(root: Path) -> set:
    return {p for p in root.rglob("*") if not {"cache", "__pycache__"} & set(p.relative_to(root).parts)}


#: generated bad inputs and how many ended in a traceback (printed with -s; see the report)
COUNT = {"cli": 0, "suite": 0, "tracebacks": 0}


def _check(rc, err, argv):
    lines = err.strip().splitlines()
    COUNT["tracebacks"] += "Traceback" in err or "internal error" in err
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("switchbench") and " error: " in lines[0], (argv, err)
    assert "Traceback" not in err and "internal error" not in err


NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=":\x00"), max_size=20)
INT_BAD = st.one_of(st.integers(max_value=0), st.text(alphabet="abc.-+x", min_size=1, max_size=5))
PARAM_BAD = st.sampled_from([
    "n_blocks=0", "n_blocks=-3", "n_blocks='x'", "block_size=0", "block_size=2.5", "batch_size=0",
    "batch_size=1000000000", "block_size=1000000000000", "input_size=100000", "input_size=0", "output_size=-1",
    "n_eval=0", "k_adapt=-5", "threshold=nan", "threshold=inf", "criterion=nope", "schedule=5", "teachers=x",
    "schedule=[0, 9]", "n_tasks=0", "paradigm.tau_w=1", "model.n_blocks=2", "cue=[[]]", "n_blocks=[1, 2]",
    "n_blocks=True", "tau_w='fast'", "block_size=1e3"])


GOOD_SUITE = 'name = "s"\nseeds = 1\n[[paradigm]]\nname = "blocked-linear"\nmodels = ["linear"]\n' \
             'set = { n_blocks = 2, block_size = 10 }\n'
TUNING_HEADER = "paradigm,model,config,default,budget,validation_seeds,switch_time_late,final_loss,failed,eligible," \
                "selected\n"


def _tuning_row(config: str = '"{}"', budget: str = "3") -> bytes:
    return (TUNING_HEADER + f"blocked-linear,linear,{config},True,{budget},1000-1001,1.0,0.1,,True,True\n").encode()


#: bad tuning tables: empty, not UTF-8, a config that is no JSON object, a budget that is no integer >= 1
TUNING_BAD = st.one_of(
    st.just(b""), st.just(TUNING_HEADER.encode()), st.just(b"\xff\xfe\x00" + TUNING_HEADER.encode()),
    st.just(_tuning_row().replace(b"linear,", b"lin\xe9ar,", 1)),
    st.sampled_from(["notjson", "5", '"[1, 2]"', '"""x"""', "{", "null", '"[]"', "true"]).map(_tuning_row),
    st.sampled_from(["abc", "0", "-1", "1.5", "nan", "inf", "1e400x"]).map(lambda b: _tuning_row(budget=b)))
#: plug-in modules that cannot be imported: a syntax error, or raising as they are imported
PLUGIN_BAD = st.sampled_from(["def make(:\n", "raise RuntimeError('broken on import')\n", "import no_such_module_zz\n",
                              "1 / 0\n", "import sys\nsys.exit(0)\n", "raise SystemExit('bye')\n", "x = (\n",
                              "\tdef make(spec, seed):\n  pass\n", "raise KeyError('k')\n"])
#: values of a finding's own options of the wrong kind (a list of numbers, a number, a list of names)
OPTION_BAD = st.sampled_from(["oops", "()", "[]", "True", "None", "[True]", "{'a': 1}", "'x'", "['a', 'b']", "[[1]]",
                              "2.5j"])


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_property_bad_command_lines_are_one_line_and_exit_2(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    kind = data.draw(st.sampled_from(["jobs", "seeds", "threads", "paradigm", "model", "set", "key", "backend",
                                      "list", "finding", "suite", "module", "tuning", "plugin", "option", "huge"]))
    base = ["run", "--paradigm", "blocked-linear", "--model", "linear"]
    if kind in ("jobs", "seeds"):
        argv = [*base, f"--{kind}", str(data.draw(INT_BAD))]
    elif kind == "threads":
        argv = ["suite", "x.toml", "--threads", str(data.draw(INT_BAD))]
    elif kind == "huge":     # bounded before anything is built (a seed list of 10^8, 10^5 OpenMP threads)
        command = data.draw(st.sampled_from([[*base, "--seeds"], ["suite", "quick", "--threads"],
                                             ["leaderboard", "quick", "--threads"], ["reproduce", "nta-fig2", "--seeds"]]))
        argv = [*command, str(data.draw(st.integers(min_value=100_001, max_value=10**12)))]
    elif kind == "tuning":
        (root / "s.toml").write_text(GOOD_SUITE)
        (root / "t.csv").write_bytes(data.draw(TUNING_BAD))
        argv = ["leaderboard", "s.toml", "--out", "out", "--tuning", "t.csv"]
    elif kind == "plugin":
        name = f"plug_{data.draw(st.integers(0, 10**9))}"
        (root / f"{name}.py").write_text(data.draw(PLUGIN_BAD))
        if data.draw(st.booleans()):
            argv = ["run", "--paradigm", "blocked-linear", "--model", f"{name}:make"]
        else:
            (root / "p.toml").write_text(GOOD_SUITE.replace('"linear"', f'"{name}:make"'))
            argv = ["suite", "p.toml"]
    elif kind == "option":
        finding, key = data.draw(st.sampled_from([("nta-fig5", "blocks"), ("nta-fig5", "t_total"),
                                                  ("nta-fig5", "tau_c"), ("block-size-switching", "total_steps"),
                                                  ("block-size-switching", "sizes"), ("nta-composition", "kinds")]))
        argv = ["reproduce", finding, "--set", f"finding.{key}={data.draw(OPTION_BAD)}"]
    elif kind == "paradigm":
        name = data.draw(NAMES.filter(lambda n: n not in PARADIGMS and not n.startswith("-")))
        argv = ["run", "--paradigm", name, "--model", "linear"]
    elif kind == "model":
        name = data.draw(NAMES.filter(lambda n: n not in models.names() and not n.startswith("-")))
        argv = ["run", "--paradigm", "blocked-linear", "--model", name]
    elif kind == "module":
        name = data.draw(st.sampled_from(["..x", ".x", "zz_nonexistent_mod", "os.path..x", "1bad"]))
        attr = data.draw(st.sampled_from(["y", "", "a.b"]))
        argv = ["run", "--paradigm", "blocked-linear", "--model", f"{name}:{attr}"]
    elif kind == "set":
        argv = [*base, "--set", "n_blocks=2", "--set", "block_size=10", "--set", data.draw(PARAM_BAD)]   # the last wins
    elif kind == "key":
        key = data.draw(st.from_regex(r"[a-z_]{1,10}", fullmatch=True).filter(
            lambda k: k not in C.paradigm_params(C.resolve_paradigm("blocked-linear")[2])
            and k not in models.get("linear").hparams() and k not in C.RUNNER_OPTIONS))
        argv = [*base, "--set", f"{key}={data.draw(st.integers())}"]
    elif kind == "backend":
        argv = ["suite", "x.toml", "--backend", data.draw(NAMES.filter(lambda n: n not in ("local", "slurm")))]
    elif kind == "list":
        argv = ["list", data.draw(NAMES.filter(lambda n: n not in ("paradigms", "models", "metrics", "findings")
                                               and not n.startswith("-")))]
    elif kind == "finding":
        argv = ["reproduce", data.draw(st.from_regex(r"[a-z]{1,8}-[a-z0-9]{1,6}", fullmatch=True))]
    else:
        argv = ["suite", str(root / data.draw(st.from_regex(r"[a-z]{1,8}\.toml", fullmatch=True)))]
    before = _files(root)
    with _chdir(root):
        rc, err = _call_main(argv)
    COUNT["cli"] += 1
    _check(rc, err, argv)
    assert _files(root) == before, "nothing is written outside the cache"


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not np.isfinite(v):
        return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(x)}" for k, x in v.items()) + " }"


VALUES = st.one_of(st.booleans(), st.integers(-10, 10**13), st.floats(allow_nan=True), NAMES,
                   st.lists(st.integers(-2, 3), max_size=3), st.dictionaries(NAMES, st.integers(), max_size=2),
                   st.dates(), st.times(), st.datetimes(), st.lists(st.dates(), min_size=1, max_size=2))
GOOD_PARADIGM = {"name": "blocked-linear", "models": ["linear"], "set": {"n_blocks": 2, "block_size": 10}}
BAD_FIELDS = st.one_of(
    st.tuples(st.just("top"), st.sampled_from(["name", "seeds", "paradigm", "models", "extra"]), VALUES),
    st.tuples(st.just("entry"), st.sampled_from(["name", "models", "seeds", "set", "sets", "model"]), VALUES),
    st.tuples(st.just("set"), st.sampled_from(["n_blocks", "block_size", "batch_size", "n_eval", "k_adapt",
                                               "threshold", "input_size", "nope", "tau_w", "schedule"]), VALUES),
    st.tuples(st.just("plugin"), st.just("when"), st.one_of(st.dates(), st.times(), st.datetimes(),
                                                            st.lists(st.dates(), min_size=1, max_size=2))),
    # one configuration listed twice: its seeds would count twice
    st.tuples(st.just("dup"), st.sampled_from(["block", "models", "default"]), st.just(None)))


def make_when(spec, seed, when=None):
    """A plug-in with an unannotated parameter (any value type-checks)."""
    return models.get("linear").factory(spec, seed)


def _is_bad(where, key, value) -> bool:
    """Whether the generated field surely makes the suite invalid (most draws do; the few
    that might be legal are skipped, so that no example runs a suite)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if where == "dup":
        return True
    if key == "seeds":
        return not is_int or not 1 <= value <= 10_000
    if where == "plugin":       # a TOML date, time or date-time is no parameter value
        return True
    if where == "top":
        return key != "name" or not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value)
    if where == "entry":
        return not (key == "name" and isinstance(value, str) and value in PARADIGMS
                    or key == "models" and value == "*" or key == "set" and value == {})
    if key in ("n_blocks", "block_size", "batch_size", "n_eval"):
        return not is_int or value < 1 or value > 10**10
    if key == "k_adapt":
        return not is_int or value < 0 or value > 10**10
    if key == "input_size":
        return not is_int or value < 20 or value > 10**6
    if key in ("threshold", "tau_w"):
        return not number or (key == "threshold" and not np.isfinite(value))
    if key == "schedule":
        return not isinstance(value, list) and value not in ("blocked", "interleaved")
    return True


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(field=BAD_FIELDS)
def test_property_bad_suite_files_are_one_line_and_exit_2(field, tmp_path_factory):
    where, key, value = field
    if not _is_bad(where, key, value):
        return
    root = tmp_path_factory.mktemp("suite")
    suite = {"name": "s", "seeds": 1, "paradigm": [dict(GOOD_PARADIGM, set=dict(GOOD_PARADIGM["set"]))]}
    if where == "dup":      # a second block as the first, a model listed twice, or a default written out
        first = suite["paradigm"][0]
        if key == "models":
            first["models"] = ["linear", "deep-linear", "linear"]
        else:
            suite["paradigm"].append(dict(first, set=dict(first["set"], **({"k_adapt": 50} if key == "default" else {}))))
    else:
        target = {"top": suite, "entry": suite["paradigm"][0], "set": suite["paradigm"][0]["set"],
                  "plugin": suite["paradigm"][0]["set"]}[where]
        target[key] = value
        if where == "plugin":
            suite["paradigm"][0]["models"] = ["test_reliability:make_when"]
    p = suite["paradigm"]
    tables = p if isinstance(p, list) and p and all(isinstance(e, dict) for e in p) else []
    lines = [f"{k} = {_toml(v)}" for k, v in suite.items() if k != "paradigm" or not tables]
    for entry in tables:
        lines += ["[[paradigm]]"] + [f"{k} = {_toml(v)}" for k, v in entry.items()]
    (root / "in").mkdir()
    path = root / "in" / "suite.toml"
    path.write_text("\n".join(lines) + "\n")
    (root / "work").mkdir()
    with _chdir(root / "work"):
        rc, err = _call_main(["suite", str(path)])
    COUNT["suite"] += 1
    _check(rc, err, path.read_text())
    assert not [p for p in (root / "work").rglob("*") if "cache" not in p.parts]
    assert not (Path(os.environ["SWITCHBENCH_CACHE"]) / "reports").exists(), "no report, not even a partial one"


def test_zz_report_the_property_counts():
    print(f"\nproperty tests: {COUNT['cli']} bad command lines, {COUNT['suite']} bad suite files, "
          f"{COUNT['tracebacks']} tracebacks")
    assert COUNT["tracebacks"] == 0


def test_list_into_a_closed_pipe_is_quiet(tmp_path):
    out = subprocess.run(f"{sys.executable} -m switchbench.benchmark.cli list models | head -1", shell=True,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.stdout.count("\n") == 1 and out.stderr == ""


def test_slurm_without_sbatch_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SwitchbenchError, match="needs Slurm's sbatch"):
        run_many([RunSpec("digit-switch", "mlp", 0, {"n_blocks": 2, "block_size": 5})], backend="slurm",
                 progress=False)


# --- 8. workers exit with their suite; SIGKILL loses no finished run ------------------------

KILL_SUITE = """
name = "k"
seeds = 3
[[paradigm]]
name = "blocked-linear"
models = ["deep-linear", "linear"]
set = {{ n_blocks = 3, block_size = {block_size} }}
"""


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigkill_at_random_points_keeps_finished_runs_and_leaves_no_worker(tmp_path):
    suite = tmp_path / "k.toml"
    suite.write_text(KILL_SUITE.format(block_size=150))
    env = {**os.environ, "SWITCHBENCH_CACHE": str(tmp_path / "cache")}
    cmd = [*CLI, "suite", str(suite), "--jobs", "2"]
    rng = random.Random(11)
    kept = {}
    for attempt in range(2):                    # two kills, each at a random moment after a worker started
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workers, deadline = [], time.time() + 120
        while time.time() < deadline and not workers and proc.poll() is None:
            workers = _children(proc.pid)
            time.sleep(0.1)
        assert workers or attempt > 0, "the first attempt runs in worker processes"
        time.sleep(rng.uniform(0.5, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 20
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not [w for w in workers if _alive(w)], "workers outlived their suite"
        for p in entries(tmp_path / "cache"):
            S.verify_entry(p)                       # whatever is there is whole
            kept.setdefault(p, (p / "metrics.json").stat().st_mtime_ns)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    after = entries(tmp_path / "cache")
    assert len(after) == 6 and all((p / "metrics.json").stat().st_mtime_ns == t for p, t in kept.items())
    assert "corrupt" not in out.stderr


def test_two_suites_on_one_cache(tmp_path):
    suite = tmp_path / "k.toml"
    suite.write_text(KILL_SUITE.format(block_size=40))
    env = {**os.environ, "SWITCHBENCH_CACHE": str(tmp_path / "cache")}
    cmd = [*CLI, "suite", str(suite), "--jobs", "1"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    found = entries(tmp_path / "cache")
    assert len(found) == 6 and all(S.verify_entry(p) for p in found)
    assert not [p for p in (tmp_path / "cache" / "runs").rglob(".*")]
    assert not any("corrupt" in o[1] for o in outs)


# --- 9. threads -----------------------------------------------------------------------

def test_run_and_suites_restore_the_callers_thread_count():
    before = torch.get_num_threads()
    seen = []
    real = R._run
    try:
        R._run = lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k)
        torch.set_num_threads(2)
        switchbench.run("blocked-linear", "deep-linear", cache=False, progress=False, **TINY)
        switchbench.run("blocked-linear", "deep-linear", cache=False, progress=False, threads=None, **TINY)
        assert seen == [1, 2] and torch.get_num_threads() == 2
        run_many([RunSpec("blocked-linear", "deep-linear", 0, TINY)], threads=1, progress=False)
        assert torch.get_num_threads() == 2
    finally:
        R._run = real
        torch.set_num_threads(before)
