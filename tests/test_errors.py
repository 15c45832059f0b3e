"""The error catalogue: each user error exits with its documented code, names file:line,
prints no traceback, and leaves the last good scorecard byte-identical."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from northstar_pipeline.errors import EXIT_DATA, EXIT_PROJECT, EXIT_USAGE


def run_cli(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("NORTHSTAR_TARGET", None)
    return subprocess.run(
        [sys.executable, "-m", "northstar_pipeline", *args, "--project-dir", str(project)],
        capture_output=True, text=True, env=full_env, timeout=300,
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


ITEMS = "metrics/items_per_order.sql"

# (id, file to break, old text, new text, expected location, expected words in message, exit code)
CASES = [
    ("jinja_syntax", ITEMS, "{{ ref('stg_orders') }}", "{{ ref('stg_orders') }", ITEMS, "Jinja syntax error", EXIT_PROJECT),
    ("undefined_variable", ITEMS, "{{ ref('stg_orders') }}", "{{ ref(stg_orders) }}", ITEMS, "undefined", EXIT_PROJECT),
    ("sql_syntax", ITEMS, "count(*) as denominator", "count(*) as as denominator", ITEMS, "SQL syntax error", EXIT_PROJECT),
    ("unknown_ref", ITEMS, "ref('stg_orders')", "ref('stg_order')", ITEMS, "unknown ref 'stg_order'", EXIT_PROJECT),
    ("unknown_source", "models/stg_events.sql", "source('raw', 'events')", "source('raw', 'event')",
     "models/stg_events.sql", "unknown source 'raw.event'", EXIT_PROJECT),
    ("unknown_column", ITEMS, "sum(items) as numerator", "sum(itemz) as numerator", ITEMS, "unknown column 'itemz'",
     EXIT_PROJECT),
    ("contract_violation", ITEMS, "as value,", "as val,", ITEMS, "missing value", EXIT_PROJECT),
]


@pytest.fixture
def scorecard_bytes(demo_project: Path) -> bytes:
    return (demo_project / "target" / "scorecard.parquet").read_bytes()


def assert_clean_failure(result: subprocess.CompletedProcess, code: int, location: str, words: str,
                         project: Path, before: bytes) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert words in result.stderr
    assert re.search(re.escape(location) + r":\d+", result.stderr), result.stderr
    assert (project / "target" / "scorecard.parquet").read_bytes() == before


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_template_errors(case: tuple, demo_project: Path, scorecard_bytes: bytes) -> None:
    _, file, old, new, location, words, code = case
    edit(demo_project / file, old, new)
    result = run_cli(demo_project, "build")
    assert_clean_failure(result, code, location, words, demo_project, scorecard_bytes)
    # The line named is the line the user broke, in the template they wrote.
    number = int(re.search(re.escape(location) + r":(\d+)", result.stderr).group(1))
    assert number == line_of(demo_project / file, new)


def test_unknown_column_has_column_and_hint(demo_project: Path, scorecard_bytes: bytes) -> None:
    edit(demo_project / ITEMS, "sum(items) as numerator", "sum(itemz) as numerator")
    result = run_cli(demo_project, "build")
    line = line_of(demo_project / ITEMS, "itemz")
    col = (demo_project / ITEMS).read_text().splitlines()[line - 1].index("itemz") + 1
    assert f"{ITEMS}:{line}:{col}: unknown column 'itemz'" in result.stderr
    assert "did you mean 'items'?" in result.stderr


def test_cycle(demo_project: Path, scorecard_bytes: bytes) -> None:
    edit(demo_project / "models/stg_orders.sql", "from {{ ref('stg_events') }}",
         "from {{ ref('stg_events') }} join {{ ref('orders_enriched') }} using (order_id)")
    result = run_cli(demo_project, "build")
    assert_clean_failure(result, EXIT_PROJECT, "models/stg_orders.sql", "dependency cycle", demo_project, scorecard_bytes)
    assert "orders_enriched -> stg_orders -> orders_enriched" in result.stderr or \
        "stg_orders -> orders_enriched -> stg_orders" in result.stderr


def test_duplicate_metric_name(demo_project: Path, scorecard_bytes: bytes) -> None:
    (demo_project / "metrics" / "more").mkdir()
    (demo_project / "metrics" / "more" / "items_per_order.sql").write_text((demo_project / ITEMS).read_text())
    result = run_cli(demo_project, "build")
    assert_clean_failure(result, EXIT_PROJECT, "metrics/more/items_per_order.sql", "duplicate name 'items_per_order'",
                         demo_project, scorecard_bytes)


def test_bad_profiles_yaml(demo_project: Path, scorecard_bytes: bytes) -> None:
    edit(demo_project / "profiles.yml", "    memory_limit: 2GB", "    memory_limit: [2GB\n    oops: x")
    result = run_cli(demo_project, "build")
    assert_clean_failure(result, EXIT_PROJECT, "profiles.yml", "invalid YAML", demo_project, scorecard_bytes)


def test_unknown_target(demo_project: Path, scorecard_bytes: bytes) -> None:
    result = run_cli(demo_project, "build", "--target", "staging")
    assert_clean_failure(result, EXIT_PROJECT, "profiles.yml", "unknown target 'staging'", demo_project, scorecard_bytes)
    assert "dev, ci, prod" in result.stderr


def test_missing_env_var(demo_project: Path, scorecard_bytes: bytes) -> None:
    edit(demo_project / "profiles.yml", "env_var('NORTHSTAR_PROD_DB', 'target/prod.duckdb')", "env_var('NORTHSTAR_PROD_DB')")
    result = run_cli(demo_project, "build")
    assert_clean_failure(result, EXIT_PROJECT, "profiles.yml", "environment variable 'NORTHSTAR_PROD_DB' is not set",
                         demo_project, scorecard_bytes)
    assert f"profiles.yml:{line_of(demo_project / 'profiles.yml', 'NORTHSTAR_PROD_DB')}" in result.stderr


def test_missing_source_data(demo_project: Path, scorecard_bytes: bytes, tmp_path: Path) -> None:
    result = run_cli(demo_project, "build", "--vars", f"{{events_path: {tmp_path / 'nowhere'}}}")
    assert_clean_failure(result, EXIT_DATA, "models/sources.yml", "no data for source 'raw.events'", demo_project,
                         scorecard_bytes)


def test_runtime_error_rolls_back_every_table(demo_project: Path, scorecard_bytes: bytes) -> None:
    """A metric that breaks the one-row-per-period contract only at run time: nothing is kept."""
    import duckdb

    db = demo_project / "target" / "dev.duckdb"
    before = duckdb.connect(str(db)).execute("SELECT count(*) FROM staging.stg_events").fetchall()
    edit(demo_project / ITEMS, "group by 1", "group by 1, user_id")
    result = run_cli(demo_project, "build")
    assert_clean_failure(result, EXIT_DATA, ITEMS, "one row per period", demo_project, scorecard_bytes)
    con = duckdb.connect(str(db))
    assert con.execute("SELECT count(*) FROM staging.stg_events").fetchall() == before
    assert con.execute("SELECT count(*) FROM inputs_l1.items_per_order GROUP BY grain, is_to_date, period_start "
                       "HAVING count(*) > 1").fetchall() == []


def test_bad_vars_is_a_usage_error(demo_project: Path, scorecard_bytes: bytes) -> None:
    result = run_cli(demo_project, "build", "--vars", "[not, a, mapping]")
    assert result.returncode == EXIT_USAGE
    assert "Traceback" not in result.stderr


def test_failed_run_is_recorded(demo_project: Path) -> None:
    import json

    edit(demo_project / ITEMS, "group by 1", "group by 1, user_id")
    run_cli(demo_project, "build")
    record = json.loads((demo_project / "target" / "run_results.json").read_text())
    assert record["status"] == "error" and "one row per period" in record["error"]
    # Nothing is kept: the failed node is `error`, those built before it `rolled_back`, the rest `skipped`.
    assert {r["status"] for r in record["results"]} == {"rolled_back", "error", "skipped"}
    assert [r["name"] for r in record["results"] if r["status"] == "error"] == ["items_per_order"]


def test_a_second_build_waits_for_no_one(demo_project: Path) -> None:
    """While one build holds the lock, another exits 4 at once and changes nothing."""
    from filelock import FileLock

    before = (demo_project / "target" / "scorecard.parquet").read_bytes()
    with FileLock(str(demo_project / "target" / ".northstar.lock")):
        result = run_cli(demo_project, "build")
    assert result.returncode == 4 and "another build" in result.stderr and "Traceback" not in result.stderr
    assert (demo_project / "target" / "scorecard.parquet").read_bytes() == before


def test_publish_failure_is_a_data_error_and_keeps_the_last_scorecard(demo_project: Path) -> None:
    import json

    blocker = demo_project / "published"
    blocker.write_text("a file where the scorecard's directory should be")
    edit(demo_project / "profiles.yml", "scorecard_path: target/scorecard.parquet",
         "scorecard_path: published/scorecard.parquet")
    result = run_cli(demo_project, "build")
    assert result.returncode == EXIT_DATA and "cannot write" in result.stderr and "Traceback" not in result.stderr
    record = json.loads((demo_project / "target" / "run_results.json").read_text())
    assert record["status"] == "error" and {r["status"] for r in record["results"]} == {"success_unpublished"}


@pytest.mark.parametrize("kill_at", ["staging.stg_orders", "north_star.on_time_orders"])
def test_a_build_killed_mid_way_loses_nothing(demo_project: Path, scorecard_bytes: bytes, kill_at: str) -> None:
    """SIGKILL in the middle of a build (no cleanup runs): the last good tables and scorecard stay."""
    import json
    import signal

    import duckdb

    db = demo_project / "target" / "dev.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    before = con.execute("SELECT count(*), sum(value) FROM north_star.on_time_orders").fetchall()
    con.close()
    # a different definition (more orders count as on time), so a half-applied build would show
    edit(demo_project / "profiles.yml", "on_time_grace_minutes: 0 ", "on_time_grace_minutes: 30 ")
    process = subprocess.Popen(
        [sys.executable, "-m", "northstar_pipeline", "build", "--log-format", "json", "--project-dir", str(demo_project)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ})
    for line in process.stderr:
        if line.startswith("{") and json.loads(line).get("relation") == kill_at:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert (demo_project / "target" / "scorecard.parquet").read_bytes() == scorecard_bytes
    con = duckdb.connect(str(db), read_only=True)  # opens, and replays nothing of the killed transaction
    assert con.execute("SELECT count(*), sum(value) FROM north_star.on_time_orders").fetchall() == before
    con.close()
    result = run_cli(demo_project, "build")  # the lock died with the process; the next night's run just works
    assert result.returncode == 0, result.stderr
    con = duckdb.connect(str(db), read_only=True)
    after = con.execute("SELECT count(*), sum(value) FROM north_star.on_time_orders").fetchall()
    con.close()
    assert after[0][0] == before[0][0] and after[0][1] > before[0][1]
