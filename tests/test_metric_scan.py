"""A metric's build in one scan (engines/metric_scan.py): the same rows as its union of renderings and the
same coverage as its day rendering, values checked against SQL written here over the model rows; and the
union kept wherever one scan could differ (a distinct count, AVG, HAVING, a CTE)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import duckdb
import pytest
from conftest import copy_demo_project, copy_lake

from northstar_pipeline import api
from northstar_pipeline.build.pipeline import compile_project
from northstar_pipeline.demo.append_day import append_day
from northstar_pipeline.engines.metric_scan import coverage_rows, metric_scan
from northstar_pipeline.errors import ExecutionError
from northstar_pipeline.types import NodeKind

TOL = 1e-9
KEY = "grain, is_to_date, period_start"

# Every recombining aggregate at once: COUNT (star, column, FILTER), SUM of integers and of doubles, MIN, MAX,
# a WHERE, and a value that is arithmetic over them (recomputed from the recombined parts, never averaged).
SHAPES = """{{ config(kind='outcome', label='Scan shapes', owner='Tests', unit='number') }}
select
    {{ period('placed_at') }} as period_start,
    (sum(items) + max(items) - min(items)) / nullif(count(*) filter (where items > 3), 0) as value,
    sum(items * 0.1) as numerator,
    count(user_id) as denominator
from {{ ref('stg_orders') }}
where items is not null
group by 1
"""

# By hand over stg_orders: each grain's periods, one GROUP BY per grain.
SHAPES_BY_HAND = """
SELECT grain, period_start,
       (sum(items) + max(items) - min(items)) / nullif(count(*) FILTER (WHERE items > 3), 0) AS value,
       sum(items * 0.1) AS numerator, count(user_id) AS denominator
FROM (SELECT 'week' AS grain, CAST(date_trunc('week', placed_at) AS DATE) AS period_start, * FROM staging.stg_orders
      UNION ALL
      SELECT 'month', CAST(date_trunc('month', placed_at) AS DATE), * FROM staging.stg_orders)
WHERE items IS NOT NULL
GROUP BY grain, period_start
"""


def build(project: Path) -> None:
    api.build(api.load(project))


def table_rows(con: duckdb.DuckDBPyConnection, node) -> dict[tuple, tuple]:
    rows = con.execute(f'SELECT {KEY}, value, numerator, denominator FROM "{node.schema}"."{node.name}"').fetchall()
    return {r[:3]: r[3:] for r in rows}


def union_rows(con: duckdb.DuckDBPyConnection, node) -> dict[tuple, tuple]:
    rows = con.execute(f"SELECT {KEY}, value, numerator, denominator FROM ({node.sql})").fetchall()
    return {r[:3]: r[3:] for r in rows}


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = float(a), float(b)  # the SQL by hand keeps SUM(items * 0.1) a DECIMAL
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def same(got: dict[tuple, tuple], want: dict[tuple, tuple]) -> bool:
    return got.keys() == want.keys() and all(all(close(a, b) for a, b in zip(got[k], want[k])) for k in want)


def test_every_scanned_demo_metric_equals_its_union_and_its_coverage(demo_project: Path) -> None:
    manifest = compile_project(api.load(demo_project))
    scanned = {n.name for n in manifest.nodes if n.kind is NodeKind.METRIC and metric_scan(n) is not None}
    # the four that keep the union: two distinct counts, and two whose period() is inside a CTE
    assert scanned == {"on_time_orders", "on_time_rate", "items_per_order", "avg_delivery_minutes_late",
                       "search_to_cart_rate", "push_click_through_rate", "new_customers", "revenue"}
    con = duckdb.connect(str(demo_project / "target" / "dev.duckdb"), read_only=True)
    try:
        for name in sorted(scanned):
            node = manifest.node(name)
            got = table_rows(con, node)
            assert same(got, union_rows(con, node)), name
            assert any(k[1] for k in got) and any(not k[1] for k in got), name  # to-date spans and whole periods
    finally:
        con.close()


def test_every_metrics_coverage_equals_its_day_rendering(demo_project: Path) -> None:
    """From the partials (one scan), from the rows without aggregates (a distinct count's day rendering), or from
    the day rendering itself (a CTE): always the first and last period_start of the grouped day rendering."""
    manifest = compile_project(api.load(demo_project))
    metrics = [n for n in manifest.nodes if n.coverage_sql]
    assert {n.name for n in metrics if coverage_rows(n.coverage_sql) is not None and metric_scan(n) is None} == {
        "ordering_customers", "orders_per_customer"}
    con = duckdb.connect(str(demo_project / "target" / "dev.duckdb"), read_only=True)
    try:
        for node in metrics:
            stored = con.execute("SELECT first_day, last_day FROM _northstar.coverage WHERE metric = ?",
                                 [node.name]).fetchall()
            by_day = con.execute(f"SELECT min(period_start), max(period_start) FROM ({node.coverage_sql})").fetchall()
            assert stored == by_day and by_day[0][0] is not None, node.name
    finally:
        con.close()


def test_recombined_aggregates_equal_sql_by_hand(demo_project: Path) -> None:
    (demo_project / "metrics" / "scan_shapes.sql").write_text(SHAPES)
    build(demo_project)
    node = compile_project(api.load(demo_project)).node("scan_shapes")
    scan = metric_scan(node)
    assert scan is not None and scan.day_key and not scan.dimensions
    con = duckdb.connect(str(demo_project / "target" / "dev.duckdb"), read_only=True)
    try:
        got = table_rows(con, node)
        by_hand = {(g, False, p): rest for g, p, *rest in con.execute(SHAPES_BY_HAND).fetchall()}
        assert same({k: v for k, v in got.items() if not k[1]}, by_hand)
        assert same(got, union_rows(con, node))  # the to-date spans too
        first, last = con.execute("SELECT first_day, last_day FROM _northstar.coverage WHERE metric = 'scan_shapes'"
                                  ).fetchone()
        assert (first, last) == con.execute("SELECT min(CAST(placed_at AS DATE)), max(CAST(placed_at AS DATE)) "
                                            "FROM staging.stg_orders WHERE items IS NOT NULL").fetchone()
    finally:
        con.close()


def test_an_empty_input_gives_no_rows_and_no_covered_day(demo_project: Path) -> None:
    (demo_project / "metrics" / "scan_shapes.sql").write_text(SHAPES.replace("where items is not null",
                                                                             "where items < 0"))
    build(demo_project)
    con = duckdb.connect(str(demo_project / "target" / "dev.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM outcome.scan_shapes").fetchone() == (0,)
        assert con.execute("SELECT first_day, last_day FROM _northstar.coverage WHERE metric = 'scan_shapes'"
                           ).fetchall() == [(None, None)]
    finally:
        con.close()


def test_a_row_with_no_period_fails_the_contract_as_the_union_does(demo_project: Path) -> None:
    path = demo_project / "metrics" / "scan_shapes.sql"
    path.write_text(SHAPES.replace("{{ period('placed_at') }}", "{{ period('nullif(placed_at, placed_at)') }}"))
    assert metric_scan(compile_project(api.load(demo_project)).node("scan_shapes")) is not None
    with pytest.raises(ExecutionError, match="scan_shapes"):
        build(demo_project)


@pytest.mark.parametrize("change", [
    ("count(user_id) as denominator", "count(distinct user_id) as denominator"),  # a distinct count
    ("sum(items * 0.1) as numerator", "avg(items) as numerator"),  # AVG does not recombine
    ("group by 1", "group by 1\nhaving count(*) > 0"),  # HAVING filters each rendering's groups
    ("count(user_id) as denominator",  # a subquery's count is over its own rows: not a partial of these
     "count(user_id) + (select count(*) from {{ ref('stg_signups') }}) as denominator"),
])
def test_the_union_is_kept_where_one_scan_could_differ(demo_project: Path, change: tuple[str, str]) -> None:
    (demo_project / "metrics" / "scan_shapes.sql").write_text(SHAPES.replace(*change))
    build(demo_project)
    node = compile_project(api.load(demo_project)).node("scan_shapes")
    assert metric_scan(node) is None
    con = duckdb.connect(str(demo_project / "target" / "dev.duckdb"), read_only=True)
    try:
        assert same(table_rows(con, node), union_rows(con, node))
    finally:
        con.close()


ONE_SCAN_CUT = {"on_time_orders", "on_time_rate", "items_per_order", "avg_delivery_minutes_late",
                "search_to_cart_rate", "push_click_through_rate", "new_customers"}


def segments_event(project: Path, **options) -> dict:
    events: list[dict] = []
    api.build(api.load(project), report=lambda name, data: events.append(data) if name == "segments" else None,
              **options)
    (event,) = events
    return event


def segment_cuts(project: Path) -> dict[tuple, tuple]:
    con = duckdb.connect(str(project / "target" / "dev.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT metric, dimension, segment, grain, is_to_date, period_start, value, numerator, "
                           "denominator FROM _northstar.segment_cuts").fetchall()
    finally:
        con.close()
    return {r[:6]: r[6:] for r in rows}


def test_a_full_build_cuts_from_the_partials_and_a_fallback_from_the_rows_agree(demo_project: Path,
                                                                              monkeypatch) -> None:
    # The values themselves are checked against SQL over the raw events in tests/test_segments.py (a full build).
    event = segments_event(demo_project, full_refresh=True)
    assert set(event["from_partials"]) == ONE_SCAN_CUT
    from_partials = segment_cuts(demo_project)
    import northstar_pipeline.engines.partials as partials

    monkeypatch.setattr(partials, "MAX_KEPT_PARTIALS", 0)  # as when a dimension of many values makes them big
    assert segments_event(demo_project, full_refresh=True)["from_partials"] == []
    assert same(segment_cuts(demo_project), from_partials)


def test_a_night_recomputes_its_periods_and_cuts_from_its_kept_partials_equal_to_a_full_refresh(
        tmp_path: Path, warehouse) -> None:
    lake = copy_lake(warehouse, tmp_path / "warehouse")
    nightly = copy_demo_project(tmp_path / "nightly", lake / "events")
    full = copy_demo_project(tmp_path / "full", lake / "events")
    api.build(api.load(nightly))
    append_day(lake, warehouse.last_day + datetime.timedelta(days=1))
    # the kept partials brought up to date (engines/stored_partials.py): the night cuts from them too
    assert set(segments_event(nightly)["from_partials"]) == ONE_SCAN_CUT
    results = json.loads((nightly / "target" / "run_results.json").read_text())["results"]
    assert {r["name"]: r["mode"] for r in results if r["name"] in ONE_SCAN_CUT} == dict.fromkeys(ONE_SCAN_CUT,
                                                                                                 "incremental")
    assert set(segments_event(full, full_refresh=True)["from_partials"]) == ONE_SCAN_CUT
    assert same(segment_cuts(nightly), segment_cuts(full))
    manifest = compile_project(api.load(full))
    cons = [duckdb.connect(str(p / "target" / "dev.duckdb"), read_only=True) for p in (nightly, full)]
    try:
        for name in sorted(ONE_SCAN_CUT | {"revenue"}):
            node = manifest.node(name)
            assert same(table_rows(cons[0], node), table_rows(cons[1], node)), name
    finally:
        for con in cons:
            con.close()
