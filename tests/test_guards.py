"""Data never lost: an empty source or a shrunken table stops the build before anything is committed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
from sqlglot import exp

from northstar_pipeline.errors import EXIT_DATA
from test_errors import edit, line_of, run_cli


def _point_at(project: Path, lake: Path) -> None:
    profiles = project / "profiles.yml"
    edit(profiles, re.search(r"events_path: (\S+)", profiles.read_text()).group(0), f"events_path: {lake}")


def _tables(project: Path) -> list[tuple]:
    con = duckdb.connect(str(project / "target" / "dev.duckdb"), read_only=True)
    try:
        names = con.execute("select schema_name, table_name from duckdb_tables() order by 1, 2").fetchall()
        return [(s, t, len(con.table(exp.table_(t, db=s, quoted=True).sql("duckdb")).fetchall())) for s, t in names]
    finally:
        con.close()


def test_an_empty_source_is_a_data_error_before_anything_is_written(demo_project: Path, warehouse,
                                                                     tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    day = next(p for p in sorted(warehouse.events_dir.iterdir()) if p.is_dir())
    (lake / day.name).mkdir(parents=True)
    source = next(day.glob("*.parquet"))
    con = duckdb.connect()
    con.read_parquet(str(source)).limit(0).write_parquet(str(lake / day.name / "part.parquet"))  # 0 rows
    con.close()
    _point_at(demo_project, lake)
    before, tables = (demo_project / "target" / "scorecard.parquet").read_bytes(), _tables(demo_project)
    run_results = (demo_project / "target" / "run_results.json").read_bytes()
    result = run_cli(demo_project, "build")
    assert result.returncode == EXIT_DATA, result.stderr
    assert "Traceback" not in result.stderr
    sources = demo_project / "models" / "sources.yml"
    assert f"models/sources.yml:{line_of(sources, 'location:')}: source 'raw.events' has no rows" in result.stderr
    assert "hint: " in result.stderr
    assert (demo_project / "target" / "scorecard.parquet").read_bytes() == before
    assert _tables(demo_project) == tables
    assert (demo_project / "target" / "run_results.json").read_bytes() == run_results  # not even a run record


def test_a_table_that_shrinks_stops_the_build_unless_allowed(demo_project: Path, warehouse, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    days = sorted(p for p in warehouse.events_dir.iterdir() if p.is_dir())
    for day in days[: len(days) // 10]:  # a broken export: a tenth of the history
        shutil.copytree(day, lake / day.name)
    _point_at(demo_project, lake)
    scorecard = demo_project / "target" / "scorecard.parquet"
    before, tables = scorecard.read_bytes(), _tables(demo_project)
    stored = dict(((s, t), n) for s, t, n in tables)[("staging", "stg_events")]
    con = duckdb.connect()
    expected = con.execute("select count(distinct event_id) from read_parquet(?, hive_partitioning=true)",
                           [str(lake / "**" / "*.parquet")]).fetchone()[0]
    con.close()
    result = run_cli(demo_project, "build", "--log-format", "json")
    assert result.returncode == EXIT_DATA, result.stderr
    error = json.loads(result.stderr.splitlines()[-1])
    assert error["event"] == "error" and error["error"] == "ShrinkError" and error["node"] == "stg_events"
    assert error["file"] == "models/stg_events.sql" and isinstance(error["line"], int)
    assert f"from {stored:,} to {expected:,} rows" in error["message"] and "--allow-shrink" in error["hint"]
    assert scorecard.read_bytes() == before and _tables(demo_project) == tables
    record = json.loads((demo_project / "target" / "run_results.json").read_text())
    assert {r["name"]: r["status"] for r in record["results"]}["stg_events"] == "error"
    # max_shrink: 1 turns the guard off: the build goes through
    profiles = demo_project / "profiles.yml"
    profiles.write_text(profiles.read_text() + "max_shrink: 1\n")
    assert run_cli(demo_project, "build").returncode == 0
    assert dict(((s, t), n) for s, t, n in _tables(demo_project))[("staging", "stg_events")] == expected


def test_allow_shrink_commits_a_real_shrink(demo_project: Path, warehouse, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    days = sorted(p for p in warehouse.events_dir.iterdir() if p.is_dir())
    for day in days[: len(days) // 10]:
        shutil.copytree(day, lake / day.name)
    _point_at(demo_project, lake)
    before = (demo_project / "target" / "scorecard.parquet").read_bytes()
    result = run_cli(demo_project, "build", "--allow-shrink")
    assert result.returncode == 0, result.stderr
    assert (demo_project / "target" / "scorecard.parquet").read_bytes() != before


def test_max_shrink_must_be_a_share(demo_project: Path) -> None:
    profiles = demo_project / "profiles.yml"
    profiles.write_text(profiles.read_text() + "max_shrink: half\n")
    result = run_cli(demo_project, "compile")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"profiles.yml:{line_of(profiles, 'max_shrink')}: max_shrink must be a number between 0 and 1" in result.stderr
