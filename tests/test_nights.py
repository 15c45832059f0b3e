"""A month of simulated nights: `demo-data --append-day` lands a day (late arrivals, re-deliveries),
then the nightly (incremental) build runs; every night equals a --full-refresh build of the same lake.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
from conftest import copy_demo_project, copy_lake
from test_incremental import same_numbers, scorecard_values

from northstar_pipeline import api
from northstar_pipeline.build.pipeline import recomputed_periods
from northstar_pipeline.demo.append_day import append_day
from northstar_pipeline.errors import EXIT_OK, EXIT_USAGE

NIGHTS = 30
INCREMENTAL_MODELS = ("stg_events", "stg_orders", "stg_deliveries", "stg_signups", "stg_tickets", "orders_enriched",
                      "stg_payments", "orders_with_previous")
METRICS = {p.stem for p in (Path(__file__).resolve().parent.parent / "metrics").glob("*.sql")}
# None is rebuilt in full: revenue reads stg_payments (incremental on paid_at), the 4-week retention reads
# orders_with_previous (each order's previous order time), so both recompute only the periods a night touches.
FULL_METRICS: set[str] = set()


def demo_data(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "northstar_pipeline", "demo-data", *args],
                          capture_output=True, text=True, timeout=120)


def raw_counts(events: Path) -> tuple[int, int, datetime.datetime]:
    """(rows, distinct events, newest occurred_at) of the lake, read directly."""
    return duckdb.sql(f"SELECT count(*), count(DISTINCT event_id), "
                      f"max(occurred_at) FILTER (WHERE event_type <> 'order_delivered') "
                      f"FROM read_parquet('{events}/**/*.parquet')").fetchall()[0]


def stored_digest(project: Path) -> tuple:
    con = duckdb.connect(str(project / "target" / "dev.duckdb"), read_only=True)
    try:
        return con.execute("SELECT count(*), sum(hash(event_id, user_id, event_type, occurred_at, order_id, items, "
                           "promised_at, delivered_at, landed_date)) FROM staging.stg_events").fetchall()[0]
    finally:
        con.close()


def test_a_month_of_nights_each_equal_to_a_full_refresh(tmp_path: Path, warehouse) -> None:
    lake = copy_lake(warehouse, tmp_path / "warehouse")
    nightly = copy_demo_project(tmp_path / "nightly", lake / "events")
    full = copy_demo_project(tmp_path / "full", lake / "events")
    api.build(api.load(nightly))
    day = warehouse.last_day + datetime.timedelta(days=1)
    late = redelivered = 0
    for night in range(NIGHTS):
        rows_before, _, _ = raw_counts(lake / "events")
        if night == 0:  # the first night through the CLI, as a scheduler runs it
            result = demo_data("--append-day", day.isoformat(), "--out", str(lake))
            assert result.returncode == EXIT_OK, result.stderr
            assert result.stdout.startswith(f"appended {day}: ")
        else:
            added = append_day(lake, day)
            late, redelivered = late + added.late, redelivered + added.redelivered + added.doubled
        rows, distinct, newest = raw_counts(lake / "events")
        assert rows > rows_before and newest.date() == day
        paid_today = duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/payments/*.parquet') "
                                f"WHERE CAST(paid_at AS DATE) = DATE '{day}'").fetchall()[0][0]
        assert paid_today > 0  # the revenue source lands the day too
        # A backfill night in the middle: re-read ten days of partitions.
        backfill = {"backfill_from": (day - datetime.timedelta(days=10)).isoformat()} if night == NIGHTS // 2 else None
        result = api.build(api.load(nightly, vars=backfill))
        modes = {r.name: r.mode for r in result.results}
        # Incremental downstream too: every model by the landing watermark, every metric from its first
        # period the night touched (recomputed_from), none rebuilt in full.
        assert all(modes[m] == "incremental" for m in INCREMENTAL_MODELS), modes
        cuts = recomputed_periods(result.results)
        incremental = METRICS - FULL_METRICS
        assert set(cuts) == METRICS and all(modes[m] == "incremental" for m in incremental), modes
        assert all(cuts[m] for m in incremental)  # each night lands new orders, deliveries and events
        fallbacks = {r.name: r.fallback for r in result.results if r.name in FULL_METRICS}
        assert all(modes[m] == "full" and fallbacks[m] for m in FULL_METRICS), fallbacks
        api.build(api.load(full), full_refresh=True)
        assert same_numbers(scorecard_values(nightly), scorecard_values(full)), f"night {night + 1} ({day}) differs"
        assert stored_digest(nightly) == stored_digest(full)
        assert stored_digest(nightly)[0] == distinct  # every re-delivery deduplicated
        day += datetime.timedelta(days=1)
    assert late > 0 and redelivered > 0  # the month did exercise both


def test_append_day_refuses_a_repeated_or_skipped_day(tmp_path: Path, warehouse) -> None:
    lake = tmp_path / "warehouse"
    shutil.copytree(warehouse.events_dir, lake / "events")
    for day, needle in ((warehouse.last_day, "would repeat days"),
                        (warehouse.last_day + datetime.timedelta(days=2), "leaves a gap")):
        result = demo_data("--append-day", day.isoformat(), "--out", str(lake))
        assert result.returncode == EXIT_USAGE and needle in result.stderr and "Traceback" not in result.stderr
    result = demo_data("--append-day", "2026-01-01", "--out", str(tmp_path / "nowhere"))
    assert result.returncode == EXIT_USAGE and "no demo warehouse" in result.stderr
