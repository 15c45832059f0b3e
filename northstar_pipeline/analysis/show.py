"""``northstar show METRIC``: one metric's latest periods from the built tables (like ``dbt show``).

Read-only: the build's DuckDB file, its ``scorecard.scorecard`` table (what the last build
scored, the period spine included), filtered and limited in SQL.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from difflib import get_close_matches
from datetime import date
from typing import Any

import duckdb

from northstar_pipeline.errors import ExecutionError, UsageError
from northstar_pipeline.types import Project

COLUMNS = ("period_start", "period_end", "is_complete", "value", "numerator", "denominator", "previous_value",
           "change_pct", "target", "status")


@dataclass(frozen=True, slots=True)
class Shown:
    metric: str
    label: str
    grain: str
    rows: tuple[dict[str, Any], ...]  # oldest first


def show_metric(project: Project, metric: str, grain: str | None = None, last: int = 8) -> Shown:
    """The latest ``last`` periods of ``metric`` at ``grain`` (default the project's first)."""
    grain = grain or project.grains[0].value
    names = sorted(t.name for t in project.metrics)
    if metric not in names:
        close = get_close_matches(metric, names, n=1)
        raise UsageError(f"no metric '{metric}' in this project",
                         hint=f"did you mean '{close[0]}'?" if close else "list metrics with 'northstar ls -s kind:metric'")
    if grain not in {g.value for g in project.grains}:
        raise UsageError(f"grain '{grain}' is not built by this project",
                         hint=f"use one of {', '.join(g.value for g in project.grains)} (grains: in profiles.yml)")
    database = project.target.database
    if not database.is_file():
        raise UsageError(f"no build at {project.relative(database).as_posix()}",
                         hint=f"run 'northstar build --select +{metric}' first")
    try:
        con = duckdb.connect(str(database), read_only=True)
    except duckdb.Error as exc:
        raise ExecutionError(f"cannot open {database}: {str(exc).splitlines()[0]}",
                             hint="a build may be running; try again when it is done") from None
    try:
        found = con.execute(f"""
            SELECT label, {', '.join(COLUMNS)} FROM (
                SELECT * FROM scorecard.scorecard WHERE metric = $metric AND grain = $grain
                ORDER BY period_start DESC LIMIT $last)
            ORDER BY period_start""", {"metric": metric, "grain": grain, "last": last}).fetchall()
    except duckdb.CatalogException:
        found = []
    finally:
        con.close()
    if not found:
        raise UsageError(f"'{metric}' has no built rows at grain {grain}",
                         hint=f"build it with what it reads: northstar build --select +{metric}")
    rows = tuple(dict(zip(COLUMNS, row[1:], strict=True)) for row in found)
    return Shown(metric, found[0][0], grain, rows)


def format_shown(shown: Shown, fmt: str) -> str:
    """table (rich, for people), csv or json (one object per period, ISO dates)."""
    if fmt == "json":
        return json.dumps([{k: _plain(v) for k, v in row.items()} for row in shown.rows], indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _plain(v) for k, v in row.items()} for row in shown.rows)
        return out.getvalue().rstrip("\n")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{shown.label} ({shown.metric}) by {shown.grain}")
    for column in ("period_start", "value", "change_pct", "target", "status"):
        table.add_column(column, justify="left" if column in ("period_start", "status") else "right")
    for row in shown.rows:
        table.add_row(f"{row['period_start']}{'' if row['is_complete'] else ' (to date)'}", _num(row["value"]),
                      "" if row["change_pct"] is None else f"{row['change_pct']:+.1%}", _num(row["target"]),
                      row["status"] or "")
    console = Console(file=io.StringIO(), width=100, no_color=True, highlight=False)
    console.print(table)
    return console.file.getvalue().rstrip("\n")


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:,.4g}"
