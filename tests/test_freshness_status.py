"""`northstar freshness`, `build --fail-on-stale` and `northstar status`, text and JSON.

Expected values come from SQL over the raw Parquet files and from the clock, not from the
pipeline's own tables.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from test_errors import edit, line_of, run_cli

from northstar_pipeline.errors import EXIT_DATA, EXIT_LOCKED, EXIT_OK, EXIT_PROJECT, EXIT_TEST

SOURCES = "models/sources.yml"
DEMO_RULE = """        freshness:
          warn_after: {count: 36, period: hour}
          error_after: {count: 3, period: day}
"""


def newest_event(project: Path) -> datetime.datetime:
    profiles = (project / "profiles.yml").read_text()
    events = next(line.split(":", 1)[1].split("#")[0].strip() for line in profiles.splitlines() if "events_path:" in line)
    return duckdb.sql(f"SELECT max(occurred_at) FROM read_parquet('{events}/**/*.parquet')").fetchall()[0][0]


def set_rule(project: Path, warn: str, error: str) -> None:
    """Replace the demo's freshness block (raw.events' three freshness lines in sources.yml) with another rule."""
    path = project / SOURCES
    lines = path.read_text().splitlines(keepends=True)
    at = lines.index("        freshness:\n")
    assert lines[at + 1].lstrip().startswith("warn_after: ") and lines[at + 2].lstrip().startswith("error_after: ")
    lines[at + 1:at + 3] = [f"          warn_after: {warn}\n", f"          error_after: {error}\n"]
    path.write_text("".join(lines))


def freshness_json(project: Path) -> tuple[int, dict]:
    result = run_cli(project, "freshness", "--format", "json")
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)["sources"][0]


def age_days(project: Path) -> float:
    return (datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - newest_event(project)).total_seconds() / 86400


@pytest.mark.parametrize(("warn", "error", "status", "code"), [
    ("{count: 1, period: minute}", "{count: 100000, period: day}", "warn", EXIT_OK),
    ("{count: 1, period: minute}", "{count: 2, period: minute}", "error", EXIT_DATA),
    ("{count: 99999, period: day}", "{count: 100000, period: day}", "pass", EXIT_OK),
])
def test_freshness_reports_newest_data_and_status(demo_project: Path, warn: str, error: str, status: str,
                                                  code: int) -> None:
    set_rule(demo_project, warn, error)
    returncode, source = freshness_json(demo_project)
    assert (returncode, source["status"]) == (code, status)
    newest = newest_event(demo_project)
    assert source["source"] == "raw.events" and source["loaded_at_field"] == "occurred_at"
    assert datetime.datetime.fromisoformat(source["max_loaded_at"]) == newest
    snapshot = datetime.datetime.fromisoformat(source["snapshotted_at"])
    assert abs(source["age_seconds"] - (snapshot - newest).total_seconds()) < 1.5
    text = run_cli(demo_project, "freshness")
    assert text.returncode == code
    assert text.stdout.startswith(f"{status.upper():<7} raw.events") and newest.isoformat() in text.stdout


def test_demo_rule_and_a_table_turning_it_off(demo_project: Path) -> None:
    _, source = freshness_json(demo_project)
    days = age_days(demo_project)
    assert source["warn_after"] == "36 hours" and source["error_after"] == "3 days"
    assert source["status"] == ("error" if days > 3 else "warn" if days > 1.5 else "pass")
    edit(demo_project / SOURCES, DEMO_RULE, "        freshness: null\n")
    returncode, source = freshness_json(demo_project)
    assert (returncode, source["status"]) == (EXIT_OK, "no_rule")


def test_bad_freshness_names_file_and_line(demo_project: Path) -> None:
    set_rule(demo_project, "{count: soon, period: day}", "{count: 3, period: day}")
    result = run_cli(demo_project, "freshness")
    assert result.returncode == EXIT_PROJECT
    assert f"{SOURCES}:{line_of(demo_project / SOURCES, 'freshness:')}: warn_after must be" in result.stderr


def test_fail_on_stale_refuses_to_build(demo_project: Path) -> None:
    card = demo_project / "target" / "scorecard.parquet"
    before, results_before = card.read_bytes(), (demo_project / "target" / "run_results.json").read_bytes()
    set_rule(demo_project, "{count: 1, period: minute}", "{count: 2, period: minute}")
    result = run_cli(demo_project, "build", "--fail-on-stale", "--log-format", "json")
    assert result.returncode == EXIT_DATA
    # With --log-format json the error is itself a JSON event on stderr, with its file and line.
    [error] = [e for e in map(json.loads, result.stderr.splitlines()) if e["event"] == "error"]
    assert "source raw.events is stale" in error["message"] and error["file"] == SOURCES and error["line"]
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["freshness", "error"] and events[0]["status"] == "error"  # nothing built
    assert card.read_bytes() == before
    assert (demo_project / "target" / "run_results.json").read_bytes() == results_before  # nothing ran
    # Within the threshold the same command builds and publishes.
    set_rule(demo_project, "{count: 1, period: minute}", "{count: 100000, period: day}")
    assert run_cli(demo_project, "build", "--fail-on-stale").returncode == EXIT_OK
    assert card.read_bytes() != before


def status_json(project: Path) -> dict:
    result = run_cli(project, "status", "--format", "json")
    assert result.returncode == EXIT_OK, result.stderr
    return json.loads(result.stdout)


def test_status_after_good_and_failed_runs(demo_project: Path) -> None:
    assert run_cli(demo_project, "build").returncode == EXIT_OK
    good = json.loads((demo_project / "target" / "run_results.json").read_text())
    state = status_json(demo_project)
    last = state["runs"][-1]
    assert (last["run_id"], last["status"], last["failed_tests"]) == (good["run_id"], "success", [])
    assert abs(last["seconds"] - good["elapsed_seconds"]) < 0.01
    assert state["scorecard_run_id"] == good["run_id"] and state["lock"] is None
    assert state["tables_match_scorecard"] is True
    newest = newest_event(demo_project)
    assert datetime.datetime.fromisoformat(state["as_of"]) == newest
    # Weeks covered: from the first event's ISO week to the as-of week, each a row (the period spine).
    weeks = {p["grain"]: p for p in state["periods"]}["week"]
    as_of_monday = newest.date() - datetime.timedelta(days=newest.weekday())
    assert weeks["last"] == as_of_monday.isoformat()
    assert weeks["last_complete"] == (as_of_monday - datetime.timedelta(days=7)).isoformat()
    first_monday = datetime.date.fromisoformat(weeks["first"])
    assert weeks["periods"] == (as_of_monday - first_monday).days // 7 + 1

    # A failed data test: the run is logged with what failed; the tables still match the last scorecard.
    edit(demo_project / "models" / "stg_orders.sql", "where event_type = 'order_placed'",
         "where event_type in ('order_placed', 'order_delivered')")
    assert run_cli(demo_project, "build").returncode == EXIT_TEST
    state = status_json(demo_project)
    assert [r["status"] for r in state["runs"][-2:]] == ["success", "error"]
    assert "unique_stg_orders_order_id" in state["runs"][-1]["failed_tests"]
    assert state["tables_match_scorecard"] is True and state["scorecard_run_id"] == good["run_id"]
    # A compile error is logged too.
    edit(demo_project / "models" / "stg_orders.sql", "select", "selec")
    assert run_cli(demo_project, "build").returncode == EXIT_PROJECT
    last = status_json(demo_project)["runs"][-1]
    assert last["status"] == "error" and "models/stg_orders.sql" in last["error"]
    text = run_cli(demo_project, "status")
    assert "failed: unique_stg_orders_order_id" in text.stdout and "models/stg_orders.sql" in text.stdout and "tables vs the published scorecard: match (identical)" in text.stdout

    # Someone changes the tables behind the scorecard's back: status says they no longer match.
    con = duckdb.connect(str(demo_project / "target" / "dev.duckdb"))
    con.execute("DELETE FROM scorecard.scorecard WHERE metric = 'on_time_orders'")
    con.close()
    state = status_json(demo_project)
    assert state["tables_match_scorecard"] is False and "rows differ" in state["tables_note"]


def test_status_names_the_lock_holder(demo_project: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from northstar_pipeline import api\n"
        "from northstar_pipeline.build.lock import project_lock\n"
        f"with project_lock(api.load({str(demo_project)!r}), 'build'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        state = status_json(demo_project)
        assert state["lock"]["pid"] == holder.pid and state["lock"]["command"] == "build"
        since = datetime.datetime.fromisoformat(state["lock"]["since"])
        assert abs((datetime.datetime.now(datetime.timezone.utc) - since).total_seconds()) < 60
        assert f"lock: held by pid {holder.pid}" in run_cli(demo_project, "status").stdout
        result = run_cli(demo_project, "build")
        assert result.returncode == EXIT_LOCKED and f"pid {holder.pid}" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert status_json(demo_project)["lock"] is None  # the lock died with its process
