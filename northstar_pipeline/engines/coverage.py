"""What a metric's rows are about: periods aligned to their grain, and the days its data covers.

Both are set-based queries over the metric table just built (a few hundred rows) and over the
metric's day rendering (its period() expressions bucketed by day), run in the build's transaction.
The days covered are kept in ``_northstar.coverage`` for scoring: a period the data does not cover
from its first day is not complete, and without an as-of the last day covered sets it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import duckdb
import sqlglot
from sqlglot import exp

from northstar_pipeline.engines.metric_scan import coverage_rows
from northstar_pipeline.errors import TreeError
from northstar_pipeline.types import CompiledNode

COVERAGE = "_northstar.coverage"


def check_aligned(con: duckdb.DuckDBPyConnection, node: CompiledNode) -> None:
    """Every period_start is the first day of a period of its grain (a week's Monday, a month's 1st...)."""
    rows = con.execute(_aligned_sql(node)).fetchall()
    if rows:
        grain, start = rows[0]
        raise TreeError(
            f"period_start {start} is not the start of a {grain}: the {grain} rows of this metric would hold "
            f"another span's value",
            path=node.relpath, line=node.line,
            hint="write {{ period('your_timestamp') }} as period_start: it truncates to the grain being rendered "
                 "(date_trunc('week', ...) or a cast to date is right for one grain only)")


def _aligned_sql(node: CompiledNode) -> str:
    table = exp.table_(node.name, db=node.schema, quoted=True)
    # date_trunc(grain, period_start) with the grain as a column: sqlglot's TimestampTrunc wants a literal unit
    truncated = exp.cast(exp.Anonymous(this="date_trunc", expressions=[exp.column("grain"), exp.column("period_start")]),
                         exp.DataType.Type.DATE)
    return (exp.select("grain", "period_start").from_(table)
            .where(exp.NEQ(this=exp.column("period_start"), expression=truncated))
            .order_by("grain", "period_start").limit(1)).sql("duckdb")


def record_coverage(con: duckdb.DuckDBPyConnection, node: CompiledNode) -> None:
    """Store the first and last day the metric's period() expressions take (its day rendering's span)."""
    _reset_coverage(con, node)
    if not node.coverage_sql:
        return  # no period() call: nothing says which days the rows are about (lint NS012)
    con.execute(f"INSERT INTO {COVERAGE} {coverage_span(node).sql('duckdb')}")


def record_coverage_from(con: duckdb.DuckDBPyConnection, node: CompiledNode, partials: exp.Table, day: str) -> None:
    """The same span from a one-scan build's partials (engines/metric_scan.py): a row per day some row falls on."""
    _reset_coverage(con, node)
    con.execute(f"INSERT INTO {COVERAGE} {_span(node, partials.copy(), exp.column(day)).sql('duckdb')}")


def coverage_span(node: CompiledNode) -> exp.Select:
    """SELECT metric, first_day, last_day over the metric's day rendering (an engine may run it elsewhere)."""
    days = coverage_rows(node.coverage_sql) or sqlglot.parse_one(node.coverage_sql, read="duckdb")
    return _span(node, days.subquery("c"), exp.column("period_start", "c"))


def _span(node: CompiledNode, source: exp.Expression, day: exp.Expression) -> exp.Select:
    return exp.select(
        exp.Literal.string(node.name).as_("metric"),
        exp.cast(exp.Min(this=day.copy()), exp.DataType.Type.DATE).as_("first_day"),
        exp.cast(exp.Max(this=day.copy()), exp.DataType.Type.DATE).as_("last_day"),
    ).from_(source)


def store_coverage(con: duckdb.DuckDBPyConnection, node: CompiledNode, first_day: date | None,
                   last_day: date | None) -> None:
    """The span computed by another engine (Spark), stored where scoring reads it."""
    _reset_coverage(con, node)
    if node.coverage_sql:
        con.execute(f"INSERT INTO {COVERAGE} VALUES (?, ?, ?)", [node.name, first_day, last_day])


def _reset_coverage(con: duckdb.DuckDBPyConnection, node: CompiledNode) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {COVERAGE.split('.')[0]}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {COVERAGE} (metric VARCHAR, first_day DATE, last_day DATE)")
    con.execute(f"DELETE FROM {COVERAGE} WHERE metric = ?", [node.name])


def data_as_of(con: duckdb.DuckDBPyConnection, metrics: list[str]) -> datetime | None:
    """The end of the last day any of these metrics' data covers (day resolution), or None."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = '_northstar' "
                         "AND table_name = 'coverage'").fetchall()[0][0]
    if not exists or not metrics:
        return None
    last: date | None = con.execute(f"SELECT max(last_day) FROM {COVERAGE} WHERE list_contains($names, metric)",
                                    {"names": metrics}).fetchall()[0][0]
    return None if last is None else datetime.combine(last + timedelta(days=1), time())
