"""The data's as-of time: from the Parquet footers' statistics where they are exact, else by a scan."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from northstar_pipeline.project.sources import (
    _max_from_scan,
    _max_from_statistics,
    describe_sources,
    resolve_as_of,
)
from northstar_pipeline.types import Source


def source(location: str, field: str, hive: bool = False) -> Source:
    return Source("raw", "events", location, hive, Path("models/sources.yml"), 1, loaded_at_field=field)


def project_of(*sources: Source):
    from types import SimpleNamespace

    return SimpleNamespace(sources=sources, var_map={}, profiles_path=Path("profiles.yml"), target_dir=None)


def test_statistics_give_the_same_max_as_a_scan(warehouse) -> None:
    events = source(f"{warehouse.events_dir}/**/*.parquet", "occurred_at", hive=True)
    con = duckdb.connect()
    expected = con.execute("SELECT max(occurred_at) FROM read_parquet($g, hive_partitioning = true)",
                           {"g": events.location}).fetchall()[0][0]
    assert _max_from_statistics(con, events) == expected == _max_from_scan(con, events)
    project = project_of(events)
    assert resolve_as_of(project, describe_sources(project)) == expected


@pytest.mark.parametrize("column_sql, expected", [
    # a string's statistic may be truncated: the scan decides
    ("CAST(TIMESTAMP '2026-03-04 05:06:07' + to_days(i) AS VARCHAR)", datetime(2026, 3, 13, 5, 6, 7)),
    # a row group of NULLs has no max statistic: the scan decides
    ("CASE WHEN i < 5 THEN NULL ELSE TIMESTAMP '2026-03-04 05:06:07' + to_days(i) END", datetime(2026, 3, 13, 5, 6, 7)),
    ("TIMESTAMP '2026-03-04 05:06:07' + to_days(i)", datetime(2026, 3, 13, 5, 6, 7)),
])
def test_as_of_is_exact_whatever_the_column(tmp_path: Path, column_sql: str, expected: datetime) -> None:
    con = duckdb.connect()
    con.execute(f"COPY (SELECT i, {column_sql} AS loaded FROM range(10) AS r(i)) TO '{tmp_path / 'a.parquet'}' "
                "(FORMAT parquet, ROW_GROUP_SIZE 5)")
    events = source(str(tmp_path / "*.parquet"), "loaded")
    project = project_of(events)
    assert resolve_as_of(project, describe_sources(project)) == expected
