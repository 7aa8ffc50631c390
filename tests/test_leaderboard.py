"""The leaderboard's protocol: equal-budget tuning on validation seeds, honest ranks and tests,
no duplicate entries, readable tables, shipped suites and the source's commit."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from switchbench import models
from switchbench.benchmark import leaderboard, tuning
from switchbench.benchmark.cli import main
from switchbench.errors import SwitchbenchError

ROOT = Path(__file__).resolve().parent.parent
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")   # 1x1

TINY = """
name = "tiny"
seeds = 3
[tuning]
budget = 2
seeds = 1
[[paradigm]]
name = "blocked-linear"
models = ["linear", "oracle-gates"]
set = { n_blocks = 3, block_size = 60 }
"""


def rows(values: dict[str, list[float]], metric="switch_time_late", paradigm="p"):
    return [{"paradigm": paradigm, "model": m, "seed": s, "metric": metric, "value": v}
            for m, vs in values.items() for s, v in enumerate(vs)]


def test_censored_ties_share_a_rank_and_get_no_p_value():
    scores = pd.DataFrame(rows({"a": [10, 12, 11, 13, 9], "b": [1000] * 5, "c": [1000] * 5, "d": [1000] * 5})
                          + rows({"a": [0.1] * 5, "b": [0.3] * 5, "c": [0.2] * 5, "d": [0.4] * 5}, "final_loss")
                          + rows({"a": [0] * 5, "b": [1] * 5, "c": [1] * 5, "d": [1] * 5}, "switch_censored_late"))
    table = leaderboard.ranked(scores, "p")
    assert table["model"].tolist() == ["a", "c", "b", "d"]        # ties on the primary metric broken by final loss
    assert table.index.tolist() == [1, 2, 2, 2]                     # ... but they share a rank
    assert table["censored"].tolist() == ["0%", "100%", "100%", "100%"]
    assert table["p vs next"].tolist() == ["0.062", "n/a", "n/a", ""]   # 5 seeds: 2/32 at best; zero variance: n/a
    assert len(table.columns) + 1 <= 8


def test_overlapping_intervals_share_ranks_and_holm_corrects_the_table():
    assert leaderboard.shared_ranks([1, 2, 10, 11], [0.5, 0.6, 0.1, 0.1]) == [1, 1, 3, 4]
    assert leaderboard.shared_ranks([5, 3], [0.1, 0.1], higher_is_better=True) == [1, 2]
    p = leaderboard.holm([0.01, 0.02, np.nan])
    assert p[0] == pytest.approx(0.02) and p[1] == pytest.approx(0.02) and np.isnan(p[2])


def test_exact_paired_test_is_valid_for_a_few_seeds():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 10)
    scores = pd.DataFrame(rows({"a": list(a), "b": list(a + 0.5 + rng.normal(0, 0.1, 10))}))
    assert leaderboard.paired_p(scores, "p", "a", "b") == pytest.approx(2 / 1024)   # every seed favours a
    same = pd.DataFrame(rows({"a": list(a), "b": list(a + rng.normal(0, 1, 10))}))
    assert leaderboard.paired_p(same, "p", "a", "b") > 0.05


def test_a_one_block_paradigm_is_ranked_by_a_metric_it_has_with_shared_ranks():
    scores = pd.DataFrame(rows({"a": [np.nan] * 3, "b": [np.nan] * 3, "c": [np.nan] * 3})
                          + rows({"a": [0.9, 0.92, 0.91], "b": [0.5, 0.9, 0.2], "c": [0.1, 0.11, 0.12]},
                                 "final_performance")
                          + rows({"a": [0.3, 0.2, 0.1], "b": [0.1, 0.2, 0.3], "c": [0.9, 0.8, 0.7]}, "final_loss"))
    table = leaderboard.ranked(scores, "p")
    assert table.attrs["ranked_by"] == "final_performance"
    assert table["model"].tolist() == ["a", "b", "c"] and table.index.tolist() == [1, 1, 1]   # b's interval is wide
    assert list(table.columns[:2]) == ["model", "final_performance"] and "switch_time_late" not in table
    assert any("ranked by final_performance" in c for c in table.attrs["caveats"])
    assert any("separates no model" in c for c in table.attrs["caveats"])


def test_an_exploded_run_is_flagged_never_ranked_and_privileged_marks_reach_the_overall_table():
    scores = pd.DataFrame(rows({"oracle-gates": [5, 6, 7], "linear": [50, 51, 52], "gated-linear": [1, 1, 1]})
                          + rows({"oracle-gates": [0.1] * 3, "linear": [0.2] * 3, "gated-linear": [0.1, 3.5e11, 0.1]},
                                 "final_loss"))
    table = leaderboard.ranked(scores, "p")
    assert table["model"].tolist() == ["oracle-gates †", "linear", "gated-linear"]
    assert table.index.tolist() == [1, 2, "not ranked"]
    assert table["final_loss"].iloc[2].startswith("exploded")
    assert any(c.startswith("gated-linear: normalised final loss beyond 1000") and "1 of 3 seeds" in c
               for c in table.attrs["caveats"])
    overall = leaderboard.overall({"p": table, "q": table})
    assert overall["model"].tolist() == ["oracle-gates †", "linear"]          # gated-linear ranked nowhere
    assert leaderboard.LOSS_BOUND == 1e3


def test_a_plugins_tuned_row_keeps_its_label(monkeypatch):
    t = pd.DataFrame({"paradigm": "p", "model": "my_mod:make", "config": ['{"lr": 0.01}'], "default": [False],
                      "budget": 1, "validation_seeds": "1000-1000", "switch_time_late": [1.0], "final_loss": [0.1],
                      "failed": "", "eligible": True, "selected": True})
    monkeypatch.setattr(models, "label", lambda name: "my-rnn" if name == "my_mod:make" else name)
    assert leaderboard._labels(t, "p") == {"my-rnn": " [lr=0.01]"}
    assert "single validation seed (1000)" in leaderboard._tuning_caveats(t, "p")[0]


def test_figures_clip_bounds_mark_zero_skip_empty_plots_and_keep_one_colour_per_model(tmp_path):
    from switchbench.benchmark import plots

    assert plots.t_interval([1.0, 2.0, 30.0], (0, None))[0] == 0.0                 # no switch time below 0
    assert plots.t_interval([0.9, 1.0, 1.0], (0, 1))[1] == 1.0
    colours = plots.model_colours(["b", "a †", "c"])
    assert colours == plots.model_colours(["c", "a", "b"]) and len(set(colours.values())) == 3
    scores = pd.DataFrame(rows({"a": [0, 0, 0], "b": [10, 20, 300]}) + rows({"a": [0.1] * 3, "b": [1e12, 1, 2]},
                                                                          "final_loss"))
    import matplotlib.pyplot as plt
    saved = {}
    real_save = plots._save
    monkey = pytest.MonkeyPatch()
    monkey.setattr(plots, "_save", lambda fig, path, **kw: saved.setdefault("fig", fig) and real_save(fig, path, **kw))
    try:
        plots.metric_bars(scores, tmp_path / "bars.png", colours=colours)
    finally:
        monkey.undo()
    fig = saved["fig"]
    switch_ax, loss_ax = fig.axes[:2]
    assert loss_ax.get_xscale() == "log"                                             # one run explodes
    assert min(np.min(l.get_xdata()) for l in switch_ax.lines if len(l.get_xdata())) >= 0   # bars clipped at 0
    assert any(len(c.get_offsets()) for c in switch_ax.collections)                  # the bar at 0 is marked
    bar_colours = {p.get_facecolor()[:3] for p in switch_ax.patches}
    assert bar_colours == {tuple(colours["a"]), tuple(colours["b"])}
    assert (tmp_path / "bars.png").stat().st_size > 1000
    plt.close("all")

    df = pd.DataFrame({"model": ["a", "a", "b", "b"], "measure": "forgetting", "value": [0.0, 0.0, 0.3, 0.5]})
    monkey.setattr(plots, "_save", lambda fig, path, **kw: saved.__setitem__("grid", fig) or real_save(fig, path, **kw))
    try:
        plots.grouped_bars(df, tmp_path / "grouped.png", hue=None)
    finally:
        monkey.undo()
    ax = saved["grid"].axes[0]
    marks = [c.get_offsets() for c in ax.collections if len(c.get_offsets())]
    assert len(marks) == 1 and marks[0][0][1] == 0 and "0" in [t.get_text() for t in ax.texts]   # the bar at 0
    plt.close("all")

    class OneBlock:                                                                  # no switch to plot
        switch_times = pd.DataFrame({"switch_time": [], "censored": []})
        config = {"model": "gru", "seed": 0, "paradigm": "p", "runner": {"criterion": "loss", "threshold": 0.1}}
    assert plots.switch_curves([OneBlock()], tmp_path / "curves.png") is None and not (tmp_path / "curves.png").exists()


def test_numbers_are_readable():
    assert [leaderboard.fmt(v) for v in (79120.0, 1000.0, 3.14159, 0.000123)] == ["79120", "1000", "3.14", "1.23e-04"]


def test_identical_entries_are_refused_by_name():
    base = rows({"x": [1, 2, 3], "y": [1, 2, 3], "z": [1, 2, 4]}) + rows({"x": [5, 5, 5], "y": [5, 5, 5], "z": [5, 5, 5]},
                                                                         "final_loss")
    scores = pd.DataFrame(base + rows({"x": [1, 1, 1], "y": [2, 2, 2], "z": [3, 3, 3]}, "wall_ms_per_step"))
    assert leaderboard.duplicates(scores) == [("p", "x", "y")]
    with pytest.raises(SwitchbenchError, match="x and y on p"):
        leaderboard._check_duplicates(scores.assign(view="published"))


def test_the_uncued_mlp_never_sees_the_cue():
    import gymnasium

    spec = gymnasium.make("switchbench/CuedSwitch-v0", disable_env_checker=True).unwrapped.task_spec
    x = torch.rand(5, spec.input_size)
    flipped = x.clone()
    flipped[:, 64:] = 1 - flipped[:, 64:]
    mlp, cued = models.get("mlp").build(spec, 0), models.get("mlp-cued").build(spec, 0)
    assert torch.equal(mlp.predict(x), mlp.predict(flipped))
    assert not torch.equal(cued.predict(x), cued.predict(flipped))


#: cards with a tunable regulariser strength beside the step size (a grid of 4 decades each):
#: the full suite's budget of 3 draws from their product; a suite that holds the step size tunes the strength
STRENGTHS = {"leaky-rnn-ewc": "lam", "leaky-rnn-si": "c"}


def test_every_card_declares_an_equal_grid_around_its_published_default():
    for name in models.registry.builtin_names():
        entry = models.get(name)
        grid = entry.grid()
        defaults = entry.hparams()
        assert grid[0] == {k: defaults[k] for k in entry.card.tunable}, name   # the published default is a point
        steps = {"lr", "lr_w", "dt"} & set(entry.card.tunable)
        assert len(steps) == 1, name                                           # a step size
        assert len(entry.card.tunable[steps.pop()]) == tuning.BUDGET, name     # the same step-size grid for all
        assert len(grid) == tuning.BUDGET * (4 if name in STRENGTHS else 1), name
        if name in STRENGTHS:
            assert tuning.configurations(name, 4, held={"lr"})[1:] == [
                {STRENGTHS[name]: v} for v in entry.card.tunable[STRENGTHS[name]] if v != defaults[STRENGTHS[name]]]
    with pytest.raises(SwitchbenchError, match="must contain the default"):
        models.register("bad-grid", tunable={"lr": (1.0, 2.0)})(lambda spec, seed, lr=0.1: None)


def test_selection_skips_failed_configurations_and_breaks_ties_by_final_loss():
    t = pd.DataFrame({"paradigm": "p", "model": "m", "config": ["{}", '{"lr": 1}', '{"lr": 2}', '{"lr": 3}'],
                      "default": [True, False, False, False], "budget": 4, "validation_seeds": "1000-1001",
                      "switch_time_late": [50.0, 10.0, 10.0, 1.0], "final_loss": [0.1, 0.3, 0.2, 0.0],
                      "failed": ["", "", "", "non-finite loss"]})
    assert tuning.selected(tuning.select(t)) == {("p", "m"): {"lr": 2}}


def test_tune_then_leaderboard_scores_the_selected_values_in_both_views(tmp_path, monkeypatch):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY)
    monkeypatch.chdir(tmp_path)
    assert main(["tune", str(suite), "--out", "res"]) == 0
    table = tuning.read_tuning(tmp_path / "res" / "tuning.csv")
    assert len(table) == 4 and set(table["validation_seeds"]) == {"1000-1000"}     # budget 2, seed 1000: not scored
    assert table.groupby("model")["selected"].sum().tolist() == [1, 1]
    assert table.groupby("model")["default"].sum().tolist() == [1, 1]
    assert main(["leaderboard", str(suite), "--out", "res"]) == 0
    scores = pd.read_csv(tmp_path / "res" / "scores.csv")
    assert set(scores["view"]) == {"published", "tuned"} and set(scores["seed"]) == {0, 1, 2}
    meta = json.loads((tmp_path / "res" / "leaderboard.json").read_text())
    chosen = tuning.selected(table)
    for model in ("linear", "oracle-gates"):
        ids = set(scores[(scores["view"] == "tuned") & (scores["model"] == model)]["config_id"])
        (cid,) = ids
        params = meta["configs"][cid]["model_params"]
        for key, value in chosen[("blocked-linear", model)].items():
            assert params[key] == value                     # the tuned view runs the selected setting
    md = (tmp_path / "res" / "leaderboard.md").read_text()
    assert "at most 2 configurations each, on validation seeds (blocked-linear: 1000-1000)" in md
    assert "## View: tuned" in md
    assert "| oracle-gates †" in md and "## Metrics" in md
    assert md.count("> Settings: n_blocks=3, block_size=60 (the suite's `set`") == 2      # beside each view's table
    for line in md.splitlines():
        if line.startswith("|   rank"):
            assert line.count("|") - 1 <= 8
    assert (tmp_path / "res" / "site" / "index.html").stat().st_size > 10_000
    assert all((tmp_path / "res" / "figures" / f"blocked-linear_{v}_switch_time.png").exists()
               for v in ("published", "tuned"))


def test_validation_seeds_must_not_be_scored(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(TINY.replace("seeds = 1\n", "seeds = 1\nfirst_seed = 2\n"))
    with pytest.raises(SwitchbenchError, match="disjoint from the scored seeds 0..2"):
        tuning.protocol(leaderboard.load_suite(suite))
    suite.write_text(TINY.replace("budget = 2", "budjet = 2"))
    with pytest.raises(SwitchbenchError, match=r"\[tuning\]: unknown key 'budjet'"):
        leaderboard.load_suite(suite)


def test_shipped_suites_are_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("quick", "full", "forgetting", "suites/quick.toml"):
        assert leaderboard.load_suite(name).specs
    with pytest.raises(SwitchbenchError, match="not found \\(nor a shipped suite: forgetting, full, quick\\)"):
        leaderboard.load_suite("nope")
    (tmp_path / "quick.toml").write_text(TINY)                     # a file of that name wins
    assert leaderboard.load_suite("quick.toml").name == "tiny"


def test_the_recorded_commit_is_the_packages_not_the_current_folders(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "other"], check=True)
    other = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    monkeypatch.chdir(tmp_path)
    source = leaderboard.source_commit()
    assert source["commit"] != other.strip() and source["source_hash"]
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the tests do not run from a git checkout: no commit to compare with")
    # the installed package was built from this checkout: its recorded commit is one of its history's
    known = subprocess.run(["git", "-C", str(root), "cat-file", "-t", source["commit"] or "0" * 40],
                           capture_output=True, text=True)
    assert known.stdout.strip() == "commit"


def test_the_page_shows_each_findings_status_from_the_last_reproduce():
    from switchbench.benchmark import site
    from switchbench.benchmark.findings import FINDINGS, Check, Report

    name = next(iter(FINDINGS))
    status = {f["name"]: f["status"] for f in site._findings()}
    assert status[name] == "not run here"
    site.save_finding(Report(name, [Check("a", 1.0, ">= 0", True), Check("b", 0.5, ">= 1", False)]))
    status = {f["name"]: f["status"] for f in site._findings()}
    assert status[name] == "FAIL"


def test_a_record_holds_the_verdict_and_provenance_and_goes_stale_when_the_code_changes(tmp_path, monkeypatch):
    from switchbench.benchmark import config, site
    from switchbench.benchmark.findings import FINDINGS, Check, Report, base

    name = next(iter(FINDINGS))
    fig = tmp_path / "rec" / "fig.png"
    fig.parent.mkdir()
    fig.write_bytes(PNG)
    report = Report(name, [Check("a", 1.0, ">= 0", True), Check("b", 0.5, ">= 1", False, source="Fig. 3")],
                    figures=[fig])
    path = site.save_finding(report, tmp_path / "rec", seeds=3, command="switchbench reproduce x --record",
                             wall_s=61.24)
    rec = json.loads(path.read_text())
    assert rec["verdict"] == "FAIL" and rec["counts"] == {"PASS": 1, "FAIL": 1, "DIFFERS": 0}
    assert [(c["name"], c["status"], c["value"], c["target"]) for c in rec["checks"]] == [
        ("a", "PASS", 1.0, ">= 0"), ("b", "FAIL", 0.5, ">= 1")]
    assert rec["checks"][1]["source"] == "Fig. 3" and rec["checks"][0]["source"] == FINDINGS[name].source != ""
    assert rec["figures"] == ["fig.png"] and not list((tmp_path / "rec").glob(".*"))   # no temporary file left
    p = rec["provenance"]
    assert (p["source_hash"], p["seeds"], p["wall_s"]) == (config.source_hash(), 3, 61.2)
    assert p["command"] == "switchbench reproduce x --record" and p["date"].startswith("20")
    shown = {f["name"]: f for f in site._findings(tmp_path / "rec")}[name]
    assert (shown["status"], shown["stale"], len(shown["figures"])) == ("FAIL", False, 1)
    assert f"| `{name}` | FAIL | 1 / 1 / 0 | 61 s | 3 |" in base.records_table(tmp_path / "rec")

    monkeypatch.setattr(config, "source_hash", lambda: "0123456789abcdef")     # the code changed since
    shown = {f["name"]: f for f in site._findings(tmp_path / "rec")}[name]
    assert shown["stale"] and shown["date"] == p["date"][:10] and shown["status"] == "FAIL"
    assert f"| stale ({p['date'][:10]}): FAIL |" in base.records_table(tmp_path / "rec")
    site.save_finding(Report(name, [Check("a", 1.0, ">= 0", True)]))      # a current one in the cache wins
    shown = {f["name"]: f for f in site._findings(tmp_path / "rec")}[name]
    assert (shown["status"], shown["stale"]) == ("PASS", False)


def test_reproduce_record_writes_the_record_and_its_figure(tmp_path, monkeypatch):
    from switchbench.benchmark.findings import FINDINGS, Check, Report, base

    def fake(n_seeds: int = 4, *, jobs=1, options=None, overrides=None, figures=None, progress=True):
        out = Path(figures) / "fake.png"
        out.write_bytes(PNG)
        return Report("fake-finding", [Check("claim", 2.0, ">= 1", True)], notes=["a note"], figures=[out])

    fake.source = "a paper"
    monkeypatch.setitem(FINDINGS, "fake-finding", fake)
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "fake-finding", "--record"]) == 0
    rec = base.load_records()["fake-finding"]
    assert rec["verdict"] == "PASS" and not rec["stale"] and rec["figures"] == ["fake.png"]
    assert (tmp_path / "results" / "findings" / "fake.png").is_file()
    assert rec["provenance"]["seeds"] == 4 and rec["provenance"]["command"] == \
        "switchbench reproduce fake-finding --record"
    assert rec["checks"][0]["source"] == "a paper" and rec["notes"] == ["a note"]


def test_the_readme_findings_table_is_the_generated_one():
    from switchbench.benchmark.findings.base import records_table

    readme = (ROOT / "README.md").read_text()
    table = records_table(ROOT / "results" / "findings", mark_stale=False)
    assert table in readme


def test_selection_excludes_configurations_that_did_not_learn():
    # a tiny step size meets the switch criterion early without learning (the cued-switch case):
    # it must lose to a configuration that learned, even with a slower switch time
    t = pd.DataFrame({"paradigm": "p", "model": "m", "config": ["{}", '{"lr": 0.0001}', '{"lr": 0.01}'],
                      "default": [True, False, False], "budget": 3, "validation_seeds": "1000-1000",
                      "switch_time_late": [9.0, 3.0, 7.0], "final_loss": [0.67, 0.86, 0.03], "failed": ""})
    out = tuning.select(t)
    assert out["eligible"].tolist() == [False, False, True]
    assert tuning.selected(out) == {("p", "m"): {"lr": 0.01}}
    # with every configuration alike, the fastest switch wins as before
    t["final_loss"] = [0.5, 0.6, 0.55]
    assert tuning.selected(tuning.select(t)) == {("p", "m"): {"lr": 0.0001}}


def test_selection_by_final_loss_where_a_paradigm_has_no_switch_time():
    # one block, no switch (cognitive-compose): the primary metric is NaN for every configuration
    t = pd.DataFrame({"paradigm": "p", "model": "m", "config": ["{}", '{"lr": 0.0001}', '{"lr": 0.01}'],
                      "default": [True, False, False], "budget": 3, "validation_seeds": "1000-1000",
                      "switch_time_late": float("nan"), "final_loss": [0.23, 0.93, 0.003], "failed": ""})
    out = tuning.select(t)
    assert out["eligible"].tolist() == [False, False, True]
    assert tuning.selected(out) == {("p", "m"): {"lr": 0.01}}


def test_a_table_states_its_suites_settings_shared_and_per_model():
    from switchbench.benchmark.suite import RunSpec

    one = leaderboard.Suite("s", [RunSpec("cued-switch", m, 0, {"lr_w": 0.03, "schedule": "aabb"})
                                  for m in ("mlp", "mlp-cued")], "")
    assert leaderboard.settings_text(one, "cued-switch") == [
        "Settings: lr_w=0.03, schedule='aabb' (the suite's `set`; every other parameter at its default)."]
    assert leaderboard.settings_text(one, "digit-switch") == []
    mixed = leaderboard.Suite("s", one.specs + [RunSpec("cued-switch", "mlp", 0, {})], "")
    # mlp runs under two settings: its rows are labelled per setting; mlp-cued's own is stated
    assert leaderboard.settings_text(mixed, "cued-switch") == [
        "Settings: mlp-cued also lr_w=0.03, schedule='aabb' (the suite's `set`; every other parameter at its "
        "default)."]
    # one model with its own setting beside the shared ones (the quick suite's modular-primitives)
    own = leaderboard.Suite("s", one.specs + [RunSpec("cued-switch", "gated-mlp", 0,
                                                      {"lr_w": 0.03, "schedule": "aabb", "hidden": 8})], "")
    assert leaderboard.settings_text(own, "cued-switch") == [
        "Settings: lr_w=0.03, schedule='aabb'; gated-mlp also hidden=8 (the suite's `set`; every other "
        "parameter at its default)."]


def test_a_table_names_the_engines_where_some_model_ran_on_the_covariance_engine():
    """The default sampler runs the linear family on the covariance engine and the rest on the
    run loop: the table says which ran where; a paradigm all on the run loop says nothing."""
    from switchbench.benchmark.runner import run_seeds

    tiny = dict(n_blocks=2, block_size=20, cache=False, progress=False)
    runs = [*run_seeds("blocked-linear", "gated-linear", [0], **tiny),
            *run_seeds("blocked-linear", "deep-linear", [0], **tiny)]
    assert leaderboard.engine_text(runs, "blocked-linear") == [
        "Engines: gated-linear on the covariance engine (sampler 'wishart': batch covariances drawn exactly, "
        "held-out losses exact expectations); deep-linear on the run loop (the paradigm's own samples, sampled "
        "held-out losses). The two agree in distribution, not number by number."]
    stream = run_seeds("blocked-linear", "gated-linear", [0], sampler="stream", **tiny)
    assert leaderboard.engine_text(stream + runs[1:], "blocked-linear") == []
    assert leaderboard.engine_text(runs, "digit-switch") == []
