"""The review page in a real browser (Debian's chromium through Selenium), and one story across every view.

One browser session serves the whole suite. Without chromium, chromedriver or selenium the browser
tests are skipped, except in CI (CI=true), where they fail: .ci/run installs them. Every number is
checked against the published Parquet read with DuckDB; screenshots go to target/review-1400.png
and target/review-420.png for people to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import duckdb
import pytest
from test_errors import edit, run_cli
from test_html import shown


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parent.parent
NSM, GUARD = "on_time_orders", "support_tickets_per_order"
WIDTHS = (1400, 420)
TREND_PERIODS = 26
# Characters the page may show: printable ASCII and a few that DejaVu and Liberation (Debian's
# default fonts) both draw. Anything else must be an SVG icon.
SAFE = set(map(chr, range(0x20, 0x7F))) | set("·…–—€£")


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory):
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        message = f"browser tests need {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def card(project, sql: str, **params) -> list[tuple]:
    return duckdb.connect().execute(sql.replace("CARD", "read_parquet($path)"),
                                    {"path": str(project.scorecard_path), **params}).fetchall()


@pytest.fixture(scope="module")
def page(built_demo, tmp_path_factory) -> Path:
    """The demo's review page as `northstar scorecard --format html` writes it."""
    project, _ = built_demo
    result = run_cli(project.root, "scorecard", "--format", "html")
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("page") / "review.html"
    path.write_text(result.stdout)
    return path


@pytest.fixture(scope="module")
def default_week(built_demo):
    project, _ = built_demo
    return card(project, "SELECT max(period_start) FROM CARD WHERE grain = 'week' AND is_complete")[0][0]


def open_page(browser, page: Path, width: int) -> None:
    browser.set_window_size(width, 1000)
    browser.get(page.as_uri())
    browser.get_log("browser")  # drain: each width's load is judged on its own messages


def css(browser, selector: str):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


_OVERFLOW_JS = """
const width = document.documentElement.clientWidth;
const out = [];
for (const el of document.body.querySelectorAll('*')) {
  const style = getComputedStyle(el);
  if (style.display === 'none' || el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;
  const box = el.getBoundingClientRect();
  if (box.width === 0 && box.height === 0) continue;
  if (box.right > width + 1 || box.left < -1) out.push(el.tagName + '.' + el.className + ' ' + box.left + '..' + box.right);
  if (el.scrollWidth > el.clientWidth + 1 && ['auto', 'scroll', 'hidden'].includes(style.overflowX))
    out.push('cut: ' + el.tagName + '.' + el.className);
}
return {scroll: document.documentElement.scrollWidth, client: width, offenders: out.slice(0, 10)};
"""

_TEXT_JS = """
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const chars = new Set();
let node;
while ((node = walker.nextNode())) {
  const el = node.parentElement;
  if (!el || getComputedStyle(el).display === 'none') continue;
  for (const ch of node.nodeValue) if (ch.trim()) chars.add(ch);
}
const canvas = document.createElement('canvas').getContext('2d');
canvas.font = getComputedStyle(document.body).font;
const tofu = canvas.measureText('\\uE000').width;  // a private-use point no font draws: the .notdef box
return [...chars].map(ch => [ch, canvas.measureText(ch).width, tofu]);
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_page_renders_at_width(browser, page: Path, built_demo, default_week, width: int) -> None:
    project, _ = built_demo
    open_page(browser, page, width)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    # Nothing overflows the viewport, nothing is cut.
    layout = browser.execute_script(_OVERFLOW_JS)
    assert layout["scroll"] <= layout["client"] and layout["offenders"] == [], layout
    # Every glyph renders: only characters the default fonts have, and none measures as the .notdef box.
    glyphs = browser.execute_script(_TEXT_JS)
    assert {ch for ch, _, _ in glyphs} - SAFE == set()
    assert [ch for ch, w, tofu in glyphs if ord(ch) > 0x7F and abs(w - tofu) < 0.01] == []
    # Every metric's value in the table is the scorecard's.
    expected = card(project, "SELECT metric, value, previous_value, unit, status FROM CARD WHERE grain = 'week' "
                             "AND period_start = $p", p=default_week)
    assert len(expected) == 12  # 10 in the tree and the 2 outcomes
    for metric, value, previous, unit, status in expected:
        row = css(browser, f'table.metrics tr[data-metric="{metric}"]')[0]
        assert row.find_element("css selector", '[data-field="value"]').text == shown(value, unit)
        assert row.find_element("css selector", '[data-field="previous"]').text == shown(previous, unit)
        assert row.find_element("css selector", ".status").get_attribute("data-status") == (status or "")
        assert row.find_element("css selector", ".status-word").text.startswith(status or "-")  # not colour alone
    if width < 760:  # a phone: the tree as a list, the table as stacked cards, the guardrail above what it guards
        assert not css(browser, "figure.tree")[0].is_displayed() and css(browser, "ul.tree-list")[0].is_displayed()
        assert not css(browser, "table.metrics thead")[0].is_displayed()
        counter, guarded = css(browser, "#guardrails .side.counter")[0].rect, css(browser, "#guardrails .side.guarded")[0].rect
        assert guarded["y"] >= counter["y"] + counter["height"]
    else:
        assert css(browser, "figure.tree svg")[0].is_displayed() and not css(browser, "ul.tree-list")[0].is_displayed()
    assert css(browser, "#north-star .nsm-value")[0].is_displayed()
    shot = REPO / "target" / f"review-{width}.png"
    shot.parent.mkdir(exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, height + 140)  # the window's chrome: the whole page in one picture
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_waterfall_guardrails_legend_and_history(browser, page: Path, built_demo, default_week) -> None:
    project, _ = built_demo
    open_page(browser, page, 1400)
    # Why it moved: one bar per formula input of the North Star, each its scorecard contribution; they add up.
    (change,) = card(project, "SELECT change FROM CARD WHERE metric = $m AND grain = 'week' AND period_start = $p",
                     m=NSM, p=default_week)[0]
    contributions = dict(card(project, "SELECT metric, contribution FROM CARD WHERE parent = $m AND edge = 'formula' "
                                       "AND grain = 'week' AND period_start = $p", m=NSM, p=default_week))
    assert len(contributions) == 3 and abs(sum(contributions.values()) - change) < 1e-6 * max(abs(change), 1)
    bars = css(browser, "#why .wf-row:not(.total) rect.wf-bar")
    shown_bars = {b.find_element("xpath", "../..").get_attribute("data-metric"): float(b.get_attribute("data-contribution"))
                  for b in bars}
    assert shown_bars == pytest.approx(contributions)
    assert sum(shown_bars.values()) == pytest.approx(change)
    # ... and so do their lengths on screen: each bar starts where the one before ended, the total spans them.
    boxes = [b.rect for b in bars]
    total = css(browser, "#why .wf-row.total rect.wf-bar")[0].rect
    signed = sum(box["width"] * (1 if float(b.get_attribute("data-contribution")) >= 0 else -1)
                 for b, box in zip(bars, boxes))
    assert abs(abs(signed) - total["width"]) <= 2 + 0.01 * total["width"]
    assert float(css(browser, "#why")[0].get_attribute("data-change")) == pytest.approx(change)
    # The guardrail beside what it guards, with its value and a status in words.
    guard = css(browser, f'#guardrails .guard[data-metric="{GUARD}"]')[0]
    assert guard.is_displayed() and guard.get_attribute("data-guards") == NSM
    (counter_value, counter_unit, counter_status), = card(
        project, "SELECT value, unit, status FROM CARD WHERE metric = $m AND grain = 'week' AND period_start = $p",
        m=GUARD, p=default_week)
    counter_side = guard.find_element("css selector", ".side.counter")
    guarded_side = guard.find_element("css selector", ".side.guarded")
    assert counter_side.find_element("css selector", ".num").text == shown(counter_value, counter_unit)
    assert counter_side.find_element("css selector", ".status").get_attribute("data-status") == counter_status
    assert "On-time orders" in guarded_side.text
    assert counter_side.rect["y"] == pytest.approx(guarded_side.rect["y"], abs=30)  # side by side at 1400 px
    # The legend: solid formula, dotted hypothesis, red guardrail, in the page and inside the tree picture.
    legend = {item.get_attribute("data-edge"): item for item in css(browser, "#tree-legend [data-edge]")}
    assert list(legend) == ["formula", "hypothesis", "guardrail"] and all(i.is_displayed() for i in legend.values())
    paths = {edge: item.find_element("css selector", "svg path") for edge, item in legend.items()}
    assert paths["formula"].get_attribute("stroke-dasharray") is None
    assert paths["hypothesis"].get_attribute("stroke-dasharray")
    assert paths["guardrail"].get_attribute("stroke") == "#cf222e"
    assert [g.get_attribute("data-edge") for g in css(browser, "figure.tree svg .legend-item")] == list(legend)
    # The North Star's history: the last complete weeks up to the default one, and the target line.
    history = card(project, "SELECT period_start, value, target FROM CARD WHERE metric = $m AND grain = 'week' "
                            "AND is_complete AND period_start <= $p ORDER BY period_start DESC LIMIT $n",
                   m=NSM, p=default_week, n=TREND_PERIODS)[::-1]
    assert len(history) >= 12
    points = css(browser, "#nsm-trend circle.point")
    assert [(p.get_attribute("data-period"), float(p.get_attribute("data-value"))) for p in points] == [
        (start.isoformat(), value) for start, value, _ in history]
    assert any(target is not None for *_, target in history)  # the demo has weekly targets
    assert css(browser, "#nsm-trend polyline.target-line") and css(browser, "#nsm-trend")[0].is_displayed()


def test_every_view_tells_the_same_story(built_demo, default_week) -> None:
    """scorecard, tree, explain and the HTML page open on the same period, North Star value and status."""
    project, _ = built_demo
    (value, status, unit), = card(project, "SELECT value, status, unit FROM CARD WHERE metric = $m AND grain = 'week' "
                                           "AND period_start = $p", m=NSM, p=default_week)
    latest = card(project, "SELECT max(period_start) FROM CARD WHERE grain = 'week'")[0][0]
    assert latest > default_week  # the demo has a partial week: the views must not open on it
    number, period = shown(value, unit), f"week of {default_week} .. "

    exported = json.loads(run_cli(project.root, "scorecard", "--format", "json").stdout)
    nsm = next(r for r in exported if r["metric"] == NSM)
    assert (nsm["period_start"], nsm["value"], nsm["status"]) == (default_week.isoformat(), value, status)
    assert nsm["to_date_period_start"] == latest.isoformat()

    table = run_cli(project.root, "scorecard").stdout
    assert period in table and re.search(rf"On-time orders\s+{re.escape(number)}\s.*\b{status}\b", table)

    mermaid = run_cli(project.root, "tree", "--format", "mermaid").stdout
    assert period in mermaid and f"{number} · " in mermaid.split(f"    {NSM}(", 1)[1].splitlines()[0]
    assert f"· {status}<br/>" in mermaid.split(f"    {NSM}(", 1)[1].splitlines()[0]

    explained = run_cli(project.root, "explain").stdout
    assert explained.startswith(f"Why the North Star moved · {period}")
    assert f" to {number}: " in explained and f"Status: {status.upper()}." in explained

    from html.parser import HTMLParser

    class NorthStar(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: dict[str, str] = {}
            self._field: str | None = None

        def handle_starttag(self, tag: str, attrs: list) -> None:
            attributes = dict(attrs)
            if attributes.get("id") == "north-star":
                self.found["status"] = attributes.get("data-status") or ""
            if attributes.get("id") == "period":
                self._field = "period"
            elif attributes.get("class") == "nsm-value":
                self._field = "value"

        def handle_endtag(self, tag: str) -> None:
            self._field = None

        def handle_data(self, data: str) -> None:
            if self._field:
                self.found[self._field] = self.found.get(self._field, "") + data

    html = NorthStar()
    html.feed(run_cli(project.root, "scorecard", "--format", "html").stdout)
    assert html.found["period"].startswith(period) and html.found["value"] == number
    assert html.found["status"] == status


def test_page_names_the_definitions_changed_since_the_previous_build(demo_project: Path) -> None:
    edit(demo_project / "metrics" / "items_per_order.sql", "sum(items) / count(*) as value",
         "sum(items) / count(*) + 0 as value")
    assert run_cli(demo_project, "build").returncode == 0
    page = run_cli(demo_project, "scorecard", "--format", "html").stdout
    changed = re.search(r'<ul id="changed-definitions">(.*?)</ul>', page, re.S)
    assert changed and re.findall(r"<li>(.*?)</li>", changed.group(1)) == ["Items per order"]
    hashes = duckdb.connect().execute(
        "SELECT count(DISTINCT definition_hash) FROM read_parquet($h, hive_partitioning = true) "
        "WHERE metric = 'items_per_order'", {"h": str(demo_project / "target" / "history" / "*" / "*.parquet")}).fetchall()
    assert hashes == [(2,)]
