"""The BI database (target/bi.duckdb): views only, absolute paths, readable while builds replace it.

A second process keeps opening it read-only and running every documented query while two builds
run: no query fails and no build is blocked; a new connection then sees the last build.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import sqlglot
from sqlglot import exp

from northstar_pipeline import api

DOCS = Path(__file__).resolve().parent.parent / "docs" / "bi.md"
VIEWS = {"scorecard", "scorecard_complete", "scorecard_latest", "sparkline_points", "history", "tree_validation"}

READER = r"""
import json, sys, time, duckdb
from pathlib import Path
path, stop, queries = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
answered, runs, errors = 0, [], []
while not stop.exists():
    try:
        con = duckdb.connect(path, read_only=True)
        try:
            for query in queries:
                con.execute(query).fetchall()
                answered += 1
            runs.append(con.execute("SELECT any_value(run_id) FROM scorecard").fetchall()[0][0])
        finally:
            con.close()
    except Exception as error:  # every failure is reported, none hidden
        errors.append(repr(error))
    time.sleep(0.02)
print(json.dumps({"answered": answered, "runs": sorted(set(runs)), "errors": errors}))
"""


def documented_queries() -> list[str]:
    return [q.strip() for q in re.findall(r"```sql\n(.*?)```", DOCS.read_text(), re.S)]


def test_bi_views_are_absolute_and_match_the_parquet(demo_project: Path) -> None:
    project = api.load(demo_project)
    path = project.target_dir / "bi.duckdb"
    # demo_project is a copy: its bi.duckdb still names the original's files until a build here rewrites it.
    with duckdb.connect(str(path), read_only=True) as con:
        assert str(demo_project) not in con.execute("SELECT string_agg(sql) FROM duckdb_views()").fetchall()[0][0]
    api.build(project)
    con = duckdb.connect(str(path), read_only=True)
    assert {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()} == VIEWS
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchall() == [(0,)]  # views only, no data
    for name, sql in con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall():
        scans = [f for f in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Anonymous)
                 if f.name.lower() == "read_parquet"] + [
                     f for f in sqlglot.parse_one(sql, read="duckdb").find_all(exp.ReadParquet)]
        paths = [a.name for scan in scans for a in scan.expressions[:1]] + [
            scan.this.name for scan in scans if isinstance(scan, exp.ReadParquet) and scan.this is not None]
        assert paths, name
        for text in paths:
            assert Path(text).is_absolute() and text.startswith(str(project.target_dir.resolve())), (name, text)
    # The same numbers as the Parquet, read by another route.
    direct = duckdb.connect().execute("SELECT metric, grain, period_start, value FROM read_parquet($p) "
                                      "ORDER BY ALL", {"p": str(project.scorecard_path)}).fetchall()
    assert con.execute("SELECT metric, grain, period_start, value FROM scorecard ORDER BY ALL").fetchall() == direct
    latest = con.execute("SELECT metric, grain, period_start FROM scorecard_latest ORDER BY ALL").fetchall()
    expected = duckdb.connect().execute(
        "SELECT metric, grain, max(period_start) FROM read_parquet($p) WHERE is_complete GROUP BY ALL ORDER BY ALL",
        {"p": str(project.scorecard_path)}).fetchall()
    assert latest == expected
    points = con.execute("SELECT point, value FROM sparkline_points WHERE metric = 'on_time_orders' AND grain = 'week' "
                         "AND period_start = (SELECT max(period_start) FROM scorecard_latest WHERE grain = 'week') "
                         "ORDER BY point").fetchall()
    spark = duckdb.connect().execute(
        "SELECT sparkline FROM read_parquet($p) WHERE metric = 'on_time_orders' AND grain = 'week' AND period_start = "
        "(SELECT max(period_start) FROM read_parquet($p) WHERE grain = 'week' AND is_complete)",
        {"p": str(project.scorecard_path)}).fetchall()[0][0]
    assert [v for _, v in points] == spark and [p for p, _ in points] == list(range(1, len(spark) + 1))
    assert con.sql("SELECT * FROM scorecard_latest").pl().height == len(expected)  # polars, as docs/bi.md shows
    assert isinstance(con.sql("SELECT * FROM history").pl(), pl.DataFrame)
    con.close()


def test_bi_database_read_while_builds_replace_it(demo_project: Path, tmp_path: Path) -> None:
    project = api.load(demo_project)
    path = project.target_dir / "bi.duckdb"
    queries = documented_queries()
    assert len(queries) >= 6
    stop = tmp_path / "stop"
    holder = duckdb.connect(str(path), read_only=True)  # a BI tool holding the file open all along
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), str(stop), json.dumps(queries)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        builds = [api.build(project).run_id for _ in range(2)]  # neither is blocked by the readers
        time.sleep(0.5)
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=120)
    report = json.loads(out)
    assert reader.returncode == 0, err
    assert report["errors"] == [] and report["answered"] >= 2 * len(queries)
    assert builds[-1] in report["runs"]
    for query in queries:  # the connection opened before both builds still answers
        holder.execute(query).fetchall()
    holder.close()
    with duckdb.connect(str(path), read_only=True) as con:  # a new connection sees the new build
        assert con.execute("SELECT any_value(run_id) FROM scorecard").fetchall() == [(builds[-1],)]
        assert con.execute("SELECT count(DISTINCT run_id) FROM history").fetchall()[0][0] == 3
    assert not list(path.parent.glob(".bi.duckdb.*"))  # no temporary file left behind
