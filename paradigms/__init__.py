"""Paradigms: Gymnasium environments registered on import as ``switchbench/<Name>-v0``.

Each has a short command-line name (``PARADIGMS``) beside its Gymnasium id.

``gymnasium.make`` wraps each in a ``TimeLimit`` at its curriculum length (``n_blocks *
block_size`` for every paradigm here), so ``env.spec.max_episode_steps`` is the episode's
length. Its last step returns ``terminated=True`` (the curriculum is over; ``TimeLimit`` sets
``truncated`` with it), never ``truncated`` alone.

>>> import gymnasium, switchbench.paradigms
>>> env = gymnasium.make("switchbench/BlockedLinear-v0", n_blocks=4, block_size=50)
>>> env.unwrapped.task_spec.n_tasks, env.spec.max_episode_steps
(2, 200)
"""
import importlib
from functools import partial

from gymnasium.envs.registration import register, registry
from gymnasium.wrappers import TimeLimit

from switchbench.paradigms.base import SwitchEnv, TaskSpec
from switchbench.paradigms.schedules import Schedule, make_schedule

#: short command-line name -> (Gymnasium id, "module:class" entry point)
PARADIGMS = {
    "blocked-linear": ("switchbench/BlockedLinear-v0", "switchbench.paradigms.linear:BlockedLinearEnv"),
    "digit-switch": ("switchbench/DigitSwitch-v0", "switchbench.paradigms.digits:DigitSwitchEnv"),
    "cued-switch": ("switchbench/CuedSwitch-v0", "switchbench.paradigms.cued:CuedSwitchEnv"),
    "cognitive-switch": ("switchbench/CognitiveSwitch-v0", "switchbench.paradigms.cognitive:CognitiveSwitchEnv"),
    "cognitive-compose": ("switchbench/CognitiveCompose-v0", "switchbench.paradigms.cognitive:CognitiveComposeEnv"),
}


def make_env(entry: str, **kwargs):
    """The Gymnasium entry point of a paradigm (``"module:class"``): the environment under a
    ``TimeLimit`` at its curriculum length where that is known (``env.episode_steps``)."""
    module, _, cls = entry.partition(":")
    env = getattr(importlib.import_module(module), cls)(**kwargs)
    return TimeLimit(env, env.episode_steps) if env.episode_steps else env


for _short, (_id, _entry) in PARADIGMS.items():
    if _id not in registry:
        register(id=_id, entry_point=partial(make_env, _entry))

__all__ = ["PARADIGMS", "SwitchEnv", "TaskSpec", "Schedule", "make_schedule"]
