"""The run loop: S seeds of one configuration learn their curricula at once (S = 1 included).

Read it top to bottom: :func:`run` builds one paradigm per seed and resets each with its
seed's stream; seeds whose curricula end their blocks at the same steps go through
:func:`train` together (the rest in further calls, one per block layout: a seed-dependent
curriculum length never mixes two layouts in one call); it builds exactly one learner per
seed with the model's factory (:func:`build_learner`), and a learner class that cannot stack
runs one seed per call. :func:`train` stacks a call's learners into one seed-batched learner
(:mod:`switchbench.models.batching`; one seed runs as itself through ``Single``, so a lone
seed's numbers are exactly its learner's) and then, chunk by chunk (a block, or a part of
one where a block's batches would take much memory), in named phases (:class:`Call`)::

    env_s.draw_steps(n)             each seed's paradigm draws the chunk's n batches at once,
                                    exactly those that n step() calls would give; the S
                                    seeds' inputs X and targets Y go to the device in one copy
    for each step j of the chunk:
        predict(X[j])               X[j]: the S observations, (S, *obs)
        task_losses(prediction, Y[j])  each seed's task loss: its paradigm's reward, negated
        learn(X[j], Y[j])           one update of every seed
    at the chunk's end: the losses are read (a non-finite one fails its seed, naming the
                    step), the accuracy and the paradigm's own per-step scores
                    (``trial_columns``) come from the chunk's predictions, copied once
    at a block end: R0 and Rk of every seed (held-out sets fixed per seed; Rk after
                    k_adapt learning steps on a deep copy of the batched learner)

and finally it splits everything per seed: logs, metrics, robustness and the paradigm's
probes of each seed's own trained learner (``unstack()``).

The loop itself copies nothing through numpy and reads nothing back from the device per
step (on a GPU the logged losses are then the device's arithmetic: equal up to float
rounding to the CPU's). A paradigm whose batches respond to the predictions
(``draws_ahead = False``, see :mod:`switchbench.paradigms.base`) is stepped instead: ``env_s.step(prediction_s)`` scores each prediction and gives the next
batch, one copy per step; setting ``draws_ahead = False`` on the envs forces that path (the
numbers are the same, which the tests check). The log's step, block, task, phase and switch
columns are the curriculum's (``env.curriculum``); they equal ``step()``'s infos.

:func:`run_wishart` runs a configuration with ``sampler="wishart"`` through the linear
family's covariance engine instead (:mod:`switchbench.models.covariance_engine`), scored as
every run is.

Seeds: ``numpy.random.SeedSequence(seed).spawn(3)`` gives three children that seed,
separately, the paradigm stream, the model initialisation and the evaluation sets; a
seed's numbers do not depend on which other seeds share its call (up to float rounding
where the model's batched arithmetic sums in another order).
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from switchbench import models
from switchbench.benchmark.config import pick_device
from switchbench.benchmark.evaluation import (_call, _seed_int, accuracy, add_time, compute_metrics, new_task_blocks,
                                              robustness)
from switchbench.benchmark.probes import run_probes
from switchbench.benchmark.storage import RunResult
from switchbench.errors import SwitchbenchError
from switchbench.losses import task_loss, task_losses
from switchbench.models import batching, covariance_engine
from switchbench.paradigms.base import SwitchEnv

CHUNK_BYTES = 16 << 20      # the observations of all seeds drawn ahead at once: at most about this (one step at least)


def run(rc, seeds, progress: bool = True, *, device: str = "cpu", checkpoints: bool = False,
        record_hidden: bool = False) -> list:
    """Run the seeds of the configuration ``rc`` (a :class:`~switchbench.benchmark.config.RunConfig`);
    one :class:`RunResult` per seed in order, or the :class:`SwitchbenchError` of a seed
    whose run failed (a non-finite loss fails its own seed only; an error of the model
    fails every seed of the call). A learner class that cannot stack runs one seed per call."""
    seeds = [int(s) for s in seeds]
    dev = pick_device(device)
    streams = [_seed_int(np.random.SeedSequence(s).spawn(3)[0]) for s in seeds]
    envs = [rc.take_env() for _ in seeds]
    firsts = [env.reset(seed=stream)[0] for env, stream in zip(envs, streams)]
    groups: dict[bytes, list[int]] = {}                  # seeds by block layout (where each block ends)
    for i, env in enumerate(envs):
        groups.setdefault(np.asarray(env.curriculum.block).tobytes(), []).append(i)
    out: dict[int, object] = {}

    def call(idx: list[int], learners: list) -> None:
        out.update(zip(idx, train(rc, [seeds[i] for i in idx], [envs[i] for i in idx], [firsts[i] for i in idx],
                                  learners, progress, dev, checkpoints, record_hidden)))

    for idx in groups.values():
        first = build_learner(rc, seeds[idx[0]])         # exactly one learner per seed, none thrown away
        if batching.can_stack(first) and rc.runner.get("target_perf") is None:   # the group in one call
            # (target_perf stops each seed at its own step: one seed per call)
            call(idx, [first] + [build_learner(rc, seeds[i]) for i in idx[1:]])
        else:                                            # one seed per call, each learner built in its turn
            for i in idx:
                call([i], [first if i == idx[0] else build_learner(rc, seeds[i])])
    return [out[i] for i in range(len(seeds))]


def build_learner(rc, seed: int):
    """Seed ``seed``'s learner, built by the model's factory with its model seed (the second
    child of ``SeedSequence(seed)``), exactly as a run of that seed alone builds it."""
    return rc.entry.build(rc.spec, _seed_int(np.random.SeedSequence(seed).spawn(3)[1]), **rc.model_params)


def train(rc, seeds: list[int], envs: list, obs: list, learners: list, progress: bool, device: torch.device,
          checkpoints: bool = False, record_hidden: bool = False) -> list:
    """The loop proper for seeds whose paradigms are reset (``obs``: their first observations)
    and share one block layout, with one freshly built learner per seed; see the module
    docstring. Its phases, in order: set up (:class:`Call`), then chunk by chunk learn
    (:meth:`Call.learn_chunk`), check (:meth:`Call.fail_non_finite`), log (:meth:`Call.log_chunk`)
    and, at a block end, evaluate (:meth:`Call.end_block`); finally one result per seed
    (:meth:`Call.results`)."""
    if record_hidden and not callable(getattr(learners[0], "record_hidden", None)):
        raise SwitchbenchError(f"{rc.label(seeds)}: record_hidden=True, but {type(learners[0]).__name__} has no "
                               "record_hidden(x) method (a TorchLearner: pass hidden='<submodule name>')")
    call = Call(rc, seeds, envs, obs, learners, device)
    bar = tqdm(total=call.n_steps, desc=call.label, disable=not progress, mininterval=0.5, leave=False)
    for start, stop in _chunks(call.sched, call.chunk_steps()):
        t0 = time.perf_counter()
        chunk = call.learn_chunk(start, stop)
        call.train_time += time.perf_counter() - t0
        bar.update(stop - start)
        if call.fail_non_finite(chunk, start):
            break                                       # every seed failed
        call.log_chunk(chunk)
        if call.target is not None and (stop % call.check_every == 0 or stop == call.n_steps) and call.reached():
            call.stop_at(stop)                          # target_perf met: the block (and run) ends here
        if stop == call.n_steps or call.sched.block[stop] != call.sched.block[stop - 1]:
            call.end_block(int(call.sched.block[stop - 1]), checkpoints)
        if call.met:
            break
    bar.close()
    return call.results(checkpoints, record_hidden)


class Chunk:
    """What one chunk of steps gave: ``loss`` (n, S) each seed's task loss, ``learned`` (n, S)
    what ``learn`` returned, the predictions (``preds``, kept where the log scores them),
    ``drawn`` (each seed's drawn steps, None when stepped), ``infos`` (stepped: each step's
    infos), ``probed`` (small probes per step)."""

    def __init__(self, drawn):
        self.drawn, self.losses, self.learned, self.preds, self.infos, self.probed = drawn, [], [], [], [], {}

    def finish(self) -> None:
        self.loss = torch.stack(self.losses).double().cpu().numpy()            # (n, S): read once per chunk
        self.finite = np.isfinite(self.loss) & np.isfinite(torch.stack(self.learned).double().cpu().numpy())


class Call:
    """One loop call: S seeds' learners stacked, their held-out sets, and what is recorded."""

    def __init__(self, rc, seeds, envs, obs, learners, device):
        self.rc, self.seeds, self.envs, self.obs, self.device = rc, seeds, envs, obs, device
        self.spec, self.S, self.K = rc.spec, len(seeds), rc.spec.n_tasks
        self.label, self.labels = rc.label(seeds), [rc.label([s]) for s in seeds]
        self.privileged = rc.entry.card.privileged
        self.eval_int = [_seed_int(np.random.SeedSequence(s).spawn(3)[2]) for s in seeds]
        # One batched learner of the seeds' learners (one seed: the learner itself through Single,
        # so its numbers are exactly a lone run's).
        S = self.S
        self.net = batching.Single(learners[0]) if S == 1 else _call(f"{self.label}: stack", batching.stack, learners)
        if device.type != "cpu":
            self.net.to(device)
        # Held-out sets, one per task and seed, fixed for the whole run: (S, n_eval, ...) per task.
        held = [[envs[i].eval_batch(k, rc.n_eval, seed=(self.eval_int[i], 0, k)) for k in range(self.K)]
                for i in range(S)]
        self.held_x = [self.tensor([held[i][k][0] for i in range(S)]) for k in range(self.K)]
        self.held_y = [self.tensor([held[i][k][1] for i in range(S)]) for k in range(self.K)]
        # The curriculum and what the log holds.
        self.scheds = [env.curriculum for env in envs]
        self.sched, self.n_steps = self.scheds[0], self.scheds[0].n_steps
        self.classification = self.spec.loss == "cross_entropy"
        self.scores = type(envs[0]).trial_columns is not SwitchEnv.trial_columns   # the paradigm logs its scores
        self.ahead = all(env.draws_ahead for env in envs)
        self.cols = [{k: [] for k in ("step", "block", "task", "phase", "switch", "loss")} for _ in seeds]
        if self.classification:
            for c in self.cols:
                c["accuracy"] = []
        self.probe_cols: list[dict[str, list]] = [{} for _ in seeds]
        self.R0, self.Rk, self.probes, self.saved = [], [], {}, [[] for _ in seeds]
        self.failed: dict[int, SwitchbenchError] = {}          # seed index -> why its run failed
        self.train_time = 0.0
        self.has_probe = hasattr(self.net, "probe")
        self.has_params = len(list(self.net.parameters())) > 0
        self.snapshot, self.before, self.changed = new_task_blocks(self.sched), None, []   # params changed per new task
        # target_perf (a one-block curriculum): stop when the held-out perf_min meets it
        self.target, self.check_every = rc.runner.get("target_perf"), rc.runner.get("check_every")
        self.met = False
        if self.target is not None and len(np.unique(self.sched.block)) != 1:
            raise SwitchbenchError(f"{self.label}: target_perf stops a one-block curriculum; this one has "
                                   f"{len(np.unique(self.sched.block))} blocks")

    def tensor(self, arrays) -> torch.Tensor:
        """S numpy arrays -> (S, ...) on the device."""
        t = torch.from_numpy(arrays[0])[None] if self.S == 1 else torch.from_numpy(np.stack(arrays))
        return t if self.device.type == "cpu" else t.to(self.device)

    def chunk_steps(self) -> int:
        """Steps per chunk: the chunk's observations of all seeds take about CHUNK_BYTES at most
        (with ``target_perf``, chunks end at every check)."""
        most = max(1, CHUNK_BYTES // (self.S * self.obs[0].nbytes))
        if self.target is not None:
            most = self.check_every if most >= self.check_every else math.gcd(most, self.check_every)
        return most

    # --- target_perf: stop at Yang et al.'s criterion ------------------------------------------

    def held_out_performance(self) -> np.ndarray:
        """Each seed's (S,) minimum over its trained tasks of the paradigm's trial score (Yang
        et al.'s performance) on the held-out trials: their ``perf_min``."""
        out = np.full(self.S, np.inf)
        for k in getattr(self.envs[0], "trained_tasks", range(self.K)):
            pred = self.held_out_predict(self.net, k).detach().cpu().numpy()
            y = self.held_y[k].cpu().numpy()
            out = np.minimum(out, [self.envs[i].trial_score(pred[i], y[i], k) for i in range(self.S)])
        return out

    def reached(self) -> bool:
        """Whether every seed of the call has met ``target_perf`` (runs with it are one seed per call)."""
        return bool(np.all(self.held_out_performance() >= self.target))

    def stop_at(self, step: int) -> None:
        """End the run after ``step`` learning steps: the schedule and its log are cut there."""
        self.met, self.n_steps = True, step

    # --- learning ----------------------------------------------------------------------------

    def learn_chunk(self, start: int, stop: int) -> Chunk:
        """Steps ``start .. stop - 1`` of every seed: predict, score, learn."""
        net, label, S = self.net, self.label, self.S
        # Each seed's batches of the chunk, drawn at once and moved to the device in one copy:
        # X[j], Y[j] are step start + j's (S, ...) inputs and targets, exactly what step() gives.
        chunk = Chunk([env.draw_steps(stop - start) for env in self.envs] if self.ahead else None)
        if chunk.drawn:
            X, Y = _by_step([d.x for d in chunk.drawn], self.device), _by_step([d.y for d in chunk.drawn], self.device)
        for j, t in enumerate(range(start, stop)):
            if self.snapshot[t] and self.has_params:
                self.before = [p.detach().clone() for p in net.parameters()]
            if self.privileged:
                net.observe_task([int(s.task[t]) for s in self.scheds])
            x = X[j] if chunk.drawn else self.tensor(self.obs)
            with torch.no_grad():
                pred = _call(f"{label}: predict", net.predict, x)
            self.envs[0].check_prediction(pred.shape[1:])
            if chunk.drawn:   # each seed's task loss of its prediction: what its paradigm's step() scores
                y = Y[j]
                chunk.losses.append(task_losses(pred, y, self.spec.loss))
            else:             # step by step: each paradigm scores its seed's prediction and gives the next batch
                pred_cpu = pred.detach().cpu()
                steps = [env.step(pred_cpu[i].numpy()) for i, env in enumerate(self.envs)]
                self.obs = [st[0] for st in steps]
                chunk.infos.append([st[4] for st in steps])
                y = self.tensor([st[4]["target"] for st in steps])
                chunk.losses.append(torch.tensor([-st[1] for st in steps], dtype=torch.float64))
            chunk.learned.append(_learn(f"{label}: learn", net, x, y, S))
            if self.classification or self.scores:
                chunk.preds.append(pred.detach())
            if self.has_probe:
                for name, v in net.probe().items():
                    if v[0].numel() <= 16:
                        chunk.probed.setdefault(name, []).append(v.detach().clone())
        chunk.finish()
        return chunk

    def fail_non_finite(self, chunk: Chunk, start: int) -> bool:
        """Fail each seed whose loss went non-finite in the chunk (naming the step); whether all have."""
        for i in range(self.S):
            if i not in self.failed and not chunk.finite[:, i].all():
                t = start + int(np.argmin(chunk.finite[:, i]))
                self.failed[i] = SwitchbenchError(f"{self.labels[i]}: non-finite loss at step {t} "
                                                  "(a learning rate too large?)")
        return len(self.failed) == self.S

    def log_chunk(self, chunk: Chunk) -> None:
        """The chunk's log rows, per seed: its loss, accuracy and the paradigm's own scores of the
        predictions (copied to the CPU once), the small probes."""
        drawn, preds = chunk.drawn, chunk.preds
        P = torch.stack(preds).cpu() if preds else None                         # (n, S, ...)
        for i, c in enumerate(self.cols):
            c["loss"].extend(chunk.loss[:, i].tolist())
            for j in range(len(preds)):
                info = (drawn[i].info(j) if self.scores else None) if drawn else chunk.infos[j][i]
                if self.classification:
                    target = drawn[i].y[j] if drawn else info["target"]
                    c["accuracy"].append(accuracy(P[j, i], torch.from_numpy(target)))
                if self.scores:
                    for k, v in self.envs[i].trial_columns(P[j, i], info).items():
                        c.setdefault(k, []).append(v)
        for name, vs in chunk.probed.items():
            v = torch.stack(vs).cpu()                                            # (n, S, ...)
            for i in range(self.S):
                for k, column in enumerate(v[:, i].reshape(len(vs), -1).T.tolist()):
                    self.probe_cols[i].setdefault(f"{name}_{k}", []).extend(column)

    # --- evaluation at a block end -----------------------------------------------------------

    def end_block(self, block: int, checkpoints: bool) -> None:
        """Parameters changed (a new task's block), R0 and Rk, the probes, checkpoints."""
        net, S = self.net, self.S
        if self.before is not None:
            self.changed.append(sum(((p.detach() != b).reshape(S, -1).sum(1).cpu().numpy()
                                     for p, b in zip(net.parameters(), self.before)), np.zeros(S, int)))
            self.before = None
        r0, rk = self.evaluate(block)
        self.R0.append(r0)
        self.Rk.append(rk)
        if self.has_probe:
            for name, v in net.probe().items():
                self.probes.setdefault(name, []).append(v.detach().cpu().numpy())
        if checkpoints:
            for i, one in enumerate(net.unstack()):
                self.saved[i].append(_state(one))

    def held_out_predict(self, m, k: int) -> torch.Tensor:
        """``m``'s predictions of task ``k``'s held-out inputs, told the task when privileged."""
        if self.privileged:
            m.observe_task([k] * self.S)
        with torch.no_grad():
            return _call(f"{self.label}: predict", m.predict, self.held_x[k])

    def held_out_loss(self, m, k: int) -> np.ndarray:
        """Each seed's normalised loss on task ``k``'s held-out set (told the task when privileged)."""
        pred = self.held_out_predict(m, k)
        return (np.array([float(task_loss(pred[i], self.held_y[k][i], self.spec.loss)) for i in range(self.S)])
                / self.spec.null_loss[k])

    def evaluate(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """R0 and Rk rows (S, K) at the end of ``block``."""
        rc, S, B = self.rc, self.S, self.spec.batch_size
        r0 = np.stack([self.held_out_loss(self.net, k) for k in range(self.K)], axis=1)
        rk = np.empty((S, self.K))
        for k in range(self.K):
            adapted = copy.deepcopy(self.net)
            if rc.k_adapt:
                batches = [self.envs[i].eval_batch(k, rc.k_adapt * B, seed=(self.eval_int[i], 1 + block, k))
                           for i in range(S)]
                dim = 2 if self.spec.sequence else 1             # the sample dimension, after the seed's
                xs = torch.chunk(self.tensor([b[0] for b in batches]), rc.k_adapt, dim=dim)
                ys = torch.chunk(self.tensor([b[1] for b in batches]), rc.k_adapt, dim=dim)
                for xb, yb in zip(xs, ys):
                    if self.privileged:
                        adapted.observe_task([k] * S)
                    _learn(f"{self.label}: learn", adapted, xb, yb, S)
            rk[:, k] = self.held_out_loss(adapted, k)
        return r0, rk

    # --- one result per seed -----------------------------------------------------------------

    def results(self, checkpoints: bool, record_hidden: bool) -> list:
        """Per seed: the log, metrics, and the probes of its own trained learner (on the CPU); or
        the error that failed it."""
        S, rc, spec = self.S, self.rc, self.spec
        for i, s in enumerate(self.scheds):           # the schedule's columns: each step's info
            n = self.n_steps                          # (cut short where target_perf stopped the run)
            self.cols[i].update(step=list(range(n)), block=s.block[:n].tolist(), task=s.task[:n].tolist(),
                                phase=[s.phases[b] for b in s.block[:n].tolist()], switch=s.switch[:n].tolist())
        if len(self.failed) == S:
            return [self.failed[i] for i in range(S)]
        R0, Rk = np.stack(self.R0, axis=1), np.stack(self.Rk, axis=1)          # (S, n_blocks, K)
        probes = {k: np.stack(v, axis=1) for k, v in self.probes.items()}     # (S, n_blocks, ...)
        if self.device.type != "cpu":
            self.net.to(torch.device("cpu"))
        trained = self.net.unstack()
        results = []
        for i, seed in enumerate(self.seeds):
            if i in self.failed:
                results.append(self.failed[i])
                continue
            config, learner, env, label = rc.config(seed), trained[i], self.envs[i], self.labels[i]
            log = pd.DataFrame({"paradigm": rc.paradigm, "model": models.label(rc.model), "seed": seed,
                                **self.cols[i], **self.probe_cols[i]})
            log["norm_loss"] = log["loss"] / np.asarray(spec.null_loss)[log["task"].to_numpy()]
            add_time(log, rc.model_params)
            seed_probes = {k: v[i] for k, v in probes.items()}
            changed = self.changed
            measured = {"params": float(models.count_parameters(learner) or float("nan")),
                        "params_changed_per_task": float(np.mean([n[i] for n in changed])) if changed else float("nan"),
                        "wall_ms_per_step": 1e3 * self.train_time / self.n_steps / S}   # amortised over the seeds
            if self.target is not None:
                measured.update(steps_to_target=float(self.n_steps), target_met=float(self.met))
            measured.update(getattr(learner, "build_metrics", None) or {})   # e.g. how pretraining went
            robust = None
            held_i = [(self.held_x[k][i].cpu(), self.held_y[k][i].cpu()) for k in range(self.K)]
            if callable(getattr(learner, "perturb", None)):
                robust = robustness(learner, env, held_i, self.privileged, self.eval_int[i], label)
            cue_table, transfer_table = run_probes(learner, env, rc.entry, config, label)
            metrics = compute_metrics(log, R0[i], Rk[i], seed_probes, env, config, robustness=robust,
                                      cue_table=cue_table, transfer_table=transfer_table, measured=measured)
            hidden = None
            if record_hidden:
                with torch.no_grad():
                    hidden = [_call(f"{label}: record_hidden", learner.record_hidden, x).detach().cpu()
                              for x, _ in held_i]
            results.append(RunResult(config=config, log=log, metrics=metrics, R0=R0[i], Rk=Rk[i],
                                     probes=seed_probes, robustness=robust, cue_probes=cue_table, learner=learner,
                                     checkpoints=self.saved[i] if checkpoints else None, hidden=hidden))
        return results


def run_wishart(rc, seeds, progress: bool = True, chunk: int = 250) -> list:
    """Run the seeds of the configuration ``rc`` (``sampler="wishart"``) through the linear
    family's covariance engine (:mod:`switchbench.models.covariance_engine`) as one program:
    one :class:`RunResult` per seed in order (unsaved; the runner caches them), or the
    :class:`SwitchbenchError` of a seed whose loss went non-finite. ``chunk``: steps whose
    covariances are drawn at once."""
    seeds = [int(s) for s in seeds]
    env, spec, label = rc.take_env(), rc.spec, rc.label(seeds)
    children = [np.random.SeedSequence(s).spawn(3) for s in seeds]
    stream, eval_int = [_seed_int(ch[0]) for ch in children], [_seed_int(ch[2]) for ch in children]
    learners = [build_learner(rc, s) for s in seeds]
    reason = covariance_engine.decline_reason(learners[0], env)
    if reason:
        raise SwitchbenchError(f"{label}: {reason}")
    teachers = env.ground_truth()                               # one per task (composed tasks included)
    if len(teachers) != spec.n_tasks:
        raise SwitchbenchError(f"{rc.paradigm}: {len(teachers)} teachers for {spec.n_tasks} tasks; run it per seed")
    scheds = []                                                 # each seed's curriculum: one block layout for all
    for st in stream:
        env.reset(seed=st)
        scheds.append(env.curriculum)
    sched = scheds[0]
    if any(not np.array_equal(c.block, sched.block) for c in scheds):
        raise SwitchbenchError(f"{label}: sampler 'wishart' needs seeds whose blocks end at the same steps; "
                               "run them in separate calls")
    out = covariance_engine.train(learners, teachers, spec.null_loss, scheds, stream, eval_int,
                                  batch_size=spec.batch_size, k_adapt=rc.k_adapt,
                                  privileged=rc.entry.card.privileged, snapshot=new_task_blocks(sched),
                                  chunk=chunk, progress=progress, label=label)
    S, n_steps = len(seeds), sched.n_steps
    phase = np.asarray(sched.phases, dtype=object)[sched.block]
    params = float(models.count_parameters(learners[0]) or float("nan"))
    results = []
    for j, seed in enumerate(seeds):
        if j in out.failed:
            results.append(SwitchbenchError(f"{rc.label([seed])}: non-finite loss at step {out.failed[j]} "
                                            "(a learning rate too large?)"))
            continue
        config = rc.config(seed)
        cols = {"paradigm": rc.paradigm, "model": models.label(rc.model), "seed": seed, "step": np.arange(n_steps),
                "block": sched.block, "task": scheds[j].task, "phase": phase, "switch": scheds[j].switch,
                "loss": out.loss[:, j].astype(np.float64)}
        if out.gates is not None:
            cols.update({f"gates_{p}": out.gates[:, j, p].astype(np.float64) for p in range(out.gates.shape[2])})
        if out.modules is not None:
            flat = out.modules[:, j].reshape(n_steps, -1)
            cols.update({f"modules_{q}": flat[:, q].astype(np.float64) for q in range(flat.shape[1])})
        log = pd.DataFrame(cols)
        log["norm_loss"] = log["loss"] / np.asarray(spec.null_loss)[log["task"].to_numpy()]
        add_time(log, rc.model_params)
        seed_probes = {k: v[j] for k, v in out.probes.items()}
        measured = {"params": params,
                    "params_changed_per_task": (float(np.mean([n[j] for n in out.changed])) if out.changed
                                                else float("nan")),
                    "wall_ms_per_step": 1e3 * out.train_time / n_steps / S}    # amortised over the batched seeds
        metrics = compute_metrics(log, out.R0[j], out.Rk[j], seed_probes, env, config, measured=measured)
        results.append(RunResult(config=config, log=log, metrics=metrics, R0=out.R0[j], Rk=out.Rk[j],
                                 probes=seed_probes))
    return results


def _by_step(arrays: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """The S seeds' arrays of a chunk, (n, ...) each, as one (n, S, ...) tensor on the device
    (one copy) whose every step ``[j]`` is contiguous and starts 64-byte aligned, like a batch
    stacked on its own: BLAS kernels (MKL's) may round differently on misaligned data."""
    n, shape, dtype = len(arrays[0]), arrays[0].shape[1:], arrays[0].dtype
    step = len(arrays) * int(np.prod(shape)) * dtype.itemsize
    stride = -(-step // 64) * 64                              # bytes per step, rounded up
    raw = np.empty(n * stride + 64, np.uint8)
    first = -raw.ctypes.data % 64
    rows = raw[first:first + n * stride].reshape(n, stride)          # one aligned row of bytes per step
    out = rows[:, :step].view(dtype).reshape(n, len(arrays), *shape)
    for i, a in enumerate(arrays):
        out[:, i] = a
    t = torch.from_numpy(rows)
    if device.type != "cpu":
        t = t.to(device)                                         # the rows in one copy: aligned there too
    return t[:, :step].view(torch.from_numpy(out[:0]).dtype).reshape(out.shape)


def _chunks(sched, most: int):
    """``(start, stop)`` of the runs of at most ``most`` steps that split each block of ``sched``."""
    bounds = [0, *(np.flatnonzero(np.diff(sched.block)) + 1).tolist(), sched.n_steps]
    for a, b in zip(bounds[:-1], bounds[1:]):
        for start in range(a, b, most):
            yield start, min(start + most, b)


def _learn(what: str, net, x: torch.Tensor, y: torch.Tensor, S: int) -> torch.Tensor:
    """``net.learn(x, y)``: each seed's loss before the update, checked (a tensor of S numbers, not read)."""
    out = _call(what, net.learn, x, y, batched=True)
    if not isinstance(out, torch.Tensor) or out.shape != (S,):
        raise SwitchbenchError(f"{what} returned {type(out).__name__} {tuple(getattr(out, 'shape', ()))}, "
                               f"expected a tensor of {S} losses (one per seed)")
    return out.detach().clone()


def _state(learner):
    """A checkpoint of one seed's learner: its ``state_dict()`` where it has one, else a deep copy."""
    state = getattr(learner, "state_dict", None)
    return copy.deepcopy(state()) if callable(state) else copy.deepcopy(learner)
