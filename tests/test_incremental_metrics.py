"""Incremental metrics: a night recomputes only the periods its delta touches, and falls back to a full
rebuild (saying why) whenever that is not provably right. Values are checked against a --full-refresh
build and against SQL written here over the raw events."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import copy_demo_project
from test_incremental import same_numbers, scorecard_values

from northstar_pipeline import api
from northstar_pipeline.build.pipeline import recomputed_periods
from northstar_pipeline.demo.append_day import append_day
from northstar_pipeline.errors import DataTestError
from northstar_pipeline.engines.incremental_metrics import period_scopes, union_parts, part_shape

# A cumulative count: a window function over periods (a late order changes every later period).
CUMULATIVE = """{{ config(kind='outcome', label='Orders to date', unit='count') }}
select {{ period('placed_at') }} as period_start, sum(count(*)) over (order by {{ period('placed_at') }}) as value
from {{ ref('stg_orders') }}
group by 1
"""
# Two refs joined row by row: a delivery's period is its order's, not its own.
JOINED = """{{ config(kind='outcome', label='Deliveries by order week', unit='count') }}
select {{ period('o.placed_at') }} as period_start, count(d.order_id) as value
from {{ ref('stg_orders') }} as o
join {{ ref('stg_deliveries') }} as d on d.order_id = o.order_id
group by 1
"""


@pytest.fixture
def lake(tmp_path: Path, warehouse) -> Path:
    events = tmp_path / "warehouse" / "events"
    shutil.copytree(warehouse.events_dir, events)
    return events


def metric_table(project: Path, name: str, schema: str) -> list[tuple]:
    con = duckdb.connect(str(project / "target" / "dev.duckdb"), read_only=True)
    try:
        return con.execute(f'SELECT grain, is_to_date, period_start, value FROM "{schema}"."{name}" '
                           "ORDER BY ALL").fetchall()
    finally:
        con.close()


def same_rows(got: list[tuple], want: list[tuple]) -> bool:
    """Same (grain, is_to_date, period_start) keys, values equal to 1e-9."""
    return [r[:3] for r in got] == [r[:3] for r in want] and all(
        (a[3] is None) == (b[3] is None) and (a[3] is None or abs(a[3] - b[3]) <= 1e-9 * max(1.0, abs(b[3])))
        for a, b in zip(got, want, strict=True))


def test_not_period_local_metrics_rebuild_in_full_and_equal_a_full_refresh(tmp_path: Path, lake: Path,
                                                                          warehouse) -> None:
    nightly = copy_demo_project(tmp_path / "nightly", lake)
    (nightly / "metrics" / "orders_to_date.sql").write_text(CUMULATIVE)
    (nightly / "metrics" / "deliveries_by_order_week.sql").write_text(JOINED)
    api.build(api.load(nightly))
    append_day(lake.parent, warehouse.last_day + datetime.timedelta(days=1))
    result = api.build(api.load(nightly))
    by_name = {r.name: r for r in result.results}
    assert by_name["orders_to_date"].mode == "full" and "window function" in by_name["orders_to_date"].fallback
    assert by_name["deliveries_by_order_week"].mode == "full" and "join" in by_name["deliveries_by_order_week"].fallback
    assert recomputed_periods(result.results)["orders_to_date"] == {"week": None, "month": None}
    assert by_name["items_per_order"].mode == "incremental"  # the others still are
    full = copy_demo_project(tmp_path / "full", lake)
    shutil.copy(nightly / "metrics" / "orders_to_date.sql", full / "metrics")
    shutil.copy(nightly / "metrics" / "deliveries_by_order_week.sql", full / "metrics")
    api.build(api.load(full), full_refresh=True)
    for name in ("orders_to_date", "deliveries_by_order_week", "support_tickets_per_order", "on_time_rate"):
        schema = {"support_tickets_per_order": "counter", "on_time_rate": "inputs_l1"}.get(name, "outcome")
        assert same_rows(metric_table(nightly, name, schema), metric_table(full, name, schema)), name
    assert same_numbers(scorecard_values(nightly), scorecard_values(full))


def test_a_definition_change_rebuilds_the_metric_in_full(tmp_path: Path, lake: Path, warehouse) -> None:
    project = copy_demo_project(tmp_path / "project", lake)
    api.build(api.load(project))
    metric = project / "metrics" / "items_per_order.sql"
    metric.write_text(metric.read_text().replace("sum(items) / count(*) as value", "avg(items) as value"))
    append_day(lake.parent, warehouse.last_day + datetime.timedelta(days=1))
    result = {r.name: r for r in api.build(api.load(project)).results}
    assert result["items_per_order"].mode == "full" and "definition" in result["items_per_order"].fallback
    assert result["items_per_order"].recomputed_from == {"week": None, "month": None}
    assert result["orders_per_customer"].mode == "incremental"
    result = {r.name: r for r in api.build(api.load(project), full_refresh=True).results}
    assert result["items_per_order"].mode == "full" and result["items_per_order"].fallback == "--full-refresh"


def test_a_late_event_recomputes_its_old_period(tmp_path: Path, lake: Path, warehouse) -> None:
    project = copy_demo_project(tmp_path / "project", lake)
    api.build(api.load(project))
    day = warehouse.last_day + datetime.timedelta(days=1)
    append_day(lake.parent, day)
    # One more order placed three months ago, landing tonight (a late file), with a basket of 40 items.
    late_at = datetime.datetime.combine(day - datetime.timedelta(days=90), datetime.time(12))
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT * EXCLUDE (landed_date) REPLACE (
                        (SELECT max(event_id) + 1 FROM read_parquet('{lake}/**/*.parquet')) AS event_id,
                        (SELECT max(order_id) + 1 FROM read_parquet('{lake}/**/*.parquet')) AS order_id,
                        TIMESTAMP '{late_at}' AS occurred_at, 40 AS items)
                    FROM read_parquet('{lake}/**/*.parquet', hive_partitioning = true)
                    WHERE event_type = 'order_placed' LIMIT 1)
                    TO '{lake}/landed_date={day}/late.parquet' (FORMAT parquet)""")
    result = api.build(api.load(project))
    cuts = recomputed_periods(result.results)["items_per_order"]
    month = late_at.date().replace(day=1)
    week = late_at.date() - datetime.timedelta(days=late_at.weekday())
    assert cuts == {"week": week.isoformat(), "month": month.isoformat()}
    # Independent SQL over the raw events: first landing of each event, orders by the month they were placed.
    expected = con.execute(f"""
        SELECT sum(items) / count(*) FROM (
            SELECT * FROM read_parquet('{lake}/**/*.parquet', hive_partitioning = true)
            QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY landed_at) = 1)
        WHERE event_type = 'order_placed' AND date_trunc('month', occurred_at) = DATE '{month}'""").fetchall()[0][0]
    got = [v for g, td, start, v in metric_table(project, "items_per_order", "inputs_l1")
           if g == "month" and not td and start == month]
    assert got == [pytest.approx(expected, rel=1e-12)]


def test_period_local_is_read_from_the_ast() -> None:
    """The check itself on compiled queries: what passes and why the others do not."""
    import sqlglot

    def reason(sql: str):
        scopes = period_scopes(sqlglot.parse_one(sql, read="duckdb"), "week", False)
        return scopes if isinstance(scopes, str) else "local"

    period = "CAST(DATE_TRUNC('WEEK', placed_at) AS DATE)"
    assert reason(f"SELECT {period} AS period_start, count(*) AS value FROM s.o GROUP BY 1") == "local"
    assert reason(f"SELECT {period} AS period_start, count(*) AS value FROM s.o GROUP BY {period}") == "local"
    assert "HAVING" in reason(f"SELECT {period} AS period_start, count(*) AS value FROM s.o GROUP BY 1 HAVING count(*) > 1")
    assert "subquery" in reason(f"SELECT {period} AS period_start, count(*) AS value FROM s.o "
                                "WHERE user_id IN (SELECT user_id FROM s.u) GROUP BY 1")
    assert "set operation" in reason(f"SELECT {period} AS period_start, 1 AS value FROM s.o GROUP BY 1 UNION ALL "
                                     f"SELECT {period} AS period_start, 1 AS value FROM s.p GROUP BY 1")
    assert "GROUP BY" in reason(f"SELECT {period} AS period_start, placed_at AS value FROM s.o")
    # A 4-week look-ahead (retention): the outer join is not on period_start.
    assert "period_start" in reason(f"""WITH a AS (SELECT {period} AS period_start, count(*) AS n FROM s.o GROUP BY 1)
        SELECT a.period_start, b.n / a.n AS value FROM a JOIN a AS b ON b.period_start = a.period_start + 28""")
    outer = f"""WITH a AS (SELECT {period} AS period_start, count(*) AS n FROM s.o GROUP BY 1),
        b AS (SELECT CAST(DATE_TRUNC('WEEK', opened_at) AS DATE) AS period_start, count(*) AS n FROM s.t GROUP BY 1)
        SELECT a.period_start, b.n / a.n AS value FROM a LEFT JOIN b ON b.period_start = a.period_start"""
    assert reason(outer) == "local"
    compiled = sqlglot.parse_one(f"SELECT 'week' AS grain, m.period_start, FALSE AS is_to_date FROM ({outer}) AS m",
                                 read="duckdb")
    assert [part_shape(p)[:2] for p in union_parts(compiled)] == [("week", False)]


def test_data_tests_check_only_the_new_rows_and_still_catch_a_duplicate(tmp_path: Path, lake: Path,
                                                                      warehouse) -> None:
    project = copy_demo_project(tmp_path / "project", lake)
    api.build(api.load(project))
    day = warehouse.last_day + datetime.timedelta(days=1)
    append_day(lake.parent, day)
    tests = {t["test"]: t for t in api.build(api.load(project)).tests}
    assert "new rows only" in tests["unique_stg_events_event_id"].get("message", "")
    assert "new rows only" in tests["unique_stg_orders_order_id"].get("message", "")
    # the parent's delta removed no order_id: only the night's deliveries need an order
    assert "new rows only" in tests["relationships_stg_deliveries_order_id"].get("message", "")
    assert "new rows only" not in tests["assert_delivered_after_placed"].get("message", "")  # singular: full
    # Two orders with one new order_id land the next night: the batch's check must fail as a full one does.
    day += datetime.timedelta(days=1)
    append_day(lake.parent, day)
    duckdb.connect().execute(f"""COPY (SELECT * EXCLUDE (landed_date) REPLACE (
                (SELECT max(event_id) FROM read_parquet('{lake}/**/*.parquet')) + row_number() OVER () AS event_id,
                (SELECT max(order_id) + 1 FROM read_parquet('{lake}/**/*.parquet')) AS order_id)
            FROM read_parquet('{lake}/**/*.parquet', hive_partitioning = true)
            WHERE event_type = 'order_placed' LIMIT 2) TO '{lake}/landed_date={day}/dup.parquet' (FORMAT parquet)""")
    with pytest.raises(DataTestError, match=r"unique_stg_orders_order_id \(1 failing\)"):
        api.build(api.load(project))


def test_a_nights_delivery_without_its_order_fails_the_narrowed_relationships_test(tmp_path: Path, lake: Path,
                                                                                   warehouse) -> None:
    """relationships checks only the night's deliveries, and still counts the night's orphans as a full run
    does (SQL written here over the built tables)."""
    project = copy_demo_project(tmp_path / "project", lake)
    api.build(api.load(project))
    day = warehouse.last_day + datetime.timedelta(days=1)
    append_day(lake.parent, day)
    # Eleven deliveries of orders that never existed (error_if: ">10"), landed with the night.
    duckdb.connect().execute(f"""COPY (SELECT * EXCLUDE (landed_date) REPLACE (
                (SELECT max(event_id) FROM read_parquet('{lake}/**/*.parquet')) + row_number() OVER () AS event_id,
                (SELECT max(order_id) FROM read_parquet('{lake}/**/*.parquet')) + 1000 + row_number() OVER () AS order_id)
            FROM read_parquet('{lake}/**/*.parquet', hive_partitioning = true)
            WHERE event_type = 'order_delivered' LIMIT 11) TO '{lake}/landed_date={day}/orphans.parquet' (FORMAT parquet)""")
    with pytest.raises(DataTestError, match=r"relationships_stg_deliveries_order_id \(11 failing\)") as info:
        api.build(api.load(project))
    result = next(t for t in info.value.results if t.name == "relationships_stg_deliveries_order_id")
    assert "new rows only" in result.message
    # The build rolled back; the same count from the lake itself: deliveries whose order was never placed.
    orphans = duckdb.sql(f"""SELECT count(DISTINCT d.order_id) FROM read_parquet('{lake}/**/*.parquet') d
        WHERE d.event_type = 'order_delivered' AND d.order_id NOT IN (
            SELECT order_id FROM read_parquet('{lake}/**/*.parquet') WHERE event_type = 'order_placed')""").fetchall()
    assert orphans[0][0] == 11


def test_a_metric_of_the_clock_is_not_period_local() -> None:
    """"The last 90 days" changes every night with no input changing: rebuilt in full."""
    import sqlglot

    sql = ("SELECT CAST(DATE_TRUNC('WEEK', placed_at) AS DATE) AS period_start, count(*) AS value FROM s.o "
           "WHERE placed_at >= current_date - 90 GROUP BY 1")
    assert "clock" in period_scopes(sqlglot.parse_one(sql, read="duckdb"), "week", False)
