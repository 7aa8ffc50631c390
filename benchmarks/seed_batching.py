"""Seed batching: the zoo's stacked learners against the generic ``torch.func`` mechanism::

    python benchmarks/seed_batching.py [--seeds 5] [--repeats 10] [--threads 1]

For each of ``gated-mlp`` (Adam; digit-switch, batch 64), ``leaky-rnn`` and ``gru``
(cognitive-switch go / anti trials at dt 20 ms, batch 64, the cards' defaults), S seeds are
trained one learning step at a time, in one process, alternating (one step of each in turn,
``--repeats`` rounds after a warm-up; medians per step):

- ``zoo``: the learner the run loop steps, ``batching.stack`` of S single-seed learners (the
  zoo's own seed batching: ``gated-mlp`` is one class whose arithmetic broadcasts over a
  leading seed dimension; ``leaky-rnn`` and ``gru`` have hand-written stacked learners,
  ``StackedRNN`` with the recurrent engine's hand-written backward pass, ``StackedGRU``);
- ``vmap``: the generic mechanism, ``torch.func.stack_module_state`` over the S single-seed
  modules, the single seed's loss under ``vmap(functional_call(...))``, autograd of the summed
  losses, and the model's own elementwise update on the stacks (one Adam over the stacks:
  :func:`switchbench.models.batching.stack_optimizer`). Where ``vmap`` cannot run the
  module's own forward (it says why), the loss is the single seed's arithmetic written as
  plain functional code (for ``leaky-rnn``: its time loop under autograd, its noise drawn
  per seed outside ``vmap`` as the single learner draws it); none for ``gru``
  (``torch.nn.GRU`` has no batching rule);
- ``loop``: the S single-seed learners one after another (what a learner that cannot stack
  gets, and the generic mechanism's fallback).

Before timing, three steps of ``zoo`` and ``vmap`` from the same learners are compared
(losses and weights, float tolerance). On one CPU thread the times are the thread's CPU
time (``--wall``: wall time).
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from _common import cpu_name, scratch_cache
from torch.func import functional_call, stack_module_state, vmap

BATCH = 64


def _digits(S: int):
    """gated-mlp's single-seed learners (Adam) and S batches of digit-switch trials."""
    import gymnasium

    from switchbench import models

    env = gymnasium.make("switchbench/DigitSwitch-v0", disable_env_checker=True).unwrapped
    x, y = env.eval_batch(0, BATCH, 0)
    x, y = torch.as_tensor(x).float(), torch.as_tensor(y).long()
    nets = [models.get("gated-mlp").build(env.task_spec, seed=s, optimizer="adam") for s in range(S)]
    return nets, x.expand(S, *x.shape).contiguous(), y.expand(S, *y.shape).contiguous()


def _cognitive(name: str, S: int):
    """``name``'s single-seed learners and S batches of go / anti trials at dt 20 ms."""
    import gymnasium

    from switchbench import models

    env = gymnasium.make("switchbench/CognitiveSwitch-v0", dt=20, pool_size=BATCH, eval_pool_size=BATCH,
                         pool_cache=False, disable_env_checker=True).unwrapped
    x, y = env.eval_batch(0, BATCH, 0)
    x, y = torch.as_tensor(x).float(), torch.as_tensor(y).long()
    nets = [models.get(name).build(env.task_spec, seed=s) for s in range(S)]
    return nets, x.expand(S, *x.shape).contiguous(), y.expand(S, *y.shape).contiguous()


class VmapGatedMLP:
    """gated-mlp's learning step through torch.func: the module's own forward under vmap."""

    def __init__(self, nets):
        from switchbench.models.batching import stack_optimizer
        from switchbench.models.gated_linear import gate_penalty

        self.penalty = gate_penalty
        first = nets[0]
        self.base = copy.deepcopy(first).to("meta")
        params, _ = stack_module_state(nets)                        # W, c stacked (S, ...)
        self.W = params["W"].detach().clone()
        self.c = params["c"].detach().clone()
        self.frozen = {k: v for k, v in first.named_buffers()}      # the shared feature network
        self.lr_c, self.lam = first.lr_c, first.lam
        self.opt = stack_optimizer([n.opt.opt for n in nets], [self.W])

        def loss(W, c, x, y):
            logits = functional_call(self.base, ({"W": W, "c": c}, self.frozen), (x,))
            task = F.cross_entropy(logits, y)
            return task + self.lam * self.penalty(c), task

        self.losses = vmap(loss)

    def learn(self, x, y):
        W, c = self.W.clone().requires_grad_(), self.c.clone().requires_grad_()
        with torch.enable_grad():
            total, task = self.losses(W, c, x, y)
            gW, gc = torch.autograd.grad(total.sum(), (W, c))
        with torch.no_grad():
            self.c -= self.lr_c * gc
        self.W.grad = gW
        self.opt.step()
        self.W.grad = None
        return task.detach()

    def weights(self):
        return [self.W, self.c]


class VmapLeakyRNN:
    """leaky-rnn's learning step through torch.func: its arithmetic as a functional time loop
    under vmap (its own forward draws noise from a generator and runs the engine's
    autograd.Function, which vmap cannot); each seed's noise drawn from its generator outside."""

    def __init__(self, nets):
        from switchbench.models.batching import stack_optimizer
        from switchbench.models.leaky_rnn import ACTIVATIONS

        first = nets[0]
        self.nets = [copy.deepcopy(n) for n in nets]                  # each seed's generator
        params, _ = stack_module_state(self.nets)
        self.params = [torch.nn.Parameter(params[k].detach().clone()) for k in ("w_in", "w_rec", "b", "w_out", "b_out")]
        self.opt = stack_optimizer([n.opt for n in self.nets], self.params)
        self.alpha, self.sigma_x, self.sigma_rec = first.alpha, first.sigma_x, first.sigma_rec
        f = ACTIVATIONS[first.activation]
        a = self.alpha

        def loss(w_in, w_rec, b, w_out, b_out, x, y, nx, nrec):
            drive = (x + nx) @ w_in.T + b + nrec
            h, hs = drive.new_zeros(drive.shape[1:]), []
            for d in drive.unbind(0):
                h = (1 - a) * h + a * f(h @ w_rec.T + d) if a != 1 else f(h @ w_rec.T + d)
                hs.append(h)
            logits = torch.stack(hs) @ w_out.T + b_out
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)

        self.losses = vmap(loss)

    def learn(self, x, y):
        from switchbench.models.leaky_rnn import GRAD_CLIP, seed_noise

        gens = [n.gen for n in self.nets]
        scale = math.sqrt(2 / self.alpha)
        nx = seed_noise(gens, x.shape[1:], scale * self.sigma_x)
        nrec = seed_noise(gens, (*x.shape[1:-1], self.params[1].shape[-1]), scale * self.sigma_rec)
        with torch.enable_grad():
            losses = self.losses(*self.params, x, y, nx, nrec)
            self.opt.zero_grad(set_to_none=True)
            losses.sum().backward()
        torch.nn.utils.clip_grad_value_(self.params, GRAD_CLIP)
        self.opt.step()
        return losses.detach()

    def weights(self):
        return list(self.params)


def _why_not_vmap(name: str, net, x) -> str:
    """Why vmap cannot run ``net``'s own forward pass under autograd (the error's first line), or ''."""
    params, buffers = stack_module_state([net, copy.deepcopy(net)])
    params = {k: v.requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(net)
    own = {"gated-mlp": lambda p, b, x: functional_call(base, (p, b), (x,)),
           "leaky-rnn": lambda p, b, x: functional_call(base, (p, b), (x,), {"noise": False})[0],
           "gru": lambda p, b, x: functional_call(base.gru, {k[4:]: v for k, v in p.items() if k.startswith("gru.")},
                                                  (x,))[0]}[name]
    try:
        with torch.enable_grad():
            vmap(own)(params, buffers, torch.stack([x, x]))
        return ""
    except Exception as e:  # noqa: BLE001 - the reason is the result
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"


def _close(zoo, generic, x, y, steps: int = 3) -> str:
    """Three steps of both from the same learners: the largest relative differences of losses and weights."""
    dl = 0.0
    for _ in range(steps):
        a, b = zoo.learn(x, y), generic.learn(x, y)
        torch.testing.assert_close(b.float(), a.float(), rtol=1e-4, atol=1e-5)
        dl = max(dl, float(((b - a).abs() / a.abs().clamp_min(1e-12)).max()))
    dw = 0.0
    for A, B in zip(zoo.parameters(), generic.weights()):
        torch.testing.assert_close(B, A, rtol=1e-4, atol=1e-5)
        dw = max(dw, float((B - A).detach().abs().max() / A.detach().abs().max().clamp_min(1e-12)))
    return f"zoo and vmap agree over {steps} steps: losses to {dl:.1e} (relative), weights to {dw:.1e}"


def _measure(args) -> list[tuple]:
    from switchbench.models.batching import stack

    clock = time.perf_counter if args.wall or args.threads != 1 else time.thread_time
    S, rows = args.seeds, []
    cases = {"gated-mlp": (lambda: _digits(S), VmapGatedMLP),
             "leaky-rnn": (lambda: _cognitive("leaky-rnn", S), VmapLeakyRNN),
             "gru": (lambda: _cognitive("gru", S), None)}
    for name, (make, Generic) in cases.items():
        nets, x, y = make()
        print(f"{name}: vmap over the module's own forward: {_why_not_vmap(name, nets[0], x[0]) or 'runs'}", flush=True)
        if Generic is not None:
            print(f"{name}: {_close(stack(copy.deepcopy(nets)), Generic(copy.deepcopy(nets)), x, y)}", flush=True)
        zoo, singles = stack(copy.deepcopy(nets)), copy.deepcopy(nets)
        steps = {"zoo": lambda: zoo.learn(x, y),
                 "loop": lambda: [n.learn(xs, ys) for n, xs, ys in zip(singles, x, y)]}
        if Generic is not None:
            generic = Generic(copy.deepcopy(nets))
            steps["vmap"] = lambda: generic.learn(x, y)
        times = {k: [] for k in steps}
        for _ in range(2):                      # warm-up
            for fn in steps.values():
                fn()
        for _ in range(args.repeats):           # alternating: one of each in turn
            for k, fn in steps.items():
                t = clock()
                fn()
                times[k].append(clock() - t)
        med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        rows.append((name, tuple(x.shape[1:-1]), med))
        print(f"{name} (S {S}, shape {tuple(x.shape[1:])}): " + ", ".join(f"{k} {v:.1f} ms" for k, v in med.items()),
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/seed_batching.py", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="stacked seeds S (default 5)")
    p.add_argument("--repeats", type=int, default=10, help="timed rounds (medians per step)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--wall", action="store_true", help="wall time (default: the thread's CPU time on one thread)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print("clock: " + ("wall time" if args.wall or args.threads != 1 else "this thread's CPU time"))
    with scratch_cache("switchbench-seed-batching-"):        # pools and the digit features: fresh, removed after
        rows = _measure(args)
    print(f"\n{'model':<10} {'zoo (ms)':>9} {'vmap (ms)':>10} {'loop (ms)':>10} {'vmap/zoo':>9} {'loop/zoo':>9}")
    for name, _, m in rows:
        v = m.get("vmap", float("nan"))
        print(f"{name:<10} {m['zoo']:>9.1f} {v:>10.1f} {m['loop']:>10.1f} {v / m['zoo']:>9.2f} "
              f"{m['loop'] / m['zoo']:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
