"""Figures (seaborn): each function takes run results and writes one PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from switchbench.benchmark import metrics as M  # noqa: E402


def _binned(log: pd.DataFrame, cols: list[str], bin_steps: int) -> pd.DataFrame:
    df = log[["seed", "step", *cols]].copy()
    df["step"] = (df["step"] // bin_steps) * bin_steps
    return df.groupby(["seed", "step"], as_index=False)[cols].mean()


def nta_fig2(runs: dict[str, list], teachers: np.ndarray, dt: float, path: Path, bin_steps: int = 20) -> Path:
    """The gated-network paper's Fig. 2: loss, gates and teacher-module cosine over time,
    mean +- SEM over seeds, for each model in ``runs`` (label -> results)."""
    sns.set_theme(style="ticks", context="paper")
    fig, axes = plt.subplots(3, 1, figsize=(7, 7), sharex=True)
    loss, gates, cos = [], [], []
    for label, results in runs.items():
        for r in results:
            log = r.log
            b = _binned(log, ["norm_loss"], bin_steps)
            b["model"] = label
            loss.append(b)
            mods = r.probes["modules"][..., : teachers.shape[-1]]
            match = M.specialisation(teachers, mods[-1])[1]
            block_end = (np.arange(len(mods)) + 1) * r.config["paradigm_params"]["block_size"]
            for blk, m in zip(block_end, mods):
                C = M.rowwise_cosine(teachers, m)
                cos.append({"model": label, "seed": r.config["seed"], "time": blk * dt,
                            "cosine": float(C[np.arange(len(match)), match].mean())})
            if label == next(iter(runs)):
                g = _binned(log, [f"gates_{p}" for p in match], bin_steps)
                for k, p in enumerate(match):
                    gates.append(pd.DataFrame({"time": g["step"] * dt, "seed": g["seed"], "gate": g[f"gates_{p}"],
                                               "module": f"matched to teacher {chr(65 + k)}"}))
    loss = pd.concat(loss)
    loss["time"] = loss["step"] * dt
    sns.lineplot(loss, x="time", y="norm_loss", hue="model", errorbar="se", ax=axes[0])
    axes[0].set(yscale="log", ylabel="normalised loss")
    sns.lineplot(pd.concat(gates), x="time", y="gate", hue="module", errorbar="se", ax=axes[1])
    axes[1].set(ylabel=f"gates ({next(iter(runs))})")
    sns.lineplot(pd.DataFrame(cos), x="time", y="cosine", hue="model", errorbar="se", marker="o", ax=axes[2])
    axes[2].set(xlabel="time (steps x dt)", ylabel="teacher-module cosine")
    sns.despine(fig)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


BAR_METRICS = ("final_loss", "switch_time_late", "forgetting_Rk", "specialisation")


def metric_bars(scores: pd.DataFrame, path: Path, metrics=BAR_METRICS) -> Path:
    """One paradigm's models side by side: bars of each metric, mean and 95% CI over seeds."""
    sns.set_theme(style="ticks", context="paper")
    df = scores[scores["metric"].isin(metrics)].dropna(subset=["value"])
    grid = sns.catplot(df, kind="bar", x="value", y="model", col="metric", col_wrap=2, sharex=False,
                       errorbar=("ci", 95), height=2.6, aspect=1.5, hue="model", legend=False)
    grid.set_titles("{col_name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.savefig(path, dpi=110)
    plt.close(grid.figure)
    return path


def switch_curves(runs: list, path: Path) -> Path:
    """Switch time at each switch of the curriculum, per model, mean +- SEM over seeds."""
    sns.set_theme(style="ticks", context="paper")
    rows = []
    for r in runs:
        t = r.switch_times
        rows.append(pd.DataFrame({"switch": np.arange(1, len(t) + 1), "switch time (steps)": t["switch_time"],
                                  "model": r.config["model"], "seed": r.config["seed"]}))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.lineplot(pd.concat(rows), x="switch", y="switch time (steps)", hue="model", errorbar="se", marker="o", ax=ax)
    c = runs[0].config["runner"]
    ax.set_title(f"{runs[0].config['paradigm']}: steps to {c['criterion']} "
                 f"{'>=' if c['criterion'] == 'accuracy' else '<='} {c['threshold']}")
    sns.despine(fig)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
