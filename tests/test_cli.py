"""The command line end to end: init, build, compile --dialect spark, ls, selection, log formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import sqlglot
from test_errors import run_cli


def northstar(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NORTHSTAR_TARGET"}
    return subprocess.run([sys.executable, "-m", "northstar_pipeline", *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)


def test_init_then_build(tmp_path: Path) -> None:
    created = northstar("init", str(tmp_path / "x"), cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    built = northstar("build", cwd=tmp_path / "x")
    assert built.returncode == 0, built.stderr
    card = duckdb.connect().execute("SELECT count(*), count(DISTINCT metric), min(kind) FROM read_parquet($p)",
                                    {"p": str(tmp_path / "x" / "target" / "scorecard.parquet")}).fetchall()
    assert card[0][0] > 0 and card[0][1] == 5
    assert "Orders" in built.stdout  # the terminal scorecard


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    result = northstar("init", str(tmp_path / "x"), cwd=tmp_path)
    assert result.returncode == 1 and "not empty" in result.stderr
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_compile_spark_parses_back(demo_project: Path) -> None:
    result = run_cli(demo_project, "compile", "--dialect", "spark")
    assert result.returncode == 0, result.stderr
    files = sorted((demo_project / "target" / "compiled" / "spark").rglob("*.sql"))
    assert len(files) == len(list((demo_project / "models").glob("*.sql"))) + len(list((demo_project / "metrics").glob("*.sql")))
    for path in files:
        parsed = sqlglot.parse_one(path.read_text(), read="spark")
        assert isinstance(parsed, sqlglot.exp.Query), path
    duck = (demo_project / "target/compiled/duckdb/metrics/on_time_orders.sql").read_text()
    assert '"staging"."orders_enriched"' in duck


def test_select_with_ancestors_builds_only_that_branch(demo_project: Path) -> None:
    result = run_cli(demo_project, "build", "--select", "+on_time_rate", "--log-format", "json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    built = [e["node"] for e in events if e["event"] == "node_done"]
    assert built == ["stg_events", "stg_deliveries", "stg_orders", "orders_enriched", "on_time_rate"]
    assert events[-1]["event"] == "build_done"


def test_select_descendants_and_tags(demo_project: Path) -> None:
    result = run_cli(demo_project, "ls", "--select", "stg_pushes+")
    assert result.returncode == 0, result.stderr
    assert [line.split()[-1] for line in result.stdout.splitlines()] == [
        "staging.stg_pushes", "inputs_l2.push_click_through_rate"]
    result = run_cli(demo_project, "ls", "--select", "nope")
    assert result.returncode == 2 and "matches no node" in result.stderr


def test_run_artifacts(demo_project: Path) -> None:
    result = run_cli(demo_project, "build")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((demo_project / "target" / "manifest.json").read_text())
    assert manifest["nodes"]["on_time_orders"]["relation"] == "north_star.on_time_orders"
    assert manifest["nodes"]["push_click_through_rate"]["relation"] == "inputs_l2.push_click_through_rate"
    assert manifest["nodes"]["support_tickets_per_order"]["relation"] == "counter.support_tickets_per_order"
    run = json.loads((demo_project / "target" / "run_results.json").read_text())
    assert {r["status"] for r in run["results"]} == {"success"}
    views = {"stg_sessions", "stg_pushes"}  # materialized='view': nothing stored, nothing counted
    assert all((r["rows"] is None) == (r["name"] in views) and r["seconds"] >= 0 for r in run["results"])


def test_scorecard_columns_and_formats(demo_project: Path) -> None:
    con = duckdb.connect()
    columns = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet($p)",
                                          {"p": str(demo_project / "target" / "scorecard.parquet")}).fetchall()]
    for required in ("metric", "kind", "parent", "grain", "period_start", "value", "run_id", "built_at"):
        assert required in columns
    for fmt in ("table", "json", "csv", "markdown"):
        result = run_cli(demo_project, "scorecard", "--grain", "month", "--format", fmt)
        assert result.returncode == 0, result.stderr
        assert "On-time orders" in result.stdout or "on_time_orders" in result.stdout


def test_model_can_switch_between_table_and_view(demo_project: Path) -> None:
    import duckdb as db

    path = demo_project / "models" / "stg_pushes.sql"  # a view in the demo
    path.write_text(path.read_text().replace("materialized='view'", "materialized='table'", 1))
    assert run_cli(demo_project, "build").returncode == 0
    con = db.connect(str(demo_project / "target" / "dev.duckdb"), read_only=True)
    kind = "SELECT table_type FROM information_schema.tables WHERE table_name = 'stg_pushes'"
    assert con.execute(kind).fetchall() == [("BASE TABLE",)]
    con.close()
    path.write_text(path.read_text().replace("materialized='table'", "materialized='view'"))
    assert run_cli(demo_project, "build").returncode == 0
    con = db.connect(str(demo_project / "target" / "dev.duckdb"), read_only=True)
    assert con.execute(kind).fetchall() == [("VIEW",)]


def test_every_command_has_help_and_is_in_the_readme() -> None:
    from northstar_pipeline.cli import cli

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name, command in cli.commands.items():
        assert command.help, f"{name} has no help text"
        assert f"northstar {name}" in readme, f"README does not document 'northstar {name}'"


def test_readme_metric_example_builds(demo_project: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## A metric file, line by line"):]
    example = section[section.index("```sql\n") + len("```sql\n"):section.index("```\n", section.index("```sql\n") + 7)]
    (demo_project / "metrics" / "orders_per_customer.sql").write_text(example)
    result = run_cli(demo_project, "build")
    assert result.returncode == 0, result.stderr


def test_published_files_are_readable_by_others(built_demo) -> None:
    import os
    import stat

    project, _ = built_demo
    mask = os.umask(0)
    os.umask(mask)
    for path in (project.scorecard_path, project.target_dir / "tree_validation.parquet",
                 project.target_dir / "run_results.json", project.target_dir / "manifest.json"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o666 & ~mask, (path, oct(mode))


def test_state_modified_selects_what_changed_since_a_run(demo_project: Path, tmp_path: Path) -> None:
    import shutil

    state = tmp_path / "prod-target"
    shutil.copytree(demo_project / "target", state)
    assert run_cli(demo_project, "ls", "--select", "state:modified", "--state", str(state)).stdout == ""
    path = demo_project / "metrics" / "push_click_through_rate.sql"
    path.write_text(path.read_text().replace("owner='Engagement'", "owner='Growth'"))  # a config change
    model = demo_project / "models" / "stg_tickets.sql"
    model.write_text(model.read_text().replace("occurred_at as opened_at", "occurred_at as opened_at, order_id as about"))
    (demo_project / "metrics" / "tickets_total.sql").write_text(
        "{{ config(kind='input', parent='support_tickets_per_order', edge='hypothesis', owner='CX', dimension='depth') }}\n"
        "select {{ period('opened_at') }} as period_start, count(*) as value from {{ ref('stg_tickets') }} group by 1\n")
    names = lambda out: sorted(line.split()[-1] for line in out.splitlines())  # noqa: E731
    modified = run_cli(demo_project, "ls", "--select", "state:modified", "--state", str(state))
    assert modified.returncode == 0, modified.stderr
    # an input under a counter-metric sits one level below it: inputs_l1
    assert names(modified.stdout) == ["inputs_l1.tickets_total", "inputs_l2.push_click_through_rate",
                                      "staging.stg_tickets"]
    new = run_cli(demo_project, "ls", "--select", "state:new", "--state", str(state))
    assert names(new.stdout) == ["inputs_l1.tickets_total"]
    downstream = run_cli(demo_project, "ls", "--select", "state:modified+", "--state", str(state))
    assert "counter.support_tickets_per_order" in downstream.stdout
    built = run_cli(demo_project, "build", "--select", "state:modified+", "--state", str(state))
    assert built.returncode == 0, built.stderr
    missing = run_cli(demo_project, "ls", "--select", "state:modified")
    assert missing.returncode == 2 and "--state" in missing.stderr
