"""The gated-network paper (Sandbrink, Bauer, Proca et al., NeurIPS 2024): Figs. 2, 4-5 and composition.

``switchbench reproduce nta-fig2`` runs the paper's Fig. 2 experiment (two orthogonal teachers,
20 blocks of 1000 steps, 10 seeds, paper defaults) for the flexible model and its forgetful
control. Time in the paper is ``step x dt`` (dt = 1e-3 here).
"""
from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import pandas as pd
from scipy import stats

from switchbench.benchmark import metrics as M
from switchbench.benchmark import plots
from switchbench.benchmark.findings.base import Check, Report, _ok, finding
from switchbench.benchmark.runner import cache_root
from switchbench.benchmark.suite import run_many, seeds


@finding("nta-fig2")
def nta_fig2(n_seeds: int = 10, jobs: int = 1, figures: Path | None = None, progress: bool = True,
             sampler: str | None = "wishart", **overrides) -> Report:
    """Fig. 2 of the gated-network paper: specialisation, gate switching and faster switching.

    The seeds of each model run as one batched program (:mod:`switchbench.benchmark.batched`)
    with ``sampler`` (default ``"wishart"``: batch covariances drawn exactly in distribution,
    held-out losses exact; ``"samples"``: the per-sample stream of the per-seed runner);
    ``sampler=None`` runs the per-seed runner.

    Checks (``overrides`` shrink the curriculum for tests, e.g. ``n_blocks=10``):

    - flexible: every teacher's best-match module has cosine >= 0.99 (minimum over seeds);
    - flexible: at the end of each of the last 5 blocks the active teacher's matched gate is
      >= 0.9 and every other gate <= 0.1 (worst case over seeds and blocks);
    - forgetful control: mean best-match cosine <= 0.8;
    - switch time to the paper's criterion (raw loss <= 0.1, normalised 0.4) falls:
      mean over the last 5 switches <= 0.2 x the first 3 for the flexible model, and not
      so (> 0.2) for the forgetful control.
    """
    labels = {"flexible": "gated-linear", "forgetful": "gated-linear-forgetful"}
    specs = [s for m in labels.values() for s in seeds("blocked-linear", m, n_seeds, **overrides)]
    results = _ok(run_many(specs, jobs=jobs, progress=progress, desc="nta-fig2", batched=sampler), "nta-fig2")
    runs = {label: [r for r in results if r.config["model"] == m] for label, m in labels.items()}
    env = gymnasium.make("switchbench/BlockedLinear-v0",
                         **{k: v for k, v in runs["flexible"][0].config["paradigm_params"].items()}).unwrapped
    teachers, dt = env.teachers, runs["flexible"][0].config["model_params"]["dt"]

    checks, notes = [], []
    cos_min, gate_on, gate_off = 1.0, 1.0, 0.0
    for r in runs["flexible"]:
        mods = r.probes["modules"][-1][..., : teachers.shape[-1]]
        match = M.specialisation(teachers, mods)[1]
        C = M.rowwise_cosine(teachers, mods)
        cos_min = min(cos_min, float(C[np.arange(len(match)), match].min()))
        block_tasks = r.log.groupby("block")["task"].first().to_numpy()
        for b in range(len(block_tasks) - 5, len(block_tasks)):
            g = r.probes["gates"][b]
            on = match[block_tasks[b]]
            gate_on = min(gate_on, float(g[on]))
            gate_off = max(gate_off, float(np.delete(g, on).max()))
    checks.append(Check("flexible: min best-match teacher-module cosine", cos_min, ">= 0.99", cos_min >= 0.99))
    checks.append(Check("flexible: min matched gate, last 5 block ends", gate_on, ">= 0.9", gate_on >= 0.9))
    checks.append(Check("flexible: max other gate, last 5 block ends", gate_off, "<= 0.1", gate_off <= 0.1))
    forget_cos = float(np.mean([r.metrics["specialisation"] for r in runs["forgetful"]]))
    checks.append(Check("forgetful: mean best-match cosine", forget_cos, "<= 0.8 (paper code ~0.70)",
                        forget_cos <= 0.8))
    for label in labels:
        times = [M.switch_time(r.log, "loss", 0.1) for r in runs[label]]
        early = float(np.mean([M.switch_time_summary(t)["switch_time_early"] for t in times]))
        late = float(np.mean([M.switch_time_summary(t)["switch_time_late"] for t in times]))
        ratio = late / early
        flexible = label == "flexible"
        checks.append(Check(f"{label}: switch time last 5 / first 3 (loss <= 0.1)", ratio,
                            "<= 0.2" if flexible else "> 0.2 (no such fall)", ratio <= 0.2 if flexible else ratio > 0.2))
        notes.append(f"{label}: switch time {early * dt:.3f} -> {late * dt:.3f} time units "
                     f"({early:.0f} -> {late:.0f} steps, dt = {dt:g}; paper: 0.94 -> 0.05 for the flexible model)")
    wall = np.mean([r.metrics["wall_ms_per_step"] for r in results])
    engines = sorted({f"batched, {r.config['runner']['sampler']} sampler" if "sampler" in r.config["runner"]
                      else "per-seed loop" for r in results})
    notes.append(f"{len(results)} runs, {wall:.3f} ms per learning step and seed ({'; '.join(engines)})")
    figs = []
    out = figures if figures is not None else cache_root() / "reports" / "nta-fig2"
    figs.append(plots.nta_fig2(runs, teachers, dt, Path(out) / "nta_fig2.png"))
    return Report("nta-fig2", checks, notes, figs)


# --- composition and curriculum structure (gated-network paper, Figs. 4-5) ---------------

COMPOSITION = {
    # the paper's composition figure: paradigm settings, model, its parameters, steps in 0.1 time units.
    # 31 blocks; the first int(0.75 * 31) = 23 cycle A, B, C (compose_after 0.75: round(23.25) = 23),
    # blocks 23..30 cycle the composed tasks. The control differs only by lam = 0.
    "task": ({"n_tasks": 3, "output_size": 6, "composition": "task", "mix": 0.5, "n_blocks": 31, "compose_after": 0.75,
              "block_size": 1000},
             "gated-linear", {"dt": 1e-3, "tau_w": 0.2, "tau_c": 0.03, "lam": 0.3, "manifold_weight": 5.0}, 100),
    "subtask": ({"n_tasks": 3, "output_size": 6, "composition": "subtask", "n_blocks": 31, "compose_after": 0.75,
                 "block_size": 100},
                "gated-linear-unitwise", {"dt": 1e-2, "tau_w": 0.2, "tau_c": 0.005, "lam": 0.025,
                                          "manifold_weight": 10.0}, 10),
}


@finding("nta-composition")
def nta_composition(n_seeds: int = 5, jobs: int = 1, figures: Path | None = None, progress: bool = True) -> Report:
    """Composition: composed tasks start at a lower loss for the flexible model than for its lam = 0 control.

    The paper's composition figure configuration (``COMPOSITION``): 3 teachers (input 20,
    output 6), 3 paths, 31 blocks, the first 23 cycling A, B, C, then never-seen composed
    tasks. Task composition (``mix * A + (1 - mix) * B``, mix 0.5): ``gated-linear`` with
    lam 0.3, ``manifold_weight`` 5, tau_w 0.2, tau_c 0.03, dt 1e-3, blocks of 1000 steps
    (tau_B / tau_w = 5). Subtask composition (even output rows of A, odd of B):
    ``gated-linear-unitwise`` with lam 0.025 (L2 manifold, weight 10), tau_w 0.2, tau_c
    0.005, dt 1e-2, blocks of 100 steps. Controls: the same with lam = 0.

    Check, per kind (the paper's figure): on the FIRST composed block (block 23), the mean raw
    loss (``1/2 sum_out err^2``, batch mean, no penalty) over its first 0.1 time units (100
    steps at dt 1e-3; 10 at dt 1e-2), mean over seeds, is at least 2x lower for the flexible
    model than for its control. Notes: the same over all composed blocks (23..30), the time to
    raw loss <= 0.1 in the first composed block (the paper's subtask measure; subtask only:
    a task-composed teacher's null loss, 0.075, is already below 0.1), and the
    flexible model on novel random tasks of the same shape (``probe="novel"``): composed /
    novel loss < 1 means composition helped. Our composed pairs come in the order AB, BC,
    CA (the paper's first composed block is CA).
    """
    checks, notes = [], []
    specs = []
    for kind, (params, model, hp, k) in COMPOSITION.items():
        for lam_set in ({}, {"lam": 0.0}):
            specs += seeds("blocked-linear", model, n_seeds, **params, **{**hp, **lam_set})
        specs += seeds("blocked-linear", model, n_seeds, **params, **hp, probe="novel")
    results = _ok(run_many(specs, jobs=jobs, progress=progress, desc="nta-composition", batched="wishart"),
                  "nta-composition")
    i = 0
    for kind, (params, model, hp, k) in COMPOSITION.items():
        flex, ctrl, novel = (results[i + j * n_seeds: i + (j + 1) * n_seeds] for j in range(3))
        i += 3 * n_seeds
        dt = hp["dt"]

        def composed_blocks(r):
            return sorted(r.log.loc[r.log["phase"] == "compose", "block"].unique())

        def first_k(runs, col="loss", first_only=True):
            vals = []
            for r in runs:
                blocks = composed_blocks(r)
                for b in blocks[:1] if first_only else blocks:
                    vals.append(float(r.log.loc[r.log["block"] == b, col].iloc[:k].mean()))
            return float(np.mean(vals))

        def time_to(runs, threshold=0.1):
            """Mean time (steps x dt) to raw loss <= threshold in the first composed block (censored at its end)."""
            out = []
            for r in runs:
                g = r.log.loc[r.log["block"] == composed_blocks(r)[0], "loss"].to_numpy()
                hit = np.flatnonzero(g <= threshold)
                out.append((hit[0] if len(hit) else len(g)) * dt)
            return float(np.mean(out))

        f, c = first_k(flex), first_k(ctrl)
        ratio = c / f
        checks.append(Check(f"{kind} composition: control (lam = 0) / flexible raw loss, first 0.1 time units of the "
                            "first composed block", ratio, ">= 2", ratio >= 2))
        fa, ca = first_k(flex, first_only=False), first_k(ctrl, first_only=False)
        score = first_k(flex, "norm_loss") / first_k(novel, "norm_loss")
        notes.append(f"{kind}: mean raw loss over the first {k} steps (0.1 time units, dt = {dt:g}) of the first "
                     f"composed block (block {composed_blocks(flex[0])[0]}): flexible {f:.4f}, lam = 0 control {c:.4f} "
                     f"(ratio {ratio:.2f}); over all {len(composed_blocks(flex[0]))} composed blocks: flexible "
                     f"{fa:.4f}, control {ca:.4f} (ratio {ca / fa:.2f}); "
                     + (f"time to raw loss <= 0.1 in the first composed block: flexible {time_to(flex):.3f}, control "
                        f"{time_to(ctrl):.3f} time units; " if kind == "subtask" else "")   # task: null loss 0.075 < 0.1
                     + f"flexible composed / novel (normalised, first composed block) = {score:.3f}")
    notes.append("paper code: task composition 0.040 (flexible) vs 0.106 (lam = 0); subtask composition time to loss "
                 "0.1: 0.014 vs 0.154")
    return Report("nta-composition", checks, notes, [])


@finding("curriculum-blocked-vs-interleaved")
def curriculum_blocked_vs_interleaved(n_seeds: int = 5, jobs: int = 1, figures: Path | None = None,
                                      progress: bool = True) -> Report:
    """Blocked vs interleaved curricula: final loss, forgetting and specialisation of gated and ungated models.

    Same 20 000 steps, 20 evaluation blocks: final
    held-out loss (mean of the last row of R0 over tasks), forgetting (blocked only: undefined
    when every block trains every task) and specialisation, for the gated network and the
    ungated baselines. A report: the check states the paper's expectation that only the
    blocked curriculum lets the gated network specialise."""
    model_names = ("gated-linear", "gated-linear-forgetful", "linear", "deep-linear")
    specs = [s for sched in ("blocked", "interleaved") for m in model_names
             for s in seeds("blocked-linear", m, n_seeds, schedule=sched)]
    results = _ok(run_many(specs, jobs=jobs, progress=progress, desc="curriculum", batched="wishart"), "curriculum")
    rows = []
    for r in results:
        base = {"model": r.config["model"], "schedule": r.config["paradigm_params"]["schedule"], "seed": r.config["seed"]}
        rows.append({**base, "measure": "final held-out loss (R0)", "value": float(r.R0[-1].mean())})
        rows.append({**base, "measure": "forgetting (Rk)", "value": r.metrics["forgetting_Rk"]})
        if "specialisation" in r.metrics:
            rows.append({**base, "measure": "specialisation", "value": r.metrics["specialisation"]})
    df = pd.DataFrame(rows)
    table = df.groupby(["measure", "model", "schedule"])["value"].mean().unstack("schedule")
    spec = table.loc["specialisation"]
    gap = float(spec.loc["gated-linear", "blocked"] - spec.loc["gated-linear", "interleaved"])
    checks = [Check("gated-linear specialisation, blocked minus interleaved", gap, "> 0.1 (only blocks teach "
                    "the gates to specialise)", gap > 0.1)]
    out = Path(figures) if figures is not None else cache_root() / "reports" / "curriculum"
    fig = plots.grouped_bars(df.dropna(subset=["value"]), out / "curriculum_blocked_vs_interleaved.png")
    return Report("curriculum-blocked-vs-interleaved", checks, ["mean over seeds:\n" + table.round(4).to_string()],
                  [fig])


@finding("block-size-switching")
def block_size_switching(n_seeds: int = 3, jobs: int = 1, figures: Path | None = None, progress: bool = True) -> Report:
    """Switching accelerates with block size (equal training time), for the flexible model.

    After equal training time (20 000 steps), the
    flexible model's switch time (to the paper's criterion, raw loss <= 0.1) over the last 3
    switches, for blocks of 250, 500, 1000 and 2000 steps, beside the forgetful control. The
    check is the sign of the trend (Spearman correlation of block size and switch time < 0)."""
    sizes = (250, 500, 1000, 2000)
    specs = [s for m in ("gated-linear", "gated-linear-forgetful") for bs in sizes
             for s in seeds("blocked-linear", m, n_seeds, block_size=bs, n_blocks=20_000 // bs)]
    results = _ok(run_many(specs, jobs=jobs, progress=progress, desc="block sizes", batched="wishart"),
                  "block sizes")
    rows = [{"model": r.config["model"], "block size (steps)": r.config["paradigm_params"]["block_size"],
             "seed": r.config["seed"],
             "switch time (steps)": float(M.switch_time(r.log, "loss", 0.1)["switch_time"].iloc[-3:].mean())}
            for r in results]
    df = pd.DataFrame(rows)
    flex = df[df["model"] == "gated-linear"]
    rho = float(stats.spearmanr(flex["block size (steps)"], flex["switch time (steps)"]).statistic)
    table = df.groupby(["model", "block size (steps)"])["switch time (steps)"].mean().unstack(0).round(1)
    out = Path(figures) if figures is not None else cache_root() / "reports" / "block-size"
    fig = plots.block_size_trend(df, out / "block_size_switching.png")
    return Report("block-size-switching",
                  [Check("gated-linear: Spearman(block size, late switch time)", rho, "< 0 (faster with longer blocks)",
                         rho < 0)],
                  ["mean switch time over the last 3 switches (steps):\n" + table.to_string()], [fig])


# --- paper Fig. 5: when do the modules specialise? (block length x gate speed / lam) ------

FIG5_MODEL = {"dt": 1e-3, "tau_w": 0.1, "c_init": 0.5, "w_init": 0.01, "manifold_weight": 5.0}
FIG5_BLOCKS = (10, 8, 6, 4, 1)                    # tau_B / tau_w, rows (10 at the top)
#: grid 1 (lam = 0.3): tau_w / tau_c = 20, 10 (added here), then the paper's 5, 2.5, 1.67, 1.25, 1
FIG5_TAU_C = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1)
FIG5_LAM = (0.0, 0.05, 0.1, 0.15, 0.2)            # grid 2 (tau_c = 0.005)
FIG5_GRIDS = {"gate speed": ("gate speed tau_w/tau_c", {"lam": 0.3}, "tau_c"),
              "regularisation": ("regularisation strength lam", {"tau_c": 0.005}, "lam")}
#: reference grids, rows FIG5_BLOCKS, columns (the paper's) tau_c = 0.02 ... 0.1 resp. FIG5_LAM:
#: "published" = the paper's Fig. 5 (10 seeds); "paper code" = its public code (commit 9bd6c45,
#: JAX 0.10.2 on CPU, the notebook's configuration and read-out, 3 seeds), run by us
FIG5_REF_COLS = {"gate speed": (0.02, 0.04, 0.06, 0.08, 0.1), "regularisation": FIG5_LAM}
FIG5_REF = {
    "published": {
        "gate speed": ((.9998, .9944, .9928, .9171, .9193), (.9987, .9968, .9870, .9187, .7426),
                       (.9988, .9846, .9197, .6247, .6423), (.9939, .5950, .6397, .6643, .6836),
                       (.6954, .7024, .7055, .7061, .7060)),
        "regularisation": ((.5463, .4156, .99995, .99996, .99994), (.5003, .6978, .99998, .99995, .99993),
                           (.5038, .99998, .99998, .99996, .99993), (.5691, .9079, .9966, .9951, .9876),
                           (.6620, .6855, .6225, .6375, .6421))},
    "paper code": {
        "gate speed": ((.5137, .5179, .5189, .5192, .5193), (.5144, .5234, .5241, .5241, .5241),
                       (.5382, .5589, .5623, .5635, .5640), (.6490, .6659, .6678, .6684, .6687),
                       (.6835, .6846, .6850, .6852, .6853)),
        "regularisation": ((.5930, .9733, .9930, .9994, .9990), (.4963, .9725, .9914, .9985, .9992),
                           (.4972, .9761, .9945, .9999, .9991), (.5012, .9995, .9990, .9991, .9991),
                           (.6258, .9989, .9991, .9992, .9992))},
}
#: checked regions (grid, what, cell predicate on (tau_B/tau_w, column value), specialised?): where
#: the paper's code and this implementation agree; a specialised region needs min >= 0.95, an
#: unspecialised one max <= 0.85 (two unspecialised modules score 0.5 to 0.7)
FIG5_REGIONS = (
    ("gate speed", "fast gates (tau_w/tau_c >= 10), blocks >= 4 tau_w", lambda b, v: b >= 4 and 0.1 / v >= 10, True),
    ("gate speed", "slow gates (tau_w/tau_c <= 5), any block length", lambda b, v: 0.1 / v <= 5 + 1e-9, False),
    ("regularisation", "lam >= 0.1, blocks >= 4 tau_w", lambda b, v: b >= 4 and v >= 0.1, True),
    ("regularisation", "lam = 0, any block length", lambda b, v: v == 0, False),
)


def _fig5_schedule(ratio: float, t_total: float, tau_w: float, dt: float) -> tuple[int, int]:
    """(steps per block, blocks) for block length ``ratio * tau_w``: ``tau_B / dt`` steps and
    ``int(t_total / tau_B) + 1`` blocks (the paper's ``t_tot // block_duration + 1``)."""
    tau_b = ratio * tau_w
    return int(round(tau_b / dt)), int(t_total / tau_b + 1e-9) + 1


def _fig5_frame(values: dict, name: str, blocks, cols) -> pd.DataFrame:
    """A grid ``{(tau_B/tau_w, column value): specialisation}`` as a labelled table (NaN: absent)."""
    xlabel = FIG5_GRIDS[name][0]
    label = (lambda v: f"{FIG5_MODEL['tau_w'] / v:.3g}") if name == "gate speed" else (lambda v: f"{v:g}")
    return pd.DataFrame([[values.get((b, v), np.nan) for v in cols] for b in blocks],
                        index=pd.Index([f"{b:g}" for b in blocks], name="block length tau_B/tau_w"),
                        columns=pd.Index([label(v) for v in cols], name=xlabel))


@finding("nta-fig5")
def nta_fig5(n_seeds: int = 4, jobs: int = 1, figures: Path | None = None, progress: bool = True,
             sampler: str | None = "wishart", blocks=FIG5_BLOCKS, tau_cs=FIG5_TAU_C, lams=FIG5_LAM,
             t_total: float = 7.0) -> Report:
    """Fig. 5 of the gated-network paper: specialisation needs long blocks, fast gates and regularised gates.

    Two teachers (input 20, output 10, orthogonal), two paths, batch 200, ``gated-linear`` with
    c = 0.5 and ``w_init`` 0.01 at start, dt = 1e-3, tau_w = 0.1 and the penalty weighting
    ``manifold_weight`` = 5 (``R = (N + 5 M) / 6``, the paper's Fig. 5 setting). Training
    time is fixed: blocks of ``tau_B`` = 10, 8, 6, 4, 1 x tau_w (1000, 800, 600, 400, 100
    steps), ``int(t_total / tau_B) + 1`` of them (8, 9, 12, 18, 71 for ``t_total`` = 7),
    A, B, A, B, ... Two grids of the FINAL specialisation (row-wise teacher-module cosine,
    Hungarian one-to-one match, at the end of the last block; mean over ``n_seeds`` seeds,
    4 by default where the paper has 10, run batched with ``sampler``):

    - gate speed: lam = 0.3, tau_c = 0.02, 0.04, 0.06, 0.08, 0.1 (tau_w / tau_c = 5 ... 1, the
      paper's columns) and, added here, 0.005 and 0.01 (tau_w / tau_c = 20, 10);
    - regularisation: tau_c = 0.005, lam = 0, 0.05, 0.1, 0.15, 0.2.

    References (``FIG5_REF``): the published figure, and the paper's public code run by us on
    the notebook's configuration (3 seeds). They disagree: the code does not reproduce the
    published gate-speed grid (every cell 0.51 to 0.69, where the figure has 0.92 to 1.0 for
    long blocks and tau_w / tau_c >= 1.67), nor the published lam = 0.05 cells at long blocks
    (0.97 vs 0.42 and 0.70) or the tau_B = tau_w row of the regularisation grid (0.999 vs
    0.62 to 0.69). That row is bistable (per seed, either 0.999 or about 0.7: at lam 0.1, 4 of
    10 seeds here and 5 of 10 in an independent numpy simulation specialise, 3 of 3 with the
    paper's code), so its mean depends on the seeds and it is not checked. The checks (``FIG5_REGIONS``) are the
    regions where the paper's code and this implementation agree, which carry the paper's
    qualitative claims with the gate-speed boundary moved from 2.5 to between 5 and 10:
    fast gates with blocks >= 4 tau_w specialise (>= 0.95); slow gates (tau_w / tau_c <= 5,
    lam 0.3) do not, at any block length (<= 0.85); lam >= 0.1 with blocks >= 4 tau_w
    specialises; lam = 0 never does. ``blocks``, ``tau_cs``, ``lams`` and ``t_total`` shrink
    the grid for tests (a region with no cell is not checked).

    Differences from the paper's code: its "final" value is read at t = 7 (its last log
    point) while we read it at the end of the last block (t = 8, 7.2, 7.2, 7.2, 7.1); it
    assigns each path the teacher of highest time-averaged cosine where we match one-to-one.
    """
    tau_w, dt = FIG5_MODEL["tau_w"], FIG5_MODEL["dt"]
    cols = {"gate speed": tuple(tau_cs), "regularisation": tuple(lams)}
    cells, specs = [], []
    for name, (_, fixed, var) in FIG5_GRIDS.items():
        for ratio in blocks:
            steps, n_blocks = _fig5_schedule(ratio, t_total, tau_w, dt)
            for v in cols[name]:
                cells.append((name, ratio, v))
                specs += seeds("blocked-linear", "gated-linear", n_seeds, block_size=steps, n_blocks=n_blocks,
                               k_adapt=0, **FIG5_MODEL, **{**fixed, var: v})
    results = _ok(run_many(specs, jobs=jobs, progress=progress, desc="nta-fig5", batched=sampler), "nta-fig5")
    spec = {cell: float(np.mean([r.metrics["specialisation"] for r in results[i * n_seeds:(i + 1) * n_seeds]]))
            for i, cell in enumerate(cells)}

    tables: dict[str, dict[str, pd.DataFrame]] = {f"measured ({n_seeds} seeds)": {}, "paper code (3 seeds)": {},
                                                  "published (10 seeds)": {}}
    checks, notes = [], []
    for name, (xlabel, fixed, _) in FIG5_GRIDS.items():
        measured = {(b, v): s for (n, b, v), s in spec.items() if n == name}
        refs = {src: {(b, v): FIG5_REF[src][name][FIG5_BLOCKS.index(b)][FIG5_REF_COLS[name].index(v)]
                      for b in FIG5_BLOCKS for v in FIG5_REF_COLS[name]} for src in FIG5_REF}
        for (title, grid), values in zip(tables.items(), (measured, refs["paper code"], refs["published"])):
            grid[name] = _fig5_frame(values, name, blocks, cols[name])
        fixed_txt = ", ".join(f"{k} = {v:g}" for k, v in fixed.items())
        for grid_name, what, inside, high in FIG5_REGIONS:
            sel = [k for k in measured if grid_name == name and inside(*k)]
            if not sel:
                continue
            value = min(measured[k] for k in sel) if high else max(measured[k] for k in sel)
            checks.append(Check(f"{name} grid ({fixed_txt}), {what}: {'min' if high else 'max'} specialisation "
                                f"over {len(sel)} cells", value, ">= 0.95 (specialised)" if high else
                                "<= 0.85 (not specialised)", value >= 0.95 if high else value <= 0.85))
        notes.append(f"{name} grid ({fixed_txt}), final specialisation:\n" + "\n".join(
            f"{title}:\n{grid[name].round(3).to_string()}" for title, grid in tables.items()))
    wall = np.mean([r.metrics["wall_ms_per_step"] for r in results])
    notes.append(f"{len(results)} runs, {wall:.3f} ms per learning step and seed; t_total = {t_total:g}, blocks "
                 "(tau_B/tau_w: steps x blocks) "
                 + ", ".join(f"{r:g}: {'x'.join(map(str, _fig5_schedule(r, t_total, tau_w, dt)))}" for r in blocks))
    out = Path(figures) if figures is not None else cache_root() / "reports" / "nta-fig5"
    fig = plots.nta_fig5(tables, out / "nta_fig5.png")
    return Report("nta-fig5", checks, notes, [fig])
