"""A DiffReport as Markdown for a pull-request comment, and as JSON for other programs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from northstar_pipeline.review.diff import DiffReport, MetricNumbers, NodeChange, PeriodValues, SideError, format_value

_STATUS = {"added": "added", "removed": "removed", "modified": "SQL changed", "config": "config changed",
           "comments": "comments or formatting only"}
MAX_CLAUSES = 6  # per side and node: a review comment, not a dump


def render_markdown(report: DiffReport) -> str:
    lines = [f"## northstar diff: `{report.base}` → `{report.head}`", ""]
    lines += _summary(report)
    for error in report.errors:
        lines += _error_section(error)
    if report.changes:
        lines += ["", "### Definitions", "", "| node | kind | change | breaking? | metrics affected |",
                  "|---|---|---|---|---|"]
        for change in report.changes:
            affected = change.affected or change.downstream
            lines.append(f"| `{change.name}` | {change.kind} | {_describe(change)} | {_category(change)} | "
                         f"{', '.join(f'`{m}`' for m in affected) or '-'} |")
        for change in report.changes:
            lines += _details(change)
    if report.numbers is not None:
        lines += _numbers(report)
    if report.new_lint is not None:
        lines += ["", "### Lint findings new at head", ""]
        lines += ([f"- **{f.severity}** {f.rule} `{f.location or '-'}`: {f.message}" for f in report.new_lint]
                  or ["None."])
    return "\n".join(lines) + "\n"


def report_payload(report: DiffReport) -> dict[str, Any]:
    payload = asdict(report)
    payload["head_broken"] = report.head_broken
    if report.numbers is not None:
        for metric, numbers in zip(payload["numbers"], report.numbers, strict=True):
            metric["moved"] = numbers.moved
            metric["status_changes"] = [asdict(p) | {"explanation": _explain(numbers, p)}
                                        for p in numbers.periods if p.status_changed]
    for change in payload["changes"]:
        change["config_changes"] = [{"key": k, "before": b, "after": a, "text": _config_text(k, b, a)}
                                    for k, b, a in change["config_changes"]]
    return payload


def _summary(report: DiffReport) -> list[str]:
    counts: dict[str, int] = {}
    for change in report.changes:
        counts[change.status] = counts.get(change.status, 0) + 1
    parts = [f"{n} {_STATUS.get(s, s)}" for s, n in counts.items()] or ["no definition changed"]
    breaking = sum(c.category == "breaking" for c in report.changes)
    if breaking:
        parts.append(f"{breaking} breaking")
    for error in report.errors:
        parts.append(f"{error.side} does not {error.stage}")
    if report.numbers is not None:
        moved = sum(m.moved for m in report.numbers)
        parts.append(f"numbers moved for {moved} of {len(report.numbers)} metrics")
        complete = sum(p.status_changed and p.is_complete for m in report.numbers for p in m.periods)
        partial = sum(p.status_changed and not p.is_complete for m in report.numbers for p in m.periods)
        if complete or partial:
            parts.append(f"status changed in {complete} complete and {partial} partial periods")
    elif not report.built:
        parts.append("not built (--no-build)")
    else:
        parts.append("numbers not compared (a side did not build)")
    return ["**" + " · ".join(parts) + "**"]


def _error_section(error: SideError) -> list[str]:
    where = f"`{error.location}`: " if error.location else ""
    lines = ["", f"### {error.side.capitalize()} (`{error.label}`) does not {error.stage}", "",
             f"{where}{error.message}"]
    if error.hint:
        lines += ["", f"hint: {error.hint}"]
    return lines


def _describe(change: NodeChange) -> str:
    text = _STATUS.get(change.status, change.status)
    if change.category is None and change.status == "modified" and not change.sql_diff:
        text = "changed (not compared: a side does not compile)"
    if change.config_changes:
        keys = ", ".join(f"`{key}`" for key, _, _ in change.config_changes)
        text = f"{text}; config: {keys}" if change.status != "config" else f"config: {keys}"
    return text


def _category(change: NodeChange) -> str:
    if change.category is None:
        return "-"
    return f"**{change.category}**" if change.category == "breaking" else change.category


def _config_text(key: str, before: Any, after: Any) -> str:
    return f"{key}: {format_value(before)} → {format_value(after)}"


def _details(change: NodeChange) -> list[str]:
    if not (change.removed_sql or change.added_sql or change.config_changes or change.reason):
        return []
    lines = ["", f"<details><summary><code>{change.name}</code>"
                 f"{f': {change.category}' if change.category else ''}</summary>", ""]
    if change.reason:
        lines.append(f"- {change.category}: {change.reason}")
    for key, before, after in change.config_changes:
        lines.append(f"- `{_config_text(key, before, after)}`")
    if change.removed_sql or change.added_sql:
        lines += ["", "```diff"]
        lines += [f"- {_one_line(sql)}" for sql in change.removed_sql[:MAX_CLAUSES]]
        lines += [f"+ {_one_line(sql)}" for sql in change.added_sql[:MAX_CLAUSES]]
        lines.append("```")
    if change.sql_diff:
        what = "The file" if change.kind == "seed" else "Compiled SQL"
        lines += ["", f"{what}:", "", "```diff", change.sql_diff.rstrip("\n"), "```"]
    lines += ["", "</details>"]
    return lines


def _numbers(report: DiffReport) -> list[str]:
    moved = [m for m in report.numbers if m.moved]
    lines = ["", f"### Numbers ({report.grain}, latest periods, same data"
                 f"{f' as of {report.as_of}' if report.as_of else ''})", ""]
    if not moved:
        return lines + ["Every metric has the same values and statuses before and after, in every compared period."]
    lines += ["| metric | period | before | after | change | status |", "|---|---|---|---|---|---|"]
    for metric in moved:
        lines += _number_rows(metric)
    unchanged = [m.metric for m in report.numbers if not m.moved]
    if unchanged:
        lines += ["", f"Unchanged: {', '.join(f'`{m}`' for m in unchanged)}."]
    return lines


def _number_rows(metric: MetricNumbers) -> list[str]:
    rows = []
    for i, period in enumerate(metric.periods):
        name = f"`{metric.metric}`" if i == 0 else ""
        partial = "" if period.is_complete else " (to date)"
        status = (f"{period.status_before or '-'} → **{period.status_after or '-'}**: {_explain(metric, period)}"
                  if period.status_changed else (period.status_after or ""))
        rows.append(f"| {name} | {period.period_start}{partial} | {_number(period.before)} | "
                    f"{_number(period.after)} | {_change(period.before, period.after)} | {status} |")
    return rows


def _explain(metric: MetricNumbers, period: PeriodValues) -> str:
    """The values a status is judged on, before and after: the move, the thresholds, the target."""
    parts = []
    moves = (period.change_pct_before, period.change_pct_after)
    if moves != (None, None):
        parts.append(f"change vs previous {_pct(moves[0])} → {_pct(moves[1])}")
    if metric.thresholds_before or metric.thresholds_after:
        if metric.thresholds_before == metric.thresholds_after:
            parts.append(f"guardrail {metric.thresholds_after}")
        else:
            parts.append(f"guardrail {metric.thresholds_before or 'none'} → {metric.thresholds_after or 'none'}")
    if period.target_before is not None or period.target_after is not None:
        parts.append(f"target {_number(period.target_before)} → {_number(period.target_after)}")
    bases = {period.basis_before, period.basis_after} - {None}
    if bases:
        parts.append(f"judged on {' → '.join(dict.fromkeys(b for b in (period.basis_before, period.basis_after) if b))}")
    return "; ".join(parts) or "no value to judge by"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


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
