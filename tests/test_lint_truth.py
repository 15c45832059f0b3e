"""Lint tells the truth: rules it could not check are named, and lint then does not pass (exit != 0)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from northstar_pipeline.errors import EXIT_DATA, EXIT_LOCKED
from test_errors import edit, run_cli

ITEMS = "metrics/items_per_order.sql"


def test_lint_after_a_failed_build_does_not_pass(demo_project: Path) -> None:
    clean = run_cli(demo_project, "lint")
    assert clean.returncode == 0 and "NOT CHECKED" not in clean.stdout, clean.stdout + clean.stderr
    edit(demo_project / ITEMS, "group by 1", "group by 1, user_id")  # the build fails at run time
    assert run_cli(demo_project, "build").returncode == EXIT_DATA
    result = run_cli(demo_project, "lint")
    assert result.returncode == EXIT_DATA, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    summary = next(line for line in result.stdout.splitlines() if "error" in line and "warning" in line)
    assert "data rules NS008, NS009 NOT CHECKED" in summary
    run_id = json.loads((demo_project / "target" / "run_results.json").read_text())["run_id"]
    assert f"the last build (run {run_id}) failed" in result.stderr
    # JSON output keeps its shape (a list of findings); the exit code and stderr say what was skipped.
    as_json = run_cli(demo_project, "lint", "--format", "json")
    assert as_json.returncode == EXIT_DATA and isinstance(json.loads(as_json.stdout), list)
    assert "data rules could not run" in as_json.stderr
    # Fixed and rebuilt: the data rules run again and lint passes.
    edit(demo_project / ITEMS, "group by 1, user_id", "group by 1")
    assert run_cli(demo_project, "build").returncode == 0
    again = run_cli(demo_project, "lint")
    assert again.returncode == 0 and "NOT CHECKED" not in again.stdout, again.stdout + again.stderr
    assert "data rules checked on the last build" in again.stdout


def test_lint_while_another_process_holds_the_database(demo_project: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); "
         "time.sleep(120)", str(demo_project / "target" / "dev.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        result = run_cli(demo_project, "lint")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == EXIT_LOCKED, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "NOT CHECKED" in result.stdout and "0 errors, 0 warnings\n" not in result.stdout + "\n"
    assert "another build holds it" in result.stderr
