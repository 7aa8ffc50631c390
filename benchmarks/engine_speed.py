"""Whole-process wall times of the commands users type, from a fresh cache, side by side::

    python benchmarks/engine_speed.py [--parts fig2,fig2-stream,cognitive] [--jobs 2]
        [--compare OTHER_VENV/bin/switchbench ...] [--reference "SHELL COMMAND"] [--repeats 1]

Each part is a command line run as its own process into an empty ``$SWITCHBENCH_CACHE``
(so the cognitive trial pools are generated inside the timed command, as on a user's first
run); with ``--compare`` every part is also run by
each other installation's ``switchbench`` (e.g. a checkout of an older commit), in
alternating order within each repeat, so a noisy shared machine affects both alike. With
``--reference`` a shell command of another code (e.g. the gated-network paper's own JAX code
for its Fig. 2, run from its own checkout and virtual environment, never from this project)
is timed in every repeat too, and each row gets its median wall time over the reference's.

Parts and the targets of the one-engine issue:

- ``fig2``: ``switchbench run --paradigm blocked-linear --model gated-linear --seeds 10 --jobs 2``,
  the gated-network paper's Fig. 2 configuration (the paradigm's defaults: 20 blocks of
  1000 steps, batch 200) as users type it (the default sampler, ``auto``: the covariance
  engine), target <= 0.15 of the paper's code (``--reference``);
- ``fig2-stream``: the same on the run loop, ``--set sampler=stream`` (the paradigm's own
  samples, every seed's 20 000 batches drawn), no target;
- ``cognitive``: ``switchbench suite`` on the cognitive part of the full suite
  (``cognitive-switch``, every model that runs it, 5 seeds, 6 blocks of 300 batches at
  dt = 100 ms; ``--short``: 2 blocks of 100), target <= 1/4 of the time before the one engine;
- ``cognitive-gru``: ``switchbench run --paradigm cognitive-switch --model gru --seeds 2
  --set n_blocks=2`` (dt = 20 ms: trials of 75 steps; two blocks of 500 batches), one run
  of the cognitive paradigm through the run loop, no target;
- ``cognitive-leaky``: the same with ``--model leaky-rnn`` (the leaky family's engine), no target;
- ``leaderboard``: ``switchbench leaderboard`` (the full suite, both views when a tuning
  table is given with ``--tuning``), target <= 4 min on 2 cores.

Prints one row per (part, installation): the median wall time, the median CPU time (user +
system, the steadier measure on a shared machine), every repeat's wall time and the command.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COGNITIVE_SUITE = """\
name = "cognitive-part"
seeds = 5

[[paradigm]]
name = "cognitive-switch"
models = "*"
set = {{ n_blocks = {n_blocks}, block_size = {block_size}, dt = 100 }}
"""
FULL = (6, 300)          # the full suite's cognitive curriculum: 6 blocks of 300 batches
SHORT = (2, 100)         # --short: the same part with 2 blocks of 100 batches
TARGETS = {"fig2": "<= 0.15 x ref", "fig2-stream": "-", "cognitive": "<= 1/4 of before", "cognitive-gru": "-",
           "cognitive-leaky": "-", "leaderboard": "<= 240 s"}
#: the parts that time one ``switchbench run`` of the cognitive paradigm: part -> model
COGNITIVE_RUNS = {"cognitive-gru": "gru", "cognitive-leaky": "leaky-rnn"}


def commands(part: str, exe: str, jobs: int, work: Path, tuning: str | None, short: bool = False) -> list[str]:
    """The command line of one part run by the installation whose console script is ``exe``."""
    if part in ("fig2", "fig2-stream"):
        return [exe, "run", "--paradigm", "blocked-linear", "--model", "gated-linear", "--seeds", "10",
                "--jobs", str(jobs)] + (["--set", "sampler=stream"] if part == "fig2-stream" else [])
    if part == "cognitive":
        suite = work / "cognitive-part.toml"
        n_blocks, block_size = SHORT if short else FULL
        suite.write_text(COGNITIVE_SUITE.format(n_blocks=n_blocks, block_size=block_size))
        return [exe, "suite", str(suite), "--jobs", str(jobs)]
    if part in COGNITIVE_RUNS:
        return [exe, "run", "--paradigm", "cognitive-switch", "--model", COGNITIVE_RUNS[part], "--seeds", "2",
                "--set", "n_blocks=2", "--jobs", str(jobs)]
    if part == "leaderboard":
        cmd = [exe, "leaderboard", "--jobs", str(jobs), "--out", str(work / "out")]
        if tuning:
            cmd += ["--tuning", tuning]
        return cmd
    raise SystemExit(f"unknown part {part!r}; valid: {', '.join(TARGETS)}")


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, of the process and the children it waited for) of
    one process (its output discarded; a failure stops the benchmark). On a shared machine the
    CPU time is the steadier of the two."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):        # 1: a suite with a failed run still reports the rest
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/engine_speed.py",
                                description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="fig2,cognitive",
                   help=f"comma-separated: {', '.join(TARGETS)}")
    p.add_argument("--jobs", type=int, default=2, help="--jobs of every command (default 2)")
    p.add_argument("--repeats", type=int, default=1, help="timed repeats per part and installation (median)")
    p.add_argument("--compare", nargs="*", default=[], metavar="EXE",
                   help="other installations' switchbench console scripts to time side by side")
    p.add_argument("--reference", default=None, metavar="COMMAND",
                   help="a shell command timed in every repeat beside the parts (e.g. the paper's own code); "
                        "each row then shows its median wall time over the reference's")
    p.add_argument("--tuning", default=None, help="a tuning table for the leaderboard part (both views)")
    p.add_argument("--short", action="store_true",
                   help="the cognitive part with 2 blocks of 100 batches instead of 6 of 300 (a quicker comparison)")
    args = p.parse_args(argv)
    here = Path(sys.executable).with_name("switchbench")      # the installation this interpreter runs
    here = str(here) if here.exists() else shutil.which("switchbench")
    exes = [here] + list(args.compare)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; each command in a fresh cache")
    rows = []
    with tempfile.TemporaryDirectory(prefix="switchbench-engine-speed-") as scratch:
        times: dict[tuple[str, str], list[float]] = {}
        cpus: dict[tuple[str, str], list[float]] = {}
        for r in range(args.repeats):
            for part in parts:
                order = exes if r % 2 == 0 else exes[::-1]
                for exe in order:
                    work = Path(tempfile.mkdtemp(dir=scratch))
                    env = {**os.environ, "SWITCHBENCH_CACHE": str(work / "cache")}
                    cmd = commands(part, exe, args.jobs, work, args.tuning, args.short)
                    wall, cpu = timed(cmd, env)
                    times.setdefault((part, exe), []).append(wall)
                    cpus.setdefault((part, exe), []).append(cpu)
                    print(f"  {part} by {exe}: {wall:.1f} s (CPU {cpu:.1f} s)", flush=True)
            if args.reference:
                wall, cpu = timed(["bash", "-c", args.reference], dict(os.environ))
                times.setdefault(("reference", args.reference), []).append(wall)
                cpus.setdefault(("reference", args.reference), []).append(cpu)
                print(f"  reference: {wall:.1f} s (CPU {cpu:.1f} s)", flush=True)
        for (part, exe), ts in times.items():
            rows.append((part, exe, statistics.median(ts), statistics.median(cpus[(part, exe)]), ts))
    ref = statistics.median(times[("reference", args.reference)]) if args.reference else None
    print(f"\n{'part':<12} {'median (s)':>11} {'CPU (s)':>8} {'/ ref':>6}  {'target':<18} installation / repeats")
    for part, exe, med, cpu, ts in rows:
        ratio = f"{med / ref:.2f}" if ref else "-"
        print(f"{part:<12} {med:>11.1f} {cpu:>8.1f} {ratio:>6}  {TARGETS.get(part, '-'):<18} {exe}  "
              f"[{', '.join(f'{t:.1f}' for t in ts)}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
