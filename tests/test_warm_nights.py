"""A night's compile is a warm one: the to-date window's dates are bound after the render and compile
caches (project/to_date.py), so a new as-of re-renders and recompiles nothing, and the to-date values
still equal hand-written SQL over the raw events."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from conftest import copy_demo_project, copy_lake
from test_errors import edit, run_cli
from test_periods_edges import WEEKS, card, starter, write_orders
from test_score import PTD_ORACLE

from northstar_pipeline.demo.append_day import append_day
from northstar_pipeline.errors import EXIT_OK, EXIT_PROJECT

METRICS = {p.stem for p in (Path(__file__).resolve().parent.parent / "metrics").glob("*.sql")}


def events_of(stderr: str, name: str) -> list[dict]:
    return [e for e in (json.loads(line) for line in stderr.splitlines() if line.startswith("{")) if e["event"] == name]


def to_date_oracle(events: Path, grain: str) -> tuple[date, tuple, tuple[datetime, datetime]]:
    """(the partial period, (on-time orders, customers, orders) over the previous period's elapsed span, the span),
    from the raw events with the as-of as the latest occurred_at (the demo's loaded_at_field)."""
    con = duckdb.connect()
    glob = f"{events}/**/*.parquet"
    as_of = con.execute("SELECT max(occurred_at) FROM read_parquet($g, hive_partitioning = true)",
                        {"g": glob}).fetchall()[0][0]
    current = as_of.date() - timedelta(days=as_of.weekday()) if grain == "week" else as_of.date().replace(day=1)
    previous = current - timedelta(days=7) if grain == "week" else (current - timedelta(days=1)).replace(day=1)
    start = datetime.combine(previous, datetime.min.time())
    end = start + (as_of - datetime.combine(current, datetime.min.time()))
    return current, con.execute(PTD_ORACLE, {"glob": glob, "start": start, "end": end}).fetchall()[0], (start, end)


def test_two_nights_compile_no_metric_again_and_their_to_date_values_hold(tmp_path: Path, warehouse) -> None:
    lake = copy_lake(warehouse, tmp_path / "warehouse")
    root = copy_demo_project(tmp_path / "project", lake / "events")
    history = run_cli(root, "build", "--log-format", "json")
    assert history.returncode == EXIT_OK, history.stderr
    [cold] = events_of(history.stderr, "compile")
    assert METRICS <= set(cold["compiled"]) and METRICS <= set(cold["rendered"])  # a first build compiles all
    day = warehouse.last_day
    windows = set()
    for _ in range(2):
        day += timedelta(days=1)
        append_day(lake, day)
        night = run_cli(root, "build", "--log-format", "json")
        assert night.returncode == EXIT_OK, night.stderr
        [compiled] = events_of(night.stderr, "compile")
        # a new as-of, the same partial grains: every rendering and compiled node comes from the cache
        assert (compiled["rendered"], compiled["compiled"]) == ([], []), compiled
        assert compiled["nodes"] == cold["nodes"]
        [as_of] = events_of(night.stderr, "as_of")
        newest = duckdb.sql(f"SELECT max(occurred_at) FROM read_parquet('{lake}/events/**/*.parquet')").fetchall()[0][0]
        assert datetime.fromisoformat(as_of["as_of"]) == newest and newest.date() >= day  # the new files' footers read
        for grain in ("week", "month"):
            current, (on_time, customers, orders), (start, end) = to_date_oracle(lake / "events", grain)
            rows = card(root, grain)
            nsm = rows[("on_time_orders", current)]
            assert (nsm["is_complete"], nsm["comparison"]) == (False, "period_to_date")
            assert nsm["previous_value"] == on_time
            assert rows[("ordering_customers", current)]["previous_value"] == customers
            assert rows[("orders_per_customer", current)]["previous_value"] == pytest.approx(orders / customers,
                                                                                             rel=1e-12)
            windows.add((grain, start, end))
            # what people read (and what ran) carries the night's literal window, never a placeholder
            text = (root / "target" / "compiled" / "duckdb" / "metrics" / "on_time_orders.sql").read_text()
            assert "$to_date" not in text
            assert f"CAST('{start.date().isoformat()}' AS TIMESTAMP)" in text
            assert f"CAST('{end.isoformat(sep=' ')}' AS TIMESTAMP)" in text
            segments = root / "target" / "compiled_segments" / "duckdb" / "metrics"
            assert segments.is_dir() and all("$to_date" not in p.read_text() for p in segments.glob("*.sql"))
    assert len(windows) == 4  # the window moved every night: the values above are each night's own
    # A project change still reaches the cache: that metric is rendered and compiled again, nothing else.
    edit(root / "metrics" / "orders_per_customer.sql", "select", "-- reviewed\nselect")
    changed = run_cli(root, "build", "--log-format", "json")
    assert changed.returncode == EXIT_OK, changed.stderr
    [compiled] = events_of(changed.stderr, "compile")
    assert compiled["rendered"] == ["orders_per_customer"] and "orders_per_customer" in compiled["compiled"]


def test_the_as_of_from_the_data_compiles_warm_too(tmp_path: Path) -> None:
    """No loaded_at_field: a build compiles without an as-of, then again with the one its data covers
    (pipeline._settle_as_of). Every night after, both compiles are served from the cache (the file keeps
    what both used), and the to-date value is the hand count."""
    events = write_orders(tmp_path / "events")
    root = starter(tmp_path, events)
    edit(root / "models" / "sources.yml", "        loaded_at_field: occurred_at\n", "")
    assert run_cli(root, "build").returncode == EXIT_OK
    # Two nights: one more order each, Thursday and Friday 10:00, each landed in its own partition.
    for event_id, day, previous in ((9998, date(2026, 3, 26), 8), (9999, date(2026, 3, 27), 10)):
        landed = events / f"landed_date={day}"
        landed.mkdir()
        duckdb.connect().execute(
            "COPY (SELECT $id::BIGINT AS event_id, 1::BIGINT AS user_id, 'order_placed' AS event_type, "
            "$at::TIMESTAMP AS occurred_at, $id::BIGINT AS order_id, 2 AS items, "
            "$at::TIMESTAMP + INTERVAL 5 MINUTE AS landed_at) TO '" + str(landed / "night.parquet")
            + "' (FORMAT parquet)",
            {"id": event_id, "at": datetime.combine(day, datetime.min.time()) + timedelta(hours=10)})
        night = run_cli(root, "build", "--log-format", "json")
        assert night.returncode == EXIT_OK, night.stderr
        compiles = events_of(night.stderr, "compile")
        assert len(compiles) == 2  # without an as-of, then with the data's
        assert all((c["rendered"], c["compiled"]) == ([], []) for c in compiles), compiles
        as_of = datetime.combine(day + timedelta(days=1), datetime.min.time())
        assert [e["as_of"] for e in events_of(night.stderr, "as_of")] == [as_of.isoformat(sep=" ")]
        last = card(root, "week")[("weekly_orders", WEEKS[11])]
        # W10 from Monday to the same elapsed span: two orders a day from Monday to the night's weekday
        assert (last["value"], last["comparison"], last["previous_value"]) == (
            4 + (event_id - 9997), "period_to_date", previous)


def test_a_template_may_not_write_the_window_placeholders(demo_project: Path) -> None:
    path = demo_project / "metrics" / "orders_per_customer.sql"
    edit(path, "select", "select $to_date_start_week AS x,\n")
    result = run_cli(demo_project, "compile")
    assert result.returncode == EXIT_PROJECT, result.stderr
    assert "$to_date_start_week is reserved for the to-date window" in result.stderr
    assert "metrics/orders_per_customer.sql" in result.stderr and "Traceback" not in result.stderr


def test_the_manifest_carries_the_literal_window_where_sql_runs_as_is(demo_project: Path) -> None:
    """What the API hands out binds the window: each metric's SQL and its cuts' full queries. Only the cuts'
    night queries keep placeholders ($since_<grain> and the window), which the segment step binds."""
    from northstar_pipeline import api
    from northstar_pipeline.project.periods import to_date_window
    from northstar_pipeline.types import Grain, NodeKind

    manifest = api.compile_project(api.load(demo_project, vars={"as_of": "2026-11-18T12:30:00"}))
    start, end = to_date_window(Grain.WEEK, datetime(2026, 11, 18, 12, 30))
    assert (start, end) == (date(2026, 11, 9), datetime(2026, 11, 11, 12, 30))
    metrics = [n for n in manifest.nodes if n.kind is NodeKind.METRIC]
    assert len(metrics) == len(METRICS)
    for node in metrics:
        texts = [node.sql, *(q.sql for q in node.segment_sql), node.segment_cut.sql if node.segment_cut else ""]
        assert all("$to_date" not in text for text in texts), node.name
        assert "CAST('2026-11-09' AS TIMESTAMP)" in node.sql and "CAST('2026-11-11 12:30:00' AS TIMESTAMP)" in node.sql
        assert node.ast is not None and node.ast.sql("duckdb", pretty=True) == node.sql  # the engine's, parsed once


def test_the_as_of_reads_new_and_changed_files_footers(tmp_path: Path) -> None:
    """The footers' statistics are kept per file (size, mtime): a file added, rewritten or removed moves the as-of."""
    from northstar_pipeline import api

    events = write_orders(tmp_path / "events")
    root = starter(tmp_path, events)
    assert api.compile_project(api.load(root)).as_of == datetime(2026, 3, 25, 10)  # the latest occurred_at

    def land(day: date, at: datetime) -> Path:
        path = events / f"landed_date={day}" / "late.parquet"
        path.parent.mkdir(exist_ok=True)
        duckdb.connect().execute(
            "COPY (SELECT 5000::BIGINT AS event_id, 1::BIGINT AS user_id, 'order_placed' AS event_type, "
            "$at::TIMESTAMP AS occurred_at, 5000::BIGINT AS order_id, 2 AS items, $at::TIMESTAMP AS landed_at) "
            "TO '" + str(path) + "' (FORMAT parquet)", {"at": at})
        return path

    added = land(date(2026, 3, 26), datetime(2026, 3, 26, 9))
    assert api.compile_project(api.load(root)).as_of == datetime(2026, 3, 26, 9)
    land(date(2026, 3, 26), datetime(2026, 3, 26, 17, 30))  # the same file, rewritten
    assert api.compile_project(api.load(root)).as_of == datetime(2026, 3, 26, 17, 30)
    added.unlink()
    assert api.compile_project(api.load(root)).as_of == datetime(2026, 3, 25, 10)


def test_a_compile_at_the_same_as_of_keeps_the_bound_sql_and_a_new_as_of_binds_again(tmp_path: Path,
                                                                                   warehouse) -> None:
    """build/window_binding.py: the bound texts are cached per as-of (at 1,000 metrics, parsing and printing every
    union was most of a warm compile); served from the cache they are the same texts, their AST parsed where
    they run; a night's new as-of binds its own dates."""
    from northstar_pipeline import api
    from northstar_pipeline.build.pipeline import compile_project

    lake = copy_lake(warehouse, tmp_path / "warehouse")
    project = copy_demo_project(tmp_path / "project", lake / "events")
    first = compile_project(api.load(project))
    again = compile_project(api.load(project))
    metrics = [n.name for n in first.nodes if n.kind.value == "metric"]
    assert all(first.node(m).ast is not None and again.node(m).ast is None for m in metrics)  # bound, then served
    assert all(first.node(m).sql == again.node(m).sql and first.node(m).segment_cut == again.node(m).segment_cut
               and first.node(m).segment_sql == again.node(m).segment_sql for m in metrics)
    append_day(lake, warehouse.last_day + timedelta(days=1))
    night = compile_project(api.load(project))
    assert night.as_of > first.as_of
    assert all(night.node(m).ast is not None for m in metrics)  # a new as-of: bound afresh
    changed = [m for m in metrics if night.node(m).sql != first.node(m).sql]
    assert changed and all("$to_date" not in night.node(m).sql for m in metrics)
