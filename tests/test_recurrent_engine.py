"""The leaky family's recurrence (:func:`switchbench.models.leaky_rnn.recurrence`): its
hand-written backward pass through time against autograd through the plain time loop (the
engine before it), and every model of the family trained a few steps on both engines. The
forward pass computes the leak as one ``lerp`` (``h + alpha (f(z) - h)``), the loop's
``(1 - alpha) h + alpha f(z)`` to float rounding.

The reference below is the time loop the models ran under autograd; patched in for
``recurrence``, it gives the old numbers. Gradients agree to float64 rounding (1e-12); whole
runs in float32 agree to float rounding (the two backward passes sum in another order)."""
import pytest
import torch

from switchbench import models
from switchbench.models import batching, leaky_rnn
from switchbench.paradigms.base import TaskSpec


def autograd_recurrence(drive, w_rec, alpha, activation, mask=None):
    """The recurrence as a Python time loop under autograd (the engine before the hand-written one)."""
    f = leaky_rnn.ACTIVATIONS[activation]
    h = drive.new_zeros(drive.shape[:-3] + drive.shape[-2:])
    hs = []
    for drive_t in drive.unbind(-3):
        h = leaky_rnn.leak(h, f(h @ w_rec.mT + drive_t), alpha)
        if mask is not None:
            h = h * mask
        hs.append(h)
    return torch.stack(hs, -3)


@pytest.mark.parametrize("S", [None, 1, 3])
@pytest.mark.parametrize("alpha", [0.2, 0.7, 1.0])
@pytest.mark.parametrize("activation", ["softplus", "relu"])
@pytest.mark.parametrize("masked", [False, True])
def test_the_hand_written_backward_is_autograds(S, alpha, activation, masked):
    g = torch.Generator().manual_seed(0)
    lead = () if S is None else (S,)
    drive = torch.randn(*lead, 7, 5, 16, generator=g, dtype=torch.float64).requires_grad_()
    w_rec = (torch.randn(*lead, 16, 16, generator=g, dtype=torch.float64) / 4).requires_grad_()
    mask = None
    if masked:
        mask = (torch.rand(*lead, *((1,) if S else ()), 16, generator=g) > 0.3).double()
    weight = torch.randn(*lead, 7, 5, 16, generator=g, dtype=torch.float64)   # an arbitrary loss: sum(weight * hs)
    ours = leaky_rnn.recurrence(drive, w_rec, alpha, activation, mask)
    ref = autograd_recurrence(drive, w_rec, alpha, activation, mask)
    torch.testing.assert_close(ours, ref, rtol=1e-13, atol=1e-13)          # the leak as a lerp: float64 rounding
    grads = torch.autograd.grad((ours * weight).sum(), (drive, w_rec))
    want = torch.autograd.grad((ref * weight).sum(), (drive, w_rec))
    for a, b in zip(grads, want):
        assert a.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_only_the_needed_gradients_and_no_graph_without_them():
    drive = torch.randn(4, 3, 8, requires_grad=True)
    w_rec = torch.randn(8, 8) / 3                                         # frozen (modular primitives' modules)
    hs = leaky_rnn.recurrence(drive, w_rec, 0.2, "softplus")
    (d,) = torch.autograd.grad(hs.sum(), (drive,))
    (want,) = torch.autograd.grad(autograd_recurrence(drive, w_rec, 0.2, "softplus").sum(), (drive,))
    torch.testing.assert_close(d, want)
    with torch.no_grad():
        assert leaky_rnn.recurrence(drive, w_rec, 0.2, "softplus").grad_fn is None


D_IN, D_OUT, T, B, S = 5, 3, 6, 4, 3
CASES = {
    "leaky-rnn": {"hidden": 8, "lr": 1e-2},
    "gated-rnn": {"hidden": 8, "lr": 1e-2},
    "leaky-rnn-ewc": {"hidden": 8, "lr": 1e-2, "lam": 1e3, "fisher_batches": 2},
    "leaky-rnn-si": {"hidden": 8, "lr": 1e-2, "c": 1e2},
    "per-task-rnn": {"hidden": 8, "lr": 1e-2},
    "modular-primitives": {"n_modules": 2, "module_size": 4, "lr": 1e-2, "pretrain": "none", "pretrain_cache": False},
}


def _run(model, dt, stacked, ablate):
    """Losses, predictions and weights of S seeds of ``model`` over 8 steps (a task switch at
    step 4, noise on, the first two steps of each trial masked; ``ablate``: units silenced)."""
    spec = TaskSpec("toy", D_IN, D_OUT, 2, "cross_entropy", True, (1.0, 1.0), "blocked", B, kind="sequence", dt=dt)
    nets = [models.get(model).factory(spec, s, **CASES[model]) for s in range(S)]
    if ablate:
        for s, net in enumerate(nets):
            assert net.perturb("unit_ablation", 0.25, torch.Generator().manual_seed(s))
    learner = batching.stack(nets) if stacked else None
    g = torch.Generator().manual_seed(1)
    out = []
    for step in range(8):
        x = 2 * torch.randn(S, T, B, D_IN, generator=g)
        y = torch.randint(0, D_OUT, (S, T, B), generator=g)
        y[:, :2] = -100
        task = int(step >= 4)
        if stacked:
            if hasattr(learner, "observe_task"):
                learner.observe_task([task] * S)
            out += [learner.learn(x, y), learner.predict(x)]
        else:
            for s, net in enumerate(nets):
                if hasattr(net, "observe_task"):
                    net.observe_task(task)
                out += [torch.tensor(net.learn(x[s], y[s])), net.predict(x[s])]
    params = learner.parameters() if stacked else [p for net in nets for p in net.parameters()]
    return out + [p.detach().clone() for p in params]


@pytest.mark.parametrize("model", list(CASES))
@pytest.mark.parametrize("dt, stacked, ablate", [(None, False, False), (100, True, False), (50, True, True),
                                                 (100, False, True)])
def test_every_leaky_model_learns_as_on_the_autograd_engine(model, dt, stacked, ablate, monkeypatch):
    """Same seeds, same batches, same noise: the hand-written engine's run is the autograd
    engine's to float rounding (alpha 0.2, 1.0 and 0.5; single and stacked seeds; silenced units)."""
    ours = _run(model, dt, stacked, ablate)
    monkeypatch.setattr(leaky_rnn, "recurrence", autograd_recurrence)
    ref = _run(model, dt, stacked, ablate)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(ours[-6:], _run(model, dt, stacked, not ablate)[-6:]))


def test_the_backward_pass_runs_once_and_says_so():
    """It turns the saved pre-activations into the gradient in place: autograd refuses a second pass (not a wrong one)."""
    drive = torch.randn(4, 3, 8, requires_grad=True)
    hs = leaky_rnn.recurrence(drive, torch.randn(8, 8) / 3, 0.2, "softplus")
    hs.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        hs.sum().backward()
