"""compile --dialect spark|snowflake|bigquery|trino: SQL each dialect reads back, computing what DuckDB computes,
or a compile error naming the file, line and construct."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
from conftest import add_spark_target, copy_demo_project
from sqlglot import exp
from test_errors import edit, run_cli

DIALECTS = ("spark", "snowflake", "bigquery", "trino")


@pytest.fixture(scope="module")
def compiled_demo(tmp_path_factory: pytest.TempPathFactory, warehouse) -> Path:
    root = copy_demo_project(tmp_path_factory.mktemp("dialects") / "project", warehouse.events_dir)
    for dialect in DIALECTS:
        result = run_cli(root, "compile", "--dialect", dialect)
        assert result.returncode == 0, result.stderr
    return root / "target" / "compiled"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_demo_node_parses_back_in_its_dialect(compiled_demo: Path, dialect: str) -> None:
    duck = sorted(p.relative_to(compiled_demo / "duckdb") for p in (compiled_demo / "duckdb").rglob("*.sql"))
    files = sorted(p.relative_to(compiled_demo / dialect) for p in (compiled_demo / dialect).rglob("*.sql"))
    assert files == duck and len(files) == 22  # 18 + stg_payments, revenue, retention_4w, orders_with_previous
    for relpath in files:
        text = (compiled_demo / dialect / relpath).read_text()
        statements = sqlglot.parse(text, read=dialect)
        assert len(statements) == 1 and isinstance(statements[0], exp.Query), relpath
        tree = statements[0]
        # What each engine would read differently from DuckDB is gone or explicit:
        assert "MATERIALIZED" not in text.upper(), relpath
        assert not any(str(f.this).lower().startswith("to_") for f in tree.find_all(exp.Anonymous)), relpath
        for division in tree.find_all(exp.Div):  # DOUBLE / DOUBLE, as DuckDB divides every numeric type
            for side in (division.this, division.expression):
                assert isinstance(side, exp.Cast) and side.to.is_type(exp.DataType.Type.DOUBLE), (relpath, division.sql())
        if dialect in ("snowflake", "bigquery", "trino"):
            assert not any((j.args.get("kind") or "").upper() in ("SEMI", "ANTI") for j in tree.find_all(exp.Join))
        if dialect in ("snowflake", "bigquery"):
            assert not list(tree.find_all(exp.Filter)), relpath


def test_dialect_specific_spellings(compiled_demo: Path) -> None:
    spark = (compiled_demo / "spark/models/stg_deliveries.sql").read_text()
    # date_diff counts boundaries in DuckDB, whole units in Spark: the operands are truncated first
    assert "DATEDIFF(SECOND, DATE_TRUNC('SECOND', promised_at), DATE_TRUNC('SECOND', delivered_at))" in spark
    assert "INTERVAL '0' MINUTE" in spark
    assert "ISOWEEK" in (compiled_demo / "bigquery/metrics/on_time_rate.sql").read_text()  # BigQuery's WEEK is Sunday
    assert "DAYOFWEEKISO" in (compiled_demo / "snowflake/metrics/on_time_rate.sql").read_text()
    assert "NOT EXISTS" in (compiled_demo / "trino/models/stg_events.sql").read_text()


def _add_metric(root: Path, body: str) -> Path:
    path = root / "metrics" / "bad_metric.sql"
    path.write_text("{{ config(kind='input', parent='on_time_orders', edge='hypothesis') }}\n"
                    "select\n    {{ period('placed_at') }} as period_start,\n" + body +
                    "from {{ ref('stg_orders') }}\ngroup by 1\n")
    return path


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_duckdb_only_function_is_a_compile_error_with_file_and_line(demo_project: Path, dialect: str) -> None:
    _add_metric(demo_project, "    -- how alike two ids look\n    avg(jaro_similarity(cast(user_id as varchar), cast(order_id as varchar))) as value\n")
    assert run_cli(demo_project, "compile").returncode == 0  # DuckDB has it
    result = run_cli(demo_project, "compile", "--dialect", dialect)
    assert result.returncode == 1
    assert f"metrics/bad_metric.sql:5: function jaro_similarity() has no known {dialect} equivalent" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_week_date_diff_is_refused_for_spark(demo_project: Path) -> None:
    _add_metric(demo_project, "    max(date_diff('week', placed_at, promised_at)) as value\n")
    result = run_cli(demo_project, "compile", "--dialect", "spark")
    assert result.returncode == 1
    assert "metrics/bad_metric.sql:4: date_diff('week', ...) has no exact spark equivalent" in result.stderr


def test_a_spark_build_fails_at_compile_before_spark_starts(demo_project: Path) -> None:
    add_spark_target(demo_project)
    _add_metric(demo_project, "    avg(length(bar(items, 0, 10))) as value\n")
    card = (demo_project / "target" / "scorecard.parquet").read_bytes()
    result = run_cli(demo_project, "build", "--target", "spark")
    assert result.returncode == 1, result.stderr
    assert "metrics/bad_metric.sql:4: function bar() has no known spark equivalent" in result.stderr
    assert (demo_project / "target" / "scorecard.parquet").read_bytes() == card
    assert not (demo_project / "target" / "spark-warehouse").exists()


def test_a_non_constant_interval_is_refused_for_snowflake(demo_project: Path) -> None:
    edit(demo_project / "models" / "stg_deliveries.sql", "to_minutes({{ var('on_time_grace_minutes', 0) }})",
         "to_minutes(items)")
    assert run_cli(demo_project, "compile", "--dialect", "trino").returncode == 0  # n * INTERVAL '1' MINUTE
    result = run_cli(demo_project, "compile", "--dialect", "snowflake")
    assert result.returncode == 1
    lines = (demo_project / "models" / "stg_deliveries.sql").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "to_minutes(items)" in text)
    assert f"models/stg_deliveries.sql:{line}: to_minutes() of a non-constant" in result.stderr


# The transforms one by one (AST in, AST out): DuckDB SQL and what each dialect gets.
CASES = [
    ("spark", "WITH a AS NOT MATERIALIZED (SELECT 1 AS x) SELECT x FROM a", "WITH a AS (SELECT 1 AS x) SELECT x FROM a"),
    ("spark", "SELECT ts + to_minutes(15) FROM t", "SELECT ts + INTERVAL '15' MINUTE FROM t"),
    ("trino", "SELECT ts + to_hours(n) FROM t", "SELECT ts + (n) * INTERVAL '1' HOUR FROM t"),
    ("spark", "SELECT x / 60.0 FROM t", "SELECT CAST(x AS DOUBLE) / CAST(60.0 AS DOUBLE) FROM t"),
    ("trino", "SELECT count(*) / count(DISTINCT u) FROM t",
     "SELECT CAST(COUNT(*) AS DOUBLE) / CAST(COUNT(DISTINCT u) AS DOUBLE) FROM t"),
    ("spark", "SELECT date_diff('minute', a, b) FROM t",
     "SELECT DATEDIFF(MINUTE, DATE_TRUNC('MINUTE', a), DATE_TRUNC('MINUTE', b)) FROM t"),
    ("snowflake", "SELECT date_diff('minute', a, b) FROM t", "SELECT DATEDIFF(MINUTE, a, b) FROM t"),
    ("bigquery", "SELECT CAST(date_trunc('week', ts) AS DATE) FROM t", "SELECT CAST(TIMESTAMP_TRUNC(ts, ISOWEEK) AS DATE) FROM t"),
    ("snowflake", "SELECT sum(x) FILTER (WHERE ok) FROM t", "SELECT SUM(CASE WHEN ok THEN x END) FROM t"),
    ("bigquery", "SELECT count(DISTINCT u) FILTER (WHERE ok) FROM t", "SELECT COUNT(DISTINCT CASE WHEN ok THEN u END) FROM t"),
    ("trino", "SELECT a.id FROM a ANTI JOIN b USING (id)",
     "SELECT a.id FROM a WHERE NOT EXISTS(SELECT 1 FROM b WHERE b.id = a.id)"),
]


@pytest.mark.parametrize(("dialect", "duckdb_sql", "expected"), CASES)
def test_transform(dialect: str, duckdb_sql: str, expected: str) -> None:
    from northstar_pipeline.engines.transpile import to_dialect

    out = to_dialect(sqlglot.parse_one(duckdb_sql, read="duckdb"), dialect).sql(dialect)
    assert out == expected
    sqlglot.parse_one(out, read=dialect)
