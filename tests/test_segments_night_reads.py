"""A night's segment step recomputes only the periods the night touched, distinct counts included: the
old periods of ordering_customers and orders_per_customer come from the store (scaled stored values
survive the nightly build) unless the guard's kept values changed, the night's query reads the period's rows through a range on placed_at,
and every other value equals SQL over the raw events written apart from the pipeline (1e-9)."""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import sqlglot
from conftest import copy_demo_project
from sqlglot import exp

from northstar_pipeline import api
from northstar_pipeline.analysis.segments import read_segments
from northstar_pipeline.build.pipeline import compile_project

TOL = 1e-9
DISTINCT = ("ordering_customers", "orders_per_customer")
# The marker keeps on_time_orders = ordering_customers * orders_per_customer * on_time_rate (the build checks it).
SCALE = {"ordering_customers": 2.0, "orders_per_customer": 0.5}

# Orders placed per grain, dimension, segment and period from the deduplicated raw events (isodow and
# make_date buckets, not date_trunc): customers = distinct ordering users; orders per customer = n / customers.
ORACLE = """
WITH raw AS (
    SELECT DISTINCT event_id, user_id, event_type, occurred_at, region, platform
    FROM read_parquet($glob, hive_partitioning = true) WHERE event_type = 'order_placed'
), cut AS (
    SELECT g.grain, d.dimension, CASE d.dimension WHEN 'region' THEN r.region ELSE r.platform END AS seg,
           CASE g.grain WHEN 'week' THEN CAST(r.occurred_at AS DATE) - CAST(isodow(r.occurred_at) - 1 AS INTEGER)
                        ELSE make_date(year(r.occurred_at), month(r.occurred_at), 1) END AS p,
           r.user_id
    FROM raw r CROSS JOIN (VALUES ('week'), ('month')) g(grain)
    CROSS JOIN (VALUES ('region'), ('platform')) d(dimension)
)
SELECT grain, dimension, seg, p, count(DISTINCT user_id) AS customers, count(*) / count(DISTINCT user_id) AS per
FROM cut GROUP BY ALL
"""


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def test_a_night_keeps_old_distinct_count_periods_and_equals_sql(tmp_path: Path, warehouse) -> None:
    lake = tmp_path / "warehouse"
    shutil.copytree(warehouse.events_dir, lake / "events")
    root = copy_demo_project(tmp_path / "project", lake / "events")
    api.build(api.load(root))  # the history, cut in full

    # The night's cut of a distinct count: the full renderings' periods from $since_<grain>, read through a
    # range on the column period() truncates (what lets DuckDB skip the older row groups).
    manifest = compile_project(api.load(root))
    for name in DISTINCT:
        node = manifest.node(name)
        assert node.segment_cut is None and node.segment_sql
        for query in node.segment_sql:
            night = sqlglot.parse_one(query.since_sql, read="duckdb")
            # (and the to-date window's $to_date_..., which the segment step binds with them)
            assert {p.name for p in night.find_all(exp.Placeholder) if p.name.startswith("since_")} == \
                {"since_week", "since_month"}
            ranges = [c for c in night.find_all(exp.GTE)
                      if isinstance(c.this, exp.Column) and c.this.name == "placed_at"]
            assert ranges, query.since_sql

    # Scale the stored cut of the oldest week and month: a night that recomputed them would undo it.
    db = root / "target" / "dev.duckdb"
    con = duckdb.connect(str(db))
    try:
        oldest = dict(con.execute("SELECT grain, min(period_start) FROM _northstar.segment_cuts "
                                  "WHERE metric = 'ordering_customers' AND NOT is_to_date GROUP BY grain").fetchall())
        where = ("list_contains($metrics, metric) AND NOT is_to_date "
                 "AND period_start = CASE grain WHEN 'week' THEN $week ELSE $month END")
        params = {"metrics": list(DISTINCT), "week": oldest["week"], "month": oldest["month"]}
        planted = set(con.execute("SELECT metric, grain, dimension, segment, period_start "
                                  f"FROM _northstar.segment_cuts WHERE {where}", params).fetchall())
        con.execute(f"UPDATE _northstar.segment_cuts SET value = value * CASE metric WHEN 'ordering_customers' "
                    f"THEN 2.0 ELSE 0.5 END WHERE {where}", params)
        # As if the guard had kept other platforms the night before: the stored platform cuts were guarded
        # otherwise, so the night must cut platform again in full (and undo the scaling there).
        con.execute("DELETE FROM _northstar.segment_keep WHERE dimension = 'platform' AND segment = 'web'")
    finally:
        con.close()
    assert {(m, g, d) for m, g, d, *_ in planted} == {(m, g, d) for m in DISTINCT for g in ("week", "month")
                                                      for d in ("region", "platform")}
    reused = {p for p in planted if p[2] == "region"}

    day = warehouse.last_day + datetime.timedelta(days=1)
    appended = subprocess.run([sys.executable, "-m", "northstar_pipeline", "demo-data", "--append-day", day.isoformat(),
                               "--out", str(lake)], capture_output=True, text=True, timeout=120)
    assert appended.returncode == 0, appended.stderr
    result = api.build(api.load(root))  # the night
    recomputed = {r.name: dict(r.recomputed_from) for r in result.results if r.recomputed_from is not None}
    assert all(recomputed[m]["week"] and recomputed[m]["week"] > str(oldest["week"]) for m in DISTINCT)

    oracle = {(g, d, s, str(p)): (c, per) for g, d, s, p, c, per in duckdb.connect().execute(
        ORACLE, {"glob": f"{lake}/events/**/*.parquet"}).fetchall()}
    rows = [r for r in read_segments(api.load(root), required=True).to_pylist() if r["metric"] in DISTINCT]
    kept, checked = 0, 0
    for r in rows:
        key = (r["grain"], r["dimension"], r["segment"], str(r["period_start"]))
        customers, per = oracle.get(key, (0, None))
        expected = customers if r["metric"] == "ordering_customers" else per
        if (r["metric"], *key[:3], r["period_start"]) in reused:  # from the store, not cut again
            assert close(r["value"], expected * SCALE[r["metric"]]), (r["metric"], key, r["value"], expected)
            kept += 1
            continue
        assert close(r["value"], expected), (r["metric"], key, r["value"])
        checked += 1
    assert kept == len(reused) and checked > 100
    # the night's own periods are among those checked: the late arrivals' week moved
    assert any(str(r["period_start"]) >= recomputed["ordering_customers"]["week"] for r in rows)
