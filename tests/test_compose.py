"""Composition probes on CognitiveSwitch-v0 (held-out tasks, composed rule cues, transfer),
their metrics and the compose findings, at tiny sizes: what is tested is what they measure."""
import math

import gymnasium
import numpy as np
import pytest
import torch

import switchbench
from switchbench import models
from switchbench.errors import SwitchbenchError
from switchbench.paradigms import make_schedule

FOUR = [f"yang19.{n}-v0" for n in ("go", "anti", "dlygo", "dlyanti")]
SMALL = {"pool_size": 16, "eval_pool_size": 8, "pool_cache": False, "batch_size": 4, "n_blocks": 2, "block_size": 5}


def make(**kw):
    return gymnasium.make("switchbench/CognitiveSwitch-v0", **{**SMALL, "envs": FOUR, **kw}).unwrapped


@pytest.fixture(scope="module")
def env():
    return make(held_out_tasks=["dlyanti"], compose={"dlyanti": "anti + dlygo - go", "dlygo": "dlygo"},
                transfer_budget=3, schedule="interleaved", n_blocks=3, block_size=20)


def test_cue_expressions_are_signed_sums_of_one_hot_cues(env):
    assert env.cue_vector("anti + dlygo - go").tolist() == [-1, 1, 1, 0]
    assert env.cue_vector("anti+dlygo-go").tolist() == [-1, 1, 1, 0]                     # spaces optional
    assert env.cue_vector("- yang19.go-v0 + yang19.dlyanti").tolist() == [-1, 0, 0, 1]   # ids, names, leading sign
    assert env.cue_vector("go + go").tolist() == [2, 0, 0, 0]
    for bad, message in (("anti + rtgo", r"at '\+ rtgo'"), ("anti dlygo", "expected a sign"), ("", "empty"),
                         ("anti +", r"at '\+'")):
        with pytest.raises(SwitchbenchError, match=message):
            env.cue_vector(bad)


def test_held_out_tasks_never_enter_the_curriculum_and_nothing_else_changes(env):
    env.reset(seed=0)
    assert set(env.curriculum.task.tolist()) == {0, 1, 2} and env.trained_tasks == (0, 1, 2)
    blocked = make(held_out_tasks="anti", n_blocks=4)
    blocked.reset(seed=0)
    assert blocked.curriculum.block_tasks() == [0, 2, 3, 0]                  # cycles over the trained tasks
    plain = make(schedule="interleaved", n_blocks=3, block_size=20)        # nothing held out: the base schedule
    plain.reset(seed=5)
    expected = make_schedule("interleaved", 4, 3, 20, np.random.default_rng(np.random.SeedSequence(5)))
    assert plain.curriculum.task.tolist() == expected.task.tolist()
    with pytest.raises(SwitchbenchError, match="lists held-out task"):
        make(held_out_tasks=["go"], schedule=[0, 1])
    with pytest.raises(SwitchbenchError, match="every task"):
        make(held_out_tasks=FOUR)
    with pytest.raises(SwitchbenchError, match="unknown task 'rtgo'"):
        make(held_out_tasks=["rtgo"])


def test_a_composed_cue_replaces_the_rule_input_of_the_same_trials(env):
    x, y = env.eval_batch(3, 6, seed=1)
    cue = env.cue_vector("anti + dlygo - go")
    xc, yc = env.eval_batch_cued(3, cue, 6, seed=1)
    n_in = env.task_spec.input_size - 4
    assert np.array_equal(y, yc) and np.array_equal(x[..., :n_in], xc[..., :n_in])
    assert (xc[..., n_in:] == cue).all()                                   # at every time step, padding included
    own, _ = env.eval_batch_cued(3, np.eye(4)[3], 6, seed=1)
    assert np.array_equal(own, x)
    with pytest.raises(SwitchbenchError, match="4 entries"):
        env.eval_batch_cued(3, np.ones(3), 6, seed=1)


def test_cue_probes_list_own_partial_composed_and_random_cues_of_the_same_norm(env):
    probes = {p.task: p for p in env.cue_probes(seed=0)}
    assert probes[3].metric == "zero_shot" and probes[2].metric == "rule_composition"
    cues = probes[3].cues
    assert [(c.role, c.label) for c in cues[:4]] == [("own", "dlyanti"), ("partial", "anti"),
                                                     ("partial", "anti + dlygo"), ("composed", "anti + dlygo - go")]
    assert [c.role for c in cues[4:]] == ["random"] * 5
    norms = [np.linalg.norm(c.vector) for c in cues[4:]]
    assert np.allclose(norms, math.sqrt(3))
    assert not np.allclose(cues[4].vector, cues[5].vector)
    again = env.cue_probes(seed=0)[0].cues
    other = env.cue_probes(seed=1)[0].cues
    assert np.array_equal(again[-1].vector, env.cue_probes(seed=0)[0].cues[-1].vector)
    assert not np.array_equal(again[-1].vector, other[-1].vector)


def test_transfer_probe_and_bad_settings_are_one_clear_line(env):
    assert env.transfer_probe().tasks == (3,) and env.transfer_probe().budget == 3
    assert make().transfer_probe() is None and make().cue_probes(0) == []
    a = [x for x, _ in env.train_batches(3, 2, seed=4)]
    b = [x for x, _ in env.train_batches(3, 2, seed=4)]
    assert len(a) == 2 and all(np.array_equal(p, q) for p, q in zip(a, b)) and (a[0][..., -1] == 1).all()
    for kw, message in (({"transfer_budget": 5}, "needs held_out_tasks"),
                        ({"compose": {"dlyanti": "anti"}, "cue": False}, "cue=True"),
                        ({"compose": ["anti"]}, "compose must map"),
                        ({"held_out_tasks": ["go"], "transfer_budget": -1}, "transfer_budget")):
        with pytest.raises(SwitchbenchError, match=message):
            make(**kw)


def test_metric_formulas():
    import pandas as pd

    from switchbench.benchmark import metrics as M

    t = pd.DataFrame({"metric": ["rule_composition"] * 3 + ["zero_shot"] * 3, "task": [3] * 3 + [5] * 3,
                      "role": ["own", "composed", "random"] * 2, "performance": [0.5, 0.25, 0.1, 0.0, 0.3, 0.2]})
    assert M.rule_composition(t) == pytest.approx({"rule_composition_perf": 0.5, "rule_composition_random": 0.2,
                                                   "zero_shot_perf": 0.3, "zero_shot_random": 0.2})
    untrained = t.assign(performance=0.0)
    assert math.isnan(M.rule_composition(untrained)["rule_composition_perf"])   # no own performance: no ratio
    for name in ("rule_composition_perf", "zero_shot_perf", "transfer_steps"):
        assert name in M.METRICS
    assert not M.METRICS["transfer_steps"].higher_is_better and M.METRICS["zero_shot_perf"].higher_is_better


TINY = {"envs": FOUR, "pool_size": 32, "eval_pool_size": 8, "pool_cache": False, "batch_size": 8,
        "schedule": "interleaved", "n_blocks": 1, "block_size": 12, "held_out_tasks": ["dlyanti"],
        "compose": {"dlyanti": "anti + dlygo - go", "dlygo": "anti + dlygo - anti"}, "transfer_budget": 20,
        "n_eval": 16, "k_adapt": 0, "criterion": "accuracy", "threshold": 0.7}    # met within a few tiny steps


@pytest.fixture(scope="module")
def runs():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {m: switchbench.run("cognitive-switch", m, seed=0, cache=False, progress=False, hidden=8, lr=0.03,
                                   **TINY)
                for m in ("leaky-rnn", "per-task-rnn")}
    finally:
        torch.set_num_threads(threads)


def test_runs_report_the_probe_metrics_and_their_table(runs):
    r = runs["leaky-rnn"]
    for name in ("rule_composition_perf", "rule_composition_random", "zero_shot_perf", "zero_shot_random",
                 "transfer_steps", "transfer_steps_curriculum", "transfer_steps_scratch", "transfer_censored"):
        assert name in r.metrics
    t = r.cue_probes
    assert set(t["metric"]) == {"rule_composition", "zero_shot"} and len(t) == 2 * (1 + 3 + 5)
    # own cue of a trained task = the robustness table's intact score on the same held-out trials
    own = t.query("metric == 'rule_composition' and role == 'own'")["performance"].iloc[0]
    intact = r.robustness.query("kind == 'none' and task == 2")["score"].iloc[0]
    assert own == intact
    # "anti + dlygo - anti" is dlygo's own cue: the composed row equals the own row exactly
    dlygo = t[t["task"] == 2].set_index("role")
    assert dlygo.loc["composed", "norm_loss"] == dlygo.loc["own", "norm_loss"]
    m = r.metrics
    assert m["transfer_censored"] == 0 and m["transfer_steps_curriculum"] < m["transfer_steps_scratch"] <= 20
    assert m["transfer_steps"] == m["transfer_steps_curriculum"] / m["transfer_steps_scratch"]


def test_per_task_rnn_transfers_nothing_the_fresh_network_is_the_runs_own(runs):
    """The held-out task's own network is never trained: after the curriculum it is the fresh
    network of the same seed, so it meets the criterion at exactly the same step (ratio 1).
    A fresh network from another seed, or other batches, would break the equality."""
    m = runs["per-task-rnn"].metrics
    assert m["transfer_censored"] == 0 and m["transfer_steps_scratch"] > 1
    assert m["transfer_steps"] == 1.0 and m["transfer_steps_curriculum"] == m["transfer_steps_scratch"]


def test_a_cue_blind_model_scores_the_random_control_as_high_as_the_composed_cue():
    """The control catches a model that ignores the rule cue (a GRU reading only the stimulus
    inputs): every cue gives the same prediction, so composed = random = own."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = switchbench.run("cognitive-switch", "test_compose:cue_blind", seed=0, cache=False, progress=False,
                            **TINY)
    finally:
        torch.set_num_threads(threads)
    t = r.cue_probes[r.cue_probes["task"] == 2]
    assert t["norm_loss"].nunique() == 1
    assert r.metrics["rule_composition_perf"] == r.metrics["rule_composition_random"] or math.isnan(
        r.metrics["rule_composition_perf"])


def cue_blind(spec, seed, hidden=8):
    """A GRU that zeroes the rule-cue inputs (the last n_tasks columns) before reading them."""
    net = models.get("gru").build(spec, seed, hidden=hidden)

    class Blind:
        def predict(self, x):
            return net.predict(_blind(x, spec.n_tasks))

        def learn(self, x, y):
            return net.learn(_blind(x, spec.n_tasks), y)

    return Blind()


def _blind(x, n):
    x = x.clone()
    x[..., -n:] = 0
    return x


def test_cli_bad_cue_expression_is_one_line_and_exit_2(capsys):
    from switchbench.benchmark.cli import main

    code = main(["run", "--paradigm", "cognitive-switch", "--model", "leaky-rnn", "--set", "compose={'anti': 'go +'}",
                 "--set", "pool_size=8", "--set", "eval_pool_size=8", "--set", "pool_cache=False"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert err == "switchbench: error: cannot read rule-cue expression 'go +' at '+': expected a sign and a task name; " \
                  "tasks: yang19.go-v0, yang19.anti-v0"
