"""Seed-batched recurrent learners (``stack``, :mod:`switchbench.models.batching`): S stacked
seeds against S single-seed learners built with the same seeds and fed the same batches.

Tolerance: a batched product (``torch.bmm``) may round differently from the single-seed
``mm`` (and the stacked GRU is written out, not the fused ``nn.GRU``), so losses and outputs
agree to float32 rounding (``assert_close`` with rtol 1e-5, atol 1e-6), not bit for bit.
What must be exact is exact: a seed's numbers do not depend on the other seeds' data.
"""
import copy

import pytest
import torch

from switchbench import models
from switchbench.errors import SwitchbenchError
from switchbench.models import batching
from switchbench.paradigms.base import TaskSpec

S, T, B, D_IN, D_OUT = 3, 6, 4, 5, 3
SPEC = TaskSpec("toy", D_IN, D_OUT, 2, "cross_entropy", True, (1.0, 1.0), "blocked", B, kind="sequence")
TIGHT = dict(rtol=1e-5, atol=1e-6)
#: model -> tiny hyperparameters; larger lr so that ten steps move the weights visibly
CASES = {
    "leaky-rnn": {"hidden": 8, "lr": 1e-2},
    "gru": {"hidden": 8, "lr": 1e-2},
    "gated-rnn": {"hidden": 8, "lr": 1e-2},
    "leaky-rnn-ewc": {"hidden": 8, "lr": 1e-2, "lam": 1e3, "fisher_batches": 2},
    "leaky-rnn-si": {"hidden": 8, "lr": 1e-2, "c": 1e2},
    "per-task-rnn": {"hidden": 8, "lr": 1e-2},
    # random frozen modules (no neurogym corpus, no disk cache): the learner is the same
    "modular-primitives": {"n_modules": 2, "module_size": 4, "lr": 1e-2, "pretrain": "none", "pretrain_cache": False},
}
#: another configuration of each model (stack() refuses to mix them)
OTHER = {"modular-primitives": {"module_size": 2}}
PER_TASK = ("per-task-rnn", "modular-primitives")      # per-task weights, each seed stepped by its own Adam
TASKS = [0] * 5 + [1] * 5          # privileged models are told a switch half-way


def make(model, seed, **kw):
    """The model's learner for the toy spec (through its factory: modular-primitives otherwise
    declines paradigms other than CognitiveSwitch-v0, for its pretraining corpus)."""
    return models.get(model).factory(SPEC, seed, **{**CASES[model], **kw})


def build(model, seeds=range(S)):
    return [make(model, s) for s in seeds]


def batches(n, seed=0):
    """``n`` per-seed batches: inputs (S, T, B, D_IN), targets (S, T, B), the first two steps masked."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = 2 * torch.randn(S, T, B, D_IN, generator=g)
        y = torch.randint(0, D_OUT, (S, T, B), generator=g)
        y[:, :2] = -100
        out.append((x, y))
    return out


def privileged(model):
    return models.get(model).card.privileged


def train(stacked, singles, model, data, tasks=TASKS):
    """The same steps on both; returns the stacked (steps, S) and single (steps, S) losses."""
    got, want = [], []
    for (x, y), k in zip(data, tasks):
        if privileged(model):
            stacked.observe_task([k] * S)
            for net in singles:
                net.observe_task(k)
        got.append(stacked.learn(x, y))
        want.append(torch.tensor([net.learn(x[s], y[s]) for s, net in enumerate(singles)]))
    return torch.stack(got), torch.stack(want)


def single_predict(singles, x):
    return torch.stack([net.predict(x[s]) for s, net in enumerate(singles)])


def optimisers(net) -> list:
    """A single-seed learner's torch Adams (per-task-rnn: one per task; gru wraps torch's Adam)."""
    if hasattr(net, "nets"):
        return [opt for n in net.nets for opt in optimisers(n)]
    return [net.opt.opt if hasattr(net.opt, "opt") else net.opt]


def adam_moments(net) -> list[torch.Tensor]:
    """Adam's moments of the learner's parameters (those it trains: the gates have their own step)."""
    return [opt.state[p][k] for opt in optimisers(net) for p in net.parameters() if p in opt.state
            for k in ("exp_avg", "exp_avg_sq")]


@pytest.mark.parametrize("model", list(CASES))
def test_zoo_models_are_modules_with_a_state_dict_and_the_same_parameter_count(model):
    net = build(model)[0]
    assert isinstance(net, torch.nn.Module) and batching.can_stack(net)
    assert all(isinstance(p, torch.Tensor) for p in net.parameters())
    fresh = make(model, 99)
    x, y = batches(1)[0]
    net.learn(x[0], y[0])
    fresh.load_state_dict(copy.deepcopy(net.state_dict()))
    torch.testing.assert_close(fresh.predict(x[0]), net.predict(x[0]), rtol=0, atol=0)


@pytest.mark.parametrize("model", list(CASES))
def test_stacked_seeds_learn_and_predict_as_single_seed_learners(model):
    singles = build(model)
    stacked = batching.stack(build(model))
    params = stacked.parameters()                       # per-task models: (S, tasks, ...)
    assert all(len(p) == S for p in params)
    assert sum(p[0].numel() for p in params) == sum(p.numel() for p in singles[0].parameters())
    data = batches(len(TASKS))
    got, want = train(stacked, singles, model, data)
    assert got.shape == (len(TASKS), S) and not got.requires_grad
    torch.testing.assert_close(got.double(), want.double(), **TIGHT)
    assert not torch.equal(got[0], got[-1])                          # it learned
    x = data[0][0]
    torch.testing.assert_close(stacked.predict(x), single_predict(singles, x), **TIGHT)
    # each seed's gradient is its own: the Adam moments are the single seeds' (a mean of the
    # seeds' losses would scale them by 1/S)
    for s, net in enumerate(stacked.unstack()):
        moments = adam_moments(net)
        assert moments
        torch.testing.assert_close(moments, adam_moments(singles[s]), **TIGHT)


@pytest.mark.parametrize("model", list(CASES))
def test_a_seed_does_not_depend_on_the_other_seeds_data(model):
    """Seed 1's losses and weights are bit for bit the same whatever seeds 0 and 2 see."""
    runs = []
    for other in (0, 1):
        stacked = batching.stack(build(model))
        data = batches(4, seed=0)
        mixed = batches(4, seed=10 + other)
        for (x, y), (xo, yo) in zip(data, mixed):
            x, y = x.clone(), y.clone()
            x[[0, 2]], y[[0, 2]] = xo[[0, 2]], yo[[0, 2]]
            if privileged(model):
                stacked.observe_task([0] * S)
            loss = stacked.learn(x, y)
        runs.append((loss[1], [p[1].detach().clone() for p in stacked.parameters()]))
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


@pytest.mark.parametrize("model", list(CASES))
def test_unstacked_learners_predict_and_continue_as_the_stacked_one(model):
    singles = build(model)
    stacked = batching.stack(build(model))
    data = batches(len(TASKS) + 3)
    train(stacked, singles, model, data[:len(TASKS)])
    parts = stacked.unstack()
    assert len(parts) == S and all(type(p) is type(singles[0]) for p in parts)
    x = data[0][0]
    torch.testing.assert_close(single_predict(parts, x), stacked.predict(x), **TIGHT)
    # they continue as the stacked learner and as the single seeds (weights, Adam state, generators)
    got, want = train(stacked, singles, model, data[len(TASKS):], tasks=[1, 1, 1])
    _, again = train(batching.stack(parts), parts, model, data[len(TASKS):], tasks=[1, 1, 1])
    torch.testing.assert_close(again.double(), want.double(), **TIGHT)
    torch.testing.assert_close(got.double(), want.double(), **TIGHT)
    # independent copies: damaging one leaves the stacked learner alone
    before = stacked.predict(x)
    copy_ = stacked.unstack()[1]
    if hasattr(copy_, "perturb"):
        assert copy_.perturb("weight_noise", 0.5, torch.Generator().manual_seed(0))
        assert copy_.perturb("unit_ablation", 0.5, torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in copy_.parameters():
            p.add_(1.0)
    copy_.learn(x[1], data[0][1][1])
    torch.testing.assert_close(stacked.predict(x), before, rtol=0, atol=0)
    # a state_dict round trip into a fresh learner of another seed
    fresh = make(model, 42)
    if privileged(model):
        fresh.observe_task(1)
        parts[2].observe_task(1)
    fresh.load_state_dict(parts[2].state_dict())
    torch.testing.assert_close(fresh.predict(x[2]), parts[2].predict(x[2]), rtol=0, atol=0)


def generator_states(stacked) -> list[torch.Tensor]:
    """The states of the noise generators of the stacked learner's seeds (as unstack() copies them)."""
    return [m.gen.get_state() for net in stacked.unstack() for m in net.modules() if hasattr(m, "gen")]


@pytest.mark.parametrize("model", list(CASES))
def test_record_hidden_gives_the_noiseless_states_without_side_effects(model):
    singles = build(model)
    stacked = batching.stack(build(model))
    x = batches(1)[0][0]
    if privileged(model):
        stacked.observe_task([0] * S)
        for net in singles:
            net.observe_task(0)
    gens = generator_states(stacked)
    hs = stacked.record_hidden(x)
    assert hs.shape == (S, T, B, CASES[model].get("hidden", 8))
    torch.testing.assert_close(hs, torch.stack([net.record_hidden(x[s]) for s, net in enumerate(singles)]), **TIGHT)
    torch.testing.assert_close(stacked.record_hidden(x), hs, rtol=0, atol=0)
    assert all(torch.equal(a, b) for a, b in zip(gens, generator_states(stacked), strict=True))
    assert not hs.requires_grad


@pytest.mark.parametrize("model", list(CASES))
def test_stack_refuses_learners_that_differ(model):
    a, b = build(model, seeds=[0, 1])
    other = make(model, 2, **OTHER.get(model, {"hidden": 4}))
    with pytest.raises(SwitchbenchError, match="one"):
        batching.stack([a, other])
    if model not in PER_TASK:                  # one Adam over the stacks: one learning rate
        with pytest.raises(SwitchbenchError, match="one"):
            batching.stack([a, make(model, 2, lr=1e-3)])
    x, y = batches(1)[0]
    if privileged(model):
        a.observe_task(0)
    a.learn(x[0], y[0])
    if model in PER_TASK:                      # each seed keeps its own Adams: any step counts stack
        assert len(batching.stack([a, b]).unstack()) == 2
        return
    with pytest.raises(SwitchbenchError, match="different numbers of optimiser steps"):
        batching.stack([a, b])


@pytest.mark.parametrize("model", list(CASES))
def test_to_device_moves_weights_and_optimiser_state(model):
    stacked = batching.stack(build(model))
    x, y = batches(1)[0]
    if privileged(model):
        stacked.observe_task([0] * S)
    stacked.learn(x, y)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert stacked.to(device) is stacked
    loss = stacked.learn(x.to(device), y.to(device))
    assert loss.shape == (S,) and torch.isfinite(loss).all()
    assert all(p.device.type == device.type for p in stacked.parameters())
    net = stacked.unstack()[0].to(device)
    assert all(v.device.type == device.type for opt in optimisers(net) for st in opt.state.values()
               for k, v in st.items() if k != "step")


def test_stacked_gates_follow_the_single_seeds_gates():
    singles = build("gated-rnn")
    stacked = batching.stack(build("gated-rnn"))
    assert torch.equal(stacked.probe()["gates"], torch.full((S, 2), 0.5))
    train(stacked, singles, "gated-rnn", batches(len(TASKS)))
    gates = stacked.probe()["gates"]
    torch.testing.assert_close(gates, torch.stack([net.probe()["gates"] for net in singles]), **TIGHT)
    assert not torch.equal(gates, torch.full((S, 2), 0.5))
    assert torch.equal(stacked.parameters()[-1], gates)


@pytest.mark.parametrize("model", [m for m in CASES if privileged(m)])
def test_stacked_seeds_may_be_told_different_tasks(model):
    """Seeds 0 and 2 switch to task 1 half-way, seed 1 stays on task 0: every seed still
    matches its single-seed learner, and consolidating models anchor only seeds 0 and 2."""
    singles = build(model)
    stacked = batching.stack(build(model))
    data = batches(len(TASKS))
    for step, (x, y) in enumerate(data):
        tasks = [TASKS[step], 0, TASKS[step]]
        stacked.observe_task(tasks)
        for net, k in zip(singles, tasks):
            net.observe_task(k)
        got = stacked.learn(x, y)
        torch.testing.assert_close(got.double(), torch.tensor([n.learn(x[s], y[s]) for s, n in enumerate(singles)],
                                                              dtype=torch.float64), **TIGHT)
    for k in (0, 1):
        stacked.observe_task([k] * S)
        for net in singles:
            net.observe_task(k)
        torch.testing.assert_close(stacked.predict(data[0][0]), single_predict(singles, data[0][0]), **TIGHT)
    parts = stacked.unstack()
    if model == "leaky-rnn-ewc":
        assert [set(n.anchors) for n in parts] == [{0}, set(), {0}]
        for part, single in zip(parts, singles):
            for a, b in zip(part.anchors.get(0, ([], []))[0], single.anchors.get(0, ([], []))[0]):
                torch.testing.assert_close(a, b, **TIGHT)
    elif model == "leaky-rnn-si":
        assert [bool(n.Omega[1].abs().sum() > 0) for n in parts] == [True, False, True]
        for part, single in zip(parts, singles):
            torch.testing.assert_close(part.Omega + part.omega, single.Omega + single.omega, **TIGHT)


@pytest.mark.parametrize("model", PER_TASK)
def test_per_task_weights_of_a_task_a_seed_is_not_told_stay_put(model):
    """Seed 1 never learns task 1: its task-1 weights keep their values; seed 0's move."""
    stacked = batching.stack(build(model))
    start = [P[:, 1].clone() for P in stacked.parameters()]
    for x, y in batches(3):
        stacked.observe_task([1, 0, 1])
        stacked.learn(x, y)
    after = [P[:, 1] for P in stacked.parameters()]
    assert all(torch.equal(a[1], b[1]) for a, b in zip(start, after))
    assert all(not torch.equal(a[0], b[0]) for a, b in zip(start, after))


def test_si_importance_is_clipped_at_zero_as_yang_et_al_clip_it():
    """At a boundary SI's importance becomes ``max(0, Omega + omega / (Delta^2 + xi))`` (Yang
    et al. 2019's sequential training), in the single and the seed-stacked learner alike. A
    path integral ``omega`` comes out negative where an update went against the task's
    gradient (Adam's momentum, the penalty's pull); here half of it is made negative, so the
    unclipped sum would keep negative importances."""
    single = make("leaky-rnn-si", 0)
    stacked = batching.stack([make("leaky-rnn-si", 0), make("leaky-rnn-si", 1)])
    (x, y), (x1, y1) = [(x[:2], y[:2]) for x, y in batches(2)]
    single.observe_task(0)
    stacked.observe_task([0, 0])
    single.learn(x[0], y[0])
    stacked.learn(x, y)
    g = torch.Generator().manual_seed(0)
    signs = [torch.where(torch.rand(w.shape, generator=g) < 0.5, -1.0, 1.0) for w in single.omega]
    for w, w_stacked, sign in zip(single.omega, stacked.si["omega"], signs):
        w.copy_(sign * (w.abs() + 1e-3))
        w_stacked[0].copy_(w)
    delta = [p.detach() - s for p, s in zip(single.params, single.start)]
    raw = [O + w / (d.square() + single.xi) for O, w, d in zip(single.Omega, single.omega, delta)]
    assert all(bool((r < 0).any()) for r in raw)
    single.observe_task(1)
    single.learn(x1[0], y1[0])                                  # the boundary
    stacked.observe_task([1, 1])
    stacked.learn(x1, y1)
    for O, r, O_stacked in zip(single.Omega, raw, stacked.si["Omega"]):
        torch.testing.assert_close(O, r.clamp(min=0), **TIGHT)
        torch.testing.assert_close(O_stacked[0], O, **TIGHT)
        assert bool((O_stacked >= 0).all())
