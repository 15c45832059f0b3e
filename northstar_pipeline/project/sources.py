"""Read what the sources hold: their schemas (Parquet footers) and the data's as-of time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from northstar_pipeline.errors import ProjectError, SourceDataError
from northstar_pipeline.project.connection import connect_confined, source_reads
from northstar_pipeline.project.footer_stats import max_from_footers
from northstar_pipeline.types import Column, Project, Source


def describe_sources(project: Project) -> dict[tuple[str, str], tuple[Column, ...]]:
    """Every source's columns, read once per compile from the Parquet footers."""
    con = connect_confined(**_reads(project.sources))
    try:
        return {(s.source_name, s.table_name): describe_source(s, con) for s in project.sources}
    finally:
        con.close()


def describe_source(source: Source, con: duckdb.DuckDBPyConnection | None = None) -> tuple[Column, ...]:
    """Read the source's schema from its Parquet files (footers only)."""
    try:
        relation = (con or _source_connection(source)).read_parquet(source.location,
                                                                    hive_partitioning=source.hive_partitioning)
    except duckdb.Error as exc:
        raise SourceDataError(
            f"no data for source '{source.source_name}.{source.table_name}' at {source.location}: {str(exc).strip().splitlines()[0]}",
            path=source.path,
            line=source.line,
            hint=missing_data_hint(source),
        ) from None
    return tuple(Column(n, str(t)) for n, t in zip(relation.columns, relation.types, strict=True))


def _source_connection(source: Source) -> duckdb.DuckDBPyConnection:
    return connect_confined(**_reads([source]))


def _reads(sources) -> dict:
    directories, files = source_reads(sources)
    return {"directories": directories, "files": files}


def missing_data_hint(source: Source) -> str:
    """Suggest `northstar demo-data` only where it writes (data/warehouse), i.e. for the demo and starter."""
    parts = Path(source.location).parts
    demo = any(parts[i:i + 2] == ("data", "warehouse") for i in range(len(parts) - 1))
    fix = "point location (or the var it uses) in models/sources.yml at your Parquet files, and check the glob matches"
    return f"generate the demo data with 'northstar demo-data', or {fix}" if demo else fix


def resolve_as_of(project: Project, source_columns: dict[tuple[str, str], tuple[Column, ...]] | None = None
                  ) -> datetime | None:
    """The `as_of` var if set, else the latest loaded_at_field over the sources that declare one.

    Call describe_sources first: it gives the clear error for a source without data. Each file's footer
    statistics are kept under target/.cache (project/footer_stats.py), so only new files' footers are read.
    """
    override = project.var_map.get("as_of")
    if override:
        try:
            return override if isinstance(override, datetime) else datetime.fromisoformat(str(override))
        except ValueError:
            raise ProjectError(f"var as_of={override!r} is not an ISO date or timestamp", path=project.profiles_path,
                               hint="e.g. --vars '{as_of: 2026-11-18T23:59:59}'") from None
    latest: datetime | None = None
    con = connect_confined(**_reads(project.sources))
    try:
        for source in project.sources:
            if not source.loaded_at_field:
                continue
            columns = {c.name: c.type for c in (source_columns or {}).get((source.source_name, source.table_name), ())}
            value = None
            if source.loaded_at_field in columns and columns[source.loaded_at_field] in EXACT_STATISTICS_TYPES:
                value = max_from_footers(con, source, project.target_dir)  # footers read once per file
            if value is None:
                value = _max_from_scan(con, source)
            if value is not None and (latest is None or value > latest):
                latest = value
    finally:
        con.close()
    return latest


# Parquet stores these as integers, so a row group's max statistic is the exact max of its values
# (a string's may be truncated, and a time zone's rendering depends on the session).
EXACT_STATISTICS_TYPES = frozenset({"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"})


def _max_from_statistics(con: duckdb.DuckDBPyConnection, source: Source) -> datetime | None:
    """The max from the Parquet footers alone, when every row group has the statistic; else None (every
    footer read: project/footer_stats.py without a cache)."""
    return max_from_footers(con, source, None)


def loaded_at_expression(source: Source, columns: dict[str, str] | None = None) -> exp.Expression:
    """loaded_at_field as a sqlglot expression: a column name, or an expression over the source's columns.

    An expression (e.g. ``make_date(year, month, day)`` over partition columns) is parsed with sqlglot and may
    only compute over columns of the row: no subquery, table or star, so it cannot read anything else.
    """
    field = source.loaded_at_field or ""
    if columns is not None and field in columns or field.isidentifier():
        return exp.column(field, quoted=True)
    try:
        parsed = sqlglot.parse_one(field, read="duckdb")
    except sqlglot.errors.SqlglotError as exc:
        raise ProjectError(f"loaded_at_field {field!r} is neither a column nor a SQL expression: {str(exc).splitlines()[0]}",
                           path=source.path, line=source.line,
                           hint="name a timestamp column, or write an expression such as make_date(year, month, day)"
                           ) from None
    if isinstance(parsed, exp.Query) or any(parsed.find_all(exp.Subquery, exp.Table, exp.Star, exp.Select)) \
            or not any(parsed.find_all(exp.Column)):
        raise ProjectError(f"loaded_at_field {field!r} must compute over the source's own columns",
                           path=source.path, line=source.line,
                           hint="no subqueries or tables: e.g. make_date(year, month, day) or "
                                "to_timestamp(epoch_seconds)")
    return parsed


def _max_from_scan(con: duckdb.DuckDBPyConnection, source: Source) -> datetime | None:
    scan = exp.Anonymous(this="read_parquet", expressions=[
        exp.Literal.string(source.location),
        exp.EQ(this=exp.var("hive_partitioning"), expression=exp.Boolean(this=source.hive_partitioning))])
    query = exp.select(exp.cast(exp.Max(this=loaded_at_expression(source)),
                                exp.DataType.Type.TIMESTAMP)).from_(scan)
    try:
        return con.execute(query.sql("duckdb")).fetchall()[0][0]
    except duckdb.Error as exc:
        raise SourceDataError(
            f"cannot read max({source.loaded_at_field}) of source '{source.source_name}.{source.table_name}': "
            f"{str(exc).strip().splitlines()[0]}",
            path=source.path, line=source.line,
            hint="check loaded_at_field names a timestamp column (or is an expression over the source's columns "
                 "giving one), and that the data exists") from None
