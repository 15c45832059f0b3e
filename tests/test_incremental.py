"""Incremental models: a nightly batch on top of the stored table gives the numbers a full rebuild gives."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import copy_demo_project
from test_errors import edit, line_of, run_cli

from northstar_pipeline.errors import EXIT_PROJECT

COLUMNS = ("event_id, user_id, event_type, occurred_at, order_id, items, promised_at, delivered_at, region, platform, "
           "landed_date")
INCREMENTAL_STG_EVENTS = """{{ config(description='Raw events, deduplicated; new partitions are added nightly.',
          materialized='incremental', unique_key='event_id') }}
with batch as (
    select * from {{ source('raw', 'events') }}
    {% if is_incremental() %}
    -- partitions that landed since the last build, and LOOKBACK days before it for late files
    where landed_date >= (select max(landed_date) - LOOKBACK from {{ this }})
    {% endif %}
),
redelivered as (
    select event_id from batch group by event_id having count(*) > 1
)
select COLUMNS from batch anti join redelivered using (event_id)
union all
select COLUMNS from batch semi join redelivered using (event_id)
qualify row_number() over (partition by event_id order by landed_at) = 1
""".replace("COLUMNS", COLUMNS)


def early_lake(tmp_path: Path, warehouse) -> tuple[Path, Path, list[Path]]:
    """(the demo project, its events dir holding the first 80% of the partitions, the partitions still to land)."""
    partitions = sorted(warehouse.events_dir.glob("landed_date=*"))
    cut = int(len(partitions) * 0.8)
    events = tmp_path / "lake" / "events"
    for partition in partitions[:cut]:
        shutil.copytree(partition, events / partition.name)
    return copy_demo_project(tmp_path / "project", events), events, partitions[cut:]


@pytest.fixture
def nightly(tmp_path: Path, warehouse) -> tuple[Path, Path, list[Path]]:
    """early_lake() with this file's own incremental stg_events (a 2-day lookback)."""
    project, events, later = early_lake(tmp_path, warehouse)
    (project / "models" / "stg_events.sql").write_text(INCREMENTAL_STG_EVENTS.replace("LOOKBACK", "2"))
    return project, events, later


def modes(project: Path) -> dict[str, str | None]:
    results = json.loads((project / "target" / "run_results.json").read_text())["results"]
    return {r["name"]: r.get("mode") for r in results}


def scorecard_values(project: Path) -> list[tuple]:
    return duckdb.connect().execute(
        "SELECT metric, grain, period_start, is_complete, value, previous_value, status FROM read_parquet($p) "
        "ORDER BY ALL", {"p": str(project / "target" / "scorecard.parquet")}).fetchall()


def same_numbers(a: list[tuple], b: list[tuple]) -> bool:
    """Equal rows, floats to 1e-9 relative: sums over rows in another order differ in the last bits."""
    def close(x: object, y: object) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
        return x == y

    return len(a) == len(b) and all(len(r) == len(q) and all(map(close, r, q)) for r, q in zip(a, b))


def stored_events(project: Path, columns: str = COLUMNS) -> list[tuple]:
    con = duckdb.connect(str(project / "target" / "dev.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT {columns} FROM staging.stg_events ORDER BY event_id").fetchall()
    finally:
        con.close()


def test_nightly_batches_give_the_numbers_of_a_full_rebuild(nightly) -> None:
    project, events, later = nightly
    first = run_cli(project, "build")
    assert first.returncode == 0, first.stderr
    assert modes(project)["stg_events"] == "full"  # nothing stored yet
    rows_before = len(stored_events(project))

    for partition in later:  # the next nights' partitions land, some with re-deliveries of older events
        shutil.copytree(partition, events / partition.name)
    nightly_run = run_cli(project, "build", "--log-format", "json")
    assert nightly_run.returncode == 0, nightly_run.stderr
    assert modes(project)["stg_events"] == "incremental"
    done = [json.loads(line) for line in nightly_run.stderr.splitlines() if '"node_done"' in line]
    assert {e["node"]: e.get("mode") for e in done}["stg_events"] == "incremental"
    incremental_card, incremental_rows = scorecard_values(project), stored_events(project, "event_id, occurred_at")
    assert len(incremental_rows) > rows_before

    rebuilt = run_cli(project, "build", "--full-refresh")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert modes(project)["stg_events"] == "full"
    assert same_numbers(scorecard_values(project), incremental_card)
    assert stored_events(project, "event_id, occurred_at") == incremental_rows  # one row per event, the same ones
    expected = duckdb.connect().execute("SELECT count(DISTINCT event_id) FROM read_parquet($g, hive_partitioning = true)",
                                        {"g": f"{events}/**/*.parquet"}).fetchall()[0][0]
    assert len(incremental_rows) == expected


def test_a_run_without_new_data_changes_nothing(nightly) -> None:
    project, _, _ = nightly
    assert run_cli(project, "build").returncode == 0
    card, rows = scorecard_values(project), stored_events(project)
    result = run_cli(project, "build")
    assert result.returncode == 0, result.stderr
    assert modes(project)["stg_events"] == "incremental"
    assert stored_events(project) == rows and same_numbers(scorecard_values(project), card)  # idempotent


def test_a_changed_definition_rebuilds_in_full_by_itself(nightly) -> None:
    project, _, _ = nightly
    model = project / "models" / "stg_events.sql"
    assert run_cli(project, "build").returncode == 0
    model.write_text(INCREMENTAL_STG_EVENTS.replace("LOOKBACK", "5"))  # only the batch's window: still incremental
    assert run_cli(project, "build").returncode == 0
    assert modes(project)["stg_events"] == "incremental"
    edit(model, "having count(*) > 1", "having count(*) >= 2")  # the full query: what stored rows mean
    assert run_cli(project, "build").returncode == 0
    assert modes(project)["stg_events"] == "full"
    edit(project / "profiles.yml", "on_time_grace_minutes: 0 ", "on_time_grace_minutes: 5 ")  # upstream of nothing
    assert run_cli(project, "build").returncode == 0
    assert modes(project)["stg_events"] == "incremental"


def test_pointed_at_another_lake_it_rebuilds_in_full(nightly, tmp_path: Path) -> None:
    project, events, later = nightly
    assert run_cli(project, "build").returncode == 0
    other = tmp_path / "other-lake" / "events"
    for partition in later:  # a different lake: only the later partitions
        shutil.copytree(partition, other / partition.name)
    # A smaller lake on purpose: the shrink guard (tests/test_guards.py) is told it is expected.
    result = run_cli(project, "build", "--vars", f"{{events_path: {other}}}", "--allow-shrink")
    assert result.returncode == 0, result.stderr
    assert modes(project)["stg_events"] == "full"
    expected = duckdb.connect().execute("SELECT count(DISTINCT event_id) FROM read_parquet($g, hive_partitioning = true)",
                                        {"g": f"{other}/**/*.parquet"}).fetchall()[0][0]
    assert len(stored_events(project, "event_id")) == expected  # none of the first lake's rows is left


@pytest.mark.parametrize("model, old, new, at, words", [
    ("stg_events", "select event_id, user_id", "select event_id{% if is_incremental() %} + 0.5{% endif %} as event_id, user_id",
     "+ 0.5", "the is_incremental() query returns other columns than the full query"),
    ("stg_events", "unique_key='event_id'", "unique_key='id'", "unique_key", "unique_key id is not a column"),
    ("stg_signups", "where event_type = 'signup'",
     "where event_type = 'signup' and user_id not in (select user_id from {{ this }})", "{{ this }}",
     "{{ this }} is read outside an incremental model's is_incremental() branch"),
], ids=["batch_columns", "unique_key", "this_in_a_table"])
def test_compile_errors(nightly, model: str, old: str, new: str, at: str, words: str) -> None:
    project, _, _ = nightly
    path = project / "models" / f"{model}.sql"
    edit(path, old, new)
    result = run_cli(project, "build")
    assert result.returncode == EXIT_PROJECT and "Traceback" not in result.stderr
    assert f"models/{model}.sql:{line_of(path, at)}" in result.stderr and words in result.stderr
    assert "hint:" in result.stderr


def test_a_failed_batch_keeps_the_stored_rows_and_their_state(nightly) -> None:
    project, events, later = nightly
    assert run_cli(project, "build").returncode == 0
    rows = stored_events(project)
    for partition in later:
        shutil.copytree(partition, events / partition.name)
    model = project / "models" / "stg_events.sql"
    edit(model, "where landed_date >=", "where error('the lake is unreachable') is null and landed_date >=")
    result = run_cli(project, "build")
    assert result.returncode == 3 and "the lake is unreachable" in result.stderr and "Traceback" not in result.stderr
    assert stored_events(project) == rows  # the transaction rolled the batch back
    edit(model, "where error('the lake is unreachable') is null and landed_date >=", "where landed_date >=")
    assert run_cli(project, "build").returncode == 0
    assert modes(project)["stg_events"] == "incremental" and len(stored_events(project)) > len(rows)



def test_a_backfill_rereads_history_the_nightly_lookback_does_not(tmp_path: Path, warehouse) -> None:
    """The demo's own stg_events. An old partition is rewritten in place (a corrected export): the nightly
    run does not see it, a backfill from that day does, and gives what a full refresh gives."""
    events = tmp_path / "lake" / "events"
    shutil.copytree(warehouse.events_dir, events)
    project = copy_demo_project(tmp_path / "project", events)
    assert run_cli(project, "build").returncode == 0
    before = scorecard_values(project)
    day = sorted(p.name.split("=")[1] for p in events.glob("landed_date=*"))[40]
    partition = events / f"landed_date={day}"
    con = duckdb.connect()
    con.execute(f"CREATE TABLE fixed AS SELECT * REPLACE (CASE WHEN event_type = 'order_placed' THEN items + 1 "
                f"ELSE items END AS items) FROM read_parquet('{partition}/*.parquet')")
    for old in partition.glob("*.parquet"):
        old.unlink()
    con.execute(f"COPY fixed TO '{partition / 'corrected.parquet'}' (FORMAT parquet)")

    assert run_cli(project, "build").returncode == 0
    assert same_numbers(scorecard_values(project), before)  # beyond the lookback: not re-read
    result = run_cli(project, "build", "--vars", f"{{backfill_from: {day}}}")
    assert result.returncode == 0, result.stderr
    assert modes(project)["stg_events"] == "incremental"
    backfilled = scorecard_values(project)
    assert not same_numbers(backfilled, before)  # items_per_order moved where those orders were placed
    assert run_cli(project, "build", "--full-refresh").returncode == 0
    assert same_numbers(scorecard_values(project), backfilled)


def test_the_readme_example_builds_full_then_incremental(tmp_path: Path, warehouse) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Incremental models"):]
    start = section.index("```sql\n") + len("```sql\n")
    example = section[start:section.index("```\n", start)]
    project = copy_demo_project(tmp_path / "project", warehouse.events_dir)
    (project / "models" / "events_example.sql").write_text(example)
    for mode in ("full", "incremental"):
        result = run_cli(project, "build", "--select", "events_example")
        assert result.returncode == 0, result.stderr
        assert modes(project)["events_example"] == mode


def test_a_late_redelivery_with_other_values_keeps_the_first_landing(tmp_path: Path, warehouse) -> None:
    """The demo's own stg_events: an old order re-delivered tonight with other values is a re-delivery;
    the nightly run keeps the stored first landing, exactly as a full build does."""
    project, events, later = early_lake(tmp_path, warehouse)
    partitions = sorted(events.glob("landed_date=*"))
    assert run_cli(project, "build").returncode == 0

    con = duckdb.connect()
    early = next(p for p in partitions[5:] if con.execute(
        f"SELECT count(*) FROM read_parquet('{p}/*.parquet') WHERE event_type = 'order_placed'").fetchall()[0][0])
    order = con.execute(f"SELECT event_id, items FROM read_parquet('{early}/*.parquet') "
                        "WHERE event_type = 'order_placed' ORDER BY event_id LIMIT 1").fetchall()[0]
    for partition in later:
        shutil.copytree(partition, events / partition.name)
    tonight = events / later[-1].name
    day = later[-1].name.split("=")[1]
    con.execute(f"COPY (SELECT * REPLACE (items + 100 AS items, CAST('{day} 12:00:00' AS TIMESTAMP) AS landed_at) "
                f"FROM read_parquet('{early}/*.parquet') WHERE event_id = {order[0]}) "
                f"TO '{tonight / 'redelivered.parquet'}' (FORMAT parquet)")

    assert run_cli(project, "build").returncode == 0
    assert modes(project)["stg_events"] == "incremental"
    stored = stored_events(project, "event_id, items")
    assert dict(stored)[order[0]] == order[1]  # the first landing, not tonight's copy
    nightly = scorecard_values(project)
    assert run_cli(project, "build", "--full-refresh").returncode == 0
    assert stored_events(project, "event_id, items") == stored and same_numbers(scorecard_values(project), nightly)
