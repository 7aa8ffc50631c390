"""The model zoo: hand-written gradients against autograd, controls, registry, cards."""
import copy
import math

import pytest
import torch

from switchbench import models
from switchbench.errors import SwitchbenchError
from switchbench.losses import task_loss
from switchbench.models.gated_linear import gate_penalty, gate_penalty_grad, l2_gate_penalty, l2_gate_penalty_grad
from switchbench.paradigms.base import TaskSpec

SPEC = TaskSpec("toy", 5, 3, 2, "mse", False, (1.0, 1.0), "blocked", 16)


def data(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randn(n, 3, generator=g)


@pytest.mark.parametrize("weight", [10.0, 5.0, 0.0])
@pytest.mark.parametrize("c", [[0.5, 0.5], [1.2, -0.3], [-0.2, -0.1], [0.1, 0.3]])
def test_gate_penalty_gradient_matches_autograd(c, weight):
    c = torch.tensor(c, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(gate_penalty(c, weight), c)
    torch.testing.assert_close(gate_penalty_grad(c.detach(), weight), g)
    (g2,) = torch.autograd.grad(l2_gate_penalty(c, weight), c)
    torch.testing.assert_close(l2_gate_penalty_grad(c.detach(), weight), g2)


def test_gate_penalty_weighting_is_normalised():
    """R = (N + w M) / (1 + w): w = 10 is the old (N + 10 M) / 11, w = 0 leaves only N."""
    c = torch.tensor([0.9, -0.2], dtype=torch.float64)
    n, m = 10 * 0.2, 5 * (1.1 - 1) ** 2
    assert float(gate_penalty(c)) == pytest.approx((n + 10 * m) / 11)
    assert float(gate_penalty(c, 5.0)) == pytest.approx((n + 5 * m) / 6)
    assert float(gate_penalty(c, 0.0)) == pytest.approx(n)


@pytest.mark.parametrize("name", ["gated-linear", "gated-linear-forgetful", "gated-linear-unitwise"])
@pytest.mark.parametrize("bad", [-1.0, float("nan"), "heavy"])
def test_manifold_weight_must_be_non_negative(name, bad):
    with pytest.raises(SwitchbenchError, match="manifold_weight"):
        models.get(name).build(SPEC, seed=0, manifold_weight=bad)


@pytest.mark.parametrize("weight", [10.0, 5.0])
def test_gated_linear_step_is_gradient_descent_on_the_paper_loss(weight):
    kw = {} if weight == 10.0 else {"manifold_weight": weight}      # 10 is the default
    net = models.get("gated-linear").build(SPEC, seed=1, dtype="float64", w_init=1.0, c_init=0.4, **kw)
    x, y = map(lambda t: t.double(), data())
    W = net.W.clone().requires_grad_()
    c = net.c.clone().requires_grad_()
    task = task_loss(torch.tensordot(c, x @ W.transpose(1, 2), dims=1), y, "mse")
    gW, gc = torch.autograd.grad(task + 0.1 * gate_penalty(c, weight), (W, c))
    returned = net.learn(x, y)
    assert returned == pytest.approx(task.item())           # the task loss before the update, no penalty
    torch.testing.assert_close(net.W, W.detach() - 1e-3 / 1.3 * gW)
    torch.testing.assert_close(net.c, c.detach() - 1e-3 / 0.03 * gc)


@pytest.mark.parametrize("hidden", [None, 7])
def test_deep_linear_step_is_gradient_descent(hidden):
    net = models.get("deep-linear").build(SPEC, seed=2, dtype="float64", hidden=hidden)
    x, y = map(lambda t: t.double(), data())
    layers = [w.clone().requires_grad_() for w in net.layers]
    loss = task_loss(x @ layers[0].T @ layers[1].T, y, "mse")
    grads = torch.autograd.grad(loss, layers)
    assert net.learn(x, y) == pytest.approx(loss.item())
    for w, w0, g in zip(net.layers, layers, grads):
        torch.testing.assert_close(w, w0.detach() - 1e-3 / 1.3 * g)


def test_defaults_of_the_flexible_model_and_its_controls():
    flex, forget = models.get("gated-linear").hparams(), models.get("gated-linear-forgetful").hparams()
    assert (flex["dt"], flex["tau_w"], flex["tau_c"], flex["lam"], flex["c_init"]) == (1e-3, 1.3, 0.03, 0.1, 0.5)
    assert forget["tau_c"] == forget["tau_w"] == 1.3 and forget["lam"] == 0
    net = models.get("gated-linear").build(SPEC, seed=0)
    assert net.W.shape == (2, 3, 5) and torch.equal(net.c, torch.full((2,), 0.5))
    big = models.get("gated-linear").build(TaskSpec("t", 400, 50, 2, "mse", False, (1, 1), "blocked", 1), seed=0)
    assert big.W.std().item() == pytest.approx(0.01 / 20, rel=0.02)


def test_oracle_gates_follow_the_announced_task_and_do_not_learn_them():
    entry = models.get("oracle-gates")
    assert entry.card.privileged
    net = entry.build(SPEC, seed=0)
    net.observe_task(1)
    x, y = data()
    net.learn(x, y)
    assert net.c.tolist() == [0.0, 1.0]
    W0 = net.W.clone()
    net.learn(x, y)
    assert torch.equal(net.W[0], W0[0]) and not torch.equal(net.W[1], W0[1])   # only the active path learns


@pytest.mark.parametrize("name", ["gated-linear", "gated-linear-forgetful", "oracle-gates", "linear", "deep-linear"])
def test_every_model_learns_predicts_without_side_effects_and_survives_deepcopy(name):
    net = models.get(name).build(SPEC, seed=0, w_init=0.5)
    x, y = data()
    before = net.predict(x).clone()
    torch.testing.assert_close(net.predict(x), before)
    twin = copy.deepcopy(net)
    first = net.learn(x, y)
    for _ in range(200):
        last = net.learn(x, y)
    assert last < first                                       # it learns
    torch.testing.assert_close(twin.predict(x), before)        # the copy is independent
    assert models.count_parameters(net) > 0


def test_same_seed_same_initialisation():
    a, b, c = (models.get("deep-linear").build(SPEC, seed=s) for s in (3, 3, 4))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.parameters()[0], c.parameters()[0])


def test_unknown_names_and_parameters_are_clear_errors():
    with pytest.raises(SwitchbenchError, match="unknown model 'nope'; valid: .*gated-linear"):
        models.get("nope")
    with pytest.raises(SwitchbenchError, match="has no parameter 'tau_x'; valid: c_init, dt, dtype"):
        models.get("gated-linear").build(SPEC, 0, tau_x=1)
    with pytest.raises(SwitchbenchError, match="cannot import model module"):
        models.get("no_such_module:make")
    with pytest.raises(SwitchbenchError, match="dtype must be one of"):
        models.get("gated-linear").build(SPEC, 0, dtype="float16")


def test_a_model_declines_a_paradigm_it_does_not_support():
    seq = TaskSpec("seq", 5, 3, 2, "cross_entropy", True, (1.0, 1.0), "blocked", 4, kind="sequence")
    with pytest.raises(SwitchbenchError, match="supports regression paradigms, not sequence"):
        models.get("gated-linear").build(seq, 0)


def make_toy(spec, seed, lr=0.1):
    """A toy model given by module:factory."""
    return models.get("linear").factory(spec, seed, dt=lr, tau_w=1.0)


def test_register_decorator_and_module_factory_paths():
    @models.register("test-toy", description="toy", privileged=True)
    def make(spec, seed, scale=1.0):
        return models.get("linear").factory(spec, seed)

    assert "test-toy" in models.names() and models.get("test-toy").card.privileged
    assert models.get("test-toy").hparams() == {"scale": 1.0}
    entry = models.get("test_models:make_toy")
    assert entry.hparams() == {"lr": 0.1} and entry.card.name == "test_models:make_toy"
    assert entry.build(SPEC, 0).predict(torch.zeros(2, 5)).shape == (2, 3)


# --- every registered built-in model, without a list to keep -------------------------------------
#
# Each model runs on the first small paradigm configuration of test_paradigms it accepts, with
# small values of the hyperparameters that size a network (where its factory has them).

from test_paradigms import SMALL as SMALL_PARADIGMS  # noqa: E402

from switchbench.models import batching  # noqa: E402

#: small values of sizing hyperparameters, by parameter name (applied where a factory has one)
SMALL_HPARAMS = {"hidden": 8, "n_modules": 2, "module_size": 4, "pretrain": "none", "pretrain_cache": False,
                 "optimizer": "adam"}            # the optimiser with a state (stacked, saved)
STEPS = 4


def _envs():
    import gymnasium

    out = {}
    for config, kw in SMALL_PARADIGMS.items():
        env = gymnasium.make(config.split(" ")[0], disable_env_checker=True, **kw).unwrapped
        out[config] = env
    return out


_ENVS = {}


def setting(name):
    """``(env, hyperparameters)``: the first small paradigm ``name`` runs on."""
    if not _ENVS:
        _ENVS.update(_envs())
    entry = models.get(name)
    for config, env in _ENVS.items():
        if entry.decline_reason(env.task_spec) is None:
            return env, {k: v for k, v in SMALL_HPARAMS.items() if k in entry.hparams()}
    raise AssertionError(f"model {name!r} runs on none of test_paradigms' small configurations: add one there")


def build(name, seed):
    env, hp = setting(name)
    return models.get(name).build(env.task_spec, seed, **hp)


def batch(env, step: int, seed: int = 0):
    """Step ``step``'s batch: the tasks alternate, each batch from its own seed."""
    k = step % env.task_spec.n_tasks
    x, y = env.eval_batch(k, env.task_spec.batch_size, seed=(seed, step, k))
    return k, torch.as_tensor(x), torch.as_tensor(y)


def told(name, learner, k):
    """A privileged learner is told the task before it predicts or learns, as in a run."""
    if models.get(name).card.privileged:
        learner.observe_task(k)


def learn(name, learner, env, steps=STEPS, seed=0):
    losses = []
    for t in range(steps):
        k, x, y = batch(env, t, seed)
        told(name, learner, k)
        losses.append(batching.loss_value(learner.learn(x, y)))
    return losses


def predict(name, learner, env):
    k, x, _ = batch(env, 99)
    told(name, learner, k)
    with torch.no_grad():
        return learner.predict(x)


BUILTIN = models.registry.builtin_names()


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _one_cache(request, _cache, shared_cache, monkeypatch):
    """The tests over every model share one cache (a pretrained feature network is made once)."""
    if "name" in getattr(request, "fixturenames", ()) and request.function.__name__.startswith("test_every_model_"):
        monkeypatch.setenv("SWITCHBENCH_CACHE", str(shared_cache))


@pytest.mark.parametrize("name", BUILTIN)
def test_every_model_learns_and_is_determined_by_its_seed(name):
    env, _ = setting(name)
    a, b, other = build(name, 3), build(name, 3), build(name, 4)
    first = predict(name, a, env)
    torch.testing.assert_close(predict(name, b, env), first, rtol=0, atol=0)
    assert not torch.equal(predict(name, other, env), first), "another seed, another network"
    la, lb = learn(name, a, env), learn(name, b, env)
    assert la == lb and all(math.isfinite(v) for v in la)
    after = predict(name, a, env)
    assert not torch.equal(after, first), "a few steps change the predictions"
    torch.testing.assert_close(predict(name, b, env), after, rtol=0, atol=0)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_model_restores_from_its_state_dict(name):
    """A ``state_dict`` round trip restores the learner: its predictions and its next learning
    steps (the optimiser's state, the noise generator, whatever else they depend on), and the
    loaded state is the learner's own (no tensor shared with the source)."""
    env, _ = setting(name)
    trained, fresh = build(name, 3), build(name, 4)
    learn(name, trained, env)
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(predict(name, fresh, env), predict(name, trained, env), rtol=0, atol=0)
    twin = copy.deepcopy(fresh)
    steps = learn(name, trained, env, seed=1)
    assert learn(name, fresh, env, seed=1) == steps, "the next learning steps are the same"
    torch.testing.assert_close(predict(name, fresh, env), predict(name, trained, env), rtol=0, atol=0)
    assert learn(name, twin, env, seed=1) == steps, "the source's steps did not move the loaded state"
    torch.testing.assert_close(predict(name, twin, env), predict(name, trained, env), rtol=0, atol=0)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_model_that_stacks_gives_each_seed_its_single_numbers(name):
    env, _ = setting(name)
    if not batching.can_stack(build(name, 0)):
        pytest.skip(f"{name} runs one seed per call")
    seeds = (1, 2)
    singles = [build(name, s) for s in seeds]
    stacked = batching.stack([build(name, s) for s in seeds])
    privileged = models.get(name).card.privileged
    for t in range(STEPS):
        per_seed = [batch(env, t, seed=s) for s in seeds]          # each seed its own data
        k = per_seed[0][0]
        X, Y = torch.stack([b[1] for b in per_seed]), torch.stack([b[2] for b in per_seed])
        if privileged:
            stacked.observe_task([k] * len(seeds))
        with torch.no_grad():
            P = stacked.predict(X)
        losses = stacked.learn(X, Y)
        for i, (single, (_, x, y)) in enumerate(zip(singles, per_seed)):
            told(name, single, k)
            with torch.no_grad():
                torch.testing.assert_close(P[i], single.predict(x), rtol=1e-5, atol=1e-6)
            assert float(losses[i]) == pytest.approx(batching.loss_value(single.learn(x, y)), rel=1e-5, abs=1e-6)
    for single, back in zip(singles, stacked.unstack()):
        torch.testing.assert_close(predict(name, back, env), predict(name, single, env), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["leaky-rnn", "per-task-rnn", "leaky-rnn-ewc", "leaky-rnn-si"])
def test_yang_loss_stacks_seeds_and_returns_the_paradigms_cross_entropy(name):
    """``loss="yang"`` (Yang et al.'s squared error): a stacked seed learns as its single-seed
    learner, and ``learn`` still returns the paradigm's cross-entropy (the first step's loss is
    the cross-entropy learner's, same seed, same logits), while the update differs."""
    if not _ENVS:
        _ENVS.update(_envs())
    env = next(e for c, e in _ENVS.items() if c.startswith("switchbench/CognitiveSwitch"))
    spec = env.task_spec
    assert spec.dt, "the small cognitive setting has a time step"
    hp = {k: v for k, v in SMALL_HPARAMS.items() if k in models.get(name).hparams()}

    def make(seed, loss):
        return models.get(name).build(spec, seed, **hp, loss=loss)

    seeds = (1, 2)
    singles = [make(s, "yang") for s in seeds]
    stacked = batching.stack([make(s, "yang") for s in seeds])
    ce = make(1, "cross_entropy")
    privileged = models.get(name).card.privileged
    for t in range(STEPS):
        per_seed = [batch(env, t, seed=s) for s in seeds]
        k = per_seed[0][0]
        if privileged:
            stacked.observe_task([k] * len(seeds))
        losses = stacked.learn(torch.stack([b[1] for b in per_seed]), torch.stack([b[2] for b in per_seed]))
        for i, (single, (_, x, y)) in enumerate(zip(singles, per_seed)):
            told(name, single, k)
            assert float(losses[i]) == pytest.approx(batching.loss_value(single.learn(x, y)), rel=1e-5, abs=1e-6)
        told(name, ce, k)
        first = batching.loss_value(ce.learn(per_seed[0][1], per_seed[0][2]))
        if t == 0:
            assert first == pytest.approx(float(losses[0]), rel=1e-5), "the same logits: the same cross-entropy"
    for single, back in zip(singles, stacked.unstack()):
        torch.testing.assert_close(predict(name, back, env), predict(name, single, env), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(predict(name, ce, env), predict(name, singles[0], env)), "another objective, another update"
