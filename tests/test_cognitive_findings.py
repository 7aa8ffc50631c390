"""Tiny versions of the cognitive findings (cognitive-forgetting, molap-efficiency,
molap-robustness, molap-generalisation): one seed, short blocks, small networks, dt 100 ms.
Each check is shown to FAIL on a named broken model or setting; their numbers at this size
mean nothing otherwise."""
import pytest
from switchbench.benchmark.runner import torch_threads

from switchbench.benchmark import tuning
from switchbench.benchmark.findings import cognitive
from switchbench.benchmark.findings.cognitive import FORGETTING_MODELS, cognitive_forgetting
from switchbench.errors import SwitchbenchError
from switchbench.benchmark.findings.molap import molap_efficiency, molap_generalisation, molap_robustness

BROKEN = 1e-12            # a learning rate that cannot learn anything in a few steps
MODULES = {"n_modules": 2, "module_size": 4, "pretrain_steps": 10, "pretrain_batch": 4, "corpus_trials": 8}


def labelled(params: dict, labels) -> dict:
    return {f"{label}/{k}": v for label in labels for k, v in params.items()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run a finding tiny, in its own cache, on one torch thread."""
    figs = tmp_path_factory.mktemp("figs")
    with pytest.MonkeyPatch.context() as mp, torch_threads(1):
        mp.setenv("SWITCHBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield lambda fn, overrides: fn(n_seeds=1, jobs=1, overrides=overrides, figures=figs, progress=False)


# --- cognitive-forgetting ------------------------------------------------------------------

FORGET = {"n_blocks": 4, "block_size": 20, "batch_size": 8, "n_eval": 32, "k_adapt": 2, "pool_size": 64, "eval_pool_size": 32,
          **labelled({"hidden": 8}, ["leaky-rnn", "leaky-rnn-ewc", "leaky-rnn-si", "gated-rnn", "per-task-rnn"]),
          **labelled(MODULES, ["modular-primitives", "random-modules"])}


def checks(report) -> dict:
    return {c.name: c for c in report.checks}


def test_cognitive_forgetting_fails_when_the_leaky_rnn_cannot_learn(run):
    report = run(cognitive_forgetting, {**FORGET, "leaky-rnn/lr": BROKEN})
    c = checks(report)["leaky-rnn forgetting (R0)"]
    assert abs(c.value) < 1e-3 and not c.passed                 # nothing learned, nothing forgotten
    trained = report.checks[0]                                  # and no block reached the criterion
    assert trained.name.startswith("lowest block-end performance") and trained.value < 0.9 and not trained.passed
    assert set(FORGETTING_MODELS) <= set(report.notes[0].split()) and report.figures[0].exists()
    assert "1 censored" in report.notes[1] and "block_size 20" in report.notes[2]   # blocks below 0.9, per seed


def test_cognitive_forgetting_reads_its_setting_and_tuned_strengths_from_the_forgetting_suite(monkeypatch):
    suite = cognitive.forgetting_suite()
    assert {s.model for s in suite.specs} == {"leaky-rnn-ewc", "leaky-rnn-si"}
    assert cognitive.forgetting_setup() == {k: v for k, v in suite.specs[0].overrides.items() if k != "lr"}
    table = tuning.read_tuning(cognitive.reference(cognitive.FORGETTING_TUNING))
    assert set(table["suite_id"]) == {tuning.suite_id(suite)} and table.groupby("model")["selected"].sum().eq(1).all()
    assert set(table["config"]) >= {'{"lam": 10.0}', '{"c": 0.01}'} and not table["config"].str.contains("lr").any()
    strengths = cognitive.tuned_strengths()
    assert set(strengths) == {"leaky-rnn-ewc", "leaky-rnn-si"}
    assert all(set(v) <= {"lam", "c"} for v in strengths.values())
    monkeypatch.setattr(tuning, "suite_id", lambda s: "another")          # the suite's setting changed since
    with pytest.raises(SwitchbenchError, match="tuned on another setting"):
        cognitive.tuned_strengths()


def test_cognitive_forgetting_fails_without_consolidation_and_with_modules_that_cannot_learn(run):
    """EWC with strength 0 and SI with c 0 (overrides win over the tuned strengths) are the
    plain leaky RNN, bit for bit (same seed): they forget exactly as much. A modular network with a learning rate of 1e-12 keeps its
    initial loss, above both the trained leaky RNN's and the random modules'."""
    report = run(cognitive_forgetting, {**FORGET, "leaky-rnn-ewc/lam": 0.0, "leaky-rnn-si/c": 0.0,
                                        "modular-primitives/lr": BROKEN, "random-modules/lr": 1e-2,
                                        **labelled({"lr": 1e-2}, ["leaky-rnn", "leaky-rnn-ewc", "leaky-rnn-si"])})
    c = checks(report)
    for m in ("leaky-rnn-ewc", "leaky-rnn-si"):
        check = c[f"{m} forgetting (R0) minus leaky-rnn's"]
        assert check.value == 0 and not check.passed
    for control in ("leaky-rnn", "random-modules"):
        assert not c[f"final held-out loss, modular-primitives minus {control}"].passed


# --- the molap findings: rtanti, which a small network learns in ~100 steps -----------------

MOLAP = {"tasks": ["yang19.rtanti-v0"], "block_size": 150, "batch_size": 32, "n_eval": 64, "k_adapt": 1,
         "pool_size": 256, "eval_pool_size": 64, "leaky-rnn/hidden": 32, "leaky-rnn/lr": 1e-2,
         **labelled({"n_modules": 2, "module_size": 16, "pretrain_steps": 20, "pretrain_batch": 8, "corpus_trials": 16,
                     "lr": 1e-2}, ["modular-primitives", "random-modules"])}


def test_molap_efficiency_and_generalisation_fail_for_modules_that_cannot_learn(run):
    broken = {**MOLAP, "modular-primitives/lr": BROKEN}
    eff = run(molap_efficiency, broken)
    c = checks(eff)
    assert not c["steps to criterion, modular-primitives / leaky-rnn"].passed
    assert not c["steps to criterion, modular-primitives / random-modules"].passed
    gap = c["held-out performance, leaky-rnn minus modular-primitives"]
    assert gap.value > 0.5 and not gap.passed                       # the leaky RNN learned rtanti, modules did not
    assert "less the scored task" in eff.notes[0] and "rtanti" in eff.notes[1]
    table = eff.notes[1]
    assert "trainable parameters" in table and eff.figures[0].exists()
    assert len(eff.notes) == 2                                      # rtanti was learned: no all-censored warning
    gen = run(molap_generalisation, broken)                         # the same runs, from the cache
    assert [c.passed for c in gen.checks] == [False, False]


def test_molap_robustness_fails_against_controls_that_have_nothing_to_lose(run):
    """Controls that never learn (lr 1e-12) lose no performance under damage; a modular
    network that learned rtanti does: the check must fail. The same runs make molap-efficiency
    pass its update checks (the modules reach the criterion, the controls never do)."""
    frozen = {**MOLAP, "leaky-rnn/lr": BROKEN, "random-modules/lr": BROKEN}
    report = run(molap_robustness, frozen)
    assert [c.passed for c in report.checks] == [False, False]
    assert "module_silencing 1" in report.notes[1] and report.notes[0].startswith("intact held-out performance")
    eff = checks(run(molap_efficiency, frozen))
    assert eff["steps to criterion, modular-primitives / leaky-rnn"].passed
    assert eff["steps to criterion, modular-primitives / random-modules"].passed
