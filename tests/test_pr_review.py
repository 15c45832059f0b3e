"""Pull-request review on real git repositories: a report always written, statuses in every period,
breaking vs non-breaking, metrics affected up to the North Star, lint findings new at head (NS013)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from conftest import REPO, copy_demo_project, events_glob
from test_errors import edit, run_cli

from northstar_pipeline import api
from northstar_pipeline.errors import EXIT_HEAD_BROKEN

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
DAY = 86_400
T0 = 1_790_000_000  # a fixed clock for commit dates (2026-09-21)


def git(repo: Path, *args: str, at: int | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    if at is not None:
        env |= {"GIT_AUTHOR_DATE": f"@{at} +0000", "GIT_COMMITTER_DATE": f"@{at} +0000"}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout


def commit(project: Path, message: str, at: int | None = None) -> None:
    git(project.parent, "add", "-A")
    git(project.parent, "commit", "-qm", message, at=at)


@pytest.fixture
def repo(tmp_path: Path, warehouse) -> Path:
    """The demo project in a git repository on branch main (one commit), in a subfolder as in a monorepo."""
    root = tmp_path / "repo"
    project = copy_demo_project(root / "analytics", warehouse.events_dir)
    git(root, "init", "-q", "-b", "main")
    commit(project, "base", at=T0)
    return project


# -- a report, always --------------------------------------------------------------------------------


def test_a_broken_head_still_writes_the_report_with_the_error(repo: Path, tmp_path: Path) -> None:
    git(repo.parent, "checkout", "-qb", "feature")
    edit(repo / "metrics" / "items_per_order.sql", "sum(items) / count(*)", "sum(itemz) / count(*)")
    edit(repo / "metrics" / "orders_per_customer.sql", "owner='Engagement'", "owner='Growth'")
    commit(repo, "broken")
    for extra in ((), ("--no-build",)):
        out = tmp_path / "comment.md"
        result = run_cli(repo, "diff", "main", "HEAD", *extra, "--out", str(out))
        assert result.returncode == EXIT_HEAD_BROKEN, result.stderr
        assert "Traceback" not in result.stderr and "unknown column 'itemz'" in result.stderr
        text = out.read_text()
        line = next(n for n, t in enumerate((repo / "metrics/items_per_order.sql").read_text().splitlines(), 1)
                    if "itemz" in t)
        assert "### Head (`HEAD (" in text and "does not compile" in text
        assert f"`metrics/items_per_order.sql:{line}:" in text and "unknown column 'itemz'" in text
        assert "hint: did you mean 'items'?" in text
        # the definitions that changed are still listed, with what reads them (from the side that compiles)
        assert "| `items_per_order` | metric |" in text and "| `orders_per_customer` | metric |" in text
        assert "`on_time_orders`" in text.split("| `items_per_order` |")[1].splitlines()[0]

    payload = tmp_path / "diff.json"
    result = run_cli(repo, "diff", "main", "HEAD", "--no-build", "--format", "json", "--out", str(payload))
    assert result.returncode == EXIT_HEAD_BROKEN
    report = json.loads(payload.read_text())
    assert report["head_broken"] is True
    assert [(e["side"], e["stage"], e["location"]) for e in report["errors"]] == [
        ("head", "compile", f"metrics/items_per_order.sql:{line}:9")]


def test_a_head_that_compiles_but_does_not_build_is_reported(repo: Path, tmp_path: Path) -> None:
    # counting every order breaks the North Star's formula on the data: a build error, not a compile error
    edit(repo / "metrics" / "on_time_orders.sql", "count(*) filter (where is_on_time) as value", "count(*) as value")
    out = tmp_path / "comment.md"
    result = run_cli(repo, "diff", "main", "--out", str(out))
    assert result.returncode == EXIT_HEAD_BROKEN, result.stderr
    text = out.read_text()
    assert "### Head (`working tree`) does not build" in text and "formula does not hold" in text
    assert "`metrics/on_time_orders.sql:" in text and "hint:" in text
    assert "| `on_time_orders` | metric | SQL changed | **breaking** |" in text
    assert "numbers not compared (a side did not build)" in text


def test_a_broken_base_is_reported_and_a_fixed_head_exits_0(repo: Path, tmp_path: Path) -> None:
    edit(repo / "metrics" / "items_per_order.sql", "sum(items) / count(*)", "sum(itemz) / count(*)")
    commit(repo, "main is broken")
    git(repo.parent, "checkout", "-qb", "fix")
    edit(repo / "metrics" / "items_per_order.sql", "sum(itemz) / count(*)", "sum(items) / count(*)")
    commit(repo, "the fix")
    out = tmp_path / "comment.md"
    result = run_cli(repo, "diff", "main", "fix", "--no-build", "--out", str(out))
    assert result.returncode == 0, result.stderr  # the pull request itself is fine
    text = out.read_text()
    assert "### Base (`main (" in text and "does not compile" in text and "unknown column 'itemz'" in text
    assert "| `items_per_order` | metric |" in text and "base does not compile" in text


def test_a_working_head_exits_0_and_a_usage_error_is_still_2(repo: Path, tmp_path: Path) -> None:
    edit(repo / "metrics" / "new_customers.sql", "select", "-- signups\nselect")
    out = tmp_path / "comment.md"
    assert run_cli(repo, "diff", "main", "--no-build", "--out", str(out)).returncode == 0
    assert "comments or formatting only" in out.read_text()
    result = run_cli(repo, "diff", "no-such-branch", "--out", str(tmp_path / "x.md"))
    assert result.returncode == 2 and not (tmp_path / "x.md").exists()


# -- statuses and config ------------------------------------------------------------------------------


def tickets_per_order_by_week(warehouse) -> dict[str, float]:
    """Independent SQL over the raw events: support tickets opened / orders placed, per ISO week."""
    rows = duckdb.connect().execute("""
        WITH e AS (SELECT * FROM read_parquet($glob, hive_partitioning = true)
                   QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY landed_at) = 1),
             o AS (SELECT CAST(date_trunc('week', occurred_at) AS DATE) AS w, count(*) AS n FROM e
                   WHERE event_type = 'order_placed' GROUP BY 1),
             t AS (SELECT CAST(date_trunc('week', occurred_at) AS DATE) AS w, count(*) AS n FROM e
                   WHERE event_type = 'support_ticket' GROUP BY 1)
        SELECT CAST(o.w AS VARCHAR), coalesce(t.n, 0) / o.n FROM o LEFT JOIN t USING (w)
    """, {"glob": events_glob(warehouse)}).fetchall()
    return dict(rows)


def test_a_threshold_change_shows_the_status_change_of_a_complete_period(repo: Path, warehouse) -> None:
    path = repo / "metrics" / "support_tickets_per_order.sql"
    edit(path, "warn_change_pct=3, breach_change_pct=5", "warn_change_pct=60, breach_change_pct=90")
    commit(repo, "loose guardrail")  # weekly moves on this data are mostly within 60 %: green
    edit(path, "warn_change_pct=60, breach_change_pct=90", "warn_change_pct=1, breach_change_pct=2")
    report = api.diff_project(repo, "main", periods=10)

    [change] = report.changes
    assert (change.name, change.status, change.category) == ("support_tickets_per_order", "config", "non-breaking")
    assert [(k, b, a) for k, b, a in change.config_changes] == [("breach_change_pct", 90, 2),
                                                                ("warn_change_pct", 60, 1)]
    numbers = {m.metric: m for m in report.numbers}["support_tickets_per_order"]
    assert not numbers.values_moved and numbers.moved
    expected = tickets_per_order_by_week(warehouse)
    periods = list(reversed(numbers.periods))  # oldest first
    complete_changes = 0
    for previous, period in zip(periods, periods[1:]):
        assert period.after == pytest.approx(expected[period.period_start])
        if not period.is_complete:
            continue
        rise = (expected[period.period_start] - expected[previous.period_start]) / expected[previous.period_start]
        ceiling = expected[period.period_start] > 0.08
        # the new guardrail breaches on a rise of 2 %, the old one at 90 %
        assert period.status_after == ("red" if ceiling or rise * 100 >= 2 else
                                       "yellow" if rise * 100 >= 1 else "green")
        assert period.status_before == ("red" if ceiling or rise * 100 >= 90 else
                                        "yellow" if rise * 100 >= 60 else "green")
        complete_changes += period.status_changed
    assert complete_changes >= 1  # the session's data has a week whose tickets per order rose a little

    from northstar_pipeline.review.markdown import render_markdown
    text = render_markdown(report)
    assert "- `warn_change_pct: 60 → 1`" in text and "- `breach_change_pct: 90 → 2`" in text
    assert "{" not in text.split("### Numbers")[0].split("### Definitions")[1]  # no internal dicts
    assert "Every metric has the same values" not in text
    row = next(line for line in text.splitlines() if "→ **red**" in line and "(to date)" not in line)
    assert "change vs previous" in row
    assert "guardrail warn_change_pct=60, breach_change_pct=90, ceiling=0.08 → warn_change_pct=1" in row
    assert f"status changed in {complete_changes} complete" in text


def test_a_new_where_clause_is_listed_once(repo: Path) -> None:
    edit(repo / "metrics" / "items_per_order.sql", "group by 1", "where items > 5\ngroup by 1")
    report = api.diff_project(repo, "main", build=False)
    [change] = report.changes
    assert change.added_sql == ("WHERE items > 5",) and change.removed_sql == ()


# -- breaking or not ----------------------------------------------------------------------------------


def items_per_order_by_week(warehouse, minimum: int) -> dict[str, float]:
    rows = duckdb.connect().execute("""
        WITH e AS (SELECT * FROM read_parquet($glob, hive_partitioning = true)
                   QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY landed_at) = 1)
        SELECT CAST(CAST(date_trunc('week', occurred_at) AS DATE) AS VARCHAR), sum(items) / count(*)
        FROM e WHERE event_type = 'order_placed' AND items > $minimum GROUP BY 1
    """, {"glob": events_glob(warehouse), "minimum": minimum}).fetchall()
    return dict(rows)


def test_breaking_and_non_breaking_changes_on_the_demo(repo: Path, warehouse) -> None:
    edit(repo / "metrics" / "items_per_order.sql", "group by 1", "where items > 5\ngroup by 1")  # a filter
    edit(repo / "models" / "stg_tickets.sql", "    occurred_at as opened_at,\n",
         "    occurred_at as opened_at,\n    user_id * 2 as user_doubled,\n")  # a new column
    edit(repo / "metrics" / "new_customers.sql", "select", "-- signups per period\nselect")  # a comment
    edit(repo / "metrics" / "orders_per_customer.sql", "owner='Engagement'", "owner='Growth'")  # config only
    edit(repo / "metrics" / "search_to_cart_rate.sql", "where event_type in ('search', 'add_to_cart')",
         "where event_type in ('search', 'add_to_cart', 'push_click')")  # the same rows on this data

    report = api.diff_project(repo, "main", periods=6)
    changes = {c.name: c for c in report.changes}
    assert {n: c.category for n, c in changes.items()} == {
        "stg_tickets": "non-breaking", "items_per_order": "breaking", "new_customers": "non-breaking",
        "orders_per_customer": "non-breaking", "search_to_cart_rate": "breaking"}
    assert "only new columns" in changes["stg_tickets"].reason
    # the numbers confirm the trees: the filter moved items_per_order, the new column moved nothing
    assert changes["items_per_order"].values_moved is True and changes["stg_tickets"].values_moved is False
    assert changes["search_to_cart_rate"].values_moved is False  # breaking by its tree; this data has no such rows
    numbers = {m.metric: m for m in report.numbers}
    expected = items_per_order_by_week(warehouse, 5)
    for period in numbers["items_per_order"].periods:
        assert period.after == pytest.approx(expected[period.period_start])
    # metrics affected, up the tree to the North Star
    assert changes["search_to_cart_rate"].affected == ("items_per_order", "on_time_orders")
    assert changes["items_per_order"].affected == ("on_time_orders",)
    assert changes["stg_tickets"].affected == ("support_tickets_per_order", "on_time_orders")  # the guarded metric
    assert {f.rule for f in report.new_lint} <= {"NS009"}  # a dotted line's support may move with the data


def test_a_removed_metric_is_breaking_and_config_reads_as_written(repo: Path) -> None:
    (repo / "metrics" / "new_customers.sql").unlink()
    edit(repo / "metrics" / "ordering_customers.sql", "owner='Acquisition & Retention'",
         "owner='Acquisition & Retention', lint_ignore={'NS009': 'new'}")
    report = api.diff_project(repo, "main", build=False)
    changes = {c.name: c for c in report.changes}
    assert (changes["new_customers"].status, changes["new_customers"].category) == ("removed", "breaking")
    assert changes["ordering_customers"].config_changes == (("lint_ignore", None, {"NS009": "new"}),)


# -- NS013: the North Star's own history ----------------------------------------------------------------


def redefine(project: Path, words: str) -> None:
    path = project / "metrics" / "on_time_orders.sql"
    text = path.read_text()
    start = text.index("description='") + len("description='")
    path.write_text(text[:start] + words + text[text.index("'", start):])


def test_ns012_the_north_star_redefined_twice_in_the_window(repo: Path, tmp_path: Path) -> None:
    redefine(repo, "Orders delivered by the promised time.")
    commit(repo, "redefine once", at=T0 + 30 * DAY)
    path = repo / "metrics" / "on_time_orders.sql"
    path.write_text(path.read_text().replace("\n", "  \n"))  # whitespace only: not a redefinition
    commit(repo, "whitespace", at=T0 + 35 * DAY)
    assert "NS013" not in run_cli(repo, "lint", "--format", "json").stdout

    redefine(repo, "Orders delivered on time, again.")
    commit(repo, "redefine twice", at=T0 + 60 * DAY)
    result = run_cli(repo, "lint", "--format", "json")
    [finding] = [f for f in json.loads(result.stdout) if f["rule"] == "NS013"]
    assert finding["severity"] == "warning" and finding["path"] == "metrics/on_time_orders.sql"
    assert "redefined 2 times in 90 days" in finding["message"]
    assert "2026-10-21" in finding["message"] and "2026-11-20" in finding["message"]  # T0 + 30 and + 60 days

    # a narrower window (a var) sees one change only; the base commit itself is never a change
    narrow = run_cli(repo, "lint", "--format", "json", "--vars", "{nsm_window_days: 20}")
    assert "NS013" not in narrow.stdout
    # on the pull request: the redefinition in the working tree is a lint finding new at head
    git(repo.parent, "reset", "-q", "--hard", "HEAD~1")
    redefine(repo, "Orders delivered on time, again.")
    out = tmp_path / "comment.md"
    assert run_cli(repo, "diff", "HEAD", "--no-build", "--out", str(out)).returncode == 0
    text = out.read_text()
    assert "### Lint findings new at head" in text
    assert "NS013 `metrics/on_time_orders.sql:" in text.split("### Lint findings new at head")[1]


# -- the GitHub workflow -------------------------------------------------------------------------------


def test_the_pr_review_workflow_command_on_a_broken_head(repo: Path, tmp_path: Path) -> None:
    workflow = yaml.safe_load((REPO / "examples" / "github" / "pr-review.yml").read_text())
    steps = workflow["jobs"]["diff"]["steps"]
    command = next(line.strip() for s in steps for line in s.get("run", "").splitlines()
                   if line.strip().startswith("northstar diff"))
    assert "--out northstar-diff.md" in command
    poster = next(s for s in steps if s.get("name") == "post the report")
    assert "--body-file northstar-diff.md" in poster["run"] and poster["if"].startswith("always()")

    git(repo.parent, "checkout", "-qb", "feature")
    edit(repo / "metrics" / "items_per_order.sql", "sum(items) / count(*)", "sum(itemz) / count(*)")
    commit(repo, "broken")
    git(repo.parent, "update-ref", "refs/remotes/origin/main", "main")  # what actions/checkout leaves
    argv = command.replace('"origin/${{ github.base_ref }}"', "origin/main").split()
    assert argv[:2] == ["northstar", "diff"]
    result = subprocess.run([sys.executable, "-m", "northstar_pipeline", *argv[1:]], cwd=repo, capture_output=True,
                            text=True, timeout=300, env={k: v for k, v in os.environ.items()
                                                         if k != "NORTHSTAR_TARGET"})
    assert result.returncode == EXIT_HEAD_BROKEN, result.stderr
    text = (repo / "northstar-diff.md").read_text()
    assert text.startswith("## northstar diff: `origin/main (")
    assert "does not compile" in text and "unknown column 'itemz'" in text
