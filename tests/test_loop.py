"""The one run loop: S seeds at once give each seed the numbers it gets alone, one failing
seed fails alone, the cache key ignores how many seeds ran together, every caller (run,
run_seeds, run_many, the command line) goes through it, and trained models come out."""
import numpy as np
import pandas as pd
import pytest
import torch

import conftest

import switchbench
from switchbench.benchmark import evaluation, loop, runner
from switchbench.benchmark.cli import main
from switchbench.benchmark.suite import Failure, RunSpec, run_many
from switchbench.errors import SwitchbenchError
from switchbench.models import batching

SMALL = dict(n_blocks=3, block_size=25, k_adapt=4, n_eval=50, progress=False)
STACKED = []     # the number of seeds of every stack() call


class Lin:
    """A plug-in that stacks: one linear map per seed, plain gradient descent (float64)."""

    def __init__(self, W: torch.Tensor, lr: float):
        self.W, self.lr = W, lr

    def predict(self, x):
        return x.double() @ self.W.T

    def learn(self, x, y):
        err = x.double() @ self.W.T - y.double()
        loss = 0.5 * err.square().sum(-1).mean()
        self.W = self.W - self.lr * err.T @ x.double() / len(x)
        return float(loss)

    def parameters(self):
        return [self.W]

    def probe(self):
        return {"norm": self.W.norm()[None]}

    def state_dict(self):
        return {"W": self.W.clone()}

    def record_hidden(self, x):
        return x.double() @ self.W.T

    @classmethod
    def stack(cls, learners):
        STACKED.append(len(learners))
        return LinStack(torch.stack([m.W for m in learners]), torch.tensor([m.lr for m in learners]))


class LinStack:
    """S seeds of :class:`Lin` as one batched learner."""

    def __init__(self, W, lr):
        self.W, self.lr = W, lr          # lr: one per seed, (S,)

    def predict(self, x):
        return x.double() @ self.W.transpose(1, 2)

    def learn(self, x, y):
        err = x.double() @ self.W.transpose(1, 2) - y.double()
        loss = 0.5 * err.square().sum(-1).mean(-1)
        self.W = self.W - self.lr[:, None, None] * (err.transpose(1, 2) @ x.double() / x.shape[1])
        return loss

    def observe_task(self, tasks):
        pass

    def parameters(self):
        return [self.W]

    def probe(self):
        return {"norm": self.W.flatten(1).norm(dim=1)[:, None]}

    def unstack(self):
        return [Lin(W.clone(), float(lr)) for W, lr in zip(self.W, self.lr)]

    def to(self, device):
        self.W, self.lr = self.W.to(device), self.lr.to(device)
        return self


def make(spec, seed, lr=0.05):
    g = torch.Generator().manual_seed(seed)
    return Lin(0.1 * torch.randn(spec.output_size, spec.input_size, generator=g, dtype=torch.float64), lr)


def make_unstable(spec, seed):
    """Diverges for odd model seeds only."""
    return make(spec, seed, lr=1e9 if seed % 2 else 0.05)


BUILT = []      # the model seed of every learner the counting plug-ins built, in order


class Solo(Lin):
    stack = None          # cannot stack: the loop runs one seed per call


def make_counted(spec, seed, cls=Lin):
    """A plug-in with global state: its first weights depend on how many learners it built before."""
    BUILT.append(seed)
    learner = make(spec, seed)
    return cls(learner.W * len(BUILT), learner.lr)


def make_counted_solo(spec, seed):
    return make_counted(spec, seed, Solo)


def model_seed(seed: int) -> int:
    return evaluation._seed_int(np.random.SeedSequence(seed).spawn(3)[1])


def assert_same(a, b, rtol=1e-9, atol=1e-12):
    conftest.assert_same_run(a, b, rtol, atol, metric_rtol=max(rtol, 1e-7), metric_atol=1e-9)
    assert a.config == b.config


@pytest.mark.parametrize("paradigm, kw", [("blocked-linear", {}), ("blocked-linear", {"schedule": "interleaved"}),
                                          ("blocked-linear", {"cue": True, "n_tasks": 3, "output_size": 6})])
def test_three_seeds_at_once_equal_each_seed_alone(paradigm, kw):
    STACKED.clear()
    together = runner.run_seeds(paradigm, "test_loop:make", [0, 4, 7], cache=False, **SMALL, **kw)
    assert STACKED == [3]                                         # one batched learner of three seeds
    alone = [switchbench.run(paradigm, "test_loop:make", seed=s, cache=False, **SMALL, **kw) for s in (0, 4, 7)]
    assert STACKED == [3]                                         # one seed: the learner itself (Single)
    for a, b in zip(together, alone):      # a batched product against a lone one: float rounding apart
        assert_same(a, b, rtol=1e-6, atol=1e-9)
    assert not np.allclose(together[0].R0, together[1].R0)        # the seeds differ
    assert [r.config["seed"] for r in together] == [0, 4, 7]


def test_a_diverging_seed_fails_alone_and_the_others_are_cached():
    seeds = list(range(6))
    bad = [s for s in seeds if model_seed(s) % 2]
    assert 0 < len(bad) < len(seeds)
    specs = [RunSpec("blocked-linear", "test_loop:make_unstable", s, {"n_blocks": 2, "block_size": 20})
             for s in seeds]
    STACKED.clear()
    res = run_many(specs, progress=False)
    assert STACKED == [6]
    assert [s for s, r in zip(seeds, res) if isinstance(r, Failure)] == bad
    for s, r in zip(seeds, res):
        if isinstance(r, Failure):
            assert r.reason.startswith(f"test_loop:make_unstable on blocked-linear (seed {s}): non-finite loss")
        else:
            assert r.path.exists() and np.isfinite(r.R0).all()
    with pytest.raises(SwitchbenchError, match=rf"\(seed {bad[0]}\): non-finite loss"):
        runner.run_seeds("blocked-linear", "test_loop:make_unstable", seeds, n_blocks=2, block_size=20,
                         progress=False)


def test_a_seed_is_cached_under_the_same_key_alone_or_batched(monkeypatch):
    together = runner.run_seeds("blocked-linear", "test_loop:make", [2, 3], **SMALL)
    monkeypatch.setattr(runner, "_run", lambda *a, **k: pytest.fail("recomputed a cached seed"))
    alone = switchbench.run("blocked-linear", "test_loop:make", seed=3, **SMALL)
    assert alone.path == together[1].path and alone.learner is None        # loaded: no trained model
    assert_same(alone, together[1], rtol=0, atol=0)
    both = switchbench.run("blocked-linear", "test_loop:make", seeds=[3, 2], **SMALL)
    assert [r.path for r in both] == [together[1].path, together[0].path]


def test_run_many_and_the_command_line_run_seeds_through_one_loop_call(capsys):
    STACKED.clear()
    specs = [RunSpec("blocked-linear", "test_loop:make", s, {"n_blocks": 2, "block_size": 20}) for s in range(4)]
    specs.append(RunSpec("blocked-linear", "linear", 0, {"n_blocks": 2, "block_size": 20}))   # S = 1: Single
    res = run_many(specs, progress=False)
    assert STACKED == [4] and not [r for r in res if isinstance(r, Failure)]
    STACKED.clear()
    run_many(specs[:4], jobs=2, progress=False, cache="refresh")   # in workers: two chunks of two seeds
    assert main(["run", "--paradigm", "blocked-linear", "--model", "test_loop:make", "--seeds", "3",
                 "--set", "n_blocks=2", "--set", "block_size=30"]) == 0
    assert STACKED == [3] and "seed 2: " in capsys.readouterr().out


def test_the_trained_learner_checkpoints_and_hidden_states_come_out():
    res = switchbench.run("blocked-linear", "test_loop:make", seeds=[0, 1], checkpoints=True, record_hidden=True,
                          cache=False, **SMALL)
    env = runner.prepare("blocked-linear", "test_loop:make", **{k: v for k, v in SMALL.items()
                                                                 if k != "progress"}).env
    for r in res:
        assert isinstance(r.learner, Lin)
        eval_int = evaluation._seed_int(np.random.SeedSequence(r.config["seed"]).spawn(3)[2])
        x, y = map(torch.as_tensor, env.eval_batch(1, 50, seed=(eval_int, 0, 1)))
        loss = float(0.5 * (r.learner.predict(x) - y).square().sum(-1).mean()) / env.task_spec.null_loss[1]
        assert loss == pytest.approx(r.R0[-1, 1], rel=1e-9)        # the model that made the last R0 row
        assert len(r.checkpoints) == 3 and torch.equal(r.checkpoints[-1]["W"], r.learner.W)
        assert not torch.equal(r.checkpoints[0]["W"], r.checkpoints[-1]["W"])
        assert [h.shape for h in r.hidden] == [(50, env.task_spec.output_size)] * 2
    assert not torch.equal(res[0].learner.W, res[1].learner.W)


def test_checkpoints_or_hidden_states_asked_of_a_cached_run_recompute_it(monkeypatch):
    first = switchbench.run("blocked-linear", "test_loop:make", seeds=[0, 1], **SMALL)
    for ask in (dict(checkpoints=True), dict(record_hidden=True)):
        again = switchbench.run("blocked-linear", "test_loop:make", seeds=[0, 1], **ask, **SMALL)
        for a, r in zip(first, again):
            assert isinstance(r.learner, Lin) and r.path == a.path
            assert (r.checkpoints is not None) == ("checkpoints" in ask) and (r.hidden is not None) != (r.checkpoints
                                                                                                        is not None)
            assert_same(r, a, rtol=0, atol=0)
    monkeypatch.setattr(runner, "_run", lambda *a, **k: pytest.fail("recomputed a cached seed"))
    assert switchbench.run("blocked-linear", "test_loop:make", seed=1, **SMALL).learner is None


def test_devices():
    with pytest.raises(SwitchbenchError, match="device must be one of cpu, cuda, auto"):
        switchbench.run("blocked-linear", "linear", device="tpu", cache=False, **SMALL)
    if not torch.cuda.is_available():
        with pytest.raises(SwitchbenchError, match="no CUDA device"):
            switchbench.run("blocked-linear", "linear", device="cuda", cache=False, **SMALL)
    a = switchbench.run("blocked-linear", "test_loop:make", device="auto", cache=False, **SMALL)
    b = switchbench.run("blocked-linear", "test_loop:make", cache=False, **SMALL)
    np.testing.assert_allclose(a.R0, b.R0, rtol=1e-9)


def test_a_learner_that_cannot_stack_runs_one_seed_per_call():
    res = runner.run_seeds("blocked-linear", "linear", [0, 1], cache=False, **SMALL)   # Single: two calls
    for s, r in zip((0, 1), res):
        b = switchbench.run("blocked-linear", "linear", seed=s, cache=False, **SMALL)
        pd.testing.assert_frame_equal(r.log, b.log, check_exact=True)
        np.testing.assert_array_equal(r.R0, b.R0)
        np.testing.assert_array_equal(r.Rk, b.Rk)
    with pytest.raises(TypeError, match="cannot run several seeds"):
        batching.stack([object(), object()])


def test_seeds_whose_blocks_end_elsewhere_run_in_separate_calls(monkeypatch):
    """A paradigm whose curriculum length depends on the seed: one loop call per block layout."""
    from switchbench.paradigms.schedules import make_schedule

    def by_seed(self, rng):      # blocks of 20 or 30 steps, drawn from the stream
        return make_schedule("blocked", self.n_tasks, self.n_blocks, int(rng.choice([20, 30])), rng, self._phases)

    from switchbench.paradigms.linear import BlockedLinearEnv
    monkeypatch.setattr(BlockedLinearEnv, "_make_curriculum", by_seed)
    calls = []
    real = loop.train
    monkeypatch.setattr(loop, "train", lambda rc, seeds, *a, **k: calls.append(seeds) or real(rc, seeds, *a, **k))
    res = runner.run_seeds("blocked-linear", "test_loop:make", range(6), cache=False, n_blocks=2, progress=False)
    assert sorted(s for c in calls for s in c) == list(range(6)) and len(calls) == 2
    for c in calls:
        assert len({len(res[s].log) for s in c}) == 1
    assert {len(r.log) for r in res} == {40, 60}


@pytest.mark.parametrize("model", ["test_loop:make_counted", "test_loop:make_counted_solo"])
def test_exactly_one_learner_is_built_per_seed(model):
    """No throwaway learners (to ask whether the model stacks, or to plan the chunks): a
    plug-in with global state gets the same numbers through run, run_seeds and run_many."""
    small = {k: v for k, v in SMALL.items() if k != "progress"}
    BUILT.clear()
    alone = switchbench.run("blocked-linear", model, seed=0, cache=False, **SMALL)
    assert BUILT == [model_seed(0)]
    BUILT.clear()
    many = run_many([RunSpec("blocked-linear", model, s, small) for s in (0, 1, 2)], jobs=1, progress=False,
                    cache=False)
    assert BUILT == [model_seed(s) for s in (0, 1, 2)]
    assert_same(many[0], alone, rtol=1e-6, atol=1e-9)     # batched: float rounding only (built twice: 2x the weights)
    BUILT.clear()
    runner.run_seeds("blocked-linear", model, [0, 1], cache=False, **SMALL)
    assert BUILT == [model_seed(s) for s in (0, 1)]
    BUILT.clear()
    res = run_many([RunSpec("blocked-linear", model, s, small) for s in (0, 1, 2)], jobs=2, progress=False,
                   cache=False)
    assert BUILT == [] and not [r for r in res if isinstance(r, Failure)]   # built in the workers only


def test_the_command_line_prepares_a_configuration_once(monkeypatch):
    """``switchbench run`` checks its configuration once (``validate``) and runs that one."""
    from switchbench.benchmark import config, suite

    calls, real = [], config.prepare
    counting = lambda *a, **k: calls.append(a) or real(*a, **k)         # noqa: E731
    for module in (config, suite, runner):
        monkeypatch.setattr(module, "prepare", counting)
    assert main(["run", "--paradigm", "blocked-linear", "--model", "test_loop:make", "--seeds", "2",
                 "--set", "n_blocks=2", "--set", "block_size=20"]) == 0
    assert calls == [("blocked-linear", "test_loop:make")]
