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

from northstar_pipeline.build.dimensions import _guarded, _segment_value, parse_dimension
from northstar_pipeline.build.segment_rows import period_rows, row_prefilter
from northstar_pipeline.errors import CompileError
from northstar_pipeline.types import DimensionDef, Grain, MetricConfig, RenderedNode, RenderedQuery, SegmentCut

_UNSUPPORTED = ("having", "qualify", "windows", "distinct", "limit", "offset", "connect", "prewhere")
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
        shape = _period_shape(ast)
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
    except _NotDecomposable:  # e.g. count(distinct ...): one query per dimension
        return None
    since = _cut(outer, parts, dims, expressions, since=True)
    coarsest = max(full, key=lambda qp: _COARSE[qp[0].grain])
    volume = _volume(outer, coarsest[1], dims, expressions, since=False)
    volume_since = _volume(outer, coarsest[1], dims, expressions, since=True)
    definition = _cut(outer, full, dims, expressions, since=False).sql("duckdb") + volume.sql("duckdb")
    result = SegmentCut(
        dimensions=tuple(d.name for d in dims), grains=tuple(q.grain.value for q, _ in full),
        sql=cut.sql("duckdb"), since_sql=since.sql("duckdb"),
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


def _period_shape(ast: exp.Query) -> tuple[exp.Select, exp.Expression] | None:
    """(the outer SELECT with its period expression replaced by a placeholder, that expression), or None."""
    if not isinstance(ast, exp.Select) or any(ast.args.get(k) for k in _UNSUPPORTED):
        return None
    group = ast.args.get("group")
    if group is None or any(group.args.get(k) for k in ("grouping_sets", "cube", "rollup", "totals")):
        return None
    named = [i for i, e in enumerate(ast.expressions) if e.alias_or_name.lower() == _PERIOD]
    if len(named) != 1 or not isinstance(ast.expressions[named[0]], exp.Alias):
        return None
    index = named[0]
    period = ast.expressions[index].this
    if period.find(exp.AggFunc, exp.Window, exp.Query) is not None:
        return None
    others = [e for i, e in enumerate(ast.expressions) if i != index]
    for other in [*others, ast.args.get("where")]:
        if other is None:
            continue
        if other.find(exp.Window) is not None or any(
                c.name.lower() == _PERIOD and not c.table for c in other.find_all(exp.Column)):
            return None  # a window over the grouped rows, or a reference to the alias: not a grouping set
    if group.args.get("all"):
        if not all(e.find(exp.AggFunc) for e in others):
            return None
    else:
        for key in group.expressions:
            positional = isinstance(key, exp.Literal) and key.is_int and int(key.this) == index + 1
            alias = isinstance(key, exp.Column) and not key.table and key.name.lower() == _PERIOD and not any(
                c.name.lower() == _PERIOD for c in period.find_all(exp.Column))
            if not (positional or alias or key == period):
                return None
    skeleton = ast.copy()
    skeleton.expressions[index].set("this", exp.column("_ns_period"))
    skeleton.set("group", None)
    skeleton.set("order", None)
    return skeleton, period


def _grouping(key: exp.Expression) -> exp.Expression:
    return exp.Grouping(expressions=[key.copy()]).eq(0)


def _since(grain: str) -> exp.Expression:
    return exp.cast(exp.Placeholder(this=f"since_{grain}"), exp.DataType.Type.DATE)


class _NotDecomposable(Exception):
    """An aggregate whose per-set value cannot be recombined from partial aggregates."""


# Partial aggregate -> how the partials of one grouping set recombine (exact: integer counts are summed).
_COMBINE: dict[type, Callable[[exp.Expression], exp.Expression]] = {
    exp.Count: lambda c: exp.cast(exp.Sum(this=c), exp.DataType.Type.BIGINT),
    exp.Sum: lambda c: exp.Sum(this=c),
    exp.Min: lambda c: exp.Min(this=c),
    exp.Max: lambda c: exp.Max(this=c),
}


def _split_aggregates(others: list[exp.Expression]) -> tuple[list[exp.Expression], list[exp.Expression]]:
    """(the projections over recombined partials, the partial aggregates); raise _NotDecomposable."""
    partials: dict[str, exp.Expression] = {}  # by SQL: value and numerator often share an aggregate

    def combine(node: exp.Expression) -> exp.Expression:
        agg = node.this if isinstance(node, exp.Filter) else node
        if not isinstance(agg, exp.AggFunc):
            return node
        if type(agg) not in _COMBINE or agg.find(exp.Distinct) is not None or agg.find(exp.AggFunc) is not agg:
            raise _NotDecomposable
        text = node.sql("duckdb")
        if text not in partials:
            partials[text] = exp.alias_(node.copy(), f"_ns_a{len(partials)}")
        return _COMBINE[type(agg)](exp.column(partials[text].alias, "_ns_pre"))

    rewritten = [e.copy().transform(combine, copy=False) for e in others]
    return rewritten, list(partials.values())


def _cut(outer: exp.Select, parts: list[tuple[RenderedQuery, exp.Expression]], dims: list[DimensionDef],
         expressions: list[exp.Expression], *, since: bool) -> exp.Select:
    """Aggregate the rows once per (period of every rendering, segment of every dimension), then roll the
    partials up to each (rendering, dimension) with GROUPING SETS: one scan of the metric's FROM."""
    segments = [_guarded(e, d) for e, d in zip(expressions, dims)]
    periods = [p for _, p in parts]
    names = {n.lower() for n in outer.named_selects}
    others, partials = _split_aggregates([e for e in outer.expressions if e.alias_or_name.lower() != _PERIOD])
    pre = outer.copy()
    pre.set("expressions", [*(exp.alias_(p.copy(), f"_ns_p{i}") for i, p in enumerate(periods)),
                            *(exp.alias_(s, f"_ns_s{j}") for j, s in enumerate(segments)), *partials])
    pre.set("group", exp.Group(all=True))
    pre.set("order", None)
    if since:  # the rows of recomputed periods (and of rows with no period) and the to-date spans
        kept = [p.copy().is_(exp.null()).not_() if q.to_date
                else exp.or_(exp.GTE(this=p.copy(), expression=_since(q.grain.value)), p.copy().is_(exp.null()))
                for q, p in parts]
        pre.where(exp.paren(exp.or_(*kept)), copy=False)
        prefilter = row_prefilter([period_rows(p, None if q.to_date else _since(q.grain.value)) for q, p in parts])
        if prefilter is not None:  # a range the scan prunes row groups by (build/segment_rows.py)
            pre.where(prefilter, copy=False)
    period_keys = [exp.column(f"_ns_p{i}") for i in range(len(periods))]
    segment_keys = [exp.column(f"_ns_s{j}") for j in range(len(segments))]

    def case(values: list[exp.Expression], keys: list[exp.Expression]) -> exp.Case:
        return exp.Case(ifs=[exp.If(this=_grouping(k), true=v) for k, v in zip(keys, values)])

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
    projection = [exp.alias_(exp.column("_ns_grain", m), "grain"),
                  exp.alias_(exp.column("_ns_period_start", m), "period_start"),
                  exp.alias_(exp.cast(exp.column("value", m), exp.DataType.Type.DOUBLE), "value")]
    for name in ("numerator", "denominator"):
        part = exp.column(name, m) if name in names else exp.null()
        projection.append(exp.alias_(exp.cast(part, exp.DataType.Type.DOUBLE), name))
    projection += [exp.alias_(exp.column("_ns_is_to_date", m), "is_to_date"),
                   exp.alias_(exp.column("_ns_dimension", m), "dimension"),
                   exp.alias_(exp.column("_ns_segment", m), "segment")]
    # A to-date rendering groups the rows outside its span under NULL: dropped, as in the per-dimension cut.
    keep = exp.not_(exp.and_(exp.column("_ns_is_to_date", m), exp.column("_ns_period_start", m).is_(exp.null())))
    if since:
        grains = sorted({q.grain.value for q, _ in parts if not q.to_date})
        bound = exp.Case(this=exp.column("_ns_grain", m),
                         ifs=[exp.If(this=exp.Literal.string(g), true=_since(g)) for g in grains])
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
        exp.alias_(exp.Case(ifs=[exp.If(this=_grouping(v), true=exp.Literal.string(d.name))
                                 for v, d in zip(values, dims)]), "dimension"),
        exp.alias_(exp.Case(ifs=[exp.If(this=_grouping(v), true=v.copy()) for v in values]), "segment"),
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
