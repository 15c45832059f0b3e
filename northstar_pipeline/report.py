"""The weekly review table: the published scorecard for one grain and period, in tree order.

North Star first, inputs indented under their parent (formula children before hypothesis
children, then by dimension: breadth, depth, frequency, efficiency), each counter-metric right
after the metric it guards. Values, comparisons and statuses are the scorecard's own; nothing
is recomputed here. A partial period says so in the title: it is compared with the same
elapsed span of the previous period, never with a full one.

Formats: ``table`` (rich; status coloured on a terminal, a word otherwise), ``json``, ``csv``,
``markdown`` (a GitHub table fit for a pull-request comment) and ``html`` (one self-contained page).

The helpers below the renderers (``period_rows``, ``tree_order``, ``format_value``...) are shared
with ``views`` (the tree picture) and ``explain`` (the words).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import duckdb
import pyarrow as pa
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import UsageError
from .types import Threshold

FORMATS = ("table", "json", "csv", "markdown", "html")
STATUS_STYLE = {"green": "green", "yellow": "yellow", "red": "bold red"}
STATUS_EMOJI = {"green": "🟢", "yellow": "🟡", "red": "🔴"}
MARKER = {"formula": "━", "hypothesis": "┄", "guardrail": "⛨"}
SPARKS = "▁▂▃▄▅▆▇█"
TABLE_WIDTH = 150  # when not writing to a terminal: fixed, so the output is deterministic

# The columns of json/csv output: the scorecard's own names, plus depth (indentation in tree order).
EXPORT_COLUMNS = (
    "metric", "label", "kind", "level", "depth", "parent", "edge", "owner", "dimension", "direction", "grain",
    "period_start", "period_end", "is_complete", "comparison", "value", "previous_value", "change", "change_pct",
    "target", "target_pct", "status", "status_basis", "guardrail_breached", "contribution", "contribution_to_nsm",
    "correlation", "correlation_lag", "sparkline",
)


def scorecard_rows(card: pa.Table, grain: str, period: str | None) -> list[dict]:
    """The scorecard rows of one grain and period (default: the latest, partial included) in tree order.

    Each row is the scorecard's row as a dict plus ``depth`` (0 for the North Star; a counter-metric
    takes the depth of the metric it guards).
    """
    rows = period_rows(card, grain, period)
    return [{**row, "depth": depth} for row, depth in tree_order(rows)]


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
        from .html_report import render_html  # it imports this module's helpers

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


def tree_label(row: Mapping) -> str:
    """The metric's label indented to its depth, with its edge marker (━ formula, ┄ hypothesis, ⛨ guard)."""
    if row["kind"] == "north_star":
        return f"★ {row['label']}"
    marker = MARKER.get(row.get("edge") or "", "·")
    return "  " * row["depth"] + f"{marker} {row['label']}"


def status_word(row: Mapping) -> str:
    status = row.get("status")
    if not status:
        return "-"
    return f"{status} (breached)" if row.get("guardrail_breached") else status


def status_text(row: Mapping, color: bool) -> Text:
    """On a terminal a coloured ● plus the word; otherwise just the word."""
    word = status_word(row)
    if not color or not row.get("status"):
        return Text(word)
    return Text(f"● {word}", style=STATUS_STYLE[row["status"]])


def export(renderable: object, *, color: bool, width: int | None = None) -> str:
    """Render with rich to a string: ANSI colours only when asked, a fixed width when not on a terminal."""
    console = Console(record=True, file=io.StringIO(), width=width or (None if color else TABLE_WIDTH),
                      force_terminal=color, color_system="standard" if color else None)
    console.print(renderable)
    return console.export_text(styles=color)


# Shared helpers ------------------------------------------------------------------------------------

_PERIODS_SQL = """
SELECT period_start, any_value(period_end) AS period_end, bool_and(is_complete) AS is_complete
FROM card WHERE grain = $grain GROUP BY period_start ORDER BY period_start
"""


def period_rows(card: pa.Table, grain: str, period: str | None, *, complete_only: bool = False) -> list[dict]:
    """The scorecard rows of one grain and period as dicts (scorecard order).

    ``period`` is a period start (YYYY-MM-DD); without it, the latest period (or the latest complete
    one with ``complete_only``). An unknown grain or period is a UsageError whose hint names what exists.
    """
    con = duckdb.connect(":memory:")
    try:
        con.register("card", card)
        grains = [r[0] for r in con.execute("SELECT DISTINCT grain FROM card ORDER BY grain").fetchall()]
        if grain not in grains:
            raise UsageError(f"the scorecard has no grain '{grain}'",
                             hint=f"grains built: {', '.join(grains) or 'none (run northstar build)'}")
        periods = con.execute(_PERIODS_SQL, {"grain": grain}).fetchall()
        chosen = _choose_period(periods, grain, period, complete_only)
        rows = con.sql("SELECT * FROM card WHERE grain = $grain AND period_start = $period",
                       params={"grain": grain, "period": chosen})
        return rows.to_arrow_table().to_pylist()  # scorecard order is kept: the scan is not reordered
    finally:
        con.close()


def _choose_period(periods: list[tuple], grain: str, period: str | None, complete_only: bool) -> date:
    if period is None:
        candidates = [p for p in periods if p[2]] if complete_only else periods
        if not candidates:
            raise UsageError(f"the scorecard has no complete {grain} yet",
                             hint="build again once a full period of data has landed")
        return candidates[-1][0]
    try:
        wanted = date.fromisoformat(period)
    except ValueError:
        raise UsageError(f"period '{period}' is not a date", hint="give the period's first day as YYYY-MM-DD") from None
    for start, end, _ in periods:
        if start == wanted:
            return start
        if start <= wanted <= end:
            raise UsageError(f"{period} is not the start of a {grain}",
                             hint=f"it falls in the {grain} {start} .. {end}: use --period {start}")
    first, last = periods[0][0], periods[-1][0]
    raise UsageError(f"the scorecard has no {grain} starting {period}",
                     hint=f"{grain}s built: {first} .. {last}")


def tree_order(rows: Iterable[Mapping]) -> list[tuple[Mapping, int]]:
    """(row, depth) in review order: each metric, then the counters guarding it, then its children.

    Rows need ``metric``, ``kind``, ``parent``, ``edge`` and ``dimension``. Children are sorted formula
    first, then by dimension (breadth, depth, frequency, efficiency), then name. A metric whose parent is
    missing (a partial build) is shown at the end as its own root.
    """
    rows = list(rows)
    names = {r["metric"] for r in rows}
    children: dict[str, list[Mapping]] = {}
    guards: dict[str, list[Mapping]] = {}
    roots = []
    for row in rows:
        parent = row.get("parent")
        if row["kind"] == "north_star" or parent not in names:
            roots.append(row)
        elif row["kind"] == "counter":
            guards.setdefault(parent, []).append(row)
        else:
            children.setdefault(parent, []).append(row)
    roots.sort(key=lambda r: (r["kind"] != "north_star", r["kind"] == "counter", r["metric"]))
    out: list[tuple[Mapping, int]] = []
    seen: set[str] = set()

    def visit(row: Mapping, depth: int) -> None:
        if row["metric"] in seen:
            return
        seen.add(row["metric"])
        out.append((row, depth))
        for counter in sorted(guards.get(row["metric"], ()), key=lambda r: r["metric"]):
            visit(counter, depth)
        for child in sorted(children.get(row["metric"], ()), key=_child_key):
            visit(child, depth + 1)

    for root in roots:
        visit(root, 0)
    return out


_DIMENSIONS = ("breadth", "depth", "frequency", "efficiency")


def _child_key(row: Mapping) -> tuple:
    dimension = row.get("dimension")
    rank = _DIMENSIONS.index(dimension) if dimension in _DIMENSIONS else len(_DIMENSIONS)
    return (row.get("edge") != "formula", rank, row["metric"])


def period_title(rows: Sequence[Mapping]) -> str:
    """'week of 2026-08-10 (complete; compared with the previous week)' or the partial equivalent."""
    if not rows:
        return "no rows"
    row = rows[0]
    grain, start = row["grain"], row["period_start"]
    if row["is_complete"]:
        tail = f"compared with the previous {grain}" if row.get("comparison") else f"the first {grain}: no comparison"
        return f"{grain} of {start} .. {row['period_end']} ({tail})"
    if row.get("comparison"):
        return f"{grain} of {start} (partial: compared with the same span of the previous {grain})"
    return f"{grain} of {start} (partial; the first {grain}: no comparison)"


def format_value(value: float | int | None, unit: str = "") -> str:
    """1,234 for big or whole numbers, 4 significant digits otherwise; 42.8% for a 'ratio' unit."""
    if value is None:
        return "-"
    if unit == "ratio":
        return f"{value:.1%}"
    if isinstance(value, float) and value.is_integer() or isinstance(value, int):
        text = f"{int(value):,}"
    elif abs(value) >= 1000:
        text = f"{value:,.0f}"
    else:
        text = f"{value:.4g}"
    return f"{text} {unit}" if unit else text


def format_change(value: float | None) -> str:
    """A signed amount: -1,191 (whole units from 10 up), -4.25 below."""
    if value is None:
        return "-"
    return f"{value:+,.0f}" if abs(value) >= 10 else f"{value:+.3g}"


def format_pct(value: float | None, *, signed: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def sparkline(values: Sequence[float | None] | None) -> str:
    """▁▂▃▄▅▆▇█ scaled between the list's min and max; a gap for a missing value."""
    present = [v for v in values or () if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    out = []
    for value in values or ():
        if value is None:
            out.append(" ")
        elif span == 0:
            out.append(SPARKS[len(SPARKS) // 2])
        else:
            out.append(SPARKS[min(int((value - low) / span * len(SPARKS)), len(SPARKS) - 1)])
    return "".join(out)


def threshold_text(threshold: Threshold | None, unit: str = "") -> str:
    """'warn +3%, breach +5%, ceiling 0.08' (moves in the bad direction vs the previous period)."""
    if threshold is None:
        return "no threshold"
    parts = []
    if threshold.warn_change_pct is not None:
        parts.append(f"warn {threshold.warn_change_pct:+g}%")
    if threshold.breach_change_pct is not None:
        parts.append(f"breach {threshold.breach_change_pct:+g}%")
    if threshold.floor is not None:
        parts.append(f"floor {format_value(threshold.floor, unit)}")
    if threshold.ceiling is not None:
        parts.append(f"ceiling {format_value(threshold.ceiling, unit)}")
    return ", ".join(parts) or "no threshold"
