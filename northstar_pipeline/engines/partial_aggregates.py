"""The SQL shape of partial aggregates: what lets a metric's renderings come from one scan.

A metric's renderings (a grain, a to-date span, the day of its coverage) are one outer SELECT grouped
by what period() returns (``period_shape``); its aggregates recombine exactly from partial ones when
they are COUNT, SUM, MIN or MAX, with or without FILTER (``split_aggregates``, ``recombined``). The
one-scan segment cut (build/segment_cut.py) and the one-scan metric build (engines/metric_scan.py)
are both made of these, and a night reads only the rows of its periods by a range on the column
period() truncates (``period_rows``, ``row_prefilter``). sqlglot ASTs only.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

_UNSUPPORTED = ("having", "qualify", "windows", "distinct", "limit", "offset", "connect", "prewhere")
_PERIOD = "period_start"


def period_shape(ast: exp.Query) -> tuple[exp.Select, exp.Expression] | None:
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
    if any(e.find(exp.Query, exp.Subquery) is not None for e in others):
        return None  # a subquery's aggregates are over its own rows, not partials of these
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


def grouping_of(key: exp.Expression) -> exp.Expression:
    return exp.Grouping(expressions=[key.copy()]).eq(0)


class NotDecomposable(Exception):
    """An aggregate whose per-set value cannot be recombined from partial aggregates."""


# Partial aggregate -> how the partials of one grouping set recombine (exact: integer counts are summed).
_COMBINE: dict[type, Callable[[exp.Expression], exp.Expression]] = {
    exp.Count: lambda c: exp.cast(exp.Sum(this=c), exp.DataType.Type.BIGINT),
    exp.Sum: lambda c: exp.Sum(this=c),
    exp.Min: lambda c: exp.Min(this=c),
    exp.Max: lambda c: exp.Max(this=c),
}


def recombined(partial: exp.Alias) -> exp.Expression:
    """The partial aggregate ``partial`` (aliased by ``split_aggregates``) recombined over its own column."""
    agg = partial.this.this if isinstance(partial.this, exp.Filter) else partial.this
    return _COMBINE[type(agg)](exp.column(partial.alias))


def split_aggregates(others: list[exp.Expression]) -> tuple[list[exp.Expression], list[exp.Expression]]:
    """(the projections over recombined partials, the partial aggregates); raise NotDecomposable."""
    partials: dict[str, exp.Expression] = {}  # by SQL: value and numerator often share an aggregate

    def combine(node: exp.Expression) -> exp.Expression:
        agg = node.this if isinstance(node, exp.Filter) else node
        if not isinstance(agg, exp.AggFunc):
            return node
        if type(agg) not in _COMBINE or agg.find(exp.Distinct) is not None or agg.find(exp.AggFunc) is not agg:
            raise NotDecomposable
        text = node.sql("duckdb")
        if text not in partials:
            partials[text] = exp.alias_(node.copy(), f"_ns_a{len(partials)}")
        return _COMBINE[type(agg)](exp.column(partials[text].alias, "_ns_pre"))

    rewritten = [e.copy().transform(combine, copy=False) for e in others]
    return rewritten, list(partials.values())


def metric_columns(names: set[str], m: str) -> list[exp.Expression]:
    """grain, period_start, value, numerator, denominator, is_to_date as a metric table holds them, from a
    roll-up ``m`` with the ``_ns_grain``, ``_ns_period_start`` and ``_ns_is_to_date`` columns."""
    projection = [exp.alias_(exp.column("_ns_grain", m), "grain"),
                  exp.alias_(exp.column("_ns_period_start", m), "period_start"),
                  exp.alias_(exp.cast(exp.column("value", m), exp.DataType.Type.DOUBLE), "value")]
    for name in ("numerator", "denominator"):
        part = exp.column(name, m) if name in names else exp.null()
        projection.append(exp.alias_(exp.cast(part, exp.DataType.Type.DOUBLE), name))
    return [*projection, exp.alias_(exp.column("_ns_is_to_date", m), "is_to_date")]


def inside_to_date_spans(m: str) -> exp.Expression:
    """A to-date rendering groups the rows outside its span under NULL: those are not a row (as in the union)."""
    return exp.not_(exp.and_(exp.column("_ns_is_to_date", m), exp.column("_ns_period_start", m).is_(exp.null())))


def since_bound(grain: str) -> exp.Expression:
    """The first recomputed period of ``grain``, a placeholder the build binds (``$since_<grain>``)."""
    return exp.cast(exp.Placeholder(this=f"since_{grain}"), exp.DataType.Type.DATE)


def period_rows(period: exp.Expression, since: exp.Expression | None) -> tuple[exp.Expression, exp.Expression] | None:
    """(the column ``period`` reads, the lowest value a row with a kept period can have), or None.

    ``since`` is the first kept period of a full rendering; None for a to-date rendering (its span's start).
    """
    if since is not None:
        if isinstance(period, exp.Cast) and isinstance(period.this, (exp.TimestampTrunc, exp.DateTrunc)) \
                and isinstance(period.this.this, exp.Column):
            return period.this.this, since
        return None
    bounds = to_date_bounds(period)
    return (bounds[0], bounds[1]) if bounds is not None else None


def to_date_bounds(period: exp.Expression) -> tuple[exp.Expression, exp.Expression, exp.Expression,
                                                    exp.Expression] | None:
    """(column, start, inclusive end, the period) of a to-date rendering's
    ``CASE WHEN col >= start AND col <= end THEN period END``, or None for another expression."""
    ifs = period.args.get("ifs") if isinstance(period, exp.Case) else None
    if not ifs or len(ifs) != 1 or period.args.get("default") is not None:
        return None
    inside = ifs[0].this
    if isinstance(inside, exp.And) and isinstance(inside.this, exp.GTE) and isinstance(inside.expression, exp.LTE) \
            and isinstance(inside.this.this, exp.Column) and inside.this.this == inside.expression.this:
        return inside.this.this, inside.this.expression, inside.expression.expression, ifs[0].args["true"]
    return None


def row_prefilter(bounds: list[tuple[exp.Expression, exp.Expression] | None]) -> exp.Expression | None:
    """``col >= least(lows) OR col IS NULL`` over every rendering's (column, low), or None when one has no
    bound or they read different columns (no single range covers them)."""
    if not bounds or any(b is None for b in bounds):
        return None
    columns = {b[0].sql("duckdb") for b in bounds if b is not None}
    if len(columns) != 1:
        return None
    column = bounds[0][0]  # type: ignore[index]
    lows = [b[1].copy() for b in bounds if b is not None]
    low = lows[0] if len(lows) == 1 else exp.func("least", *lows)
    return exp.paren(exp.or_(exp.GTE(this=column.copy(), expression=low), column.copy().is_(exp.null())))
