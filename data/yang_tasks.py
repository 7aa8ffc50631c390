"""Yang et al.'s go / anti family with their trials' timing (``timing="yang"`` of the cognitive
paradigm, :func:`switchbench.data.tasksets.make_task`).

neurogym's yang19 go / anti tasks are not Yang et al.'s (their code: gyyang/multitask at
817e23d, ``task.py``: ``fdgo_``, ``reactgo_``, ``delaygo_``). Here each of the six keeps
neurogym's observation and action spaces (fixation + a ring of ``dim_ring`` directions in each
of two modalities, the modality drawn per trial; classes ``0`` fixation and ``1..dim_ring``)
and neurogym's stimulus (a Gaussian bump at one of the ring's directions), and takes Yang's
epochs (ms; drawn per trial, floored to whole time steps as Yang's ``int(t / dt)``):

============  ===========================  ==============================================
task (Yang)   epochs                       inputs on
============  ===========================  ==============================================
go (Go),      fixation U(300, 700),        fixation: until the response;
anti (Anti)   stimulus U(500, 1500),       stimulus: from its onset **through the
              decision 500                 response** (neurogym: off at the response)
rtgo,         fixation U(500, 2500),       fixation: **the whole trial** (respond to the
rtanti (RT)   decision 500                 stimulus, not to the fixation's offset);
                                           stimulus: through the response
dlygo,        fixation {300, 500, 700},    fixation: until the response; stimulus: its
dlyanti       stimulus {200, 400, 600},    epoch only
(Dly)         delay {200, 400, 800, 1600},
              decision 500
============  ===========================  ==============================================

neurogym's (2.3.1): go / anti fixation 500, stimulus 500, decision 500 (stimulus off in the
decision); rtgo / rtanti fixation 500, then the stimulus replaces the fixation input for 500;
dlygo / dlyanti as go with a 500 ms delay; all fixed. Targets as neurogym's: fixation (class
0) until the decision, the response direction (Anti: opposite the stimulus) in it. Still not
Yang's: the stimulus sits at one of the ring's 16 directions (Yang: anywhere on the circle,
rings of 32 units), each trial draws its own epochs (Yang: one draw per batch), and no input
noise (Yang adds it in the network).

Importing this module imports neurogym (seconds).
"""
from __future__ import annotations

import numpy as np
from neurogym.envs.collections.yang19 import _gaussianbump, _MultiModalityStimulus, _Reach
from neurogym.utils import scheduler
from neurogym.wrappers.block import ScheduleEnvs

#: each timed task's epochs (neurogym timing specs, ms) and the periods its inputs are on in
EPOCHS = {
    "go": {"fixation": ("uniform", (300, 700)), "stimulus": ("uniform", (500, 1500)), "decision": 500},
    "rt": {"fixation": ("uniform", (500, 2500)), "decision": 500},
    "dly": {"fixation": ("choice", [300, 500, 700]), "stimulus": ("choice", [200, 400, 600]),
            "delay": ("choice", [200, 400, 800, 1600]), "decision": 500},
}
_FIXATION_ON = {"go": ["fixation", "stimulus"], "rt": ["fixation", "decision"], "dly": ["fixation", "stimulus", "delay"]}
_STIMULUS_ON = {"go": ["stimulus", "decision"], "rt": ["decision"], "dly": ["stimulus"]}

#: task name -> (epochs, anti), for the neurogym ids ``yang19.<name>-v0`` that ``timing="yang"`` changes
FAMILY = {"go": ("go", False), "anti": ("go", True), "rtgo": ("rt", False), "rtanti": ("rt", True),
          "dlygo": ("dly", False), "dlyanti": ("dly", True)}


class YangReach(_Reach):
    """neurogym's yang19 reach task (one modality) with Yang et al.'s epochs (module docstring)."""

    def __init__(self, epochs: str, anti: bool, dt: float = 100, dim_ring: int = 16, rewards=None) -> None:
        super().__init__(dt=dt, anti=anti, rewards=rewards, dim_ring=dim_ring, reaction=epochs == "rt")
        self.epochs = epochs
        self.timing = dict(EPOCHS[epochs])

    def _new_trial(self, **kwargs):
        trial = {"ground_truth": self.rng.choice(self.choices), "anti": self.anti, **kwargs}
        target = trial["ground_truth"]
        theta = np.mod(self.theta[target] + np.pi, 2 * np.pi) if trial["anti"] else self.theta[target]
        self.add_period(list(self.timing))
        self.add_ob(1, period=_FIXATION_ON[self.epochs], where="fixation")
        self.add_ob(_gaussianbump(theta, self.theta, 1), period=_STIMULUS_ON[self.epochs], where="stimulus")
        self.set_groundtruth(target, period="decision", where="choice")
        return trial


def make_yang_task(env_id: str, dt: float = 100, dim_ring: int = 16, rewards=None):
    """The task ``env_id`` (``yang19.<name>-v0``, ``name`` in :data:`FAMILY`) with Yang's timing,
    in both modalities (one drawn per trial), as neurogym builds its yang19 reach tasks."""
    epochs, anti = FAMILY[env_id.removeprefix("yang19.").removesuffix("-v0")]
    envs = [_MultiModalityStimulus(YangReach(epochs, anti, dt=dt, dim_ring=dim_ring, rewards=rewards),
                                   modality=m, n_modality=2) for m in (0, 1)]
    return ScheduleEnvs(envs, scheduler.RandomSchedule(len(envs)), env_input=False)
