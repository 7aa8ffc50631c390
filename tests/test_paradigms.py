"""Every registered switchbench environment: Gymnasium's checker, determinism, the stepping
protocol; and the blocked linear paradigm's teachers and schedules."""
import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.envs.registration import registry
from gymnasium.utils.env_checker import check_env

import switchbench
from switchbench.errors import SwitchbenchError
from switchbench.losses import task_loss
from switchbench.paradigms import PARADIGMS, make_schedule, resolve

#: every registered paradigm's small configurations (its class's ``SMALL_SETTINGS``), by
#: "<gym id>" or "<gym id> (label)", in the order of ``PARADIGMS``: no list to keep here
CLASSES = {gym_id: resolve(short)[2] for short, (gym_id, _) in PARADIGMS.items()}
SMALL = {gym_id + (f" ({label})" if label else ""): kw
         for gym_id, cls in CLASSES.items() for label, kw in vars(cls).get("SMALL_SETTINGS", {}).items()}
ENV_IDS = sorted(i for i in registry if i.startswith("switchbench/"))
CONFIGS = sorted(SMALL)   # "<gym id>" or "<gym id> (variant)": every registered env, some in several modes


def make(config, **kw):
    return gymnasium.make(config.split(" ")[0], **{**SMALL[config], **kw})


def test_every_paradigm_is_registered_and_listed():
    assert ENV_IDS == sorted(v[0] for v in PARADIGMS.values())
    missing = [cls.__name__ for cls in CLASSES.values() if not vars(cls).get("SMALL_SETTINGS")]
    assert not missing, f"declare SMALL_SETTINGS (small configurations for the tests) on {', '.join(missing)}"


@pytest.mark.parametrize("env_id", CONFIGS)
def test_check_env(env_id):
    check_env(make(env_id).unwrapped, skip_render_check=True)


def rollout(env_id, seed):
    env = make(env_id)
    obs, info = env.reset(seed=seed)
    out = [obs.copy()]
    terminated = False
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, np.float32))
        out += [obs.copy(), np.float64(reward), info["target"].copy(), info["task"], info["switch"]]
    return out


@pytest.mark.parametrize("env_id", CONFIGS)
def test_same_seed_same_stream_bit_for_bit(env_id):
    a, b, c = rollout(env_id, 3), rollout(env_id, 3), rollout(env_id, 4)
    assert len(a) == len(b)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("env_id", CONFIGS)
def test_targets_arrive_only_after_the_prediction(env_id):
    env = make(env_id).unwrapped
    x0, info = env.reset(seed=0)
    assert "target" not in info and info["block"] == 0 and info["switch"] is False and info["phase"] == "train"
    x1, reward, terminated, truncated, info0 = env.step(np.zeros(env.action_space.shape, np.float32))
    assert info0["step"] == 0 and "target" in info0 and not terminated and not truncated
    # the reward is minus the task loss of the prediction for x0's target
    zero = torch.zeros(env.action_space.shape, dtype=torch.float64)
    expected = float(task_loss(zero, torch.as_tensor(info0["target"]), env.task_spec.loss))
    if env.task_spec.loss == "mse":
        assert expected == pytest.approx(0.5 * np.mean(np.sum(info0["target"].astype(np.float64) ** 2, axis=-1)))
    else:   # zero logits: ln(number of classes) on every unmasked target
        assert expected == pytest.approx(np.log(env.task_spec.output_size))
    assert reward == pytest.approx(-expected, rel=1e-5)
    n_steps = env.curriculum.n_steps
    for _ in range(n_steps - 1):
        _, _, terminated, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert terminated and info["step"] == n_steps - 1
    with pytest.raises(SwitchbenchError):
        env.step(np.zeros(env.action_space.shape, np.float32))


def test_wrong_prediction_shape_is_a_clear_error():
    env = gymnasium.make("switchbench/BlockedLinear-v0", n_blocks=2, block_size=2).unwrapped
    env.reset(seed=0)
    with pytest.raises(SwitchbenchError, match=r"shape \(200, 9\), expected \(200, 10\)"):
        env.step(np.zeros((200, 9), np.float32))


def test_orthogonal_teachers_and_null_loss():
    env = gymnasium.make("switchbench/BlockedLinear-v0").unwrapped
    W = env.teachers
    assert W.shape == (2, 10, 20)
    rows = W.reshape(20, 20) * np.sqrt(20)
    np.testing.assert_allclose(rows @ rows.T, np.eye(20), atol=1e-12)   # orthonormal rows, orthogonal row spaces
    assert env.task_spec.null_loss == pytest.approx((0.25, 0.25))
    x, y = env.eval_batch(1, 20000, seed=0)
    assert 0.5 * np.mean(np.sum(y.astype(np.float64) ** 2, axis=1)) == pytest.approx(0.25, rel=0.02)
    np.testing.assert_allclose(y, x @ W[1].T, rtol=1e-4, atol=1e-6)


def test_teachers_fixed_by_teacher_seed_not_by_reset_seed():
    make = lambda **kw: gymnasium.make("switchbench/BlockedLinear-v0", **kw).unwrapped  # noqa: E731
    a, b = make(), make()
    a.reset(seed=1), b.reset(seed=2)
    np.testing.assert_array_equal(a.teachers, b.teachers)
    assert not np.allclose(make(teacher_seed=5).teachers, a.teachers)
    iid = make(teachers="iid", n_tasks=3, output_size=10).teachers
    assert iid.shape == (3, 10, 20) and abs(iid.std() * np.sqrt(20) - 1) < 0.1


def test_cue_appends_the_task_one_hot():
    env = gymnasium.make("switchbench/BlockedLinear-v0", cue=True, n_blocks=2, block_size=1).unwrapped
    x, info = env.reset(seed=0)
    assert env.task_spec.input_size == 22 and x.shape == (200, 22)
    np.testing.assert_array_equal(x[:, 20:], np.tile([1, 0], (200, 1)))
    x, *_ = env.step(np.zeros((200, 10), np.float32))
    np.testing.assert_array_equal(x[:, 20:], np.tile([0, 1], (200, 1)))


def test_schedules():
    s = make_schedule("blocked", 3, 4, 2)
    assert s.task.tolist() == [0, 0, 1, 1, 2, 2, 0, 0] and s.block_tasks() == [0, 1, 2, 0]
    s = make_schedule([1, 1, 0], 2, 99, 3)
    assert s.task.tolist() == [1, 1, 1, 1, 1, 1, 0, 0, 0] and s.switch.tolist() == [0, 0, 0, 1, 0, 0, 1, 0, 0]
    a = make_schedule("interleaved", 2, 5, 100, np.random.default_rng(0))
    b = make_schedule("interleaved", 2, 5, 100, np.random.default_rng(0))
    assert np.array_equal(a.task, b.task) and 0.4 < a.task.mean() < 0.6
    assert set(np.diff(a.task)) == {-1, 0, 1}   # tasks change within blocks


@pytest.mark.parametrize("kwargs, message", [
    ({"schedule": "random-ish"}, "unknown schedule"),
    ({"schedule": [0, 2]}, "must lie in 0..1"),
    ({"block_size": 0}, "block_size must be a positive integer"),
    ({"n_tasks": 3}, "orthogonal teachers need"),
    ({"teachers": "sparse"}, "unknown teachers"),
    ({"batch_size": -1}, "batch_size must be"),
])
def test_bad_configuration_is_a_clear_error(kwargs, message):
    with pytest.raises(SwitchbenchError, match=message):
        gymnasium.make("switchbench/BlockedLinear-v0", **kwargs)


def test_import_registers_on_package_import():
    assert "switchbench/BlockedLinear-v0" in registry and switchbench.paradigms.PARADIGMS
