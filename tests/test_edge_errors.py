"""Errors at the edges (issue 11): each class ends in one message with file:line and a hint, the
documented exit code, no traceback, and the last good scorecard byte-identical. Real CLI runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from northstar_pipeline.errors import EXIT_DATA, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_PROJECT, EXIT_USAGE
from test_errors import edit, line_of, run_cli

ITEMS = "metrics/items_per_order.sql"
MEMORY_LINE = "    memory_limit: \"{{ env_var('NORTHSTAR_MEMORY_LIMIT', '4GB') }}\""


def scorecard(project: Path) -> bytes:
    return (project / "target" / "scorecard.parquet").read_bytes()


def assert_fails(result: subprocess.CompletedProcess, code: int, location: str, line: int | None, words: str,
                 hint: str, project: Path, before: bytes) -> None:
    text = result.stdout + result.stderr
    assert result.returncode == code, text
    assert "Traceback" not in text
    assert words in result.stderr, result.stderr
    where = f"{location}:{line}" if line is not None else location
    assert re.search(re.escape(where) + r"[:\s]", result.stderr), result.stderr
    assert "hint: " in result.stderr and hint in result.stderr, result.stderr
    assert sum(line.startswith("error: ") for line in result.stderr.splitlines()) == 1  # one message
    assert scorecard(project) == before


# -- compile: every sqlglot error, every template and seed read ------------------------------------


def test_ref_to_a_seed_builds(demo_project: Path) -> None:
    (demo_project / "models" / "target_list.sql").write_text(
        "{{ config(description='the targets seed, read by ref') }}\n"
        "select metric, grain, period_start, target from {{ ref('targets') }}\n")
    result = run_cli(demo_project, "build")
    assert result.returncode == 0, result.stderr
    con = duckdb.connect(str(demo_project / "target" / "dev.duckdb"), read_only=True)
    try:
        got = con.execute("select count(*) from staging.target_list").fetchone()[0]
        expected = con.execute("select count(*) from seeds.targets").fetchone()[0]
    finally:
        con.close()
    lines = (demo_project / "seeds" / "targets.csv").read_text().strip().splitlines()
    assert got == expected == len(lines) - 1


@pytest.mark.parametrize("quote", ["'", '"'], ids=["string", "quoted_identifier"])
def test_unterminated_quote(demo_project: Path, quote: str) -> None:
    before = scorecard(demo_project)
    edit(demo_project / ITEMS, "count(*) as denominator", f"count(*) as denominator, {quote}abc")
    result = run_cli(demo_project, "build")
    assert_fails(result, EXIT_PROJECT, ITEMS, line_of(demo_project / ITEMS, f"{quote}abc"), "is not closed",
                 "close the", demo_project, before)


def test_unterminated_quote_in_period_call(demo_project: Path) -> None:
    before = scorecard(demo_project)
    edit(demo_project / ITEMS, "{{ period('placed_at') }}", "{{ period(\"'placed_at\") }}")
    result = run_cli(demo_project, "compile")
    assert result.returncode == EXIT_PROJECT, result.stderr
    assert "Traceback" not in result.stderr and f"{ITEMS}:" in result.stderr and "period()" in result.stderr
    assert scorecard(demo_project) == before


def test_column_selected_twice_in_a_model_another_reads(demo_project: Path) -> None:
    before = scorecard(demo_project)
    model = demo_project / "models" / "stg_orders.sql"
    edit(model, "    user_id,\n", "    user_id,\n    user_id,\n")
    result = run_cli(demo_project, "build")
    lines = model.read_text().splitlines()
    repeat = [i for i, text in enumerate(lines, 1) if text.strip() == "user_id,"][1]
    assert_fails(result, EXIT_PROJECT, "models/stg_orders.sql", repeat, "column 'user_id' is selected twice",
                 "give it another name", demo_project, before)


def test_config_keyword_twice(demo_project: Path) -> None:
    before = scorecard(demo_project)
    edit(demo_project / ITEMS, "kind='input',", "kind='input', kind='counter',")
    result = run_cli(demo_project, "build")
    assert_fails(result, EXIT_PROJECT, ITEMS, line_of(demo_project / ITEMS, "kind='counter'"),
                 "keyword argument repeated", "each keyword argument once", demo_project, before)


@pytest.mark.parametrize("file", ["models/stg_orders.sql", "profiles.yml", "seeds/targets.csv"])
def test_file_that_is_not_utf8(demo_project: Path, file: str) -> None:
    before = scorecard(demo_project)
    path = demo_project / file
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b"-- caf\xe9\n" if file.endswith(".sql") else (b"# caf\xe9\n" if file.endswith(".yml") else lines[2])
    if file.endswith(".csv"):
        lines[2] = lines[2].replace(b"on_time_orders", b"on_time_\xe9")
    path.write_bytes(b"".join(lines))
    result = run_cli(demo_project, "build")
    assert_fails(result, EXIT_PROJECT, file, 3, "not UTF-8", "save the file as UTF-8", demo_project, before)


def test_ragged_seed_row(demo_project: Path) -> None:
    before = scorecard(demo_project)
    seed = demo_project / "seeds" / "targets.csv"
    seed.write_text(seed.read_text() + "on_time_orders,month,2026-12-01,1,oops\n")
    result = run_cli(demo_project, "build")
    assert_fails(result, EXIT_PROJECT, "seeds/targets.csv", len(seed.read_text().splitlines()),
                 "row has 5 fields, the header has 4", "one value per header column", demo_project, before)


def test_unknown_dialect_is_a_usage_error(demo_project: Path) -> None:
    before = scorecard(demo_project)
    result = run_cli(demo_project, "compile", "--dialect", "nosuch")
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr and "Unknown dialect 'nosuch'" in result.stderr
    assert "hint: " in result.stderr and "--dialect spark" in result.stderr
    assert scorecard(demo_project) == before


# -- profiles.yml and sources.yml: every value checked by type at load, with its line ---------------


@pytest.mark.parametrize("command", ["compile", "build"])
def test_memory_limit_duckdb_rejects(demo_project: Path, command: str) -> None:
    before = scorecard(demo_project)
    profiles = demo_project / "profiles.yml"
    edit(profiles, MEMORY_LINE, '    memory_limit: "lots"')
    result = run_cli(demo_project, command)
    assert_fails(result, EXIT_PROJECT, "profiles.yml", line_of(profiles, '"lots"'), "memory_limit",
                 "memory_limit: 4GB", demo_project, before)


def test_database_path_under_a_file(demo_project: Path) -> None:
    before = scorecard(demo_project)
    profiles = demo_project / "profiles.yml"
    edit(profiles, "path: target/dev.duckdb", "path: profiles.yml/dev.duckdb")
    result = run_cli(demo_project, "build")
    assert_fails(result, EXIT_PROJECT, "profiles.yml", line_of(profiles, "profiles.yml/dev.duckdb"),
                 "which is a file, not a folder", "inside a folder", demo_project, before)


def test_hive_partitioning_as_a_string(demo_project: Path) -> None:
    before = scorecard(demo_project)
    sources = demo_project / "models" / "sources.yml"
    edit(sources, "hive_partitioning: true", "hive_partitioning: 'false'")
    result = run_cli(demo_project, "compile")
    assert_fails(result, EXIT_PROJECT, "models/sources.yml", line_of(sources, "hive_partitioning: 'false'"),
                 "hive_partitioning must be true or false, got 'false'", "without quotes", demo_project, before)


@pytest.mark.parametrize("stem", ["raw", "staging", "memory"])
def test_database_named_like_a_schema(demo_project: Path, stem: str) -> None:
    before = scorecard(demo_project)
    profiles = demo_project / "profiles.yml"
    edit(profiles, "path: target/dev.duckdb", f"path: target/{stem}.duckdb")
    result = run_cli(demo_project, "compile")  # at compile, not after it passed
    assert_fails(result, EXIT_PROJECT, "profiles.yml", line_of(profiles, f"target/{stem}.duckdb"),
                 f"DuckDB names the database '{stem}'", "rename the file", demo_project, before)


def test_missing_data_hint_names_demo_data_only_for_the_demo(demo_project: Path, tmp_path: Path) -> None:
    before = scorecard(demo_project)
    profiles = demo_project / "profiles.yml"
    text = profiles.read_text()
    edit(profiles, re.search(r"events_path: (\S+)", text).group(0), f"events_path: {tmp_path}/lake/events")
    real = run_cli(demo_project, "build")
    assert_fails(real, EXIT_DATA, "models/sources.yml", None, "no data for source 'raw.events'",
                 "at your Parquet files", demo_project, before)
    assert "demo-data" not in real.stderr
    edit(profiles, f"events_path: {tmp_path}/lake/events", "events_path: data/warehouse/events")
    demo = run_cli(demo_project, "build")
    assert demo.returncode == EXIT_DATA and "northstar demo-data" in demo.stderr


# -- the lock, Ctrl-C, JSON logs ---------------------------------------------------------------------


def test_second_build_after_the_lock_file_was_deleted_is_locked(demo_project: Path) -> None:
    before = scorecard(demo_project)
    holder = subprocess.Popen(  # a build's hold on the database, as DuckDB's own file lock keeps it
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); "
         "time.sleep(120)", str(demo_project / "target" / "dev.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        (demo_project / "target" / ".northstar.lock").unlink(missing_ok=True)
        result = run_cli(demo_project, "build")
    finally:
        holder.kill()
        holder.wait()
    assert_fails(result, EXIT_LOCKED, "", None, "another process holds the DuckDB database", "wait for the other build",
                 demo_project, before)


def test_ctrl_c_during_a_slow_node_exits_130_and_rolls_back(demo_project: Path) -> None:
    """A real SIGINT to a real build while DuckDB runs a node that takes far longer than the test."""
    (demo_project / "models" / "numbers.sql").write_text(
        "{{ config(description='numbers for a slow node') }}\nselect range as n from range(20000000)\n")
    (demo_project / "models" / "slow.sql").write_text(
        "{{ config(description='slow on purpose') }}\n"
        "select sum(length(md5(n::varchar || m.range::varchar))) as total\n"
        "from {{ ref('numbers') }} cross join range(50) m\n")
    before = scorecard(demo_project)
    db = demo_project / "target" / "dev.duckdb"
    tables_before = _tables(db)
    env = {k: v for k, v in os.environ.items() if k != "NORTHSTAR_TARGET"}
    build = subprocess.Popen([sys.executable, "-m", "northstar_pipeline", "build", "--log-format", "json",
                              "--project-dir", str(demo_project)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    events = []
    for line in build.stderr:
        events.append(json.loads(line))
        if events[-1]["event"] == "node_start" and events[-1]["node"] == "slow":
            break
    time.sleep(1.0)  # DuckDB is inside the slow statement now
    sent = time.monotonic()
    build.send_signal(signal.SIGINT)
    rest = build.stderr.read()
    code = build.wait(timeout=120)
    took = time.monotonic() - sent
    assert code == EXIT_INTERRUPTED, rest
    assert took < 30, took  # the statement was stopped, not waited for
    assert "Traceback" not in rest
    [error] = [json.loads(line) for line in rest.splitlines() if line.strip()]
    assert (error["event"], error["level"], error["code"], error["node"]) == ("error", "error", 130, "slow")
    assert error["file"] == "models/slow.sql" and error["line"] == 2 and "rolled back" in error["message"]
    assert error["hint"]
    assert scorecard(demo_project) == before
    assert _tables(db) == tables_before  # numbers and slow were rolled back with the rest
    results = json.loads((demo_project / "target" / "run_results.json").read_text())
    status = {r["name"]: r["status"] for r in results["results"]}
    assert status["slow"] == "error" and results["status"] == "error"
    assert status["numbers"] == "rolled_back"
    assert "skipped" in status.values()


def test_json_log_error_event_and_run_results_mark_the_failed_node(demo_project: Path) -> None:
    before = scorecard(demo_project)
    metric = demo_project / ITEMS
    edit(metric, "group by 1", "group by 1, user_id")  # two rows for a period: a runtime contract error
    result = run_cli(demo_project, "build", "--log-format", "json")
    assert result.returncode == EXIT_DATA, result.stderr
    assert "Traceback" not in result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]  # the whole stream is JSON lines
    error = events[-1]
    assert {k: error[k] for k in ("event", "level", "code", "file", "node")} == {
        "event": "error", "level": "error", "code": EXIT_DATA, "file": ITEMS, "node": "items_per_order"}
    assert isinstance(error["line"], int) and "rows for" in error["message"] and error["hint"]
    results = json.loads((demo_project / "target" / "run_results.json").read_text())
    status = {r["name"]: r["status"] for r in results["results"]}
    assert status.pop("items_per_order") == "error"
    done = {e["node"] for e in events if e["event"] == "node_done"}
    assert {n for n, s in status.items() if s == "rolled_back"} == done
    assert all(s == "skipped" for n, s in status.items() if n not in done)
    assert scorecard(demo_project) == before


def test_json_log_error_event_for_a_profiles_error(demo_project: Path) -> None:
    edit(demo_project / "profiles.yml", MEMORY_LINE, '    memory_limit: "lots"')
    result = run_cli(demo_project, "build", "--log-format", "json")
    assert result.returncode == EXIT_PROJECT
    [error] = [json.loads(line) for line in result.stderr.splitlines()]
    assert (error["event"], error["file"], error["line"]) == ("error", "profiles.yml",
                                                              line_of(demo_project / "profiles.yml", "lots"))


def _tables(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("select schema_name, table_name, estimated_size from duckdb_tables() order by 1, 2").fetchall()
    finally:
        con.close()
