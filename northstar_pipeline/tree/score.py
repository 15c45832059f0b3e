"""Score a build in the engine: period spine, period-to-date comparison, targets, status,
exact contributions along formula edges, formula verification and hypothesis tests.

Everything here is SQL over the metric tables (a few hundred rows per metric);
Python only assembles statements from the tree and reads back small results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import pyarrow as pa
from sqlglot import exp

from northstar_pipeline.errors import FormulaError
from northstar_pipeline.project.periods import next_start
from northstar_pipeline.sql import create_rows_table, existing_relations, union_all
from northstar_pipeline.tree.formula import contribution_sql, formula_sql
from northstar_pipeline.tree.tree import Tree, TreeMetric
from northstar_pipeline.types import Grain, Manifest, MetricKind

FORMULA_TOLERANCE = 1e-9  # relative
ZERO = 1e-12  # absolute: below this both sides count as zero
MAX_LAG = 3
MIN_PAIRS = 6  # fewer paired changes than this say nothing
SIGNIFICANCE = 0.05
SCORECARD = "scorecard.scorecard"
VALIDATION = "scorecard.tree_validation"

# Status bands (README "Status"): against a target, or the period-over-period trend without one.
TARGET_YELLOW = 0.05  # within 5% of target on the wrong side
TREND_YELLOW, TREND_RED = 0.02, 0.05  # a move in the bad direction of 2% / 5%


@dataclass(frozen=True, slots=True)
class FormulaCheck:
    metric: str
    grain: str
    periods: int
    max_rel_error: float | None
    first_break: date | None
    parent_value: float | None
    formula_value: float | None


def score(con: duckdb.DuckDBPyConnection, manifest: Manifest, tree: Tree, run_id: str, built_at: str,
          verify: bool = True) -> int:
    """Build scorecard.scorecard and scorecard.tree_validation; raise FormulaError if a formula does not hold."""
    present = existing_relations(con)
    metrics = [m for m in tree.metrics if (m.node.schema, m.node.name) in present]
    if not metrics:
        return 0
    _register_inputs(con, manifest, metrics)
    _build_base(con, manifest)
    checks = verify_formulas(con, tree, metrics)
    hypotheses = test_hypotheses(con, tree, metrics)
    _build_validation(con, checks, hypotheses, tree)  # before a failure too: the build writes it for diagnosis
    broken = [c for c in checks if c.first_break is not None]
    if verify and broken:
        raise _formula_error(tree, first_break(broken))
    _build_contributions(con, tree, metrics)
    _build_scorecard(con, tree, manifest.as_of, run_id, built_at)
    return con.execute(f"SELECT count(*) FROM {SCORECARD}").fetchall()[0][0]


def validate_tree(con: duckdb.DuckDBPyConnection, manifest: Manifest, tree: Tree) -> pa.Table:
    """Formula checks and hypothesis tests over the metric tables already built (e.g. by lint, read-only).

    Returns the tree_validation table (same columns as target/tree_validation.parquet); never raises
    for a broken formula: its row has holds = false.
    """
    present = existing_relations(con)
    metrics = [m for m in tree.metrics if (m.node.schema, m.node.name) in present]
    if not metrics:
        return pa.table({})
    _register_inputs(con, manifest, metrics)
    _build_base(con, manifest)
    _build_validation(con, verify_formulas(con, tree, metrics), test_hypotheses(con, tree, metrics), tree,
                      table="_ns_validation")
    return con.table("_ns_validation").to_arrow_table()


def verify_formulas(con: duckdb.DuckDBPyConnection, tree: Tree, metrics: list[TreeMetric]) -> list[FormulaCheck]:
    checks = []
    for parent, aliases in _checkable_formulas(tree, metrics):
        value = formula_sql(parent.formula, lambda n: exp.column("value", aliases[n]))
        rel_error = exp.func("abs", exp.column("value", "p") - value.copy()) / exp.func(
            "greatest", exp.func("abs", exp.column("value", "p")), exp.func("abs", value.copy()))
        holds = exp.condition(
            f"(coalesce(abs(p.value), 0) <= {ZERO} AND ({value.sql('duckdb')} IS NULL OR abs({value.sql('duckdb')}) <= {ZERO}))"
            f" OR ({rel_error.sql('duckdb')}) <= {FORMULA_TOLERANCE}")
        query = _join_children(parent.name, aliases).select(
            exp.column("grain", "p"), exp.column("period_start", "p"), exp.column("value", "p").as_("parent_value"),
            value.as_("formula_value"), rel_error.as_("rel_error"), exp.not_(exp.func("coalesce", holds, exp.false())).as_("broken"))
        rows = con.execute(
            "SELECT grain, count(*), max(rel_error), "
            "arg_min(period_start, period_start) FILTER (WHERE broken), "
            "arg_min(parent_value, period_start) FILTER (WHERE broken), "
            "arg_min(formula_value, period_start) FILTER (WHERE broken) "
            f"FROM ({query.sql('duckdb')}) GROUP BY grain ORDER BY grain").fetchall()
        checks += [FormulaCheck(parent.name, g, n, err, first, pv, fv) for g, n, err, first, pv, fv in rows]
    return checks


def test_hypotheses(con: duckdb.DuckDBPyConnection, tree: Tree, metrics: list[TreeMetric]) -> list[tuple]:
    """Lagged correlation of period-over-period relative changes, child leading parent by 0..MAX_LAG periods."""
    present = {m.name for m in metrics}
    edges = [(c, p) for c, p in tree.hypothesis_edges() if c in present and p in present]
    if not edges:
        return []
    create_rows_table(con, "_ns_edges", [("child", "VARCHAR"), ("parent", "VARCHAR")], edges)
    rows = con.execute(_HYPOTHESIS_SQL, {"max_lag": MAX_LAG}).fetchall()
    con.execute("DROP TABLE _ns_edges")
    return [(child, parent, grain, lag, r, n, _p_value(r, n), rho, _p_value(rho, n))
            for child, parent, grain, lag, r, n, rho in rows]


_HYPOTHESIS_SQL = """
WITH steps AS (
    SELECT *,
           dense_rank() OVER (PARTITION BY grain ORDER BY period_start) AS idx,  -- position on the grain's spine
           lag(value) OVER w AS previous, lag(is_complete) OVER w AS previous_complete
    FROM _ns_base
    WINDOW w AS (PARTITION BY metric, grain ORDER BY period_start)
), changes AS (
    -- only between two complete periods: a partial first or last period never enters a test;
    -- relative to the magnitude: a metric below zero (minutes early) must not flip the sign
    SELECT metric, grain, idx,
           CASE WHEN is_complete AND previous_complete THEN (value - previous) / nullif(abs(previous), 0) END AS change
    FROM steps
), lagged AS (
    -- each child change at every lag, keyed by the parent period it leads: the join below is on equal keys
    -- only (inside the build's transaction the temp tables have no statistics, and the join over
    -- c.idx = p.idx - l.lag was planned through a 385K-row intermediate: 65 ms instead of 5)
    SELECT c.metric, c.grain, c.idx + l.lag AS parent_idx, l.lag, c.change
    FROM changes c CROSS JOIN range(0, $max_lag + 1) AS l(lag)
    WHERE c.change IS NOT NULL
), pairs AS (
    SELECT e.child, e.parent, p.grain, c.lag, c.change AS x, p.change AS y
    FROM _ns_edges e
    JOIN changes p ON p.metric = e.parent
    JOIN lagged c ON c.metric = e.child AND c.grain = p.grain AND c.parent_idx = p.idx
    WHERE p.change IS NOT NULL
), ranked AS (
    -- Spearman's rho is Pearson's r of the ranks (ties get their average rank): one outlier moves it little
    SELECT *,
           rank() OVER (PARTITION BY child, grain, lag ORDER BY x)
               + (count(*) OVER (PARTITION BY child, grain, lag, x) - 1) / 2.0 AS rank_x,
           rank() OVER (PARTITION BY child, grain, lag ORDER BY y)
               + (count(*) OVER (PARTITION BY child, grain, lag, y) - 1) / 2.0 AS rank_y
    FROM pairs
)
SELECT child, parent, grain, lag, corr(x, y) AS r, count(*) AS n, corr(rank_x, rank_y) AS rho
FROM ranked
GROUP BY ALL
ORDER BY child, grain, lag
"""


def _p_value(r: float | None, n: int) -> float | None:
    """Two-sided p-value of a correlation under no correlation: t = r sqrt((n - 2) / (1 - r^2)) on n - 2 df.

    Exact for Pearson's r on normal data (what scipy.stats.pearsonr computes), the usual approximation for
    Spearman's rho (scipy.stats.spearmanr's). The t distribution's CDF is scipy.special.stdtr, the function
    scipy.stats.t uses: importing scipy.stats costs about a second on every build, scipy.special a tenth.
    """
    from scipy import special  # imported by a build's scoring only

    if r is None or n < 4 or math.isnan(r):
        return None
    if abs(r) >= 1:
        return 0.0
    t = abs(r) * math.sqrt((n - 2) / (1 - r * r))
    return float(2 * special.stdtr(n - 2, -t))


def _register_inputs(con: duckdb.DuckDBPyConnection, manifest: Manifest, metrics: list[TreeMetric]) -> None:
    kind_order = {MetricKind.NORTH_STAR: 0, MetricKind.INPUT: 1, MetricKind.COUNTER: 2, MetricKind.OUTCOME: 3}
    configs = [m.config for m in metrics]
    thresholds = [c.threshold for c in configs]
    columns = [("metric", "VARCHAR"), ("label", "VARCHAR"), ("kind", "VARCHAR"), ("kind_order", "TINYINT"),
               ("level", "INTEGER"), ("parent", "VARCHAR"), ("edge", "VARCHAR"), ("owner", "VARCHAR"),
               ("dimension", "VARCHAR"), ("direction", "VARCHAR"), ("is_ratio", "BOOLEAN"), ("config_target", "DOUBLE"),
               ("warn_change_pct", "DOUBLE"), ("breach_change_pct", "DOUBLE"), ("floor", "DOUBLE"),
               ("ceiling", "DOUBLE"), ("warn_change", "DOUBLE"), ("breach_change", "DOUBLE"),
               ("definition_hash", "VARCHAR"), ("unit", "VARCHAR")]
    rows = [(m.name, c.label, c.kind.value, kind_order[c.kind], m.level, c.parent or c.guard,
             c.edge.value if c.edge else None, c.owner, c.dimension.value if c.dimension else None, c.direction.value,
             m.node.is_ratio, c.target, *((t.warn_change_pct, t.breach_change_pct, t.floor, t.ceiling, t.warn_change,
                                           t.breach_change) if t else (None,) * 6), m.node.definition_hash, c.unit)
            for m, c, t in zip(metrics, configs, thresholds)]
    create_rows_table(con, "_ns_meta", columns, rows)
    _add_coverage(con)
    parts = [
        exp.select(exp.Literal.string(m.name).as_("metric"), "grain", "period_start", "value", "numerator",
                   "denominator", "is_to_date").from_(exp.table_(m.node.name, db=m.node.schema, quoted=True))
        for m in metrics
    ]
    con.execute(f"CREATE OR REPLACE TEMP TABLE _ns_values AS {union_all(parts).sql('duckdb')}")
    has_targets = any(n.name == "targets" and n.schema == "seeds" for n in manifest.nodes) and _table_exists(
        con, "seeds", "targets")
    targets = ("SELECT CAST(metric AS VARCHAR) AS metric, CAST(grain AS VARCHAR) AS grain, "
               "CAST(period_start AS DATE) AS period_start, CAST(target AS DOUBLE) AS target FROM seeds.targets"
               if has_targets else
               "SELECT NULL::VARCHAR AS metric, NULL::VARCHAR AS grain, NULL::DATE AS period_start, NULL::DOUBLE AS target WHERE false")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _ns_targets AS {targets}")


def _add_coverage(con: duckdb.DuckDBPyConnection) -> None:
    """_ns_meta.covered_from: the first day each metric's data covers (engines/coverage.py), null if unknown."""
    con.execute("ALTER TABLE _ns_meta ADD COLUMN covered_from DATE")
    if _table_exists(con, "_northstar", "coverage"):
        con.execute("UPDATE _ns_meta SET covered_from = c.first_day FROM _northstar.coverage c "
                    "WHERE c.metric = _ns_meta.metric")


_INTERVAL_SQL = ("CASE {g} WHEN 'day' THEN INTERVAL 1 DAY WHEN 'week' THEN INTERVAL 7 DAY "
                 "WHEN 'month' THEN INTERVAL 1 MONTH ELSE INTERVAL 3 MONTH END")

_BASE_SQL = """
CREATE OR REPLACE TEMP TABLE _ns_base AS
WITH bounds AS (
    SELECT grain, min(period_start) AS first_start,
           greatest(max(period_start), CAST(date_trunc(grain, CAST($as_of AS TIMESTAMP)) AS DATE)) AS last_start
    FROM _ns_values WHERE NOT is_to_date GROUP BY grain
), spine AS (
    SELECT grain, CAST(unnest(generate_series(first_start, last_start, {interval_b})) AS DATE) AS period_start
    FROM bounds
), rows AS (
    SELECT m.metric, s.grain, s.period_start, m.is_ratio, m.covered_from,
           CAST(s.period_start + {interval_s} - INTERVAL 1 DAY AS DATE) AS period_end,
           -- complete = the data covers the period from its first day (README "Period completeness") ...
           m.covered_from IS NULL OR s.period_start >= m.covered_from AS covers_start,
           -- ... and to its last: it ended by the as-of
           CAST($as_of AS TIMESTAMP) IS NULL OR s.period_start + {interval_s} <= CAST($as_of AS TIMESTAMP) AS covers_end,
           CASE WHEN v.metric IS NOT NULL THEN v.value WHEN m.is_ratio THEN NULL ELSE 0 END AS value,
           CASE WHEN v.metric IS NOT NULL THEN v.numerator WHEN m.is_ratio THEN 0 END AS numerator,
           CASE WHEN v.metric IS NOT NULL THEN v.denominator WHEN m.is_ratio THEN 0 END AS denominator
    FROM spine s
    CROSS JOIN _ns_meta m
    LEFT JOIN _ns_values v
      ON v.metric = m.metric AND v.grain = s.grain AND v.period_start = s.period_start AND NOT v.is_to_date
), compared AS (
    SELECT r.*, r.covers_start AND r.covers_end AS is_complete,
           lag(r.period_start) OVER w AS previous_start,
           lag(r.value) OVER w AS previous_full_value,
           lag(r.covers_start AND r.covers_end) OVER w AS previous_complete,
           lag(r.covers_start) OVER w AS previous_covers_start
    FROM rows r
    WINDOW w AS (PARTITION BY r.metric, r.grain ORDER BY r.period_start)
)
SELECT c.metric, c.grain, c.period_start, c.period_end, c.is_complete, c.value, c.numerator, c.denominator,
       -- never a partial period against a full one: a period the data covers from its start is compared with
       -- the previous period only if that one is complete too, or (partial at the as-of) with its same span
       CASE WHEN c.previous_start IS NULL OR NOT c.covers_start THEN NULL
            WHEN c.is_complete THEN CASE WHEN c.previous_complete THEN c.previous_full_value END
            WHEN NOT c.previous_covers_start THEN NULL
            WHEN td.metric IS NOT NULL THEN td.value
            WHEN c.is_ratio THEN NULL ELSE 0 END AS previous_value,
       CASE WHEN c.previous_start IS NULL OR NOT c.covers_start THEN NULL
            WHEN c.is_complete THEN CASE WHEN c.previous_complete THEN 'previous_period' END
            WHEN c.previous_covers_start THEN 'period_to_date' END AS comparison,
       CASE WHEN c.is_complete THEN 'complete' WHEN c.covers_end THEN 'partial_start'
            WHEN c.covers_start THEN 'partial_end' ELSE 'partial_both' END AS completeness,
       c.covered_from AS data_from
FROM compared c
LEFT JOIN _ns_values td
  ON td.is_to_date AND td.metric = c.metric AND td.grain = c.grain AND td.period_start = c.previous_start
  AND NOT c.is_complete
"""


def _build_base(con: duckdb.DuckDBPyConnection, manifest: Manifest) -> None:
    sql = _BASE_SQL.format(interval_b=_INTERVAL_SQL.format(g="grain"), interval_s=_INTERVAL_SQL.format(g="s.grain"))
    con.execute(sql, {"as_of": manifest.as_of})
    con.execute("ALTER TABLE _ns_base ADD COLUMN change DOUBLE")
    con.execute("UPDATE _ns_base SET change = value - previous_value")


def _checkable_formulas(tree: Tree, metrics: list[TreeMetric]) -> list[tuple[TreeMetric, dict[str, str]]]:
    """Formula parents built in this database with all their children, and a table alias per child."""
    present = {m.name for m in metrics}
    return [(p, {name: f"c{i}" for i, name in enumerate(p.formula.metrics)}) for p in tree.formula_parents
            if p.name in present and set(p.formula.metrics) <= present]


def _join_children(parent: str, aliases: dict[str, str]) -> exp.Select:
    query = exp.select().from_(exp.alias_(exp.to_table("_ns_base"), "p", table=True)).where(
        exp.column("metric", "p").eq(exp.Literal.string(parent)))
    for name, alias in aliases.items():
        on = exp.and_(
            exp.column("metric", alias).eq(exp.Literal.string(name)),
            exp.column("grain", alias).eq(exp.column("grain", "p")),
            exp.column("period_start", alias).eq(exp.column("period_start", "p")))
        query = query.join(exp.alias_(exp.to_table("_ns_base"), alias, table=True), on=on, join_type="left")
    return query


def _build_contributions(con: duckdb.DuckDBPyConnection, tree: Tree, metrics: list[TreeMetric]) -> None:
    parts = []
    for parent, aliases in _checkable_formulas(tree, metrics):
        shares = contribution_sql(parent.formula, lambda n: exp.column("value", aliases[n]),
                                  lambda n: exp.column("previous_value", aliases[n]))
        for name, share in shares.items():
            parts.append(_join_children(parent.name, aliases).select(
                exp.Literal.string(name).as_("metric"), exp.column("grain", "p"), exp.column("period_start", "p"),
                exp.cast(share, exp.DataType.Type.DOUBLE).as_("contribution")))
    if parts:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _ns_contributions AS {union_all(parts).sql('duckdb')}")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE _ns_contributions AS "
                    "SELECT NULL::VARCHAR AS metric, NULL::VARCHAR AS grain, NULL::DATE AS period_start, "
                    "NULL::DOUBLE AS contribution WHERE false")


_SCORECARD_SQL = """
CREATE OR REPLACE TABLE scorecard.scorecard AS
WITH scored AS (
    SELECT b.*, m.label, m.kind, m.kind_order, m.level, m.parent, m.edge, m.owner, m.dimension, m.direction,
           m.definition_hash, m.unit, m.warn_change_pct, m.breach_change_pct, m.floor, m.ceiling, m.warn_change, m.breach_change,
           CASE WHEN b.previous_value IS NULL OR b.previous_value = 0 THEN NULL
                ELSE b.change / abs(b.previous_value) END AS change_pct,
           coalesce(t.target, m.config_target) AS target,
           c.contribution
    FROM _ns_base b
    JOIN _ns_meta m USING (metric)
    LEFT JOIN _ns_targets t USING (metric, grain, period_start)
    LEFT JOIN _ns_contributions c USING (metric, grain, period_start)
), judged AS (
    SELECT *,
        CASE WHEN direction = 'lower_is_better' THEN change_pct ELSE -change_pct END AS bad_move,
        CASE WHEN direction = 'lower_is_better' THEN change ELSE -change END AS bad_change,
        -- from zero or across it a relative move has no size: a move the bad way then exceeds every relative threshold
        previous_value = 0 OR previous_value * value < 0 AS crosses_zero,
        value / nullif(target, 0) AS target_pct
    FROM scored
), banded AS (
    SELECT *,
        -- A partial period is never judged against a full period's target; its trend judges it.
        CASE WHEN target IS NULL OR value IS NULL OR NOT is_complete THEN NULL
             WHEN direction = 'lower_is_better' THEN
                 CASE WHEN value <= target THEN 'green' WHEN value <= target * (1 + $target_yellow) THEN 'yellow' ELSE 'red' END
             ELSE CASE WHEN value >= target THEN 'green' WHEN value >= target * (1 - $target_yellow) THEN 'yellow' ELSE 'red' END
        END AS target_status,
        CASE WHEN kind <> 'counter' OR value IS NULL THEN NULL
             WHEN (floor IS NOT NULL AND value < floor) OR (ceiling IS NOT NULL AND value > ceiling) THEN 'red'
             -- nothing to compare (first period, or after a partial one): only bounds can judge
             WHEN previous_value IS NULL THEN CASE WHEN floor IS NOT NULL OR ceiling IS NOT NULL THEN 'green' END
             WHEN breach_change IS NOT NULL AND bad_change > 0 AND bad_change >= breach_change THEN 'red'
             WHEN breach_change_pct IS NOT NULL AND (CASE WHEN crosses_zero THEN bad_change > 0
                                                          ELSE bad_move * 100 >= breach_change_pct END) THEN 'red'
             WHEN warn_change IS NOT NULL AND bad_change > 0 AND bad_change >= warn_change THEN 'yellow'
             WHEN warn_change_pct IS NOT NULL AND (CASE WHEN crosses_zero THEN bad_change > 0
                                                        ELSE bad_move * 100 >= warn_change_pct END) THEN 'yellow'
             ELSE 'green'
        END AS guard_status,
        CASE WHEN bad_move IS NULL THEN NULL WHEN bad_move >= $trend_red THEN 'red'
             WHEN bad_move >= $trend_yellow THEN 'yellow' ELSE 'green' END AS trend_status
    FROM judged
)
SELECT
    metric, label, kind, level, parent, edge, owner, dimension, direction, grain, period_start, period_end,
    is_complete, value, numerator, denominator, previous_value, comparison, change, change_pct,
    target, target_pct,
    CASE WHEN kind = 'counter' THEN
             CASE greatest(CASE guard_status WHEN 'red' THEN 2 WHEN 'yellow' THEN 1 WHEN 'green' THEN 0 END,
                           CASE target_status WHEN 'red' THEN 2 WHEN 'yellow' THEN 1 WHEN 'green' THEN 0 END)
                 WHEN 2 THEN 'red' WHEN 1 THEN 'yellow' WHEN 0 THEN 'green' END
         ELSE coalesce(target_status, trend_status) END AS status,
    CASE WHEN kind = 'counter' AND guard_status IS NOT NULL THEN 'guardrail'
         WHEN target_status IS NOT NULL THEN 'target'
         WHEN trend_status IS NOT NULL THEN 'trend' END AS status_basis,
    CASE WHEN kind = 'counter' THEN coalesce(guard_status = 'red', false) END AS guardrail_breached,
    contribution,
    CAST(CASE WHEN kind = 'north_star' THEN change END AS DOUBLE) AS contribution_to_nsm,
    CAST(NULL AS DOUBLE) AS correlation,
    CAST(NULL AS INTEGER) AS correlation_lag,
    list(value) FILTER (WHERE is_complete) OVER (
        PARTITION BY metric, grain ORDER BY period_start ROWS BETWEEN 12 PRECEDING AND CURRENT ROW)[-12:] AS sparkline,
    definition_hash,
    CAST($as_of AS TIMESTAMP) AS as_of,
    CAST($run_id AS VARCHAR) AS run_id,
    CAST($built_at AS TIMESTAMP) AS built_at,
    completeness,
    data_from,
    unit
FROM banded
ORDER BY kind_order, level NULLS LAST, metric, grain, period_start
"""


def _build_scorecard(con: duckdb.DuckDBPyConnection, tree: Tree, as_of: datetime | None, run_id: str,
                     built_at: str) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS scorecard")
    con.execute(_SCORECARD_SQL, {
        "run_id": run_id, "built_at": built_at, "as_of": as_of,
        "target_yellow": TARGET_YELLOW, "trend_yellow": TREND_YELLOW, "trend_red": TREND_RED,
    })
    # contribution_to_nsm chains down formula edges: a child's share of its parent's change,
    # scaled by the parent's own share of the North Star's change.
    depth = max((m.level or 0) for m in tree.metrics)
    for level in range(1, depth + 1):
        con.execute("""
            UPDATE scorecard.scorecard AS s
            SET contribution_to_nsm = CASE WHEN p.kind = 'north_star' THEN s.contribution
                                           ELSE s.contribution * p.contribution_to_nsm / nullif(p.change, 0) END
            FROM scorecard.scorecard AS p
            WHERE s.level = $level AND s.edge = 'formula' AND p.metric = s.parent
              AND p.grain = s.grain AND p.period_start = s.period_start
        """, {"level": level})
    con.execute("""
        UPDATE scorecard.scorecard AS s SET correlation = v.r, correlation_lag = v.lag
        FROM scorecard.tree_validation AS v
        WHERE v.validation = 'hypothesis' AND v.is_best_lag AND v.child = s.metric AND v.grain = s.grain
    """)


def _build_validation(con: duckdb.DuckDBPyConnection, checks: list[FormulaCheck], hypotheses: list[tuple],
                      tree: Tree, table: str = VALIDATION) -> None:
    best: dict[tuple[str, str], tuple] = {}
    lags_tested: dict[tuple[str, str], int] = {}
    for row in hypotheses:
        child, _, grain, _, r, n, _, rho, _ = row
        if r is None or rho is None or n < MIN_PAIRS or math.isnan(r) or math.isnan(rho):
            continue
        key = (child, grain)
        lags_tested[key] = lags_tested.get(key, 0) + 1
        # the best lag is the one both statistics agree on most: one outlier pair cannot pick it
        if key not in best or _strength(row) > _strength(best[key]):
            best[key] = row
    rows: dict[str, list] = {k: [] for k in ("validation", "metric", "child", "grain", "formula", "lag", "r", "n",
                                             "p_value", "is_best_lag", "supported", "holds", "periods_checked",
                                             "max_rel_error", "first_break", "parent_value", "formula_value",
                                             "spearman_r", "spearman_p_value", "lags_tested", "p_value_adjusted")}

    def add(**values: object) -> None:
        for key in rows:
            rows[key].append(values.get(key))

    for c in checks:
        add(validation="formula", metric=c.metric, grain=c.grain, formula=tree.get(c.metric).formula.text,
            holds=c.first_break is None, periods_checked=c.periods, max_rel_error=c.max_rel_error,
            first_break=c.first_break, parent_value=c.parent_value, formula_value=c.formula_value)
    for row in hypotheses:
        child, parent, grain, lag, r, n, p_value, rho, rho_p = row
        is_best = best.get((child, grain)) is row
        expected = 1 if tree.get(child).config.direction is tree.get(parent).config.direction else -1
        supported = adjusted = None
        tested = lags_tested.get((child, grain), 0)
        if is_best:
            # Bonferroni over the lags tried: picking the best of k lags is k chances to be lucky. Spearman's rho
            # must agree (sign and p < 0.05): a single outlying pair can make r, not the ranks, look strong.
            adjusted = min(1.0, tested * p_value)
            supported = (adjusted < SIGNIFICANCE and rho_p < SIGNIFICANCE and math.copysign(1, r) == expected
                         and math.copysign(1, rho) == expected)
        add(validation="hypothesis", metric=parent, child=child, grain=grain, lag=lag,
            r=None if r is None or math.isnan(r) else r, n=n, p_value=p_value, is_best_lag=is_best,
            supported=supported, spearman_r=None if rho is None or math.isnan(rho) else rho,
            spearman_p_value=rho_p, lags_tested=tested, p_value_adjusted=adjusted)
    types = {"lag": "INTEGER", "r": "DOUBLE", "n": "BIGINT", "p_value": "DOUBLE", "is_best_lag": "BOOLEAN",
             "supported": "BOOLEAN", "holds": "BOOLEAN", "periods_checked": "BIGINT", "max_rel_error": "DOUBLE",
             "first_break": "DATE", "parent_value": "DOUBLE", "formula_value": "DOUBLE", "spearman_r": "DOUBLE",
             "spearman_p_value": "DOUBLE", "lags_tested": "INTEGER", "p_value_adjusted": "DOUBLE"}
    if table == VALIDATION:
        con.execute("CREATE SCHEMA IF NOT EXISTS scorecard")
    create_rows_table(con, table, [(k, types.get(k, "VARCHAR")) for k in rows], list(zip(*rows.values())),
                      temp=table != VALIDATION)


_GRAIN_ORDER = {"day": 0, "week": 1, "month": 2, "quarter": 3}


def first_break(broken: list[FormulaCheck]) -> FormulaCheck:
    """The break to report: the first period to end broken, over every formula and grain (finer grain on a tie).

    A week that breaks inside a month ends first: reporting the month would hide which week it was.
    """
    return min(broken, key=lambda c: (next_start(Grain(c.grain), c.first_break), _GRAIN_ORDER.get(c.grain, 9),
                                      c.metric))


def _strength(row: tuple) -> float:
    """The weaker of |Pearson r| and |Spearman rho| of a hypothesis row."""
    return min(abs(row[4]), abs(row[7]))


def _formula_error(tree: Tree, check: FormulaCheck) -> FormulaError:
    metric = tree.get(check.metric)
    if check.formula_value is None or check.parent_value is None:
        gap = f"{metric.name} = {check.parent_value} but the formula gives {check.formula_value}"
    else:
        diff = check.parent_value - check.formula_value
        rel = abs(diff) / max(abs(check.parent_value), abs(check.formula_value))
        gap = (f"{metric.name} = {check.parent_value:.10g} but {metric.formula.text} = {check.formula_value:.10g} "
               f"(off by {diff:.6g}, {rel:.3%})")
    children = ", ".join(tree.get(name).node.relpath.as_posix() for name in metric.formula.metrics)
    return FormulaError(
        f"formula does not hold for {check.grain} {check.first_break} (its first break): {gap}",
        path=metric.node.relpath, line=metric.config.line,
        hint=f"the parent is {metric.node.relpath.as_posix()}, its formula children {children}: fix the formula or "
             "the definitions so the parent is exactly the formula of its children, or make the edges 'hypothesis' "
             "if the relation is not arithmetic; every grain's check is in target/tree_validation.parquet")


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    rows = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                       [schema, name]).fetchall()
    return bool(rows[0][0])
