"""A metric's one-scan partials (engines/metric_scan.py) as a temp table of the build.

The segment step of the same build cuts them instead of the rows (tree/segment_store.py) when they
hold the segment values and stay small; ``PARTIALS_KEPT`` says which metric's partials were kept, and
only its latest build's: a metric built again this run (the as-of settled: build/pipeline.py) replaces
them. A night of a metric whose partials are kept between builds (engines/stored_partials.py) leaves the
same table, made from them; any other incremental metric keeps none, so its cuts read the rows of its
periods.
"""

from __future__ import annotations

import duckdb
from sqlglot import exp

from northstar_pipeline.sql import PARTIALS_KEPT

MAX_KEPT_PARTIALS = 1_000_000  # rows of one metric's partials kept for its segment cuts (a few per day and segment)


def create_partials(con: duckdb.DuckDBPyConnection, metric: str, query: exp.Expression) -> exp.Table:
    """CREATE TEMP TABLE <the metric's partials> AS query; returns the table."""
    table = exp.table_(exp.to_identifier(f"_ns_partials__{metric}", quoted=True))
    con.execute(exp.Create(kind="TABLE", replace=True, this=table, expression=query,
                           properties=exp.Properties(expressions=[exp.TemporaryProperty()])).sql("duckdb"))
    return table


def release_partials(con: duckdb.DuckDBPyConnection, metric: str, table: exp.Table, for_cuts: bool) -> None:
    """Keep the partials for the cuts (``for_cuts``: they hold the segment values) when they are few, else drop
    them: a dimension of many values (a user id) makes them about as many rows as the rows they sum, and the
    cuts then read the rows. Either way no older partials of the metric stay registered."""
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {PARTIALS_KEPT} (metric VARCHAR, table_name VARCHAR)")
    con.execute(f"DELETE FROM {PARTIALS_KEPT} WHERE metric = ?", [metric])
    if for_cuts and con.execute(f"SELECT count(*) FROM {table.sql('duckdb')}").fetchall()[0][0] <= MAX_KEPT_PARTIALS:
        con.execute(f"INSERT INTO {PARTIALS_KEPT} VALUES (?, ?)", [metric, table.name])
        return
    con.execute(exp.Drop(kind="TABLE", tables=[table.copy()]).sql("duckdb"))
