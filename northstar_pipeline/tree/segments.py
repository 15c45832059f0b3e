"""The tree sliced by segment, in the engine: segment tables, formula checks per segment, and drivers.

For every metric cut by a dimension: value, numerator and denominator per grain, period and segment,
on the scorecard's own period spine (every period, 0 for counts and NULL for ratios where a segment
has no rows), compared with the previous period the way the scorecard is (period-to-date for the
partial one). Formula edges are verified inside every segment, and each formula child's exact share
of its parent's change is computed per segment (LMDI, as for the total).

``segment_drivers`` answers "where did it move": per dimension, each segment's exact share of a
metric's change (for additive metrics its own change; for ratios a mix effect, its share of the
denominator moving, plus a rate effect, its ratio moving), with Adtributor's explanatory power and
surprise (Bhagwan et al., NSDI 2014) to rank segments and dimensions. All arithmetic is SQL here.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa
from sqlglot import exp

from northstar_pipeline.errors import TreeError
from northstar_pipeline.sql import create_rows_table, existing_relations, union_all
from northstar_pipeline.tree.formula import contribution_sql, formula_sql
from northstar_pipeline.tree.score import FORMULA_TOLERANCE, ZERO
from northstar_pipeline.tree.segment_store import Since, run_cuts
from northstar_pipeline.tree.tree import Tree, TreeMetric
from northstar_pipeline.types import Manifest

SEGMENTS = "scorecard.segments"
SEGMENTS_SCHEMA_VERSION = "1"
# Adtributor's thresholds: a segment explains part of a move if it carries >= 10% of it; a
# dimension's explanation is its most surprising such segments until they carry 67% of the move.
T_EEP = 0.10
T_EP = 0.67


@dataclass(frozen=True, slots=True)
class SegmentBuild:
    rows: int  # of scorecard.segments (0: no metric is cut)
    from_partials: tuple[str, ...] = ()  # metrics cut from their full build's partials, not from their rows


def build_segments(con: duckdb.DuckDBPyConnection, manifest: Manifest, tree: Tree, run_id: str,
                   built_at: str, since: Since = None) -> SegmentBuild:
    """Build scorecard.segments (after score(), which leaves _ns_meta and _ns_base); raise TreeError
    when a formula does not hold inside a segment.

    ``since``: per metric, ``{grain: first period_start recomputed}`` (None: all): only those periods
    of the stored cuts are recomputed (tree/segment_store.py); None (the default) recomputes everything.
    """
    present = existing_relations(con)
    cut = [(m, q) for m in tree.metrics if m.node.segment_sql and (m.node.schema, m.node.name) in present
           for q in m.node.segment_sql]
    if not cut:
        con.execute(f"DROP TABLE IF EXISTS {SEGMENTS}")
        return SegmentBuild(0)
    dims = {d.name: d for d in manifest.dimensions}
    used = sorted({q.dimension for _, q in cut})
    create_rows_table(con, "_ns_dims", [("dimension", "VARCHAR"), ("max_segments", "BIGINT"),
                                        ("dimension_label", "VARCHAR")],
                      [(d, dims[d].max_segments, dims[d].label) for d in used])
    from_partials = run_cuts(con, cut, since, manifest.as_of)
    con.execute(_BASE_SQL)
    _verify_formulas(con, tree)
    _build_contributions(con, tree)
    con.execute("CREATE SCHEMA IF NOT EXISTS scorecard")
    con.execute(_SEGMENTS_SQL, {"as_of": manifest.as_of, "run_id": run_id, "built_at": built_at})
    return SegmentBuild(con.execute(f"SELECT count(*) FROM {SEGMENTS}").fetchall()[0][0], from_partials)


# Each metric's own scorecard spine (periods, ends, completeness: metrics differ, e.g. an outcome whose data
# starts later) x every segment of the dimension x each metric cut by it.
_BASE_SQL = """
CREATE OR REPLACE TEMP TABLE _ns_segment_base AS
WITH spine AS (
    SELECT DISTINCT metric, grain, period_start, period_end, is_complete FROM _ns_base
), cuts AS (
    SELECT DISTINCT metric, dimension FROM _ns_segment_values
), dimension_segments AS (
    SELECT DISTINCT dimension, segment FROM _ns_segment_values WHERE NOT is_to_date
), rows AS (
    SELECT c.metric, c.dimension, d.segment, s.grain, s.period_start, s.period_end, s.is_complete, m.is_ratio,
           CASE WHEN v.metric IS NOT NULL THEN v.value WHEN m.is_ratio THEN NULL ELSE 0 END AS value,
           CASE WHEN v.metric IS NOT NULL THEN v.numerator WHEN m.is_ratio THEN 0 END AS numerator,
           CASE WHEN v.metric IS NOT NULL THEN v.denominator WHEN m.is_ratio THEN 0 END AS denominator
    FROM cuts c
    JOIN dimension_segments d USING (dimension)
    JOIN _ns_meta m ON m.metric = c.metric
    JOIN spine s ON s.metric = c.metric
    LEFT JOIN _ns_segment_values v
      ON v.metric = c.metric AND v.dimension = c.dimension AND v.segment = d.segment AND v.grain = s.grain
     AND v.period_start = s.period_start AND NOT v.is_to_date
), compared AS (
    SELECT r.*,
           lag(r.period_start) OVER w AS previous_start,
           lag(r.value) OVER w AS previous_full_value,
           lag(r.numerator) OVER w AS previous_full_numerator,
           lag(r.denominator) OVER w AS previous_full_denominator
    FROM rows r
    WINDOW w AS (PARTITION BY r.metric, r.dimension, r.segment, r.grain ORDER BY r.period_start)
), previous AS (
    SELECT c.*,
           c.is_complete OR c.previous_start IS NULL AS full_previous,
           td.metric IS NOT NULL AS has_to_date,
           td.value AS td_value, td.numerator AS td_numerator, td.denominator AS td_denominator
    FROM compared c
    LEFT JOIN _ns_segment_values td
      ON td.is_to_date AND td.metric = c.metric AND td.dimension = c.dimension AND td.segment = c.segment
     AND td.grain = c.grain AND td.period_start = c.previous_start AND NOT c.is_complete
)
SELECT metric, dimension, segment, grain, period_start, period_end, is_complete, is_ratio,
       value, numerator, denominator,
       CASE WHEN full_previous THEN previous_full_value WHEN has_to_date THEN td_value
            WHEN is_ratio THEN NULL ELSE 0 END AS previous_value,
       CASE WHEN full_previous THEN previous_full_numerator WHEN has_to_date THEN td_numerator
            WHEN is_ratio THEN 0 END AS previous_numerator,
       CASE WHEN full_previous THEN previous_full_denominator WHEN has_to_date THEN td_denominator
            WHEN is_ratio THEN 0 END AS previous_denominator,
       CASE WHEN previous_start IS NULL THEN NULL
            WHEN is_complete THEN 'previous_period' ELSE 'period_to_date' END AS comparison
FROM previous
"""

_SEGMENTS_SQL = """
CREATE OR REPLACE TABLE scorecard.segments AS
SELECT b.metric, m.label, m.kind, m.level, m.parent, m.edge, b.grain, b.period_start, b.period_end, b.is_complete,
       b.dimension, d.dimension_label, b.segment, b.segment = '(other)' AS is_other, b.is_ratio,
       b.value, b.numerator, b.denominator, b.previous_value, b.previous_numerator, b.previous_denominator,
       b.comparison, b.value - b.previous_value AS change,
       CASE WHEN b.previous_value IS NULL OR b.previous_value = 0 THEN NULL
            ELSE (b.value - b.previous_value) / abs(b.previous_value) END AS change_pct,
       c.contribution,
       CAST($as_of AS TIMESTAMP) AS as_of, CAST($run_id AS VARCHAR) AS run_id, CAST($built_at AS TIMESTAMP) AS built_at
FROM _ns_segment_base b
JOIN _ns_meta m ON m.metric = b.metric
JOIN _ns_dims d ON d.dimension = b.dimension
LEFT JOIN _ns_segment_contributions c
  ON c.metric = b.metric AND c.dimension = b.dimension AND c.segment = b.segment AND c.grain = b.grain
 AND c.period_start = b.period_start
ORDER BY m.kind_order, m.level NULLS LAST, b.metric, b.dimension, b.segment, b.grain, b.period_start
"""


def _segment_formulas(con: duckdb.DuckDBPyConnection,
                      tree: Tree) -> list[tuple[TreeMetric, dict[str, str], list[str]]]:
    """Formula parents, a table alias per child, and the dimensions cutting the parent and all its children.

    A dimension that cuts the parent but not every formula child leaves that edge unchecked per segment.
    """
    cut: dict[str, set[str]] = {}
    for metric, dimension in con.execute("SELECT DISTINCT metric, dimension FROM _ns_segment_base").fetchall():
        cut.setdefault(metric, set()).add(dimension)
    out = []
    for p in tree.formula_parents:
        shared = set(cut.get(p.name, set()))
        for child in p.formula.metrics:
            shared &= cut.get(child, set())
        if shared:
            out.append((p, {name: f"c{i}" for i, name in enumerate(p.formula.metrics)}, sorted(shared)))
    return out


def _join_children(parent: str, aliases: dict[str, str], dimensions: list[str]) -> exp.Select:
    query = exp.select().from_(exp.alias_(exp.to_table("_ns_segment_base"), "p", table=True)).where(
        exp.and_(exp.column("metric", "p").eq(exp.Literal.string(parent)),
                 exp.column("dimension", "p").isin(*(exp.Literal.string(d) for d in dimensions))))
    for name, alias in aliases.items():
        on = exp.and_(exp.column("metric", alias).eq(exp.Literal.string(name)),
                      *(exp.column(k, alias).eq(exp.column(k, "p"))
                        for k in ("dimension", "segment", "grain", "period_start")))
        query = query.join(exp.alias_(exp.to_table("_ns_segment_base"), alias, table=True), on=on, join_type="left")
    return query


def _verify_formulas(con: duckdb.DuckDBPyConnection, tree: Tree) -> None:
    """Raise TreeError at the first (period, dimension, segment) where a formula does not hold."""
    for parent, aliases, dimensions in _segment_formulas(con, tree):
        value = formula_sql(parent.formula, lambda n: exp.column("value", aliases[n]))
        parent_value = exp.column("value", "p")
        rel_error = exp.func("abs", parent_value - value.copy()) / exp.func(
            "greatest", exp.func("abs", parent_value.copy()), exp.func("abs", value.copy()))
        small = exp.and_(exp.func("coalesce", exp.func("abs", parent_value.copy()), exp.Literal.number(0))
                         <= exp.Literal.number(ZERO),
                         exp.or_(value.copy().is_(exp.null()),
                                 exp.func("abs", value.copy()) <= exp.Literal.number(ZERO)))
        holds = exp.or_(small, rel_error <= exp.Literal.number(FORMULA_TOLERANCE))
        query = _join_children(parent.name, aliases, dimensions).select(
            exp.column("dimension", "p"), exp.column("segment", "p"), exp.column("grain", "p"),
            exp.column("period_start", "p"), parent_value.copy().as_("parent_value"), value.as_("formula_value"),
        ).where(exp.not_(exp.func("coalesce", exp.paren(holds), exp.false()))).order_by(
            "period_start", "grain", "dimension", "segment").limit(1)
        broken = con.execute(query.sql("duckdb")).fetchall()
        if broken:
            raise _formula_error(parent, *broken[0])


def _formula_error(metric: TreeMetric, dimension: str, segment: str, grain: str, period, parent_value,
                   formula_value) -> TreeError:
    if parent_value is None or formula_value is None:
        gap = f"{metric.name} = {parent_value} but the formula gives {formula_value}"
    else:
        gap = (f"{metric.name} = {parent_value:.10g} but {metric.formula.text} = {formula_value:.10g} "
               f"(off by {parent_value - formula_value:.6g})")
    return TreeError(
        f"formula of '{metric.name}' does not hold in segment {dimension}={segment} for {grain} {period}: {gap}",
        path=metric.node.relpath, line=metric.config.line,
        hint="the edge holds for the total but not inside this segment: cut the parent and its formula children "
             "from the same rows (the same dimension expression over the same events)")


def _build_contributions(con: duckdb.DuckDBPyConnection, tree: Tree) -> None:
    parts = []
    for parent, aliases, dimensions in _segment_formulas(con, tree):
        shares = contribution_sql(parent.formula, lambda n: exp.column("value", aliases[n]),
                                  lambda n: exp.column("previous_value", aliases[n]))
        for name, share in shares.items():
            parts.append(_join_children(parent.name, aliases, dimensions).select(
                exp.Literal.string(name).as_("metric"), exp.column("dimension", "p"), exp.column("segment", "p"),
                exp.column("grain", "p"), exp.column("period_start", "p"),
                exp.cast(share, exp.DataType.Type.DOUBLE).as_("contribution")))
    empty = ("SELECT NULL::VARCHAR AS metric, NULL::VARCHAR AS dimension, NULL::VARCHAR AS segment, "
             "NULL::VARCHAR AS grain, NULL::DATE AS period_start, NULL::DOUBLE AS contribution WHERE false")
    con.execute("CREATE OR REPLACE TEMP TABLE _ns_segment_contributions AS "
                + (union_all(parts).sql("duckdb") if parts else empty))


# -- which segments drove the move ---------------------------------------------------------------------

# Per dimension and segment, for one metric, grain and period (the table `segments` is segments.parquet).
# Additive metric: effect = the segment's own change; the effects add up to the total change.
# Ratio R = sum(w_s r_s), w_s = D_s / D: mix_s = (w1 - w0) ((r0 + r1) / 2 - (R0 + R1) / 2) and
# rate_s = (w0 + w1) / 2 (r1 - r0); since sum(w1 - w0) = 0, sum(mix + rate) = R1 - R0 exactly. A segment
# empty in one period takes its rate from the other (no rate effect, only mix).
# Surprise (Adtributor): Jensen-Shannon divergence of the segment's share before (p) and after (q); for a
# ratio, that of its numerator's share plus that of its denominator's.
DRIVERS_SQL = """
WITH s AS (
    SELECT dimension, dimension_label, segment, is_ratio, value, previous_value, numerator, denominator,
           previous_numerator, previous_denominator, contribution
    FROM segments WHERE metric = $metric AND grain = $grain AND period_start = $period_start
), totals AS (
    SELECT dimension, sum(value) AS v1, sum(previous_value) AS v0, sum(numerator) AS n1, sum(denominator) AS d1,
           sum(previous_numerator) AS n0, sum(previous_denominator) AS d0
    FROM s GROUP BY dimension
), weighted AS (
    SELECT s.*, t.v1, t.v0, t.n1, t.n0, t.d1, t.d0,
           s.denominator / nullif(t.d1, 0) AS w1, s.previous_denominator / nullif(t.d0, 0) AS w0,
           coalesce(s.value, s.previous_value) AS r1, coalesce(s.previous_value, s.value) AS r0
    FROM s JOIN totals t USING (dimension)
), rates AS (
    SELECT *, sum(coalesce(w1 * r1, 0)) OVER d AS big_r1, sum(coalesce(w0 * r0, 0)) OVER d AS big_r0
    FROM weighted WINDOW d AS (PARTITION BY dimension)
), effects AS (
    SELECT *,
        CASE WHEN is_ratio THEN CASE WHEN coalesce(w0, 0) = 0 AND coalesce(w1, 0) = 0 THEN 0
             ELSE (w1 - w0) * ((r0 + r1) / 2 - (big_r0 + big_r1) / 2) END END AS mix_effect,
        CASE WHEN is_ratio THEN CASE WHEN coalesce(w0, 0) = 0 AND coalesce(w1, 0) = 0 THEN 0
             ELSE (w0 + w1) / 2 * (r1 - r0) END END AS rate_effect,
        CASE WHEN is_ratio THEN numerator / nullif(n1, 0) ELSE value / nullif(v1, 0) END AS q,
        CASE WHEN is_ratio THEN previous_numerator / nullif(n0, 0) ELSE previous_value / nullif(v0, 0) END AS p,
        denominator / nullif(d1, 0) AS qd, previous_denominator / nullif(d0, 0) AS pd
    FROM rates
), explained AS (
    SELECT *,
        CASE WHEN is_ratio THEN mix_effect + rate_effect ELSE value - previous_value END AS effect,
        {js_pq} + CASE WHEN is_ratio THEN {js_d} ELSE 0 END AS surprise
    FROM effects
), shared AS (
    SELECT *, sum(effect) OVER d AS total_change,
           effect / nullif(sum(effect) OVER d, 0) AS explanatory_power
    FROM explained WINDOW d AS (PARTITION BY dimension)
), candidates AS (
    SELECT *,
        coalesce(sum(explanatory_power) FILTER (WHERE explanatory_power >= {t_eep}) OVER (
            PARTITION BY dimension ORDER BY surprise DESC, segment
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS ep_before
    FROM shared
), chosen AS (
    SELECT *, coalesce(explanatory_power >= {t_eep} AND ep_before < {t_ep}, false) AS in_explanation
    FROM candidates
), dimensions AS (
    SELECT dimension, coalesce(sum(surprise) FILTER (WHERE in_explanation), 0) AS dimension_surprise,
           coalesce(sum(explanatory_power) FILTER (WHERE in_explanation), 0) AS dimension_explanatory_power
    FROM chosen GROUP BY dimension
)
SELECT c.dimension, c.dimension_label, c.segment, c.is_ratio, c.value, c.previous_value,
       c.numerator, c.denominator, c.previous_numerator, c.previous_denominator,
       c.effect, c.mix_effect, c.rate_effect, c.total_change, c.explanatory_power, c.surprise, c.in_explanation,
       c.contribution, d.dimension_surprise, d.dimension_explanatory_power,
       dense_rank() OVER (ORDER BY d.dimension_surprise DESC, d.dimension_explanatory_power DESC, c.dimension)
           AS dimension_rank,
       row_number() OVER (PARTITION BY c.dimension ORDER BY c.explanatory_power DESC NULLS LAST, c.surprise DESC,
                          c.segment) AS segment_rank
FROM chosen c JOIN dimensions d USING (dimension)
ORDER BY dimension_rank, segment_rank
"""


def _js(p: str, q: str) -> str:
    """Jensen-Shannon divergence of two shares (SQL over module-made column names only): 0 log 0 = 0."""
    return (f"(0.5 * (CASE WHEN {p} > 0 AND {p} + {q} > 0 THEN {p} * ln(2 * {p} / ({p} + {q})) ELSE 0 END"
            f" + CASE WHEN {q} > 0 AND {p} + {q} > 0 THEN {q} * ln(2 * {q} / ({p} + {q})) ELSE 0 END))")


_DRIVERS = DRIVERS_SQL.format(js_pq=_js("coalesce(p, 0)", "coalesce(q, 0)"), js_d=_js("coalesce(pd, 0)", "coalesce(qd, 0)"),
                              t_eep=T_EEP, t_ep=T_EP)


def segment_drivers(con: duckdb.DuckDBPyConnection, metric: str, grain: str, period_start) -> pa.Table:
    """Each segment's effect on ``metric``'s change in one period, ranked (a table ``segments`` must exist)."""
    return con.sql(_DRIVERS, params={"metric": metric, "grain": grain, "period_start": period_start}).to_arrow_table()

