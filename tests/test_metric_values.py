"""Every demo metric at every grain, against SQL written independently over the raw events.

The oracle deduplicates with DISTINCT (the pipeline uses row_number), buckets weeks
with isodow arithmetic and months with make_date (the pipeline uses date_trunc),
and joins orders to deliveries itself. The outcomes (revenue, 4-week retention) are checked the same
way: revenue over the raw payments Parquet, retention with EXISTS instead of the model's left join.
"""

from __future__ import annotations

import duckdb
import pytest
from conftest import events_glob

ORACLE = """
WITH raw AS (
    SELECT DISTINCT event_id, user_id, event_type, occurred_at, order_id, items, promised_at, delivered_at
    FROM read_parquet($glob, hive_partitioning = true)
), grains(grain) AS (VALUES ('week'), ('month')),
bucketed AS (
    SELECT r.*, g.grain,
        CASE g.grain WHEN 'week' THEN CAST(r.occurred_at AS DATE) - CAST(isodow(r.occurred_at) - 1 AS INTEGER)
                     ELSE make_date(year(r.occurred_at), month(r.occurred_at), 1) END AS p
    FROM raw r CROSS JOIN grains g
), placed AS (
    SELECT b.grain, b.p, b.order_id, b.user_id, b.items,
           EXISTS (SELECT 1 FROM raw d WHERE d.event_type = 'order_delivered' AND d.order_id = b.order_id
                   AND d.delivered_at <= d.promised_at) AS on_time
    FROM bucketed b WHERE b.event_type = 'order_placed'
), orders AS (
    SELECT grain, p, count(*) AS n, count(DISTINCT user_id) AS customers, sum(items) AS items,
           sum(CASE WHEN on_time THEN 1 ELSE 0 END) AS on_time
    FROM placed GROUP BY ALL
), events AS (
    SELECT grain, p,
        sum(CASE WHEN event_type = 'signup' THEN 1 ELSE 0 END) AS signups,
        sum(CASE WHEN event_type = 'push_sent' THEN 1 ELSE 0 END) AS sent,
        sum(CASE WHEN event_type = 'push_click' THEN 1 ELSE 0 END) AS clicks,
        sum(CASE WHEN event_type = 'search' THEN 1 ELSE 0 END) AS searches,
        sum(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS carts,
        sum(CASE WHEN event_type = 'support_ticket' THEN 1 ELSE 0 END) AS tickets
    FROM bucketed GROUP BY ALL
), lateness AS (
    SELECT grain, p, avg(epoch(delivered_at) - epoch(promised_at)) / 60 AS minutes_late
    FROM bucketed WHERE event_type = 'order_delivered' GROUP BY ALL
)
, paid AS (SELECT DISTINCT payment_id, paid_at, amount FROM read_parquet($payments)),
revenue AS (
    SELECT g.grain,
        CASE g.grain WHEN 'week' THEN CAST(paid_at AS DATE) - CAST(isodow(paid_at) - 1 AS INTEGER)
                     ELSE make_date(year(paid_at), month(paid_at), 1) END AS p,
        sum(amount) AS amount
    FROM paid CROSS JOIN grains g GROUP BY ALL
), firsts AS (
    SELECT f.grain, f.p, f.user_id,
           EXISTS (SELECT 1 FROM raw o WHERE o.event_type = 'order_placed' AND o.user_id = f.user_id
                   AND o.occurred_at < f.first_at AND o.occurred_at >= f.first_at - INTERVAL 28 DAY) AS retained
    FROM (SELECT grain, p, user_id, min(occurred_at) AS first_at FROM bucketed
          WHERE event_type = 'order_placed' GROUP BY ALL) AS f
)
SELECT 'on_time_orders', grain, p, on_time FROM orders
UNION ALL SELECT 'ordering_customers', grain, p, customers FROM orders
UNION ALL SELECT 'orders_per_customer', grain, p, n / customers FROM orders
UNION ALL SELECT 'on_time_rate', grain, p, on_time / n FROM orders
UNION ALL SELECT 'items_per_order', grain, p, items / n FROM orders
UNION ALL SELECT 'new_customers', grain, p, signups FROM events WHERE signups > 0
UNION ALL SELECT 'push_click_through_rate', grain, p, clicks / nullif(sent, 0) FROM events WHERE sent + clicks > 0
UNION ALL SELECT 'search_to_cart_rate', grain, p, carts / nullif(searches, 0) FROM events WHERE searches + carts > 0
UNION ALL SELECT 'avg_delivery_minutes_late', grain, p, minutes_late FROM lateness
UNION ALL SELECT 'support_tickets_per_order', o.grain, o.p, coalesce(e.tickets, 0) / o.n
    FROM orders o LEFT JOIN events e USING (grain, p)
UNION ALL SELECT 'revenue', o.grain, o.p, coalesce(r.amount, 0)  -- a week without payments is 0 (the spine)
    FROM orders o LEFT JOIN revenue r USING (grain, p)
UNION ALL SELECT 'retention_4w', grain, p, avg(CASE WHEN retained THEN 1.0 ELSE 0.0 END) FROM firsts GROUP BY ALL
"""


@pytest.fixture(scope="module")
def oracle(warehouse) -> dict[tuple[str, str, object], float | None]:
    rows = duckdb.connect().execute(ORACLE, {"glob": events_glob(warehouse),
                                             "payments": f"{warehouse.payments_dir}/*.parquet"}).fetchall()
    return {(m, g, p): v for m, g, p, v in rows}


@pytest.fixture(scope="module")
def scorecard(built_demo) -> dict[tuple[str, str, object], float | None]:
    project, _ = built_demo
    rows = duckdb.connect().execute(
        "SELECT metric, grain, period_start, value FROM read_parquet($path)", {"path": str(project.scorecard_path)}
    ).fetchall()
    return {(m, g, p): v for m, g, p, v in rows}


METRICS = ["on_time_orders", "ordering_customers", "orders_per_customer", "on_time_rate", "items_per_order",
           "new_customers", "push_click_through_rate", "search_to_cart_rate", "avg_delivery_minutes_late",
           "support_tickets_per_order", "revenue", "retention_4w"]  # the last two: outcomes, outside the tree


@pytest.mark.parametrize("grain", ["week", "month"])
@pytest.mark.parametrize("metric", METRICS)
def test_metric_matches_independent_sql(metric: str, grain: str, oracle: dict, scorecard: dict) -> None:
    expected = {k: v for k, v in oracle.items() if k[0] == metric and k[1] == grain}
    got = {k: v for k, v in scorecard.items() if k[0] == metric and k[1] == grain}
    assert len(expected) >= (40 if grain == "week" else 10), "the demo spans about a year"
    assert set(got) == set(expected)
    for key, value in expected.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_scorecard_has_every_metric_at_both_grains(scorecard: dict) -> None:
    assert {(m, g) for m, g, _ in scorecard} == {(m, g) for m in METRICS for g in ("week", "month")}
