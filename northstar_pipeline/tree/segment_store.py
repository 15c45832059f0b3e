"""The segment cuts, run and kept between builds in ``_northstar`` (inside the build's transaction).

Each cut metric's rows per grain, period, dimension and segment are stored in
``_northstar.segment_cuts``; the volumes that rank a dimension's values for the cardinality guard in
``_northstar.segment_volumes``, per period of one grain. A nightly build that knows which periods it
touched (``since``: per metric, ``{grain: first period_start recomputed}``, None = all) recomputes
only those periods (and the to-date spans, whose as-of moves every night) and keeps the rest. The
guard's ranking stays that of a full build: it sums the stored per-period volumes over the whole
history. Stored rows are reused only while they can be what a full build computes: the cut's
definition (fingerprint) is the same and the guard kept the same values; otherwise the metric is
cut again from scratch.

A metric whose renderings do not allow one scan (no ``segment_cut``, e.g. a distinct count) is cut per
dimension, and a night recomputes its periods the same way, per dimension (``SegmentQuery.since_sql``):
a period's distinct count needs only that period's rows. Every night query reads its rows through a
range on the period's column (build/segment_rows.py), so DuckDB skips the older row groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import duckdb
import sqlglot
from sqlglot import exp

from northstar_pipeline.project.to_date import bind_to_date
from northstar_pipeline.sql import PARTIALS_KEPT, create_rows_table, insert_rows, reading_table, union_all
from northstar_pipeline.tree.tree import TreeMetric
from northstar_pipeline.types import METRIC_PARTIALS, CompiledNode, SegmentQuery

CUTS = "_northstar.segment_cuts"
VOLUMES = "_northstar.segment_volumes"
KEPT = "_northstar.segment_keep"
STATE = "_northstar.segment_state"
KEEP_TABLE = "_ns_segment_keep"  # the same name build/dimensions.py compiles into the cut queries
EARLIEST = date(1, 1, 1)

Since = Mapping[str, Mapping[str, date] | None] | None

_CREATE = (
    "CREATE SCHEMA IF NOT EXISTS _northstar",
    f"CREATE TABLE IF NOT EXISTS {CUTS} (metric VARCHAR, dimension VARCHAR, grain VARCHAR, period_start DATE, "
    "value DOUBLE, numerator DOUBLE, denominator DOUBLE, is_to_date BOOLEAN, segment VARCHAR)",
    f"CREATE TABLE IF NOT EXISTS {VOLUMES} (metric VARCHAR, dimension VARCHAR, grain VARCHAR, period_start DATE, "
    "segment VARCHAR, volume BIGINT)",
    f"CREATE TABLE IF NOT EXISTS {KEPT} (dimension VARCHAR, segment VARCHAR)",
    f"CREATE TABLE IF NOT EXISTS {STATE} (metric VARCHAR, dimension VARCHAR, part VARCHAR, fingerprint VARCHAR)",
)

# The top N values of each dimension by volume (ties by value), the rest become '(other)'.
_KEEP_SQL = f"""
CREATE OR REPLACE TEMP TABLE {KEEP_TABLE} AS
SELECT dimension, segment
FROM (SELECT dimension, segment, sum(volume) AS volume FROM _ns_segment_volume GROUP BY ALL)
JOIN _ns_dims USING (dimension)
QUALIFY row_number() OVER (PARTITION BY dimension ORDER BY volume DESC, segment) <= any_value(max_segments)
    OVER (PARTITION BY dimension)
"""

# Dimensions whose kept values differ from the last build's: their stored cuts were guarded otherwise.
_KEEP_CHANGED_SQL = f"""
SELECT DISTINCT dimension FROM (
    (SELECT * FROM {KEEP_TABLE} EXCEPT SELECT * FROM {KEPT})
    UNION ALL
    (SELECT * FROM {KEPT} WHERE dimension IN (SELECT dimension FROM _ns_dims) EXCEPT SELECT * FROM {KEEP_TABLE}))
"""


def run_cuts(con: duckdb.DuckDBPyConnection, cut: list[tuple[TreeMetric, SegmentQuery]], since: Since = None,
             as_of: datetime | None = None) -> tuple[str, ...]:
    """Leave ``_ns_segment_keep`` and the view ``_ns_segment_values`` (metric, dimension, grain, period_start,
    value, numerator, denominator, is_to_date, segment) over the stored cuts, recomputing what ``since`` says.
    Returns the metrics cut from the partials of their full build this run (``_full_cut``).

    ``as_of`` (the manifest's) binds the to-date window of the night queries (``since_sql``)."""
    for statement in _CREATE:
        con.execute(statement)
    state = {(m, d, part): fp for m, d, part, fp in con.execute(f"SELECT * FROM {STATE}").fetchall()}
    fresh: dict[tuple[str, str, str], str] = {}
    metrics = {m.name: m for m, _ in cut}
    queries: dict[str, list[SegmentQuery]] = {}
    for metric, query in cut:
        queries.setdefault(metric.name, []).append(query)
    # A dimension's values are ranked by the rows of the highest metric it cuts (the North Star's when it
    # is cut): the same kept values for every metric.
    rankers: dict[str, list[str]] = {}
    for dimension, metric in {q.dimension: m.name for m, q in reversed(cut)}.items():
        rankers.setdefault(metric, []).append(dimension)
    con.execute("CREATE OR REPLACE TEMP TABLE _ns_segment_volume (dimension VARCHAR, segment VARCHAR, volume HUGEINT)")
    for name, dimensions in rankers.items():
        _volumes(con, metrics[name], [q for q in queries[name] if q.dimension in dimensions], since, state, fresh)
    con.execute(_KEEP_SQL)
    changed = {d for (d,) in con.execute(_KEEP_CHANGED_SQL).fetchall()}
    from_partials: list[str] = []
    selects = [select for name, metric_queries in queries.items()
               for select in _cuts(con, metrics[name], metric_queries, since, state, fresh, changed, as_of,
                                   from_partials)]
    if selects:  # one statement: DuckDB runs the metrics' scans side by side
        con.execute(f"INSERT INTO {CUTS} {union_all(selects).sql('duckdb')}")
    _drop_kept(con)  # read: free them
    pair = [("metric", "VARCHAR"), ("dimension", "VARCHAR")]
    create_rows_table(con, "_ns_cut_pairs", pair, [(m.name, q.dimension) for m, q in cut])
    create_rows_table(con, "_ns_volume_pairs", pair, [(m, d) for m, d, p in fresh if p == "volume"])
    # what is no longer cut (or ranked) is not kept
    con.execute(f"DELETE FROM {CUTS} c WHERE NOT EXISTS (SELECT 1 FROM _ns_cut_pairs p "
                "WHERE p.metric = c.metric AND p.dimension = c.dimension)")
    con.execute(f"DELETE FROM {VOLUMES} v WHERE NOT EXISTS (SELECT 1 FROM _ns_volume_pairs p "
                "WHERE p.metric = v.metric AND p.dimension = v.dimension)")
    con.execute("DROP TABLE _ns_cut_pairs")
    con.execute("DROP TABLE _ns_volume_pairs")
    con.execute(f"DELETE FROM {STATE}")
    insert_rows(con, STATE, ["VARCHAR"] * 4, [[*k, v] for k, v in fresh.items()])  # one statement, not one a row
    con.execute(f"DELETE FROM {KEPT}")
    con.execute(f"INSERT INTO {KEPT} SELECT dimension, segment FROM {KEEP_TABLE}")
    con.execute("CREATE OR REPLACE TEMP VIEW _ns_segment_values AS SELECT metric, dimension, grain, period_start, "
                f"value, numerator, denominator, is_to_date, segment FROM {CUTS}")
    return tuple(from_partials)


def _start(since: Since, metric: str, grain: str) -> date | None:
    """The first period of ``grain`` to recompute for ``metric`` (None: all of them)."""
    grains = since.get(metric) if since is not None else None
    return grains.get(grain) if grains is not None else None


def _volumes(con: duckdb.DuckDBPyConnection, metric: TreeMetric, queries: list[SegmentQuery], since: Since,
             state: dict, fresh: dict) -> None:
    """Fill _ns_segment_volume for the dimensions ``metric`` ranks (stored per period when it is cut in one scan)."""
    dimensions = [q.dimension for q in queries]
    plan = metric.node.segment_cut
    if plan is None:
        for query in queries:
            con.execute("INSERT INTO _ns_segment_volume SELECT $dimension, segment, volume FROM "
                        f"({query.volume_sql})", {"dimension": query.dimension})
        return
    start = _start(since, metric.name, plan.volume_grain)
    reuse = start is not None and all(state.get((metric.name, d, "volume")) == plan.fingerprint for d in dimensions)
    params = {"metric": metric.name, "dimensions": dimensions}
    if reuse:  # periods before start, stored by an earlier build, are kept; rows with no period are recounted
        con.execute(f"DELETE FROM {VOLUMES} WHERE metric = $metric AND list_contains($dimensions, dimension) "
                    "AND (period_start IS NULL OR period_start >= $since)", {**params, "since": start})
        source, source_params = plan.volume_since_sql, {"since": start}
    else:
        con.execute(f"DELETE FROM {VOLUMES} WHERE metric = $metric AND list_contains($dimensions, dimension)",
                    params)
        source, source_params = plan.volume_sql, {}
    con.execute(f"INSERT INTO {VOLUMES} SELECT $metric, dimension, $grain, period_start, segment, volume "
                f"FROM ({source}) WHERE list_contains($dimensions, dimension)",
                {**params, "grain": plan.volume_grain, **source_params})
    con.execute("INSERT INTO _ns_segment_volume SELECT dimension, segment, sum(volume) "
                f"FROM {VOLUMES} WHERE metric = $metric AND list_contains($dimensions, dimension) GROUP BY ALL",
                {"metric": metric.name, "dimensions": dimensions})
    for dimension in dimensions:
        fresh[(metric.name, dimension, "volume")] = plan.fingerprint


def _cuts(con: duckdb.DuckDBPyConnection, metric: TreeMetric, queries: list[SegmentQuery], since: Since,
          state: dict, fresh: dict, changed: set[str], as_of: datetime | None = None,
          from_partials: list[str] | None = None) -> list[exp.Select]:
    """Delete the stored rows ``metric`` recomputes; return the SELECTs that recompute them."""
    plan = metric.node.segment_cut
    name = {"metric": metric.name}
    if plan is None:  # cut per dimension (a distinct count): each dimension's night on its own
        return [_cut_dimension(con, metric.name, query, since, state, fresh, changed, as_of) for query in queries]
    grains = since.get(metric.name) if since is not None else None
    reuse = grains is not None and all(
        state.get((metric.name, d, "cut")) == plan.fingerprint and d not in changed for d in plan.dimensions)
    for dimension in plan.dimensions:
        fresh[(metric.name, dimension, "cut")] = plan.fingerprint
    sql, partials = _full_cut(con, metric.node)
    if partials or not reuse:  # partials: the metric was rebuilt in full this run, every period with it
        con.execute(f"DELETE FROM {CUTS} WHERE metric = $metric", name)
        if partials and from_partials is not None:
            from_partials.append(metric.name)
        return [_stored(metric.name, sql)]
    starts = {g: _start(since, metric.name, g) or EARLIEST for g in plan.grains}
    for grain, start in starts.items():  # the to-date spans are recomputed every build: the as-of moved
        con.execute(f"DELETE FROM {CUTS} WHERE metric = $metric AND grain = $grain "
                    "AND (is_to_date OR period_start IS NULL OR period_start >= $since)",
                    {**name, "grain": grain, "since": start})
    return [_stored(metric.name, _bind(plan.since_sql, starts, as_of))]


def _full_cut(con: duckdb.DuckDBPyConnection, node: CompiledNode) -> tuple[str | exp.Expression, bool]:
    """The metric's whole one-scan cut: from the partials its full build kept this run (engines/partials.py)
    when it kept them, else from its rows."""
    plan = node.segment_cut
    assert plan is not None
    table = _kept(con, node.name)
    if table is None:
        return plan.sql, False
    return reading_table(sqlglot.parse_one(plan.partials_sql, read="duckdb"), METRIC_PARTIALS, table), True


def _drop_kept(con: duckdb.DuckDBPyConnection) -> None:
    if _kept_registry(con):
        for (table,) in con.execute(f"SELECT table_name FROM {PARTIALS_KEPT}").fetchall():
            con.execute(exp.Drop(kind="TABLE", tables=[exp.table_(exp.to_identifier(table, quoted=True))],
                                 exists=True).sql("duckdb"))
        con.execute(f"DROP TABLE {PARTIALS_KEPT}")


def _kept_registry(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?",
                            [PARTIALS_KEPT]).fetchall()[0][0])


def _kept(con: duckdb.DuckDBPyConnection, metric: str) -> str | None:
    """The temp table of the partials the metric's full build kept this run (engines/partials.py), or None."""
    if not _kept_registry(con):
        return None
    rows = con.execute(f"SELECT table_name FROM {PARTIALS_KEPT} WHERE metric = ?", [metric]).fetchall()
    return rows[0][0] if rows else None


def _cut_dimension(con: duckdb.DuckDBPyConnection, metric: str, query: SegmentQuery, since: Since, state: dict,
                   fresh: dict, changed: set[str], as_of: datetime | None = None) -> exp.Select:
    """Delete the stored rows of ``metric`` x ``query.dimension`` that are recomputed; return their SELECT.

    A distinct count does not recombine from partials, but a period's distinct count needs only that
    period's rows: the night's query reads the recomputed periods' rows (build/segment_rows.py)."""
    key = (metric, query.dimension, "cut")
    grains = since.get(metric) if since is not None else None
    reuse = (grains is not None and bool(query.since_sql) and state.get(key) == query.fingerprint
             and query.dimension not in changed)
    fresh[key] = query.fingerprint
    params = {"metric": metric, "dimension": query.dimension}
    if not reuse:
        con.execute(f"DELETE FROM {CUTS} WHERE metric = $metric AND dimension = $dimension", params)
        return _stored(metric, query.sql, query.dimension)
    starts = {g: _start(since, metric, g) or EARLIEST for g in query.grains}
    for grain, start in starts.items():  # the to-date spans are recomputed every build: the as-of moved
        con.execute(f"DELETE FROM {CUTS} WHERE metric = $metric AND dimension = $dimension AND grain = $grain "
                    "AND (is_to_date OR period_start IS NULL OR period_start >= $since)",
                    {**params, "grain": grain, "since": start})
    return _stored(metric, _bind(query.since_sql, starts, as_of), query.dimension)


def _bind(sql: str, starts: Mapping[str, date], as_of: datetime | None = None) -> exp.Expression:
    """``sql`` with each ``$since_<grain>`` replaced by that grain's first recomputed period (a DATE literal),
    and its to-date window by ``as_of``'s (project/to_date.py: build/window_binding.py leaves it to us)."""
    bounds = {f"since_{g}": exp.cast(exp.Literal.string(s.isoformat()), exp.DataType.Type.DATE)
              for g, s in starts.items()}

    def bound(node: exp.Expression) -> exp.Expression:
        return bounds[node.name].copy() if isinstance(node, exp.Placeholder) and node.name in bounds else node

    return bind_to_date(sqlglot.parse_one(sql, read="duckdb").transform(bound, copy=False), as_of)


def _stored(metric: str, query: str | exp.Expression, dimension: str | None = None) -> exp.Select:
    """A cut's rows in the stored table's column order, its metric (and dimension) as literals."""
    source = sqlglot.parse_one(query, read="duckdb") if isinstance(query, str) else query
    return exp.select(
        exp.alias_(exp.Literal.string(metric), "metric"),
        exp.alias_(exp.Literal.string(dimension), "dimension") if dimension else exp.column("dimension"),
        *_CUT_COLUMNS).from_(source.subquery("c", copy=False), copy=False)


_CUT_COLUMNS = ("grain", "period_start", "value", "numerator", "denominator", "is_to_date", "segment")
