"""The period-local check's two-level aggregate (metrics/retention_4w.sql's shape): an outer SELECT grouping
ONE period() CTE by its period_start is accepted; the near misses are not."""

from __future__ import annotations

import sqlglot

from northstar_pipeline.engines.incremental_metrics import period_scopes

PERIOD = "CAST(DATE_TRUNC('WEEK', placed_at) AS DATE)"
CTE = (f"WITH c AS (SELECT {PERIOD} AS period_start, user_id, bool_or(prev_at < {PERIOD}) AS kept "
       "FROM s.o GROUP BY 1, 2)")


def reason(sql: str) -> str:
    scopes = period_scopes(sqlglot.parse_one(sql, read="duckdb"), "week", False)
    return scopes if isinstance(scopes, str) else "local"


def test_an_aggregate_of_one_period_cte_by_its_period_start_is_period_local() -> None:
    assert reason(f"{CTE} SELECT period_start, count(*) FILTER (WHERE kept) / count(*) AS value FROM c GROUP BY 1") \
        == "local"
    assert reason(f"{CTE} SELECT c.period_start, count(*) AS value FROM c WHERE kept GROUP BY c.period_start") \
        == "local"
    derived = CTE.removeprefix("WITH c AS ")
    assert reason(f"SELECT period_start, count(*) AS value FROM {derived} AS c GROUP BY 1") == "local"
    query = sqlglot.parse_one(f"SELECT period_start, count(*) AS value FROM {derived} AS c GROUP BY 1", read="duckdb")
    [scope] = period_scopes(query, "week", False)
    assert scope.select is query.args["from_"].this.this  # the bound x >= C goes into the derived table
    scopes = period_scopes(sqlglot.parse_one(f"{CTE} SELECT period_start, count(*) AS value FROM c GROUP BY 1",
                                             read="duckdb"), "week", False)
    assert [s.table.name for s in scopes] == ["o"]  # the bound x >= C goes into the CTE's WHERE


def test_the_near_misses_are_not() -> None:
    derived = CTE.removeprefix("WITH c AS ")
    # grouped by something else than period_start: a row per customer spans periods
    assert "something else than the CTE's period_start" in reason(
        f"{CTE} SELECT min(period_start) AS period_start, count(*) AS value FROM c GROUP BY user_id")
    assert "something else than the CTE's period_start" in reason(
        f"{CTE} SELECT period_start, count(*) AS value FROM c GROUP BY period_start, user_id")
    assert "something else than the CTE's period_start" in reason(
        f"{CTE} SELECT period_start + 7 AS period_start, count(*) AS value FROM c GROUP BY 1")
    # a window over periods (a running total)
    assert "window" in reason(f"{CTE} SELECT period_start, sum(count(*)) OVER (ORDER BY period_start) AS value "
                              "FROM c GROUP BY 1")
    # a join (of the CTE to itself four weeks on, or to a ref)
    assert "join" in reason(f"{CTE} SELECT c.period_start, count(*) AS value FROM c JOIN c AS d "
                            "ON d.period_start = c.period_start GROUP BY 1")
    assert "join" in reason(f"{CTE} SELECT c.period_start, count(*) AS value FROM c JOIN s.u AS u "
                            "ON u.user_id = c.user_id GROUP BY 1")
    # two CTEs, HAVING, a subquery, the clock, a ref instead of the CTE, a CTE that is not period-local
    two = f"{CTE}, d AS (SELECT {PERIOD} AS period_start, count(*) AS n FROM s.p GROUP BY 1)"
    assert "more than one CTE" in reason(f"{two} SELECT period_start, count(*) AS value FROM c GROUP BY 1")
    assert "HAVING" in reason(f"{CTE} SELECT period_start, count(*) AS value FROM c GROUP BY 1 HAVING count(*) > 1")
    assert "subquery" in reason(f"{CTE} SELECT period_start, count(*) AS value FROM c "
                                "WHERE user_id IN (SELECT user_id FROM s.u) GROUP BY 1")
    assert "clock" in reason(f"{CTE} SELECT period_start, count(*) AS value FROM c "
                             "WHERE period_start >= current_date - 90 GROUP BY 1")
    assert "CTE c" in reason(f"WITH c AS (SELECT {PERIOD} AS period_start, user_id, "
                             "sum(count(*)) OVER (PARTITION BY user_id) AS n FROM s.o GROUP BY 1, 2) "
                             "SELECT period_start, count(*) AS value FROM c GROUP BY 1")
    assert "CTE c" in reason("WITH c AS (SELECT user_id, count(*) AS n FROM s.o GROUP BY 1) "
                             "SELECT period_start, count(*) AS value FROM c GROUP BY 1")
    # the same near misses through a derived table instead of a CTE
    assert "something else than the CTE's period_start" in reason(
        f"SELECT min(period_start) AS period_start, count(*) AS value FROM {derived} AS c GROUP BY user_id")
    assert "join" in reason(f"SELECT c.period_start, count(*) AS value FROM {derived} AS c JOIN s.u AS u "
                            "ON u.user_id = c.user_id GROUP BY 1")
    assert "the subquery: HAVING" in reason(f"SELECT period_start, count(*) AS value FROM (SELECT {PERIOD} AS "
                                           "period_start, user_id FROM s.o GROUP BY 1, 2 HAVING count(*) > 1) AS c "
                                           "GROUP BY 1")
    # the old retention: a CTE joining stg_orders to itself 28 days back
    assert "CTE" in reason(f"WITH f AS (SELECT user_id, {PERIOD} AS period_start, min(placed_at) AS first_at "
                           "FROM s.o GROUP BY 1, 2), r AS (SELECT f.period_start, f.user_id, count(p.order_id) > 0 AS k "
                           "FROM f LEFT JOIN s.o AS p ON p.user_id = f.user_id GROUP BY 1, 2) "
                           "SELECT period_start, count(*) AS value FROM r GROUP BY 1")
