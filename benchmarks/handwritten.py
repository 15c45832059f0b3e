"""The limit: every demo metric at both grains, hand-written in one DuckDB connection.

    python benchmarks/handwritten.py --events-dir DIR --out FILE.parquet [--memory-limit 4GB] [--threads 2]

What an expert would write by hand for this warehouse, with no framework: the raw Parquet read
straight into one deduplicated temp table of the columns the metrics need (the ids that landed
more than once first, then single landings as they are and the first landing of the others);
orders joined to their delivery once; additive counts rolled up to days and then to weeks and
months (a few thousand rows); distinct customers counted per period from the orders. It writes ``metric, grain, period_start, value`` to Parquet, one row per metric
x grain x period that has data, with the same semantics as ``metrics/*.sql`` over
``models/*.sql`` (week = ISO week from ``date_trunc('week')``, on time = delivered by the
promised time plus the grace minutes). It is the yardstick for ``northstar build``, not a copy of
it: nothing here is generated.

``--profile FILE`` writes the seconds of each step as JSON (the driver reports it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb

GRAINS = ("week", "month")

# Deduplicate on event_id keeping the first landing, in two steps that stay cheap under memory pressure: the
# ids that landed more than once (a narrow aggregate over one column), then every other event as it is and
# the first landing of those (a window over a fraction of a percent of the rows). Only the columns the metrics read are kept, and app_open events
# are dropped first: no metric counts them, and a duplicate has its original's type.
DUPLICATED = """
CREATE TEMP TABLE duplicated AS
SELECT event_id
FROM read_parquet($glob, hive_partitioning = true)
WHERE event_type <> 'app_open'
GROUP BY event_id
HAVING count(*) > 1
"""

DEDUPE = """
CREATE TEMP TABLE ev AS
SELECT event_type, user_id, occurred_at, order_id, items, promised_at, delivered_at
FROM read_parquet($glob, hive_partitioning = true)
ANTI JOIN duplicated USING (event_id)
WHERE event_type <> 'app_open'
UNION ALL
SELECT event_type, user_id, occurred_at, order_id, items, promised_at, delivered_at
FROM read_parquet($glob, hive_partitioning = true)
SEMI JOIN duplicated USING (event_id)
WHERE event_type <> 'app_open'
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY landed_at) = 1
"""

# One row per placed order with its outcome (an undelivered order is not on time).
ORDERS = """
CREATE TEMP TABLE orders AS
SELECT o.user_id, o.occurred_at AS placed_at, o.items,
       coalesce(d.delivered_at <= d.promised_at + to_minutes(CAST($grace AS INTEGER)), false) AS on_time
FROM ev AS o
LEFT JOIN ev AS d ON d.order_id = o.order_id AND d.event_type = 'order_delivered'
WHERE o.event_type = 'order_placed'
"""

# Additive counts per day; weeks and months are sums of days. Deliveries are dated by delivered_at,
# everything else by occurred_at.
DAILY = """
CREATE TEMP TABLE daily AS
SELECT CAST(occurred_at AS DATE) AS day,
       count(*) FILTER (WHERE event_type = 'signup') AS signups,
       count(*) FILTER (WHERE event_type = 'push_sent') AS pushes_sent,
       count(*) FILTER (WHERE event_type = 'push_click') AS push_clicks,
       count(*) FILTER (WHERE event_type = 'search') AS searches,
       count(*) FILTER (WHERE event_type = 'add_to_cart') AS carts,
       count(*) FILTER (WHERE event_type = 'support_ticket') AS tickets,
       0 AS deliveries, 0 AS late_seconds
FROM ev
WHERE event_type NOT IN ('order_placed', 'order_delivered')
GROUP BY ALL
UNION ALL
SELECT CAST(delivered_at AS DATE), 0, 0, 0, 0, 0, 0, count(*), sum(date_diff('second', promised_at, delivered_at))
FROM ev
WHERE event_type = 'order_delivered'
GROUP BY ALL
"""

PERIODS = """
CREATE TEMP TABLE periods AS
SELECT g.grain, CAST(date_trunc(g.grain, d.day) AS DATE) AS period_start,
       sum(signups) AS signups, sum(pushes_sent) AS pushes_sent, sum(push_clicks) AS push_clicks,
       sum(searches) AS searches, sum(carts) AS carts, sum(tickets) AS tickets,
       sum(deliveries) AS deliveries, sum(late_seconds) AS late_seconds
FROM daily AS d CROSS JOIN (SELECT unnest($grains) AS grain) AS g
GROUP BY ALL
"""

ORDER_PERIODS = """
CREATE TEMP TABLE order_periods AS
SELECT g.grain, CAST(date_trunc(g.grain, placed_at) AS DATE) AS period_start,
       count(*) AS orders, count(DISTINCT user_id) AS customers, sum(items) AS items,
       count(*) FILTER (WHERE on_time) AS on_time
FROM orders CROSS JOIN (SELECT unnest($grains) AS grain) AS g
GROUP BY ALL
"""

# A period has a row for a metric when the metric's source rows exist in it, as in metrics/*.sql.
VALUES = """
SELECT 'on_time_orders' AS metric, grain, period_start, CAST(on_time AS DOUBLE) AS value FROM order_periods
UNION ALL SELECT 'ordering_customers', grain, period_start, customers FROM order_periods
UNION ALL SELECT 'orders_per_customer', grain, period_start, orders / customers FROM order_periods
UNION ALL SELECT 'on_time_rate', grain, period_start, on_time / orders FROM order_periods
UNION ALL SELECT 'items_per_order', grain, period_start, items / orders FROM order_periods
UNION ALL SELECT 'support_tickets_per_order', o.grain, o.period_start, coalesce(p.tickets, 0) / o.orders
    FROM order_periods AS o LEFT JOIN periods AS p USING (grain, period_start)
UNION ALL SELECT 'new_customers', grain, period_start, signups FROM periods WHERE signups > 0
UNION ALL SELECT 'push_click_through_rate', grain, period_start, push_clicks / nullif(pushes_sent, 0)
    FROM periods WHERE pushes_sent + push_clicks > 0
UNION ALL SELECT 'search_to_cart_rate', grain, period_start, carts / nullif(searches, 0)
    FROM periods WHERE searches + carts > 0
UNION ALL SELECT 'avg_delivery_minutes_late', grain, period_start, CAST(late_seconds AS DOUBLE) / 60 / deliveries
    FROM periods WHERE deliveries > 0
"""


def compute_metrics(events_dir: Path, out: Path, *, memory_limit: str = "4GB", threads: int = 2,
                    temp_directory: Path | None = None, grace_minutes: int = 0) -> dict[str, float]:
    """Write every metric at every grain to ``out``; return the seconds of each step."""
    config: dict[str, str | int] = {"threads": threads, "memory_limit": memory_limit,
                                    "preserve_insertion_order": False}
    if temp_directory is not None:
        temp_directory.mkdir(parents=True, exist_ok=True)  # DuckDB creates only the last level
        config["temp_directory"] = str(temp_directory)
    steps: dict[str, float] = {}
    con = duckdb.connect(":memory:", config=config)
    try:
        params = {"glob": f"{events_dir}/**/*.parquet", "grace": grace_minutes, "grains": list(GRAINS)}
        for name, sql in (("duplicated", DUPLICATED), ("dedupe", DEDUPE), ("orders", ORDERS), ("daily", DAILY), ("periods", PERIODS),
                          ("order_periods", ORDER_PERIODS)):
            started = time.perf_counter()
            con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})
            steps[name] = time.perf_counter() - started
        started = time.perf_counter()
        out.parent.mkdir(parents=True, exist_ok=True)
        con.sql(VALUES).order("metric, grain, period_start").write_parquet(str(out))
        steps["write"] = time.perf_counter() - started
    finally:
        con.close()
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events-dir", required=True, type=Path, help="the demo warehouse's events/ directory")
    parser.add_argument("--out", required=True, type=Path, help="Parquet file to write")
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--temp-directory", type=Path, default=None, help="where DuckDB spills")
    parser.add_argument("--on-time-grace-minutes", type=int, default=0)
    parser.add_argument("--profile", type=Path, default=None, help="write the seconds of each step here (JSON)")
    args = parser.parse_args(argv)
    if not args.events_dir.is_dir():
        print(f"error: no events directory at {args.events_dir}", file=sys.stderr)
        return 2
    steps = compute_metrics(args.events_dir, args.out, memory_limit=args.memory_limit, threads=args.threads,
                            temp_directory=args.temp_directory, grace_minutes=args.on_time_grace_minutes)
    if args.profile:
        args.profile.write_text(json.dumps({k: round(v, 4) for k, v in steps.items()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
