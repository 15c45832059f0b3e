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
