"""Speed of ``CognitiveSwitch-v0``'s trial pools against ``neurogym.Dataset``, in one run::

    python benchmarks/pool_speed.py [--task yang19.go-v0] [--dt 20] [--batch 64] [--seq-len 100]

Prints the median time of one ``batch x seq-len`` batch (target: <= 5 ms) three ways:

1. from the pool: one environment step's batch (the seeded index draw and the gather,
   ``_load``), and a full ``env.step`` (with the loss of a zero prediction and the
   performance of it; one torch thread: on a busy machine torch's thread pool makes this
   small loss wait milliseconds);
2. ``neurogym.Dataset(task, batch_size, seq_len)()``, copied (its batches are views that
   the next call overwrites);
3. the pool's one-off cost: generating it (no cache) and loading it from the disk cache.

Pools are cached in a fresh temporary folder, removed at the end.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np

from _common import cpu_name, scratch_cache


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/pool_speed.py", description=__doc__.split("\n")[0])
    p.add_argument("--task", default="yang19.go-v0", help="neurogym env id")
    p.add_argument("--dt", type=int, default=20, help="the task's time step in ms (Yang et al.: 20)")
    p.add_argument("--batch", type=int, default=64, help="trials per batch")
    p.add_argument("--seq-len", type=int, default=100, help="time steps per batch")
    p.add_argument("--pool-size", type=int, default=1024, help="trials in the pool")
    p.add_argument("--repeats", type=int, default=200, help="timed batches (median)")
    args = p.parse_args(argv)
    with scratch_cache("switchbench-pool-speed-"):
        return _measure(args)


def _measure(args) -> int:
    import gymnasium
    import torch

    import switchbench  # noqa: F401  (registers the paradigms)

    kw = dict(envs=[args.task], env_kwargs={args.task: {"dt": args.dt}}, seq_len=args.seq_len,
              batch_size=args.batch, pool_size=args.pool_size, eval_pool_size=16, n_blocks=1,
              block_size=10 ** 6)

    def make(cache):
        return gymnasium.make("switchbench/CognitiveSwitch-v0", pool_cache=cache, **kw).unwrapped

    t = time.perf_counter()
    make(False)
    generate = time.perf_counter() - t
    make(True)                                     # writes the cache
    t = time.perf_counter()
    env = make(True)
    load = time.perf_counter() - t
    x, _ = env.reset(seed=0)
    zero = np.zeros(env.action_space.shape, np.float32)
    pool_ms = _median_ms(lambda: env._load(0), args.repeats)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)         # the step's loss is a small tensor: torch's thread pool only adds waiting
    try:
        step_ms = _median_ms(lambda: env.step(zero), args.repeats)
    finally:
        torch.set_num_threads(threads)

    import neurogym
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = neurogym.Dataset(args.task, env_kwargs={"dt": args.dt}, batch_size=args.batch, seq_len=args.seq_len)

        def dataset():
            xd, yd = ds()
            return xd.copy(), yd.copy()

        ds_ms = _median_ms(dataset, max(10, args.repeats // 10))

    print(f"machine: {cpu_name()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), neurogym {neurogym.__version__}")
    print(f"task {args.task}, dt {args.dt} ms: batch {tuple(x.shape)} (time, trials, features), "
          f"trial lengths {env.trial_lengths[0]} steps, pool {args.pool_size} trials")
    print(f"{'pool: one batch (draw + gather)':<44} {pool_ms:8.3f} ms   (target <= 5 ms)")
    print(f"{'pool: one env.step (batch, loss, performance)':<44} {step_ms:8.3f} ms   (one torch thread)")
    print(f"{'neurogym.Dataset: one batch (copied)':<44} {ds_ms:8.3f} ms   ({ds_ms / pool_ms:.0f}x the pool)")
    print(f"{'pool, once: generate':<44} {1e3 * generate:8.1f} ms;  load from the disk cache: {1e3 * load:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
