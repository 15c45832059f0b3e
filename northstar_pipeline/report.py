"""Render the published scorecard for people: a terminal table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json

import duckdb
import pyarrow as pa
from rich import box
from rich.console import Console
from rich.table import Table

from .errors import UsageError

_REVIEW_SQL = """
WITH s AS (
    SELECT *, lag(value) OVER (PARTITION BY metric, grain ORDER BY period_start) AS prev
    FROM card WHERE grain = $grain
), chosen AS (
    SELECT coalesce(CAST($period AS DATE), max(period_start)) AS period_start FROM s
)
SELECT metric, label, kind, level, parent, owner, grain, s.period_start, value, prev AS previous_value,
       CASE WHEN prev IS NULL OR prev = 0 THEN NULL ELSE (value - prev) / abs(prev) END AS change_pct
FROM s JOIN chosen USING (period_start)
ORDER BY CASE kind WHEN 'north_star' THEN 0 WHEN 'input' THEN 1 ELSE 2 END, level NULLS LAST, metric
"""


def scorecard_rows(card: pa.Table, grain: str, period: str | None) -> list[dict]:
    con = duckdb.connect(":memory:")
    con.register("card", card)
    grains = {row[0] for row in con.execute("SELECT DISTINCT grain FROM card").fetchall()}
    if grain not in grains:
        raise UsageError(f"the scorecard has no grain '{grain}'", hint=f"grains built: {', '.join(sorted(grains))}")
    cursor = con.execute(_REVIEW_SQL, {"grain": grain, "period": period})
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def render_scorecard(card: pa.Table, *, grain: str, fmt: str = "table", period: str | None = None) -> str:
    rows = scorecard_rows(card, grain, period)
    if fmt == "json":
        return json.dumps(rows, default=str, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["metric"])
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    if fmt == "markdown":
        lines = ["| metric | kind | level | value | previous | change |", "|---|---|---|---:|---:|---:|"]
        lines += [f"| {r['label']} | {r['kind']} | {_fmt(r['level'])} | {_fmt(r['value'])} | "
                  f"{_fmt(r['previous_value'])} | {_pct(r['change_pct'])} |" for r in rows]
        return "\n".join(lines)
    period_label = rows[0]["period_start"] if rows else period
    table = Table(title=f"North Star scorecard - {grain} of {period_label}", box=box.SIMPLE_HEAVY)
    for column, justify in (("metric", "left"), ("kind", "left"), ("level", "right"), ("value", "right"),
                            ("previous", "right"), ("change", "right"), ("owner", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        indent = "  " * (r["level"] or 0) if r["kind"] != "counter" else ""
        table.add_row(indent + r["label"], r["kind"], _fmt(r["level"]), _fmt(r["value"]),
                      _fmt(r["previous_value"]), _pct(r["change_pct"]), r["owner"] or "")
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.4g}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"
