"""Paradigms: Gymnasium environments registered on import as ``switchbench/<Name>-v0``.

Each has a short command-line name (``PARADIGMS``) beside its Gymnasium id.

>>> import gymnasium, switchbench.paradigms
>>> gymnasium.make("switchbench/BlockedLinear-v0").unwrapped.task_spec.n_tasks
2
"""
from gymnasium.envs.registration import register, registry

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

for _short, (_id, _entry) in PARADIGMS.items():
    if _id not in registry:
        register(id=_id, entry_point=_entry)

__all__ = ["PARADIGMS", "SwitchEnv", "TaskSpec", "Schedule", "make_schedule"]
