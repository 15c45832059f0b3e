"""Publish the scorecard as Parquet, and the run artifacts as JSON, atomically.

Every file is written next to its final path and swapped in with os.replace,
so a reader never sees half a file and a failed build leaves the previous
one untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from .errors import PublishError
from .tree import metric_levels
from .types import CompiledNode, Manifest, MetricConfig, NodeKind, RunResult

SCORECARD_SCHEMA_VERSION = "1"
SCORECARD_TABLE = ("scorecard", "scorecard")

# Columns of the published scorecard, in order (docs: README "Scorecard").
_SCORECARD_SQL = """
SELECT
    meta.metric,
    meta.label,
    meta.kind,
    meta.level,
    meta.parent,
    meta.edge,
    meta.owner,
    meta.dimension,
    meta.direction,
    v.grain,
    v.period_start,
    CAST(v.period_start + CASE v.grain
        WHEN 'day' THEN INTERVAL 1 DAY
        WHEN 'week' THEN INTERVAL 7 DAY
        WHEN 'month' THEN INTERVAL 1 MONTH
        ELSE INTERVAL 3 MONTH END - INTERVAL 1 DAY AS DATE) AS period_end,
    v.value,
    v.numerator,
    v.denominator,
    meta.definition_hash,
    CAST($run_id AS VARCHAR) AS run_id,
    CAST($built_at AS TIMESTAMP) AS built_at
FROM _northstar_metric_values AS v
JOIN _northstar_metric_meta AS meta USING (metric)
ORDER BY meta.kind_order, meta.level NULLS LAST, meta.metric, v.grain, v.period_start
"""


def build_scorecard_table(con: duckdb.DuckDBPyConnection, manifest: Manifest, run_id: str, built_at: str) -> int:
    """(Re)create scorecard.scorecard from every metric table present in the database."""
    metrics = [n for n in manifest.nodes if n.kind is NodeKind.METRIC and _exists(con, n)]
    if not metrics:
        return 0
    levels = metric_levels(manifest)
    con.register("_northstar_metric_meta", _metric_meta(metrics, levels))
    parts = [
        exp.select(exp.alias_(exp.Literal.string(n.name), "metric"), "grain", "period_start", "value", "numerator",
                   "denominator").from_(exp.table_(n.name, db=n.schema, quoted=True))
        for n in metrics
    ]
    union = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    con.execute(exp.Create(kind="VIEW", replace=True, this=exp.to_identifier("_northstar_metric_values"),
                           expression=union, properties=exp.Properties(expressions=[exp.TemporaryProperty()])).sql("duckdb"))
    con.execute(exp.Create(kind="SCHEMA", exists=True, this=exp.to_identifier(SCORECARD_TABLE[0])).sql("duckdb"))
    scorecard = exp.table_(SCORECARD_TABLE[1], db=SCORECARD_TABLE[0], quoted=True).sql("duckdb")
    con.execute(f"CREATE OR REPLACE TABLE {scorecard} AS {_SCORECARD_SQL}", {"run_id": run_id, "built_at": built_at})
    con.unregister("_northstar_metric_meta")
    return con.execute(f"SELECT count(*) FROM {scorecard}").fetchall()[0][0]


def write_scorecard(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Write scorecard.scorecard to Parquet via a temp file in the same directory."""
    table = con.table(".".join(SCORECARD_TABLE)).to_arrow_table()
    metadata = {b"northstar.schema_version": SCORECARD_SCHEMA_VERSION.encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_json(path: Path, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc}", hint="check the directory exists and is writable") from None
    finally:
        tmp.unlink(missing_ok=True)


def manifest_payload(manifest: Manifest) -> dict:
    project = manifest.project
    return {
        "metadata": {"project": project.name, "target": project.target.name, "grains": [g.value for g in project.grains]},
        "nodes": {
            node.name: {
                "kind": node.kind.value,
                "path": node.relpath.as_posix(),
                "relation": node.relation,
                "depends_on": list(node.depends_on),
                "columns": {c.name: c.type for c in node.columns},
                "config": _config_payload(node),
                "definition_hash": node.definition_hash,
                "compiled_path": f"compiled/duckdb/{node.relpath.as_posix()}" if node.kind is not NodeKind.SEED else None,
            }
            for node in manifest.nodes
        },
        "sources": {
            f"{s.source_name}.{s.table_name}": {"location": s.location, "hive_partitioning": s.hive_partitioning}
            for s in project.sources
        },
    }


def run_results_payload(result: RunResult) -> dict:
    return {
        "run_id": result.run_id,
        "built_at": result.built_at,
        "elapsed_seconds": round(result.seconds, 3),
        "scorecard": str(result.scorecard_path) if result.scorecard_path else None,
        "scorecard_rows": result.scorecard_rows,
        "results": [asdict(r) for r in result.results],
    }


def _config_payload(node: CompiledNode) -> dict:
    if node.config is None:
        return {}
    data = asdict(node.config)
    return {k: (v.value if hasattr(v, "value") else v) for k, v in data.items()}


def _metric_meta(metrics: list[CompiledNode], levels: dict[str, int | None]) -> pa.Table:
    kind_order = {"north_star": 0, "input": 1, "counter": 2}
    configs = [n.config for n in metrics]
    assert all(isinstance(c, MetricConfig) for c in configs)
    return pa.table({
        "metric": pa.array([n.name for n in metrics], pa.string()),
        "label": pa.array([c.label for c in configs], pa.string()),
        "kind": pa.array([c.kind.value for c in configs], pa.string()),
        "kind_order": pa.array([kind_order[c.kind.value] for c in configs], pa.int8()),
        "level": pa.array([levels.get(n.name) for n in metrics], pa.int32()),
        "parent": pa.array([c.parent or c.guard for c in configs], pa.string()),
        "edge": pa.array([c.edge.value if c.edge else None for c in configs], pa.string()),
        "owner": pa.array([c.owner for c in configs], pa.string()),
        "dimension": pa.array([c.dimension.value if c.dimension else None for c in configs], pa.string()),
        "direction": pa.array([c.direction.value for c in configs], pa.string()),
        "definition_hash": pa.array([n.definition_hash for n in metrics], pa.string()),
    })


def _exists(con: duckdb.DuckDBPyConnection, node: CompiledNode) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [node.schema, node.name],
    ).fetchall()
    return bool(rows[0][0])
