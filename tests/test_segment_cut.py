"""The one-scan cut (build/segment_cut.py) gives the per-dimension queries' rows, and is not used where it
could differ (a distinct count, HAVING)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from northstar_pipeline import api
from northstar_pipeline.build.pipeline import compile_project

TOL = 1e-9
KEY = ("dimension", "grain", "period_start", "is_to_date", "segment")


def cut_rows(con: duckdb.DuckDBPyConnection, sql: str, dimension: str | None = None) -> dict[tuple, tuple]:
    rows = con.execute(f"SELECT * FROM ({sql})").fetchall()
    names = [d[0] for d in con.description]
    out = {}
    for row in rows:
        r = dict(zip(names, row))
        if dimension:
            r["dimension"] = dimension
        out[tuple(r[k] for k in KEY)] = (r["value"], r["numerator"], r["denominator"])
    return out


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def test_one_scan_equals_the_per_dimension_queries(demo_project: Path) -> None:
    project = api.load(demo_project)  # a copy of the built demo: compiling writes its target/
    manifest = compile_project(project)
    con = duckdb.connect(str(project.root / "target" / "dev.duckdb"), read_only=True)
    try:
        con.execute("CREATE TEMP TABLE _ns_segment_keep AS SELECT * FROM _northstar.segment_keep")
        assert con.execute("SELECT count(*) FROM _ns_segment_keep").fetchone()[0] > 0
        checked = 0
        for node in manifest.nodes:
            if node.segment_cut is None:
                continue
            one = cut_rows(con, node.segment_cut.sql)
            per: dict[tuple, tuple] = {}
            for query in node.segment_sql:
                per.update(cut_rows(con, query.sql, query.dimension))
            assert one.keys() == per.keys(), node.name
            assert all(all(close(a, b) for a, b in zip(one[k], per[k])) for k in per), node.name
            assert any(k[3] for k in one) and any(not k[3] for k in one)  # to-date spans and full periods
            checked += 1
        assert checked == 7  # every cut demo metric but the two distinct counts
    finally:
        con.close()


def test_no_one_scan_where_it_could_differ(demo_project: Path) -> None:
    path = demo_project / "metrics" / "search_to_cart_rate.sql"
    path.write_text(path.read_text().replace("group by 1", "group by 1\nhaving count(*) > 0"))
    manifest = compile_project(api.load(demo_project))
    assert manifest.node("search_to_cart_rate").segment_cut is None  # HAVING filters each set's groups
    assert manifest.node("search_to_cart_rate").segment_sql  # still cut, per dimension
    assert manifest.node("ordering_customers").segment_cut is None  # count(distinct user_id)
    assert manifest.node("push_click_through_rate").segment_cut is not None
