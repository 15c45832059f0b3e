"""A DiffReport as Markdown for a pull-request comment, and as JSON for other programs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from northstar_pipeline.review.diff import DiffReport, MetricNumbers, NodeChange

_STATUS = {"added": "added", "removed": "removed", "modified": "SQL changed", "config": "config changed",
           "comments": "comments or formatting only"}
MAX_CLAUSES = 6  # per side and node: a review comment, not a dump


def render_markdown(report: DiffReport) -> str:
    lines = [f"## northstar diff: `{report.base}` → `{report.head}`", ""]
    lines += _summary(report)
    if report.changes:
        lines += ["", "### Definitions", "", "| node | kind | change | metrics downstream |", "|---|---|---|---|"]
        for change in report.changes:
            lines.append(f"| `{change.name}` | {change.kind} | {_describe(change)} | "
                         f"{', '.join(f'`{m}`' for m in change.downstream) or '-'} |")
        for change in report.changes:
            lines += _details(change)
    if report.numbers is not None:
        moved = [m for m in report.numbers if m.moved]
        lines += ["", f"### Numbers ({report.grain}, latest periods, same data"
                      f"{f' as of {report.as_of}' if report.as_of else ''})", ""]
        if not moved:
            lines.append("Every metric has the same values before and after.")
        else:
            lines += ["| metric | period | before | after | change |", "|---|---|---|---|---|"]
            for metric in moved:
                lines += _number_rows(metric)
            unchanged = [m.metric for m in report.numbers if not m.moved]
            if unchanged:
                lines += ["", f"Unchanged: {', '.join(f'`{m}`' for m in unchanged)}."]
    return "\n".join(lines) + "\n"


def report_payload(report: DiffReport) -> dict[str, Any]:
    payload = asdict(report)
    if report.numbers is not None:
        for metric, numbers in zip(payload["numbers"], report.numbers, strict=True):
            metric["moved"] = numbers.moved
    return payload


def _summary(report: DiffReport) -> list[str]:
    counts: dict[str, int] = {}
    for change in report.changes:
        counts[change.status] = counts.get(change.status, 0) + 1
    parts = [f"{n} {_STATUS[s]}" for s, n in counts.items()] or ["no definition changed"]
    if report.numbers is not None:
        moved = sum(m.moved for m in report.numbers)
        parts.append(f"numbers moved for {moved} of {len(report.numbers)} metrics")
    else:
        parts.append("not built (--no-build)")
    return ["**" + " · ".join(parts) + "**"]


def _describe(change: NodeChange) -> str:
    text = _STATUS[change.status]
    if change.config_changes:
        keys = ", ".join(f"`{key}`" for key, _, _ in change.config_changes)
        text = f"{text}; config: {keys}" if change.status != "config" else f"config: {keys}"
    return text


def _details(change: NodeChange) -> list[str]:
    if not (change.removed_sql or change.added_sql or change.config_changes):
        return []
    lines = ["", f"<details><summary><code>{change.name}</code></summary>", ""]
    for key, before, after in change.config_changes:
        lines.append(f"- config `{key}`: `{before!r}` → `{after!r}`")
    if change.removed_sql or change.added_sql:
        lines += ["```diff"] if lines[-1] == "" else ["", "```diff"]
        lines += [f"- {_one_line(sql)}" for sql in change.removed_sql[:MAX_CLAUSES]]
        lines += [f"+ {_one_line(sql)}" for sql in change.added_sql[:MAX_CLAUSES]]
        lines.append("```")
    if change.sql_diff:
        what = "The file" if change.kind == "seed" else "Compiled SQL"
        lines += ["", f"{what}:", "", "```diff", change.sql_diff.rstrip("\n"), "```"]
    lines += ["", "</details>"]
    return lines


def _number_rows(metric: MetricNumbers) -> list[str]:
    rows = []
    for i, period in enumerate(metric.periods):
        name = f"`{metric.metric}`" if i == 0 else ""
        partial = "" if period.is_complete else " (to date)"
        rows.append(f"| {name} | {period.period_start}{partial} | {_number(period.before)} | "
                    f"{_number(period.after)} | {_change(period.before, period.after)} |")
    if metric.status_before != metric.status_after:
        rows.append(f"| | status | {metric.status_before or '-'} | {metric.status_after or '-'} | |")
    return rows


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4g}"


def _change(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "new" if before is None and after is not None else ("gone" if after is None and before is not None else "")
    if before == after:
        return "="
    if before == 0:
        return f"{after - before:+,.4g}"
    return f"{after - before:+,.4g} ({(after - before) / abs(before):+.1%})"


def _one_line(sql: str) -> str:
    return " ".join(sql.split())
