"""The charter and its checklist in `lint --format json` and on the review page; pace to goal by hand.

Pace is checked against a hand computation over the raw Parquet (on-time orders so far, the previous
week's same span and full week, the target read from seeds/targets.csv with the csv module).
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from test_errors import run_cli
from test_html import shown

NSM = "on_time_orders"
LINT_KEYS = {"rule", "severity", "message", "path", "line", "metric", "silenced"}
CRITERIA = {"expresses_value", "represents_vision", "leading_indicator", "actionable", "understandable",
            "measurable", "not_vanity", "game_fit"}


class Page(HTMLParser):
    """Rows of the page's #checklist, #work-streams and #pace tables, and the charter's facts."""

    def __init__(self) -> None:
        super().__init__()
        self.checklist: list[dict] = []
        self.facts: dict[str, str] = {}
        self.pace: dict[str, dict] = {}
        self.streams: list[str] = []
        self._section = None
        self._cell: tuple[dict, str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "section":
            self._section = a.get("id")
        elif self._section == "charter" and tag == "tr" and "data-criterion" in a:
            self.checklist.append({"criterion": a["data-criterion"], "outcome": a.get("data-outcome")})
        elif self._section == "charter" and tag == "span" and "data-verdict" in a and self.checklist:
            self.checklist[-1]["verdict"] = a["data-verdict"]
        elif self._section == "charter" and tag == "td" and a.get("data-field") == "evidence":
            self.checklist[-1]["evidence"] = ""
            self._cell = (self.checklist[-1], "evidence")
        elif self._section == "charter" and tag == "dd" and a.get("data-field"):
            self.facts[a["data-field"]] = ""
            self._cell = (self.facts, a["data-field"])
        elif self._section == "charter" and tag == "tr" and "data-metric" in a:
            self.streams.append(a["data-metric"])
        elif self._section == "pace" and tag == "tr" and "data-metric" in a:
            self.pace[a["data-metric"]] = {}
            self._row = self.pace[a["data-metric"]]
        elif self._section == "pace" and tag == "td" and a.get("data-field"):
            self._row[a["data-field"]] = ""
            self._cell = (self._row, a["data-field"])
        elif self._section == "pace" and tag == "span" and "data-on-track" in a:
            self._row["on_track"] = a["data-on-track"]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "dd"):
            self._cell = None
        if tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        if self._cell:
            target, key = self._cell
            target[key] += data


def test_lint_json_carries_the_checklist_and_keeps_its_shape(demo_project: Path) -> None:
    result = run_cli(demo_project, "lint", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr  # the checklist never sets lint's exit code
    findings = json.loads(result.stdout)
    assert isinstance(findings, list) and all(LINT_KEYS <= set(f) for f in findings)
    checklist = [f for f in findings if f["rule"] == "CHECKLIST"]
    assert {f["criterion"] for f in checklist} == CRITERIA
    assert all(f["severity"] == "info" and f["path"] == "northstar.yml" and f["metric"] == NSM for f in checklist)
    verdicts = {(f["criterion"], (f["facts"] or {}).get("outcome")): f["verdict"] for f in checklist}
    assert verdicts[("leading_indicator", "revenue")] == "pass"
    assert verdicts[("expresses_value", None)] == verdicts[("represents_vision", None)] == "needs a person"
    assert verdicts[("actionable", None)] == "pass" and verdicts[("not_vanity", None)] == "pass"
    revenue = next(f for f in checklist if (f["facts"] or {}).get("outcome") == "revenue")
    assert revenue["facts"]["lag"] == 2 and revenue["line"] == _line(demo_project / "northstar.yml", "outcomes:")
    text = run_cli(demo_project, "lint")
    assert text.returncode == 0 and "0 errors" in text.stdout
    assert f"northstar.yml:{revenue['line']}: pass leading_indicator: revenue: best lag 2 week(s)" in text.stdout


def test_lint_without_a_charter_adds_nothing(demo_project: Path) -> None:
    (demo_project / "northstar.yml").unlink()
    result = run_cli(demo_project, "lint", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert not [f for f in json.loads(result.stdout) if f["rule"] == "CHECKLIST"]


def test_the_review_page_shows_the_charter_and_the_verdicts(demo_project: Path) -> None:
    lint = [f for f in json.loads(run_cli(demo_project, "lint", "--format", "json").stdout) if f["rule"] == "CHECKLIST"]
    result = run_cli(demo_project, "scorecard", "--format", "html")
    assert result.returncode == 0, result.stderr
    page = Page()
    page.feed(result.stdout)
    charter = (demo_project / "northstar.yml").read_text()
    assert page.facts["value"] in charter and page.facts["game"] == "transaction"
    assert page.facts["north_star"].startswith("On-time orders (a proxy for: ")
    assert page.facts["outcomes"] == "Revenue, 4-week retention"
    assert page.streams == ["ordering_customers", "orders_per_customer", "items_per_order", "on_time_rate"]
    # every verdict of lint is on the page, with the same evidence (HTML-unescaped by the parser)
    assert [(r["criterion"], r["verdict"], r["evidence"]) for r in page.checklist] == \
        [(f["criterion"], f["verdict"], f["evidence"]) for f in lint]
    revenue = next(r for r in page.checklist if r["outcome"] == "revenue")
    assert revenue["verdict"] == "pass" and "best lag 2 week(s)" in revenue["evidence"]


def _line(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(text))


def _hand_pace(demo_project: Path, warehouse) -> dict:
    """On-time orders and the on-time rate of the partial week, its previous week's same span and full week."""
    con = duckdb.connect()
    try:
        con.execute(f"""create temp table e as select * from read_parquet('{warehouse.events_dir}/**/*.parquet',
                        hive_partitioning = true) qualify row_number() over (partition by event_id order by landed_at) = 1""")
        as_of = con.execute("select max(occurred_at) from e").fetchall()[0][0]
        monday = datetime.combine(as_of.date() - timedelta(days=as_of.weekday()), datetime.min.time())
        previous = monday - timedelta(days=7)
        span_end = previous + (as_of - monday)

        def orders(low: datetime, high: datetime) -> tuple[int, int]:
            return con.execute("""
                select count(*) filter (where d.delivered_at <= d.promised_at), count(*)
                from e as o left join e as d on d.order_id = o.order_id and d.event_type = 'order_delivered'
                where o.event_type = 'order_placed' and o.occurred_at >= ? and o.occurred_at <= ?""",
                               [low, high]).fetchall()[0]
        so_far, placed = orders(monday, as_of)
        same_span, _ = orders(previous, span_end)
        full, _ = orders(previous, monday - timedelta(microseconds=1))
    finally:
        con.close()
    with open(demo_project / "seeds" / "targets.csv", newline="") as f:
        target = next(float(r["target"]) for r in csv.DictReader(f)
                      if (r["metric"], r["grain"], r["period_start"]) == (NSM, "week", monday.date().isoformat()))
    share = same_span / full
    return {"week": monday.date().isoformat(), "so_far": so_far, "share": share, "target": target,
            "projected": so_far / share, "needed": target * share, "on_track": so_far / share >= target,
            "rate": so_far / placed}


def test_pace_to_goal_matches_a_hand_computation(demo_project: Path, warehouse) -> None:
    hand = _hand_pace(demo_project, warehouse)
    rows = {r["metric"]: r for r in json.loads(run_cli(demo_project, "scorecard", "--format", "json").stdout)}
    nsm = rows[NSM]
    assert nsm["to_date_period_start"] == hand["week"] and nsm["to_date_value"] == hand["so_far"]
    assert nsm["to_date_target"] == hand["target"]
    assert nsm["to_date_share_at_span"] == pytest.approx(hand["share"], rel=1e-12)
    assert nsm["to_date_projected"] == pytest.approx(hand["projected"], rel=1e-12)
    assert nsm["to_date_needed_so_far"] == pytest.approx(hand["needed"], rel=1e-12)
    assert nsm["to_date_pace_pct"] == pytest.approx(hand["projected"] / hand["target"], rel=1e-12)
    assert nsm["to_date_on_track"] is hand["on_track"]
    assert nsm["to_date_pace_basis"] == "previous period at the same span"
    rate = rows["on_time_rate"]  # a ratio: its value so far is its pace, against its config target (0.92)
    assert rate["to_date_projected"] == pytest.approx(hand["rate"], rel=1e-12)
    assert rate["to_date_target"] == 0.92 and rate["to_date_on_track"] is (hand["rate"] >= 0.92)

    text = " ".join(run_cli(demo_project, "scorecard").stdout.split())  # the sentences wrap at the table's width
    track = "on track" if hand["on_track"] else "off track"
    assert (f"On-time orders: {hand['so_far']:,} so far; the previous week had {hand['share']:.0%} of its total by "
            f"the same point (on track needs {shown(hand['needed'], 'count')} by now): on pace for "
            f"{shown(hand['projected'], 'count')} against the target {shown(hand['target'], 'count')}") in text
    assert f"({hand['projected'] / hand['target']:.1%}): {track}" in text

    page = Page()
    page.feed(run_cli(demo_project, "scorecard", "--format", "html").stdout)
    assert page.pace[NSM] == {"so_far": shown(hand["so_far"], "count"), "needed": shown(hand["needed"], "count"),
                              "projected": shown(hand["projected"], "count"),
                              "target": shown(hand["target"], "count"),
                              "pace_pct": f"{hand['projected'] / hand['target']:.1%}",
                              "on_track": "on-track" if hand["on_track"] else "off-track"}
    assert set(page.pace) == {NSM, "on_time_rate"}  # the metrics with a target for the partial week
