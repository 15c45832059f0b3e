"""The HTML scorecard: faithful to the published Parquet, self-contained, and escaped."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import duckdb
from test_errors import edit, run_cli

from northstar_pipeline.present.formatting import format_value


class Rows(HTMLParser):
    """Cells of each <tr data-metric=...>, and every src/href seen."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.pills: dict[str, str] = {}
        self.links: list[str] = []
        self._metric: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        self.links += [v for k, v in attrs if k in ("src", "href")]
        if tag == "tr" and "data-metric" in attributes:
            self._metric = attributes["data-metric"]
            self.rows[self._metric] = []
        elif tag == "td" and self._metric:
            self._cell = []
        elif tag == "span" and self._metric and "pill" in (attributes.get("class") or ""):
            self.pills[self._metric] = attributes["class"].split()[1]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._metric:
            self.rows[self._metric].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._metric = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_html_scorecard_shows_the_published_values(demo_project: Path) -> None:
    result = run_cli(demo_project, "scorecard", "--format", "html", "--grain", "month")
    assert result.returncode == 0, result.stderr
    page = Rows()
    page.feed(result.stdout)
    expected = duckdb.connect().execute("""
        SELECT metric, label, value, previous_value, status FROM read_parquet($p)
        WHERE grain = 'month' AND period_start = (SELECT max(period_start) FROM read_parquet($p) WHERE grain = 'month')
    """, {"p": str(demo_project / "target" / "scorecard.parquet")}).fetchall()
    assert set(page.rows) == {m for m, *_ in expected} and len(expected) == 10
    for metric, label, value, previous, status in expected:
        cells = page.rows[metric]
        assert cells[0].endswith(label)
        assert (cells[1], cells[2]) == (format_value(value), format_value(previous))
        assert page.pills.get(metric) == status
    assert page.links == [] and "<script" not in result.stdout and "http" not in result.stdout.replace(
        'xmlns="http', "")


def test_html_escapes_what_the_project_wrote(demo_project: Path) -> None:
    edit(demo_project / "metrics" / "new_customers.sql", "label='New customer signups'",
         "label='New <b>customers</b> & \"signups\"'")
    assert run_cli(demo_project, "build").returncode == 0
    result = run_cli(demo_project, "scorecard", "--format", "html")
    assert "New &lt;b&gt;customers&lt;/b&gt; &amp; &quot;signups&quot;" in result.stdout
    assert "<b>customers</b>" not in result.stdout
