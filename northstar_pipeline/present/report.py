"""The weekly review table: the published scorecard for one grain and period, in tree order.

North Star first, inputs indented under their parent (formula children before hypothesis
children, then by dimension: breadth, depth, frequency, efficiency), each counter-metric right
after the metric it guards. Values, comparisons and statuses are the scorecard's own; nothing
is recomputed here. A partial period says so in the title: it is compared with the same
elapsed span of the previous period, never with a full one.

Formats: ``table`` (rich; status coloured on a terminal, a word otherwise), ``json``, ``csv``,
``markdown`` (a GitHub table fit for a pull-request comment) and ``html`` (one self-contained page).

Which rows a view shows is ``rows``; how a number reads is ``formatting``: both are shared with
``views`` (the tree picture), ``html`` (the page) and ``explain`` (the words).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import date

import pyarrow as pa
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from northstar_pipeline.errors import UsageError
from northstar_pipeline.present.formatting import (
    STATUS_EMOJI,
    export,
    format_pct,
    format_value,
    sparkline,
    status_text,
    status_word,
    tree_label,
)
from northstar_pipeline.present.rows import period_title, scorecard_rows

FORMATS = ("table", "json", "csv", "markdown", "html")
EXPORT_COLUMNS = (
    "metric", "label", "kind", "level", "depth", "parent", "edge", "owner", "dimension", "direction", "grain",
    "period_start", "period_end", "is_complete", "comparison", "value", "previous_value", "change", "change_pct",
    "target", "target_pct", "status", "status_basis", "guardrail_breached", "contribution", "contribution_to_nsm",
    "correlation", "correlation_lag", "sparkline",
)


def render_scorecard(card: pa.Table, *, grain: str, fmt: str = "table", period: str | None = None,
                     color: bool | None = None, project: str | None = None) -> str:
    """The review table as text; ``color`` (default: stdout is a terminal) keeps ANSI colours in ``table``."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown scorecard format '{fmt}'", hint=f"formats: {', '.join(FORMATS)}")
    rows = scorecard_rows(card, grain, period)
    if fmt == "json":
        return json.dumps([_export(r) for r in rows], indent=2)
    if fmt == "csv":
        return _csv(rows)
    if fmt == "markdown":
        return _markdown(rows)
    if fmt == "html":
        from northstar_pipeline.present.html import (
            render_html,  # jinja2 is only needed for this format
        )

        return render_html(rows, project=project)
    return _table(rows, Console().is_terminal if color is None else color)


def _export(row: Mapping) -> dict:
    out = {}
    for column in EXPORT_COLUMNS:
        value = row.get(column)
        out[column] = value.isoformat() if isinstance(value, date) else value
    return out


def _csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        exported = _export(row)
        exported["sparkline"] = " ".join("" if v is None else repr(v) for v in exported["sparkline"] or ())
        writer.writerow(exported)
    return out.getvalue()


def _markdown(rows: list[dict]) -> str:
    lines = [f"**North Star scorecard** · {period_title(rows)}", "",
             "| Metric | Value | Previous | Change | Target % | Status | Trend | Owner |",
             "|:---|---:|---:|---:|---:|:---|:---|:---|"]
    for row in rows:
        indent = "&nbsp;&nbsp;&nbsp;&nbsp;" * max(row["depth"] - 1, 0) + ("↳ " if row["depth"] else "")
        if row["kind"] == "counter":
            indent = "⛨ "
        name = f"{indent}{_md(row['label'])}" + (" **(North Star)**" if row["kind"] == "north_star" else "")
        status = row["status"]
        cells = [
            name, format_value(row["value"]), format_value(row["previous_value"]), format_pct(row["change_pct"]),
            format_pct(row["target_pct"], signed=False),
            f"{STATUS_EMOJI[status]} {status_word(row)}" if status else "-",
            sparkline(row["sparkline"]) or "-", _md(row["owner"] or "-"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: list[dict], color: bool) -> str:
    table = Table(title=f"North Star scorecard · {period_title(rows)}", box=box.SIMPLE_HEAVY, title_justify="left")
    for column, justify in (("metric", "left"), ("value", "right"), ("previous", "right"), ("change", "right"),
                            ("target %", "right"), ("status", "left"), ("trend", "left"), ("owner", "left")):
        table.add_column(column, justify=justify, no_wrap=column in ("value", "previous", "change", "trend"))  # type: ignore[arg-type]
    for row in rows:
        table.add_row(Text(tree_label(row)), format_value(row["value"]), format_value(row["previous_value"]),
                      format_pct(row["change_pct"]), format_pct(row["target_pct"], signed=False),
                      status_text(row, color), sparkline(row["sparkline"]), row["owner"] or "")
    return export(table, color=color)


