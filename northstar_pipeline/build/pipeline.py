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

from northstar_pipeline.build import compiling, guards
from northstar_pipeline.build.cache import CompileCache
from northstar_pipeline.build.plan import Plan, Selector, plan_layers
from northstar_pipeline.build.publish import (
    SCORECARD_TABLE,
    VALIDATION_TABLE,
    manifest_payload,
    publish_scorecard,
    run_results_payload,
    write_json,
    write_table,
)
from northstar_pipeline.build.render import render_project
from northstar_pipeline.engines.duckdb import connect, create_sources, execute_node, run_interruptible
from northstar_pipeline.engines.incremental import lineage_fingerprints
from northstar_pipeline.errors import (
    BuildInterrupted,
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
    compiling.check_dialect(dialect)
    source_columns = describe_sources(project)  # first: a clear error when a source has no data
    as_of = resolve_as_of(project, source_columns)  # from the footers' statistics where they are exact
    cache = CompileCache(project.target_dir / ".cache" / "compile.pkl")
    rendered = render_project(project, environ, as_of, cache)
    manifest = replace(compiling.compile_project(project, rendered, cache, source_columns), as_of=as_of)
    cache.save()
    build_tree(manifest)  # the tree's own rules (formulas name their formula children) are compile errors
    guards.check_database_name(manifest)
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
    allow_shrink: bool = False,
) -> RunResult:
    """Compile, execute the selected nodes in one transaction, then publish the scorecard.

    ``full_refresh`` rebuilds incremental models from scratch instead of adding a batch;
    ``allow_shrink`` commits tables that lost more than the project's max_shrink of their rows.
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
        return _build_locked(project, select, exclude, report, environ, state, full_refresh, allow_shrink)
    finally:
        lock.release()


def _build_locked(project: Project, select: tuple[Selector, ...], exclude: tuple[Selector, ...], report: Reporter,
                  environ: Mapping[str, str] | None, state: Mapping[str, str] | None,
                  full_refresh: bool = False, allow_shrink: bool = False) -> RunResult:
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:12]
    built_at = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")
    report("build_start", {"run_id": run_id, "project": project.name, "target": project.target.name})
    manifest = compile_project(project, environ=environ)
    plan = plan_layers(manifest, select, exclude, state)
    report("plan", {"nodes": len(plan.nodes), "layers": len(plan.layers)})
    guards.check_sources_not_empty(manifest, {d for n in plan.nodes for d in n.depends_on})  # before any write
    con = connect(project.target)
    committed = False
    try:
        con.execute("BEGIN TRANSACTION")
        before = guards.count_existing(con, plan.nodes)
        results = execute_plan(con, manifest, plan, report, full_refresh)
        if not allow_shrink:
            guards.check_shrink(before, results, plan.nodes, project.max_shrink)
        from northstar_pipeline.tree.score import (
            score,  # pyarrow and the scoring SQL are only needed by a build
        )

        rows = score(con, manifest, build_tree(manifest), run_id, built_at)
        con.execute("COMMIT")
        committed = True
        if rows:
            publish_scorecard(con, SCORECARD_TABLE, project.scorecard_path, built_at, run_id)
            write_table(con, VALIDATION_TABLE, project.target_dir / "tree_validation.parquet")
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
    except (KeyboardInterrupt, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and not is_interrupt(exc):
            raise  # a bug: keep its traceback
        _rollback(con)
        error = BuildInterrupted("interrupted (Ctrl-C): the build's transaction was rolled back",
                                 hint="the last good tables and scorecard are kept; run the build again")
        _write_failed_run(project, run_id, built_at, started, plan, error)
        raise error from None
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
            try:
                result = run_interruptible(con, lambda: execute_node(con, node, fingerprints.get(node.name, ""),
                                                                     full_refresh))
            except (KeyboardInterrupt, RuntimeError) as exc:
                if isinstance(exc, RuntimeError) and not is_interrupt(exc):
                    raise  # a bug: keep its traceback
                error = BuildInterrupted(f"interrupted (Ctrl-C) while building {node.relation}: the build's "
                                         "transaction was rolled back", path=node.relpath, line=node.line,
                                         hint="the last good tables and scorecard are kept; run the build again")
                error.node = node.name
                raise error from None
            except NorthstarError as error:
                error.node = node.name  # run_results.json and the JSON log name the node that failed
                raise
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
        out = root / node.relpath
        text = (sql + "\n").encode()
        if out.is_file() and out.stat().st_size == len(text) and out.read_bytes() == text:
            continue  # unchanged: a warm compile need not rewrite a thousand files
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(text)


def is_interrupt(exc: BaseException) -> bool:
    """DuckDB turns SIGINT into RuntimeError('Query interrupted') (or InterruptException)."""
    return isinstance(exc, duckdb.InterruptException) or "interrupted" in str(exc).lower()


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # no transaction open: nothing to undo


def _write_failed_run(project: Project, run_id: str, built_at: str, started: float, plan: Plan,
                      error: NorthstarError, node_status: str = "rolled_back") -> None:
    """Record a failed run; before the commit the transaction rolled back, so no node of it is kept.

    The node that failed is `error`; those built before it `rolled_back`; those after it `skipped`.
    """
    order = [n for layer in plan.layers for n in layer.nodes]
    failed = next((i for i, n in enumerate(order) if n.name == error.node), None)

    def status(index: int) -> str:
        if failed is None or index < failed or (index > failed and isinstance(error, guards.ShrinkError)):
            return node_status  # a shrink is found after every node ran: the others were rolled back
        return "error" if index == failed else "skipped"

    results = tuple(NodeResult(n.name, n.relation, status(i), 0.0, None, message=error.message if i == failed else "")
                    for i, n in enumerate(order))
    result = RunResult(run_id, built_at, results, None, 0, time.perf_counter() - started, error=str(error))
    try:
        write_json(project.target_dir / "run_results.json", run_results_payload(result))
    except PublishError:
        pass  # the original error matters more than its record
