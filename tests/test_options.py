"""Run options: one typed object (RunOptions) checked once, the options every command that
runs models shares, and overrides that name nothing refused."""
import os

import pytest
import torch

import switchbench
from switchbench.benchmark import config
from switchbench.benchmark.cli import build_parser, main
from switchbench.benchmark.commands import options as cli_options
from switchbench.benchmark.config import RunOptions
from switchbench.benchmark.findings import FINDINGS
from switchbench.errors import SwitchbenchError

TINY = {"n_blocks": 2, "block_size": 20}
RUNS_MODELS = ("run", "reproduce", "suite", "leaderboard", "tune")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present here")


def _subparsers():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return sub.choices


@pytest.mark.parametrize("command", RUNS_MODELS)
def test_every_command_that_runs_models_has_the_shared_options(command):
    flags = {f for a in _subparsers()[command]._actions for f in a.option_strings}
    assert {"--device", "--jobs", "--threads", "--no-cache"} <= flags


def test_the_command_lines_devices_are_the_run_options_devices():
    assert cli_options.DEVICES == config.DEVICES


@NO_CUDA
@pytest.mark.parametrize("argv", [
    ["run", "--paradigm", "blocked-linear", "--model", "linear", "--set", "n_blocks=2", "--set", "block_size=20"],
    ["reproduce", "nta-fig2", "--seeds", "1", "--set", "n_blocks=2", "--set", "block_size=20"],
    ["suite", "quick"], ["leaderboard", "quick"], ["tune", "quick"]])
def test_device_cuda_without_cuda_is_one_line_exit_2_even_when_every_run_is_cached(argv, capsys, tmp_path,
                                                                                    monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    if argv[0] == "run":
        assert main(argv) == 0          # cached now
        capsys.readouterr()
    before = sorted(tmp_path.rglob("*"))
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["switchbench: error: device 'cuda' asked for, but torch finds no CUDA device here (use cpu or auto)"]
    assert sorted(tmp_path.rglob("*")) == before          # nothing written, no report


@pytest.mark.parametrize("kwargs, refused", [({"checkpoints": True}, "checkpoints"),
                                             ({"record_hidden": True}, "record_hidden")])
def test_the_covariance_engine_refuses_what_it_cannot_honour(kwargs, refused):
    with pytest.raises(SwitchbenchError, match=f"sampler 'wishart' .* cannot honour {refused}; set sampler='stream' \\(or 'auto'\\)"):
        switchbench.run("blocked-linear", "gated-linear", sampler="wishart", cache=False, progress=False, **kwargs,
                        **TINY)
    if "checkpoints" in kwargs:              # the default sampler ("auto") picks the run loop, which keeps them
        res = switchbench.run("blocked-linear", "gated-linear", cache=False, progress=False, **kwargs, **TINY)
        assert "sampler" not in res.config["runner"] and len(res.checkpoints) == TINY["n_blocks"]
    else:                                    # the run loop's own answer: this learner has no hidden states
        with pytest.raises(SwitchbenchError, match="record_hidden=True, but GatedLinear has no record_hidden"):
            switchbench.run("blocked-linear", "gated-linear", cache=False, progress=False, **kwargs, **TINY)


def test_the_covariance_engine_refuses_a_cuda_device():
    opts = RunOptions.__new__(RunOptions)         # as if CUDA were present: only the engine's own check
    object.__setattr__(opts, "device", "cuda")
    for name, value in (("threads", 1), ("cache", False), ("checkpoints", False), ("record_hidden", False)):
        object.__setattr__(opts, name, value)
    rc = config.prepare("blocked-linear", "gated-linear", build=False, sampler="wishart", **TINY)
    with pytest.raises(SwitchbenchError, match="cannot honour device='cuda'"):
        opts.check_engine(rc)
    opts.check_engine(config.prepare("blocked-linear", "gated-linear", build=False, loop_only=True, **TINY))


@pytest.mark.parametrize("bad, message", [
    ({"threads": 0}, "threads must be an integer >= 1, got 0"),
    ({"cache": "yes"}, "cache must be True, False or 'refresh', got 'yes'"),
    ({"checkpoints": 1}, "checkpoints must be True or False, got 1"),
    ({"device": "gpu"}, "device must be one of cpu, cuda, auto, got 'gpu'")])
def test_run_options_are_checked_when_made(bad, message):
    with pytest.raises(SwitchbenchError, match=message):
        RunOptions(**bad)


def test_reproduce_no_cache_reaches_the_findings_as_an_option_not_the_environment(monkeypatch, capsys):
    seen = {}

    def fake(n_seeds=1, *, jobs=1, options=None, overrides=None, figures=None, progress=True):
        from switchbench.benchmark.findings.base import Report
        seen.update(options=options, environ=dict(os.environ))
        return Report("nta-fig2", [], [], [])

    monkeypatch.setitem(FINDINGS, "nta-fig2", fake)
    monkeypatch.setattr("switchbench.benchmark.site.save_finding", lambda report, *a, **k: None)
    before = dict(os.environ)
    assert main(["reproduce", "nta-fig2", "--no-cache", "--threads", "2"]) == 0
    assert seen["options"] == RunOptions(threads=2, cache="refresh")
    assert seen["environ"] == before == dict(os.environ)


@pytest.mark.parametrize("key, message", [
    ("nosuchmodel/lr=1", "nta-fig2 has no runs of 'nosuchmodel' (in 'nosuchmodel/lr'); its models: gated-linear, "
                         "gated-linear-forgetful"),
    ("linear/lr=1", "nta-fig2 has no runs of 'linear'")])
def test_reproduce_refuses_a_model_prefix_that_names_no_run_of_the_finding(key, message, capsys):
    assert main(["reproduce", "nta-fig2", "--set", key]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("switchbench: error: ") and message in err[0]


def test_a_finding_checks_model_prefixes_before_any_run(monkeypatch):
    import switchbench.benchmark.findings.nta as nta

    monkeypatch.setattr(nta, "run_many", lambda *a, **k: pytest.fail("ran before refusing"))
    with pytest.raises(SwitchbenchError, match="curriculum-blocked-vs-interleaved has no runs of 'gated-linear'"):
        FINDINGS["curriculum-blocked-vs-interleaved"](overrides={"finding.models": ("linear",),
                                                                 "gated-linear/lr": 0.1})
    assert FINDINGS["nta-fig2"].models == ("gated-linear", "gated-linear-forgetful")


@pytest.mark.parametrize("name", sorted(FINDINGS))
def test_every_finding_has_the_one_signature_a_summary_and_its_model_labels(name):
    import inspect

    fn = FINDINGS[name]
    params = inspect.signature(fn).parameters
    assert list(params) == ["n_seeds", "jobs", "options", "overrides", "figures", "progress"]
    assert params["n_seeds"].default >= 1 and all(params[p].kind == p_kind for p, p_kind in
                                                   [("jobs", inspect.Parameter.KEYWORD_ONLY),
                                                    ("options", inspect.Parameter.KEYWORD_ONLY)])
    assert (fn.__doc__ or "").strip().splitlines()[0]          # `switchbench list findings` shows it
    assert fn.models and all(isinstance(m, str) for m in fn.models)
    key = f"{fn.models[0]}/no_such_parameter"
    from switchbench.benchmark.findings.base import check_model_prefixes
    check_model_prefixes(name, {key: 1}, fn.models)              # its own labels are accepted
