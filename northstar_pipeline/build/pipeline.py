"""One build, start to end: compile (render + compile), plan, execute in one transaction, score, publish.

`api` re-exports these for callers outside the package; `diff` and `lint` call them directly.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

import duckdb
import filelock

from northstar_pipeline.build import compiling
from northstar_pipeline.build.cache import CompileCache
from northstar_pipeline.build.plan import Plan, Selector, plan_layers
from northstar_pipeline.build.publish import (
    SCORECARD_TABLE,
    VALIDATION_TABLE,
    manifest_payload,
    run_results_payload,
    write_json,
    write_table,
)
from northstar_pipeline.build.render import render_project
from northstar_pipeline.build.segment_publish import publish_segments
from northstar_pipeline.engines.duckdb import connect, create_sources, execute_node
from northstar_pipeline.engines.incremental import lineage_fingerprints
from northstar_pipeline.errors import (
    ExecutionError,
    LockedError,
    NorthstarError,
    PublishError,
)
from northstar_pipeline.project.load import load_project
from northstar_pipeline.project.sources import describe_sources, resolve_as_of
from northstar_pipeline.tree.tree import build_tree
from northstar_pipeline.types import (
    CompiledNode,
    Manifest,
    NodeKind,
    NodeResult,
    Project,
    RunResult,
)

Reporter = Callable[[str, dict], None]

DEFAULT_DIALECT = "duckdb"


def load(
    project_dir: Path | str = ".",
    *,
    profiles_dir: Path | str | None = None,
    target: str | None = None,
    vars: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Project:
    return load_project(project_dir, profiles_dir=profiles_dir, target=target, cli_vars=vars, environ=environ)


def compile_project(project: Project, *, dialect: str = DEFAULT_DIALECT, environ: Mapping[str, str] | None = None) -> Manifest:
    """Render and compile every node; write compiled SQL and manifest.json under target/."""
    source_columns = describe_sources(project)  # first: a clear error when a source has no data
    as_of = resolve_as_of(project, source_columns)  # from the footers' statistics where they are exact
    cache = CompileCache(project.target_dir / ".cache" / "compile.pkl")
    rendered = render_project(project, environ, as_of, cache)
    manifest = replace(compiling.compile_project(project, rendered, cache, source_columns), as_of=as_of)
    cache.save()
    build_tree(manifest)  # the tree's own rules (formulas name their formula children) are compile errors
    _write_compiled(manifest, DEFAULT_DIALECT)
    if dialect != DEFAULT_DIALECT:
        _write_compiled(manifest, dialect)
    write_json(project.target_dir / "manifest.json", manifest_payload(manifest))
    return manifest


def build(
    project: Project,
    *,
    select: tuple[Selector, ...] = (),
    exclude: tuple[Selector, ...] = (),
    report: Reporter | None = None,
    environ: Mapping[str, str] | None = None,
    state: Mapping[str, str] | None = None,
    full_refresh: bool = False,
) -> RunResult:
    """Compile, execute the selected nodes in one transaction, then publish the scorecard.

    ``full_refresh`` rebuilds incremental models from scratch instead of adding a batch.
    """
    report = report or (lambda event, payload: None)
    project.target_dir.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(project.target_dir / ".northstar.lock"))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise LockedError("another build of this project is running", path=project.target_dir / ".northstar.lock",
                          hint="wait for it to finish; a build holds this lock while it runs") from None
    try:
        return _build_locked(project, select, exclude, report, environ, state, full_refresh)
    finally:
        lock.release()


def _build_locked(project: Project, select: tuple[Selector, ...], exclude: tuple[Selector, ...], report: Reporter,
                  environ: Mapping[str, str] | None, state: Mapping[str, str] | None,
                  full_refresh: bool = False) -> RunResult:
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:12]
    built_at = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")
    report("build_start", {"run_id": run_id, "project": project.name, "target": project.target.name})
    manifest = compile_project(project, environ=environ)
    plan = plan_layers(manifest, select, exclude, state)
    report("plan", {"nodes": len(plan.nodes), "layers": len(plan.layers)})
    con = connect(project.target)
    committed = False
    try:
        con.execute("BEGIN TRANSACTION")
        results = execute_plan(con, manifest, plan, report, full_refresh)
        from northstar_pipeline.tree.score import (
            score,  # pyarrow and the scoring SQL are only needed by a build
        )

        rows = score(con, manifest, build_tree(manifest), run_id, built_at)
        from northstar_pipeline.tree.segments import build_segments

        segments_started = time.perf_counter()
        segment_rows = build_segments(con, manifest, build_tree(manifest), run_id, built_at) if rows else 0
        if segment_rows:
            report("segments", {"rows": segment_rows, "seconds": round(time.perf_counter() - segments_started, 3)})
        con.execute("COMMIT")
        committed = True
        if rows:
            write_table(con, SCORECARD_TABLE, project.scorecard_path)
            write_table(con, VALIDATION_TABLE, project.target_dir / "tree_validation.parquet")
            publish_segments(con, project, segment_rows)
    except NorthstarError as error:
        if not committed:
            _rollback(con)
        # Past the commit only publishing failed: the tables are new, the Parquet files the last good ones.
        _write_failed_run(project, run_id, built_at, started, plan, error,
                          node_status="success_unpublished" if committed else "rolled_back")
        raise
    except duckdb.Error as exc:
        _rollback(con)
        raise ExecutionError(f"DuckDB failed: {str(exc).strip().splitlines()[0]}") from None
    finally:
        con.close()
    result = RunResult(run_id, built_at, results, project.scorecard_path if rows else None, rows,
                       time.perf_counter() - started)
    write_json(project.target_dir / "run_results.json", run_results_payload(result))
    report("build_done", {"run_id": run_id, "nodes": len(results), "scorecard_rows": rows,
                          "scorecard": str(project.scorecard_path), "seconds": round(result.seconds, 3)})
    return result

def execute_plan(con: duckdb.DuckDBPyConnection, manifest: Manifest, plan: Plan, report: Reporter,
                 full_refresh: bool = False) -> tuple[NodeResult, ...]:
    create_sources(con, manifest)
    fingerprints = lineage_fingerprints(manifest)
    results = []
    total = len(plan.nodes)
    for layer in plan.layers:
        for node in layer.nodes:
            report("node_start", {"node": node.name, "relation": node.relation, "index": len(results) + 1, "total": total})
            result = execute_node(con, node, fingerprints.get(node.name, ""), full_refresh)
            results.append(result)
            report("node_done", {"node": node.name, "relation": node.relation, "index": len(results), "total": total,
                                 "rows": result.rows, "seconds": round(result.seconds, 3), "status": result.status,
                                 **({"mode": result.mode} if result.mode else {})})
    return tuple(results)


def read_scorecard(project: Project) -> "pa.Table":
    path = project.scorecard_path
    if not path.is_file():
        raise PublishError(f"no scorecard at {path}", hint="run 'northstar build' first")
    # Read through DuckDB: pyarrow.parquet.read_table would import pyarrow.dataset (~0.1 s per command).
    con = duckdb.connect(":memory:")
    try:
        return con.read_parquet(str(path)).to_arrow_table()
    finally:
        con.close()


def list_nodes(manifest: Manifest, plan: Plan | None = None) -> tuple[CompiledNode, ...]:
    return plan.nodes if plan else manifest.nodes


def _write_compiled(manifest: Manifest, dialect: str) -> None:
    root = manifest.project.target_dir / "compiled" / dialect
    for node in manifest.nodes:
        if node.kind is NodeKind.SEED:
            continue
        sql = node.sql if dialect == DEFAULT_DIALECT else compiling.transpile(node.sql, dialect)
        for segment in node.segment_sql:  # a metric cut by a dimension: its rewritten query, for review
            cut = segment.sql if dialect == DEFAULT_DIALECT else compiling.transpile(segment.sql, dialect)
            _write_if_changed(manifest.project.target_dir / "compiled_segments" / dialect
                              / node.relpath.with_suffix(f".{segment.dimension}.sql"), cut)
        out = root / node.relpath
        text = (sql + "\n").encode()
        if out.is_file() and out.stat().st_size == len(text) and out.read_bytes() == text:
            continue  # unchanged: a warm compile need not rewrite a thousand files
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(text)


def _write_if_changed(out: Path, sql: str) -> None:
    text = (sql + "\n").encode()
    if out.is_file() and out.stat().st_size == len(text) and out.read_bytes() == text:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(text)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # no transaction open: nothing to undo


def _write_failed_run(project: Project, run_id: str, built_at: str, started: float, plan: Plan,
                      error: NorthstarError, node_status: str = "rolled_back") -> None:
    """Record a failed run; before the commit the transaction rolled back, so no node of it is kept."""
    results = tuple(NodeResult(n.name, n.relation, node_status, 0.0, None) for n in plan.nodes)
    result = RunResult(run_id, built_at, results, None, 0, time.perf_counter() - started, error=str(error))
    try:
        write_json(project.target_dir / "run_results.json", run_results_payload(result))
    except PublishError:
        pass  # the original error matters more than its record
