"""The limit for segments: every demo metric at both grains, in total and per region and platform, by hand.

    python benchmarks/segments_handwritten.py --events-dir DIR --out FILE.parquet [--memory-limit 4GB]

What an expert would write with no framework to get the same numbers as ``northstar build`` with the
demo's dimensions: the raw events deduplicated once (as in ``handwritten.py``, keeping region and
platform), orders joined to their delivery once, additive counts rolled up per day and segment and then
to weeks and months with GROUPING SETS (the total and each dimension in one pass), distinct customers
counted per period and segment. Writes ``metric, grain, period_start, dimension, segment, value``
(dimension ``total`` for the whole), one row per combination that has data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb

GRAINS = ("week", "month")

DUPLICATED = """
CREATE TEMP TABLE duplicated AS
SELECT event_id FROM read_parquet($glob, hive_partitioning = true)
WHERE event_type <> 'app_open' GROUP BY event_id HAVING count(*) > 1
"""

DEDUPE = """
CREATE TEMP TABLE ev AS
SELECT event_type, user_id, occurred_at, order_id, items, promised_at, delivered_at, region, platform
FROM read_parquet($glob, hive_partitioning = true)
ANTI JOIN duplicated USING (event_id)
WHERE event_type <> 'app_open'
UNION ALL
SELECT event_type, user_id, occurred_at, order_id, items, promised_at, delivered_at, region, platform
FROM read_parquet($glob, hive_partitioning = true)
SEMI JOIN duplicated USING (event_id)
WHERE event_type <> 'app_open'
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY landed_at) = 1
"""

ORDERS = """
CREATE TEMP TABLE orders AS
SELECT o.user_id, o.occurred_at AS placed_at, o.items, o.region, o.platform,
       coalesce(d.delivered_at <= d.promised_at, false) AS on_time
FROM ev AS o
LEFT JOIN ev AS d ON d.order_id = o.order_id AND d.event_type = 'order_delivered'
WHERE o.event_type = 'order_placed'
"""

DAILY = """
CREATE TEMP TABLE daily AS
SELECT CAST(occurred_at AS DATE) AS day, region, platform,
       count(*) FILTER (WHERE event_type = 'signup') AS signups,
       count(*) FILTER (WHERE event_type = 'push_sent') AS pushes_sent,
       count(*) FILTER (WHERE event_type = 'push_click') AS push_clicks,
       count(*) FILTER (WHERE event_type = 'search') AS searches,
       count(*) FILTER (WHERE event_type = 'add_to_cart') AS carts,
       count(*) FILTER (WHERE event_type = 'support_ticket') AS tickets,
       0 AS deliveries, 0 AS late_seconds
FROM ev WHERE event_type NOT IN ('order_placed', 'order_delivered')
GROUP BY ALL
UNION ALL
SELECT CAST(delivered_at AS DATE), region, platform, 0, 0, 0, 0, 0, 0, count(*),
       sum(date_diff('second', promised_at, delivered_at))
FROM ev WHERE event_type = 'order_delivered'
GROUP BY ALL
"""

# One pass per grain: the total and each dimension as grouping sets.
PERIODS = """
CREATE TEMP TABLE periods AS
SELECT g.grain, CAST(date_trunc(g.grain, d.day) AS DATE) AS period_start,
       CASE WHEN grouping(region) = 0 THEN 'region' WHEN grouping(platform) = 0 THEN 'platform' ELSE 'total' END
           AS dimension,
       coalesce(region, platform, 'all') AS segment,
       sum(signups) AS signups, sum(pushes_sent) AS pushes_sent, sum(push_clicks) AS push_clicks,
       sum(searches) AS searches, sum(carts) AS carts, sum(tickets) AS tickets, sum(deliveries) AS deliveries,
       sum(late_seconds) AS late_seconds
FROM daily AS d CROSS JOIN (SELECT unnest($grains) AS grain) AS g
GROUP BY GROUPING SETS ((g.grain, CAST(date_trunc(g.grain, d.day) AS DATE)),
                        (g.grain, CAST(date_trunc(g.grain, d.day) AS DATE), region),
                        (g.grain, CAST(date_trunc(g.grain, d.day) AS DATE), platform))
"""

ORDER_PERIODS = """
CREATE TEMP TABLE order_periods AS
SELECT g.grain, CAST(date_trunc(g.grain, placed_at) AS DATE) AS period_start,
       CASE WHEN grouping(region) = 0 THEN 'region' WHEN grouping(platform) = 0 THEN 'platform' ELSE 'total' END
           AS dimension,
       coalesce(region, platform, 'all') AS segment,
       count(*) AS orders, count(DISTINCT user_id) AS customers, sum(items) AS items,
       count(*) FILTER (WHERE on_time) AS on_time
FROM orders CROSS JOIN (SELECT unnest($grains) AS grain) AS g
GROUP BY GROUPING SETS ((g.grain, CAST(date_trunc(g.grain, placed_at) AS DATE)),
                        (g.grain, CAST(date_trunc(g.grain, placed_at) AS DATE), region),
                        (g.grain, CAST(date_trunc(g.grain, placed_at) AS DATE), platform))
"""

VALUES = """
SELECT 'on_time_orders' AS metric, grain, period_start, dimension, segment, CAST(on_time AS DOUBLE) AS value
    FROM order_periods
UNION ALL SELECT 'ordering_customers', grain, period_start, dimension, segment, customers FROM order_periods
UNION ALL SELECT 'orders_per_customer', grain, period_start, dimension, segment, orders / customers FROM order_periods
UNION ALL SELECT 'on_time_rate', grain, period_start, dimension, segment, on_time / orders FROM order_periods
UNION ALL SELECT 'items_per_order', grain, period_start, dimension, segment, items / orders FROM order_periods
UNION ALL SELECT 'support_tickets_per_order', o.grain, o.period_start, o.dimension, o.segment,
    coalesce(p.tickets, 0) / o.orders
    FROM order_periods AS o LEFT JOIN periods AS p USING (grain, period_start, dimension, segment)
    WHERE o.dimension = 'total'
UNION ALL SELECT 'new_customers', grain, period_start, dimension, segment, signups FROM periods WHERE signups > 0
UNION ALL SELECT 'push_click_through_rate', grain, period_start, dimension, segment,
    push_clicks / nullif(pushes_sent, 0) FROM periods WHERE pushes_sent + push_clicks > 0
UNION ALL SELECT 'search_to_cart_rate', grain, period_start, dimension, segment, carts / nullif(searches, 0)
    FROM periods WHERE searches + carts > 0
UNION ALL SELECT 'avg_delivery_minutes_late', grain, period_start, dimension, segment,
    CAST(late_seconds AS DOUBLE) / 60 / deliveries FROM periods WHERE deliveries > 0
"""


def compute_segments(events_dir: Path, out: Path, *, memory_limit: str = "4GB", threads: int = 2) -> dict[str, float]:
    con = duckdb.connect(":memory:", config={"threads": threads, "memory_limit": memory_limit,
                                             "preserve_insertion_order": False})
    steps: dict[str, float] = {}
    try:
        params = {"glob": f"{events_dir}/**/*.parquet", "grains": list(GRAINS)}
        for name, sql in (("duplicated", DUPLICATED), ("dedupe", DEDUPE), ("orders", ORDERS), ("daily", DAILY),
                          ("periods", PERIODS), ("order_periods", ORDER_PERIODS)):
            started = time.perf_counter()
            con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})
            steps[name] = time.perf_counter() - started
        started = time.perf_counter()
        out.parent.mkdir(parents=True, exist_ok=True)
        con.sql(VALUES).write_parquet(str(out))
        steps["write"] = time.perf_counter() - started
    finally:
        con.close()
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events-dir", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    steps = compute_segments(args.events_dir, args.out, memory_limit=args.memory_limit, threads=args.threads)
    print(json.dumps({k: round(v, 3) for k, v in steps.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
