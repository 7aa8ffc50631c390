"""The template paradigm (paradigms/_template.py) works as a registered paradigm would: it
passes Gymnasium's checker, its spec without data matches the built one, and a model learns
it through switchbench.run, the same for the same seed."""
import gymnasium
import numpy as np
import pytest
from gymnasium.envs.registration import register, registry
from gymnasium.utils.env_checker import check_env

import switchbench
from switchbench import paradigms
from switchbench.paradigms._template import TemplateEnv

GYM_ID = "switchbench/Template-v0"
SMALL = {"n_blocks": 4, "block_size": 150, "batch_size": 16}


@pytest.fixture
def registered(monkeypatch):
    """The template as a copy would be: a row of PARADIGMS and its Gymnasium id (removed after)."""
    monkeypatch.setitem(paradigms.PARADIGMS, "template", (GYM_ID, "switchbench.paradigms._template:TemplateEnv"))
    register(id=GYM_ID, entry_point=lambda **kw: paradigms.make_env("switchbench.paradigms._template:TemplateEnv",
                                                                   **kw))
    yield
    del registry[GYM_ID]


def test_the_template_passes_gymnasiums_checker_and_its_spec_needs_no_data():
    env = TemplateEnv(**SMALL, cue=True)
    check_env(env, skip_render_check=True)
    assert TemplateEnv.task_spec_for(**SMALL, cue=True) == env.task_spec.__class__(
        **{**env.task_spec.__dict__, "null_loss": None})
    x, info = env.reset(seed=1)
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    w = env.w[:, 0]
    assert np.allclose(info["target"][:, 0], (1 if info["task"] == 0 else -1) * x[:, :-2] @ w, atol=1e-6)
    assert x[:, -2:].tolist() == [[1.0, 0.0]] * len(x)          # the cue of task A


@pytest.mark.usefixtures("registered", "one_thread")
def test_a_model_learns_the_template_paradigm_deterministically():
    a = switchbench.run("template", "linear", seed=0, cache=False, progress=False, tau_w=0.01, **SMALL)   # lr 0.1
    b = switchbench.run("template", "linear", seed=0, cache=False, progress=False, tau_w=0.01, **SMALL)
    assert a.metrics == {**b.metrics, "wall_ms_per_step": a.metrics["wall_ms_per_step"]}
    first = a.log[a.log["block"] == 0]["norm_loss"]
    assert first.iloc[-20:].mean() < 0.5 * first.iloc[:20].mean()     # it learns within a block
    assert a.R0.shape == (SMALL["n_blocks"], 2)
