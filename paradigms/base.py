"""What every switchbench paradigm shares: the task description and the stepping protocol.

One environment step is one learning step:

- ``reset(seed=)`` returns the first batch ``x_0`` and an ``info`` with its ``task``,
  ``block``, ``switch`` and ``phase`` (no target yet);
- ``step(prediction of x_t)`` returns the next batch, ``reward = -task loss`` of the
  prediction, and the ``info`` of ``x_t`` now with its ``target``;
- the whole curriculum is one episode: ``terminated`` is True after its last step.

A paradigm subclasses :class:`SwitchEnv`, sets ``self.task_spec`` and implements
``_draw(task, rng, n) -> (x, y)`` (numpy arrays, without the cue).

**The spec without the data**: ``EnvClass.task_spec_for(**params)`` (or
:func:`switchbench.paradigms.task_spec` by name) is the ``TaskSpec`` that ``EnvClass(**params)``
would have, with ``null_loss=None`` (the one field computed from the data), the parameters
checked as the constructor checks them, but no data built (teachers, digit split, trial
pools). A paradigm supports it by setting ``self.task_spec`` (``null_loss=None``) before it
builds its data and returning there when ``self._spec_only`` is set; one that does not is
built in full (correct, only slower). Paradigms with their own
trial structure may also override ``_make_curriculum(rng)`` (the per-step schedule) and
``_load(t)`` (the batch of step ``t``; what it puts in ``self._extra`` joins that step's
``info`` together with the target).

**Drawing ahead**: a step's batch never depends on earlier predictions, so a run of steps
can be drawn at once: ``draw_steps(n)`` gives the next ``n`` steps' batches, targets and
infos (:class:`Steps`) exactly as ``n`` calls of ``step()`` would (the same stream, the same
values) and advances the episode as they would. The run loop uses it to move a block of
batches to the device at once. By default it calls ``_load`` step by step; a paradigm makes
it fast by overriding ``_draw_steps(start, stop)`` with one draw of the whole run (numpy
Generators fill arrays in order: one ``rng.standard_normal((m * B, d))`` equals ``m``
successive ``(B, d)`` draws). A paradigm whose batches respond to the predictions sets
``draws_ahead = False``; so may a caller on an instance, to force the loop through
``step()`` (the numbers are the same).

**Optional probes** (after the curriculum; the runner calls them for every paradigm, and
the defaults here offer none): ``cue_probes(seed)`` lists tasks to evaluate under other
rule cues (:class:`CueProbe`; ``eval_batch_cued`` makes their inputs) and
``transfer_probe()`` a :class:`TransferProbe` (tasks kept out of the curriculum, learned
afterwards for a fixed budget from ``train_batches``). ``CognitiveSwitch-v0`` has both.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from switchbench.errors import SwitchbenchError
from switchbench.paradigms.schedules import Schedule, make_schedule


@dataclass(frozen=True)
class TaskSpec:
    """A paradigm's own description (``env.unwrapped.task_spec``), read by models
    (``make(spec, seed)``) and the runner.

    Attributes:
        name: the Gymnasium id, e.g. ``"switchbench/BlockedLinear-v0"``.
        input_size: features per sample, the task cue included (``cue=True`` adds ``n_tasks``).
        output_size: outputs per sample (regression) or classes (classification: the
            prediction holds one logit per class).
        n_tasks: number of tasks, ids ``0..n_tasks-1`` (composed tasks included).
        loss: the task loss, ``"mse"`` (half the squared error summed over outputs, averaged
            over samples) or ``"cross_entropy"`` (targets are class indices, ``-100`` masked).
        sequence: True when batches are ``(time, batch, features)``; else ``(batch, features)``.
        null_loss: one per task, the loss of the best constant predictor (zero output for
            regression, class frequencies for classification); normalised loss = loss / this.
            It is computed from the data: None in a spec from ``task_spec_for`` (no data built).
        schedule: ``"blocked"``, ``"interleaved"`` or a tuple of task ids, one per block.
        batch_size: samples (or trials) per learning step.
        kind: ``"regression"``, ``"classification"`` or ``"sequence"``; a model's card lists
            the kinds it accepts (``register(..., kinds=...)``).
        task_names: a readable name per task (e.g. ``("A", "B")``, neurogym ids).
        switch_criterion: the default switch criterion, ``(log column, threshold)``: met when
            the column is <= the threshold (>= for ``"accuracy"``).
        n_base_tasks: tasks ``0..n_base_tasks-1`` are the building blocks (e.g. teachers)
            and the rest are composed from them; None when every task is a building block.
        dt: milliseconds per time step of a sequence paradigm in continuous time (the
            cognitive paradigm: 20 by default, Yang et al.'s), from which recurrent models
            derive ``alpha = dt / tau``; None where steps have no physical time.
    """

    name: str
    input_size: int
    output_size: int
    n_tasks: int
    loss: str
    sequence: bool
    null_loss: tuple[float, ...] | None
    schedule: Any
    batch_size: int
    kind: str = "regression"
    task_names: tuple[str, ...] = ()
    switch_criterion: tuple[str, float] = ("norm_loss", 0.1)
    n_base_tasks: int | None = None
    dt: float | None = None


@dataclass(frozen=True)
class Cue:
    """One rule cue of a :class:`CueProbe`: ``role`` is ``"own"`` (the task's own cue),
    ``"partial"`` (a leading part of the composed expression), ``"composed"`` or ``"random"``
    (a random direction of the composed cue's norm: the control)."""

    role: str
    label: str
    vector: np.ndarray


@dataclass(frozen=True)
class CueProbe:
    """Task ``task`` evaluated under each of ``cues`` (:meth:`SwitchEnv.eval_batch_cued`);
    ``metric`` is ``"rule_composition"`` (the task was trained) or ``"zero_shot"`` (never)."""

    metric: str
    task: int
    expression: str
    cues: tuple[Cue, ...]


@dataclass(frozen=True)
class TransferProbe:
    """After the curriculum, each of ``tasks`` (never trained) is learned for at most ``budget`` steps."""

    tasks: tuple[int, ...]
    budget: int


@dataclass(frozen=True)
class Steps:
    """Steps ``start .. start + n - 1`` of an episode drawn at once (:meth:`SwitchEnv.draw_steps`):
    ``x`` (n, *observation shape) and ``y`` (n, *target shape) hold what ``step()`` would give
    as each step's batch and ``info["target"]``; ``extras`` each step's further info entries."""

    start: int
    x: np.ndarray
    y: np.ndarray
    extras: list[dict]
    schedule: Schedule

    def __len__(self) -> int:
        return len(self.x)

    def info(self, j: int) -> dict:
        """The ``info`` that ``step()`` returns for step ``start + j`` (less what a paradigm's
        ``step()`` scores from the prediction: that is :meth:`SwitchEnv.trial_columns`' job)."""
        return {**schedule_info(self.schedule, self.start + j), **self.extras[j], "target": self.y[j]}


def schedule_info(s: Schedule, t: int) -> dict:
    """What the schedule says of step ``t``: its ``task``, ``block``, ``switch``, ``phase`` and ``step``."""
    b = int(s.block[t])
    return {"task": int(s.task[t]), "block": b, "switch": bool(s.switch[t]), "phase": s.phases[b], "step": t}


class SwitchEnv(gym.Env):
    """Base class: a curriculum of tasks switched in blocks, one learning step per env step."""

    metadata = {"render_modes": []}
    task_spec: TaskSpec
    #: whether every episode has the same number of steps (set False where the length is drawn)
    fixed_length: bool = True
    #: whether :meth:`draw_steps` may draw steps ahead: False where batches respond to the
    #: predictions (and, on an instance, to force the run loop through ``step()``)
    draws_ahead: bool = True
    #: small configurations the tests run every registered paradigm on (Gymnasium's checker,
    #: determinism, the stepping protocol, drawing ahead, every model): ``{label: parameters}``,
    #: label ``""`` for the first; a few short blocks, small batches. Each paradigm class
    #: declares its own (``tests/test_paradigms.py`` fails for one that does not).
    SMALL_SETTINGS: dict[str, dict] = {}
    #: set on the instance that :meth:`task_spec_for` makes: its ``__init__`` returns before building data
    _spec_only: bool = False

    @classmethod
    def task_spec_for(cls, **params) -> TaskSpec:
        """The :class:`TaskSpec` of ``cls(**params)`` without building its data: every field
        as the built environment's, but ``null_loss=None``. Bad parameters raise as the
        constructor does (those that only the data can check, such as a too short
        ``seq_len``, are checked when the environment is built).

        >>> from switchbench.paradigms.linear import BlockedLinearEnv
        >>> spec = BlockedLinearEnv.task_spec_for(input_size=30, cue=True)
        >>> spec.input_size, spec.n_tasks, spec.null_loss
        (32, 2, None)
        """
        env = cls.__new__(cls)
        env._spec_only = True
        env.__init__(**params)
        return dataclasses.replace(env.task_spec, null_loss=None)

    def __init__(self, *, schedule: str | Sequence[int] = "blocked", block_size: int = 1000, n_blocks: int = 20,
                 batch_size: int = 200, cue: bool = False, phases: Sequence[str] | None = None):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise SwitchbenchError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.schedule = schedule if isinstance(schedule, str) else tuple(schedule)
        self.block_size, self.n_blocks, self.batch_size, self.cue = block_size, n_blocks, batch_size, bool(cue)
        self._phases = phases
        # Validate schedule arguments now, so that bad input fails at construction.
        length = self._make_curriculum(np.random.default_rng(0)).n_steps
        #: steps in one episode (Gymnasium's ``max_episode_steps``); None where it depends on the seed
        self.episode_steps: int | None = int(length) if self.fixed_length else None
        self._sched: Schedule | None = None
        self._t = 0
        self._extra: dict = {}

    # --- to be provided by subclasses -------------------------------------------------
    n_tasks: int

    def _draw(self, task: int, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _make_curriculum(self, rng: np.random.Generator) -> Schedule:
        """The per-step schedule of one episode (default: :func:`make_schedule`)."""
        return make_schedule(self.schedule, self.n_tasks, self.n_blocks, self.block_size, rng, self._phases)

    # --- spaces -------------------------------------------------------------------------
    def _make_spaces(self, input_size: int, output_size: int) -> None:
        b = self.batch_size
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (b, input_size), np.float32)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (b, output_size), np.float32)

    # --- protocol -----------------------------------------------------------------------
    def _with_cue(self, x: np.ndarray, task: int) -> np.ndarray:
        """``x`` with the one-hot cue of ``task`` appended to its features (where ``cue=True``)."""
        return self._append_cue(x, (..., task))

    def _info(self, t: int) -> dict:
        return schedule_info(self._sched, t)

    def _load(self, t: int) -> np.ndarray:
        task = int(self._sched.task[t])
        x, self._y = self._draw(task, self.np_random, self.batch_size)
        self._extra = {}
        return self._with_cue(x, task)

    @property
    def curriculum(self) -> Schedule:
        """The schedule of the current episode (available after ``reset``)."""
        if self._sched is None:
            raise SwitchbenchError("call reset() before reading the curriculum")
        return self._sched

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._sched = self._make_curriculum(self.np_random)
        self._t = 0
        self._x = self._load(0)
        return self._x, self._info(0)

    def draw_steps(self, n: int) -> Steps:
        """The next ``n`` steps at once (see the module docstring): their batches (the current
        observation first), targets and infos, exactly as ``n`` calls of ``step()`` would give
        them; the episode then stands where those calls leave it (the next batch loaded)."""
        if not self.draws_ahead:
            raise SwitchbenchError(f"{type(self).__name__} does not draw steps ahead (draws_ahead is False)")
        s, t = self.curriculum, self._t
        if not 1 <= n <= s.n_steps - t:
            raise SwitchbenchError(f"draw_steps({n}) at step {t} of {s.n_steps}: n must lie in 1..{s.n_steps - t}")
        stop = min(t + n + 1, s.n_steps)                     # through step t + n: the next batch to load
        x = np.empty((n,) + self._x.shape, self._x.dtype)
        y = np.empty((n,) + self._y.shape, self._y.dtype)
        x[0], y[0], extras = self._x, self._y, [self._extra]
        if stop > t + 1:
            xs, ys, more = self._draw_steps(t + 1, stop)
            more = more if more is not None else [{} for _ in range(stop - t - 1)]
            x[1:], y[1:], extras = xs[:n - 1], ys[:n - 1], extras + more[:n - 1]
            if t + n < s.n_steps:
                self._x, self._y, self._extra = xs[n - 1], ys[n - 1], more[n - 1]
        self._t = t + n
        return Steps(start=t, x=x, y=y, extras=extras, schedule=s)

    def _draw_steps(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, list[dict] | None]:
        """The batches ``x`` (m, ...), targets ``y`` (m, ...) and extras (a list of ``m`` dicts,
        or None for none) of steps ``start .. stop - 1``, drawn from ``self.np_random`` exactly as
        ``_load(start)``, ..., ``_load(stop - 1)`` would (the default calls it step by step)."""
        xs, ys, extras = [], [], []
        for t in range(start, stop):
            xs.append(self._load(t))
            ys.append(self._y)
            extras.append(self._extra)
        return np.stack(xs), np.stack(ys), extras

    def _with_cues(self, x: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        """:meth:`_with_cue` of a run of steps: ``x`` (m, ..., features), one task per step."""
        return self._append_cue(x, (np.arange(len(tasks)), ..., tasks))

    def _append_cue(self, x: np.ndarray, ones) -> np.ndarray:
        """``x`` with ``n_tasks`` cue features appended, 1 at the index ``ones`` of them, 0 elsewhere."""
        if not self.cue:
            return x
        cue = np.zeros(x.shape[:-1] + (self.n_tasks,), dtype=x.dtype)
        cue[ones] = 1.0
        return np.concatenate([x, cue], axis=-1)

    def step(self, action):
        if self._sched is None or self._t >= self._sched.n_steps:
            raise SwitchbenchError("step() called on a finished or never-reset curriculum; call reset()")
        import torch   # here, not at import: `import switchbench` (and `switchbench --help`) stays light

        from switchbench.losses import task_loss

        pred = torch.as_tensor(np.asarray(action))
        self.check_prediction(pred.shape)
        t = self._t
        info = self._info(t)
        info.update(self._extra)
        info["target"] = self._y
        loss = float(task_loss(pred, torch.as_tensor(self._y), self.task_spec.loss))
        self._t = t + 1
        terminated = self._t >= self._sched.n_steps
        if not terminated:
            self._x = self._load(self._t)
        return self._x, -loss, terminated, False, info

    def check_prediction(self, shape) -> None:
        """Raise the error that says what is wrong with a prediction of ``shape``, unless it is the action's."""
        if tuple(shape) != self.action_space.shape:
            raise SwitchbenchError(self._shape_error(tuple(shape)))

    def _shape_error(self, got: tuple) -> str:
        """What is wrong with a prediction's shape, and how to fix it."""
        spec, want = self.task_spec, tuple(self.action_space.shape)
        layout = "(time, batch, output_size)" if spec.sequence else "(batch, output_size)"
        per = (f"{spec.output_size} logits (one per class)" if spec.loss == "cross_entropy"
               else f"{spec.output_size} outputs")
        where = "time step and sample" if spec.sequence else "sample"
        return (f"{spec.name}: prediction has shape {got}, expected {want} = {layout}: predict(x) must return "
                f"{per} for each {where} of x (size the model's output from spec.output_size)")

    def eval_batch(self, task: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Held-out data of ``task`` (``n`` samples, cue included) from its own seed; no learning."""
        if not 0 <= task < self.n_tasks:
            raise SwitchbenchError(f"task {task} out of range 0..{self.n_tasks - 1}")
        x, y = self._draw(task, np.random.default_rng(seed), n)
        return self._with_cue(x, task), y

    # --- what generic code may ask of any paradigm (defaults: nothing) ----------------
    def ground_truth(self) -> np.ndarray | None:
        """The generating weights of every task, ``(n_tasks, output_size, input_size without
        the cue)``, where the paradigm has them (linear teachers: tasks ``0..n_base_tasks-1``
        are the building blocks); None by default."""
        return None

    def trial_columns(self, pred, info: dict) -> dict[str, float]:
        """Per-step log columns scored from one step's prediction ``pred`` (a CPU tensor shaped
        like the action) and that step's ``info`` (e.g. trial scores, switch / repeat
        groups); none by default. The runner logs them after ``accuracy``. The info may come
        from ``step()`` or from :meth:`Steps.info` (drawn ahead): score from ``pred`` and the
        info's target, not from entries that only ``step()`` adds."""
        return {}

    def trial_score(self, logits: np.ndarray, target: np.ndarray, task: int) -> float | None:
        """The paradigm's own score of held-out predictions of ``task`` (e.g. Yang et al.'s
        performance), used by robustness and probes instead of accuracy; None by default."""
        return None

    # --- optional probes (none by default; see the module docstring) --------------------
    def cue_probes(self, seed) -> list[CueProbe]:
        """Tasks to evaluate under composed and control rule cues (none by default)."""
        return []

    def eval_batch_cued(self, task: int, cue: np.ndarray, n: int, seed) -> tuple[np.ndarray, np.ndarray]:
        """``eval_batch(task, n, seed)`` with the rule cue replaced by ``cue`` (paradigms with cue probes)."""
        raise SwitchbenchError(f"{self.task_spec.name} has no rule-cue probes")

    def transfer_probe(self) -> TransferProbe | None:
        """Tasks to learn after the curriculum, and the step budget (None by default)."""
        return None

    def train_batches(self, task: int, n_steps: int, seed):
        """``n_steps`` training batches ``(x, y)`` of ``task`` (cue included) from their own seed."""
        rng = np.random.default_rng(seed)
        for _ in range(n_steps):
            x, y = self._draw(task, rng, self.batch_size)
            yield self._with_cue(x, task), y
