"""Nightly segments: given the periods a night touched (``since``), build_segments recomputes only those
and keeps the stored earlier ones, and the result equals a full recompute on the same data (1e-9)."""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
from conftest import copy_demo_project

from northstar_pipeline import api
from northstar_pipeline.build.pipeline import compile_project
from northstar_pipeline.engines.select import open_engine
from northstar_pipeline.project.connection import project_reads
from northstar_pipeline.tree.score import score
from northstar_pipeline.tree.segments import build_segments
from northstar_pipeline.tree.tree import build_tree

TOL = 1e-9
STATE = ("segment_cuts", "segment_volumes", "segment_keep", "segment_state")
KEYS = ("metric", "dimension", "segment", "grain", "period_start")

# The first period each grain must recompute: new events (late arrivals included) and the orders whose
# delivery landed this night (their on-time outcome moved, in the period they were placed).
SINCE_SQL = """
WITH lake AS (SELECT * FROM read_parquet($glob, hive_partitioning = true)),
new AS (SELECT * FROM lake WHERE landed_date = $day),
touched AS (
    SELECT occurred_at AS touched_at FROM new
    UNION ALL
    SELECT o.occurred_at FROM lake o JOIN new d ON d.order_id = o.order_id
    WHERE o.event_type = 'order_placed' AND d.event_type = 'order_delivered'
)
SELECT CAST(date_trunc('week', min(touched_at)) AS DATE), CAST(date_trunc('month', min(touched_at)) AS DATE) FROM touched
"""


def stored_state(db: Path) -> dict[str, pa.Table]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {name: con.table(f"_northstar.{name}").to_arrow_table() for name in STATE}
    finally:
        con.close()


def restore(con: duckdb.DuckDBPyConnection, state: dict[str, pa.Table]) -> None:
    """Put back what the night before stored (the tables are the night's, the stored cuts the night before's)."""
    for name, table in state.items():
        con.register("_t", table)
        con.execute(f"CREATE OR REPLACE TABLE _northstar.{name} AS SELECT * FROM _t")
        con.unregister("_t")


def rows(con: duckdb.DuckDBPyConnection) -> dict[tuple, dict]:
    table = con.table("scorecard.segments").to_arrow_table().drop_columns(["run_id", "built_at"])
    return {tuple(r[k] for k in KEYS): r for r in table.to_pylist()}


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))
    return a == b


def test_segments_since_a_night_equal_a_full_recompute(tmp_path: Path, warehouse) -> None:
    lake = tmp_path / "warehouse"
    shutil.copytree(warehouse.events_dir, lake / "events")
    root = copy_demo_project(tmp_path / "project", lake / "events")
    api.build(api.load(root))
    night_before = stored_state(root / "target" / "dev.duckdb")
    assert night_before["segment_cuts"].num_rows and night_before["segment_volumes"].num_rows
    day = warehouse.last_day + datetime.timedelta(days=1)
    appended = subprocess.run([sys.executable, "-m", "northstar_pipeline", "demo-data", "--append-day", day.isoformat(),
                               "--out", str(lake)], capture_output=True, text=True, timeout=120)
    assert appended.returncode == 0, appended.stderr
    api.build(api.load(root))  # the night's tables (and its segments in full)
    week, month = duckdb.connect().execute(SINCE_SQL, {"glob": f"{lake}/events/**/*.parquet", "day": day}).fetchone()
    assert week < day and month <= week  # the night did touch earlier days (late arrivals)

    project = api.load(root)
    manifest = compile_project(project)
    tree = build_tree(manifest)
    cut = [m.name for m in tree.metrics if m.node.segment_sql]
    assert {m for m in cut if manifest.node(m).segment_cut is None} == {"ordering_customers", "orders_per_customer"}
    since = {m: {"week": week, "month": month} for m in cut}
    engine = open_engine(project.target, reads=project_reads(project))
    try:
        engine.begin()
        con = engine.scoring_connection(manifest)
        score(con, manifest, tree, "r", "2026-01-01T00:00:00")
        restore(con, night_before)
        build_segments(con, manifest, tree, "r", "2026-01-01T00:00:00", since=since)
        nightly = rows(con)
        build_segments(con, manifest, tree, "r", "2026-01-01T00:00:00")  # everything, from the tables
        full = rows(con)
        assert nightly.keys() == full.keys() and len(full) > 1000
        differ = [(k, c) for k, r in full.items() for c, v in r.items() if not same(v, nightly[k][c])]
        assert not differ, [(k, c, full[k][c], nightly[k][c]) for k, c in differ[:6]] + [len(differ)]
        assert any(r["period_start"] >= week and r["value"] for r in full.values())

        # The earlier periods did come from the store: a stored value before `since` is what is published.
        restore(con, night_before)
        early = con.execute("SELECT min(period_start) FROM _northstar.segment_cuts "
                            "WHERE metric = 'search_to_cart_rate' AND grain = 'week'").fetchone()[0]
        con.execute("UPDATE _northstar.segment_cuts SET value = -1 WHERE metric = 'search_to_cart_rate' "
                    "AND grain = 'week' AND period_start = ? AND dimension = 'region'", [early])
        build_segments(con, manifest, tree, "r", "2026-01-01T00:00:00", since=since)
        kept = [r for k, r in rows(con).items() if k[0] == "search_to_cart_rate" and k[3] == "week"
                and k[4] == early and k[1] == "region"]
        assert kept and all(r["value"] == -1 for r in kept)
        # Without `since` (and for a metric whose grains it does not list) it is recomputed.
        build_segments(con, manifest, tree, "r", "2026-01-01T00:00:00",
                       since={**since, "search_to_cart_rate": None})
        assert all(same(r["value"], full[k]["value"]) for k, r in rows(con).items() if k[0] == "search_to_cart_rate")
    finally:
        engine.rollback()
        engine.close()
