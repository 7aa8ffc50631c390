"""Tiny versions of the cognitive findings (cognitive-forgetting, molap-efficiency,
molap-robustness): one seed, short blocks, small networks, dt 100 ms.
Each check is shown to FAIL on a named broken model or setting; their numbers at this size
mean nothing otherwise."""
import numpy as np
import pandas as pd
import pytest
from switchbench.benchmark.runner import torch_threads

from switchbench.benchmark import tuning
from switchbench.benchmark.findings import cognitive
from switchbench.benchmark.findings.cognitive import FORGETTING_MODELS, cognitive_forgetting
from switchbench.errors import SwitchbenchError
from switchbench.benchmark.findings.molap import (efficiency_checks, molap_efficiency, molap_robustness,
                                                  robustness_checks)

BROKEN = 1e-12            # a learning rate that cannot learn anything in a few steps
MODULES = {"n_modules": 2, "module_size": 4, "pretrain_steps": 10, "pretrain_batch": 4, "corpus_trials": 8,
           "corpus_criterion": None, "memory_criterion": None}


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
    return checks_of(report.checks)


def checks_of(items) -> dict:
    return {c.name: c for c in items}


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


# --- the molap findings ----------------------------------------------------------------------

def _table(modular_steps, leaky_steps, per_task_steps=500, random_steps=400, cap=400):
    """A molap-efficiency table (:func:`_rows`) of two seeds: steps per seed per arm; steps >= cap are censored."""
    params = {"modular-primitives": (1000, 500), "random-modules": (1000, 500), "leaky-rnn": (5000, 5000),
              "per-task-rnn": (10000, 5000)}
    rows = []
    for model, steps in (("modular-primitives", modular_steps), ("leaky-rnn", leaky_steps),
                         ("per-task-rnn", per_task_steps), ("random-modules", random_steps)):
        for seed, st in enumerate(np.broadcast_to(steps, 2)):
            trained, per = params[model]
            rows.append({"model": model, "seed": seed, "parameters trained": trained, "parameters per batch": per,
                         "steps to criterion": float(min(st, cap)), "parameter updates": float(min(st, cap) * per),
                         "censored": bool(st >= cap), "final performance": 0.9})
    return pd.DataFrame(rows)


def test_molap_efficiency_checks_pass_fail_and_never_tie_on_censored_runs():
    good = checks_of(efficiency_checks(_table([100, 120], [300, 350], [380, 390])))
    assert all(c.passed for c in good.values()), [c.line() for c in good.values()]
    assert "random-modules censored in 2 seed(s)" in good["steps to criterion, modular-primitives / random-modules"].detail
    # broken: modules that never meet the criterion (censored at the cap, like every control): FAIL, said so
    censored = checks_of(efficiency_checks(_table(400, 400, 400, 400)))
    assert not any(c.passed for c in censored.values())
    assert censored["modular-primitives runs that met the criterion (fraction)"].value == 0
    ratio = censored["steps to criterion, modular-primitives / leaky-rnn"]
    assert ratio.value == 1 and "modular-primitives censored in 2 seed(s): not measured" in ratio.detail
    # broken: modules slower than the leaky RNN (measured, not censored): the update checks FAIL
    slow = checks_of(efficiency_checks(_table([390, 380], [100, 120], [200, 200], [150, 150])))
    assert slow["modular-primitives runs that met the criterion (fraction)"].passed
    for name in ("steps to criterion, modular-primitives / leaky-rnn", "steps to criterion, modular-primitives / "
                 "per-task-rnn", "steps to criterion, modular-primitives / random-modules"):
        assert not slow[name].passed and slow[name].value > 1, name
    # broken: modules not frozen (40x the parameters per batch): fewer steps, more parameter updates
    t = _table([300, 300], [390, 390], [310, 310])
    t.loc[t["model"] == "modular-primitives", "parameter updates"] *= 40
    many = checks_of(efficiency_checks(t))
    assert many["steps to criterion, modular-primitives / per-task-rnn"].passed
    assert not many["parameter updates, modular-primitives / per-task-rnn"].passed
    assert not many["parameter updates, modular-primitives / leaky-rnn"].passed


def _drops(modular, leaky, per_task, seeds=(0, 1, 2)):
    rows = []
    for model, v in (("modular-primitives", modular), ("leaky-rnn", leaky), ("per-task-rnn", per_task)):
        for s in seeds:
            for pert in ("weight_noise 0.3", "input_noise 1"):
                rows.append({"model": model, "seed": s, "perturbation": pert, "value": v[s] if v else None})
            if model == "modular-primitives":
                rows.append({"model": model, "seed": s, "perturbation": "module_silencing 1", "value": 5.0})
    return pd.DataFrame(rows).dropna()


def test_molap_robustness_checks_are_paired_shared_and_fail_without_matched_controls():
    good = robustness_checks(_drops([0.1, 0.2, 0.1], [0.3, 0.3, 0.2], [0.4, 0.5, 0.3]))
    assert [c.passed for c in good] == [True, True]
    assert good[0].value == pytest.approx(-(0.2 + 0.1 + 0.1) / 3)      # module silencing (modular only) left out
    assert "3 seed pair(s)" in good[0].detail
    # the measurement at matched performance: modular loses more than the leaky RNN: FAIL
    worse = robustness_checks(_drops([0.35, 0.3, 0.4], [0.3, 0.25, 0.35], [0.5, 0.5, 0.5]))
    assert [c.passed for c in worse] == [False, True]
    # a control never trained to the criterion (no rows) cannot be compared: FAIL, 0 pairs
    none = robustness_checks(_drops([0.1, 0.1, 0.1], [0.3, 0.3, 0.3], None))
    assert not none[1].passed and "0 seed pair(s)" in none[1].detail


MOLAP = {"tasks": ["yang19.rtanti-v0"], "block_size": 150, "batch_size": 32, "n_eval": 64, "k_adapt": 1,
         "pool_size": 256, "eval_pool_size": 64, "target_perf": 0.6, "check_every": 10,
         **labelled({"hidden": 32, "lr": 1e-2}, ["leaky-rnn", "per-task-rnn"]),
         **labelled({**MODULES, "module_size": 16, "pretrain_steps": 20, "pretrain_batch": 8, "corpus_trials": 16,
                     "lr": 1e-2}, ["modular-primitives", "random-modules"])}


def test_molap_findings_run_end_to_end_and_fail_for_modules_that_cannot_learn(run):
    """Tiny: rtanti, which small networks learn to 0.6 in tens of steps. Modules with a
    learning rate of 1e-12 never meet the criterion: every efficiency check FAILs, and the
    robustness checks have no matched modular network to compare."""
    eff = run(molap_efficiency, {**MOLAP, "modular-primitives/lr": BROKEN})
    c = checks(eff)
    assert c["modular-primitives runs that met the criterion (fraction)"].value == 0
    assert not any(x.passed for x in eff.checks)
    assert "pretraining corpus: modular-primitives go, dlygo, anti, dlyanti, dlydm1" in eff.notes[0] and "teacher 20 batches" in eff.notes[0]
    assert "parameter updates" in eff.notes[1] and eff.figures[0].exists()
    rob = run(molap_robustness, {**MOLAP, "modular-primitives/lr": BROKEN})       # the same runs, from the cache
    assert not any(x.passed for x in rob.checks) and "modular-primitives 0/1" in rob.notes[0]
