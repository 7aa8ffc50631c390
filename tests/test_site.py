"""The leaderboard's web page in a real headless browser (Debian's chromium and chromedriver,
driven by selenium): it loads with no console error, every paradigm tab shows its table,
clicking a column header re-orders the rows, and a screenshot is produced. Skips, saying
why, where the browser cannot start (``.ci/run`` installs it where it can)."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from switchbench.benchmark import leaderboard

CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
SUITE = """
name = "site"
seeds = 2
[[paradigm]]
name = "blocked-linear"
models = ["linear", "gated-linear", "oracle-gates"]
set = { n_blocks = 3, block_size = 60 }
[[paradigm]]
name = "cognitive-switch"
models = ["gru"]
set = { n_blocks = 2, block_size = 5, batch_size = 4, pool_size = 64, eval_pool_size = 32, hidden = 8 }
"""


#: findings given a record beside the page (results/findings): one current, one measured with other code
RECORDED = {"nta-fig2": "PASS", "switch-cost": "FAIL"}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from switchbench.benchmark import site
    from switchbench.benchmark.findings import Check, Report

    root = tmp_path_factory.mktemp("site")
    (root / "site.toml").write_text(SUITE)
    for name, status in RECORDED.items():
        path = site.save_finding(Report(name, [Check("claim", 1.0, ">= 0", status == "PASS")]),
                                 root / "results" / "findings", seeds=2, command="test", wall_s=1.0)
        if name == "switch-cost":            # measured with other source code: stale
            path.write_text(path.read_text().replace('"source_hash": "', '"source_hash": "old'))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWITCHBENCH_CACHE", str(root / "cache"))
        files = leaderboard.run_suite(root / "site.toml", out=root / "results")
    return files["site"]


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install '.[test]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None or not os.path.exists(CHROMEDRIVER):
        pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMEDRIVER}); .ci/run installs them as root")
    profile = tempfile.mkdtemp(prefix="switchbench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS + (f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:   # the driver named explicitly: selenium never looks for, nor downloads, one
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except Exception as e:  # noqa: BLE001 - no display libraries, sandbox refused, ...
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"chromium did not start: {str(e).splitlines()[0]}")
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_the_page_works_in_a_browser(page, browser, tmp_path):
    from selenium.webdriver.common.by import By

    text = Path(page).read_text()
    assert "http://" not in text and "https://" not in text     # self-contained: nothing to fetch
    browser.get(Path(page).as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    for paradigm in ("blocked-linear", "cognitive-switch"):
        browser.find_element(By.ID, f"tab-{paradigm}").click()
        table = browser.find_element(By.ID, f"table-{paradigm}")
        assert table.is_displayed()
        body = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(body) == (3 if paradigm == "blocked-linear" else 1)
    browser.find_element(By.ID, "tab-blocked-linear").click()
    table = browser.find_element(By.ID, "table-blocked-linear")
    header = [h.text for h in table.find_elements(By.CSS_SELECTOR, "th")]

    def column(name):
        i = header.index(name)
        return [r.find_elements(By.TAG_NAME, "td")[i].text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

    before = column("model")
    table.find_elements(By.CSS_SELECTOR, "th")[header.index("model")].click()
    after = column("model")
    assert after == sorted(before)                              # re-ordered, alphabetically
    table.find_elements(By.CSS_SELECTOR, "th")[header.index("model")].click()
    assert column("model") == sorted(before, reverse=True)
    browser.find_element(By.ID, "view-published").click()
    assert "published view" in browser.find_element(By.ID, "title").text
    assert browser.find_element(By.ID, "protocol").text.startswith("Published view")
    browser.find_element(By.ID, "tab-findings").click()
    for name, status in RECORDED.items():                     # a verdict for every finding with a record
        card = browser.find_element(By.ID, f"finding-{name}")
        assert card.find_element(By.CSS_SELECTOR, ".verdict").text == status
        assert ("stale (" in card.text) == (name == "switch-cost") and "recorded " in card.text
    others = browser.find_elements(By.CSS_SELECTOR, ".finding .verdict")
    assert sum(e.text == "not run here" for e in others) == len(others) - len(RECORDED)
    browser.find_element(By.ID, "tab-models").click()
    assert "oracle-gates" in browser.find_element(By.ID, "section-models").text
    browser.find_element(By.ID, "tab-blocked-linear").click()
    shot = Path(os.environ.get("SWITCHBENCH_SCREENSHOT", tmp_path / "leaderboard.png"))
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_the_page_carries_the_recorded_verdicts_view_notes_and_caveats(page):
    """What the browser test clicks through, read from the page's data (runs without a browser)."""
    import json

    text = Path(page).read_text()
    data = json.loads(text.split("const DATA = ", 1)[1].split(";\n", 1)[0])
    shown = {f["name"]: f for f in data["findings"]}
    for name, status in RECORDED.items():
        assert shown[name]["status"] == status and shown[name]["stale"] == (name == "switch-cost")
        assert shown[name]["provenance"].startswith("recorded ")
    assert all(f["status"] == "not run here" for n, f in shown.items() if n not in RECORDED)
    assert data["views"]["published"]["note"].startswith("Published view")
    assert data["views"]["published"]["ranked_by"] == {"blocked-linear": "switch_time_late",
                                                       "cognitive-switch": "switch_time_late"}
    assert set(data["views"]["published"]["caveats"]) == {"blocked-linear", "cognitive-switch"}
