"""Speed of the batched engine against the per-seed loop, in one run::

    python -m switchbench.benchmark.speed [--repeats 3] [--naive-seeds 2]

Two targets:

1. the gated-network paper's Fig. 2 configuration: ``gated-linear`` (defaults) on
   ``blocked-linear``, 10 seeds x 20 blocks x 1000 steps, batch 200, d_in 20, d_out 10,
   two paths; evaluation (R0/Rk) and metrics included, no cache;
2. ``switchbench reproduce nta-fig2`` (flexible and forgetful model, 10 seeds each, checks
   and figure) into a fresh, empty cache.

Each prints the batched time (median of ``--repeats``), the per-seed loop's time
(``runner.run``, one torch thread as the suite's workers; measured on ``--naive-seeds``
seeds per model and extrapolated linearly, which the output says) and their ratio.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

FIG2 = dict(n_blocks=20, block_size=1000)      # the paradigm's other defaults are Fig. 2's
N_SEEDS = 10
MODELS = ("gated-linear", "gated-linear-forgetful")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _median(fn, repeats: int, desc: str) -> tuple[float, list[float]]:
    times = [_timed(fn) for _ in tqdm(range(repeats), desc=desc, leave=False)]
    return statistics.median(times), times


def naive_runs(models: tuple[str, ...], n_seeds: int, cache: bool) -> float:
    """Seconds for ``n_seeds`` per-seed runs of each model (one torch thread)."""
    from switchbench.benchmark.runner import run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        jobs = [(m, s) for m in models for s in range(n_seeds)]
        t = time.perf_counter()
        for m, s in tqdm(jobs, desc="per-seed loop", leave=False):
            run("blocked-linear", m, s, cache=cache, progress=False, **FIG2)
        return time.perf_counter() - t
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m switchbench.benchmark.speed", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each batched measurement (median)")
    p.add_argument("--naive-seeds", type=int, default=2, help="seeds per model for the per-seed loop (extrapolated)")
    args = p.parse_args(argv)
    with scratch_cache("switchbench-speed-") as scratch:      # every cache used here; removed at the end
        return _measure(args, scratch)


@contextlib.contextmanager
def scratch_cache(prefix: str):
    """A temporary ``$SWITCHBENCH_CACHE`` for timing from cold caches; removed (and the old value back) after."""
    scratch = tempfile.mkdtemp(prefix=prefix)
    before = os.environ.get("SWITCHBENCH_CACHE")
    os.environ["SWITCHBENCH_CACHE"] = scratch
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if before is None:
            os.environ.pop("SWITCHBENCH_CACHE", None)
        else:
            os.environ["SWITCHBENCH_CACHE"] = before


def _measure(args, scratch: str) -> int:

    from switchbench.benchmark.runner import run_seeds
    from switchbench.benchmark.findings.nta import nta_fig2

    n = args.naive_seeds
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); cache: a fresh temporary folder")
    rows = []

    # 1. Fig. 2 configuration, 10 seeds.
    def fig2(sampler):
        kw = {"sampler": sampler} if sampler == "wishart" else {}     # "samples": the run loop
        return lambda: run_seeds("blocked-linear", "gated-linear", range(N_SEEDS), cache=False, progress=False,
                                 **kw, **FIG2)

    wish, wish_all = _median(fig2("wishart"), args.repeats, "Fig. 2, batched wishart")
    samp, samp_all = _median(fig2("samples"), args.repeats, "Fig. 2, run loop")
    naive = naive_runs(MODELS[:1], n, cache=False) * N_SEEDS / n
    how = f"{n} seeds timed, x{N_SEEDS / n:g}"
    rows.append(("Fig. 2 config, 10 seeds: batched, wishart sampler", wish, wish_all, naive, how))
    rows.append(("Fig. 2 config, 10 seeds: run loop (all seeds)", samp, samp_all, naive, how))

    # 2. reproduce nta-fig2 into an empty cache (each repeat a new one).
    def reproduce(sampler):
        def go():
            os.environ["SWITCHBENCH_CACHE"] = tempfile.mkdtemp(dir=scratch)
            rep = nta_fig2(progress=False, overrides={"finding.sampler": sampler})
            if not rep.passed:
                print("  (a check FAILED: " + "; ".join(c.line() for c in rep.checks if not c.passed) + ")")
        return go

    rep, rep_all = _median(reproduce("wishart"), args.repeats, "reproduce nta-fig2, wishart")
    # the report itself (load 20 cached runs, checks, figure), timed again on the warm cache
    report = _timed(lambda: nta_fig2(progress=False, overrides={"finding.sampler": "wishart"}))
    rep_s, rep_s_all = _median(reproduce("samples"), 1, "reproduce nta-fig2, samples")
    # the per-seed loop: its runs (extrapolated) plus that report time
    os.environ["SWITCHBENCH_CACHE"] = tempfile.mkdtemp(dir=scratch)
    naive_rep = naive_runs(MODELS, n, cache=True) * N_SEEDS / n + report
    how = (f"{n} seeds per model timed, x{N_SEEDS / n:g}, + the report on cached runs ({report:.1f} s); "
           "one process (--jobs 2: about half)")
    rows.append(("reproduce nta-fig2 (20 runs): batched, wishart", rep, rep_all, naive_rep, how))
    rows.append(("reproduce nta-fig2 (20 runs): run loop", rep_s, rep_s_all, naive_rep, how))

    print(f"\n{'target':<52} {'batched (s)':>12} {'per-seed loop (s)':>18} {'speed-up':>9}")
    for name, t, all_t, base, how in rows:
        print(f"{name:<52} {t:>12.2f} {base:>18.1f} {base / t:>8.1f}x")
        print(f"    batched runs: {', '.join(f'{x:.2f}' for x in all_t)} s (median shown); per-seed loop: {how}")
    print("\nreference (not measured here): the paper's JAX code takes 25-30 s for the Fig. 2 configuration")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
