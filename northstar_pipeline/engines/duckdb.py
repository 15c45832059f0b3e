"""The DuckDB engine: open the database, create the sources, build a node's relation.

The pipeline runs every node inside one transaction on one connection, so a failure at any
node rolls every table back: the last good build stays intact. DuckDB parallelises inside each
statement, so nodes run one after another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import duckdb
import sqlglot
from sqlglot import exp

from northstar_pipeline.engines.coverage import check_aligned, record_coverage, record_coverage_from
from northstar_pipeline.engines.delta import RunDeltas
from northstar_pipeline.engines.incremental import build_incremental
from northstar_pipeline.engines.incremental_metrics import MetricBuild, build_metric
from northstar_pipeline.engines.metric_scan import metric_scan
from northstar_pipeline.engines.partials import create_partials, release_partials
from northstar_pipeline.engines.stored_partials import drop_kept, keep_partials
from northstar_pipeline.errors import ExecutionError, LockedError, ProjectError
from northstar_pipeline.project.connection import connect_confined
from northstar_pipeline.sql import reading_table
from northstar_pipeline.types import (
    Column,
    CompiledNode,
    METRIC_PARTIALS,
    Manifest,
    NodeKind,
    NodeResult,
    Target,
)

if TYPE_CHECKING:
    import pyarrow as pa


def connect(target: Target, read_only: bool = False, reads: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
            ) -> duckdb.DuckDBPyConnection:
    """The project's database, confined to ``reads`` (directories, files): see project/connection.py."""
    config: dict[str, str | int] = {}
    if target.threads:
        config["threads"] = target.threads
    if target.memory_limit:
        config["memory_limit"] = target.memory_limit
    if target.temp_directory:
        config["temp_directory"] = str(target.temp_directory)
    try:
        # Sources are scanned by several nodes (three times by the demo's dedupe): keep Parquet footers cached.
        return connect_confined(target.database, directories=reads[0], files=reads[1], read_only=read_only,
                                config=config, settings={"parquet_metadata_cache": True})
    except duckdb.IOException as exc:
        if is_lock_conflict(exc):  # the file's own lock: a build whose lock file was deleted still holds it
            raise LockedError(f"another process holds the DuckDB database {target.database}: {_first_line(exc)}",
                              hint="wait for the other build to finish (a DuckDB file has one writer); "
                                   "if none runs, close the program that has the file open") from None
        raise ExecutionError(f"cannot open DuckDB database {target.database}: {_first_line(exc)}",
                             hint="check the file is a DuckDB database and its folder is writable") from None
    except duckdb.Error as exc:
        raise ExecutionError(f"cannot open DuckDB database {target.database}: {_first_line(exc)}",
                             hint="check the target's settings in profiles.yml") from None
    except OSError as exc:
        raise ProjectError(f"cannot create the folder of DuckDB database {target.database}: {exc.strerror}",
                           hint="point the target's path in profiles.yml at a writable folder") from None


def is_lock_conflict(exc: BaseException) -> bool:
    """DuckDB says 'Could not set lock on file ... Conflicting lock is held in <program> (PID n)'."""
    return "lock" in str(exc).lower()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


T = TypeVar("T")


def run_interruptible(con: duckdb.DuckDBPyConnection, work: Callable[[], T]) -> T:
    """Run `work` (statements on `con`) so that Ctrl-C stops it at once.

    DuckDB's Python client notices SIGINT only when a statement ends, which for a long node is
    minutes. So the statements run on a worker thread while the main thread waits, receives
    KeyboardInterrupt and calls con.interrupt(), which DuckDB checks between its tasks.
    """
    if threading.current_thread() is not threading.main_thread():
        return work()  # signals reach only the main thread: nothing to wait for here
    outcome: dict[str, object] = {}
    # An Event, not Thread.join: a join cut by Ctrl-C can leave is_alive() False while the thread runs.
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="northstar-node", daemon=True).start()
    try:
        while not done.wait(0.05):
            pass
    except KeyboardInterrupt:
        # Interrupt until the worker stops: between two statements an interrupt finds nothing to stop,
        # and a connection in the middle of a call may refuse it; the next attempt catches the next one.
        while not done.is_set():
            try:
                con.interrupt()
            except duckdb.Error:
                pass
            try:
                done.wait(0.05)
            except KeyboardInterrupt:
                pass  # another Ctrl-C while stopping: we are stopping already
        raise
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def create_sources(con: duckdb.DuckDBPyConnection, manifest: Manifest) -> None:
    """Each source is a view over its Parquet glob, in a schema named after the source."""
    for source in manifest.project.sources:
        _create_schema(con, source.source_name)
        scan = exp.Anonymous(
            this="read_parquet",
            expressions=[
                exp.Literal.string(source.location),
                exp.EQ(this=exp.var("hive_partitioning"), expression=exp.Boolean(this=source.hive_partitioning)),
            ],
        )
        view = exp.Create(
            kind="VIEW",
            replace=True,
            this=exp.table_(source.table_name, db=source.source_name, quoted=True),
            expression=exp.select("*").from_(scan),
        )
        con.execute(view.sql("duckdb"))



def execute_node(con: duckdb.DuckDBPyConnection, node: CompiledNode, fingerprint: str = "",
                 full_refresh: bool = False, deltas: RunDeltas | None = None) -> NodeResult:
    """Build one node; with ``deltas`` (the run's, engines/delta.py) incremental models keep their delta and
    metrics recompute only the periods it touches (engines/incremental_metrics.py)."""
    started = time.perf_counter()
    _create_schema(con, node.schema)
    relation = exp.table_(node.name, db=node.schema, quoted=True)
    kind = "VIEW" if node.materialized == "view" else "TABLE"
    mode = None
    metric: MetricBuild | None = None
    try:
        if node.materialized == "incremental":
            mode = build_incremental(con, node, fingerprint, full_refresh, deltas,
                                     force_full=deltas.full_upstream(node) if deltas is not None else "")
        elif node.kind is NodeKind.METRIC and deltas is not None:
            metric = build_metric(con, node, fingerprint, full_refresh, deltas,
                                  lambda: _create_metric(con, node, relation))
            mode = metric.mode
        elif node.kind is NodeKind.METRIC:
            _create_metric(con, node, relation)
        else:
            _create_relation(con, node, relation, kind)
            if deltas is not None and kind == "TABLE":
                deltas.record(node, None)  # rebuilt in full: its delta is unknown
            elif deltas is not None:
                deltas.nodes[node.name] = node  # a view: its delta is its query over its upstream's, if row-local
        rows = None if kind == "VIEW" else con.execute(
            exp.select(exp.Count(this=exp.Star())).from_(relation.copy()).sql("duckdb")).fetchall()[0][0]
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None  # Ctrl-C: the pipeline rolls back and exits 130
    except duckdb.Error as exc:
        raise ExecutionError(
            f"DuckDB failed building {node.relation}: {str(exc).strip().splitlines()[0]}",
            path=node.relpath,
            line=node.line,
            hint=f"the SQL that ran is in target/compiled/duckdb/{Path(node.relpath).as_posix()}",
        ) from None
    if node.kind is NodeKind.METRIC:
        check_one_row_per_period(con, node)
        check_aligned(con, node)
    return NodeResult(node.name, node.relation, "success", time.perf_counter() - started, rows, mode=mode,
                      recomputed_from=metric.recomputed_from if metric else None,
                      fallback=metric.reason if metric else (deltas.reasons.get(node.name, "") if deltas else ""))


def _create_metric(con: duckdb.DuckDBPyConnection, node: CompiledNode, relation: exp.Table) -> None:
    """A metric's table in full and the days its data covers: one scan when its renderings allow it
    (engines/metric_scan.py), else its union and its day rendering."""
    scan = metric_scan(node)
    if scan is None:
        _create_relation(con, node, relation, "TABLE")
        record_coverage(con, node)
        drop_kept(con, {node.name})  # kept when it was built in one scan: not read again
        return
    partials = create_partials(con, node.name, scan.partials)
    _create_relation(con, node, relation, "TABLE", reading_table(scan.rollup, METRIC_PARTIALS, partials.name))
    if scan.day_key:
        record_coverage_from(con, node, partials, scan.day_key)
    else:
        record_coverage(con, node)
    keep_partials(con, node.name, scan, partials)  # for the nights (engines/stored_partials.py)
    release_partials(con, node.name, partials, for_cuts=bool(scan.dimensions))


def _create_relation(con: duckdb.DuckDBPyConnection, node: CompiledNode, relation: exp.Table, kind: str,
                     query: exp.Expression | None = None) -> None:
    if query is None:
        query = node.ast if node.ast is not None else sqlglot.parse_one(node.sql, read="duckdb")  # cached: text
    # A node that changes between table and view must first lose the other kind of object.
    existing = con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = ? "
                           "AND table_name = ?", [node.schema, node.name]).fetchall()
    if existing and (existing[0][0] == "VIEW") != (kind == "VIEW"):
        other = "VIEW" if existing[0][0] == "VIEW" else "TABLE"
        con.execute(exp.Drop(kind=other, tables=[relation.copy()]).sql("duckdb"))
    con.execute(exp.Create(kind=kind, replace=True, this=relation.copy(), expression=query.copy()).sql("duckdb"))


def check_one_row_per_period(con: duckdb.DuckDBPyConnection, node: CompiledNode) -> None:
    """The metric contract on the built table: one row per (grain, is_to_date, period_start), none NULL."""
    table = exp.table_(node.name, db=node.schema, quoted=True)
    query = (
        exp.select("grain", "period_start", exp.Count(this=exp.Star()).as_("n"))
        .from_(table)
        .group_by("grain", "is_to_date", "period_start")
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
        .order_by("grain", "period_start")
        .limit(1)
    )
    duplicates = con.execute(query.sql("duckdb")).fetchall()
    if duplicates:
        duplicate = duplicates[0]
        raise ExecutionError(
            f"metric returns {duplicate[2]} rows for {duplicate[0]} {duplicate[1]}; the contract is one row per period",
            path=node.relpath,
            line=node.line,
            hint="GROUP BY the period_start expression, and aggregate everything else",
        )
    nulls = con.execute(exp.select(exp.Count(this=exp.Star())).from_(table).where(
        exp.column("period_start").is_(exp.null())).sql("duckdb")).fetchall()[0][0]
    if nulls:
        raise ExecutionError(f"metric returns {nulls} row(s) with a NULL period_start", path=node.relpath, line=node.line,
                             hint="filter out rows whose timestamp is NULL before grouping")


def _create_schema(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(exp.Create(kind="SCHEMA", exists=True, this=exp.to_identifier(name, quoted=True)).sql("duckdb"))


class DuckDBEngine:
    """The engines/base.py interface over the functions above: one connection, one transaction."""

    name = "duckdb"

    relations_in_duckdb = True  # data tests, segments, --defer and orphans read them with DuckDB SQL

    def __init__(self, target: Target, reads: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())) -> None:
        self.con = connect(target, reads=reads)
        self.deltas = RunDeltas()  # what this run changed in each relation (engines/delta.py)

    def begin(self) -> None:
        self.con.execute("BEGIN TRANSACTION")

    def create_sources(self, manifest: Manifest) -> None:
        create_sources(self.con, manifest)

    def execute_node(self, node: CompiledNode, fingerprint: str = "", full_refresh: bool = False) -> NodeResult:
        # On a worker thread, so Ctrl-C interrupts DuckDB at once (run_interruptible)
        return run_interruptible(self.con, lambda: execute_node(self.con, node, fingerprint, full_refresh, self.deltas))

    def describe(self, node: CompiledNode) -> tuple[Column, ...] | None:
        rows = self.con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
                                "AND table_name = ? ORDER BY ordinal_position", [node.schema, node.name]).fetchall()
        return tuple(Column(n, t) for n, t in rows) or None

    def read_table(self, node: CompiledNode) -> pa.Table:
        return self.con.table(exp.table_(node.name, db=node.schema, quoted=True).sql("duckdb")).to_arrow_table()

    def scoring_connection(self, manifest: Manifest) -> duckdb.DuckDBPyConnection:
        return self.con  # scoring runs inside the build's transaction

    def commit(self) -> None:
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # no transaction open: nothing to undo

    def close(self) -> None:
        self.con.close()
