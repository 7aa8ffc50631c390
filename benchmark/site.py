"""The leaderboard as one self-contained web page (``site/index.html``): no CDN, no server,
opens from ``file://``. Data, styles, script and figures (base64 PNGs) are all inline.

A tab per paradigm (and one for the overall ranking), the two views (published defaults /
equal-budget tuning) side by side as a switch, sortable columns (click a header), the model
cards (citation, parameters, tunable grid, what tuning selected), the findings with their
status from the last ``switchbench reproduce`` in this cache, and the figures.
"""
from __future__ import annotations

import base64
import html
import importlib.resources
import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

import switchbench
from switchbench.benchmark.runner import cache_root
from switchbench.benchmark.storage import write_atomic

TEMPLATE = "site.html"


def findings_dir() -> Path:
    return cache_root() / "reports" / "findings"


def save_finding(report) -> Path:
    """Keep a finding's report (its checks' status, value and target) for the site."""
    path = findings_dir() / f"{report.finding}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    checks = [{"status": c.line().split()[0], "name": c.name, "value": float(c.value), "target": str(c.target)}
              for c in report.checks]
    return write_atomic(path, json.dumps({"finding": report.finding, "checks": checks, "notes": list(report.notes)}))


def _findings() -> list[dict]:
    from switchbench.benchmark.findings import FINDINGS

    out = []
    for name, fn in FINDINGS.items():
        path = findings_dir() / f"{name}.json"
        try:
            saved = json.loads(path.read_text()) if path.is_file() else None
            checks = [{**c, "status": str(c["status"])} for c in saved["checks"]] if saved else []
        except (OSError, ValueError, RecursionError, KeyError, TypeError):   # unreadable: as if never run
            saved, checks = None, []
        status = ("not run here" if saved is None else
                  "PASS" if all(c["status"] == "PASS" for c in checks) else
                  "/".join(sorted({c["status"] for c in checks if c["status"] != "PASS"})))
        out.append({"name": name, "summary": (fn.__doc__ or "").strip().split("\n")[0], "status": status,
                    "checks": checks})
    return out


def _table(df: pd.DataFrame, index: bool = True) -> dict:
    df = df.reset_index() if index else df
    return {"columns": [str(c) for c in df.columns], "rows": [[str(v) for v in row] for row in df.itertuples(index=False)]}


def _cards(report: dict) -> list[dict]:
    from switchbench.benchmark.leaderboard import _entry, fmt

    scores = report["scores"]
    params = scores[scores["metric"] == "params"].groupby(["model", "paradigm"])["value"].mean()
    chosen = {}
    if report["tuning"] is not None:
        for r in report["tuning"][report["tuning"]["selected"]].itertuples():
            chosen.setdefault(r.model, []).append(f"{r.paradigm}: {r.config}")
    cards = []
    for model in sorted(scores["model"].unique()):
        entry = _entry(model)
        card = asdict(entry.card) if entry else {"name": model}
        cards.append({"name": model, "description": card.get("description", ""), "citation": card.get("citation", ""),
                      "privileged": bool(card.get("privileged")),
                      "params": ", ".join(f"{p}: {fmt(v)}" for (m, p), v in params.items() if m == model),
                      "tunable": "; ".join(f"{k} in {list(v)}" for k, v in card.get("tunable", {}).items()) or "none",
                      "tuned": "; ".join(chosen.get(model, [])) or "not tuned", "notes": card.get("tuning", "")})
    return cards


def _image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def site_data(report: dict, figures: dict[str, Path]) -> dict:
    """Everything the page shows, as JSON."""
    views = {}
    for view, t in report["tables"].items():
        views[view] = {"paradigms": {p: _table(df) for p, df in t["paradigms"].items()},
                       "overall": _table(t["overall"], index=False)}
    figs = {}
    for key, path in figures.items():
        for view in report["tables"]:
            if f"_{view}_" in key:
                paradigm = key.split(f"_{view}_")[0]
                figs.setdefault(view, {}).setdefault(paradigm, []).append(_image(path))
    tuning = None
    if report["tuning"] is not None:
        tuning = _table(report["tuning"], index=False)
    return {"title": f"switchbench leaderboard: suite {report['suite'].name}", "version": switchbench.__version__,
            "protocol": report["protocol"], "seeds": report["seeds"], "views": views, "figures": figs,
            "paradigms": list(next(iter(views.values()))["paradigms"]), "cards": _cards(report),
            "key": _table(report["key"], index=False), "tuning": tuning, "findings": _findings(),
            "failed": [f"{f.spec.model} on {f.spec.paradigm}, seed {f.spec.seed}: {f.reason}" for f in report["failed"]]}


def write_site(report: dict, figures: dict[str, Path], out: Path) -> Path:
    """Write ``out/index.html`` (self-contained) and return its path."""
    template = (importlib.resources.files("switchbench.benchmark") / TEMPLATE).read_text()
    data = json.dumps(site_data(report, figures), default=str).replace("</", "<\\/")   # safe inside <script>
    page = template.replace("__TITLE__", html.escape(f"switchbench leaderboard: {report['suite'].name}"))
    page = page.replace("/*__DATA__*/null", data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return write_atomic(out / "index.html", page)
