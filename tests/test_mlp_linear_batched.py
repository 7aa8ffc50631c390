"""The linear and MLP zoo models as nn.Modules, and S seeds stacked into one learner
(:meth:`ZooModule.stack`) against S single-seed learners on the same per-seed batches.

Exactness: the gated-linear family and the gated-mlp family are bit-identical (the batched
products sum in the same order); ``linear``, ``deep-linear`` (a batched matrix product
instead of one product per seed) and ``mlp``, ``mlp-cued`` (the same, in the trained hidden
layers) agree to float32 rounding.
"""
import copy

import pytest
import torch

from switchbench import models
from switchbench.models import batching
from switchbench.paradigms.base import TaskSpec

pytestmark = pytest.mark.usefixtures("one_thread")

S = 3
LIN = TaskSpec("toy", 6, 2, 2, "mse", False, (1.0, 1.0), "blocked", 16)
DIG = TaskSpec("toy", 64, 10, 2, "cross_entropy", False, (2.3, 2.3), "blocked", 16, kind="classification")
CUED = TaskSpec("toy", 66, 10, 2, "cross_entropy", False, (2.3, 2.3), "blocked", 16, kind="classification")
EXACT = {"rtol": 0, "atol": 0}
ROUNDING = {"rtol": 1e-4, "atol": 1e-5}
CASES = [("gated-linear", LIN, {}, EXACT), ("gated-linear", LIN, {"dtype": "float64"}, EXACT),
         ("gated-linear-forgetful", LIN, {}, EXACT), ("oracle-gates", LIN, {}, EXACT),
         ("gated-linear-unitwise", LIN, {}, EXACT), ("linear", LIN, {}, ROUNDING), ("deep-linear", LIN, {}, ROUNDING),
         ("gated-mlp", DIG, {}, EXACT), ("gated-mlp", DIG, {"optimizer": "adam"}, EXACT),
         ("gated-mlp-forgetful", DIG, {}, EXACT), ("mlp", DIG, {}, ROUNDING), ("mlp", DIG, {"optimizer": "adam"}, ROUNDING),
         ("mlp-cued", CUED, {}, ROUNDING)]
IDS = [f"{name}{'-' + '-'.join(map(str, hp.values())) if hp else ''}" for name, _, hp, _ in CASES]


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _cache(feature_cache, monkeypatch):
    """One cache for the module: the digit-feature network is pretrained once."""
    monkeypatch.setenv("SWITCHBENCH_CACHE", str(feature_cache))


def batches(spec, n=10, seed=1):
    """Per-seed batches of ``n`` steps; seed s switches from task 0 to task 1 at step 4 + s."""
    g = torch.Generator().manual_seed(seed)
    teachers = torch.randn(S, 2, spec.output_size, spec.input_size, generator=g)
    for t in range(n):
        tasks = [0 if t < 4 + s else 1 for s in range(S)]
        if spec.loss == "mse":
            x = torch.randn(S, 16, spec.input_size, generator=g)
            y = torch.stack([x[s] @ teachers[s, k].T for s, k in enumerate(tasks)])
        else:
            x = torch.rand(S, 16, spec.input_size, generator=g)                  # pixels in [0, 1]
            if spec.input_size > 64:                                       # the cue
                x[..., 64:] = torch.nn.functional.one_hot(torch.tensor(tasks), 2)[:, None].float()
            y = torch.randint(0, 10, (S, 16), generator=g)
        yield tasks, x, y


def build(name, spec, hp):
    entry = models.get(name)
    return entry, [entry.build(spec, seed=s, **hp) for s in range(S)]


def step_singles(entry, singles, tasks, x, y):
    if entry.card.privileged:
        for m, k in zip(singles, tasks):
            m.observe_task(k)
    pred = torch.stack([m.predict(x[s]) for s, m in enumerate(singles)])
    return pred, torch.tensor([m.learn(x[s], y[s]) for s, m in enumerate(singles)], dtype=torch.float64)


def step_stacked(entry, stacked, tasks, x, y):
    if entry.card.privileged:
        stacked.observe_task(tasks)
    return stacked.predict(x), stacked.learn(x, y)


@pytest.mark.parametrize("name, spec, hp, tol", CASES, ids=IDS)
def test_stacked_seeds_equal_single_seed_learners(name, spec, hp, tol):
    entry, singles = build(name, spec, hp)
    stacked = batching.stack(build(name, spec, hp)[1])
    assert [tuple(p.shape) for p in stacked.parameters()] == [(S, *p.shape) for p in singles[0].parameters()]
    for tasks, x, y in batches(spec):
        pred, loss = step_singles(entry, singles, tasks, x, y)
        spred, sloss = step_stacked(entry, stacked, tasks, x, y)
        assert sloss.shape == (S,)
        torch.testing.assert_close(sloss.double(), loss.double(), **tol)
        torch.testing.assert_close(spred, pred, **tol)
        if hasattr(stacked, "probe"):
            for k, v in stacked.probe().items():
                torch.testing.assert_close(v, torch.stack([m.probe()[k] for m in singles]), **tol)
    # unstack: S independent single-seed learners that carry on as the singles do (optimiser state included)
    back = stacked.unstack()
    assert len(back) == S and all(type(m) is type(singles[0]) and m.n_seeds is None for m in back)
    for m, single in zip(back, singles):
        for (k, a), b in zip(m.state_dict().items(), single.state_dict().values()):
            torch.testing.assert_close(a, b, **tol, msg=k)
    for tasks, x, y in batches(spec, n=3, seed=2):
        torch.testing.assert_close(step_singles(entry, back, tasks, x, y), step_singles(entry, singles, tasks, x, y),
                                   **tol)
    back[0].learn(x[0], y[0])                                    # the copies are independent of each other
    assert not torch.equal(back[0].parameters()[0], back[1].parameters()[0])


@pytest.mark.parametrize("name, spec, hp", [("gated-linear-unitwise", LIN, {}), ("oracle-gates", LIN, {}),
                                            ("deep-linear", LIN, {}), ("mlp", DIG, {"optimizer": "adam"}),
                                            ("gated-mlp", DIG, {"optimizer": "adam"})])
def test_seeds_do_not_leak_into_each_other(name, spec, hp):
    """Seed 0's numbers are the same whatever seeds 1 and 2 see."""
    entry = models.get(name)
    a, b = (batching.stack([entry.build(spec, seed=s, **hp) for s in range(S)]) for _ in range(2))
    for tasks, x, y in batches(spec):
        other_x, other_y = x.clone(), y.clone()
        other_x[1:], other_y[1:] = x[1:].flip(1) * 2, y[1:].flip(0)
        pa, la = step_stacked(entry, a, tasks, x, y)
        pb, lb = step_stacked(entry, b, [tasks[0], 1 - tasks[1], tasks[2]], other_x, other_y)
        assert torch.equal(pa[0], pb[0]) and la[0] == lb[0]
        assert not torch.equal(la[1:], lb[1:])
    assert torch.equal(a.parameters()[0][0], b.parameters()[0][0])


@pytest.mark.parametrize("name, spec", [("gated-linear", LIN), ("oracle-gates", LIN), ("deep-linear", LIN),
                                        ("gated-mlp", DIG), ("mlp", DIG)])
def test_zoo_models_are_modules_with_a_state_dict(name, spec):
    net = models.get(name).build(spec, seed=0)
    assert isinstance(net, torch.nn.Module)
    state = net.state_dict()
    assert all(any(p is t or torch.equal(p, t) for t in state.values() if torch.is_tensor(t)) for p in net.parameters())
    twin = models.get(name).build(spec, seed=1)
    twin.load_state_dict(state)
    x = torch.randn(4, spec.input_size)
    assert torch.equal(twin.predict(x), net.predict(x))
    moved = copy.deepcopy(net).to("cpu")
    assert torch.equal(moved.predict(x), net.predict(x))


def test_the_batched_engine_still_reads_the_linear_learners():
    """``models/covariance_engine.py`` stacks the linear learners from these attributes."""
    net = models.get("gated-linear").build(LIN, seed=0)
    assert net.W.numpy().shape == (2, 2, 6) and net.c.numpy().shape == (2,) and net.dtype == torch.float32
    assert (net.lr_w, net.lr_c, net.lam, net.learn_gates, net.manifold_weight) == (1e-3 / 1.3, 1e-3 / 0.03, 0.1,
                                                                                   True, 10.0)
    lin = models.get("linear").build(LIN, seed=0)
    assert len(lin.layers) == 1 and lin.layers[0].numpy().shape == (2, 6) and lin.lr == 1e-3 / 1.3
