"""The covariance engine against the run loop, in one process::

    python benchmarks/speed.py [--repeats 3]

Two targets, each timed on the covariance engine (``sampler="wishart"``) and on the run
loop (all seeds stacked, the paradigm's own samples):

1. the gated-network paper's Fig. 2 configuration: ``gated-linear`` (defaults) on
   ``blocked-linear``, 10 seeds x 20 blocks x 1000 steps, batch 200, d_in 20, d_out 10,
   two paths; evaluation (R0/Rk) and metrics included, no cache;
2. ``switchbench reproduce nta-fig2`` (flexible and forgetful model, 10 seeds each, checks
   and figure) into a fresh, empty cache.

Prints each median (of ``--repeats``; the run loop's reproduction once) and their ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from _common import cpu_name, scratch_cache

FIG2 = dict(n_blocks=20, block_size=1000)      # the paradigm's other defaults are Fig. 2's
N_SEEDS = 10


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _median(fn, repeats: int) -> tuple[float, list[float]]:
    times = [_timed(fn) for _ in range(repeats)]
    return statistics.median(times), times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/speed.py", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each measurement (median)")
    args = p.parse_args(argv)
    with scratch_cache("switchbench-speed-") as scratch:      # every cache used here; removed at the end
        return _measure(args, scratch)


def _measure(args, scratch: str) -> int:
    from switchbench.benchmark.findings.nta import nta_fig2
    from switchbench.benchmark.runner import run_seeds

    print(f"machine: {cpu_name()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); cache: a fresh temporary folder")
    rows = []

    # 1. Fig. 2 configuration, 10 seeds.
    def fig2(sampler):
        kw = {"sampler": sampler} if sampler else {}
        return lambda: run_seeds("blocked-linear", "gated-linear", range(N_SEEDS), cache=False, progress=False,
                                 **kw, **FIG2)

    rows.append(("Fig. 2 config, 10 seeds", _median(fig2("wishart"), args.repeats),
                 _median(fig2(None), args.repeats)))

    # 2. reproduce nta-fig2 into an empty cache (each repeat a new one).
    def reproduce(sampler):
        def go():
            os.environ["SWITCHBENCH_CACHE"] = tempfile.mkdtemp(dir=scratch)
            rep = nta_fig2(progress=False, overrides={"finding.sampler": sampler})
            if not rep.passed:
                print("  (a check FAILED: " + "; ".join(c.line() for c in rep.checks if not c.passed) + ")")
        return go

    rows.append(("reproduce nta-fig2 (20 runs)", _median(reproduce("wishart"), args.repeats),
                 _median(reproduce(None), 1)))

    print(f"\n{'target':<32} {'wishart (s)':>12} {'run loop (s)':>13} {'ratio':>7}")
    for name, (wish, wish_all), (loop, loop_all) in rows:
        print(f"{name:<32} {wish:>12.2f} {loop:>13.2f} {loop / wish:>6.1f}x")
        print(f"    repeats: wishart {', '.join(f'{x:.2f}' for x in wish_all)} s; "
              f"run loop {', '.join(f'{x:.2f}' for x in loop_all)} s (medians shown)")
    print("\nreference (not measured here): the paper's JAX code takes 25-30 s for the Fig. 2 configuration")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
