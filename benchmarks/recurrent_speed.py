"""The recurrent engine's learning step against eager autograd and the bare matrix products::

    python benchmarks/recurrent_speed.py [--repeats 30] [--threads 1] [--device cpu]

Shapes are the cognitive paradigm's (``cognitive-switch``: go / anti trials, read from the
paradigm at each ``dt``): batch 64, 35 inputs (cue included), 17 outputs, and ``leaky-rnn`` at
its defaults (256 softplus units, alpha = dt / 100 ms, recurrent and input noise,
cross-entropy, Adam with clipping). For S = 1 and S = 5 stacked seeds and dt = 20 ms and
100 ms, timed alternately in one process (one step of each in turn, ``--repeats`` rounds;
medians per learning step):

- ``zoo``: the learner the run loop steps (S = 1: the single-seed ``leaky-rnn``; S > 1 its
  seed-stacked learner), ``learn(x, y)`` on real trials;
- ``eager``: the same network written as plain eager PyTorch, a Python time loop under
  autograd (seed-stacked weights, ``torch.bmm``), one Adam step;
- ``products``: the matrix products a learning step cannot avoid: the ``3 x T`` recurrent
  ones (forward ``h W^T``, backward ``dz W`` and ``dz^T h`` per step), and, as ``all
  products``, those plus the input and readout projections (forward and both backward
  products) over all steps.

On one CPU thread the times are the thread's CPU time (``--wall``: wall time; on a shared
machine, wall time counts the waits for a core); elsewhere wall time.

Targets (the engine issue): at dt = 20, ``zoo`` <= 0.5 x ``eager`` and <= 1.5 x the 3 x T
recurrent products.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from _common import cpu_name, scratch_cache

HIDDEN, BATCH, TAU = 256, 64, 100.0


def _shapes(dt: int, batch: int):
    """Real go / anti trials of the cognitive paradigm at ``dt``: inputs (T, batch, in), targets (T, batch)."""
    import gymnasium

    import switchbench  # noqa: F401  (registers the paradigms)

    env = gymnasium.make("switchbench/CognitiveSwitch-v0", dt=dt, pool_size=batch, eval_pool_size=batch,
                         pool_cache=False).unwrapped
    x, y = env.eval_batch(0, batch, 0)
    return env.task_spec, torch.from_numpy(x).float(), torch.from_numpy(y).long()


class Eager:
    """The leaky RNN as plain eager autograd code, S seeds stacked."""

    def __init__(self, S, d_in, d_out, alpha, device):
        g = torch.Generator().manual_seed(0)
        q = torch.linalg.qr(torch.randn(S, HIDDEN, HIDDEN, generator=g))[0]
        self.params = [torch.nn.Parameter(t.to(device)) for t in (
            torch.randn(S, HIDDEN, d_in, generator=g) / d_in ** 0.5, 0.5 * q, torch.zeros(S, HIDDEN),
            torch.randn(S, d_out, HIDDEN, generator=g) / HIDDEN ** 0.5, torch.zeros(S, d_out))]
        self.opt = torch.optim.Adam(self.params, lr=1e-3)
        self.alpha = alpha

    def learn(self, x, y):
        w_in, w_rec, b, w_out, b_out = self.params
        S, T, B, _ = x.shape
        a = self.alpha
        x = x + (2 / a) ** 0.5 * 0.01 * torch.randn_like(x)
        drive = torch.bmm(x.reshape(S, T * B, -1), w_in.mT).reshape(S, T, B, -1) + b[:, None, None]
        drive = drive + (2 / a) ** 0.5 * 0.05 * torch.randn_like(drive)
        h = x.new_zeros(S, B, HIDDEN)
        hs = []
        for d in drive.unbind(1):
            h = (1 - a) * h + a * F.softplus(torch.bmm(h, w_rec.mT) + d)
            hs.append(h)
        hs = torch.stack(hs, 1)
        logits = torch.bmm(hs.reshape(S, T * B, HIDDEN), w_out.mT) + b_out[:, None]
        losses = torch.stack([F.cross_entropy(logits[s], y[s].reshape(-1), ignore_index=-100) for s in range(S)])
        self.opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        torch.nn.utils.clip_grad_value_(self.params, 1.0)
        self.opt.step()


class Products:
    """The bare matrix products of one learning step, on random operands of the step's shapes."""

    def __init__(self, S, T, d_in, d_out, device):
        r = lambda *s: torch.randn(*s, device=device)   # noqa: E731
        self.T = T
        self.h, self.w, self.dz = r(S, BATCH, HIDDEN), r(S, HIDDEN, HIDDEN), r(S, BATCH, HIDDEN)
        self.x, self.w_in = r(S, T * BATCH, d_in), r(S, HIDDEN, d_in)
        self.hs, self.w_out, self.dl = r(S, T * BATCH, HIDDEN), r(S, d_out, HIDDEN), r(S, T * BATCH, d_out)
        self.dd = r(S, T * BATCH, HIDDEN)

    def recurrent(self):
        h, w, dz = self.h, self.w, self.dz
        for _ in range(self.T):
            torch.bmm(h, w.mT)                  # forward
            torch.bmm(dz, w)                    # backward to h_{t-1}
            torch.bmm(dz.mT, h)                 # backward to W_rec
        return self

    def all(self):
        self.recurrent()
        torch.bmm(self.x, self.w_in.mT)         # input projection, its weight gradient
        torch.bmm(self.dd.mT, self.x)
        torch.bmm(self.hs, self.w_out.mT)       # readout, its two backward products
        torch.bmm(self.dl.mT, self.hs)
        torch.bmm(self.dl, self.w_out)
        return self


def _zoo(spec, S, device):
    from switchbench.models import get
    from switchbench.models.batching import stack

    nets = [get("leaky-rnn").build(spec, seed=s) for s in range(S)]
    net = nets[0] if S == 1 else stack(nets)
    return net.to(device)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _measure(args) -> list[tuple]:
    device = torch.device(args.device)
    # CPU time of this thread by default: on a shared machine, wall time counts the waits for a core
    clock = time.perf_counter if args.wall or device.type != "cpu" or args.threads != 1 else time.thread_time
    rows = []
    for dt in (20, 100):
        spec, x1, y1 = _shapes(dt, BATCH)
        T = x1.shape[0]
        for S in (1, 5):
            x, y = x1.expand(S, *x1.shape).contiguous().to(device), y1.expand(S, *y1.shape).contiguous().to(device)
            zoo, eager = _zoo(spec, S, device), Eager(S, spec.input_size, spec.output_size, dt / TAU, device)
            prods = Products(S, T, spec.input_size, spec.output_size, device)
            steps = {
                "zoo": (lambda: zoo.learn(x[0], y[0])) if S == 1 else (lambda: zoo.learn(x, y)),
                "eager": lambda: eager.learn(x, y),
                "3T products": prods.recurrent,
                "all products": prods.all,
            }
            times = {k: [] for k in steps}
            for _ in range(3):                  # warm-up
                for fn in steps.values():
                    fn()
            for _ in range(args.repeats):       # alternating: one of each in turn
                for k, fn in steps.items():
                    _sync(device)
                    t = clock()
                    fn()
                    _sync(device)
                    times[k].append(clock() - t)
            med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
            rows.append((dt, T, S, med))
            print(f"dt {dt:>3} ms, T {T:>2}, S {S}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in med.items()) +
                  f"; zoo / eager {med['zoo'] / med['eager']:.2f}, zoo / 3T products {med['zoo'] / med['3T products']:.2f}",
                  flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/recurrent_speed.py", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=30, help="timed rounds (medians per step)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--wall", action="store_true", help="wall time (default: the thread's CPU time on one CPU thread)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    print("clock: " + ("wall time" if args.wall or args.device != "cpu" or args.threads != 1 else
                       "this thread's CPU time"))
    with scratch_cache("switchbench-recurrent-speed-"):      # the paradigm's trial pools: made fresh, removed after
        rows = _measure(args)
    print(f"\n{'dt':>4} {'T':>3} {'S':>2} {'zoo (ms)':>9} {'eager (ms)':>11} {'3T prod (ms)':>13} "
          f"{'all prod (ms)':>14} {'zoo/eager':>10} {'zoo/3T':>7} {'zoo/all':>8}")
    for dt, T, S, m in rows:
        print(f"{dt:>4} {T:>3} {S:>2} {m['zoo']:>9.2f} {m['eager']:>11.2f} {m['3T products']:>13.2f} "
              f"{m['all products']:>14.2f} {m['zoo'] / m['eager']:>10.2f} {m['zoo'] / m['3T products']:>7.2f} "
              f"{m['zoo'] / m['all products']:>8.2f}")
    print("\ntargets at dt 20: zoo/eager <= 0.5, zoo/3T <= 1.5")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
