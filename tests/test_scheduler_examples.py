"""The scheduler examples run as written: the Airflow DAG's commands (Airflow itself is too heavy for
CI, so its exact command strings are run with bash, and its routing of their exit codes is checked)
and the crontab lines of README.md and examples/cron.md (run with /bin/sh, as cron does).
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from test_alerts import lake_until
from test_errors import edit
from test_freshness_status import set_rule

from northstar_pipeline.demo.demo_data import history_bounds
from northstar_pipeline.errors import EXIT_ALERT, EXIT_DATA, EXIT_LOCKED, EXIT_OK, EXIT_TEST


def load_dag():
    spec = importlib.util.spec_from_file_location("northstar_dag", REPO / "examples" / "airflow" / "northstar_dag.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DAG = load_dag()


def run_task(project: Path, task: str) -> subprocess.CompletedProcess:
    """Run the DAG task's bash_command with the DAG's environment, pointed at this project."""
    env = {**os.environ, **DAG.ENV, "NORTHSTAR_PROJECT": str(project)}
    return subprocess.run(["bash", "-c", DAG.COMMANDS[task]], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def scheduled(tmp_path: Path, warehouse) -> Path:
    """The demo project over a lake ending just after the dip week, with the project's own .venv."""
    _, _, dip = history_bounds(warehouse.last_day)
    project = lake_until(tmp_path, warehouse, dip + datetime.timedelta(days=8))
    (project / ".venv").symlink_to(Path(sys.prefix))
    assert (project / ".venv" / "bin" / "northstar").exists()
    return project


def test_dag_tasks_on_an_alert_night(scheduled: Path) -> None:
    set_rule(scheduled, "{count: 1, period: minute}", "{count: 100000, period: day}")  # the lake is months old
    freshness = run_task(scheduled, "freshness")
    assert (freshness.returncode, DAG.route("freshness", freshness.returncode)) == (EXIT_OK, "success")
    assert json.loads(freshness.stdout)["sources"][0]["status"] == "warn"
    build = run_task(scheduled, "build")
    assert (build.returncode, DAG.route("build", build.returncode)) == (EXIT_ALERT, "alert"), build.stderr
    assert (scheduled / "target" / "scorecard.parquet").is_file()
    log = [json.loads(line) for line in (scheduled / "logs" / "northstar.jsonl").read_text().splitlines()]
    assert {e["metric"] for e in log if e["event"] == "alert"} == {"on_time_orders", "support_tickets_per_order"}
    test = run_task(scheduled, "test")
    assert (test.returncode, DAG.route("test", test.returncode)) == (EXIT_OK, "success")
    notify = run_task(scheduled, "notify_owners")
    assert notify.returncode == EXIT_OK
    assert [json.loads(line)["metric"] for line in notify.stdout.splitlines()] == [
        "on_time_orders", "support_tickets_per_order"]


def test_dag_routes_stale_locked_and_failed_tests(scheduled: Path) -> None:
    # The demo's own rule (error after 3 days) on a months-old lake: retried, the data may still land.
    stale = run_task(scheduled, "freshness")
    assert (stale.returncode, DAG.route("freshness", stale.returncode)) == (EXIT_DATA, "retry")
    # Another build holds the lock: retried.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time\nfrom northstar_pipeline import api\nfrom northstar_pipeline.build.lock import project_lock\n"
        f"with project_lock(api.load({str(scheduled)!r}), 'build'):\n    print('held', flush=True)\n    time.sleep(120)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        locked = run_task(scheduled, "build")
        assert (locked.returncode, DAG.route("build", locked.returncode)) == (EXIT_LOCKED, "retry")
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    # A data test of severity error fails: no retries, for build and test alike.
    edit(scheduled / "models" / "stg_orders.sql", "where event_type = 'order_placed'",
         "where event_type in ('order_placed', 'order_delivered')")
    failed = run_task(scheduled, "build")
    assert (failed.returncode, DAG.route("build", failed.returncode)) == (EXIT_TEST, "fail"), failed.stderr
    assert not (scheduled / "target" / "scorecard.parquet").exists()  # nothing was ever published here
    assert DAG.route("test", 1) == DAG.route("build", 2) == "fail" and DAG.route("test", EXIT_ALERT) == "fail"


def crontab_lines() -> list[str]:
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("30 2 * * *")]
    lines += [line for line in (REPO / "examples" / "cron.md").read_text().splitlines()
              if line[:1].isdigit() and " * * * " in line]
    assert len(lines) == 4
    return lines


@pytest.mark.parametrize("index", range(4))
def test_crontab_lines_work_as_written(scheduled: Path, index: int) -> None:
    line = crontab_lines()[index]
    command = line.split(None, 5)[5].replace("/srv/analytics", str(scheduled))
    if "--fail-on-stale" in command:
        set_rule(scheduled, "{count: 1, period: minute}", "{count: 100000, period: day}")
    assert not (scheduled / "logs").exists()
    env = {k: v for k, v in os.environ.items() if k != "NORTHSTAR_TARGET"}
    result = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=env, timeout=300,
                            cwd=Path.home() if Path.home().is_dir() else "/")
    expected = EXIT_ALERT if "--fail-on breach" in command else EXIT_OK
    assert result.returncode == expected, (result.stdout, result.stderr)
    assert result.stdout == result.stderr == ""  # everything went to the log
    log = [json.loads(line) for line in (scheduled / "logs" / "northstar.jsonl").read_text().splitlines()]
    starts = [e for e in log if e["event"] == "build_start"]
    assert len(starts) == 1 and starts[0]["target"] == "prod"
    assert ("--fail-on-stale" in command) == any(e["event"] == "freshness" for e in log)
    assert any(e["event"] == "build_done" for e in log)
    assert (scheduled / "target" / "prod.duckdb").is_file()
    if expected == EXIT_ALERT:
        alerts = (scheduled / "logs" / "alerts.jsonl").read_text().splitlines()
        assert {json.loads(a)["finding"] for a in alerts} == {"north_star_red", "guardrail_breached"}
