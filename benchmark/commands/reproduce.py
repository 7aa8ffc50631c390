"""``switchbench reproduce``: paper findings re-measured, each check PASS, FAIL or DIFFERS;
exit 1 unless every check passes."""
from __future__ import annotations

import inspect
import shlex
import time
from pathlib import Path

from switchbench.benchmark.commands.options import add_run_options, add_set, command, run_inputs, seed_count


def add(sub) -> None:
    s = command(sub, "reproduce", "re-measure paper findings: each check PASS, FAIL or DIFFERS",
                "Re-run paper findings and print each check's measured value against its target: PASS, FAIL, or "
                "DIFFERS (we, the paper's code or the published figure disagree; never a pass); exit code 1 unless "
                "every check passes.",
                "switchbench reproduce nta-fig2 --jobs 2",
                "switchbench reproduce nta-fig2 --seeds 3 --figures figs",
                "switchbench reproduce nta-fig5 --set 'finding.blocks=(10,)'")
    s.add_argument("findings", nargs="*", metavar="FINDING",
                   help="finding names (`switchbench list findings`; default: every finding)")
    s.add_argument("--seeds", type=seed_count, default=None, metavar="N",
                   help="seeds per model (default: the finding's own, as in the paper)")
    add_set(s, "override a parameter of every run of the finding (MODEL/KEY: one model's runs; finding.KEY: the "
               "finding's own options, e.g. its grid), repeatable (default: none, the finding's own settings)")
    s.add_argument("--figures", default=None, metavar="DIR",
                   help="folder for figures (default: a folder under the run cache)")
    s.add_argument("--record", nargs="?", const="results/findings", default=None, metavar="DIR",
                   help="write each finding's record (verdict, checks, figures, provenance: commit, source hash, "
                        "command, seeds, wall time, date) to DIR/NAME.json, its figures beside it (DIR default: "
                        "results/findings; without --record: only this cache keeps the last verdict)")
    add_run_options(s)
    s.set_defaults(fn=main)


def main(args) -> int:
    """Each finding's checks as PASS / FAIL / DIFFERS; exit 1 unless every check PASSes."""
    from switchbench.benchmark.findings import FINDINGS, reproduce
    from switchbench.benchmark.site import save_finding

    options, overrides = run_inputs(args)
    names = args.findings or list(FINDINGS)
    for n in names:
        if n not in FINDINGS:
            reproduce(n)  # raises the unknown-name error
    ok = True
    command = "switchbench " + " ".join(shlex.quote(a) for a in args.argv)
    for n in names:
        figures = args.figures or args.record          # a record keeps its figures beside it
        if args.record:
            Path(args.record).mkdir(parents=True, exist_ok=True)
        kw = {"jobs": args.jobs, "overrides": overrides, "options": options,
              **({"figures": Path(figures)} if figures else {})}
        if args.seeds:
            kw["n_seeds"] = args.seeds
        start = time.perf_counter()
        report = reproduce(n, **kw)
        seeds = args.seeds or inspect.signature(FINDINGS[n]).parameters["n_seeds"].default
        provenance = {"seeds": seeds, "command": command, "wall_s": time.perf_counter() - start,
                      "overrides": overrides}
        save_finding(report, **provenance)     # the last verdict in this cache, for the web page
        if args.record:
            print(f"      record: {save_finding(report, Path(args.record), **provenance)}")
        print(f"== {n}: " + ", ".join(f"{k} {v}" for k, v in report.counts().items()))
        for c in report.checks:
            print(c.line())
        for note in report.notes:
            print(f"      {note}")
        for f in report.figures:
            print(f"      figure: {f}")
        ok &= report.passed
    return 0 if ok else 1
