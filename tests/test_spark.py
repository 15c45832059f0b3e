"""Spark as an execution engine: the same project on local[2] Spark gives the DuckDB build's scorecard.

One SparkSession serves the module (conftest.spark_session: skipped without pyspark/Java, a failure
when CI=true). Each build compares every (metric, grain, period) row of the scorecard, all columns,
with the DuckDB build of the same project on the same data, to 1e-9 relative.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, add_spark_target, copy_demo_project
from test_errors import edit, run_cli

from northstar_pipeline import api
from northstar_pipeline.build.plan import parse_selectors
from northstar_pipeline.demo.demo_data import generate_demo_data
from northstar_pipeline.errors import ExecutionError

SHOP = REPO / "tests" / "projects" / "shop"
IGNORED = {"run_id", "built_at"}  # the only columns that may differ between two builds
REL = 1e-9


def read_rows(path: Path) -> dict[tuple, dict]:
    rows = duckdb.connect().execute("SELECT * FROM read_parquet($p)", {"p": str(path)}).fetchall()
    names = [d[0] for d in duckdb.connect().execute("SELECT * FROM read_parquet($p) LIMIT 0", {"p": str(path)}).description]
    out = {}
    for row in rows:
        record = dict(zip(names, row, strict=True))
        out[(record["metric"], record["grain"], record["period_start"])] = record
    return out


def close(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= REL * max(abs(a), abs(b)) or abs(a - b) <= 1e-12
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def assert_same_scorecard(duck: Path, spark: Path) -> dict[tuple, dict]:
    left, right = read_rows(duck), read_rows(spark)
    assert left.keys() == right.keys()
    for key, row in left.items():
        for column, value in row.items():
            if column not in IGNORED:
                assert close(value, right[key][column]), (key, column, value, right[key][column])
    return left


def build_both(root: Path) -> tuple[Path, Path]:
    """Build the project on DuckDB, then on Spark; return both scorecards."""
    duck = run_cli(root, "build")
    assert duck.returncode == 0, duck.stderr
    duck_card = root / "target" / "duckdb_scorecard.parquet"
    shutil.copy(root / "target" / "scorecard.parquet", duck_card)
    add_spark_target(root)
    spark = run_spark_build(root)
    assert spark["results"] and all(r["status"] == "success" for r in spark["results"])
    return duck_card, root / "target" / "scorecard.parquet"


def run_spark_build(root: Path, *args: str) -> dict:
    """A Spark build in this process, so it reuses the test session's SparkSession."""
    project = api.load(root, target="spark")
    api.build(project, **_selection(args))
    return json.loads((root / "target" / "run_results.json").read_text())


def _selection(args: tuple[str, ...]) -> dict:
    return {"select": parse_selectors(args)} if args else {}


@pytest.fixture(scope="module")
def spark_demo(tmp_path_factory: pytest.TempPathFactory, warehouse, spark_session) -> tuple[Path, Path, Path]:
    root = copy_demo_project(tmp_path_factory.mktemp("spark_demo") / "project", warehouse.events_dir)
    return (root, *build_both(root))


def test_demo_on_spark_equals_duckdb(spark_demo: tuple[Path, Path, Path]) -> None:
    root, duck, spark = spark_demo
    rows = assert_same_scorecard(duck, spark)
    # The comparison covers what the scorecard is about, not only plain values:
    assert any(not r["is_complete"] for r in rows.values()) and any(r["is_complete"] for r in rows.values())
    assert {r["comparison"] for r in rows.values()} >= {"previous_period", "period_to_date"}
    assert any(r["target"] is not None and r["status"] for r in rows.values())
    assert {r["status"] for r in rows.values()} >= {"green", "red"}
    assert sum(r["contribution"] is not None for r in rows.values()) > 100
    assert any(r["correlation"] is not None for r in rows.values())
    demo_metrics = {p.stem for p in (root / "metrics").glob("*.sql")}  # the tree's and the outcomes
    assert {m for m, _, _ in rows} == demo_metrics and {g for _, g, _ in rows} == {"week", "month"}
    validation = [read_rows_plain(p) for p in (root / "target" / "tree_validation.parquet",)]
    assert validation[0] and all(r["holds"] is not False for r in validation[0] if r["validation"] == "formula")
    catalog = json.loads((root / "target" / "spark.spark.json").read_text())
    assert catalog["relations"]["staging.stg_events"]["kind"] == "table"
    # The incremental stg_events is rebuilt in full on Spark (README "Running on Spark"), so it equals a full refresh.
    results = {r["name"]: r for r in json.loads((root / "target" / "run_results.json").read_text())["results"]}
    assert results["stg_events"]["mode"] == "full"
    assert catalog["relations"]["staging.stg_pushes"]["kind"] == "view"


def read_rows_plain(path: Path) -> list[dict]:
    con = duckdb.connect()
    result = con.execute("SELECT * FROM read_parquet($p)", {"p": str(path)})
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def test_demo_on_spark_matches_hand_written_sql(spark_demo: tuple[Path, Path, Path], warehouse) -> None:
    """Ordering customers per ISO week straight from the raw events (duplicates do not change a distinct count)."""
    _, _, spark = spark_demo
    expected = dict(duckdb.connect().execute(
        "SELECT CAST(date_trunc('week', occurred_at) AS DATE), count(DISTINCT user_id) FROM read_parquet($p) "
        "WHERE event_type = 'order_placed' GROUP BY 1", {"p": f"{warehouse.events_dir}/**/*.parquet"}).fetchall())
    got = {start: r["value"] for (metric, grain, start), r in read_rows(spark).items()
           if metric == "ordering_customers" and grain == "week" and start in expected}
    assert got == {k: float(v) for k, v in expected.items()}


def test_a_failed_spark_build_keeps_the_last_good_tree(spark_demo: tuple[Path, Path, Path]) -> None:
    root, _, spark = spark_demo
    catalog = (root / "target" / "spark.spark.json").read_bytes()
    card = spark.read_bytes()
    runs = sorted(p.name for p in (root / "target" / "spark-warehouse" / "runs").iterdir())
    metric = root / "metrics" / "on_time_rate.sql"
    original = metric.read_text()
    # A division by zero: DuckDB returns inf, Spark (ANSI) fails; either way this build must not publish.
    edit(metric, "count(*) filter (where is_on_time) / count(*) as value",
         "count(*) filter (where is_on_time) / (count(*) - count(*)) as value")
    try:
        with pytest.raises(ExecutionError) as failure:
            run_spark_build(root, "on_time_rate")  # upstream tables come from the committed catalog
    finally:
        metric.write_text(original)
    assert "metrics/on_time_rate.sql" in str(failure.value) and "Spark failed building inputs_l1.on_time_rate" in str(failure.value)
    assert (root / "target" / "spark.spark.json").read_bytes() == catalog
    assert spark.read_bytes() == card
    assert sorted(p.name for p in (root / "target" / "spark-warehouse" / "runs").iterdir()) == runs


def test_the_shop_project_on_spark_equals_duckdb(tmp_path: Path, spark_session) -> None:
    """Joins, CTEs, window functions, count distinct, ratios, interval arithmetic and a seed."""
    warehouse = generate_demo_data(tmp_path / "warehouse", events=20_000, seed=11)
    root = tmp_path / "shop"
    shutil.copytree(SHOP, root)
    edit(root / "profiles.yml", "events_path: data/events", f"events_path: {warehouse.events_dir}")
    duck, spark = build_both(root)
    rows = assert_same_scorecard(duck, spark)
    assert len({m for m, _, _ in rows}) == 6
    assert any(r["status_basis"] == "target" for r in rows.values())
    assert any(r["metric"] == "repeat_order_rate" and r["value"] for r in rows.values())


def test_a_spark_target_without_pyspark_is_a_usage_error(tmp_path: Path, warehouse) -> None:
    root = copy_demo_project(tmp_path / "project", warehouse.events_dir)
    add_spark_target(root)
    code = ("import sys; sys.modules['pyspark'] = None; sys.argv = ['northstar'] + sys.argv[1:]\n"
            "from northstar_pipeline.cli import main; main()")
    env = {k: v for k, v in os.environ.items() if k != "NORTHSTAR_TARGET"}
    result = subprocess.run([sys.executable, "-c", code, "build", "--target", "spark", "--project-dir", str(root)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "target 'spark' has type spark, but pyspark is not installed" in result.stderr
    assert "pip install 'northstar-pipeline[spark]'" in result.stderr and "Traceback" not in result.stderr


def test_a_spark_target_with_master_and_remote_is_refused(tmp_path: Path, warehouse) -> None:
    root = copy_demo_project(tmp_path / "project", warehouse.events_dir)
    add_spark_target(root)
    edit(root / "profiles.yml", "    master: local[2]\n", "    master: local[2]\n    remote: sc://localhost:15002\n")
    result = run_cli(root, "build", "--target", "spark")
    assert result.returncode == 1
    assert "profiles.yml:11: target 'spark' sets both master and remote" in result.stderr


@pytest.mark.parametrize("duckdb_sql", [
    # DECIMAL division in Spark (rounded to 6 places), DOUBLE in DuckDB
    "SELECT a / 60.0 AS v FROM (VALUES (CAST(1 AS BIGINT))) AS t(a)",
    # date_diff: DuckDB counts the minute boundary crossed, Spark whole minutes elapsed
    "SELECT date_diff('minute', CAST('2026-01-05 10:00:59' AS TIMESTAMP), CAST('2026-01-05 10:01:01' AS TIMESTAMP)) AS v",
])
def test_spark_computes_duckdbs_value_only_through_the_transforms(spark_session, duckdb_sql: str) -> None:
    import sqlglot

    from northstar_pipeline.engines.transpile import to_dialect

    expected = duckdb.connect().execute(duckdb_sql).fetchall()[0][0]
    ast = sqlglot.parse_one(duckdb_sql, read="duckdb")
    plain = spark_session.sql(ast.sql("spark")).collect()[0][0]
    transformed = spark_session.sql(to_dialect(ast, "spark").sql("spark")).collect()[0][0]
    assert float(plain) != float(expected)  # sqlglot's translation alone computes another value
    assert float(transformed) == float(expected)
