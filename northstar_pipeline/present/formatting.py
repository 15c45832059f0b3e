"""How a number, a change, a status or a threshold reads, the same in every view."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.text import Text

from northstar_pipeline.types import Threshold

STATUS_STYLE = {"green": "green", "yellow": "yellow", "red": "bold red"}
STATUS_EMOJI = {"green": "🟢", "yellow": "🟡", "red": "🔴"}
MARKER = {"formula": "━", "hypothesis": "┄", "guardrail": "⛨"}
SPARKS = "▁▂▃▄▅▆▇█"
TABLE_WIDTH = 150  # when not writing to a terminal: fixed, so the output is deterministic

# The columns of json/csv output: the scorecard's own names, plus depth (indentation in tree order).
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



# Units (config ``unit=``): how a metric's numbers read in every view. 'ratio' is the old name of
# 'percent' (a fraction shown as a percentage); '' is a plain number. build/render.py checks the names.
PERCENT_UNITS = ("percent", "ratio")
DURATION_UNITS = {"seconds": "s", "minutes": "min", "hours": "h", "days": "d"}
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "\u20ac", "GBP": "\u00a3"}


def format_value(value: float | int | None, unit: str | None = "") -> str:
    """One number as every view shows it, by the metric's unit.

    count: 1,234 · percent (or ratio): 42.8% · currency[:EUR]: EUR 1,234.50 or $1,234.50 ·
    minutes, seconds, hours, days: 4.25 min · number or none: 1,234 for big or whole numbers, 4
    significant digits otherwise.
    """
    if value is None:
        return "-"
    unit = unit or ""
    if unit in PERCENT_UNITS:
        return f"{value:.1%}"
    if unit == "count":
        return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.1f}"
    if unit == "currency" or unit.startswith("currency:"):
        code = unit.partition(":")[2]
        text = f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:,.2f}"
        symbol = CURRENCY_SYMBOLS.get(code)
        return (f"-{symbol}{text[1:]}" if text.startswith("-") else f"{symbol}{text}") if symbol else (
            f"{code} {text}" if code else text)
    text = _plain(value)
    if unit in DURATION_UNITS:
        return f"{text} {DURATION_UNITS[unit]}"
    return f"{text} {unit}" if unit and unit != "number" else text


def _plain(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() or isinstance(value, int):
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def format_change(value: float | None, unit: str | None = "") -> str:
    """A signed amount in the metric's unit: -1,191 (whole units from 10 up), -4.25 below; +1.2 pp for a percent."""
    if value is None:
        return "-"
    unit = unit or ""
    if unit in PERCENT_UNITS:
        return f"{value * 100:+.1f} pp"
    text = f"{value:+,.0f}" if abs(value) >= 10 else f"{value:+.3g}"
    if unit in DURATION_UNITS:
        return f"{text} {DURATION_UNITS[unit]}"
    if unit == "currency" or unit.startswith("currency:"):
        code = unit.partition(":")[2]
        symbol = CURRENCY_SYMBOLS.get(code)
        return f"{text[0]}{symbol}{text[1:]}" if symbol else (f"{text} {code}" if code else text)
    return text


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
