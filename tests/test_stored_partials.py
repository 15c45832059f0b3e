"""Nights from the kept partials (engines/stored_partials.py): a night re-scans only its changed days and
the to-date spans' boundary days, and every metric row, segment cut and covered span equals a
--full-refresh build of the same lake; partials missing, made by another scan or too many to keep are
handled as the module says.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import duckdb
import pytest
from conftest import copy_demo_project, copy_lake
from test_metric_scan import ONE_SCAN_CUT, same, segment_cuts, table_rows

from northstar_pipeline import api
from northstar_pipeline.build.pipeline import compile_project
from northstar_pipeline.demo.append_day import append_day
from northstar_pipeline.types import NodeKind

KEPT = ONE_SCAN_CUT | {"revenue"}  # the demo's one-scan metrics with a day: revenue is not cut by a dimension


def database(project: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(project / "target" / "dev.duckdb"), read_only=True)


def every_metric_row(project: Path) -> dict[str, dict]:
    manifest = compile_project(api.load(project))
    con = database(project)
    try:
        return {n.name: table_rows(con, n) for n in manifest.nodes if n.kind is NodeKind.METRIC}
    finally:
        con.close()


def coverage(project: Path) -> set[tuple]:
    con = database(project)
    try:
        return set(con.execute("SELECT * FROM _northstar.coverage").fetchall())
    finally:
        con.close()


def kept(project: Path) -> dict[str, bool]:
    con = database(project)
    try:
        return dict(con.execute("SELECT metric, kept FROM _northstar.partials_state").fetchall())
    finally:
        con.close()


def assert_equal_to_full_refresh(nightly: Path, full: Path, night: str) -> None:
    api.build(api.load(full), full_refresh=True)
    got, want = every_metric_row(nightly), every_metric_row(full)
    assert got.keys() == want.keys()
    for name in want:
        assert same(got[name], want[name]), f"{night}: {name} differs from --full-refresh"
    assert same(segment_cuts(nightly), segment_cuts(full)), f"{night}: the segment cuts differ"
    assert coverage(nightly) == coverage(full), f"{night}: the covered days differ"


@pytest.fixture
def lake_and_projects(tmp_path: Path, warehouse):
    lake = copy_lake(warehouse, tmp_path / "warehouse")
    nightly = copy_demo_project(tmp_path / "nightly", lake / "events")
    full = copy_demo_project(tmp_path / "full", lake / "events")
    api.build(api.load(nightly))
    return lake, nightly, full, warehouse.last_day


def night(project: Path, vars: dict | None = None) -> tuple[dict, dict[str, object]]:
    """Build (a night): its segments event and its node results by name."""
    events: list[dict] = []
    result = api.build(api.load(project, vars=vars),
                       report=lambda name, data: events.append(data) if name == "segments" else None)
    (event,) = events
    return event, {r.name: r for r in result.results}


def test_nights_across_a_week_and_a_month_start_equal_a_full_refresh_in_every_row(lake_and_projects) -> None:
    lake, nightly, full, last_day = lake_and_projects
    assert kept(nightly) == dict.fromkeys(KEPT, True)  # the full build kept them (the distinct counts have none)
    day = last_day + datetime.timedelta(days=1)
    first_of_month = (day.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    nights = (first_of_month - day).days + 2  # up to the second day of the next month: a week start on the way
    assert 2 <= nights <= 33
    late = 0
    for n in range(nights):
        late += append_day(lake, day).late  # late events land on earlier days: those days' partials are replaced
        backfill = {"backfill_from": (day - datetime.timedelta(days=9)).isoformat()} if n == nights // 2 else None
        event, results = night(nightly, backfill)
        assert {m: results[m].mode for m in KEPT} == dict.fromkeys(KEPT, "incremental"), n
        assert set(event["from_partials"]) == ONE_SCAN_CUT  # the night's cuts read the partials it brought up to date
        assert_equal_to_full_refresh(nightly, full, f"night {n + 1} ({day})")
        day += datetime.timedelta(days=1)
    assert late > 0


def test_a_to_date_span_ending_inside_a_day_splits_that_day_only(lake_and_projects) -> None:
    """The as-of of a night is the newest landing, inside a day: the to-date spans end there."""
    lake, nightly, full, last_day = lake_and_projects
    append_day(lake, last_day + datetime.timedelta(days=1))
    api.build(api.load(nightly))
    con = database(nightly)
    try:
        as_of = con.execute("SELECT max(landed_at) FROM read_parquet(?)",
                            [str(lake / "events" / "**" / "*.parquet")]).fetchall()[0][0]
    finally:
        con.close()
    assert as_of.time() != datetime.time()  # so a boundary day is scanned again, not taken whole
    assert_equal_to_full_refresh(nightly, full, "the night")


def test_partials_missing_or_made_by_another_scan_rebuild_the_metric_in_full_and_are_kept_again(
        lake_and_projects) -> None:
    lake, nightly, full, last_day = lake_and_projects
    con = duckdb.connect(str(nightly / "target" / "dev.duckdb"))
    try:  # as after an upgrade, or a scan whose columns changed without the metric's definition changing
        con.execute('DROP TABLE _northstar."partials__on_time_orders"')
        con.execute("UPDATE _northstar.partials_state SET key = 'another' WHERE metric = 'items_per_order'")
        con.execute("DELETE FROM _northstar.partials_state WHERE metric = 'revenue'")
    finally:
        con.close()
    day = last_day + datetime.timedelta(days=1)
    append_day(lake, day)
    result = api.build(api.load(nightly))
    by_name = {r.name: r for r in result.results}
    assert (by_name["on_time_orders"].mode, by_name["on_time_orders"].fallback) == (
        "full", "its kept partials are missing")
    assert (by_name["items_per_order"].mode, by_name["items_per_order"].fallback) == (
        "full", "its kept partials were made by another scan of its rows")
    assert (by_name["revenue"].mode, by_name["revenue"].fallback) == (
        "full", "its partials were not kept by its last full build")
    assert by_name["on_time_rate"].mode == "incremental"
    assert kept(nightly) == dict.fromkeys(KEPT, True)
    assert_equal_to_full_refresh(nightly, full, "the rebuilt night")
    append_day(lake, day + datetime.timedelta(days=1))
    result = api.build(api.load(nightly))
    assert {r.name: r.mode for r in result.results if r.name in KEPT} == dict.fromkeys(KEPT, "incremental")
    assert_equal_to_full_refresh(nightly, full, "the night after")


def test_partials_too_many_to_keep_take_the_unions_night_path(tmp_path: Path, warehouse, monkeypatch) -> None:
    import northstar_pipeline.engines.partials as partials

    lake = copy_lake(warehouse, tmp_path / "warehouse")
    nightly = copy_demo_project(tmp_path / "nightly", lake / "events")
    full = copy_demo_project(tmp_path / "full", lake / "events")
    monkeypatch.setattr(partials, "MAX_KEPT_PARTIALS", 0)  # as when a dimension of many values makes them big
    api.build(api.load(nightly))
    assert kept(nightly) == dict.fromkeys(KEPT, False)
    con = database(nightly)
    try:
        assert not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = '_northstar' "
                               "AND table_name LIKE 'partials\\_\\_%' ESCAPE '\\'").fetchall()[0][0]
    finally:
        con.close()
    append_day(lake, warehouse.last_day + datetime.timedelta(days=1))
    event, results = night(nightly)
    assert event["from_partials"] == []  # the cuts read the rows of their periods
    assert all(results[m].mode == "incremental" for m in KEPT)
    assert_equal_to_full_refresh(nightly, full, "the night")


def test_nights_at_a_quarter_grain_equal_a_full_refresh(tmp_path: Path, warehouse) -> None:
    """A coarser grain: its to-date span ends inside a day too, and a night re-scans the same days."""
    lake = copy_lake(warehouse, tmp_path / "warehouse")
    projects = [copy_demo_project(tmp_path / name, lake / "events") for name in ("nightly", "full")]
    for project in projects:
        profiles = project / "profiles.yml"
        assert "grains: [week, month]" in profiles.read_text()
        profiles.write_text(profiles.read_text().replace("grains: [week, month]", "grains: [week, month, quarter]"))
    nightly, full = projects
    api.build(api.load(nightly))
    assert kept(nightly) == dict.fromkeys(KEPT, True)
    for n in range(2):
        append_day(lake, warehouse.last_day + datetime.timedelta(days=n + 1))
        event, results = night(nightly)
        assert {m: results[m].mode for m in KEPT} == dict.fromkeys(KEPT, "incremental")
        assert {"week", "month", "quarter"} <= set(results["on_time_orders"].recomputed_from)
        assert_equal_to_full_refresh(nightly, full, f"night {n + 1}")


def kept_tables(project: Path) -> set[str]:
    con = database(project)
    try:
        return {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                          "'_northstar' AND table_name LIKE 'partials\\_\\_%' ESCAPE '\\'").fetchall()}
    finally:
        con.close()


def test_kept_partials_go_with_their_metric_or_its_one_scan(demo_project: Path) -> None:
    extra = demo_project / "metrics" / "basket_items.sql"
    extra.write_text((demo_project / "metrics" / "items_per_order.sql").read_text()
                     .replace("label='Items per order'", "label='Basket items'"))
    api.build(api.load(demo_project))
    assert "partials__basket_items" in kept_tables(demo_project) and kept(demo_project)["basket_items"]
    # a distinct count does not recombine: built from its union, its kept partials would never be read again
    extra.write_text(extra.read_text().replace("count(*) as denominator", "count(distinct user_id) as denominator"))
    api.build(api.load(demo_project))
    assert "partials__basket_items" not in kept_tables(demo_project) and "basket_items" not in kept(demo_project)
    extra.write_text((demo_project / "metrics" / "items_per_order.sql").read_text()
                     .replace("label='Items per order'", "label='Basket items'"))
    api.build(api.load(demo_project))
    assert "partials__basket_items" in kept_tables(demo_project)
    extra.unlink()  # removed from the project: dropped with its table (build/orphans.py)
    api.build(api.load(demo_project))
    assert "partials__basket_items" not in kept_tables(demo_project) and "basket_items" not in kept(demo_project)
    assert kept_tables(demo_project) == {f"partials__{m}" for m in KEPT}
