"""TorchLearner: a user's nn.Module trained on the paradigm's loss, alone and stacked over seeds."""
import pytest
import torch

import switchbench
from switchbench.errors import SwitchbenchError
from switchbench.models import TorchLearner, batching, register
from switchbench.paradigms.base import TaskSpec

pytestmark = pytest.mark.usefixtures("one_thread")

SEQ = TaskSpec("toy-seq", 5, 3, 2, "cross_entropy", True, (1.1, 1.1), "blocked", 4, kind="sequence")
CLS = TaskSpec("toy-cls", 4, 3, 2, "cross_entropy", False, (1.1, 1.1), "blocked", 8, kind="classification")


class HandRNN(torch.nn.Module):
    """An Elman RNN written with Linear layers (vmap runs it: stacked seeds are batched)."""

    def __init__(self, n_in=5, hidden=8, n_out=3):
        super().__init__()
        self.inp, self.rec, self.out = torch.nn.Linear(n_in, hidden), torch.nn.Linear(hidden, hidden), \
            torch.nn.Linear(hidden, n_out)

    def forward(self, x):                                   # (T, B, in) -> (T, B, out)
        h, hs = x.new_zeros(x.shape[1], self.rec.in_features), []
        for xt in x:
            h = torch.tanh(self.inp(xt) + self.rec(h))
            hs.append(h)
        return self.out(torch.stack(hs))


class TorchRNN(torch.nn.Module):
    """nn.RNN returns (output, hidden); no vmap rule for it: stacked seeds run in a loop."""

    def __init__(self):
        super().__init__()
        self.rnn, self.out = torch.nn.RNN(5, 8), torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.rnn(x)[0])


def adam(p):
    return torch.optim.Adam(p, lr=1e-2)


def seq_batches(S, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(S, 6, 4, 5, generator=g)
        y = torch.randint(0, 3, (S, 6, 4), generator=g)
        y[:, :3] = -100                                      # masked steps, as the cognitive paradigm pads
        yield x, y


def make(module_cls, seed):
    torch.manual_seed(seed)
    return TorchLearner(module_cls(), adam, spec=SEQ)


@register("test-torch-linear", description="a user's nn.Linear through TorchLearner")
def make_torch_linear(spec, seed, lr=0.05):
    torch.manual_seed(seed)
    return TorchLearner(torch.nn.Linear(spec.input_size, spec.output_size), lambda p: torch.optim.SGD(p, lr=lr),
                        spec=spec)


def test_a_user_module_learns_blocked_linear():
    res = switchbench.run("blocked-linear", "test-torch-linear", seed=0, n_blocks=2, block_size=150, cache=False,
                          progress=False)
    loss = res.log["norm_loss"].to_numpy()
    assert loss[:10].mean() > 0.9 and loss[140:150].mean() < 0.5 * loss[:10].mean()
    assert res.metrics["params"] == 20 * 10 + 10          # nn.Linear(20, 10): the module's parameters


def test_masked_targets_are_ignored():
    """-100 targets: the same loss and update as the batch without those samples."""
    torch.manual_seed(0)
    a = TorchLearner(torch.nn.Linear(4, 3), lambda p: torch.optim.SGD(p, lr=0.5), spec=CLS)
    b = TorchLearner(torch.nn.Linear(4, 3), lambda p: torch.optim.SGD(p, lr=0.5), spec=CLS)
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    masked = y.clone()
    masked[::2] = -100
    assert a.learn(x, masked) == pytest.approx(b.learn(x[1::2], y[1::2]), abs=1e-6)
    assert torch.allclose(a.module.weight, b.module.weight, atol=1e-6)
    assert not torch.equal(a.module.weight, TorchLearner(torch.nn.Linear(4, 3), spec=CLS).module.weight)


def test_a_module_returning_a_tuple_is_read_by_its_first_element():
    torch.manual_seed(0)
    learner = TorchLearner(torch.nn.RNN(5, 3), adam, spec=SEQ)     # (output, h_n); output is (T, B, 3)
    (x, y), = seq_batches(1, 1)
    assert learner.predict(x[0]).shape == (6, 4, 3)
    losses = [learner.learn(x[0], y[0]) for _ in range(20)]
    assert losses[-1] < losses[0]


def test_a_wrong_output_shape_is_a_one_line_error():
    learner = TorchLearner(torch.nn.Linear(4, 2), spec=CLS)        # 2 outputs, the paradigm has 3 classes
    with pytest.raises(SwitchbenchError, match=r"Linear returned \(8, 2\) for an input of shape \(8, 4\); "
                                               r"expected \(8, 3\)") as e:
        learner.learn(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))
    assert "\n" not in str(e.value)
    with pytest.raises(SwitchbenchError, match="needs a torch.nn.Module"):
        TorchLearner(lambda x: x, spec=CLS)


def test_to_moves_the_optimiser_state_and_state_dict_holds_the_module():
    learner = make(HandRNN, 0)
    (x, y), = seq_batches(1, 1)
    learner.learn(x[0], y[0])
    learner.to(torch.float64)
    assert learner.module.inp.weight.dtype == torch.float64
    assert all(v.dtype == torch.float64 for st in learner.optimizer.state.values()
               for k, v in st.items() if k != "step")
    assert learner.predict(x[0]).dtype == torch.float64 and learner.learn(x[0], y[0]) > 0
    state = learner.state_dict()
    assert set(state) == {f"module.{k}" for k, _ in HandRNN().named_parameters()} | {"_extra_state"}
    twin = make(HandRNN, 1).to(torch.float64)
    twin.load_state_dict(state)                       # the optimiser's state too: the next step is the same
    assert twin.learn(x[0], y[0]) == learner.learn(x[0], y[0]) and twin.predict(x[0]).equal(learner.predict(x[0]))


@pytest.mark.parametrize("module_cls, mode, tol", [(HandRNN, "vmap", 1e-5), (TorchRNN, "loop", 0.0)])
def test_stacked_seeds_equal_single_seed_learners(module_cls, mode, tol):
    """vmap batches the matrix products (sums in another order: float32 rounding, tol 1e-5);
    the loop is the single learners themselves (exact)."""
    S = 3
    singles = [make(module_cls, s) for s in range(S)]
    stacked = batching.stack([make(module_cls, s) for s in range(S)])
    assert stacked.mode == mode
    for x, y in seq_batches(S, 10):
        want = torch.tensor([learner.learn(x[s], y[s]) for s, learner in enumerate(singles)], dtype=torch.float64)
        got = stacked.learn(x, y)
        assert got.shape == (S,) and torch.allclose(got.double(), want, rtol=0, atol=tol)
    assert torch.allclose(stacked.predict(x), torch.stack([m.predict(x[s]) for s, m in enumerate(singles)]),
                          rtol=0, atol=tol)
    assert [p.shape[0] for p in stacked.parameters()] == [S] * len(list(singles[0].parameters()))
    back = stacked.unstack()                                   # independent learners, optimiser state included
    for s, (b, single) in enumerate(zip(back, singles)):
        for x, y in seq_batches(1, 2, seed=9):
            assert b.learn(x[0], y[0]) == pytest.approx(single.learn(x[0], y[0]), abs=10 * tol + 1e-7)


def test_stacked_seeds_do_not_leak_into_each_other():
    """Seed 0's losses do not depend on what seeds 1 and 2 see."""
    S = 3
    a = batching.stack([make(HandRNN, s) for s in range(S)])
    b = batching.stack([make(HandRNN, s) for s in range(S)])
    for x, y in seq_batches(S, 5):
        la = a.learn(x, y)
        x2, y2 = x.clone(), y.clone()
        x2[1:] = 10 * torch.randn_like(x2[1:])
        y2[1:] = torch.where(y2[1:] >= 0, (y2[1:] + 1) % 3, y2[1:])
        lb = b.learn(x2, y2)
        assert la[0] == lb[0] and not torch.equal(la[1:], lb[1:])


def test_an_optimiser_that_couples_elements_runs_the_seeds_in_a_loop():
    learners = [TorchLearner(torch.nn.Linear(4, 3), lambda p: torch.optim.LBFGS(p), spec=CLS) for _ in range(2)]
    assert not learners[0].stackable and batching.stack(learners).mode == "loop"


def test_stacking_keeps_frozen_parameters_frozen():
    def frozen(seed):
        learner = make(HandRNN, seed)
        learner.module.inp.weight.requires_grad_(False)
        return learner
    stacked = batching.stack([frozen(s) for s in range(2)])
    before = {k: p.clone() for k, p in stacked.params.items()}
    for x, y in seq_batches(2, 2):
        stacked.learn(x, y)
    assert stacked.mode == "vmap" and torch.equal(stacked.params["inp.weight"], before["inp.weight"])
    assert not torch.equal(stacked.params["out.weight"], before["out.weight"])


# --- what the user asked for is kept: hidden states, its subclass, its tracebacks ----------------

class Recording(TorchLearner):
    """A user's subclass with a method of its own: the hidden states of its HandRNN."""

    def record_hidden(self, x):
        x, _ = self._cast(x)
        h, hs = x.new_zeros(x.shape[1], self.module.rec.in_features), []
        for xt in x:
            h = torch.tanh(self.module.inp(xt) + self.module.rec(h))
            hs.append(h)
        return torch.stack(hs)

    def n_units(self):
        return self.module.rec.in_features


@register("test-torch-recording", kinds=("sequence",), description="a TorchLearner subclass with record_hidden")
def make_recording(spec, seed):
    torch.manual_seed(seed)
    return Recording(HandRNN(spec.input_size, 8, spec.output_size), adam, spec=spec)


@register("test-torch-hidden", kinds=("sequence",), description="nn.RNN, hidden states named by hidden=")
def make_hidden(spec, seed, name="rnn"):
    torch.manual_seed(seed)
    module = torch.nn.Sequential()
    module.rnn, module.out = torch.nn.RNN(spec.input_size, 6), torch.nn.Linear(6, spec.output_size)
    module.forward = lambda x: module.out(module.rnn(x)[0])
    return TorchLearner(module, adam, spec=spec, hidden=name)


class Crashing(torch.nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.lin = torch.nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.helper(x)

    def helper(self, x):
        raise ValueError("a bug in the user's forward")


@register("test-torch-crashing", description="a module whose forward raises")
def make_crashing(spec, seed):
    return TorchLearner(Crashing(spec.input_size, spec.output_size), spec=spec)


COG = dict(n_blocks=2, block_size=3, batch_size=4, n_eval=8, k_adapt=1, progress=False)


def test_a_subclass_survives_seed_batching_with_its_methods():
    stacked = batching.stack([make_recording(SEQ, s) for s in range(2)])
    assert stacked.mode == "vmap"
    back = stacked.unstack()
    assert [type(b) for b in back] == [Recording, Recording] and back[0].n_units() == 8
    assert not torch.equal(back[0].module.inp.weight, back[1].module.inp.weight)
    runs = switchbench.run("cognitive-switch", "test-torch-recording", seeds=[0, 1], record_hidden=True,
                           cache=False, **COG)
    for r in runs:
        assert type(r.learner) is Recording
        x = torch.zeros(3, 2, r.learner.spec.input_size)
        assert torch.equal(r.learner.record_hidden(x), r.learner.record_hidden(x))
        assert len(r.hidden) == r.learner.spec.n_tasks and r.hidden[0].shape[-1] == 8


def test_a_subclass_that_overrides_learn_runs_its_seeds_in_turn():
    class Counting(TorchLearner):
        def learn(self, x, y):
            self.calls = getattr(self, "calls", 0) + 1
            return super().learn(x, y)

    learners = [Counting(HandRNN(), adam, spec=SEQ) for _ in range(2)]
    stacked = batching.stack(learners)
    assert stacked.mode == "loop"
    for x, y in seq_batches(2, 3):
        stacked.learn(x, y)
    assert [b.calls for b in stacked.unstack()] == [3, 3]


def test_hidden_names_the_submodule_whose_output_is_recorded():
    learner = make_hidden(SEQ, 0)
    x = torch.randn(6, 4, 5)
    want = learner.module.rnn(x)[0]
    assert torch.equal(learner.record_hidden(x), want.detach())
    stepped = TorchLearner(HandRNN(), spec=SEQ, hidden="rec")       # called once per time step: stacked
    assert stepped.record_hidden(x).shape == (6, 4, 8)
    assert TorchLearner(HandRNN(), spec=SEQ).record_hidden is None
    with pytest.raises(SwitchbenchError, match=r"hidden='gru' is not a submodule of HandRNN \(its submodules: "
                                               r"inp, rec, out\)"):
        TorchLearner(HandRNN(), spec=SEQ, hidden="gru")
    res = switchbench.run("cognitive-switch", "test-torch-hidden", seed=0, record_hidden=True, cache=False, **COG)
    assert len(res.hidden) == res.learner.spec.n_tasks and res.hidden[0].shape[-1] == 6


def test_record_hidden_without_a_hook_fails_before_training_saying_how():
    with pytest.raises(SwitchbenchError, match=r"record_hidden=True, but TorchLearner has no record_hidden\(x\) "
                                               r"method \(a TorchLearner: pass hidden="):
        switchbench.run("blocked-linear", "test-torch-linear", seed=0, n_blocks=2, block_size=5,
                        record_hidden=True, cache=False, progress=False)


def test_an_exception_in_the_users_forward_keeps_its_traceback(capsys):
    with pytest.raises(SwitchbenchError, match="predict failed: ValueError: a bug in the user's forward") as e:
        switchbench.run("blocked-linear", "test-torch-crashing", seed=0, n_blocks=2, block_size=5, cache=False,
                        progress=False)
    cause = e.value.__cause__
    assert isinstance(cause, ValueError)
    import traceback
    frames = [f.name for f in traceback.extract_tb(cause.__traceback__)]
    assert frames[-2:] == ["forward", "helper"]
    from switchbench.benchmark.cli import main
    args = ["run", "--paradigm", "blocked-linear", "--model", "test-torch-crashing", "--set", "n_blocks=2",
            "--set", "block_size=5"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.rstrip().splitlines()[-1].startswith("switchbench: error: test-torch")
    assert main([*args, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "in helper" in err and 'raise ValueError("a bug in the user\'s forward")' in err
    assert "direct cause" in err and err.rstrip().splitlines()[-1].startswith("switchbench: error: ")
