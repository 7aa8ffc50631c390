"""The leaderboard as one self-contained web page (``site/index.html``): no CDN, no server,
opens from ``file://``. Data, styles, script and figures (base64 PNGs) are all inline.

A tab per paradigm (and one for the overall ranking), the two views (published defaults /
equal-budget tuning) side by side as a switch, sortable columns (click a header), the model
cards (citation, parameters, tunable grid, what tuning selected), the findings with their
recorded verdicts (``switchbench reproduce --record``: ``results/findings``; else the last
``reproduce`` in this cache; a record measured with other source code is marked stale), and
the figures.
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
from switchbench.benchmark.reporting import fmt, model_entry
from switchbench.benchmark.runner import cache_root
from switchbench.cache import write_atomic

TEMPLATE = "site.html"


def findings_dir() -> Path:
    """Where ``switchbench reproduce`` keeps each finding's last record in this cache."""
    return cache_root() / "reports" / "findings"


def save_finding(report, folder: Path | None = None, **provenance) -> Path:
    """Keep a finding's record (:func:`~switchbench.benchmark.findings.base.make_record`;
    ``provenance``: its ``seeds``, ``command``, ``wall_s``, ``overrides``) in ``folder``
    (default: this cache's :func:`findings_dir`), atomically."""
    from switchbench.benchmark.findings.base import make_record, write_record

    folder = findings_dir() if folder is None else Path(folder)
    provenance = {"seeds": None, "command": "", "wall_s": None, **provenance}
    return write_record(make_record(report, folder=folder, **provenance), folder)


def _findings(records: Path | None = None) -> list[dict]:
    """Every finding with its verdict: from its record in ``records`` (the committed
    ``results/findings``) or in this cache, whichever is current (measured with the installed
    source), else the newest, marked stale; "not run here" without either."""
    from switchbench.benchmark.findings import FINDINGS
    from switchbench.benchmark.findings.base import load_records

    found = [(load_records(records), str(records)) if records is not None else ({}, ""),
             (load_records(findings_dir()), "this cache")]
    out = []
    for name, fn in FINDINGS.items():
        cands = [(rec[name], where) for rec, where in found if name in rec]
        cands.sort(key=lambda c: (not c[0]["stale"], c[0]["provenance"].get("date") or ""), reverse=True)
        entry = {"name": name, "summary": (fn.__doc__ or "").strip().split("\n")[0], "status": "not run here",
                 "stale": False, "checks": [], "figures": [], "provenance": ""}
        if cands:
            rec, where = cands[0]
            p = rec["provenance"]
            wall = p.get("wall_s")
            entry.update(status=rec["verdict"], stale=rec["stale"], checks=rec["checks"], notes=rec.get("notes", []),
                         figures=[_image(f) for f in _record_figures(rec, records if where != "this cache"
                                                                       else findings_dir())],
                         date=(p.get("date") or "")[:10],
                         provenance=(f"recorded {p.get('date')} ({where}) at commit {(p.get('commit') or 'unknown')[:10]}"
                                     f", source hash {p['source_hash']}; {p.get('seeds') or 'default'} seeds; "
                                     f"wall time {wall if wall is None else round(wall)} s; "
                                     f"command: {p.get('command') or 'n/a'}"))
        out.append(entry)
    return out


def _record_figures(rec: dict, folder: Path) -> list[Path]:
    """A record's figures that exist (paths relative to its folder), PNGs under 2 MB."""
    paths = [Path(f) if Path(f).is_absolute() else Path(folder) / f for f in rec.get("figures", [])]
    return [f for f in paths if f.suffix == ".png" and f.is_file() and f.stat().st_size < 2 << 20]


def _table(df: pd.DataFrame, index: bool = True) -> dict:
    df = df.reset_index() if index else df
    return {"columns": [str(c) for c in df.columns], "rows": [[str(v) for v in row] for row in df.itertuples(index=False)]}


def _cards(report: dict) -> list[dict]:
    scores = report["scores"]
    params = scores[scores["metric"] == "params"].groupby(["model", "paradigm"])["value"].mean()
    chosen = {}
    if report["tuning"] is not None:
        for r in report["tuning"][report["tuning"]["selected"]].itertuples():
            chosen.setdefault(r.model, []).append(f"{r.paradigm}: {r.config}")
    cards = []
    for model in sorted(scores["model"].unique()):
        entry = model_entry(model)
        card = asdict(entry.card) if entry else {"name": model}
        cards.append({"name": model, "description": card.get("description", ""), "citation": card.get("citation", ""),
                      "privileged": bool(card.get("privileged")),
                      "params": ", ".join(f"{p}: {fmt(v)}" for (m, p), v in params.items() if m == model),
                      "tunable": "; ".join(f"{k} in {list(v)}" for k, v in card.get("tunable", {}).items()) or "none",
                      "tuned": "; ".join(chosen.get(model, [])) or "not tuned", "notes": card.get("tuning", "")})
    return cards


def _image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def site_data(report: dict, figures: dict[str, Path], records: Path | None = None) -> dict:
    """Everything the page shows, as JSON (``records``: the folder of the findings' records)."""
    views = {}
    for view, t in report["tables"].items():
        views[view] = {"paradigms": {p: _table(df) for p, df in t["paradigms"].items()},
                       "overall": _table(t["overall"], index=False), "caveats": t.get("caveats", {}),
                       "ranked_by": {p: df.attrs.get("ranked_by", "") for p, df in t["paradigms"].items()},
                       "note": ("Published view: every model at its card's defaults." if view == "published"
                                else report["protocol"])}
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
            "key": _table(report["key"], index=False), "tuning": tuning, "findings": _findings(records),
            "failed": [f"{f.spec.model} on {f.spec.paradigm}, seed {f.spec.seed}: {f.reason}" for f in report["failed"]]}


def write_site(report: dict, figures: dict[str, Path], out: Path, records: Path | None = None) -> Path:
    """Write ``out/index.html`` (self-contained) and return its path. ``records``: the folder
    of the findings' records (default: ``findings`` beside ``out`` where it exists, else
    ``results/findings`` of the current folder where it exists)."""
    from switchbench.benchmark.findings.base import RECORDS

    if records is None:
        records = next((f for f in (Path(out).parent / "findings", RECORDS) if f.is_dir()), None)
    template = (importlib.resources.files("switchbench.benchmark") / TEMPLATE).read_text()
    data = json.dumps(site_data(report, figures, records), default=str).replace("</", "<\\/")   # safe in <script>
    page = template.replace("__TITLE__", html.escape(f"switchbench leaderboard: {report['suite'].name}"))
    page = page.replace("/*__DATA__*/null", data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return write_atomic(out / "index.html", page)
