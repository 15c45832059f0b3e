"""Publish target/segments.parquet (docs/segments.md, its own schema version) next to the scorecard."""

from __future__ import annotations

from pathlib import Path

import duckdb

from northstar_pipeline.build.publish import parquet_bytes, write_stable
from northstar_pipeline.types import Project

SEGMENTS_TABLE = "scorecard.segments"
SEGMENTS_SCHEMA_VERSION = "1"


def segments_path(project: Project) -> Path:
    return project.scorecard_path.parent / "segments.parquet"


def publish_segments(con: duckdb.DuckDBPyConnection, project: Project, rows: int) -> None:
    """Write the segment table atomically; with no metric cut, remove a stale file of an earlier build."""
    path = segments_path(project)
    if not rows:
        path.unlink(missing_ok=True)
        return
    write_stable(path, parquet_bytes(con, SEGMENTS_TABLE,
                                     {b"northstar.segments_schema_version": SEGMENTS_SCHEMA_VERSION.encode()}))
