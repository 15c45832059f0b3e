"""One scan per metric: every rendering of its union, and the days its data covers, from one aggregation.

A metric's table is the union of its renderings (build/compiling.py ``_metric_union``): each grain,
each grain's to-date span, and beside them the day rendering whose first and last period_start are
the days its data covers (engines/coverage.py). Each is a scan and an aggregation of the same rows,
differing only in what period() returns. When they differ in nothing else and the aggregates
recombine from partial ones (engines/partial_aggregates.py), the rows are aggregated once per
(period of every rendering, day, raw value of each dimension the metric is cut by) into a temp table
of partials (a few rows per day and value), rolled up to each rendering with GROUPING SETS, and the
coverage is the min and max day of the partials (the day rendering has a row for exactly the days
some row falls on, after the WHERE). The segment step of the same build cuts the kept partials
instead of the rows (tree/segment_store.py, SegmentCut.partials_sql). The partials are kept between
builds (engines/stored_partials.py): a night brings them up to date from the days its delta touches.

Counts are summed as integers and the value is recomputed from the recombined aggregates, so a ratio
is never averaged; a SUM of floating-point values may differ from the union's in its last bits. The
scan is derived here, at run time, from the metric's bound union (``CompiledNode.ast``): compiling
1,000 metrics costs nothing more. Anything else keeps the union (``metric_scan`` returns None): a
distinct count, AVG or another aggregate that does not recombine, a subquery in the projection, CTEs
or a FROM that holds period(), HAVING, QUALIFY, windows, DISTINCT, LIMIT, renderings that differ
elsewhere. sqlglot ASTs only.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from northstar_pipeline.engines.partial_aggregates import (NotDecomposable, grouping_of, inside_to_date_spans,
                                                           metric_columns, period_shape, split_aggregates)
from northstar_pipeline.types import METRIC_PARTIALS, CompiledNode

DAY = "_ns_day"


@dataclass(frozen=True)
class MetricScan:
    partials: exp.Select  # per (period of every rendering, day, raw dimension value): the partial aggregates
    rollup: exp.Select  # the metric table's rows from METRIC_PARTIALS
    day_key: str  # the partials' column of the coverage's day ("" when the coverage is not among them)
    dimensions: tuple[str, ...]  # their raw values (``_ns_v<j>``) are in the partials: the cuts read them
    renderings: tuple[tuple[str, bool], ...]  # (grain, is_to_date) of ``_ns_p<i>``


def union_parts(query: exp.Query) -> list[exp.Select]:
    """The parts of the compiled metric union (build/compiling.py _metric_union), in order."""
    if isinstance(query, exp.Union):
        return [*union_parts(query.this), *union_parts(query.expression)]
    return [query]  # type: ignore[list-item]


def part_shape(part: exp.Select) -> tuple[str, bool, exp.Query]:
    """(grain, is_to_date, the grain's own query) of one union part."""
    values = {e.alias: e.this for e in part.expressions if isinstance(e, exp.Alias)}
    grain = values["grain"].name
    to_date = values["is_to_date"].this is True or str(values["is_to_date"].this).lower() == "true"
    return grain, to_date, part.args["from_"].this.this


def metric_scan(node: CompiledNode) -> MetricScan | None:
    """The metric's union and coverage in one scan, or None when its renderings do not allow it."""
    query = node.ast if node.ast is not None else sqlglot.parse_one(node.sql, read="duckdb")
    renderings = [part_shape(part) for part in union_parts(query)]
    shapes = [period_shape(inner) for _, _, inner in renderings]
    if not shapes or any(s is None for s in shapes):
        return None
    skeleton = shapes[0][0]  # type: ignore[index]
    if any(s[0] != skeleton for s in shapes[1:]):  # type: ignore[index]
        return None  # they differ in more than period(): each rendering is its own query
    periods = [s[1] for s in shapes]  # type: ignore[index]
    day = period_shape(sqlglot.parse_one(node.coverage_sql, read="duckdb")) if node.coverage_sql else None
    day_period = day[1] if day is not None and day[0] == skeleton else None
    keys = [*periods, *([day_period] if day_period is not None else [])]
    if len({k.sql("duckdb") for k in keys}) != len(keys):  # GROUPING() could not tell two renderings apart
        return None
    outer = renderings[0][2]
    try:
        others, partials = split_aggregates([e for e in outer.expressions if e.alias_or_name.lower() != "period_start"])
    except NotDecomposable:
        return None
    cut = node.segment_cut
    values = [sqlglot.parse_one(v, read="duckdb") for v in cut.value_sql] if cut is not None else []
    pre = outer.copy()
    pre.set("expressions", [*(exp.alias_(p.copy(), f"_ns_p{i}") for i, p in enumerate(periods)),
                            *([exp.alias_(day_period.copy(), DAY)] if day_period is not None else []),
                            *(exp.alias_(v, f"_ns_v{j}") for j, v in enumerate(values)), *partials])
    pre.set("group", exp.Group(all=True))
    pre.set("order", None)
    shape = tuple((g, to_date) for g, to_date, _ in renderings)
    return MetricScan(pre, _rollup(outer, shape, others), DAY if day_period is not None else "",
                      cut.dimensions if cut is not None else (), shape)


def coverage_rows(coverage_sql: str) -> exp.Select | None:
    """The coverage's days without its aggregates, when its day rendering is one grouped SELECT: a group per
    day some row falls on (no HAVING, DISTINCT or window), so the first and last day are those of the rows."""
    shape = period_shape(sqlglot.parse_one(coverage_sql, read="duckdb")) if coverage_sql else None
    if shape is None:
        return None
    rows, day = shape
    rows.set("expressions", [exp.alias_(day.copy(), "period_start")])
    return rows


def _rollup(outer: exp.Select, renderings: tuple[tuple[str, bool], ...], others: list[exp.Expression]) -> exp.Select:
    """The metric table's rows (as the union's columns and types) from the partials, per rendering."""
    names = {n.lower() for n in outer.named_selects}
    keys = [exp.column(f"_ns_p{i}") for i in range(len(renderings))]

    def case(values: list[exp.Expression]) -> exp.Case:
        return exp.Case(ifs=[exp.If(this=grouping_of(k), true=v) for k, v in zip(keys, values)])

    rollup = exp.select(
        *(e.copy() for e in others),
        exp.alias_(case([exp.Literal.string(g) for g, _ in renderings]), "_ns_grain"),
        exp.alias_(case([exp.Boolean(this=to_date) for _, to_date in renderings]), "_ns_is_to_date"),
        exp.alias_(case([exp.cast(k.copy(), exp.DataType.Type.DATE) for k in keys]), "_ns_period_start"),
    ).from_(exp.table_(METRIC_PARTIALS, alias="_ns_pre"))
    rollup.set("group", exp.Group(expressions=[exp.GroupingSets(expressions=[
        exp.Tuple(expressions=[k.copy()]) for k in keys])]))
    return exp.select(*metric_columns(names, "m")).from_(rollup.subquery("m", copy=False), copy=False).where(
        inside_to_date_spans("m"), copy=False)
