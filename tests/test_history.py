"""Scorecard history: each good build appends its scorecard under target/history/, hive-partitioned by build date.

Three builds of the demo on the same data give three runs, read by DuckDB, pyarrow and polars; the
queries documented in docs/scorecard.md run as written; retention drops old build dates.
"""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest
from conftest import copy_demo_project
from test_errors import edit, run_cli

from northstar_pipeline import api
from northstar_pipeline.build.publish import latest_version

DOCS = Path(__file__).resolve().parent.parent / "docs" / "scorecard.md"


def documented_queries() -> list[str]:
    section = DOCS.read_text().split("## History: target/history/", 1)[1]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


@pytest.fixture
def three_builds(demo_project: Path):
    """The copied demo (already built once), built twice more; the third with items_per_order's definition changed."""
    project = api.load(demo_project)
    runs = [duckdb.connect().execute("SELECT any_value(run_id) FROM read_parquet($p)",
                                     {"p": str(project.scorecard_path)}).fetchall()[0][0]]
    runs.append(api.build(project).run_id)
    edit(demo_project / "metrics" / "items_per_order.sql", "sum(items) / count(*) as value",
         "sum(items) / count(*) + 0 as value")
    runs.append(api.build(api.load(demo_project)).run_id)
    return api.load(demo_project), runs


def test_three_builds_three_runs_in_every_reader(three_builds) -> None:
    import polars as pl

    project, runs = three_builds
    history = project.target_dir / "history"
    files = sorted(history.glob("build_date=*/*.parquet"))
    assert [f.name for f in files] == sorted(f"run_{r}.parquet" for r in runs)
    rows_per_build = duckdb.connect().execute("SELECT count(*) FROM read_parquet($p)",
                                              {"p": str(project.scorecard_path)}).fetchall()[0][0]
    con = duckdb.connect()
    by_run = con.execute("SELECT run_id, count(*), any_value(build_date) FROM read_parquet($g, hive_partitioning = true) "
                         "GROUP BY run_id ORDER BY run_id", {"g": str(history / "*" / "*.parquet")}).fetchall()
    assert [(r, n) for r, n, _ in by_run] == sorted((r, rows_per_build) for r in runs)
    assert all(isinstance(d, date) for *_, d in by_run)  # the partition is read back as a date
    # The last file is the published scorecard version, byte for byte.
    last = history / f"build_date={by_run[0][2]}" / f"run_{runs[-1]}.parquet"
    assert last.read_bytes() == latest_version(project.scorecard_path).read_bytes()

    table = ds.dataset(history, format="parquet", partitioning="hive").to_table()
    assert sorted(set(table.column("run_id").to_pylist())) == sorted(runs) and table.num_rows == 3 * rows_per_build
    assert "build_date" in table.column_names

    frame = pl.scan_parquet(str(history / "*" / "*.parquet"), hive_partitioning=True).collect()
    assert frame["run_id"].n_unique() == 3 and frame.height == 3 * rows_per_build
    assert frame.schema["build_date"] == pl.Date


def test_documented_history_queries(three_builds, monkeypatch) -> None:
    project, runs = three_builds
    report, revised, definitions = documented_queries()
    # Pretend the first build ran a week ago: its file moves to that build date.
    week_ago = date.today() - timedelta(days=7)
    (first,) = project.target_dir.glob(f"history/build_date=*/run_{runs[0]}.parquet")
    old = project.target_dir / "history" / f"build_date={week_ago.isoformat()}"
    old.mkdir()
    shutil.move(first, old / first.name)
    monkeypatch.chdir(project.root)  # the documented queries read target/history/ relative to the project
    con = duckdb.connect()
    card = project.scorecard_path
    default_week = con.execute("SELECT max(period_start) FROM read_parquet($p) WHERE grain = 'week' AND is_complete",
                               {"p": str(card)}).fetchall()[0][0]

    con.execute("SET VARIABLE report_day = $d", {"d": week_ago})
    reported = con.execute(report).fetchall()
    assert {r[6] for r in reported} == {runs[0]} and len(reported) == 12  # that day's build, every metric
    con.execute("SET VARIABLE report_day = $d", {"d": date.today()})
    assert {r[6] for r in con.execute(report).fetchall()} == {runs[2]}  # today: the latest build

    con.execute("SET VARIABLE period = $p", {"p": default_week})
    con.execute("SET VARIABLE metric = 'on_time_orders'")
    revisions = con.execute(revised).fetchall()
    (value,) = con.execute("SELECT value FROM read_parquet($p) WHERE metric = 'on_time_orders' AND grain = 'week' "
                           "AND period_start = $w", {"p": str(card), "w": default_week}).fetchall()[0]
    assert [r[3] for r in revisions] == [value] * 3  # the same data: three equal values
    assert [r[4] for r in revisions][1:] == [0.0, 0.0]

    changes = con.execute(definitions).fetchall()
    per_metric: dict[str, list[int]] = {}
    for metric, _, _, _, builds in changes:
        per_metric.setdefault(metric, []).append(builds)
    assert per_metric["items_per_order"] == [2, 1]  # its definition changed before the third build
    assert all(counts == [3] for metric, counts in per_metric.items() if metric != "items_per_order")


def test_history_retention(demo_project: Path) -> None:
    profiles = demo_project / "profiles.yml"
    profiles.write_text(profiles.read_text() + "history_keep_days: 30\n")
    history = demo_project / "target" / "history"
    old = history / "build_date=2000-01-03"
    old.mkdir(parents=True)
    shutil.copy(next(history.glob("build_date=2*/*.parquet")), old / "run_old.parquet")
    assert run_cli(demo_project, "build").returncode == 0
    assert not old.exists() and len(list(history.glob("build_date=*/*.parquet"))) == 2


def test_bad_retention_is_one_clear_error(demo_project: Path) -> None:
    profiles = demo_project / "profiles.yml"
    lines = profiles.read_text().splitlines()
    profiles.write_text("\n".join(lines + ["history_keep_days: forever"]) + "\n")
    before = (demo_project / "target" / "scorecard.parquet").read_bytes()
    result = run_cli(demo_project, "build")
    assert result.returncode == 1 and "Traceback" not in result.stderr  # EXIT_PROJECT
    assert f"profiles.yml:{len(lines) + 1}" in result.stderr and "history_keep_days" in result.stderr
    assert (demo_project / "target" / "scorecard.parquet").read_bytes() == before


def test_late_data_shows_as_a_revision(tmp_path: Path, warehouse, monkeypatch) -> None:
    """Signups that land late for an earlier week: the documented revision query shows them, build by build."""
    events = tmp_path / "events"
    shutil.copytree(warehouse.events_dir, events)
    root = copy_demo_project(tmp_path / "project", events)
    first = api.build(api.load(root))
    con = duckdb.connect()
    card = str(root / "target" / "scorecard.parquet")
    week, as_of = con.execute("SELECT max(period_start) FILTER (WHERE is_complete), any_value(as_of) "
                              "FROM read_parquet($p) WHERE grain = 'week'", {"p": card}).fetchall()[0]
    late = sorted(events.glob("landed_date=*"))[-1] / "late.parquet"
    con.sql("SELECT 9000000000 + i AS event_id, 9000000 + i AS user_id, 'signup' AS event_type, "
            "CAST($day AS TIMESTAMP) + INTERVAL 12 HOUR AS occurred_at, CAST($as_of AS TIMESTAMP) AS landed_at, "
            "NULL::BIGINT AS order_id, NULL::INTEGER AS items, NULL::TIMESTAMP AS promised_at, "
            "NULL::TIMESTAMP AS delivered_at, 'north' AS region, 'ios' AS platform FROM range(7) t(i)",
            params={"day": week + timedelta(days=2), "as_of": as_of}).write_parquet(str(late))
    second = api.build(api.load(root))
    monkeypatch.chdir(root)
    con.execute("SET VARIABLE period = $p", {"p": week})
    con.execute("SET VARIABLE metric = 'new_customers'")
    revisions = con.execute(documented_queries()[1]).fetchall()
    assert [r[1] for r in revisions] == [first.run_id, second.run_id]
    assert revisions[1][3] - revisions[0][3] == 7 and revisions[1][4] == 7  # seven late signups, one revision
