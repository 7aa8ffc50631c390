"""Figures (seaborn): each function takes run results and writes one PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import LogLocator, MaxNLocator  # noqa: E402
from scipy import stats  # noqa: E402

from switchbench import models  # noqa: E402
from switchbench.benchmark import metrics as M  # noqa: E402
from switchbench.benchmark.reporting import is_privileged  # noqa: E402
from switchbench.cache import atomic_path  # noqa: E402


def _save(fig, path: Path, dpi: int = 120, despine: bool = True) -> Path:
    """Tidy, write (creating the folder; atomically) and close a figure; returns its path."""
    if despine:
        sns.despine(fig)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:          # a failed write leaves the previous figure whole
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or None,
                        bbox_inches="tight")    # legends outside the axes included
    finally:
        plt.close(fig)
    return path


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
    return _save(fig, path, dpi=120)


def nta_fig5(tables: dict[str, dict[str, pd.DataFrame]], path: Path) -> Path:
    """The gated-network paper's Fig. 5: final specialisation over block length (rows) and
    gate speed or regularisation (columns), one annotated heatmap per source (rows: e.g.
    measured, the paper's code, the published figure) and grid (columns); the paper's colour
    scale (``Oranges``, 0.7 to 1); absent cells blank."""
    sns.set_theme(style="ticks", context="paper")
    names = list(next(iter(tables.values())))
    fig, axes = plt.subplots(len(tables), len(names), figsize=(5.6 * len(names), 3.9 * len(tables)), squeeze=False)
    for i, (source, grids) in enumerate(tables.items()):
        for j, name in enumerate(names):
            ax, table = axes[i, j], grids[name]
            sns.heatmap(table, annot=True, fmt=".3f", cmap="Oranges", vmin=0.7, vmax=1.0, ax=ax,
                        cbar_kws={"label": "specialisation"})
            ax.set(title=f"{source}: {name}", xlabel=table.columns.name, ylabel=table.index.name)
            ax.tick_params(axis="y", rotation=0)
    return _save(fig, path, dpi=100, despine=False)


BAR_METRICS = ("switch_time_late", "final_performance", "final_accuracy", "final_loss", "forgetting_Rk",
               "specialisation")
#: axis labels (with units) of the leaderboard's metrics
UNITS = {"switch_time_late": "late switch time (steps)", "switch_time_early": "early switch time (steps)",
         "final_loss": "final loss (normalised: 1 = null)", "forgetting_Rk": "forgetting, Rk (normalised loss)",
         "forgetting_R0": "forgetting, R0 (normalised loss)", "specialisation": "specialisation (cosine)",
         "final_accuracy": "final accuracy (fraction)", "final_performance": "final performance (fraction)"}


#: the range a metric's values can take: intervals and bands are clipped to it (no switch time below 0)
BOUNDS = {"switch_time_late": (0, None), "switch_time_early": (0, None), "switch time (steps)": (0, None),
          "final_loss": (0, None), "forgetting_Rk": (None, None), "forgetting_R0": (None, None),
          "specialisation": (0, 1), "final_accuracy": (0, 1), "final_performance": (0, 1)}


def t_interval(v, bounds: tuple[float | None, float | None] = (None, None)) -> tuple[float, float]:
    """The leaderboard tables' interval: mean +- 95% t-interval over seeds (a point for one
    seed), clipped to ``bounds`` (the metric's range).

    >>> t_interval([1.0, 2.0, 30.0], (0, None))[0]
    0.0
    """
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    m = float(v.mean()) if len(v) else float("nan")
    if len(v) < 2:
        return m, m
    h = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    lo, hi = bounds
    return (m - h if lo is None else max(float(lo), m - h)), (m + h if hi is None else min(float(hi), m + h))


def _bounded(metric: str):
    bounds = BOUNDS.get(metric, (None, None))
    return lambda v: t_interval(v, bounds)


def model_colours(names) -> dict[str, tuple]:
    """One colour per model (by name, ``†`` and labels ignored), the same in every chart of a report."""
    names = sorted(dict.fromkeys(_base(n) for n in names))
    colours = sns.color_palette("colorblind", len(names)) if len(names) <= 10 else sns.color_palette("husl", len(names))
    return dict(zip(names, colours))


def _base(name: str) -> str:
    """A model's name in a report, without its privileged mark."""
    return models.label(str(name)).replace(" †", "")


def _model_label(model: str) -> str:
    """The model's report name (a registered ``module:factory`` by its name), † if privileged."""
    model = models.label(model)
    return f"{model} †" if is_privileged(model) else model


def _mark_zero(ax, x: float, y: float, colour, horizontal: bool) -> None:
    """A bar of length 0 (invisible) as a diamond in its colour on the zero line at ``(x, y)``,
    labelled "0" beside it (``horizontal``: the bars run along x, the label to the right)."""
    ax.scatter([x], [y], marker="D", s=30, color=colour, edgecolor="black", zorder=5, clip_on=False)
    ax.annotate("0", (x, y), xytext=(6, 0) if horizontal else (0, 5), textcoords="offset points",
                **({"va": "center"} if horizontal else {"ha": "center"}), fontsize=8)


def metric_bars(scores: pd.DataFrame, path: Path, metrics=BAR_METRICS, colours: dict | None = None,
                exploded: dict | None = None) -> Path:
    """One paradigm's models side by side, one panel per metric: mean and 95% t-interval over
    seeds (the tables' intervals, clipped to the metric's range); models ordered by the first
    metric, privileged models marked †, switch times whose late switches were censored (never
    met the criterion) hatched, a value of 0 drawn as a marker on the zero line. A metric
    whose values span more than three decades is drawn on a log axis. ``colours``: model ->
    colour (:func:`model_colours`, one per model across a report); ``exploded``: models whose
    runs exploded (flagged in their label, left out of the bars)."""
    sns.set_theme(style="ticks", context="paper")
    exploded = exploded or {}
    df = scores[scores["metric"].isin(metrics) & ~scores["model"].isin(list(exploded))].dropna(subset=["value"])
    shown = [m for m in metrics if m in set(df["metric"])]
    if not shown:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no data: no model has these metrics here", ha="center")
        return _save(fig, path, despine=False)
    first = df[df["metric"] == shown[0]].groupby("model")["value"].mean()
    asc = not M.METRICS[shown[0]].higher_is_better if shown[0] in M.METRICS else True
    order = list(first.sort_values(ascending=asc).index)
    order += sorted(set(df["model"]) - set(order))
    censored = scores[scores["metric"] == "switch_censored_late"].groupby("model")["value"].mean()
    fig, axes = plt.subplots(1, len(shown), figsize=(3.1 * len(shown) + 1.6, 0.42 * len(order) + 1.5), sharey=True,
                             squeeze=False)
    colours = colours or model_colours(order)
    palette = {m: colours.get(_base(m), "grey") for m in order}
    for ax, m in zip(axes[0], shown):
        d = df[df["metric"] == m]
        sns.barplot(d, x="value", y="model", hue="model", order=order, hue_order=order, palette=palette,
                    errorbar=_bounded(m), legend=False, saturation=1, ax=ax)
        if m.startswith("switch_time"):
            for patch, model in zip(ax.patches, order):
                if censored.get(model, 0) > 0:
                    patch.set_hatch("///")
                    patch.set_edgecolor("black")
        means = d.groupby("model")["value"].mean().reindex(order)
        ax.axvline(0, color="black", lw=0.8)
        zero = [i for i, v in enumerate(means) if np.isfinite(v) and v == 0]
        for i in zero:                               # a bar of length 0 is invisible: mark and label it
            _mark_zero(ax, 0, i, palette[order[i]], horizontal=True)
        pos = means[means > 0]
        if BOUNDS.get(m, (None,))[0] == 0 and len(pos) > 1 and pos.max() / pos.min() > 1e3:   # decades apart: log
            if len(pos) == means.notna().sum():
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(base=10, numticks=5))
            else:
                ax.set_xscale("symlog", linthresh=float(pos.min()))
                ax.xaxis.set_major_locator(LogLocator(base=10, numticks=5))
        better = "higher" if M.METRICS.get(m) and M.METRICS[m].higher_is_better else "lower"
        ax.set(xlabel=f"{UNITS.get(m, m)}\n({better} is better)", ylabel="", title="")
        if ax.get_xscale() == "linear":
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))           # fewer ticks: labels never overlap
    axes[0][0].set_yticks(range(len(order)), [_model_label(m) for m in order])
    title = (f"{scores['paradigm'].iloc[0]}: mean and 95% t-interval over seeds; "
             + ("hatched: some late switches censored; " if shown[0].startswith("switch_time") else "")
             + "† privileged")
    if exploded:
        title += "\nleft out, a run exploded (final loss > 1e3): " + ", ".join(sorted(exploded))
    fig.suptitle(title, fontsize=9)
    return _save(fig, path, dpi=110)


def switch_curves(runs: list, path: Path, colours: dict | None = None,
                  names: list[str] | None = None) -> Path | None:
    """Switch time at each switch of the curriculum, per model (``names``: each run's name in
    the legend, default its model's): mean and 95% t-interval over seeds (clipped at 0); a
    hollow marker where some seed never met the criterion (censored: counted at the block's
    length); privileged models marked †; the legend outside the axes. None, and no file,
    where no run has a switch (a one-block curriculum): never empty axes."""
    sns.set_theme(style="ticks", context="paper")
    rows = []
    for r, name in zip(runs, names or [r.config["model"] for r in runs]):
        t = r.switch_times
        if len(t):
            rows.append(pd.DataFrame({"switch": np.arange(1, len(t) + 1), "switch time (steps)": t["switch_time"],
                                      "censored": t["censored"].astype(bool), "model": _model_label(name),
                                      "seed": r.config["seed"]}))
    if not rows:
        return None
    df = pd.concat(rows)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    colours = colours or model_colours(df["model"].unique())
    sns.lineplot(df, x="switch", y="switch time (steps)", hue="model", errorbar=_bounded("switch time (steps)"),
                 marker="o", palette={m: colours.get(_base(m), "grey") for m in df["model"].unique()}, ax=ax)
    cens = df.groupby(["model", "switch"], as_index=False).agg(t=("switch time (steps)", "mean"),
                                                                c=("censored", "any"))
    cens = cens[cens["c"]]
    if len(cens):
        ax.scatter(cens["switch"], cens["t"], s=60, facecolors="white", edgecolors="black", zorder=5,
                   label="censored (some seed)")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    c = runs[0].config["runner"]
    ax.set(xlabel="switch (block after a task change)", title=f"{runs[0].config['paradigm']}: steps to "
           f"{c['criterion']} {'>=' if c['criterion'] == 'accuracy' else '<='} {c['threshold']} after each switch")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)   # outside the data
    return _save(fig, path, dpi=110)


def nonlinear_switch(runs: dict[str, list], path: Path, threshold: float = 0.85, bin_steps: int = 50) -> Path:
    """Non-linear task switching on digits: online accuracy over steps, switch time (steps to
    ``threshold`` accuracy) per block, and the flexible model's gates; mean +- SEM over seeds
    for each model in ``runs`` (label -> results; the first label's gates are drawn)."""
    sns.set_theme(style="ticks", context="paper")
    fig, axes = plt.subplots(3, 1, figsize=(7, 7.5))
    acc, times, gates = [], [], []
    first = next(iter(runs))
    for label, results in runs.items():
        for r in results:
            b = _binned(r.log, ["accuracy"], bin_steps)
            b["model"] = label
            acc.append(b)
            st = M.switch_time(r.log, "accuracy", threshold)
            st["model"], st["seed"] = label, r.config["seed"]
            times.append(st)
            gcols = [c for c in r.log.columns if c.startswith("gates_")]
            if label == first and gcols:
                g = _binned(r.log, gcols, bin_steps).melt(id_vars=["seed", "step"], var_name="path", value_name="gate")
                gates.append(g)
    sns.lineplot(pd.concat(acc), x="step", y="accuracy", hue="model", errorbar="se", ax=axes[0])
    axes[0].axhline(threshold, color="grey", lw=0.8, ls="--")
    axes[0].set(ylabel="online accuracy", xlabel="step")
    sns.lineplot(pd.concat(times), x="block", y="switch_time", hue="model", errorbar="se", marker="o", ax=axes[1])
    axes[1].set(yscale="log", ylabel=f"steps to {threshold:.0%} accuracy", xlabel="block (after a switch)")
    if gates:
        sns.lineplot(pd.concat(gates), x="step", y="gate", hue="path", errorbar="se", ax=axes[2])
    axes[2].set(ylabel=f"gates ({first})", xlabel="step")
    return _save(fig, path)


def switch_cost(runs: dict[str, list], path: Path) -> Path:
    """Cued task switching: switch cost (error, loss) per mixed block over training, and each
    model's switch, mixing and congruency costs; mean +- SEM over seeds."""
    sns.set_theme(style="ticks", context="paper")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    rows, bars = [], []
    for label, results in runs.items():
        for r in results:
            for measure in ("error", "loss"):
                b = M.switch_cost_by_block(r.log, measure)
                b["model"], b["seed"], b["measure"] = label, r.config["seed"], measure
                rows.append(b)
            for name, key in (("switch cost", "switch_cost_error"), ("mixing cost", "mixing_cost_error"),
                              ("congruency effect", "congruency_effect_error")):
                bars.append({"model": label, "seed": r.config["seed"], "cost": name, "error": r.metrics.get(key)})
    df = pd.concat(rows)
    for ax, measure in zip(axes[:2], ("error", "loss")):
        sns.lineplot(df[df["measure"] == measure], x="block", y="cost", hue="model", errorbar="se", marker="o", ax=ax)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(ylabel=f"switch cost ({'error rate' if measure == 'error' else 'cross-entropy'})",
               xlabel="block (mixed blocks only)")
    sns.barplot(pd.DataFrame(bars).dropna(), x="cost", y="error", hue="model", errorbar="se", ax=axes[2])
    axes[2].axhline(0, color="grey", lw=0.8)
    axes[2].set(ylabel="difference in error rate", xlabel="")
    return _save(fig, path)


def grouped_bars(df: pd.DataFrame, path: Path, x: str = "model", hue: str | None = "schedule",
                 col: str = "measure", y: str = "value", ylabels: dict[str, str] | None = None,
                 reflines: dict[str, float] | None = None, censored: str | None = None) -> Path:
    """Bars of ``y`` (mean, 95% CI over seeds) per ``x`` and ``hue``, one panel per ``col``
    (e.g. blocked vs interleaved per model, per measure). ``ylabels``: each panel's axis name
    with its unit (default the measure's name); ``reflines``: a dashed reference line per
    panel (e.g. 1 for a ratio); ``censored``: a boolean column, a bar with a censored run
    (never met its criterion: the value is a bound, not a measurement) hatched. Tick labels
    are slanted and the legend sits outside the panels; a zero line on every panel, a bar of
    height 0 drawn as a labelled marker on it."""
    sns.set_theme(style="ticks", context="paper")
    grid = sns.catplot(df, kind="bar", x=x, y=y, hue=hue, col=col, sharey=False, errorbar=("ci", 95),
                       height=3.4, aspect=1.25)
    for measure, ax in grid.axes_dict.items():
        ax.axhline(0, color="black", lw=0.8)
        if reflines and measure in reflines:
            ax.axhline(reflines[measure], color="grey", lw=1, ls="--", label=f"{reflines[measure]:g} (reference)")
        ax.set_ylabel((ylabels or {}).get(measure, str(measure)))
        ax.set_title(str(measure))
        ax.tick_params(axis="x", rotation=30)
        for t in ax.get_xticklabels():
            t.set_ha("right")
        if censored is not None and censored in df:
            d = df[df[col] == measure]
            cens = d.groupby([x] + ([hue] if hue else []))[censored].any()
            xs = list(dict.fromkeys(d[x])) if not hasattr(d[x], "cat") else list(d[x].cat.categories)
            hues = list(dict.fromkeys(d[hue])) if hue else [None]
            bars = [p for p in ax.patches if p.get_height() == p.get_height()]
            for k, patch in enumerate(bars[:len(xs) * len(hues)]):
                key = (xs[k % len(xs)], hues[k // len(xs)]) if hue else xs[k]
                if bool(cens.get(key, False)):
                    patch.set_hatch("///")
                    patch.set_edgecolor("black")
        for patch in ax.patches:                     # a bar of height 0 is invisible: mark and label it
            if patch.get_height() == 0 and patch.get_width() > 0:
                _mark_zero(ax, patch.get_x() + patch.get_width() / 2, 0, patch.get_facecolor(), horizontal=False)
    if censored is not None and censored in df and df[censored].any():
        grid.figure.suptitle("hatched: some run never met its criterion (censored: its value is the budget, a bound)",
                             fontsize=9, y=1.02)
    if grid.legend is not None:
        sns.move_legend(grid, "upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    return _save(grid.figure, path, dpi=110, despine=False)


def block_size_trend(df: pd.DataFrame, path: Path) -> Path:
    """Switch time after equal training time against block size, mean +- SEM over seeds."""
    sns.set_theme(style="ticks", context="paper")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    sns.lineplot(df, x="block size (steps)", y="switch time (steps)", hue="model", marker="o", errorbar="se", ax=ax)
    ax.set(xscale="log")
    return _save(fig, path, dpi=120)
