"""One scan per cut metric: every dimension, grain and to-date span of it at once.

build/dimensions.py rewrites a metric's query once per dimension and grain, each a scan and an
aggregation of its FROM. When the metric's renderings differ only in what period() returns (one
template rendered per grain and per to-date span) and its aggregates recombine exactly from partial
ones (COUNT, SUM, MIN, MAX, with FILTER), the same cuts come from one query: the rows are aggregated
once per (period of every rendering, guarded segment of every dimension), and those partials are
rolled up to each (rendering, dimension) with GROUP BY GROUPING SETS, GROUPING() telling which set a
row belongs to. Counts are summed as integers; the ratio is recomputed from its recombined
numerator and denominator, never averaged.

Anything else keeps the per-dimension queries (``compile_segment_cut`` returns None): a distinct
count or another aggregate that does not recombine, HAVING, QUALIFY, window functions, DISTINCT,
LIMIT, ROLLUP or CUBE, a difference between renderings outside period(), a reference to the
period_start alias, or more segment combinations than ``MAX_SEGMENT_COMBINATIONS``. sqlglot ASTs only.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

from sqlglot import exp

from northstar_pipeline.build.dimensions import _guarded, _segment_value, guard_value, parse_dimension
from northstar_pipeline.engines.partial_aggregates import (NotDecomposable, grouping_of, inside_to_date_spans,
                                                           metric_columns, period_rows, period_shape, recombined,
                                                           row_prefilter, since_bound, split_aggregates)
from northstar_pipeline.errors import CompileError
from northstar_pipeline.types import (METRIC_PARTIALS, DimensionDef, Grain, MetricConfig, RenderedNode, RenderedQuery,
                                     SegmentCut)

_PERIOD = "period_start"
MAX_SEGMENT_COMBINATIONS = 4096  # segments of all dimensions together, per period: the partials' bound
_COARSE = {g: i for i, g in enumerate(Grain)}  # the enum runs from the finest grain to the coarsest


def compile_segment_cut(node: RenderedNode, selects: list[tuple[RenderedQuery, exp.Query]],
                        dimensions: tuple[DimensionDef, ...],
                        describe: Callable[[str], object] | None = None) -> SegmentCut | None:
    """The metric's cuts by all its dimensions in one query, or None when its renderings do not allow it."""
    config = node.config
    if not isinstance(config, MetricConfig) or not config.dimensions or not selects:
        return None
    declared = {d.name: d for d in dimensions}
    dims = [declared[name] for name in config.dimensions if name in declared]
    if len(dims) != len(config.dimensions):
        return None
    parts: list[tuple[RenderedQuery, exp.Expression]] = []
    skeleton = None
    for query, ast in selects:
        shape = period_shape(ast)
        if shape is None or query.grain is None:
            return None
        if skeleton is None:
            skeleton = shape[0]
        elif shape[0] != skeleton:  # differs in more than period(): each rendering is its own query
            return None
        parts.append((query, shape[1]))
    periods = [p for _, p in parts]
    if len({p.sql("duckdb") for p in periods}) != len(periods):  # GROUPING() could not tell them apart
        return None
    full = [(q, p) for q, p in parts if not q.to_date]
    if not full:
        return None
    expressions = [parse_dimension(d.expression, d.name, d.path, d.line) for d in dims]
    if len({e.sql("duckdb") for e in expressions}) != len(expressions):  # two dimensions, one grouping set
        return None
    if math.prod(d.max_segments + 1 for d in dims) > MAX_SEGMENT_COMBINATIONS:
        return None  # the partial aggregates would hold too many rows per period: one query per dimension
    outer = selects[0][1]
    try:
        cut = _cut(outer, parts, dims, expressions, since=False)
    except NotDecomposable:  # e.g. count(distinct ...): one query per dimension
        return None
    since = _cut(outer, parts, dims, expressions, since=True)
    coarsest = max(full, key=lambda qp: _COARSE[qp[0].grain])
    volume = _volume(outer, coarsest[1], dims, expressions, since=False)
    volume_since = _volume(outer, coarsest[1], dims, expressions, since=True)
    definition = _cut(outer, full, dims, expressions, since=False).sql("duckdb") + volume.sql("duckdb")
    result = SegmentCut(
        dimensions=tuple(d.name for d in dims), grains=tuple(q.grain.value for q, _ in full),
        sql=cut.sql("duckdb"), since_sql=since.sql("duckdb"),
        partials_sql=_cut(outer, parts, dims, expressions, since=False, from_partials=True).sql("duckdb"),
        value_sql=tuple(e.sql("duckdb") for e in expressions),
        volume_grain=coarsest[0].grain.value, volume_sql=volume.sql("duckdb"),
        volume_since_sql=volume_since.sql("duckdb"),
        fingerprint=hashlib.sha256(definition.encode()).hexdigest()[:16])
    if describe is not None:
        try:  # a shape DuckDB refuses (e.g. a bare column outside the aggregates): the per-dimension queries
            describe(result.sql)
            describe(result.volume_sql)
        except CompileError:
            return None
    return result


def _cut(outer: exp.Select, parts: list[tuple[RenderedQuery, exp.Expression]], dims: list[DimensionDef],
         expressions: list[exp.Expression], *, since: bool, from_partials: bool = False) -> exp.Select:
    """Aggregate the rows once per (period of every rendering, segment of every dimension), then roll the
    partials up to each (rendering, dimension) with GROUPING SETS: one scan of the metric's FROM.

    ``from_partials``: read the metric's own one-scan partials instead of its FROM (engines/metric_scan.py:
    ``METRIC_PARTIALS`` with the raw dimension values ``_ns_v<j>``), guarded and recombined per segment."""
    segments = [_guarded(e, d) for e, d in zip(expressions, dims)]
    periods = [p for _, p in parts]
    names = {n.lower() for n in outer.named_selects}
    others, partials = split_aggregates([e for e in outer.expressions if e.alias_or_name.lower() != _PERIOD])
    if from_partials:
        pre = exp.select(*(exp.alias_(exp.column(f"_ns_p{i}"), f"_ns_p{i}") for i in range(len(periods))),
                         *(exp.alias_(guard_value(_segment_value(exp.column(f"_ns_v{j}")), d), f"_ns_s{j}")
                           for j, d in enumerate(dims)),
                         *(exp.alias_(recombined(p), p.alias) for p in partials)).from_(METRIC_PARTIALS)
    else:
        pre = outer.copy()
        pre.set("expressions", [*(exp.alias_(p.copy(), f"_ns_p{i}") for i, p in enumerate(periods)),
                                *(exp.alias_(s, f"_ns_s{j}") for j, s in enumerate(segments)), *partials])
    pre.set("group", exp.Group(all=True))
    pre.set("order", None)
    if since:  # the rows of recomputed periods (and of rows with no period) and the to-date spans
        kept = [p.copy().is_(exp.null()).not_() if q.to_date
                else exp.or_(exp.GTE(this=p.copy(), expression=since_bound(q.grain.value)), p.copy().is_(exp.null()))
                for q, p in parts]
        pre.where(exp.paren(exp.or_(*kept)), copy=False)
        prefilter = row_prefilter([period_rows(p, None if q.to_date else since_bound(q.grain.value)) for q, p in parts])
        if prefilter is not None:  # a range the scan prunes row groups by (build/segment_rows.py)
            pre.where(prefilter, copy=False)
    period_keys = [exp.column(f"_ns_p{i}") for i in range(len(periods))]
    segment_keys = [exp.column(f"_ns_s{j}") for j in range(len(segments))]

    def case(values: list[exp.Expression], keys: list[exp.Expression]) -> exp.Case:
        return exp.Case(ifs=[exp.If(this=grouping_of(k), true=v) for k, v in zip(keys, values)])

    rollup = exp.select(
        *others,
        exp.alias_(case([exp.Literal.string(q.grain.value) for q, _ in parts], period_keys), "_ns_grain"),
        exp.alias_(case([exp.Boolean(this=q.to_date) for q, _ in parts], period_keys), "_ns_is_to_date"),
        exp.alias_(case([exp.cast(k.copy(), exp.DataType.Type.DATE) for k in period_keys], period_keys),
                   "_ns_period_start"),
        exp.alias_(case([exp.Literal.string(d.name) for d in dims], segment_keys), "_ns_dimension"),
        exp.alias_(case([k.copy() for k in segment_keys], segment_keys), "_ns_segment"),
    ).from_(pre.subquery("_ns_pre", copy=False), copy=False)
    rollup.set("group", exp.Group(expressions=[exp.GroupingSets(expressions=[
        exp.Tuple(expressions=[p.copy(), s.copy()]) for p in period_keys for s in segment_keys])]))
    m = "m"
    projection = [*metric_columns(names, m), exp.alias_(exp.column("_ns_dimension", m), "dimension"),
                  exp.alias_(exp.column("_ns_segment", m), "segment")]
    keep = inside_to_date_spans(m)
    if since:
        grains = sorted({q.grain.value for q, _ in parts if not q.to_date})
        bound = exp.Case(this=exp.column("_ns_grain", m),
                         ifs=[exp.If(this=exp.Literal.string(g), true=since_bound(g)) for g in grains])
        keep = exp.and_(keep, exp.or_(exp.column("_ns_is_to_date", m), exp.column("_ns_period_start", m).is_(exp.null()),
                                      exp.GTE(this=exp.column("_ns_period_start", m), expression=bound)))
    return exp.select(*projection).from_(rollup.subquery(m, copy=False), copy=False).where(keep, copy=False)


def _volume(outer: exp.Select, period: exp.Expression, dims: list[DimensionDef], expressions: list[exp.Expression],
            *, since: bool) -> exp.Select:
    """Rows of the metric's FROM per period (of one grain) and raw value of each dimension: what the guard ranks."""
    values = [_segment_value(e) for e in expressions]
    volume = outer.copy()
    volume.set("expressions", [
        exp.alias_(exp.cast(period.copy(), exp.DataType.Type.DATE), "period_start"),
        exp.alias_(exp.Case(ifs=[exp.If(this=grouping_of(v), true=exp.Literal.string(d.name))
                                 for v, d in zip(values, dims)]), "dimension"),
        exp.alias_(exp.Case(ifs=[exp.If(this=grouping_of(v), true=v.copy()) for v in values]), "segment"),
        exp.alias_(exp.Count(this=exp.Star()), "volume"),
    ])
    volume.set("group", exp.Group(expressions=[exp.GroupingSets(expressions=[
        exp.Tuple(expressions=[period.copy(), v.copy()]) for v in values])]))
    volume.set("order", None)
    if since:
        grain_since = exp.Placeholder(this="since")
        volume.where(exp.paren(exp.or_(exp.GTE(this=period.copy(), expression=exp.cast(grain_since, exp.DataType.Type.DATE)),
                                       period.copy().is_(exp.null()))), copy=False)
        prefilter = row_prefilter([period_rows(period, exp.cast(grain_since.copy(), exp.DataType.Type.DATE))])
        if prefilter is not None:
            volume.where(prefilter, copy=False)
    return volume
