"""Drawing steps ahead (``SwitchEnv.draw_steps``) gives exactly what stepping gives, and the
run loop that uses it gives every run exactly the numbers of the step-by-step path."""
import gymnasium
import numpy as np
import pytest
import torch

import conftest

from switchbench.benchmark import loop, runner
from switchbench.benchmark.suite import Failure, RunSpec, run_many
from switchbench.errors import SwitchbenchError
from switchbench.losses import task_loss
from switchbench.paradigms.base import SwitchEnv
from test_paradigms import SMALL as SMALL_PARADIGMS   # every registered paradigm's small settings

pytestmark = pytest.mark.usefixtures("one_thread")   # tiny networks (tests/conftest.py)

COGNITIVE = dict(pool_size=16, eval_pool_size=8, batch_size=4, dt=100, pool_cache=False)
ENVS = [
    ("BlockedLinear-v0", dict(n_blocks=3, block_size=7)),
    ("BlockedLinear-v0", dict(n_blocks=3, block_size=7, schedule="interleaved", cue=True, n_tasks=3,
                              output_size=6, batch_size=5)),
    ("BlockedLinear-v0", dict(n_blocks=6, block_size=4, composition="subtask", n_tasks=3, output_size=6)),
    ("DigitSwitch-v0", dict(n_blocks=3, block_size=7, schedule="interleaved", cue=True, batch_size=9)),
    ("DigitSwitch-v0", dict(n_blocks=2, block_size=5, tasks="parity-magnitude")),
    ("CuedSwitch-v0", dict(n_blocks=4, block_size=6, schedule="pure-mixed", batch_size=7)),
    ("CuedSwitch-v0", dict(n_blocks=2, block_size=9, schedule="random", batch_size=3)),
    ("CuedSwitch-v0", dict(n_blocks=2, block_size=5, mode="sequence", schedule=["aabb", "random"], batch_size=3)),
    ("CognitiveSwitch-v0", dict(n_blocks=3, block_size=4, **COGNITIVE)),
    ("CognitiveSwitch-v0", dict(envs=["yang19.go-v0", "yang19.dlygo-v0", "yang19.anti-v0"], schedule="interleaved",
                                n_blocks=2, block_size=6, held_out_tasks=["anti"], **COGNITIVE)),
    ("CognitiveCompose-v0", dict(n_blocks=1, block_size=9, **COGNITIVE)),
] + [(config.split(" ")[0].removeprefix("switchbench/"), kw) for config, kw in SMALL_PARADIGMS.items()]


def make(name, kw):
    return gymnasium.make(f"switchbench/{name}", **kw).unwrapped


@pytest.mark.parametrize("name, kw", ENVS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ENVS)])
def test_steps_drawn_ahead_are_exactly_the_stepped_ones(name, kw):
    stepped, ahead = make(name, kw), make(name, kw)
    x0, _ = stepped.reset(seed=3)
    ahead.reset(seed=3)
    sched = stepped.curriculum
    rng = np.random.default_rng(0)
    xs, infos, losses, preds = [x0], [], [], []
    for t in range(sched.n_steps):
        pred = rng.standard_normal(stepped.action_space.shape).astype(np.float32)
        x, reward, terminated, _, info = stepped.step(pred)
        xs.append(x)
        infos.append(info)
        losses.append(-reward)
        preds.append(pred)
        assert terminated == (t == sched.n_steps - 1)
        # the log's bookkeeping columns come from the curriculum: they are step()'s infos
        assert (info["step"], info["block"], info["task"], info["switch"], info["phase"]) == (
            t, int(sched.block[t]), int(sched.task[t]), bool(sched.switch[t]), sched.phases[sched.block[t]])
    sizes, t = iter([1, 2, 5, 3, 1, 4] * sched.n_steps), 0    # runs of several lengths, to the very end
    while t < sched.n_steps:
        n = min(next(sizes), sched.n_steps - t)
        steps = ahead.draw_steps(n)
        assert steps.start == t and len(steps) == n
        for j in range(n):
            np.testing.assert_array_equal(steps.x[j], xs[t + j])
            info, want = steps.info(j), infos[t + j]
            want = {k: v for k, v in want.items() if k not in ("performance", "performance_strict")}
            assert info.keys() == want.keys()
            for k in want:
                np.testing.assert_array_equal(info[k], want[k], err_msg=k)
                assert np.asarray(info[k]).dtype == np.asarray(want[k]).dtype, k
            # the loop's loss of the prediction is exactly the paradigm's reward, negated
            loss = task_loss(torch.from_numpy(preds[t + j]), torch.from_numpy(steps.y[j]), ahead.task_spec.loss)
            assert float(loss) == losses[t + j]
            # the paradigm's own scores, from the prediction and the drawn info, are step()'s
            cols = ahead.trial_columns(torch.from_numpy(preds[t + j]), info)
            for k, v in cols.items():
                if k in infos[t + j]:
                    assert v == infos[t + j][k] or (np.isnan(v) and np.isnan(infos[t + j][k])), k
        t += n
        assert ahead._t == t
    assert ahead.np_random.bit_generator.state == stepped.np_random.bit_generator.state   # the same stream used
    with pytest.raises(SwitchbenchError, match="finished or never-reset"):
        ahead.step(preds[-1])
    with pytest.raises(SwitchbenchError, match=r"n must lie in 1\.\.0"):
        ahead.draw_steps(1)


def test_the_cognitive_scores_come_from_the_prediction():
    env = make("CognitiveSwitch-v0", dict(n_blocks=1, block_size=2, **COGNITIVE))
    env.reset(seed=0)
    pred = np.random.default_rng(1).standard_normal(env.action_space.shape).astype(np.float32)
    _, _, _, _, info = env.step(pred)
    cols = env.trial_columns(torch.from_numpy(pred), {k: info[k] for k in ("task", "target")})
    assert cols == {"performance": info["performance"], "performance_strict": info["performance_strict"]}


def test_a_paradigm_that_does_not_draw_ahead_refuses():
    env = make("BlockedLinear-v0", dict(n_blocks=2, block_size=3))
    env.reset(seed=0)
    env.draws_ahead = False
    with pytest.raises(SwitchbenchError, match="does not draw steps ahead"):
        env.draw_steps(2)


# --- the run loop: drawn ahead vs stepped -------------------------------------------------

RUNS = [
    ("blocked-linear", "gated-linear", dict(n_blocks=3, block_size=15)),
    ("blocked-linear", "linear", dict(n_blocks=3, block_size=15, schedule="interleaved", cue=True)),
    # steps of 50 x 23 floats: a step's slice of a chunk is misaligned unless the loop aligns it (MKL then rounds
    # differently: the run drifted at step 89)
    ("blocked-linear", "gated-linear", dict(n_blocks=3, block_size=40, cue=True, n_tasks=3, output_size=6,
                                            batch_size=50)),
    ("blocked-linear", "oracle-gates", dict(n_blocks=6, block_size=8, composition="task", n_tasks=3,
                                            output_size=6)),
    ("blocked-linear", "test_loop:make", dict(n_blocks=3, block_size=15)),        # a plug-in: Single for S = 1
    ("digit-switch", "gated-mlp", dict(n_blocks=2, block_size=10, batch_size=20)),
    ("cued-switch", "mlp", dict(n_blocks=2, block_size=10, batch_size=20)),
    ("cued-switch", "gru", dict(n_blocks=2, block_size=4, batch_size=4, mode="sequence", hidden=8)),
    ("cognitive-switch", "leaky-rnn", dict(n_blocks=2, block_size=4, hidden=8, **COGNITIVE)),
    ("cognitive-switch", "per-task-rnn", dict(n_blocks=2, block_size=4, hidden=8, schedule="interleaved",
                                              **COGNITIVE)),
    ("cognitive-compose", "gru", dict(n_blocks=1, block_size=6, hidden=8, transfer_budget=3, **COGNITIVE)),
]


def _runs(monkeypatch, paradigm, model, seeds, stepped: bool, **kw):
    monkeypatch.setattr(SwitchEnv, "draws_ahead", not stepped)
    return runner.run_seeds(paradigm, model, seeds, cache=False, progress=False, n_eval=16, k_adapt=2, **kw)


@pytest.mark.parametrize("seeds", [[0], [0, 5, 9]], ids=["S1", "S3"])
@pytest.mark.parametrize("paradigm, model, kw", RUNS, ids=[f"{p}-{m}" for p, m, _ in RUNS])
def test_the_loop_drawing_ahead_gives_exactly_the_stepped_runs(monkeypatch, paradigm, model, seeds, kw):
    stepped = _runs(monkeypatch, paradigm, model, seeds, True, **kw)
    chunk_bytes = loop.CHUNK_BYTES
    monkeypatch.setattr(loop, "CHUNK_BYTES", 1)            # and in chunks of one step: the same again
    one = _runs(monkeypatch, paradigm, model, seeds, False, **kw)
    monkeypatch.setattr(loop, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(SwitchEnv, "draws_ahead", True)
    monkeypatch.setattr(SwitchEnv, "step", lambda *a: pytest.fail("the loop stepped a paradigm that draws ahead"))
    ahead = runner.run_seeds(paradigm, model, seeds, cache=False, progress=False, n_eval=16, k_adapt=2, **kw)
    for a, b, c in zip(ahead, stepped, one):
        for other in (b, c):
            conftest.assert_same_run(a, other, rtol=0, atol=0, metric_rtol=0, metric_atol=0)
            for col in a.log.columns:
                np.testing.assert_array_equal(a.log[col].to_numpy(), other.log[col].to_numpy(), err_msg=col)


def test_a_diverging_seed_fails_at_the_same_step_either_way(monkeypatch):
    specs = [RunSpec("blocked-linear", "test_loop:make_unstable", s, {"n_blocks": 2, "block_size": 20})
             for s in range(4)]
    reasons = []
    for stepped in (True, False):
        monkeypatch.setattr(SwitchEnv, "draws_ahead", not stepped)
        res = run_many(specs, progress=False, cache=False)
        reasons.append([r.reason if isinstance(r, Failure) else None for r in res])
    assert reasons[0] == reasons[1] and any(reasons[0]) and not all(reasons[0])
    assert all("non-finite loss at step " in r for r in reasons[0] if r)


def test_the_loop_copies_batches_once_per_chunk_not_per_step(monkeypatch):
    """The inputs and targets reach torch (and the device) once per chunk: the copies of a
    run do not grow with the block size; the step-by-step path copies every step."""
    counts = {}
    real = torch.from_numpy

    def counting(a):
        counts[key] += 1
        return real(a)

    monkeypatch.setattr(torch, "from_numpy", counting)
    real_by_step = loop._by_step

    def by_step(arrays, device):         # every step of a chunk: contiguous, 64-byte aligned, the seeds' arrays
        t = real_by_step(arrays, device)
        for j in range(len(t)):
            assert t[j].is_contiguous() and t[j].data_ptr() % 64 == 0
            assert all(np.array_equal(t[j][i].numpy(), a[j]) for i, a in enumerate(arrays))
        return t

    monkeypatch.setattr(loop, "_by_step", by_step)
    for stepped in (False, True):
        monkeypatch.setattr(SwitchEnv, "draws_ahead", not stepped)
        for block_size in (10, 30):
            key = (stepped, block_size)
            counts[key] = 0
            runner.run_seeds("blocked-linear", "gated-linear", [0, 1], cache=False, progress=False, n_blocks=2,
                             block_size=block_size, n_eval=16, k_adapt=2, sampler="stream")
    assert counts[(False, 10)] == counts[(False, 30)]
    assert counts[(True, 30)] - counts[(True, 10)] == 2 * 2 * 20     # x and y of every further step


@pytest.mark.parametrize("shape", [(3, 200, 10), (1, 7, 1), (4, 3, 5, 2), (2, 4000, 10), (2, 40000, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_seed_batched_task_loss_is_each_seeds_task_loss(shape, dtype):
    from switchbench.losses import task_losses

    g = torch.Generator().manual_seed(0)
    pred, target = 3 * torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g)
    torch.set_num_threads(2)     # where a seed's reduction is split between threads: S calls (one_thread restores)
    for p in (pred, pred.transpose(-1, -2).contiguous().transpose(-1, -2)):      # also non-contiguous
        one = torch.stack([task_loss(p[s], target[s], "mse") for s in range(shape[0])])
        assert torch.equal(task_losses(p, target, "mse"), one)
    labels = torch.randint(0, shape[-1], shape[:-1], generator=g)
    labels[..., 0] = -100
    one = torch.stack([task_loss(pred[s], labels[s], "cross_entropy") for s in range(shape[0])])
    assert torch.equal(task_losses(pred, labels, "cross_entropy"), one)
