"""One build, start to end: compile (render + compile), plan, execute in one transaction, score, publish.

`api` re-exports these for callers outside the package; `diff` and `lint` call them directly.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

import duckdb

from northstar_pipeline.build import compiling, guards
from northstar_pipeline.build.bi import publish_bi
from northstar_pipeline.build.cache import CompileCache
from northstar_pipeline.build.datatests import TestRun, prepare_tests, store_failures
from northstar_pipeline.build.lock import project_lock
from northstar_pipeline.build.plan import Plan, Selector, descendants, plan_layers
from northstar_pipeline.build.orphans import clean_orphans
from northstar_pipeline.build.history import append_history
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
from northstar_pipeline.build.runlog import append_run
from northstar_pipeline.build.segment_publish import publish_segments
from northstar_pipeline.engines.coverage import data_as_of
from northstar_pipeline.build.upstream import prepare_upstream
from northstar_pipeline.build.window_binding import bind_manifest
from northstar_pipeline.engines.base import Engine
from northstar_pipeline.engines.incremental import lineage_fingerprints
from northstar_pipeline.engines.select import open_engine
from northstar_pipeline.errors import (
    BuildInterrupted,
    ExecutionError,
    FormulaError,
    NorthstarError,
    PublishError,
    UsageError,
)
from northstar_pipeline.project.connection import connect_confined, project_reads
from northstar_pipeline.project.load import load_project
from northstar_pipeline.project.sources import describe_sources, resolve_as_of
from northstar_pipeline.tree.targets import check_targets
from northstar_pipeline.tree.tree import build_tree, check_one_north_star
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


def compile_project(project: Project, *, dialect: str = DEFAULT_DIALECT, environ: Mapping[str, str] | None = None,
                    as_of: datetime | None = None, report: Reporter | None = None,
                    cache: CompileCache | None = None) -> Manifest:
    """Render and compile every node; write compiled SQL and manifest.json under target/.

    ``as_of`` overrides the as-of the sources give (the build passes the one the data covers when they give none).
    ``report`` gets a ``compile`` event: the nodes rendered and compiled afresh (the rest came from the cache).
    ``cache``: the build's, when it compiles twice (the as-of from the data): the second compile is served from
    what the file held at the first, and the file keeps what both used, so the next build's are both warm.
    """
    started = time.perf_counter()
    compiling.check_dialect(dialect)
    source_columns = describe_sources(project)  # first: a clear error when a source has no data
    cache = cache or CompileCache(project.target_dir / ".cache" / "compile.json")
    # from the footers' statistics where they are exact (the cache keeps each file's: a night reads its new ones)
    as_of = as_of or resolve_as_of(project, source_columns)
    missed = len(cache.missed)
    rendered = render_project(project, environ, as_of, cache)
    manifest = replace(compiling.compile_project(project, rendered, cache, source_columns), as_of=as_of)
    manifest = bind_manifest(manifest, as_of, cache)  # the cache holds the to-date window as placeholders: its dates now
    cache.save()
    build_tree(manifest)  # the tree's own rules (formulas name their formula children) are compile errors
    guards.check_database_name(manifest)
    _write_compiled(manifest, DEFAULT_DIALECT)
    if dialect != DEFAULT_DIALECT:
        _write_compiled(manifest, dialect)
    write_json(project.target_dir / "manifest.json", manifest_payload(manifest))
    if report is not None:
        report("compile", {"nodes": len(manifest.nodes),
                           "rendered": [name for step, name in cache.missed[missed:] if step == "render"],
                           "compiled": [name for step, name in cache.missed[missed:] if step == "compile"],
                           "seconds": round(time.perf_counter() - started, 3)})
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
    store_failures: bool = False,
    defer: Path | None = None,
    keep_orphans: bool = False,
    allow_shrink: bool = False,
) -> RunResult:
    """Compile, execute the selected nodes in one transaction, then publish the scorecard.

    ``full_refresh`` rebuilds incremental models from scratch instead of adding a batch. Each
    node's data tests run right after it; ``store_failures`` keeps every test's failing rows.
    ``defer`` (an earlier run's DuckDB file) supplies unselected upstream tables this database
    lacks (build/upstream.py); relations of nodes the project no longer has are dropped unless
    ``keep_orphans`` (build/orphans.py). ``allow_shrink`` commits tables that lost more than the
    project's max_shrink of their rows (build/guards.py).
    """
    report = report or (lambda event, payload: None)
    with project_lock(project, "build"):  # the lock's sidecar names this process for `northstar status`
        started = time.perf_counter()
        try:
            return _build_locked(project, select, exclude, report, environ, state, full_refresh, store_failures,
                                  defer, keep_orphans, allow_shrink)
        except NorthstarError as error:
            if not getattr(error, "run_logged", False):  # failed before executing (compile, plan): log it too
                built_at = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")
                append_run(project.target_dir, RunResult(uuid.uuid4().hex[:12], built_at, (), None, 0,
                                                         time.perf_counter() - started, error=str(error)))
            raise


def _build_locked(project: Project, select: tuple[Selector, ...], exclude: tuple[Selector, ...], report: Reporter,
                  environ: Mapping[str, str] | None, state: Mapping[str, str] | None,
                  full_refresh: bool = False, keep_failures: bool = False, defer: Path | None = None,
                  keep_orphans: bool = False, allow_shrink: bool = False) -> RunResult:
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:12]
    built_at = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")
    report("build_start", {"run_id": run_id, "project": project.name, "target": project.target.name})
    cache = CompileCache(project.target_dir / ".cache" / "compile.json")  # both compiles' (see _settle_as_of)
    manifest = compile_project(project, dialect=project.target.engine, environ=environ,  # a Spark target: its SQL too
                               report=report, cache=cache)
    tree = build_tree(manifest)
    check_one_north_star(tree)  # lint only reports it; a build must not publish two trees
    check_targets(project, tree)  # a target that applies to nothing is an error, not a silent no-op
    if manifest.as_of is not None:
        report("as_of", {"as_of": manifest.as_of.isoformat(sep=" "),
                         "source": "var as_of" if project.var_map.get("as_of") else "loaded_at_field"})
    plan = plan_layers(manifest, select, exclude, state)
    report("plan", {"nodes": len(plan.nodes), "layers": len(plan.layers)})
    tests = prepare_tests(manifest, plan, report, keep_failures)
    guards.check_sources_not_empty(manifest, {d for n in plan.nodes for d in n.depends_on})  # before any write
    reads = project_reads(project)
    if defer is not None:  # the earlier run's database is ATTACHed read-only: the confinement allows it (and its WAL)
        reads = (reads[0], (*reads[1], str(defer), f"{defer}.wal"))
    engine = open_engine(project.target, reads=reads)
    # Steps that read the built relations with DuckDB SQL (data tests, segments, --defer, orphans) run
    # where the relations are DuckDB's; on Spark they are skipped or refused (README "Running on Spark").
    local = engine.relations_in_duckdb
    if defer is not None and not local:
        raise UsageError("--defer copies tables between DuckDB files; it is not available on a Spark target",
                         hint="build the upstream nodes too (--select +name)")
    committed = False
    con = None
    try:
        engine.begin()
        if local:
            con = engine.scoring_connection(manifest)
            report("deferred", {"relations": prepare_upstream(con, manifest, {n.name for n in plan.nodes}, defer)})
        before = guards.count_existing(con, plan.nodes) if local else {}
        results = execute_plan(engine, manifest, plan, report, full_refresh, tests if local else None)
        if local and not allow_shrink:  # a broken export must not wipe the tree (Spark: not checked yet)
            guards.check_shrink(before, results, plan.nodes, project.max_shrink)
        if not local:
            tests.skip_pending("data tests run on DuckDB targets; a Spark build skips them (README)")
        tests.raise_for_errors(results)  # before scoring: an error-severity failure publishes nothing
        if manifest.as_of is None:
            manifest, results = _settle_as_of(engine, manifest, plan, results, report, environ, cache)
        if local:
            report("orphans", {"relations": clean_orphans(con, manifest, keep_orphans), "kept": keep_orphans})
        from northstar_pipeline.tree.score import (
            score,  # pyarrow and the scoring SQL are only needed by a build
        )

        con = engine.scoring_connection(manifest)
        rows = score(con, manifest, build_tree(manifest), run_id, built_at)
        from northstar_pipeline.tree.segments import build_segments

        segments_started = time.perf_counter()
        since = segment_since(results, [g.value for g in project.grains])  # what the metrics recomputed
        segments = build_segments(con, manifest, build_tree(manifest), run_id, built_at,
                                  since=since) if rows and local else None
        segment_rows = segments.rows if segments else 0
        if segment_rows:
            report("segments", {"rows": segment_rows, "seconds": round(time.perf_counter() - segments_started, 3),
                                "from_partials": list(segments.from_partials)})
        engine.commit()
        committed = True
        if local:
            store_failures(con, tests.stored)
        if rows:
            publish_scorecard(con, SCORECARD_TABLE, project.scorecard_path, built_at, run_id)
            write_table(con, VALIDATION_TABLE, project.target_dir / "tree_validation.parquet")
            if local:
                publish_segments(con, project, segment_rows)
            append_history(project, run_id, built_at)  # the record of what this build reported
            publish_bi(project)  # views for BI tools over what was just published
    except NorthstarError as error:
        if not committed:
            if isinstance(error, FormulaError) and con is not None:
                _write_failed_validation(con, project)
            engine.rollback()
            if local and con is not None:
                _store_failures_after(con, tests)
        # Past the commit only publishing failed: the tables are new, the Parquet files the last good ones.
        _write_failed_run(project, run_id, built_at, started, plan, error,
                          node_status="success_unpublished" if committed else "rolled_back", tests=tests)
        raise
    except duckdb.Error as exc:
        engine.rollback()
        raise ExecutionError(f"DuckDB failed: {str(exc).strip().splitlines()[0]}") from None
    except (KeyboardInterrupt, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and not is_interrupt(exc):
            raise  # a bug: keep its traceback
        engine.rollback()
        error = BuildInterrupted("interrupted (Ctrl-C): the build's transaction was rolled back",
                                 hint="the last good tables and scorecard are kept; run the build again")
        _write_failed_run(project, run_id, built_at, started, plan, error, tests=tests)
        raise error from None
    finally:
        engine.close()
    result = RunResult(run_id, built_at, results, project.scorecard_path if rows else None, rows,
                       time.perf_counter() - started, tests=tuple(r.payload() for r in tests.results))
    write_json(project.target_dir / "run_results.json", run_results_payload(result))
    append_run(project.target_dir, result)
    report("build_done", {"run_id": run_id, "nodes": len(results), "scorecard_rows": rows,
                          "scorecard": str(project.scorecard_path), "seconds": round(result.seconds, 3)})
    return result

def _settle_as_of(engine: Engine, manifest: Manifest, plan: Plan, results: tuple[NodeResult, ...],
                  report: Reporter, environ: Mapping[str, str] | None,
                  cache: CompileCache | None = None) -> tuple[Manifest, tuple[NodeResult, ...]]:
    """No loaded_at_field and no as_of var: the as-of is the end of the last day the metrics' data covers.

    The metrics are rendered again with it (their to-date renderings need it) and rebuilt in the same
    transaction, so the partial last period is compared with the same span of the one before.
    """
    metrics = [n.name for n in manifest.nodes if n.kind is NodeKind.METRIC]
    as_of = data_as_of(engine.scoring_connection(manifest), metrics)
    if as_of is None:
        return manifest, results
    report("as_of", {"as_of": as_of.isoformat(sep=" "), "source": "data",
                     "note": "no loaded_at_field or as_of var: the end of the last day the metrics' data covers"})
    settled = compile_project(manifest.project, environ=environ, as_of=as_of, report=report, cache=cache)
    rebuilt = {}
    for node in plan.nodes:
        if node.kind is NodeKind.METRIC:
            rebuilt[node.name] = engine.execute_node(settled.node(node.name))
    return settled, tuple(rebuilt.get(r.name, r) for r in results)


def execute_plan(engine: Engine, manifest: Manifest, plan: Plan, report: Reporter,
                 full_refresh: bool = False, tests: TestRun | None = None) -> tuple[NodeResult, ...]:
    """Every node of the plan through the engine, layer by layer; ``tests``: each node's data tests right after
    it (a DuckDB engine only: they read its relations), skipping what depends on a failed error-severity one."""
    engine.create_sources(manifest)
    fingerprints = lineage_fingerprints(manifest)
    results = []
    total = len(plan.nodes)
    unbuilt = {node.name for node in plan.nodes}
    skipped: set[str] = set()  # downstream of a failed error-severity data test (dbt build's rule)
    for layer in plan.layers:
        for node in layer.nodes:
            if node.name in skipped:
                results.append(NodeResult(node.name, node.relation, "skipped", 0.0, None,
                                          message="an upstream data test failed"))
                report("node_skipped", {"node": node.name, "relation": node.relation, "index": len(results),
                                        "total": total, "status": "skipped"})
                continue
            report("node_start", {"node": node.name, "relation": node.relation, "index": len(results) + 1, "total": total})
            try:
                result = engine.execute_node(node, fingerprints.get(node.name, ""), full_refresh)
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
                                 **({"mode": result.mode} if result.mode else {}),
                                 **({"recomputed_from": result.recomputed_from}
                                    if result.recomputed_from is not None else {}),
                                 **({"fallback": result.fallback} if result.fallback else {})})
            unbuilt.discard(node.name)
            if tests is not None:
                for failed in tests.after_node(engine.scoring_connection(manifest), unbuilt,
                                               getattr(engine, "deltas", None)):
                    skipped |= descendants(manifest, failed)
    if tests is not None:
        tests.skip_pending("a node it reads was skipped")
    return tuple(results)


def recomputed_periods(results: tuple[NodeResult, ...]) -> dict[str, dict[str, str | None]]:
    """Per metric built: {grain: the first period_start it recomputed (ISO date), None = every period}.

    From execute_plan's (or RunResult's) results. A grain missing from an incremental metric's map was not
    recomputed: its stored rows stand. Metrics not built (skipped, Spark) are absent.
    """
    return {r.name: dict(r.recomputed_from) for r in results if r.recomputed_from is not None}


def segment_since(results: tuple[NodeResult, ...], grains: list[str]) -> dict[str, dict[str, date | None]]:
    """What the segment cuts recompute (tree/segment_store.py's ``since``): the periods each metric recomputed.

    A segment cut is its metric's query grouped by one more column, over the same inputs, so the
    periods the metric's delta touched are the only ones whose segments can have changed. A grain the
    metric did not recompute keeps every stored period (only its to-date span is cut again); None
    recomputes the grain; a metric not built this run (absent) is cut again in full.
    """
    since: dict[str, dict[str, date | None]] = {}
    for metric, recomputed in recomputed_periods(results).items():
        since[metric] = {grain: (date.fromisoformat(recomputed[grain]) if recomputed[grain] else None)
                         if grain in recomputed else date.max for grain in grains}
    return since


def read_scorecard(project: Project) -> "pa.Table":
    path = project.scorecard_path
    if not path.is_file():
        raise PublishError(f"no scorecard at {path}", hint="run 'northstar build' first")
    # Read through DuckDB: pyarrow.parquet.read_table would import pyarrow.dataset (~0.1 s per command).
    con = connect_confined(files=[path])
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
        sql = node.sql if dialect == DEFAULT_DIALECT else compiling.transpile(node.sql, dialect, node)
        for segment in node.segment_sql:  # a metric cut by a dimension: its rewritten query, for review
            cut = segment.sql if dialect == DEFAULT_DIALECT else compiling.transpile(segment.sql, dialect, node)
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


def _write_failed_validation(con: duckdb.DuckDBPyConnection, project: Project) -> None:
    """A formula that does not hold: publish tree_validation.parquet (first_break filled) for diagnosis.

    The scorecard stays the last good one; only the validation, which says why this build failed, is new.
    """
    try:
        if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'scorecard' "
                       "AND table_name = 'tree_validation'").fetchall()[0][0]:
            write_table(con, VALIDATION_TABLE, project.target_dir / "tree_validation.parquet")
    except (duckdb.Error, PublishError):
        pass  # the formula error matters more than its diagnosis file


def _store_failures_after(con: duckdb.DuckDBPyConnection, tests: TestRun) -> None:
    """Failing rows outlive the rollback: they are what to look at."""
    try:
        store_failures(con, tests.stored)
    except duckdb.Error:
        pass  # the build's own error matters more


def is_interrupt(exc: BaseException) -> bool:
    """DuckDB turns SIGINT into RuntimeError('Query interrupted') (or InterruptException)."""
    return isinstance(exc, duckdb.InterruptException) or "interrupted" in str(exc).lower()


def _write_failed_run(project: Project, run_id: str, built_at: str, started: float, plan: Plan,
                      error: NorthstarError, node_status: str = "rolled_back", tests: TestRun | None = None) -> None:
    """Record a failed run; before the commit the transaction rolled back, so no node of it is kept.

    The node that failed is `error`; those built before it `rolled_back`; those after it `skipped`
    (also those downstream of a failed error-severity data test).
    """
    skipped = {r.name for r in getattr(error, "node_results", ()) if r.status == "skipped"}
    order = [n for layer in plan.layers for n in layer.nodes]
    failed = next((i for i, n in enumerate(order) if n.name == getattr(error, "node", None)), None)

    def status(index: int, node: CompiledNode) -> str:
        if node.name in skipped:
            return "skipped"
        if failed is None or index < failed or (index > failed and isinstance(error, guards.ShrinkError)):
            return node_status  # a shrink is found after every node ran: the others were rolled back
        return "error" if index == failed else "skipped"

    results = tuple(NodeResult(n.name, n.relation, status(i, n), 0.0, None,
                               message=error.message if i == failed else "") for i, n in enumerate(order))
    result = RunResult(run_id, built_at, results, None, 0, time.perf_counter() - started, error=str(error),
                       tests=tuple(r.payload() for r in tests.results) if tests else ())
    append_run(project.target_dir, result)
    error.run_logged = True  # type: ignore[attr-defined]
    try:
        write_json(project.target_dir / "run_results.json", run_results_payload(result))
    except PublishError:
        pass  # the original error matters more than its record
