"""Yang et al.'s training loss, the leaky family's ``loss="yang"`` (:func:`yang_objective`):
its targets and cost mask against a loop written from their code's description, and its
contract (bad settings are one-line errors)."""
import math

import pytest
import torch

from switchbench import models
from switchbench.errors import SwitchbenchError
from switchbench.models.leaky_rnn import yang_objective
from switchbench.paradigms.base import TaskSpec


def by_hand(logits, y, dt):
    """Their ``lsq`` loss, trial by trial, step by step, output by output: targets 0.05, the
    fixation output 0.8 while fixating, a ring bump 0.8 exp(-d^2 / 2 (pi/8)^2) on top while
    responding; the error times the cost mask (0 for the first 100 ms of the trial and of
    the response, 1 before the response, 5 after, fixation output x2), squared, averaged."""
    T, B, n = logits.shape
    ring = n - 1
    skip = int(100 / dt)
    total, count = 0.0, 0
    for b in range(B):
        steps = [t for t in range(T) if y[t, b] != -100]
        responding = [t for t in steps if y[t, b] > 0]
        onset = responding[0] if responding else None
        for t in steps:
            if t - steps[0] < skip:
                c = 0.0
            elif onset is None or t < onset:
                c = 1.0
            elif t - onset < skip:
                c = 0.0
            else:
                c = 5.0
            for k in range(n):
                out = 1 / (1 + math.exp(-float(logits[t, b, k])))
                if k == 0:
                    target, w = (0.8 if y[t, b] == 0 else 0.05), 2 * c
                else:
                    target, w = 0.05, c
                    if y[t, b] > 0:
                        d = abs(2 * math.pi * (int(y[t, b]) - 1) / ring - 2 * math.pi * (k - 1) / ring)
                        d = min(d, 2 * math.pi - d)
                        target += 0.8 * math.exp(-0.5 * (d / (math.pi / 8)) ** 2)
                total += ((target - out) * w) ** 2
            count += n
    return total / count


@pytest.mark.parametrize("dt", [100, 20])
def test_yang_objective_matches_their_targets_and_cost_mask(dt):
    gen = torch.Generator().manual_seed(0)
    T, n = 14, 17                                   # yang19: fixation + a ring of 16
    y = torch.full((T, 4), -100)
    y[2:, 0] = torch.tensor([0] * 7 + [5] * 5)      # start-padded trial, response at direction 5
    y[:, 1] = torch.tensor([0] * 9 + [16] * 5)      # direction 16: its bump wraps around to output 1
    y[:, 2] = 0                                     # a trial without a response (fixation throughout)
    y[:, 3] = torch.tensor([0] * 8 + [1] * 6)
    logits = torch.randn(T, 4, n, generator=gen) * 2
    assert yang_objective(logits, y, dt).item() == pytest.approx(by_hand(logits, y, dt), rel=1e-5)


def test_yang_objective_skips_unchecked_steps_and_weighs_the_response_25_to_1():
    y = torch.tensor([[0], [0], [0], [3], [3], [3]])
    T, n = 6, 9
    logits = torch.zeros(T, 1, n, requires_grad=True)
    loss = yang_objective(logits, y, 100)
    loss.backward()
    g = logits.grad[:, 0]
    assert g[0].abs().sum() == 0, "the first 100 ms are not checked"
    assert g[3].abs().sum() == 0, "nor the first 100 ms of the response"
    assert (g[1:3].abs().sum(1) > 0).all() and (g[4:].abs().sum(1) > 0).all()
    # a step's gradient is its cost mask squared: the response's (5) weighs 25 times the fixation period's (1)
    ring_unit = 7          # the ring output opposite direction 3 (of 8): target 0.05 (+ 1e-14) at both steps
    assert g[4, ring_unit] / g[1, ring_unit] == pytest.approx(25, rel=1e-5)


def toy_spec(dt):
    return TaskSpec("toy", 5, 4, 2, "cross_entropy", True, (1.0, 1.0), "blocked", 4, kind="sequence", dt=dt)


def test_bad_loss_settings_are_one_line_errors():
    with pytest.raises(SwitchbenchError, match="unknown loss 'mse'"):
        models.get("leaky-rnn").build(toy_spec(100), 0, hidden=4, loss="mse")
    with pytest.raises(SwitchbenchError, match="needs a paradigm with a time step"):
        models.get("leaky-rnn-ewc").build(toy_spec(None), 0, hidden=4, loss="yang")
    with pytest.raises(SwitchbenchError, match="fixation output and a ring"):
        yang_objective(torch.zeros(3, 1, 2), torch.zeros(3, 1, dtype=torch.long), 100)
