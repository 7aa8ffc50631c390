"""Findings: paper claims re-measured with their checks (PASS / FAIL / DIFFERS).

One module per source: :mod:`.nta` (the gated-network paper, Sandbrink, Bauer, Proca et al.
2024), :mod:`.switching` (digit and cued task switching), :mod:`.cognitive` (Yang et al.'s
cognitive tasks), :mod:`.molap` (modular latent primitives, Marton et al.). Each finding is a
function registered with :func:`finding`; ``switchbench reproduce NAME`` runs it. Reference
numbers (published figures, the papers' public code run by us) are data files beside the
modules (``findings/data``), each with its provenance in ``data/provenance.json``.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from switchbench.benchmark.suite import Failure
from switchbench.errors import SwitchbenchError

#: name -> finding function, filled by :func:`finding` as the source modules are imported
FINDINGS: dict = {}


def model_overrides(overrides: dict | None, model: str) -> dict:
    """The ``--set``-style overrides for one model's runs of a finding.

    Every finding takes ``overrides``: plain keys (``paradigm.key`` / ``model.key`` to force a
    side, as ``--set``) apply to every run; a key written ``MODEL/key`` only to that model's.

    >>> model_overrides({"n_blocks": 4, "leaky-rnn/lr": 0.1, "gru/lr": 0.2}, "leaky-rnn")
    {'n_blocks': 4, 'lr': 0.1}
    """
    out = {}
    for key, value in (overrides or {}).items():
        model_name, sep, bare = key.rpartition("/")
        if not sep:
            out[key] = value
        elif model_name == model:
            out[bare] = value
    return out


def finding(name: str, models: tuple[str, ...] = (), source: str = ""):
    """Register a finding function under ``name`` (``switchbench reproduce NAME``);
    ``models``: the labels its runs answer to in ``MODEL/KEY`` overrides (model names, or
    the finding's own labels of its runs).

    One signature for every finding: ``fn(n_seeds=<its default>, *, jobs=1, options=None,
    overrides=None, figures=None, progress=True) -> Report`` (``options``: a
    :class:`~switchbench.benchmark.config.RunOptions` for every run; ``overrides``: see
    :func:`model_overrides`; keys written ``finding.KEY`` are the finding's own options, see
    :func:`finding_options`). A ``MODEL/KEY`` override whose ``MODEL`` is none of ``models``
    (or of the option ``finding.models`` where the finding has it and it is set) is refused
    before any run. ``source``: where the claim and its thresholds come from (the paper, its
    figure), kept in the finding's record for every check that names no source of its own."""
    def register(fn):
        if name in FINDINGS:
            raise SwitchbenchError(f"finding {name!r} is registered twice")

        @functools.wraps(fn)
        def checked(*args, overrides: dict | None = None, **kwargs):
            check_model_prefixes(name, overrides, models)
            return fn(*args, overrides=overrides, **kwargs)

        checked.models, checked.source = tuple(models), source
        FINDINGS[name] = checked
        return checked
    return register


def check_model_prefixes(name: str, overrides: dict | None, models: tuple[str, ...]) -> None:
    """Refuse a ``MODEL/KEY`` override that addresses no run of the finding ``name``.

    >>> check_model_prefixes("nta-fig2", {"gated-linear/lr": 0.1}, ("gated-linear",))
    >>> check_model_prefixes("nta-fig2", {"nosuchmodel/lr": 1}, ("gated-linear", "gated-linear-forgetful"))
    Traceback (most recent call last):
    ...
    switchbench.errors.SwitchbenchError: nta-fig2 has no runs of 'nosuchmodel' (in 'nosuchmodel/lr'); its models: gated-linear, gated-linear-forgetful
    """
    chosen = (overrides or {}).get("finding.models")      # a finding with that option runs these instead
    valid = [m for m in chosen if isinstance(m, str)] if isinstance(chosen, (list, tuple)) else list(models)
    for key in overrides or {}:
        prefix, sep, _ = key.rpartition("/")
        if sep and prefix not in valid:
            raise SwitchbenchError(f"{name} has no runs of {prefix!r} (in {key!r}); its models: "
                                   f"{', '.join(dict.fromkeys(valid)) or 'none'}")


def finding_options(name: str, overrides: dict | None, defaults: dict) -> tuple[dict, dict]:
    """Split ``overrides`` into the finding's own options (keys ``finding.KEY``: its grid, its
    sampler) and the run parameters (the rest). An option the finding lacks is a clear error.

    >>> finding_options("nta-fig5", {"finding.t_total": 3.0, "lam": 0.1}, {"t_total": 7.0, "blocks": (10, 1)})
    ({'t_total': 3.0, 'blocks': (10, 1)}, {'lam': 0.1})
    >>> finding_options("nta-fig5", {"finding.grid": 1}, {"t_total": 7.0})
    Traceback (most recent call last):
    ...
    switchbench.errors.SwitchbenchError: nta-fig5 has no option 'finding.grid'; valid: finding.t_total
    """
    options, rest = dict(defaults), {}
    for key, value in (overrides or {}).items():
        if key.startswith("finding."):
            bare = key.removeprefix("finding.")
            if bare not in defaults:
                valid = ", ".join(f"finding.{k}" for k in defaults) or "none"
                raise SwitchbenchError(f"{name} has no option {key!r}; valid: {valid}")
            options[bare] = _check_option(name, key, value, defaults[bare])
        else:
            rest[key] = value
    return options, rest


def _check_option(name: str, key: str, value, default):
    """``value`` if it is of the kind of the option's ``default`` (a number; a non-empty list
    of numbers or of names; text), else a clear error. A list comes back as a tuple.

    >>> _check_option("nta-fig5", "finding.blocks", [10, 4], (10, 8))
    (10, 4)
    >>> _check_option("nta-fig5", "finding.blocks", "oops", (10, 8))
    Traceback (most recent call last):
    ...
    switchbench.errors.SwitchbenchError: nta-fig5: finding.blocks must be a non-empty list of numbers, e.g. (10, 8), got 'oops'
    """
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if isinstance(default, tuple) and default:
        kind = number if number(default[0]) else (lambda v: isinstance(v, type(default[0])))
        what = "numbers" if number(default[0]) else "names" if isinstance(default[0], str) else "values"
        if isinstance(value, (list, tuple)) and value and all(kind(v) for v in value):
            return tuple(value)
        raise SwitchbenchError(f"{name}: {key} must be a non-empty list of {what}, e.g. {default!r}, got {value!r}")
    if number(default) and not (number(value) and (isinstance(value, int) or not isinstance(default, int))):
        what = "an integer" if isinstance(default, int) else "a number"
        raise SwitchbenchError(f"{name}: {key} must be {what}, e.g. {default!r}, got {value!r}")
    return value


def reference(name: str) -> Path:
    """A reference data file shipped with the package (``findings/data/NAME``); its provenance
    (source, commit, library versions, seeds, the command) is :func:`provenance`."""
    path = resources.files("switchbench.benchmark.findings").joinpath("data", name)
    if not path.is_file():
        raise SwitchbenchError(f"reference data {name!r} is missing from the installed package")
    return Path(str(path))


def provenance(name: str) -> dict:
    """The provenance of the reference file ``name`` (an entry of ``data/provenance.json``).

    >>> sorted(provenance("nta_fig5_published.csv"))[:3]
    ['command', 'commit', 'description']
    """
    return json.loads(reference("provenance.json").read_text())[name]


#: check statuses: the claim holds, measured the paper's way; it does not; or we, the paper's
#: code and the published figure disagree (all numbers shown; never counted as a pass)
STATUSES = ("PASS", "FAIL", "DIFFERS")


@dataclass
class Check:
    """One claim and its verdict. ``Check(name, value, target, passed)`` is a PASS or a FAIL;
    ``status="DIFFERS"`` marks a disagreement between us, the paper's code and the published
    figure (``detail`` shows the numbers; never a pass). ``post_hoc=True`` labels a check whose
    criterion was chosen after seeing the result; it is printed as such.

    >>> print(Check("switch time ratio", 0.12, "<= 0.2", True).line())
    PASS     switch time ratio: 0.12 (target <= 0.2)
    >>> c = Check("published map", 3, "every cell agrees within 0.1", True, status="DIFFERS", post_hoc=True)
    >>> c.passed, c.line()
    (False, 'DIFFERS  published map: 3 (target every cell agrees within 0.1) [criterion chosen after seeing the result]')
    """
    name: str
    value: float
    target: str
    passed: bool
    status: str = ""
    post_hoc: bool = False
    detail: str = ""
    source: str = ""       # where the target comes from, where it is not the finding's own source

    def __post_init__(self):
        if not self.status:
            self.status = "PASS" if self.passed else "FAIL"
        if self.status not in STATUSES:
            raise SwitchbenchError(f"unknown check status {self.status!r}; valid: {', '.join(STATUSES)}")
        if self.status != "DIFFERS" and self.passed != (self.status == "PASS"):
            raise SwitchbenchError(f"check {self.name!r}: status {self.status} contradicts passed={self.passed}")
        self.passed = self.status == "PASS"

    def line(self) -> str:
        value = f"{self.value:.4g}" if isinstance(self.value, (int, float, np.number)) else str(self.value)
        text = f"{self.status:<8} {self.name}: {value} (target {self.target})"
        text += " [criterion chosen after seeing the result]" if self.post_hoc else ""
        return text + "".join(f"\n           {row}" for row in self.detail.splitlines())


@dataclass
class Report:
    finding: str
    checks: list[Check]
    notes: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every check PASSes (a DIFFERS is not a pass)."""
        return all(c.status == "PASS" for c in self.checks)

    def counts(self) -> dict[str, int]:
        """How many checks have each status."""
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}


def _ok(results, what):
    bad = [r for r in results if isinstance(r, Failure)]
    if bad:
        raise SwitchbenchError(f"{what}: {bad[0].reason}")
    return results


def _t_interval(values) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (NaN half-width with one seed)."""
    from scipy import stats

    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    h = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return m, m - h, m + h


# --- records: a finding's verdict as data (``switchbench reproduce NAME --record``) ---------------

#: where ``switchbench reproduce --record`` writes each finding's record (``NAME.json``), relative to the
#: current folder; the leaderboard's page reads the records of ``OUT/findings``
RECORDS = Path("results") / "findings"


def verdict(statuses) -> str:
    """A finding's verdict from its checks' statuses: PASS when all pass, else the statuses
    other than PASS (``FAIL``, ``DIFFERS`` or ``DIFFERS/FAIL``).

    >>> verdict(["PASS", "PASS"]), verdict(["PASS", "FAIL"]), verdict(["DIFFERS", "FAIL", "PASS"])
    ('PASS', 'FAIL', 'DIFFERS/FAIL')
    """
    statuses = list(statuses)
    if not statuses:
        return "no checks"
    bad = sorted({s for s in statuses if s != "PASS"})
    return "/".join(bad) if bad else "PASS"


def make_record(report: Report, *, seeds: int | None, command: str, wall_s: float | None,
                overrides: dict | None = None,
                folder: Path | None = None) -> dict:
    """A finding's record: its verdict, every check (name, status, value, target and where the
    target comes from), notes, figures (relative to ``folder`` where inside it) and provenance
    (git commit where known, the package's source hash, versions, command, seeds, wall time, date)."""
    import datetime
    import platform

    import torch

    import switchbench
    from switchbench.benchmark.config import source_hash
    from switchbench.benchmark.config import source_commit

    fn = FINDINGS.get(report.finding)
    source = getattr(fn, "source", "")

    def number(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return str(v)

    def where(f: Path) -> str:
        f = Path(f)
        try:
            return str(f.resolve().relative_to(Path(folder).resolve())) if folder is not None else str(f)
        except ValueError:
            return str(f)

    checks = [{"name": c.name, "status": c.status, "value": number(c.value), "target": str(c.target),
               "source": c.source or source, "post_hoc": bool(c.post_hoc), "detail": c.detail} for c in report.checks]
    commit = source_commit()
    return {"finding": report.finding, "summary": ((fn.__doc__ if fn else "") or "").strip().split("\n")[0],
            "verdict": verdict(c.status for c in report.checks), "counts": report.counts(), "checks": checks,
            "notes": list(report.notes), "figures": [where(f) for f in report.figures],
            "provenance": {"commit": commit.get("commit"), "dirty": commit.get("dirty"),
                           "source_hash": source_hash(), "switchbench": switchbench.__version__,
                           "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
                           "command": command, "seeds": seeds, "overrides": {k: repr(v) for k, v in
                                                                             (overrides or {}).items()},
                           "wall_s": None if wall_s is None else round(float(wall_s), 1),
                           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}


def write_record(record: dict, folder: Path = RECORDS) -> Path:
    """Write ``folder/NAME.json`` atomically (a temporary file beside it, then one rename)."""
    from switchbench.cache import write_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return write_atomic(folder / f"{record['finding']}.json", json.dumps(record, indent=1, default=str) + "\n")


def load_records(folder: Path = RECORDS) -> dict[str, dict]:
    """The records in ``folder`` by finding name, each with ``stale``: True where the source
    hash it was measured with is not the installed package's (the code changed since; its
    numbers are not current). Unreadable files are skipped with a warning."""
    from switchbench.benchmark.config import source_hash
    from switchbench.benchmark.storage import warn

    now, out = source_hash(), {}
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            rec = json.loads(path.read_text())
            rec["stale"] = rec["provenance"]["source_hash"] != now
            rec["verdict"] = verdict(c["status"] for c in rec["checks"])
        except (OSError, ValueError, RecursionError, KeyError, TypeError) as e:
            warn(f"finding record {path} is unreadable ({type(e).__name__}: {e}); skipped")
            continue
        out[rec["finding"]] = rec
    return out


def records_table(folder: Path = RECORDS, mark_stale: bool = True) -> str:
    """The findings' records as a Markdown table (the README's): finding, verdict, checks by
    status, wall time, seeds, date, commit and source hash of the measurement. With
    ``mark_stale``, a record of another source hash reads ``stale`` before its verdict."""
    rows = ["| finding | verdict | checks (PASS / FAIL / DIFFERS) | wall time | seeds | recorded | commit | source hash |",
            "|---|---|---|---|---|---|---|---|"]
    for name, rec in load_records(folder).items():
        p, n = rec["provenance"], rec["counts"]
        wall = p["wall_s"]
        wall = "n/a" if wall is None else f"{wall:.0f} s" if wall < 120 else f"{int(wall // 60)} min {wall % 60:.0f} s"
        shown = f"stale ({p['date'][:10]}): {rec['verdict']}" if mark_stale and rec["stale"] else rec["verdict"]
        rows.append(f"| `{name}` | {shown} | {n.get('PASS', 0)} / {n.get('FAIL', 0)} / {n.get('DIFFERS', 0)} | {wall} "
                    f"| {p['seeds']} | {p['date'][:10]} | {(p['commit'] or 'unknown')[:7]} | {p['source_hash']} |")
    return "\n".join(rows)


if __name__ == "__main__":     # python -m switchbench.benchmark.findings.base [FOLDER]: the README's table
    import sys

    print(records_table(Path(sys.argv[1]) if len(sys.argv) > 1 else RECORDS))
