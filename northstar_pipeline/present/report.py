"""The weekly review table: the published scorecard for one grain and period, in tree order.

North Star first, inputs indented under their parent (formula children before hypothesis
children, then by dimension: breadth, depth, frequency, efficiency), each counter-metric right
after the metric it guards. Values, comparisons and statuses are the scorecard's own; nothing
is recomputed here. Every view opens on the same period (``rows.choose_period``: the last complete
one); the current partial period is shown beside it "to date": its value so far, compared with the
same elapsed span of the previous period, never with a full one, and its pace toward the target.

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
    TABLE_WIDTH,
    export,
    format_pct,
    format_value,
    sparkline,
    status_text,
    status_word,
    tree_label,
)
from northstar_pipeline.present.rows import Review, period_title, review_rows

FORMATS = ("table", "json", "csv", "markdown", "html")
EXPORT_COLUMNS = (
    "metric", "label", "kind", "level", "depth", "parent", "edge", "owner", "dimension", "direction", "grain",
    "period_start", "period_end", "is_complete", "comparison", "value", "previous_value", "change", "change_pct",
    "target", "target_pct", "status", "status_basis", "guardrail_breached", "contribution", "contribution_to_nsm",
    "correlation", "correlation_lag", "sparkline", "unit",
    "to_date_period_start", "to_date_value", "to_date_previous_value", "to_date_change_pct", "to_date_pace_pct",
    # pace to goal (rows.pace): the partial period's projection at the previous period's same-span share
    "to_date_target", "to_date_share_at_span", "to_date_projected", "to_date_needed_so_far", "to_date_on_track",
    "to_date_pace_basis",
)
# At a narrow terminal, columns go in this order until the table fits (docs/scorecard.md, "The table at
# a terminal's width"); "owner:short" keeps an owner's first word. No cell wraps: a name is never cut.
DROP_ORDER = ("previous", "trend", "owner:short", "to date", "owner", "target %")


def render_scorecard(card: pa.Table, *, grain: str, fmt: str = "table", period: str | None = None,
                     color: bool | None = None, project: str | None = None, width: int | None = None,
                     context: object | None = None) -> str:
    """The review table as text; ``color`` (default: stdout is a terminal) keeps ANSI colours in ``table``.

    ``width``: the table's width (default: the terminal's, or a fixed 150 off a terminal). ``context``
    (html only): ``html.PageContext`` read from the project (hypothesis verdicts, earlier builds).
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown scorecard format '{fmt}'", hint=f"formats: {', '.join(FORMATS)}")
    review = review_rows(card, grain, period)
    rows = [{**r, **_to_date_fields(review.to_date.get(r["metric"]))} for r in review.rows]
    if fmt == "json":
        return json.dumps([_export(r) for r in rows], indent=2)
    if fmt == "csv":
        return _csv(rows)
    if fmt == "markdown":
        return _markdown(rows, review)
    if fmt == "html":
        from northstar_pipeline.present.html import (
            render_html,  # jinja2 is only needed for this format
        )

        return render_html(review, card=card, project=project, context=context)
    return _table(rows, review, Console().is_terminal if color is None else color, width)


def _to_date_fields(row: Mapping | None) -> dict:
    if not row:
        return {}
    return {"to_date_period_start": row["period_start"], "to_date_value": row["value"],
            "to_date_previous_value": row["previous_value"], "to_date_change_pct": row["change_pct"],
            "to_date_pace_pct": row["pace_pct"], "to_date_target": row.get("target"),
            "to_date_share_at_span": row.get("share_at_span"), "to_date_projected": row.get("projected"),
            "to_date_needed_so_far": row.get("needed_so_far"), "to_date_on_track": row.get("on_track"),
            "to_date_pace_basis": row.get("pace_basis")}


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


def _markdown(rows: list[dict], review: Review) -> str:
    lines = [f"**North Star scorecard** · {period_title(rows)}", ""]
    if review.to_date:
        lines += [f"_{review.to_date_title}_", ""]
    lines += [
             "| Metric | Value | Previous | Change | Target % | Status | Trend | Owner |",
             "|:---|---:|---:|---:|---:|:---|:---|:---|"]
    for row in rows:
        unit = row.get("unit")
        indent = "&nbsp;&nbsp;&nbsp;&nbsp;" * max(row["depth"] - 1, 0) + ("↳ " if row["depth"] else "")
        if row["kind"] == "counter":
            indent = "⛨ "
        name = f"{indent}{_md(row['label'])}" + (" **(North Star)**" if row["kind"] == "north_star" else "")
        status = row["status"]
        cells = [
            name, format_value(row["value"], unit), format_value(row["previous_value"], unit),
            format_pct(row["change_pct"]),
            format_pct(row["target_pct"], signed=False),
            f"{STATUS_EMOJI[status]} {status_word(row)}" if status else "-",
            sparkline(row["sparkline"]) or "-", _md(row["owner"] or "-"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


_COLUMNS = (("metric", "left"), ("value", "right"), ("previous", "right"), ("change", "right"),
            ("target %", "right"), ("status", "left"), ("to date", "right"), ("trend", "left"), ("owner", "left"))


def _table(rows: list[dict], review: Review, color: bool, width: int | None = None) -> str:
    """The table at the console's width: columns in DROP_ORDER go until it fits, no cell wraps."""
    width = width or (Console().width if color else TABLE_WIDTH)
    columns = [c for c in _COLUMNS if c[0] != "to date" or review.to_date]
    table = _build_table(rows, review, columns, color)
    short_owner = False
    for drop in DROP_ORDER:
        if _measure(table) <= width:
            break
        if drop == "owner:short":
            short_owner = True
        else:
            columns = [c for c in columns if c[0] != drop]
        table = _build_table(rows, review, columns, color, short_owner)
    return export(table, color=color, width=width) + _pace_lines(rows, review, width)


def _pace_lines(rows: list[dict], review: Review, width: int) -> str:
    """Pace to goal under the table: each metric with a target for the partial period (rows.pace), wrapped."""
    import textwrap

    lines = [pace_sentence(row, review.to_date[row["metric"]]) for row in rows
             if review.to_date.get(row["metric"], {}).get("target") is not None]
    wrapped = [textwrap.fill(line, width=max(width, 40), initial_indent="  ", subsequent_indent="    ",
                             break_on_hyphens=False) for line in lines]
    return ("\npace to goal:\n" + "\n".join(wrapped) + "\n") if lines else ""


def pace_sentence(row: Mapping, to_date: Mapping) -> str:
    """'On-time orders: 2,345 so far; the previous week had 41% of its total by now: on pace for 5,720 of
    the target 5,550 (103%): on track'."""
    unit = to_date.get("unit")
    text = f"{row['label']}: {format_value(to_date['value'], unit)} so far"
    if to_date.get("pace_basis") == "previous period at the same span":
        text += f"; the previous {to_date['grain']} had {to_date['share_at_span']:.0%} of its total by the same point"
    elif to_date.get("share_at_span") is not None:
        text += f"; {to_date['share_at_span']:.0%} of the {to_date['grain']} elapsed"
    if to_date.get("needed_so_far") is not None and to_date.get("pace_basis") != "value so far (a ratio)":
        text += f" (on track needs {format_value(to_date['needed_so_far'], unit)} by now)"
    if to_date.get("projected") is None:
        return text + ": no pace yet"
    track = {True: "on track", False: "off track", None: "no target"}[to_date.get("on_track")]
    return (f"{text}: on pace for {format_value(to_date['projected'], unit)} against the target "
            f"{format_value(to_date['target'], unit)} ({format_pct(to_date.get('pace_pct'), signed=False)}): {track}")


def _build_table(rows: list[dict], review: Review, columns: list[tuple[str, str]], color: bool,
                 short_owner: bool = False) -> Table:
    title = f"North Star scorecard · {period_title(rows)}"
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left",
                  caption=review.to_date_title or None, caption_justify="left")
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in rows:
        unit = row.get("unit")
        cells = {
            "metric": Text(tree_label(row)), "value": format_value(row["value"], unit),
            "previous": format_value(row["previous_value"], unit), "change": format_pct(row["change_pct"]),
            "target %": format_pct(row["target_pct"], signed=False), "status": status_text(row, color),
            "to date": _to_date_cell(review.to_date.get(row["metric"])), "trend": sparkline(row["sparkline"]),
            "owner": _short(row["owner"]) if short_owner else row["owner"] or "",
        }
        table.add_row(*(cells[c] for c, _ in columns))
    return table


def _to_date_cell(row: Mapping | None) -> str:
    if not row:
        return "-"
    return f"{format_value(row['value'], row.get('unit'))} {format_pct(row['change_pct'])}"


def _short(owner: str | None) -> str:
    """'Logistics & Fulfillment' -> 'Logistics': the first word names the team well enough in a narrow table."""
    return (owner or "").split(" ")[0]


def _measure(table: Table) -> int:
    """The table's natural width (every cell on one line)."""
    console = Console(file=io.StringIO(), width=10_000)
    return console.measure(table).maximum


