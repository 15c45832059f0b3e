"""Publish target/segments.parquet (docs/segments.md, its own schema version) next to the scorecard."""

from __future__ import annotations

from pathlib import Path

import duckdb

from northstar_pipeline.build.publish import atomic_path
from northstar_pipeline.types import Project

SEGMENTS_TABLE = "scorecard.segments"
SEGMENTS_SCHEMA_VERSION = "1"


def segments_path(project: Project) -> Path:
    return project.scorecard_path.parent / "segments.parquet"


def publish_segments(con: duckdb.DuckDBPyConnection, project: Project, rows: int) -> None:
    """Write the segment table atomically; with no metric cut, remove a stale file of an earlier build."""
    import pyarrow.parquet as pq  # imported here: compile-only commands never need it

    path = segments_path(project)
    if not rows:
        path.unlink(missing_ok=True)
        return
    table = con.table(SEGMENTS_TABLE).to_arrow_table()
    metadata = {b"northstar.segments_schema_version": SEGMENTS_SCHEMA_VERSION.encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
