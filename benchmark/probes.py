"""Probes after the curriculum, declared by the paradigm and run on the trained learner:
rule-cue composition (:meth:`~switchbench.paradigms.base.SwitchEnv.cue_probes`) and
transfer to tasks kept out of the curriculum
(:meth:`~switchbench.paradigms.base.SwitchEnv.transfer_probe`). Formulas of the metrics:
:func:`switchbench.benchmark.metrics.rule_composition`, :func:`~switchbench.benchmark.metrics.transfer`.

- **Cue probes**: each probe's task on the run's held-out trials (the same trials as R0:
  seed ``(eval seed, 0, task)``), predict-only, once per cue (its own, the composed
  expression and its leading parts, random controls). The model sees only the cue it is
  given; a privileged model is told the evaluated task (as in every evaluation).
- **Transfer**: each held-out task learned for at most ``budget`` steps, batches from its
  training pool (seed from a fourth child of the run's ``SeedSequence``, the same batches
  for both networks), by a copy of the trained learner and by a fresh network of the same
  model built from the run's own model entry, parameters and model seed (the network the
  run started from). Each step: predict, the online value of the run's criterion
  (normalised loss, loss or accuracy; e.g. normalised loss <= 0.2), learn; it stops at the
  first batch that meets the criterion.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from switchbench.benchmark import metrics as M
from switchbench.errors import SwitchbenchError


def run_probes(learner, env, entry, config: dict, label: str) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The tidy cue-probe and transfer tables of a trained ``learner`` (each None where the
    paradigm has no such probe); their metrics are registered in :mod:`switchbench.benchmark.metrics`."""
    from switchbench.benchmark.evaluation import _call, _seed_int, accuracy, predict_loss

    spec, seed = env.task_spec, int(config["seed"])
    _, model_ss, eval_ss, probe_ss = np.random.SeedSequence(seed).spawn(4)   # the first three as run()'s
    eval_int, probe_int = _seed_int(eval_ss), _seed_int(probe_ss)
    privileged = entry.card.privileged
    n_eval = config["runner"]["n_eval"]
    table, transferred = None, None

    rows = []
    for p in env.cue_probes(probe_int):
        for cue in p.cues:
            x, y = map(torch.as_tensor, env.eval_batch_cued(p.task, cue.vector, n_eval, (eval_int, 0, p.task)))
            pred, loss = predict_loss(learner, p.task, x, y, spec, privileged, label)
            score = env.trial_score(pred.numpy(), y.numpy(), p.task)
            score = accuracy(pred, y) if score is None else score
            rows.append(dict(metric=p.metric, task=p.task, expression=p.expression, role=cue.role, cue=cue.label,
                             performance=score, norm_loss=loss))
    if rows:
        table = pd.DataFrame(rows)

    probe = env.transfer_probe()
    if probe is not None:
        criterion, threshold = config["runner"]["criterion"], config["runner"]["threshold"]
        if criterion not in ("norm_loss", "loss", "accuracy"):
            raise SwitchbenchError(f"{label}: the transfer probe scores norm_loss, loss or accuracy, "
                                   f"not the criterion {criterion!r}")

        def steps(net, k: int) -> tuple[int, bool]:
            for i, (x, y) in enumerate(env.train_batches(k, probe.budget, (probe_int, k))):
                x, y = torch.as_tensor(x), torch.as_tensor(y)
                pred, loss = predict_loss(net, k, x, y, spec, privileged, label)   # privileged: told the task
                value = accuracy(pred, y) if criterion == "accuracy" else loss * (
                    spec.null_loss[k] if criterion == "loss" else 1)
                if M._met(np.array([value]), criterion, threshold)[0]:
                    return i + 1, False
                _call(f"{label}: learn", net.learn, x, y)
            return probe.budget, True

        fresh = entry.build(spec, _seed_int(model_ss), **config["model_params"])   # as run() built the learner
        rows = [dict(task=k, network=name, **dict(zip(("steps", "censored"), steps(copy.deepcopy(net), k))))
                for k in probe.tasks for name, net in (("curriculum", learner), ("scratch", fresh))]
        transferred = pd.DataFrame(rows)
    return table, transferred
