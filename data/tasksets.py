"""Named sets of neurogym tasks and the seeded neurogym trial maker, shared by the cognitive
paradigm (its trial pools) and the models that pretrain on a task corpus
(``modular-primitives``), so that neither imports the other. neurogym itself is imported
only when trials are made (seconds: it imports torch).

>>> from switchbench.data.tasksets import NAMED_SETS
>>> len(NAMED_SETS["yang19"]), NAMED_SETS["yang19-pair"]
(20, ('yang19.go-v0', 'yang19.anti-v0'))
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from switchbench.errors import SwitchbenchError
from switchbench.losses import IGNORE

_YANG19 = ("go", "rtgo", "dlygo", "anti", "rtanti", "dlyanti", "dm1", "dm2", "ctxdm1", "ctxdm2", "multidm",
           "dlydm1", "dlydm2", "ctxdlydm1", "ctxdlydm2", "multidlydm", "dms", "dnms", "dmc", "dnmc")
_MOLAP9 = ("go", "dlygo", "anti", "dlyanti", "dlydm1", "dlydm2", "ctxdlydm1", "ctxdlydm2", "multidlydm")


def _yang(*names: str) -> tuple[str, ...]:
    return tuple(f"yang19.{n}-v0" for n in names)


#: named task sets -> neurogym env ids
NAMED_SETS = {
    "yang19": _yang(*_YANG19),
    "molap9": _yang(*_MOLAP9),
    "yang19-pair": _yang("go", "anti"),
    "molap9-pair": _yang("dlygo", "dlyanti"),
    "dm-pair": _yang("dm1", "dm2"),
}


def import_neurogym():
    """Import neurogym (seconds: it imports torch) and register its envs with Gymnasium."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import neurogym
    return neurogym


def neurogym_top(env: gym.Env):
    """The outermost neurogym object under Gymnasium's wrappers (its ``seed`` seeds it all)."""
    from neurogym.core import TrialEnv, TrialWrapper

    e = env
    while not isinstance(e, (TrialEnv, TrialWrapper)):
        if not isinstance(e, gym.Wrapper):
            raise SwitchbenchError(f"{env.spec.id if env.spec else env!r} is not a neurogym trial environment")
        e = e.env
    return e


#: trial timings: neurogym's yang19 tasks as they are, or Yang et al.'s go / anti family
#: (:mod:`switchbench.data.yang_tasks`: Go / Anti stimulus on through the response, RT fixation
#: on throughout, random epochs)
TIMINGS = ("neurogym", "yang")
#: the tasks ``timing="yang"`` changes (the rest keep neurogym's trials)
YANG_TIMED = _yang("go", "anti", "rtgo", "rtanti", "dlygo", "dlyanti")


def check_timing(timing) -> str:
    if timing not in TIMINGS:
        raise SwitchbenchError(f"timing must be one of {', '.join(map(repr, TIMINGS))}, got {timing!r}")
    return timing


def task_timing(env_id: str, timing: str) -> str:
    """The timing ``env_id``'s trials get under ``timing``: ``"yang"`` only for :data:`YANG_TIMED`."""
    return "yang" if check_timing(timing) == "yang" and env_id in YANG_TIMED else "neurogym"


def make_task(env_id: str, kwargs: Mapping[str, Any], timing: str = "neurogym"):
    """Build one neurogym task (with Yang et al.'s timing where ``timing="yang"`` changes it:
    :func:`task_timing`); a bad id or bad kwargs is one clear line."""
    import_neurogym()
    from gymnasium.envs.registration import registry

    from neurogym.envs.registration import ALL_EXTENDED_ENVS

    if env_id not in registry or env_id not in ALL_EXTENDED_ENVS:
        raise SwitchbenchError(f"unknown neurogym env {env_id!r}; valid: named sets {', '.join(NAMED_SETS)} or "
                               f"ids {', '.join(sorted(ALL_EXTENDED_ENVS))}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if task_timing(env_id, timing) == "yang":
                from switchbench.data.yang_tasks import make_yang_task

                env = make_yang_task(env_id, **kwargs)
            else:
                env = gym.make(env_id, disable_env_checker=True, **kwargs)
    except Exception as e:  # noqa: BLE001 - neurogym raises anything on bad kwargs
        msg = str(e).splitlines()[0] if str(e) else ""
        yang = " (with timing='yang' it takes dt, dim_ring and rewards)" if task_timing(env_id, timing) == "yang" else ""
        raise SwitchbenchError(f"neurogym env {env_id!r} rejected env_kwargs {dict(kwargs)!r}{yang}: "
                               f"{type(e).__name__}: {msg}") from None
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise SwitchbenchError(f"neurogym env {env_id!r} has action space {env.action_space}; CognitiveSwitch "
                               "needs a discrete one (classification targets)")
    if len(env.observation_space.shape or ()) != 1:
        raise SwitchbenchError(f"neurogym env {env_id!r} has observations of shape {env.observation_space.shape}; "
                               "CognitiveSwitch needs one-dimensional ones")
    return env


def generate_trials(env_id: str, kwargs: Mapping[str, Any], seed: int, n: int,
                    timing: str = "neurogym") -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` trials ``(ob (time, obs), gt (time,))`` of one task (``timing`` as :func:`make_task`),
    a function of ``seed``.

    neurogym 2.3.1: ``reset(seed=)`` leaves the task's ``rng`` unseeded, so the outermost
    neurogym object's ``seed(seed)`` is called first; trials are copied out of the task.
    """
    env = make_task(env_id, kwargs, timing)
    top = neurogym_top(env)
    trials = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            top.seed(int(seed))
            env.reset()
            for _ in range(n):
                top.new_trial()
                task = top.unwrapped
                ob = np.array(task.ob, dtype=np.float32, copy=True)
                gt = np.array(task.gt, copy=True)
                if gt.ndim != 1 or len(gt) != len(ob):
                    raise SwitchbenchError(f"neurogym env {env_id!r}: ground truth of shape {gt.shape} for "
                                           f"observations {ob.shape}; need one action per time step")
                trials.append((ob, gt.astype(np.int64)))
    except SwitchbenchError:
        raise
    except Exception as e:  # noqa: BLE001
        msg = str(e).splitlines()[0] if str(e) else ""
        raise SwitchbenchError(f"neurogym env {env_id!r} failed to make trials: {type(e).__name__}: {msg}") from None
    return trials


def pack_trials(trials) -> dict[str, np.ndarray]:
    """Trials ``(ob, gt)`` end-aligned in one array each: ``x (n, T, obs)`` zero-padded at the start,
    ``y (n, T)`` ``-100`` there, and each trial's length, so every response is at the last step."""
    lengths = np.array([len(gt) for _, gt in trials], dtype=np.int64)
    T, F = int(lengths.max()), trials[0][0].shape[1]
    x = np.zeros((len(trials), T, F), np.float32)
    y = np.full((len(trials), T), IGNORE, np.int64)
    for i, (ob, gt) in enumerate(trials):          # end-aligned: the response is at the last step
        x[i, T - len(gt):] = ob
        y[i, T - len(gt):] = gt
    return {"x": x, "y": y, "lengths": lengths}
