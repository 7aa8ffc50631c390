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

The spec alone, without building the data (:func:`task_spec`; ``null_loss`` is None there,
the one field computed from the data):

>>> spec = switchbench.paradigms.task_spec("cognitive-switch", envs="yang19-pair", dt=100)
>>> spec.input_size, spec.output_size, spec.task_names, spec.null_loss
(35, 17, ('yang19.go', 'yang19.anti'), None)
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


def resolve(name: str) -> tuple[str, str, type]:
    """``(short name, Gymnasium id, environment class)`` of a short name or a Gymnasium id."""
    for short, (gym_id, entry) in PARADIGMS.items():
        if name in (short, gym_id):
            module, _, cls = entry.partition(":")
            return short, gym_id, getattr(importlib.import_module(module), cls)
    from switchbench.errors import unknown

    raise unknown("paradigm", name, PARADIGMS)


def task_spec(name: str, **params) -> TaskSpec:
    """The :class:`TaskSpec` of paradigm ``name`` (short name or Gymnasium id) with ``params``,
    without building its data (``EnvClass.task_spec_for``): shapes, kinds, task names and
    schedule as the built environment's, ``null_loss=None``."""
    return resolve(name)[2].task_spec_for(**params)


def make_env(entry: str, **kwargs):
    """The Gymnasium entry point of a paradigm (``"module:class"``): the environment under a
    ``TimeLimit`` at its curriculum length where that is known (``env.episode_steps``)."""
    module, _, cls = entry.partition(":")
    env = getattr(importlib.import_module(module), cls)(**kwargs)
    return TimeLimit(env, env.episode_steps) if env.episode_steps else env


for _short, (_id, _entry) in PARADIGMS.items():
    if _id not in registry:
        register(id=_id, entry_point=partial(make_env, _entry))

__all__ = ["PARADIGMS", "SwitchEnv", "TaskSpec", "Schedule", "make_schedule", "resolve", "task_spec"]
