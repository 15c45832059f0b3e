"""The rows a nightly segment cut reads: a range on the column period() truncates, so old row groups are skipped.

A nightly cut keeps the rows whose period is on or after the first recomputed one
(``period >= $since_<grain>``), but DuckDB cannot skip a row group by a filter on
``CAST(DATE_TRUNC('week', col) AS DATE)``. The column itself bounds it: a period's start is at or before
every one of its rows (``DATE_TRUNC(col) <= col``), and a to-date rendering's period is set only for
rows inside its span (``CASE WHEN col >= low AND col <= high THEN ...``). So ``col >= least(bounds) OR
col IS NULL`` is implied by the cut's own filter, never changes its result, and is a range the scan
prunes with its zone maps: a night reads the recomputed periods' rows, not the history's.

Only the two shapes ``period()`` renders (build/render.py) are recognised; anything else (a metric's
own bucketing expression) gets no prefilter and reads every row, as before. sqlglot ASTs only.
"""

from __future__ import annotations

from sqlglot import exp

from northstar_pipeline.engines.partial_aggregates import period_rows, row_prefilter, since_bound


_NOT_PER_PERIOD = ("qualify", "windows", "limit", "offset", "connect", "prewhere")


def period_of(outer: exp.Select) -> exp.Expression | None:
    """The expression ``outer`` returns as period_start when each of its rows is computed from the rows of
    that one period only (it is a GROUP BY key; no window, QUALIFY or LIMIT across periods), else None:
    then filtering the rows by period leaves the kept periods' rows exactly as a full cut computes them."""
    if not isinstance(outer, exp.Select) or any(outer.args.get(k) for k in _NOT_PER_PERIOD):
        return None
    named = [e for e in outer.expressions if e.alias_or_name.lower() == "period_start"]
    if len(named) != 1 or not isinstance(named[0], exp.Alias):
        return None
    index = outer.expressions.index(named[0])
    period = named[0].this
    if period.find(exp.AggFunc, exp.Window, exp.Query) is not None or any(
            e.find(exp.Window) is not None for e in outer.expressions):
        return None
    group = outer.args.get("group")
    if group is None or any(group.args.get(k) for k in ("grouping_sets", "cube", "rollup", "totals")):
        return None
    if group.args.get("all"):
        return period
    for key in group.expressions:
        if (isinstance(key, exp.Literal) and key.is_int and int(key.this) == index + 1) or key == period or (
                isinstance(key, exp.Column) and not key.table and key.name.lower() == "period_start"):
            return period
    return None


def since_rows(cut: exp.Select, period: exp.Expression, grain: str | None) -> exp.Select:
    """``cut`` restricted to the rows a night recomputes: periods on or after ``$since_<grain>`` and rows with
    no period for a full rendering (``grain``), the prefilter alone for a to-date one (None)."""
    night = cut.copy()
    since = since_bound(grain) if grain is not None else None
    if since is not None:
        night.where(exp.paren(exp.or_(exp.GTE(this=period.copy(), expression=since.copy()),
                                      period.copy().is_(exp.null()))), copy=False)
    prefilter = row_prefilter([period_rows(period, since)])
    if prefilter is not None:
        night.where(prefilter, copy=False)
    return night
