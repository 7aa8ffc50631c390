"""Tiny versions of the cognitive findings (molap-efficiency, molap-robustness,
cognitive-forgetting): one seed, 20-step blocks, small networks. Their numbers mean nothing
at this size; what is tested is what they measure."""
import math

import pytest
import torch

from switchbench.benchmark.findings.cognitive import cognitive_forgetting
from switchbench.benchmark.findings.molap import molap_efficiency, molap_robustness

SETUP = {"block_size": 20, "batch_size": 8, "n_eval": 32, "k_adapt": 2}
MODULES = {"n_modules": 2, "module_size": 4, "pretrain_steps": 10, "pretrain_batch": 4, "corpus_trials": 8}
PARAMS = {m: {"hidden": 8} for m in ("leaky-rnn", "leaky-rnn-ewc", "leaky-rnn-si", "gated-rnn", "per-task-rnn")}
PARAMS["modular-primitives"] = MODULES


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("figs")
    kw = dict(n_seeds=1, jobs=1, figures=out, progress=False, setup=SETUP, model_params=PARAMS)
    try:
        yield {f.__name__: f(**kw) for f in (molap_efficiency, molap_robustness, cognitive_forgetting)}
    finally:
        torch.set_num_threads(threads)


def test_molap_efficiency_counts_the_parameters_each_network_changes(reports):
    report = reports["molap_efficiency"]
    ratio = report.checks[0]
    io = 8 * 34 + 17 * 8 + 17             # the task's input (33 inputs + its cue), output weights and biases
    leaky = 8 * 34 + 8 * 8 + 8 + 17 * 8 + 17                        # the same plus recurrent weights and biases
    assert ratio.value == pytest.approx(leaky / io, rel=0.02)       # 8-unit RNN vs 8 units in 2 modules: ~1
    assert not ratio.passed                                         # at equal size there is no saving
    assert "dlyanti" in report.notes[0] and "dlygo" in report.notes[0]
    assert report.figures[0].exists()


def test_molap_robustness_silences_modules_only_in_the_modular_network(reports):
    report = reports["molap_robustness"]
    table = report.notes[0]
    line = next(row for row in table.splitlines() if row.startswith("module_silencing"))
    assert "NaN" in line                                            # leaky-rnn has no modules
    assert math.isfinite(report.checks[0].value) and report.figures[0].exists()


def test_cognitive_forgetting_modules_and_separate_networks_do_not_forget(reports):
    report = reports["cognitive_forgetting"]
    checks = {c.name: c for c in report.checks}
    assert checks["modular-primitives forgetting (R0)"].value == 0 and checks["modular-primitives forgetting (R0)"].passed
    assert set(checks) >= {"leaky-rnn forgetting (R0)", "leaky-rnn-ewc forgetting (R0) minus leaky-rnn's"}
    assert "per-task-rnn" in report.notes[0] and report.figures[0].exists()
