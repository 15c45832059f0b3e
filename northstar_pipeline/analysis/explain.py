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

from collections.abc import Mapping

import pyarrow as pa

from northstar_pipeline.present.formatting import (
    format_change,
    format_pct,
    format_value,
    threshold_text,
)
from northstar_pipeline.present.rows import period_rows, period_title, tree_order
from northstar_pipeline.tree.tree import Tree

MAX_HYPOTHESES = 5


def explain_change(card: pa.Table, *, grain: str, period: str | None = None, tree: Tree | None = None) -> str:
    """Explain the North Star's change in one ``grain`` period (default: the latest complete one).

    ``tree`` (optional, from ``tree.build_tree``) adds units and counter-metric thresholds, which the
    scorecard does not carry. An unknown grain or period raises UsageError.
    """
    rows = period_rows(card, grain, period, complete_only=period is None)
    ordered = [row for row, _ in tree_order(rows)]
    units = {m.name: m.config.unit for m in tree.metrics} if tree else {}
    labels = {r["metric"]: r["label"] for r in rows}
    nsm = next((r for r in ordered if r["kind"] == "north_star"), None)
    lines = [f"Why the North Star moved · {period_title(rows)}", ""]
    if nsm is None:
        return "\n".join(lines + ["The scorecard has no North Star row for this period."]) + "\n"
    if not nsm["is_complete"]:
        lines += [f"This {grain} is not over yet: it is compared period-to-date, with the same elapsed span "
                  f"of the previous {grain}.", ""]
    lines += _north_star(nsm, units)
    lines += _alarms(ordered)
    lines += _formula_inputs(ordered, nsm, units)
    lines += _deeper_inputs(ordered, nsm, labels, units)
    lines += _hypotheses(ordered, labels, units, grain)
    lines += _guardrails(ordered, labels, units, tree)
    return "\n".join(lines).rstrip() + "\n"


def _north_star(nsm: Mapping, units: Mapping[str, str]) -> list[str]:
    unit = units.get(nsm["metric"], "")
    value, previous = format_value(nsm["value"], unit), format_value(nsm["previous_value"], unit)
    status = f" Status: {nsm['status'].upper()}." if nsm.get("status") else ""
    if nsm["previous_value"] is None or nsm["change"] is None:
        return [f"{nsm['label']} was {value}; there is no previous {nsm['grain']} to compare with.{status}", ""]
    return [f"{nsm['label']} (North Star) {_verb(nsm['change'])} from {previous} to {value}: "
            f"{format_change(nsm['change'])} ({format_pct(nsm['change_pct'])}).{status}", ""]


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
