"""A source's loaded_at_field max from its Parquet footers, reading only the files that are new or changed.

The as-of is the max of the row groups' statistics over every file of the source. Reading every
footer costs a little per file, every build, and a lake gains files every night: the cost grew with
the history. Each file's (row groups, row groups with the statistic, max) is kept in the compile
cache (HMAC-checked, pruned to what a build uses: build/cache.py) with the file's size, inode and
modification and change times (nanoseconds), so a night reads the footers of its new files only. A
file whose signature changed is read again; one that is gone no longer counts.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from typing import Any

import duckdb
from sqlglot import exp

from northstar_pipeline.types import Source

_FORMAT = 2  # 2: a file's signature includes its inode and change time


def max_from_statistics_cached(con: duckdb.DuckDBPyConnection, source: Source, cache: Any) -> datetime | None:
    """As sources._max_from_statistics (None unless every row group has the statistic), with ``cache``
    (a CompileCache: ``get``/``put``) remembering each file's part; None also when no file matches."""
    try:
        files = [row[0] for row in con.execute(
            exp.select("file").from_(exp.Anonymous(this="glob", expressions=[exp.Literal.string(source.location)]))
            .sql("duckdb")).fetchall()]
        stats = [(path, os.stat(path)) for path in files]
    except (duckdb.Error, OSError):
        return None  # the scan gives the clear error, if there is one
    if not stats:
        return None
    name = json.dumps(["footer-max", _FORMAT, source.location, source.loaded_at_field])
    key = hashlib.sha256(name.encode()).hexdigest()
    known = {entry[0]: entry for entry in (cache.get(key) or ())}
    parts = []
    missing = []
    for path, stat in stats:
        entry = known.get(path)
        if entry is not None and tuple(entry[1]) == _signature(stat):
            parts.append(entry)
        else:
            missing.append((path, stat))
    if missing:
        read = _read_footers(con, [p for p, _ in missing], source.loaded_at_field or "")
        if read is None:
            return None
        for path, stat in missing:
            row_groups, with_statistic, value = read.get(path, (0, 0, None))
            parts.append((path, _signature(stat), row_groups, with_statistic,
                          value.isoformat(sep=" ") if value is not None else None))
    if missing or len(parts) != len(known):  # new, changed or removed files: the entry changes
        cache.put(key, tuple(sorted(parts)))
    row_groups = sum(p[2] for p in parts)
    with_statistic = sum(p[3] for p in parts)
    values = [datetime.fromisoformat(p[4]) for p in parts if p[4] is not None]
    return max(values) if row_groups and with_statistic == row_groups and values else None


def _signature(stat: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file is written again (in place or replaced)."""
    return (stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns)


def _read_footers(con: duckdb.DuckDBPyConnection, files: list[str], field: str
                  ) -> dict[str, tuple[int, int, datetime | None]] | None:
    """Per file: (row groups of ``field``, those with a max statistic, the max), from the footers alone."""
    stat = exp.column("stats_max_value")
    metadata = exp.Anonymous(this="parquet_metadata", expressions=[exp.Placeholder(this="files")])
    query = exp.select(
        exp.column("file_name"),
        exp.Count(this=exp.Star()),
        exp.Count(this=stat.copy()),
        exp.Max(this=exp.TryCast(this=stat.copy(), to=exp.DataType.build("TIMESTAMP"))),
    ).from_(metadata).where(exp.column("path_in_schema").eq(exp.Placeholder(this="field"))).group_by(
        exp.column("file_name"))
    try:
        rows = con.execute(query.sql("duckdb"), {"files": files, "field": field}).fetchall()
    except duckdb.Error:
        return None
    return {name: (count, with_statistic, value) for name, count, with_statistic, value in rows}
