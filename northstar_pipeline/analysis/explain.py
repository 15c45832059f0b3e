"""Why the North Star moved, in words a product leader reads at the weekly review.

Everything comes from the published scorecard, nothing is recomputed: the North Star's value,
previous value and change; each Level-1 formula input's exact share of that change (the
scorecard's LMDI ``contribution``, which adds up to the change), the biggest driver named;
deeper formula inputs through ``contribution_to_nsm``; the hypothesis inputs that moved most
with their tested correlation and lag; and every guardrail in breach (RED) or warning (YELLOW).

A partial period (the current one) is compared period-to-date, with the same elapsed span of
the previous period, and the text says so.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

import pyarrow as pa
from rich.console import Console
from rich.text import Text

from northstar_pipeline.present.formatting import (
    export,
    format_change,
    format_pct,
    format_value,
    threshold_text,
)
from northstar_pipeline.present.rows import Review, period_title, review_rows, tree_order
from northstar_pipeline.tree.tree import Tree

MAX_HYPOTHESES = 5


def explain_change(card: pa.Table, *, grain: str, period: str | None = None, tree: Tree | None = None,
                   color: bool | None = False, width: int | None = None) -> str:
    """Explain the North Star's change in one ``grain`` period (default: the latest complete one).

    ``tree`` (optional, from ``tree.build_tree``) adds counter-metric thresholds, which the scorecard
    does not carry. ``color`` (None: stdout is a terminal) colours the statuses and, like ``width``,
    wraps the lines at spaces to the terminal's width (or ``width``); without either the text is
    plain, one line per statement. An unknown grain or period raises UsageError.
    """
    text, names = _explain(card, grain, period, tree)
    if color is None:
        color = Console().is_terminal
    if not color and width is None:
        return text
    return _styled(text, names, color, width or Console().width)


_STATUS_WORDS = {"green": r"\b(GREEN|green)\b", "yellow": r"\b(YELLOW|yellow)\b", "bold red": r"\b(RED|red)\b"}


def _styled(text: str, names: set[str], color: bool, width: int) -> str:
    """The same words wrapped to ``width`` at spaces, never inside a name, status words coloured as in ``scorecard``.

    A label or owner ("Logistics & Fulfillment") is one unit: its spaces are no-break spaces while
    textwrap (which breaks only at ASCII whitespace) wraps, continuation lines indented under the line.
    """
    protected = sorted((n for n in names if " " in n), key=len, reverse=True)
    lines = []
    for line in text.rstrip("\n").split("\n"):
        for name in protected:
            line = line.replace(name, name.replace(" ", NBSP))
        indent = line[:len(line) - len(line.lstrip(" "))]
        wrapped = textwrap.wrap(line, width=width, subsequent_indent=indent + "    ", break_long_words=False,
                                break_on_hyphens=False) or [""]
        lines += [w.replace(NBSP, " ") for w in wrapped]
    rich_text = Text("\n".join(lines))
    for style, pattern in _STATUS_WORDS.items():
        rich_text.highlight_regex(pattern, style)
    return "\n".join(x.rstrip() for x in export(rich_text, color=color, width=10_000).rstrip().split("\n")) + "\n"


NBSP = "\u00a0"


def _explain(card: pa.Table, grain: str, period: str | None, tree: Tree | None) -> tuple[str, set[str]]:
    """The explanation as plain lines, and the names (labels, owners) a wrap must not split."""
    review = review_rows(card, grain, period)  # the period every view opens on
    rows = list(review.rows)
    ordered = [row for row, _ in tree_order(rows)]
    units = {r["metric"]: r.get("unit") or "" for r in rows}
    units.update({m.name: m.config.unit for m in tree.metrics} if tree else {})
    labels = {r["metric"]: r["label"] for r in rows}
    nsm = next((r for r in ordered if r["kind"] == "north_star"), None)
    lines = [f"Why the North Star moved · {period_title(rows)}", ""]
    names = {n for r in rows for n in (r["label"], r.get("owner") or "", r["metric"]) if n}
    if nsm is None:
        return "\n".join(lines + ["The scorecard has no North Star row for this period."]) + "\n", names
    if not nsm["is_complete"]:
        lines += [f"This {grain} is not over yet: it is compared period-to-date, with the same elapsed span "
                  f"of the previous {grain}.", ""]
    lines += _north_star(nsm, units)
    lines += _to_date(review, nsm, units)
    lines += _alarms(ordered)
    lines += _formula_inputs(ordered, nsm, units)
    lines += _deeper_inputs(ordered, nsm, labels, units)
    lines += _hypotheses(ordered, labels, units, grain)
    lines += _guardrails(ordered, labels, units, tree)
    return "\n".join(lines).rstrip() + "\n", names


def _north_star(nsm: Mapping, units: Mapping[str, str]) -> list[str]:
    unit = units.get(nsm["metric"], "")
    value, previous = format_value(nsm["value"], unit), format_value(nsm["previous_value"], unit)
    status = f" Status: {nsm['status'].upper()}." if nsm.get("status") else ""
    if nsm["previous_value"] is None or nsm["change"] is None:
        return [f"{nsm['label']} was {value}; there is no previous {nsm['grain']} to compare with.{status}", ""]
    return [f"{nsm['label']} (North Star) {_verb(nsm['change'])} from {previous} to {value}: "
            f"{format_change(nsm['change'], unit)} ({format_pct(nsm['change_pct'])}).{status}", ""]


def _to_date(review: Review, nsm: Mapping, units: Mapping[str, str]) -> list[str]:
    """The current partial period beside the complete one: so far, vs the same span before, pace to target."""
    row = review.to_date.get(nsm["metric"])
    if not row:
        return []
    unit = units.get(nsm["metric"], "")
    elapsed = f", {row['elapsed']:.0%} elapsed" if row.get("elapsed") is not None else ""
    line = (f"So far this {row['grain']} (from {row['period_start']}{elapsed}): "
            f"{format_value(row['value'], unit)} vs {format_value(row['previous_value'], unit)} in the same span "
            f"of the previous {row['grain']} ({format_pct(row['change_pct'])})")
    if row.get("pace_pct") is not None:
        line += f"; on pace for {format_pct(row['pace_pct'], signed=False)} of the {row['grain']}'s target"
    return [line + ".", ""]


def _alarms(rows: list[Mapping]) -> list[str]:
    """One line up front when a guardrail is RED: a green North Star does not excuse a red counter-metric."""
    red = [r for r in rows if r["kind"] == "counter" and r.get("status") == "red"]
    if not red:
        return []
    named = "; ".join(f"{r['label']} is RED ({format_pct(r['change_pct'])})" for r in red)
    return [f"Guardrail in breach: {named}. See Guardrails below.", ""]


def _formula_inputs(rows: list[Mapping], nsm: Mapping, units: Mapping[str, str]) -> list[str]:
    inputs = [r for r in rows if r.get("edge") == "formula" and r.get("parent") == nsm["metric"]]
    if not inputs:
        return []
    change = nsm["change"]
    noun = _noun(nsm["label"])
    known = sorted((r for r in inputs if r.get("contribution") is not None),
                   key=lambda r: (-abs(r["contribution"]), r["metric"]))
    lines = []
    if known and change:
        same_way = [r for r in known if r["contribution"] * change > 0]
        driver = (same_way or known)[0]
        lines += [f"{driver['label']} ({driver['metric']}) was the main driver: "
                  f"{format_change(driver['contribution'])} of {format_change(change)} {noun} "
                  f"({driver['contribution'] / change:.0%}).", ""]
    elif change == 0:
        lines += ["The North Star did not change; its formula inputs offset each other.", ""]
    lines.append("Formula inputs (solid lines): each one's exact share of the North Star's change")
    for row in known + [r for r in inputs if r.get("contribution") is None]:
        lines.append("  " + _input_line(row, units, change, noun, row.get("contribution")))
    return lines + [""]


def _deeper_inputs(rows: list[Mapping], nsm: Mapping, labels: Mapping[str, str],
                   units: Mapping[str, str]) -> list[str]:
    deeper = [r for r in rows if r.get("edge") == "formula" and (r.get("level") or 0) >= 2
              and r.get("contribution_to_nsm") is not None]
    if not deeper:
        return []
    deeper.sort(key=lambda r: (-abs(r["contribution_to_nsm"]), r["metric"]))
    lines = ["Deeper formula inputs: share of the North Star's change through their parent"]
    for row in deeper:
        line = _input_line(row, units, nsm["change"], _noun(nsm["label"]), row["contribution_to_nsm"])
        lines.append(f"  {line} (via {labels.get(row['parent'], row['parent'])})")
    return lines + [""]


def _input_line(row: Mapping, units: Mapping[str, str], nsm_change: float | None, noun: str,
                contribution: float | None) -> str:
    unit = units.get(row["metric"], "")
    moved = (f"{format_value(row['previous_value'], unit)} -> {format_value(row['value'], unit)} "
             f"({format_pct(row['change_pct'])})")
    if contribution is None:
        share = "contribution unknown"
    elif nsm_change:
        share = f"{format_change(contribution)} {noun}, {contribution / nsm_change:.0%} of the change"
    else:
        share = f"{format_change(contribution)} {noun}"
    return f"{row['label']} ({row['metric']}): {moved}; {share}; {_status(row)}; owner {row['owner'] or '-'}"


def _hypotheses(rows: list[Mapping], labels: Mapping[str, str], units: Mapping[str, str], grain: str) -> list[str]:
    moved = [r for r in rows if r.get("edge") == "hypothesis" and r.get("change_pct") is not None]
    if not moved:
        return []
    moved.sort(key=lambda r: (-abs(r["change_pct"]), r["metric"]))
    lines = ["Hypothesis inputs that moved most (dotted lines: tested by correlation, not arithmetic)"]
    for row in moved[:MAX_HYPOTHESES]:
        unit = units.get(row["metric"], "")
        lines.append(f"  {row['label']} ({row['metric']} -> {labels.get(row['parent'], row['parent'])}): "
                     f"{format_value(row['previous_value'], unit)} -> {format_value(row['value'], unit)} "
                     f"({format_pct(row['change_pct'])}); {_correlation(row, grain)}; {_status(row)}")
    return lines + [""]


def _correlation(row: Mapping, grain: str) -> str:
    r, lag = row.get("correlation"), row.get("correlation_lag")
    if r is None:
        return "not yet tested (too little history)"
    when = f"in the same {grain}" if not lag else f"leading by {lag} {grain}{'s' if lag > 1 else ''}"
    return f"r = {r:+.2f} with its parent's changes, {when}"


def _guardrails(rows: list[Mapping], labels: Mapping[str, str], units: Mapping[str, str],
                tree: Tree | None) -> list[str]:
    counters = [r for r in rows if r["kind"] == "counter"]
    if not counters:
        return []
    lines = ["Guardrails (counter-metrics)"]
    for status in ("red", "yellow"):
        for row in (r for r in counters if r.get("status") == status):
            unit = units.get(row["metric"], "")
            threshold = f" vs threshold {_threshold(tree, row['metric'], unit)}" if tree else ""
            verdict = "guardrail breached" if row.get("guardrail_breached") else (
                "in breach" if status == "red" else "warning")
            lines.append(
                f"  {status.upper()}: {row['label']} ({row['metric']}, guards {labels.get(row['parent'], row['parent'])})"
                f" {_verb(row['change'])} from {format_value(row['previous_value'], unit)} to "
                f"{format_value(row['value'], unit)} ({format_pct(row['change_pct'])}, {_direction(row)})"
                f"{threshold}: {verdict}. Owner: {row['owner'] or '-'}.")
    healthy = [r["label"] for r in counters if r.get("status") == "green"]
    if healthy:
        lines.append(f"  green: {', '.join(healthy)} (within threshold)")
    unknown = [r["label"] for r in counters if not r.get("status")]
    if unknown:
        lines.append(f"  no status: {', '.join(unknown)} (no value or no comparison)")
    return lines + [""]


def _threshold(tree: Tree, name: str, unit: str) -> str:
    try:
        return threshold_text(tree.get(name).config.threshold, unit)
    except KeyError:
        return "(metric no longer in the project)"


def _direction(row: Mapping) -> str:
    return "lower is better" if row.get("direction") == "lower_is_better" else "higher is better"


def _status(row: Mapping) -> str:
    status = row.get("status")
    return f"status {status}" if status else "no status"


def _verb(change: float | None) -> str:
    if not change:
        return "was flat"
    return "rose" if change > 0 else "fell"


def _noun(label: str) -> str:
    """'On-time orders' -> 'on-time orders'; an acronym such as 'GMV' stays as it is."""
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        return label[0].lower() + label[1:]
    return label
