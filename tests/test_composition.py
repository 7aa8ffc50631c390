"""Task and subtask composition: the composed paradigms, the unit-wise gated network and the
composition metric on cases with known answers."""
import gymnasium
import numpy as np
import pandas as pd
import pytest
import torch

import switchbench
from switchbench import models
from switchbench.benchmark import metrics as M
from switchbench.errors import SwitchbenchError
from switchbench.models.gated_linear import l2_gate_penalty, l2_gate_penalty_grad
from switchbench.paradigms.base import TaskSpec

COMPOSE = dict(n_tasks=3, output_size=6, n_blocks=8, block_size=5)


def make(**kw):
    return gymnasium.make("switchbench/BlockedLinear-v0", **{**COMPOSE, **kw}).unwrapped


def test_task_composition_schedule_teachers_and_phases():
    env = make(composition="task", mix=0.3)
    A, B, C = env.teachers
    np.testing.assert_allclose(env.task_teachers[3], 0.3 * A + 0.7 * B)
    np.testing.assert_allclose(env.task_teachers[5], 0.3 * C + 0.7 * A)
    assert env.task_spec.n_tasks == 6 and env.task_spec.n_base_tasks == 3
    assert env.task_spec.task_names == ("A", "B", "C", "AB", "BC", "CA")
    env.reset(seed=0)
    # the paper's code: int(0.75 * 7) = 5 base blocks, then composed task (block mod 3): CA, AB, BC
    assert env.curriculum.block_tasks() == [0, 1, 2, 0, 1, 5, 3, 4]
    assert env.curriculum.phases == ("train",) * 5 + ("compose",) * 3
    paper = make(composition="task", n_blocks=32)            # 23 base blocks; the first composed one is CA
    paper.reset(seed=0)
    assert paper.curriculum.block_tasks()[22:26] == [1, 5, 3, 4] and paper.curriculum.phases.count("train") == 23
    x, y = env.eval_batch(3, 50, seed=1)
    np.testing.assert_allclose(y, x @ (0.3 * A + 0.7 * B).T.astype(np.float32), rtol=1e-4, atol=1e-6)


def test_subtask_composition_takes_even_rows_of_one_teacher_and_odd_rows_of_the_next():
    env = make(composition="subtask")
    A, B, _ = env.teachers
    AB = env.task_teachers[3]
    np.testing.assert_array_equal(AB[0::2], A[0::2])
    np.testing.assert_array_equal(AB[1::2], B[1::2])


def test_novel_probe_tasks_have_the_shape_and_norm_but_not_the_structure():
    comp, novel = make(composition="task"), make(composition="task", probe="novel")
    np.testing.assert_array_equal(comp.teachers, novel.teachers)       # same base tasks
    for c, n in zip(comp.task_teachers[3:], novel.task_teachers[3:]):
        assert np.linalg.norm(n) == pytest.approx(np.linalg.norm(c))
        assert abs(np.sum(n * c)) / np.linalg.norm(n) / np.linalg.norm(c) < 0.5
    assert novel.task_spec.null_loss[3:] == pytest.approx(comp.task_spec.null_loss[3:])


@pytest.mark.parametrize("kw, message", [
    ({"composition": "partial"}, "unknown composition 'partial'"),
    ({"composition": "task", "schedule": "interleaved"}, "composition needs schedule='blocked'"),
    ({"composition": "task", "probe": "other"}, "unknown probe 'other'"),
    ({"composition": "task", "n_blocks": 1}, "leave no training or no composed block"),
])
def test_bad_composition_settings_are_clear_errors(kw, message):
    with pytest.raises(SwitchbenchError, match=message):
        make(**kw)


@pytest.mark.parametrize("weight", [10.0, 5.0])
@pytest.mark.parametrize("c", [[[0.5, 0.2], [0.4, -0.1]], [[1.0, 1.0], [0.0, 0.0]]])
def test_unitwise_gated_step_is_gradient_descent(c, weight):
    spec = TaskSpec("toy", 5, 2, 2, "mse", False, (1.0, 1.0), "blocked", 16)
    net = models.get("gated-linear-unitwise").build(spec, seed=0, dtype="float64", w_init=1.0,
                                                    manifold_weight=weight)
    net.c = torch.tensor(c, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 5, generator=g, dtype=torch.float64), torch.randn(16, 2, generator=g, dtype=torch.float64)
    W, cc = net.W.clone().requires_grad_(), net.c.clone().requires_grad_()
    task = 0.5 * ((cc[:, None, :] * (x @ W.transpose(1, 2))).sum(0) - y).square().sum(1).mean()
    gW, gc = torch.autograd.grad(task + 0.025 * l2_gate_penalty(cc, weight), (W, cc))
    assert net.learn(x, y) == pytest.approx(task.item())
    torch.testing.assert_close(net.W, W.detach() - 0.01 / 0.2 * gW)
    torch.testing.assert_close(net.c, cc.detach() - 0.01 / 0.005 * gc)
    torch.testing.assert_close(l2_gate_penalty_grad(cc.detach(), weight),
                               torch.autograd.grad(l2_gate_penalty(cc, weight), cc)[0])


def test_gated_models_take_one_path_per_base_task():
    spec = make(composition="task").task_spec
    assert models.get("gated-linear").build(spec, 0).W.shape[0] == 3
    assert models.get("gated-linear-unitwise").build(spec, 0).c.shape == (3, 6)


@models.register("test-perfect", privileged=True)
def perfect(spec, seed):
    """A privileged model that knows every task's teacher: no loss from the first step."""
    env = gymnasium.make("switchbench/BlockedLinear-v0", **{**COMPOSE, "composition": "task"}).unwrapped
    net = models.get("oracle-gates").factory(spec, seed)
    net.W = torch.as_tensor(env.task_teachers, dtype=torch.float32)
    net.lr_w = 0.0
    return net


def silent(spec, seed):
    """Predicts zero and never learns: normalised loss 1 throughout."""
    return models.get("linear").factory(spec, seed, w_init=0.0, dt=0.0)


def test_composition_metric_known_answers():
    kw = dict(**COMPOSE, composition="task", cache=False, progress=False)
    oracle = switchbench.run("blocked-linear", "test_composition:perfect", **kw)
    comp = M.composition(oracle.log, k=3)
    assert comp["task"].tolist() == [5, 3, 4] and comp["block"].tolist() == [5, 6, 7]
    assert comp["loss_k"].max() < 1e-6 and comp["steps"].tolist() == [0, 0, 0]
    zero = switchbench.run("blocked-linear", "test_composition:silent", **kw)
    comp = M.composition(zero.log, k=3)
    assert comp["loss_k"].tolist() == pytest.approx([1.0, 1.0, 1.0], rel=0.2)
    assert comp["censored"].all() and comp["steps"].tolist() == [5, 5, 5]
    assert zero.metrics["composition_loss"] == pytest.approx(M.composition(zero.log, k=100)["loss_k"].mean())
    assert M.composition_score(M.composition(oracle.log), comp) < 1e-6


def test_composition_metric_skips_tasks_seen_in_training():
    log = pd.DataFrame({"block": [0, 1, 2], "task": [0, 0, 1], "norm_loss": [0.5, 0.2, 0.4],
                        "phase": ["train", "compose", "compose"]})
    assert M.composition(log, k=1)["task"].tolist() == [1]
