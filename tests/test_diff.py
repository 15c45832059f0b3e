"""northstar diff on a real git repository: definitions compared as syntax trees, numbers on the same data."""

from __future__ import annotations

import os
import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import copy_demo_project, events_glob
from test_errors import edit, run_cli

from northstar_pipeline.errors import EXIT_HEAD_BROKEN, EXIT_USAGE
from northstar_pipeline.review.diff import diff_project

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


@pytest.fixture
def repo(tmp_path: Path, warehouse) -> Path:
    """The demo project in a git repository (one commit), inside a subfolder as in a monorepo."""
    root = tmp_path / "repo"
    project = copy_demo_project(root / "analytics", warehouse.events_dir)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return project


def on_time_orders_by_week(warehouse, grace_minutes: int) -> dict[str, float]:
    """Independent SQL over the raw events: on-time orders per ISO week of placement."""
    rows = duckdb.connect().execute("""
        WITH e AS (SELECT * FROM read_parquet($glob, hive_partitioning = true)
                   QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY landed_at) = 1),
             o AS (SELECT order_id, occurred_at AS placed_at FROM e WHERE event_type = 'order_placed'),
             d AS (SELECT order_id, delivered_at, promised_at FROM e WHERE event_type = 'order_delivered')
        SELECT CAST(date_trunc('week', placed_at) AS DATE),
               count(*) FILTER (WHERE d.delivered_at <= d.promised_at + to_minutes(CAST($grace AS INTEGER)))
        FROM o LEFT JOIN d USING (order_id) GROUP BY 1
    """, {"glob": events_glob(warehouse), "grace": grace_minutes}).fetchall()
    return {str(day): float(n) for day, n in rows}


def test_a_var_change_is_traced_to_its_model_and_its_numbers(repo: Path, warehouse) -> None:
    edit(repo / "profiles.yml", "on_time_grace_minutes: 0 ", "on_time_grace_minutes: 10 ")
    report = diff_project(repo, "HEAD", periods=3)

    assert [(c.name, c.status) for c in report.changes] == [("stg_deliveries", "modified")]
    change = report.changes[0]
    assert any("TO_MINUTES(0)" in sql for sql in change.removed_sql)
    assert any("TO_MINUTES(10)" in sql for sql in change.added_sql)
    assert set(change.downstream) == {"avg_delivery_minutes_late", "on_time_orders", "on_time_rate"}

    numbers = {m.metric: m for m in report.numbers}
    assert numbers["on_time_orders"].moved and numbers["on_time_rate"].moved
    assert not numbers["items_per_order"].moved and not numbers["new_customers"].moved
    before, after = on_time_orders_by_week(warehouse, 0), on_time_orders_by_week(warehouse, 10)
    complete = [p for p in numbers["on_time_orders"].periods if p.is_complete]
    assert len(complete) == 2
    for period in complete:
        assert (period.before, period.after) == (before[period.period_start], after[period.period_start])
        assert period.after > period.before
    assert not (repo / "target").exists()  # the user's target/ and warehouse are not touched


def test_comments_and_formatting_are_not_a_definition_change(repo: Path) -> None:
    path = repo / "metrics" / "items_per_order.sql"
    edit(path, "select", "-- the basket size\nselect")
    path.write_text(path.read_text().replace(" as value", "   AS value"))
    report = diff_project(repo, "HEAD", build=False)
    assert [(c.name, c.status) for c in report.changes] == [("items_per_order", "comments")]
    assert report.numbers is None


def test_two_revisions_with_an_added_metric(repo: Path) -> None:
    (repo / "metrics" / "tickets_total.sql").write_text(
        "{{ config(kind='input', parent='support_tickets_per_order', edge='hypothesis', owner='CX', "
        "dimension='depth') }}\n"
        "select {{ period('opened_at') }} as period_start, count(*) as value from {{ ref('stg_tickets') }} group by 1\n")
    git(repo.parent, "add", "-A")
    git(repo.parent, "commit", "-qm", "tickets_total")
    edit(repo / "metrics" / "new_customers.sql", "select", "select  ")  # uncommitted: HEAD must not see it
    report = diff_project(repo, "HEAD~1", "HEAD", grain="month", periods=2)
    assert [(c.name, c.status) for c in report.changes] == [("tickets_total", "added")]
    numbers = {m.metric: m for m in report.numbers}
    assert numbers["tickets_total"].moved and all(p.before is None for p in numbers["tickets_total"].periods)
    assert report.grain == "month" and all(len(m.periods) == 2 for m in report.numbers)
    assert date.fromisoformat(numbers["tickets_total"].periods[0].period_start).day == 1
    assert git(repo.parent, "status", "--porcelain").strip() == "M analytics/metrics/new_customers.sql"


def test_markdown_for_a_pull_request_comment(repo: Path, tmp_path: Path) -> None:
    edit(repo / "profiles.yml", "on_time_grace_minutes: 0 ", "on_time_grace_minutes: 10 ")
    out = tmp_path / "comment.md"
    result = run_cli(repo, "diff", "HEAD", "--periods", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.startswith("## northstar diff: `HEAD (")
    assert "| `stg_deliveries` | model | SQL changed |" in text
    assert "+ delivered_at <= promised_at + TO_MINUTES(10) AS is_on_time" in text
    assert "| `on_time_orders` |" in text and "Unchanged:" in text


@pytest.mark.parametrize("args, words", [
    (("diff", "no-such-branch"), "unknown git revision 'no-such-branch'"),
    (("diff", "HEAD", "--grain", "week", "--periods", "0"), "Invalid value for '--periods'"),
])
def test_usage_errors(repo: Path, args: tuple[str, ...], words: str) -> None:
    result = run_cli(repo, *args)
    assert result.returncode == EXIT_USAGE
    assert words in result.stderr and "Traceback" not in result.stderr


def test_outside_a_git_repository(tmp_path: Path, warehouse) -> None:
    project = copy_demo_project(tmp_path / "plain", warehouse.events_dir)
    result = run_cli(project, "diff", "HEAD")
    assert result.returncode == EXIT_USAGE
    assert "not inside a git repository" in result.stderr and "Traceback" not in result.stderr


def test_an_error_on_one_side_says_which(repo: Path) -> None:
    edit(repo / "metrics" / "items_per_order.sql", "sum(items)", "sum(itemz)")
    result = run_cli(repo, "diff", "HEAD", "--no-build")
    assert result.returncode == EXIT_HEAD_BROKEN and "Traceback" not in result.stderr  # the report is on stdout
    assert "metrics/items_per_order.sql:" in result.stderr and "at working tree: unknown column 'itemz'" in result.stderr


def test_a_seed_change_shows_its_rows(repo: Path) -> None:
    path = repo / "seeds" / "targets.csv"
    lines = path.read_text().splitlines()
    changed = lines[1].rsplit(",", 1)[0] + ",1"
    path.write_text("\n".join([lines[0], changed, *lines[2:]]) + "\n")
    report = diff_project(repo, "HEAD", build=False)
    assert [(c.name, c.kind, c.status) for c in report.changes] == [("targets", "seed", "modified")]
    assert report.changes[0].removed_sql == (lines[1],) and report.changes[0].added_sql == (changed,)
    assert "\n+" + changed in report.changes[0].sql_diff
