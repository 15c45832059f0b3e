"""A command line with dbt's habits, through the CLI: --version, show, retry, a subset on a fresh
database (what to run, or --defer), orphan relations, and every command documented in the README."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import click
import duckdb
import pytest
from conftest import REPO, copy_demo_project, events_glob
from test_errors import edit, run_cli

from northstar_pipeline.errors import EXIT_DATA, EXIT_USAGE


def orders_per_customer_by_week(warehouse) -> dict[str, tuple[float, float, float]]:
    """Independent SQL over the raw events: (orders, ordering customers, orders per customer) per ISO week."""
    rows = duckdb.connect().execute("""
        WITH e AS (SELECT DISTINCT event_id, user_id, event_type, occurred_at
                   FROM read_parquet($glob, hive_partitioning = true))
        SELECT CAST(CAST(occurred_at AS DATE) - CAST(isodow(occurred_at) - 1 AS INTEGER) AS VARCHAR) AS week,
               count(*), count(DISTINCT user_id), count(*) / count(DISTINCT user_id)
        FROM e WHERE event_type = 'order_placed' GROUP BY 1
    """, {"glob": events_glob(warehouse)}).fetchall()
    return {week: (n, users, ratio) for week, n, users, ratio in rows}


def tables(project: Path) -> set[str]:
    con = duckdb.connect(str(project / "target" / "dev.duckdb"), read_only=True)
    try:
        return {f"{s}.{t}" for s, t in con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                                                  "WHERE table_catalog = current_database()").fetchall()}
    finally:
        con.close()


def node_events(stderr: str) -> list[str]:
    return [json.loads(line)["node"] for line in stderr.splitlines()
            if line.startswith("{") and json.loads(line)["event"] == "node_done"]


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "northstar_pipeline", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"northstar {version('northstar-pipeline')}"


# -- show -------------------------------------------------------------------------------------------


def test_show_a_metric_by_week(demo_project: Path, warehouse) -> None:
    expected = orders_per_customer_by_week(warehouse)
    result = run_cli(demo_project, "show", "orders_per_customer", "--grain", "week", "--last", "8", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 8
    assert [r["period_start"] for r in rows] == sorted(expected)[-8:]  # the latest 8 weeks, oldest first
    for row in rows:
        n, users, ratio = expected[row["period_start"]]
        assert (row["numerator"], row["denominator"]) == (n, users)
        assert row["value"] == pytest.approx(ratio)
    assert [r["is_complete"] for r in rows] == [True] * 7 + [False]

    as_csv = run_cli(demo_project, "show", "orders_per_customer", "--last", "3", "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["period_start"] for r in parsed] == sorted(expected)[-3:]
    assert float(parsed[0]["value"]) == pytest.approx(expected[parsed[0]["period_start"]][2])

    table = run_cli(demo_project, "show", "orders_per_customer", "--last", "2")
    assert "Orders per ordering customer" in table.stdout and "(to date)" in table.stdout
    month = json.loads(run_cli(demo_project, "show", "orders_per_customer", "--grain", "month", "--last", "1",
                               "--format", "json").stdout)
    assert month[0]["period_start"].endswith("-01")


def test_show_errors(demo_project: Path, tmp_path: Path, warehouse) -> None:
    wrong = run_cli(demo_project, "show", "orders_per_customr")
    assert wrong.returncode == EXIT_USAGE and "did you mean 'orders_per_customer'?" in wrong.stderr
    grain = run_cli(demo_project, "show", "orders_per_customer", "--grain", "day")
    assert grain.returncode == EXIT_USAGE and "grain 'day'" in grain.stderr
    fresh = copy_demo_project(tmp_path / "fresh", warehouse.events_dir)
    unbuilt = run_cli(fresh, "show", "orders_per_customer")
    assert unbuilt.returncode == EXIT_USAGE and "northstar build --select +orders_per_customer" in unbuilt.stderr
    assert "Traceback" not in unbuilt.stderr


# -- retry ------------------------------------------------------------------------------------------


def test_retry_reruns_what_failed_and_its_downstream(demo_project: Path) -> None:
    path = demo_project / "metrics" / "new_customers.sql"
    edit(path, "group by 1", "group by 1, user_id")  # two rows a period: fails at run time, exit 3
    failed = run_cli(demo_project, "build", "--select", "stg_signups+")
    assert failed.returncode == EXIT_DATA and "rows for" in failed.stderr
    results = json.loads((demo_project / "target" / "run_results.json").read_text())
    assert results["status"] == "error"

    edit(path, "group by 1, user_id", "group by 1")
    retried = run_cli(demo_project, "retry", "--log-format", "json")
    assert retried.returncode == 0, retried.stderr
    assert node_events(retried.stderr) == ["stg_signups", "new_customers"]
    assert json.loads((demo_project / "target" / "run_results.json").read_text())["status"] == "success"
    again = run_cli(demo_project, "retry")
    assert again.returncode == 0 and "nothing to retry" in again.stdout


def test_retry_without_a_run(tmp_path: Path, warehouse) -> None:
    fresh = copy_demo_project(tmp_path / "fresh", warehouse.events_dir)
    result = run_cli(fresh, "retry")
    assert result.returncode == EXIT_USAGE and "no run to retry" in result.stderr


# -- a subset on a fresh database -------------------------------------------------------------------


def test_a_subset_on_a_fresh_database_says_what_to_run_or_defers(tmp_path: Path, built_demo, warehouse) -> None:
    fresh = copy_demo_project(tmp_path / "fresh", warehouse.events_dir)
    result = run_cli(fresh, "build", "--select", "orders_per_customer")
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "reads staging.stg_orders, which this database does not have" in result.stderr
    assert "northstar build --select +orders_per_customer" in result.stderr and "--defer --state" in result.stderr
    assert "does not exist" not in result.stderr and "Traceback" not in result.stderr

    state = tmp_path / "prod-target"
    shutil.copytree(built_demo[0].target_dir, state)
    needs_state = run_cli(fresh, "build", "--select", "orders_per_customer", "--defer")
    assert needs_state.returncode == EXIT_USAGE and "--state" in needs_state.stderr
    deferred = run_cli(fresh, "build", "--select", "orders_per_customer", "--defer", "--state", str(state),
                       "--log-format", "json")
    assert deferred.returncode == 0, deferred.stderr
    assert node_events(deferred.stderr) == ["orders_per_customer"]
    events = [json.loads(line) for line in deferred.stderr.splitlines() if line.startswith("{")]
    assert next(e for e in events if e["event"] == "deferred")["relations"] == ["staging.stg_orders"]
    assert tables(fresh) >= {"staging.stg_orders", "inputs_l1.orders_per_customer"}
    assert "staging.stg_events" not in tables(fresh)  # only what the selection reads was copied
    expected = orders_per_customer_by_week(warehouse)
    con = duckdb.connect(str(fresh / "target" / "dev.duckdb"), read_only=True)
    got = con.execute("SELECT CAST(period_start AS VARCHAR), value FROM inputs_l1.orders_per_customer "
                      "WHERE grain = 'week' AND NOT is_to_date").fetchall()
    con.close()
    assert {week: pytest.approx(expected[week][2]) for week, _ in got} == dict(got)
    with_a_later_run = run_cli(fresh, "build", "--select", "orders_per_customer")  # now it is there
    assert with_a_later_run.returncode == 0, with_a_later_run.stderr


# -- orphans ----------------------------------------------------------------------------------------


def test_a_renamed_metric_leaves_no_table_behind(demo_project: Path) -> None:
    assert "inputs_l2.new_customers" in tables(demo_project)
    (demo_project / "metrics" / "new_customers.sql").rename(demo_project / "metrics" / "signups.sql")
    result = run_cli(demo_project, "build")
    assert result.returncode == 0, result.stderr
    assert "dropped orphans: inputs_l2.new_customers" in result.stderr
    assert "inputs_l2.new_customers" not in tables(demo_project) and "inputs_l2.signups" in tables(demo_project)

    # with --keep-orphans they stay and are listed; the next build without it drops them
    (demo_project / "metrics" / "signups.sql").rename(demo_project / "metrics" / "signups_total.sql")
    kept = run_cli(demo_project, "build", "--keep-orphans")
    assert kept.returncode == 0 and "kept orphans (no node defines them): inputs_l2.signups" in kept.stderr
    assert "inputs_l2.signups" in tables(demo_project)
    # a failed build rolls the drop back
    edit(demo_project / "metrics" / "signups_total.sql", "group by 1", "group by 1, user_id")
    assert run_cli(demo_project, "build").returncode == EXIT_DATA
    assert "inputs_l2.signups" in tables(demo_project)
    edit(demo_project / "metrics" / "signups_total.sql", "group by 1, user_id", "group by 1")
    assert "dropped orphans: inputs_l2.signups" in run_cli(demo_project, "build").stderr
    assert "inputs_l2.signups" not in tables(demo_project)


def test_a_deleted_model_in_its_own_schema_is_dropped(demo_project: Path) -> None:
    model = demo_project / "models" / "marts_orders.sql"
    model.write_text("{{ config(schema='marts') }}\nselect order_id, items from {{ ref('stg_orders') }}\n")
    assert run_cli(demo_project, "build").returncode == 0
    assert "marts.marts_orders" in tables(demo_project)
    model.unlink()  # no node has schema 'marts' any more: the record of what was built finds it
    result = run_cli(demo_project, "build")
    assert result.returncode == 0 and "dropped orphans: marts.marts_orders" in result.stderr
    assert not {t for t in tables(demo_project) if t.startswith("marts.")}
    assert {"raw.events", "scorecard.scorecard", "_northstar.relations"} <= tables(demo_project)  # never orphans


# -- documentation ----------------------------------------------------------------------------------

COMMON = {"--project-dir", "--profiles-dir", "--target", "--vars", "--help"}


def _commands() -> list[tuple[str, click.Command]]:
    from northstar_pipeline.cli import cli

    return sorted(cli.commands.items())


@pytest.mark.parametrize("name, command", _commands(), ids=[name for name, _ in _commands()])
def test_every_command_and_option_is_documented(name: str, command: click.Command) -> None:
    """As sqlite-utils' tests/test_docs.py: each command has help, a README row naming each of its options."""
    readme = (REPO / "README.md").read_text()
    assert command.help and command.help.strip(), f"'{name}' has no --help text"
    rows = [line for line in readme.splitlines() if re.match(rf"^\| `northstar {re.escape(name)}[ `]", line)]
    assert rows, f"README's CLI table has no row for 'northstar {name}'"
    for param in command.params:
        for option in (o for o in getattr(param, "opts", []) if o.startswith("--") and o not in COMMON):
            assert option in rows[0], f"README's row for 'northstar {name}' does not mention {option}"
    from click.testing import CliRunner

    from northstar_pipeline.cli import cli

    shown = CliRunner().invoke(cli, [name, "--help"])
    assert shown.exit_code == 0 and command.help.split("\n")[0].split(".")[0] in " ".join(shown.output.split())
    if any(o in COMMON for p in command.params for o in getattr(p, "opts", [])):
        assert "Every project command takes `--project-dir`, `--profiles-dir`, `--target`, `--vars`" in readme


def test_group_options_are_documented() -> None:
    from northstar_pipeline.cli import cli

    readme = (REPO / "README.md").read_text()
    for param in cli.params:
        for option in (o for o in param.opts if o.startswith("--") and o != "--help"):
            assert option in readme, option
