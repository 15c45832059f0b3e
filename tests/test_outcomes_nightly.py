"""The demo's outcomes on a night: a late order, a tied order and a re-delivered payment recompute only the periods they
touch, and the values equal the SQL written independently in tests/test_metric_values.py (retention with
EXISTS over the raw events, revenue over the raw payments)."""

from __future__ import annotations

import datetime
from pathlib import Path

import duckdb
import pytest
from conftest import copy_demo_project, copy_lake
from test_metric_values import ORACLE

from northstar_pipeline import api
from northstar_pipeline.build.pipeline import recomputed_periods
from northstar_pipeline.demo.append_day import append_day


def week_row(project: Path, start: datetime.date) -> tuple[int, int]:
    con = duckdb.connect(str(project / "target" / "dev.duckdb"), read_only=True)
    try:
        return con.execute("SELECT numerator, denominator FROM outcome.retention_4w WHERE grain = 'week' "
                           "AND NOT is_to_date AND period_start = ?", [start]).fetchall()[0]
    finally:
        con.close()


def test_a_late_order_and_a_redelivered_payment_recompute_their_periods_only(tmp_path: Path, warehouse) -> None:
    lake = copy_lake(warehouse, tmp_path / "warehouse")
    project = copy_demo_project(tmp_path / "project", lake / "events")
    api.build(api.load(project))
    day = warehouse.last_day + datetime.timedelta(days=1)
    append_day(lake, day)
    con = duckdb.connect(str(project / "target" / "dev.duckdb"), read_only=True)
    # Two customers' first orders of a week about two months back, each with no order in the 28 days before.
    (user, first_at), (twin_user, twin_at) = con.execute("""
        WITH o AS (SELECT user_id, placed_at, min(placed_at) OVER (PARTITION BY user_id,
                          date_trunc('week', placed_at)) AS first_at FROM staging.stg_orders)
        SELECT user_id, placed_at FROM o AS f
        WHERE placed_at = first_at AND placed_at BETWEEN ? AND ?
          AND NOT EXISTS (SELECT 1 FROM staging.stg_orders AS p WHERE p.user_id = f.user_id
                          AND p.placed_at < f.placed_at AND p.placed_at >= f.placed_at - INTERVAL 28 DAY)
        QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY placed_at) = 1
        ORDER BY ALL LIMIT 2""", [day - datetime.timedelta(days=70), day - datetime.timedelta(days=50)]).fetchall()
    con.close()
    week = first_at.date() - datetime.timedelta(days=first_at.weekday())
    before = week_row(project, week)
    # Tonight, a late file: an order of that customer ten days before it (another week), so now retained.
    late_at = first_at - datetime.timedelta(days=10)
    events = f"{lake}/events/**/*.parquet"
    raw = duckdb.connect()
    # And a tie for the other one: a second order at the very time of its first (a tie is not a previous order).
    for n, (who, at) in enumerate(((user, late_at), (twin_user, twin_at))):
        raw.execute(f"""COPY (SELECT * EXCLUDE (landed_date) REPLACE (
                            (SELECT max(event_id) + 1 FROM read_parquet('{events}')) AS event_id,
                            (SELECT max(order_id) + 1 FROM read_parquet('{events}')) AS order_id,
                            TIMESTAMP '{at}' AS occurred_at)
                        FROM read_parquet('{events}', hive_partitioning = true)
                        WHERE event_type = 'order_placed' AND user_id = {int(who)} LIMIT 1)
                        TO '{lake}/events/landed_date={day}/late_{n}.parquet' (FORMAT parquet)""")
    # And yesterday's payments landing a second time (the same rows, another file).
    raw.execute(f"""COPY (SELECT * FROM read_parquet('{lake}/payments/payments_append_{day}.parquet'))
                    TO '{lake}/payments/payments_redelivered_{day}.parquet' (FORMAT parquet)""")
    result = api.build(api.load(project))
    by_name = {r.name: r for r in result.results}
    for name in ("stg_payments", "orders_with_previous", "revenue", "retention_4w"):
        assert by_name[name].mode == "incremental", (name, by_name[name].fallback)
    cuts = recomputed_periods(result.results)
    late_week = late_at.date() - datetime.timedelta(days=late_at.weekday())
    twin_week = twin_at.date() - datetime.timedelta(days=twin_at.weekday())
    assert cuts["retention_4w"]["week"] == min(late_week, twin_week).isoformat()  # not all history
    this_week = day - datetime.timedelta(days=day.weekday())
    assert cuts["revenue"]["week"] == this_week.isoformat()  # the re-delivered payments changed nothing older
    numerator, denominator = week_row(project, week)
    assert (numerator, denominator) == (before[0] + 1, before[1])  # by hand: that customer flips, the tie does not
    # Every period of both outcomes against the independent SQL.
    oracle = {(m, g, p): v for m, g, p, v in raw.execute(ORACLE, {"glob": events,
                                                                   "payments": f"{lake}/payments/*.parquet"}).fetchall()
              if m in ("revenue", "retention_4w")}
    got = {(m, g, p): v for m, g, p, v in raw.execute(
        "SELECT metric, grain, period_start, value FROM read_parquet(?) WHERE metric IN ('revenue', 'retention_4w')",
        [str(project / "target" / "scorecard.parquet")]).fetchall()}
    assert set(got) == set(oracle)
    for key, value in oracle.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
