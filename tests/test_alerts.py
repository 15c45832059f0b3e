"""`build --fail-on breach|red`: exit 5 after publishing, one `alert` JSON event per finding.

The demo data plants a dip week (on-time rate ~45%, late deliveries, tickets up). A lake cut
just after it makes the dip week the last complete week; its numbers are checked with SQL over
the raw Parquet files written here.
"""

from __future__ import annotations

import csv
import datetime
import json
import shutil
from pathlib import Path

import duckdb
from conftest import copy_demo_project
from test_errors import run_cli

from northstar_pipeline.demo.demo_data import history_bounds
from northstar_pipeline.errors import EXIT_ALERT, EXIT_OK


def lake_until(tmp_path: Path, warehouse, last_day: datetime.date) -> Path:
    """A copy of the demo project over the partitions that landed up to last_day."""
    events = tmp_path / "lake" / "events"
    for partition in sorted(warehouse.events_dir.glob("landed_date=*")):
        if datetime.date.fromisoformat(partition.name.split("=", 1)[1]) <= last_day:
            shutil.copytree(partition, events / partition.name)
    return copy_demo_project(tmp_path / "project", events)


def week_numbers(project: Path, monday: datetime.date) -> dict[str, float]:
    """On-time orders and tickets per order of the week and the one before, from the raw events."""
    profiles = (project / "profiles.yml").read_text()
    events = next(line.split(":", 1)[1].split("#")[0].strip() for line in profiles.splitlines() if "events_path:" in line)
    con = duckdb.connect()
    con.read_parquet(f"{events}/**/*.parquet", hive_partitioning=True).create_view("raw_events")
    con.execute("CREATE TABLE ev AS SELECT * FROM raw_events QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY landed_at) = 1")

    def week(day: datetime.date) -> dict[str, float]:
        end = day + datetime.timedelta(days=7)
        on_time = con.execute("""
            SELECT count(*) FROM ev o JOIN ev d ON d.order_id = o.order_id AND d.event_type = 'order_delivered'
            WHERE o.event_type = 'order_placed' AND o.occurred_at >= $a AND o.occurred_at < $b
              AND d.delivered_at <= d.promised_at""", {"a": day, "b": end}).fetchall()[0][0]
        orders = con.execute("SELECT count(*) FROM ev WHERE event_type = 'order_placed' AND occurred_at >= $a "
                             "AND occurred_at < $b", {"a": day, "b": end}).fetchall()[0][0]
        tickets = con.execute("SELECT count(*) FROM ev WHERE event_type = 'support_ticket' AND occurred_at >= $a "
                              "AND occurred_at < $b", {"a": day, "b": end}).fetchall()[0][0]
        return {"on_time": on_time, "tickets_per_order": tickets / orders}

    this, before = week(monday), week(monday - datetime.timedelta(days=7))
    return {"on_time": this["on_time"], "on_time_before": before["on_time"],
            "tickets_per_order": this["tickets_per_order"]}


def alerts(stderr: str) -> list[dict]:
    return [e for e in (json.loads(line) for line in stderr.splitlines() if line.startswith("{"))
            if e["event"] == "alert"]


def test_fail_on_breach_and_red_on_the_dip_week(tmp_path: Path, warehouse) -> None:
    _, _, dip = history_bounds(warehouse.last_day)
    project = lake_until(tmp_path, warehouse, dip + datetime.timedelta(days=8))  # through Tuesday after the dip
    expected = week_numbers(project, dip)
    assert expected["on_time"] < 0.95 * expected["on_time_before"]  # red by the 5% trend rule
    assert expected["tickets_per_order"] > 0.08  # over support_tickets_per_order's ceiling

    result = run_cli(project, "build", "--log-format", "json", "--fail-on", "breach", "--fail-on", "red")
    assert result.returncode == EXIT_ALERT, result.stderr
    assert (project / "target" / "scorecard.parquet").is_file()  # published before exiting
    found = {a["finding"]: a for a in alerts(result.stderr)}
    assert set(found) == {"north_star_red", "guardrail_breached"}
    red, breach = found["north_star_red"], found["guardrail_breached"]
    assert (red["metric"], red["period"], red["owner"], red["grain"]) == ("on_time_orders", dip.isoformat(), "Leadership", "week")
    assert (red["value"], red["previous_value"]) == (expected["on_time"], expected["on_time_before"])
    # The North Star's status follows its target where targets.csv has one for the week, else the 5% trend rule.
    targets = {(r["metric"], r["grain"], r["period_start"]): float(r["target"])
               for r in csv.DictReader((project / "seeds" / "targets.csv").open())}
    target = targets.get(("on_time_orders", "week", dip.isoformat()))
    assert red["threshold"] == (f"target {target:g}" if target is not None else "trend -5% vs the previous period")
    if target is not None:
        assert expected["on_time"] < target
    assert (breach["metric"], breach["period"], breach["owner"]) == ("support_tickets_per_order", dip.isoformat(),
                                                                     "Customer Experience")
    assert abs(breach["value"] - expected["tickets_per_order"]) < 1e-12
    assert breach["threshold"] == "ceiling 0.08"
    events = [json.loads(line)["event"] for line in result.stderr.splitlines() if line.startswith("{")]
    assert events.index("build_done") < events.index("alert")

    # Only what was asked for: --fail-on breach reports the guardrail alone.
    result = run_cli(project, "build", "--log-format", "json", "--fail-on", "breach")
    assert result.returncode == EXIT_ALERT
    assert [a["finding"] for a in alerts(result.stderr)] == ["guardrail_breached"]
    # Without --fail-on the same build succeeds: alerts are opt-in.
    assert run_cli(project, "build", "--log-format", "json").returncode == EXIT_OK


def test_a_rising_north_star_does_not_alert(tmp_path: Path, warehouse) -> None:
    _, _, dip = history_bounds(warehouse.last_day)
    # The latest week before the dip whose on-time orders rose by 10%, found on the raw events.
    con = duckdb.connect()
    con.read_parquet(f"{warehouse.events_dir}/**/*.parquet", hive_partitioning=True).create_view("ev")
    weeks = dict(con.execute("""
        SELECT CAST(date_trunc('week', o.occurred_at) AS DATE), count(*)
        FROM (SELECT DISTINCT order_id, occurred_at FROM ev WHERE event_type = 'order_placed') o
        JOIN (SELECT DISTINCT order_id, delivered_at, promised_at FROM ev WHERE event_type = 'order_delivered') d
          USING (order_id)
        WHERE d.delivered_at <= d.promised_at GROUP BY 1""").fetchall())
    week = max(w for w in weeks if w < dip and weeks.get(w - datetime.timedelta(days=7), 1e9) * 1.1 < weeks[w])
    project = lake_until(tmp_path, warehouse, week + datetime.timedelta(days=8))
    expected = week_numbers(project, week)
    assert expected["on_time"] > expected["on_time_before"]
    result = run_cli(project, "build", "--log-format", "json", "--fail-on", "red")
    assert result.returncode == EXIT_OK, result.stderr
    assert alerts(result.stderr) == []
