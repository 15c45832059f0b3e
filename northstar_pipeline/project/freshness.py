"""Source freshness, as in dbt: how old each source's newest row is, against warn_after / error_after.

    sources:
      - name: raw
        freshness: {warn_after: {count: 1, period: day}, error_after: {count: 2, period: day}}
        tables:
          - name: events
            loaded_at_field: occurred_at

The newest row is max(loaded_at_field), read from the Parquet footers when they hold it exactly,
else by a scan of that one column. Timestamps are taken as UTC, like the scorecard's as_of.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb

from northstar_pipeline.errors import ProjectError
from northstar_pipeline.project.footer_stats import max_from_footers
from northstar_pipeline.project.sources import (
    EXACT_STATISTICS_TYPES,
    _max_from_scan,
    describe_source,
)
from northstar_pipeline.types import Freshness, Project, Source

PERIODS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class FreshnessResult:
    source: str  # source.table
    loaded_at_field: str | None
    max_loaded_at: datetime | None
    snapshotted_at: datetime
    age_seconds: float | None
    status: str  # pass | warn | error | no_rule (no freshness declared)
    warn_after: str | None
    error_after: str | None
    path: str
    line: int

    def payload(self) -> dict:
        return {"source": self.source, "loaded_at_field": self.loaded_at_field,
                "max_loaded_at": self.max_loaded_at.isoformat() if self.max_loaded_at else None,
                "snapshotted_at": self.snapshotted_at.isoformat(timespec="seconds"),
                "age_seconds": round(self.age_seconds, 3) if self.age_seconds is not None else None,
                "age": describe_age(self.age_seconds), "status": self.status, "warn_after": self.warn_after,
                "error_after": self.error_after, "path": self.path, "line": self.line}


def source_freshness(group: dict, table: dict, rel: Path, lines: dict, where: tuple[str, ...]) -> Freshness | None:
    """The table's freshness (a table's own `freshness:` overrides its source's; `freshness: null` turns it off)."""
    raw = table["freshness"] if "freshness" in table else group.get("freshness")
    line = lines.get((*where, "freshness"), lines.get((*where[:2], "freshness"), lines.get(where, 1)))
    if raw is None:
        return None
    if not isinstance(raw, dict) or not set(raw) <= {"warn_after", "error_after", "filter"}:
        raise ProjectError("freshness must be a mapping of warn_after and/or error_after", path=rel, line=line,
                           hint="e.g. freshness: {warn_after: {count: 1, period: day}, error_after: {count: 2, period: day}}")
    rule = Freshness(_after(raw.get("warn_after"), "warn_after", rel, line),
                     _after(raw.get("error_after"), "error_after", rel, line))
    if not (table.get("loaded_at_field") or group.get("loaded_at_field")) and (rule.warn_after or rule.error_after):
        raise ProjectError(f"source table '{table.get('name')}' has freshness but no loaded_at_field", path=rel,
                           line=line, hint="add loaded_at_field: the timestamp column whose max is the newest data")
    return rule if rule.warn_after or rule.error_after else None


def _after(raw: Any, key: str, rel: Path, line: int) -> tuple[int, str] | None:
    if raw is None:
        return None
    count, period = (raw.get("count"), raw.get("period")) if isinstance(raw, dict) else (None, None)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1 or period not in PERIODS:
        raise ProjectError(f"{key} must be {{count: N, period: minute|hour|day}}, got {raw!r}", path=rel, line=line,
                           hint=f"e.g. {key}: {{count: 12, period: hour}}")
    return count, str(period)


def check_freshness(project: Project, now: datetime | None = None) -> tuple[FreshnessResult, ...]:
    """Every source with a loaded_at_field: its newest row, its age at `now` (UTC) and its status."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    con = duckdb.connect(":memory:")
    try:
        return tuple(_check(source, con, now, project.target_dir) for source in project.sources
                     if source.loaded_at_field)
    finally:
        con.close()


def _check(source: Source, con: duckdb.DuckDBPyConnection, now: datetime,
           target_dir: Path | None = None) -> FreshnessResult:
    columns = {c.name: c.type for c in describe_source(source, con)}  # the clear error when there is no data
    if source.loaded_at_field not in columns:
        raise ProjectError(f"loaded_at_field '{source.loaded_at_field}' is not a column of source "
                           f"'{source.source_name}.{source.table_name}'", path=source.path, line=source.line,
                           hint=f"its columns are: {', '.join(sorted(columns))}")
    newest = (max_from_footers(con, source, target_dir)  # footers read once per file (project/footer_stats.py)
              if columns[source.loaded_at_field] in EXACT_STATISTICS_TYPES else None)
    if newest is None:
        newest = _max_from_scan(con, source)
    if newest is not None and newest.tzinfo is not None:
        newest = newest.astimezone(timezone.utc).replace(tzinfo=None)
    age = (now - newest).total_seconds() if newest is not None else None
    rule = source.freshness
    status = "no_rule"
    if rule is not None:
        status = "pass"
        if age is None or (rule.error_after and age > seconds(rule.error_after)):
            status = "error" if rule.error_after else "warn"
        elif rule.warn_after and age > seconds(rule.warn_after):
            status = "warn"
    return FreshnessResult(f"{source.source_name}.{source.table_name}", source.loaded_at_field, newest, now, age,
                           status, _text(rule.warn_after) if rule else None, _text(rule.error_after) if rule else None,
                           source.path.as_posix(), source.line)


def seconds(after: tuple[int, str]) -> float:
    return after[0] * PERIODS[after[1]]


def _text(after: tuple[int, str] | None) -> str | None:
    return f"{after[0]} {after[1]}{'s' if after[0] != 1 else ''}" if after else None


def describe_age(age: float | None) -> str | None:
    if age is None:
        return None
    delta = timedelta(seconds=round(age))
    return f"{delta.days}d {delta.seconds // 3600}h {delta.seconds % 3600 // 60}m" if delta.days else \
        f"{delta.seconds // 3600}h {delta.seconds % 3600 // 60}m"
