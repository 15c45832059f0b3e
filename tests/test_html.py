"""The HTML scorecard: faithful to the published Parquet, self-contained, and escaped."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import duckdb
from test_errors import edit, run_cli



class Rows(HTMLParser):
    """The metrics table's rows (<tr data-metric> inside <table class="metrics">): fields, status; every src/href."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.links: list[str] = []
        self._in_table = False
        self._metric: str | None = None
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        self.links += [v for k, v in attrs if k in ("src", "href")]
        if tag == "table" and "metrics" in (attributes.get("class") or ""):
            self._in_table = True
        elif self._in_table and tag == "tr" and "data-metric" in attributes:
            self._metric = attributes["data-metric"]
            self.rows[self._metric] = {}
        elif self._metric and attributes.get("data-field"):
            self._field = attributes["data-field"]
            self.rows[self._metric][self._field] = ""
        elif self._metric and tag == "span" and (attributes.get("class") or "").startswith("status "):
            self.rows[self._metric]["status"] = attributes.get("data-status") or ""
        elif self._metric and tag == "span" and attributes.get("class") == "label":
            self._field = "label"
            self.rows[self._metric]["label"] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("span", "td"):
            self._field = None
        if tag == "tr":
            self._metric = None
        elif tag == "table":
            self._in_table = False

    def handle_data(self, data: str) -> None:
        if self._metric and self._field:
            self.rows[self._metric][self._field] += data


def shown(value: float | None, unit: str) -> str:
    """How the demo's units read, written out independently of present/formatting.py."""
    if value is None:
        return "-"
    if unit == "percent":
        return f"{value:.1%}"
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "currency":
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:,.2f}"
    text = f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 1000 else f"{value:.4g}"
    return f"{text} min" if unit == "minutes" else text


def test_html_scorecard_shows_the_published_values(demo_project: Path) -> None:
    result = run_cli(demo_project, "scorecard", "--format", "html", "--grain", "month")
    assert result.returncode == 0, result.stderr
    page = Rows()
    page.feed(result.stdout)
    expected = duckdb.connect().execute("""
        SELECT metric, label, value, previous_value, status, unit FROM read_parquet($p)
        WHERE grain = 'month' AND period_start = (SELECT max(period_start) FROM read_parquet($p)
                                                  WHERE grain = 'month' AND is_complete)
    """, {"p": str(demo_project / "target" / "scorecard.parquet")}).fetchall()
    assert set(page.rows) == {m for m, *_ in expected} and len(expected) == 12  # 10 in the tree, 2 outcomes
    assert {unit for *_, unit in expected} == {"count", "percent", "minutes", "number", "currency"}
    for metric, label, value, previous, status, unit in expected:
        cells = page.rows[metric]
        assert cells["label"] == label
        assert (cells["value"], cells["previous"]) == (shown(value, unit), shown(previous, unit))
        assert cells["status"] == (status or "")
    assert page.links == [] and "<script" not in result.stdout and "http" not in result.stdout.replace(
        'xmlns="http', "")


def test_html_escapes_what_the_project_wrote(demo_project: Path) -> None:
    edit(demo_project / "metrics" / "new_customers.sql", "label='New customer signups'",
         "label='New <b>customers</b> & \"signups\"'")
    assert run_cli(demo_project, "build").returncode == 0
    result = run_cli(demo_project, "scorecard", "--format", "html")
    assert "New &lt;b&gt;customers&lt;/b&gt; &amp; &quot;signups&quot;" in result.stdout
    assert "<b>customers</b>" not in result.stdout
