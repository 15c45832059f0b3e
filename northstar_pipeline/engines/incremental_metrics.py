"""Incremental metrics: recompute only the periods the run's delta touches.

A metric's table holds, per grain, one row per period from that grain's query, plus the to-date rows
(the previous period's elapsed span). A grain query is *period-local* when each output row depends
only on the input rows of its own period, which is checked on its sqlglot AST:

* every SELECT that calls period(x) selects it AS period_start, groups by it, reads exactly one ref
  (no CTE, join, subquery, window function, HAVING, DISTINCT or LIMIT);
* the query is one such SELECT, or an outer SELECT over such CTEs that only joins them ON
  period_start = period_start, with no aggregate, window, GROUP BY or subquery (no set operation),
  or an outer SELECT that aggregates ONE such CTE (or derived table) grouped by its period_start alone
  (no join, window, HAVING, QUALIFY, DISTINCT, LIMIT or other subquery): the CTE may group by
  period_start and other keys.

Then a row of period P changes only if some input row of P changed. With the delta of each input
(engines/delta.py: old rows and new rows), C_g = the earliest period of grain g a delta row falls in,
and the rows of grain g from C_g on are deleted and recomputed by the same query with ``x >= C_g``
added to each period-calling SELECT's WHERE (C_g is a period start, so x >= C_g <=> period(x) >= C_g,
and DuckDB's zone maps skip the older row groups). No delta row: nothing is recomputed for g. The
to-date rows depend on the as-of: they are always recomputed (filtered to their span), so a new
as-of is covered. The coverage span (engines/coverage.py) follows the same rule at the day grain.
A metric built in one scan whose partials are kept (engines/stored_partials.py) recomputes the same
rows from them instead: only the days from the day grain's C and the to-date spans' last days are read.

Anything not provable rebuilds the table in full, and says why: a changed definition (fingerprint),
--full-refresh, an input with an unknown delta (rebuilt in full, a non-row-local view), stored rows
computed from another version of an input than the one this run's delta starts from, a delta row
whose period is NULL (the full build reports it), a query that is not period-local.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import duckdb
import sqlglot
from sqlglot import exp

from northstar_pipeline.engines.coverage import COVERAGE, record_coverage, record_coverage_from
from northstar_pipeline.engines.delta import RunDeltas, record_version, stored_version, volatile
from northstar_pipeline.engines.metric_scan import DAY, metric_scan, part_shape, union_parts
from northstar_pipeline.engines.partials import release_partials
from northstar_pipeline.engines.stored_partials import forget_if_grown, kept_state, night_partials, night_rows
from northstar_pipeline.sql import union_all
from northstar_pipeline.types import CompiledNode

METRIC_COLUMNS = ["grain", "period_start", "value", "numerator", "denominator", "is_to_date"]


@dataclass(frozen=True, slots=True)
class Scope:
    """A SELECT that calls period(): its period expression, the x it truncates, the ref it reads."""

    select: exp.Select
    period: exp.Expression
    column: exp.Expression
    table: exp.Table
    window: exp.Expression | None  # to-date: the span condition of its CASE


@dataclass(frozen=True, slots=True)
class MetricBuild:
    mode: str  # "full" | "incremental"
    recomputed_from: dict[str, str | None]  # grain -> first period_start recomputed (None: all); absent: none
    reason: str = ""  # why full, when an incremental build was asked for


def period_scopes(query: exp.Query, unit: str, to_date: bool) -> list[Scope] | str:
    """The period-calling SELECTs of a grain query when it is period-local, else the reason it is not."""
    if not isinstance(query, exp.Select):
        return "a set operation (UNION, ...)"
    ctes = {cte.alias_or_name: cte.this for cte in (query.args["with_"].expressions if query.args.get("with_") else [])}
    root_scope = _scope(query, unit, to_date, set(ctes))
    if isinstance(root_scope, Scope):
        if ctes:
            return "a CTE read by a period() SELECT"
        return [root_scope]
    derived = _derived_table(query)
    if not ctes and derived is not None:  # FROM (a period() SELECT) AS c GROUP BY period_start: as a CTE
        scope = _scope(derived.this, unit, to_date, set())
        if not isinstance(scope, Scope):
            return f"the subquery: {scope if isinstance(scope, str) else 'not a period() SELECT'}"
        reason = _grouped_outer_reason(query, {derived.alias_or_name}, [scope.select])
        return reason or [scope]
    if not ctes:
        return root_scope if isinstance(root_scope, str) else "no period() call"
    scopes = []
    for name, cte in ctes.items():
        scope = cte if not isinstance(cte, exp.Select) else _scope(cte, unit, to_date, set(ctes))
        if not isinstance(scope, Scope):
            return f"CTE {name}: {scope if isinstance(scope, str) else 'not a period() SELECT'}"
        scopes.append(scope)
    if query.args.get("group"):  # a second aggregate over one period-local CTE, e.g. per customer, then per period
        reason = _grouped_outer_reason(query, set(ctes), [s.select for s in scopes])
        return reason or scopes
    reason = _outer_reason(query, set(ctes), [s.select for s in scopes])
    return reason or scopes


def _scope(select: exp.Select, unit: str, to_date: bool, ctes: set[str]) -> Scope | str | None:
    """A Scope, the reason this period() SELECT is not local, or None when it calls no period()."""
    calls = [e for e in select.find_all(exp.Cast, exp.Case) if _is_period(e, unit, to_date)]
    if not calls:
        return None
    if any(not c == calls[0] for c in calls):
        return "period() of two expressions"
    call = calls[0]
    projected = {e.alias_or_name.lower(): (e.this if isinstance(e, exp.Alias) else e) for e in select.expressions}
    if projected.get("period_start") != call:
        return "period_start is not the period() expression"
    if not any(_group_item(g, select) == call for g in (select.args["group"].expressions if select.args.get("group") else [])):
        return "no GROUP BY on period()"
    for key, what in (("joins", "a join"), ("having", "HAVING"), ("qualify", "QUALIFY"), ("distinct", "DISTINCT"),
                      ("limit", "LIMIT"), ("offset", "OFFSET"), ("with_", "a CTE inside a CTE")):
        if select.args.get(key):
            return what
    if any(True for _ in select.find_all(exp.Window)):
        return "a window function"
    if volatile(select):
        return "a function of the run's clock or a random one"
    if any(s is not select for s in select.find_all(exp.Select)) or any(True for _ in select.find_all(exp.Subquery)):
        return "a subquery"
    source = select.args.get("from_")
    table = source.this if source else None
    if not isinstance(table, exp.Table) or not table.name or (not table.db and table.name in ctes):
        return "it does not read one ref()"
    if not table.db:
        return "it does not read one ref()"
    column = call.this.this if not to_date else call.args["ifs"][0].this.this.this
    window = call.args["ifs"][0].this if to_date else None
    return Scope(select, call, column, table, window)


def _is_period(node: exp.Expression, unit: str, to_date: bool) -> bool:
    """period(x) as build/render.py renders it for the grain (or its to-date CASE)."""
    if to_date:
        if not isinstance(node, exp.Case) or len(node.args.get("ifs") or []) != 1 or node.args.get("default"):
            return False
        condition = node.args["ifs"][0].this
        return (isinstance(condition, exp.And) and isinstance(condition.this, exp.GTE)
                and isinstance(condition.expression, exp.LTE) and condition.this.this == condition.expression.this)
    return (isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.DATE
            and isinstance(node.this, exp.TimestampTrunc) and node.this.unit is not None
            and node.this.unit.name.upper() == unit.upper())


def _group_item(item: exp.Expression, select: exp.Select) -> exp.Expression:
    """GROUP BY 1 and GROUP BY an alias name the projection they stand for."""
    if isinstance(item, exp.Literal) and item.is_int and 0 < int(item.name) <= len(select.expressions):
        chosen = select.expressions[int(item.name) - 1]
        return chosen.this if isinstance(chosen, exp.Alias) else chosen
    if isinstance(item, exp.Column) and not item.table:
        for e in select.expressions:
            if isinstance(e, exp.Alias) and e.alias.lower() == item.name.lower():
                return e.this
    return item


def _outer_reason(query: exp.Select, ctes: set[str], inner: list[exp.Select]) -> str | None:
    """Why the outer SELECT over the CTEs is not a join of them on period_start, or None."""
    for key, what in (("group", "GROUP BY"), ("having", "HAVING"), ("qualify", "QUALIFY"), ("distinct", "DISTINCT"),
                      ("limit", "LIMIT"), ("offset", "OFFSET")):
        if query.args.get(key):
            return f"the outer SELECT has {what}"
    if volatile(query):
        return "the outer SELECT uses a function of the run's clock or a random one"
    own = [e for e in query.expressions]
    if any(True for e in own for _ in e.find_all(exp.AggFunc, exp.Window)):
        return "the outer SELECT aggregates or uses a window function"
    for select in query.find_all(exp.Select):
        if select is not query and not any(select is s for s in inner):
            return "a subquery"
    tables = [query.args["from_"].this] if query.args.get("from_") else []
    for join in query.args.get("joins") or []:
        tables.append(join.this)
        on = join.args.get("on")
        if not (isinstance(on, exp.EQ) and all(isinstance(side, exp.Column) and side.name.lower() == "period_start"
                                              for side in (on.this, on.expression))):
            return "the outer SELECT joins on something else than period_start"
    if not tables or any(not isinstance(t, exp.Table) or t.db or t.name not in ctes for t in tables):
        return "the outer SELECT reads something else than the period() CTEs"
    start = next((e for e in query.expressions if e.alias_or_name.lower() == "period_start"), None)
    start = start.this if isinstance(start, exp.Alias) else start
    if not isinstance(start, exp.Column):
        return "the outer period_start is not a CTE's period_start"
    return None


def _derived_table(query: exp.Select) -> exp.Subquery | None:
    """The FROM of a grouped SELECT when it is one aliased SELECT in parentheses (a derived table), else None."""
    source = query.args.get("from_")
    table = source.this if source else None
    if (query.args.get("group") and isinstance(table, exp.Subquery) and isinstance(table.this, exp.Select)
            and table.alias_or_name):
        return table
    return None


def _grouped_outer_reason(query: exp.Select, ctes: set[str], inner: list[exp.Select]) -> str | None:
    """Why the outer SELECT is not an aggregate of one period() CTE grouped by its period_start alone, or None.

    The CTE's rows of period P depend only on the input rows of P, and each outer row aggregates the CTE rows
    of one period_start: so the outer row of P does too. A WHERE filters CTE rows, each of one period.
    """
    if len(ctes) != 1:
        return "the outer SELECT groups over more than one CTE"
    for key, what in (("joins", "a join"), ("having", "HAVING"), ("qualify", "QUALIFY"), ("distinct", "DISTINCT"),
                      ("limit", "LIMIT"), ("offset", "OFFSET")):
        if query.args.get(key):
            return f"the outer SELECT has {what}"
    for select in query.find_all(exp.Select):
        if select is not query and not any(select is s for s in inner):
            return "a subquery"
    if volatile(query):
        return "the outer SELECT uses a function of the run's clock or a random one"
    own = [*query.expressions, *([query.args["where"]] if query.args.get("where") else []),
           *([query.args["order"]] if query.args.get("order") else [])]
    if any(True for e in own for _ in e.find_all(exp.Window)):
        return "the outer SELECT uses a window function"
    source = query.args.get("from_")
    table = source.this if source else None
    if isinstance(table, exp.Subquery) and table is _derived_table(query) and table.alias_or_name in ctes:
        pass  # the one derived table, checked by the caller
    elif not isinstance(table, exp.Table) or table.db or table.name not in ctes:
        return "the outer SELECT reads something else than the period() CTE"
    alias = table.alias_or_name

    def is_start(node: exp.Expression | None) -> bool:
        return (isinstance(node, exp.Column) and node.name.lower() == "period_start"
                and node.table in ("", alias))

    keys = [_group_item(g, query) for g in query.args["group"].expressions]
    if len(keys) != 1 or not is_start(keys[0]):
        return "the outer SELECT groups by something else than the CTE's period_start alone"
    start = next((e for e in query.expressions if e.alias_or_name.lower() == "period_start"), None)
    if not is_start(start.this if isinstance(start, exp.Alias) else start):
        return "the outer period_start is not the CTE's period_start"
    return None


# -- the build ------------------------------------------------------------------------------------------

def build_metric(con: duckdb.DuckDBPyConnection, node: CompiledNode, fingerprint: str, full_refresh: bool,
                 deltas: RunDeltas, full: Callable[[], None]) -> MetricBuild:
    """Recompute the periods the delta touches, or call ``full()`` (and say why): it builds the table and
    records the days its data covers."""
    query = node.ast if node.ast is not None else sqlglot.parse_one(node.sql, read="duckdb")
    parts = [(part, *part_shape(part)) for part in union_parts(query)]
    grains = list(dict.fromkeys(g for _, g, to_date, _ in parts if not to_date))
    plan = _plan(con, node, fingerprint, full_refresh, deltas, parts)
    if isinstance(plan, str):
        full()  # the table and the days its data covers, every day again
        _record(con, node, fingerprint, deltas)
        return MetricBuild("full", {g: None for g in grains}, plan)
    cuts, coverage_cut = plan
    scan = metric_scan(node)
    kept = kept_state(con, node.name, scan) if scan is not None else False
    if isinstance(kept, str):  # its partials should be kept and are not: the full build keeps them
        full()
        _record(con, node, fingerprint, deltas)
        return MetricBuild("full", {g: None for g in grains}, kept)
    table = exp.table_(node.name, db=node.schema, quoted=True)
    con.execute(exp.delete(table.copy(), where=exp.column("is_to_date")).sql("duckdb"))
    inserts = []  # the union's parts over the recomputed periods (when the partials are not kept)
    for part, grain, to_date, inner in parts:
        if to_date and not kept:
            inserts.append(_filtered(part, grain, True, None))
        elif not to_date and cuts.get(grain) is not None:
            start = _date(cuts[grain])
            con.execute(exp.delete(table.copy(), where=exp.and_(
                exp.column("grain").eq(exp.Literal.string(grain)), exp.column("is_to_date").not_(),
                exp.GTE(this=exp.column("period_start"), expression=start))).sql("duckdb"))
            if not kept:
                inserts.append(_filtered(part, grain, False, cuts[grain]))
    if kept:  # the changed days' rows and the to-date spans' boundary days only (engines/stored_partials.py)
        assert scan is not None
        partials = night_partials(con, node.name, scan, coverage_cut)
        rows = night_rows(scan, partials, {g: cuts.get(g) for g in grains})
        con.execute(f"INSERT INTO {table.sql('duckdb')} BY NAME {rows.sql('duckdb')}")
        record_coverage_from(con, node, partials, DAY)
        forget_if_grown(con, node.name)
        release_partials(con, node.name, partials, for_cuts=bool(scan.dimensions))  # the night's cuts read them
    else:
        if inserts:
            con.execute(f"INSERT INTO {table.sql('duckdb')} BY NAME {union_all(inserts).sql('duckdb')}")
        _update_coverage(con, node, coverage_cut)
    _record(con, node, fingerprint, deltas)
    return MetricBuild("incremental", {g: cuts[g].isoformat() for g in grains if cuts.get(g) is not None})


def _plan(con: duckdb.DuckDBPyConnection, node: CompiledNode, fingerprint: str, full_refresh: bool,
          deltas: RunDeltas, parts: list) -> tuple[dict[str, date | None], date | None] | str:
    """({grain: C_g or None}, C_day of the coverage) when provably incremental, else the reason to rebuild."""
    if full_refresh:
        return "--full-refresh"
    if not fingerprint:  # the build's second pass with the as-of its data settles (build/pipeline.py)
        return "rebuilt with the as-of the data covers (no loaded_at_field or as_of var)"
    version, stored_fingerprint, inputs = stored_version(con, node.name)
    if version is None or stored_fingerprint != fingerprint:
        return "first build" if version is None else "its definition or an upstream definition changed"
    if _stored_columns(con, node) != METRIC_COLUMNS:
        return "the stored table is not this metric's"
    by_table = {}
    for name in node.depends_on:
        found = deltas.resolve(name, deltas.nodes)
        if isinstance(found, str):
            return found
        delta = deltas.built.get(found.base)
        if found.base in deltas.built and delta is None:
            return f"{found.base} was rebuilt in full this run"
        expected = delta.from_version if delta is not None else stored_version(con, found.base)[0]
        if expected is None or inputs.get(found.base) != expected:
            return f"its stored rows were not computed from the {found.base} this run started from"
        by_table[name] = found
    cuts: dict[str, date | None] = {}
    for _, grain, to_date, inner in parts:
        scopes = period_scopes(inner, grain, to_date)
        if isinstance(scopes, str):
            return f"not period-local at the {grain} grain: {scopes}"
        if to_date:
            continue
        cut = _earliest(con, scopes, by_table, deltas)
        if isinstance(cut, str):
            return cut
        cuts[grain] = cut
    coverage_cut = None
    if node.coverage_sql:
        scopes = period_scopes(sqlglot.parse_one(node.coverage_sql, read="duckdb"), "day", False)
        if isinstance(scopes, str):
            return f"not period-local at the day grain (coverage): {scopes}"
        coverage_cut = _earliest(con, scopes, by_table, deltas)
        if isinstance(coverage_cut, str):
            return coverage_cut
    return cuts, coverage_cut


def _earliest(con: duckdb.DuckDBPyConnection, scopes: list[Scope], by_table: dict, deltas: RunDeltas
              ) -> date | None | str:
    """The earliest period any delta row (old or new) of the scopes' inputs falls in; None: no delta row."""
    earliest = None
    for scope in scopes:
        resolved = by_table.get(scope.table.name)
        if resolved is None:
            return f"{scope.table.name} is not one of its refs"
        delta = deltas.delta_of(resolved)
        if delta is None:
            continue  # not built this run: unchanged (its version was checked)
        alias = scope.table.alias or scope.table.name
        rows = exp.union(delta[0].copy(), delta[1].copy(), distinct=False).subquery(alias)
        period = scope.period.copy()
        nulls = exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(this=period.copy().is_(exp.null())))
        query = exp.select(exp.Min(this=period.copy()), nulls).from_(rows)
        if scope.select.args.get("where"):
            query = query.where(scope.select.args["where"].this.copy())
        first, nulls = con.execute(query.sql("duckdb")).fetchall()[0]
        if nulls:
            return "a changed row has a NULL period (the full build reports it)"
        if first is not None and (earliest is None or first < earliest):
            earliest = first
    return earliest


def _filtered(part: exp.Select, grain: str, to_date: bool, cut: date | None) -> exp.Select:
    """The union part with its period() SELECTs restricted to the recomputed periods."""
    part = part.copy()
    inner = part.args["from_"].this.this
    scopes = period_scopes(inner, grain, to_date)
    assert not isinstance(scopes, str)  # checked by _plan
    for scope in scopes:
        bound = scope.window.copy() if scope.window is not None else exp.GTE(this=scope.column.copy(),
                                                                             expression=_date(cut))
        scope.select.where(bound, append=True, copy=False)
    return part


def _update_coverage(con: duckdb.DuckDBPyConnection, node: CompiledNode, cut: date | None) -> None:
    """The days covered: the stored span before the cut, the recomputed one from it."""
    if not node.coverage_sql or cut is None:
        return
    stored = con.execute(f"SELECT first_day, last_day FROM {COVERAGE} WHERE metric = ?", [node.name]).fetchall()
    query = sqlglot.parse_one(node.coverage_sql, read="duckdb")
    for scope in period_scopes(query, "day", False):  # type: ignore[union-attr]
        scope.select.where(exp.GTE(this=scope.column.copy(), expression=_date(cut)), append=True, copy=False)
    first, last = con.execute(exp.select(exp.Min(this=exp.column("period_start", "c")),
                                         exp.Max(this=exp.column("period_start", "c")))
                              .from_(query.subquery("c")).sql("duckdb")).fetchall()[0]
    if not stored or (last is None and stored[0][1] is not None and stored[0][1] >= cut):
        record_coverage(con, node)  # every covered day from the cut on is gone: the span before it is unknown
        return
    old_first, old_last = stored[0]
    first = old_first if old_first is not None and old_first < cut else first
    last = last if last is not None else old_last
    con.execute(f"DELETE FROM {COVERAGE} WHERE metric = ?", [node.name])
    con.execute(f"INSERT INTO {COVERAGE} VALUES (?, ?, ?)", [node.name, first, last])


def _record(con: duckdb.DuckDBPyConnection, node: CompiledNode, fingerprint: str, deltas: RunDeltas) -> None:
    """The metric's new version, with the versions of the base relations its rows were computed from."""
    inputs = {}
    for name in node.depends_on:
        found = deltas.resolve(name, deltas.nodes)
        if isinstance(found, str):
            record_version(con, node.name, "", {})  # no fingerprint: not incremental next time either
            return
        inputs[found.base] = stored_version(con, found.base)[0]
    record_version(con, node.name, fingerprint, inputs)


def _stored_columns(con: duckdb.DuckDBPyConnection, node: CompiledNode) -> list[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                       "ORDER BY ordinal_position", [node.schema, node.name]).fetchall()
    return [r[0] for r in rows]


def _date(value: date | None) -> exp.Expression:
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.Type.DATE)  # type: ignore[union-attr]
