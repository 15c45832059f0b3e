"""Data tests as dbt users write them: generic tests in models/*.yml, singular tests in data_tests/.

Failure counts are checked against SQL written here over the raw Parquet files, never against the
pipeline's own tables; an error-severity failure must leave the last good tables and scorecard.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from test_errors import line_of, run_cli

from northstar_pipeline.errors import EXIT_OK, EXIT_PROJECT, EXIT_TEST
from northstar_pipeline.project.datatests import DataTest, parse_test_config
from northstar_pipeline.build.datatests import judge

STAGING_YML = "models/staging.yml"


def raw(project: Path, sql: str) -> list[tuple]:
    """Query the raw events of the project's lake directly (independent of every model)."""
    profiles = (project / "profiles.yml").read_text()
    events = next(line.split(":", 1)[1].split("#")[0].strip() for line in profiles.splitlines() if "events_path:" in line)
    con = duckdb.connect()
    con.read_parquet(f"{events}/**/*.parquet", hive_partitioning=True).create_view("events")
    return con.execute(sql).fetchall()


def run_results(project: Path) -> dict:
    return json.loads((project / "target" / "run_results.json").read_text())


def results_by_test(project: Path) -> dict[str, dict]:
    return {t["test"]: t for t in run_results(project)["tests"]}


def table_rows(project: Path, relation: str) -> int:
    con = duckdb.connect(str(project / "target" / "dev.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
    finally:
        con.close()


def write_yml(project: Path, name: str, text: str) -> Path:
    path = project / "models" / name
    path.write_text(text)
    return path


def test_demo_declares_the_careful_tests_and_they_pass(demo_project: Path) -> None:
    result = run_cli(demo_project, "test", "--format", "json")
    assert result.returncode == EXIT_OK, result.stderr
    results = {r["test"]: r for r in json.loads(result.stdout)["results"]}
    for name in ("unique_stg_events_event_id", "not_null_stg_orders_order_id", "accepted_values_stg_events_event_type",
                 "relationships_stg_deliveries_order_id", "row_count_stg_events", "assert_delivered_after_placed"):
        assert results[name]["status"] == "pass", results[name]
    assert results["unique_stg_events_event_id"]["line"] == line_of(demo_project / STAGING_YML, "- unique  ")
    # The raw lake does have re-delivered events: the unique test passes because the model dedupes them.
    assert raw(demo_project, "SELECT count(*) - count(DISTINCT event_id) FROM events")[0][0] > 0


def test_unique_and_not_null_fail_with_counts_samples_and_downstream_skipped(demo_project: Path) -> None:
    scorecard = demo_project / "target" / "scorecard.parquet"
    before = scorecard.read_bytes()
    orders_before = table_rows(demo_project, "staging.stg_orders")
    model = demo_project / "models" / "stg_orders.sql"
    # Duplicate the orders whose id is a multiple of 50, and add one order without an id.
    model.write_text(model.read_text() + "\nunion all\nselect order_id, user_id, occurred_at, items, promised_at, "
                     "region, platform, landed_date from {{ ref('stg_events') }} where event_type = 'order_placed' "
                     "and order_id % 50 = 0\n"
                     "union all\nselect null, 1, timestamp '2026-01-01', 1, timestamp '2026-01-01', 'north', 'ios', "
                     "date '2026-01-01'\n")
    result = run_cli(demo_project, "build", "--log-format", "json")
    assert result.returncode == EXIT_TEST, result.stderr
    duplicated = raw(demo_project, "SELECT count(DISTINCT order_id) FROM events "
                                   "WHERE event_type = 'order_placed' AND order_id % 50 = 0")[0][0]
    assert duplicated > 0
    tests = results_by_test(demo_project)
    unique = tests["unique_stg_orders_order_id"]
    assert (unique["status"], unique["failures"]) == ("error", duplicated)
    assert unique["sample"] and all(row["n_records"] == 2 and row["unique_field"] % 50 == 0 for row in unique["sample"])
    assert (tests["not_null_stg_orders_order_id"]["status"], tests["not_null_stg_orders_order_id"]["failures"]) == ("error", 1)
    # The message names the test, its YAML file:line, the failing count and a sample of rows.
    line = line_of(demo_project / STAGING_YML, "- name: order_id") + 1
    # --log-format json: the error is one JSON event carrying the YAML file and line
    [error] = [e for e in map(json.loads, result.stderr.splitlines()) if e["event"] == "error"]
    assert (error["file"], error["line"]) == (STAGING_YML, line)
    assert f"unique_stg_orders_order_id ({duplicated:,} failing)" in result.stderr
    assert "unique_field | n_records" in result.stderr
    assert "Traceback" not in result.stderr
    # dbt build's rule: what depends on stg_orders is skipped, the rest still ran (then all rolled back).
    statuses = {r["name"]: r["status"] for r in run_results(demo_project)["results"]}
    for downstream in ("orders_enriched", "on_time_rate", "on_time_orders", "orders_per_customer"):
        assert statuses[downstream] == "skipped"
    assert statuses["stg_sessions"] == "rolled_back" and statuses["stg_deliveries"] == "rolled_back"
    assert tests["expression_is_true_stg_orders_items"]["status"] == "pass"
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {"node_skipped", "test_done"} <= {e["event"] for e in events}
    # Nothing published, nothing kept: the last good scorecard byte for byte, the last good tables.
    assert scorecard.read_bytes() == before
    assert table_rows(demo_project, "staging.stg_orders") == orders_before


def test_accepted_values_relationships_row_count_and_expression(demo_project: Path) -> None:
    write_yml(demo_project, "extra.yml", """
models:
  - name: stg_sessions
    data_tests:
      - row_count: {min: 1, max: 10}
      - expression_is_true:
          expression: "event_type <> 'search'"
    columns:
      - name: event_type
        data_tests:
          - accepted_values: {values: [app_open, add_to_cart]}
  - name: stg_tickets
    columns:
      - name: order_id
        data_tests:
          - relationships:
              to: ref('stg_deliveries')
              field: order_id
  - name: stg_orders
    columns:
      - name: order_id
        data_tests:
          - relationships: {to: ref('big_orders'), field: order_id}
""")
    (demo_project / "models" / "big_orders.sql").write_text("select order_id from {{ ref('stg_orders') }} where items > 3\n")
    assert run_cli(demo_project, "test").returncode == 3  # not built yet: a clear error, not a pass
    assert run_cli(demo_project, "build", "--select", "big_orders").returncode == EXIT_OK
    result = run_cli(demo_project, "test", "--format", "json")
    assert result.returncode == EXIT_TEST
    results = {r["test"]: r for r in json.loads(result.stdout)["results"]}
    searches = raw(demo_project, "SELECT count(DISTINCT event_id) FROM events WHERE event_type = 'search'")[0][0]
    sessions = raw(demo_project, "SELECT count(DISTINCT event_id) FROM events "
                                 "WHERE event_type IN ('app_open', 'search', 'add_to_cart')")[0][0]
    accepted = results["accepted_values_stg_sessions_event_type"]
    assert (accepted["status"], accepted["failures"]) == ("error", 1)
    assert accepted["sample"] == [{"value_field": "search", "n_records": searches}]
    assert results["expression_is_true_stg_sessions"]["failures"] == searches
    assert results["row_count_stg_sessions"]["sample"] == [{"row_count": sessions}]
    undelivered = raw(demo_project, """
        SELECT count(*) FROM (SELECT DISTINCT event_id, order_id FROM events WHERE event_type = 'support_ticket') t
        WHERE order_id IS NOT NULL AND order_id NOT IN
              (SELECT order_id FROM events WHERE event_type = 'order_delivered' AND order_id IS NOT NULL)""")[0][0]
    small = raw(demo_project, "SELECT count(DISTINCT order_id) FROM events WHERE event_type = 'order_placed' "
                              "AND items <= 3")[0][0]
    assert small > 0
    assert (results["relationships_stg_orders_order_id"]["status"], results["relationships_stg_orders_order_id"]["failures"]) == ("error", small)
    assert all(row["from_field"] is not None for row in results["relationships_stg_orders_order_id"]["sample"])
    rel = results["relationships_stg_tickets_order_id"]
    assert rel["failures"] == undelivered
    assert rel["status"] == ("error" if undelivered else "pass")


def test_severity_warn_and_thresholds(demo_project: Path) -> None:
    searches = raw(demo_project, "SELECT count(DISTINCT event_id) FROM events WHERE event_type = 'search'")[0][0]
    write_yml(demo_project, "extra.yml", f"""
models:
  - name: stg_sessions
    data_tests:
      - expression_is_true:
          name: searches_warn_only
          expression: "event_type <> 'search'"
          config: {{severity: warn}}
      - expression_is_true:
          name: searches_under_error_threshold
          expression: "event_type <> 'search'"
          config: {{warn_if: ">0", error_if: ">{searches}"}}
      - expression_is_true:
          name: searches_under_warn_threshold
          expression: "event_type <> 'search'"
          config: {{severity: warn, warn_if: ">{searches}"}}
""")
    before = (demo_project / "target" / "scorecard.parquet").stat().st_mtime_ns
    result = run_cli(demo_project, "build")
    assert result.returncode == EXIT_OK, result.stderr
    assert "WARN test searches_warn_only" in result.stderr
    tests = results_by_test(demo_project)
    assert tests["searches_warn_only"]["status"] == "warn"
    assert tests["searches_under_error_threshold"]["status"] == "warn"
    assert tests["searches_under_warn_threshold"]["status"] == "pass"  # warn_if >N with N failures holds not
    assert tests["searches_warn_only"]["failures"] == searches
    assert (demo_project / "target" / "scorecard.parquet").stat().st_mtime_ns != before  # warnings publish


def test_error_if_threshold_decides_error_or_warn(demo_project: Path) -> None:
    searches = raw(demo_project, "SELECT count(DISTINCT event_id) FROM events WHERE event_type = 'search'")[0][0]
    path = write_yml(demo_project, "extra.yml", f"""
models:
  - name: stg_sessions
    data_tests:
      - expression_is_true:
          name: searches_over_error_threshold
          expression: "event_type <> 'search'"
          config: {{warn_if: ">0", error_if: ">{searches - 1}"}}
""")
    result = run_cli(demo_project, "build")
    assert result.returncode == EXIT_TEST
    assert f"{path.relative_to(demo_project).as_posix()}:5: 1 data test(s) failed: searches_over_error_threshold" in result.stderr


def test_judge_follows_dbt() -> None:
    def make(severity: str, warn_if: str, error_if: str) -> DataTest:
        config = parse_test_config({"severity": severity, "warn_if": warn_if, "error_if": error_if}, Path("x"), 1)
        return DataTest("t", "not_null", "m", "c", (), config, Path("x"), 1)

    assert judge(make("error", "!=0", "!=0"), 0) == "pass"
    assert judge(make("error", "!=0", "!=0"), 3) == "error"
    assert judge(make("error", ">0", ">10"), 10) == "warn"
    assert judge(make("error", ">0", ">10"), 11) == "error"
    assert judge(make("warn", "!=0", "!=0"), 50) == "warn"
    assert judge(make("warn", ">100", "!=0"), 50) == "pass"
    assert judge(make("error", ">100", ">=200"), 150) == "warn"


def test_singular_test_fails_and_store_failures_keeps_rows_after_the_rollback(demo_project: Path) -> None:
    before = (demo_project / "target" / "scorecard.parquet").read_bytes()
    (demo_project / "data_tests" / "assert_few_items.sql").write_text(
        "{{ config(severity='error') }}\nselect order_id, items from {{ ref('stg_orders') }} where items > 3\n")
    big = raw(demo_project, "SELECT count(DISTINCT order_id) FROM events WHERE event_type = 'order_placed' AND items > 3")[0][0]
    assert big > 0
    result = run_cli(demo_project, "build", "--store-failures")
    assert result.returncode == EXIT_TEST, result.stderr
    assert f"data_tests/assert_few_items.sql:1: 1 data test(s) failed: assert_few_items ({big:,} failing)" in result.stderr
    assert (demo_project / "target" / "scorecard.parquet").read_bytes() == before
    assert table_rows(demo_project, "test_failures.assert_few_items") == big
    assert table_rows(demo_project, "test_failures.unique_stg_events_event_id") == 0  # passing tests: empty tables
    # `northstar test` sees the same failure on the (unchanged) last good tables.
    result = run_cli(demo_project, "test")
    assert result.returncode == EXIT_TEST
    assert f"ERROR test assert_few_items  (data_tests/assert_few_items.sql:1)  {big:,} failing" in result.stdout


@pytest.mark.parametrize(("yml", "needle", "message"), [
    ("models:\n  - name: stg_orders\n    columns:\n      - name: order_id\n        data_tests: [uniq]\n",
     "uniq", "unknown test 'uniq'"),
    ("models:\n  - name: stg_orders\n    columns:\n      - name: order_idd\n        data_tests: [unique]\n",
     "unique", "has no column 'order_idd'"),
    ("models:\n  - name: stg_order\n    columns:\n      - name: order_id\n        data_tests: [unique]\n",
     "unique", "'stg_order', which is no model"),
    ("models:\n  - name: stg_orders\n    data_tests:\n      - expression_is_true: {expression: 'itemz > 0'}\n",
     "expression_is_true", "unknown column 'itemz'"),
    ("models:\n  - name: stg_orders\n    columns:\n      - name: order_id\n"
     "        data_tests:\n          - not_null: {config: {severity: fatal}}\n", "not_null", "severity must be"),
    ("models:\n  - name: stg_orders\n    columns:\n      - name: order_id\n"
     "        data_tests:\n          - not_null: {config: {warn_if: 'lots'}}\n", "not_null", "warn_if must be"),
])
def test_bad_test_declarations_name_file_and_line(demo_project: Path, yml: str, needle: str, message: str) -> None:
    before = (demo_project / "target" / "scorecard.parquet").read_bytes()
    path = write_yml(demo_project, "bad.yml", yml)
    result = run_cli(demo_project, "build")
    assert result.returncode == EXIT_PROJECT
    assert f"models/bad.yml:{line_of(path, needle)}: " in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert (demo_project / "target" / "scorecard.parquet").read_bytes() == before


def test_where_config_filters_the_tested_rows(demo_project: Path) -> None:
    write_yml(demo_project, "extra.yml", """
models:
  - name: stg_sessions
    columns:
      - name: event_type
        data_tests:
          - accepted_values:
              values: [app_open]
              config: {where: "event_type <> 'search'"}
""")
    result = run_cli(demo_project, "test", "--format", "json", "--select", "stg_sessions")
    results = {r["test"]: r for r in json.loads(result.stdout)["results"]}
    assert set(results) == {"accepted_values_stg_sessions_event_type"}  # --select: only that model's tests
    assert [row["value_field"] for row in results["accepted_values_stg_sessions_event_type"]["sample"]] == ["add_to_cart"]
