"""The Spark engine: the heavy nodes (staging, models, metric aggregation) run on Apache Spark.

SQL is the compiled DuckDB AST through engines/transpile.py (the same transforms as
``compile --dialect spark``), with each ``schema.table`` read through a session view
``schema__table``. Scoring needs only the metric tables (one row per period), so they are collected
into an in-memory DuckDB where tree/score.py runs unchanged.

Atomicity: Spark has no multi-table transaction. Every table of a build is written as Parquet under
``<warehouse>/runs/<run id>/<schema>/<name>``, a directory no committed tree points at; the tree
is the catalog file (the target's ``path``, JSON) naming each relation's files, replaced in one
``os.replace`` after every node and the scoring succeeded. A failed or killed build leaves the
previous catalog, hence the previous tables, untouched; its run directory is deleted on rollback
or by the next successful build. Incremental models are rebuilt in full on Spark (mode ``full``):
the result always equals a full refresh.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import sqlglot
from sqlglot import exp

from northstar_pipeline.engines.coverage import check_aligned, coverage_span, store_coverage
from northstar_pipeline.engines.duckdb import check_one_row_per_period
from northstar_pipeline.engines.transpile import Inexpressible, to_dialect
from northstar_pipeline.errors import CompileError, ExecutionError, UsageError
from northstar_pipeline.types import Column, CompiledNode, Manifest, NodeKind, NodeResult, Source, SparkTarget, Target

if TYPE_CHECKING:
    import pyarrow as pa

CATALOG_VERSION = 1
INSTALL_HINT = "pip install 'northstar-pipeline[spark]' (pyspark); a local master also needs Java 17+"
_SESSION_DEFAULTS = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                     "spark.sql.ansi.enabled": "true"}  # ANSI: a division by zero fails, as nothing is silently NULL


class SparkEngine:
    name = "spark"
    relations_in_duckdb = False  # only the metric tables and seeds are collected into DuckDB, for scoring

    def __init__(self, target: Target) -> None:
        assert target.spark is not None
        self.target, self.config = target, target.spark
        self.spark, self._owns_session = _session(target.name, self.config)
        self.catalog_path = target.database
        self.relations: dict[str, dict[str, Any]] = dict(_read_catalog(self.catalog_path).get("relations", {}))
        self.run_id = uuid.uuid4().hex[:12]
        self.run_root = f"{self.config.warehouse.rstrip('/')}/runs/{self.run_id}"
        self._views: set[str] = set()
        self._scoring: duckdb.DuckDBPyConnection | None = None
        self._collected: set[str] = set()
        self._writes: dict[str, int] = {}

    # -- the engine interface ---------------------------------------------------------------------

    def begin(self) -> None:
        pass  # nothing is visible as the tree before commit(): the catalog file is the tree

    def create_sources(self, manifest: Manifest) -> None:
        with self._spark_errors("registering the sources", None):
            for source in manifest.project.sources:
                self._register(f"{source.source_name}.{source.table_name}", _read_source(self.spark, source))
            # What earlier builds committed: unselected upstream nodes are read from there.
            known = {node.relation for node in manifest.nodes}
            for relation, entry in self.relations.items():
                if entry["kind"] == "table" and relation in known:
                    self._register(relation, self.spark.read.parquet(entry["path"]))
            for node in manifest.nodes:  # views after the tables they read, in build order
                entry = self.relations.get(node.relation)
                if entry and entry["kind"] == "view":
                    self._create_view(node.relation, sqlglot.parse_one(entry["sql"], read="spark"))

    def execute_node(self, node: CompiledNode, fingerprint: str = "", full_refresh: bool = False) -> NodeResult:
        started = time.perf_counter()
        mode = "full" if node.materialized == "incremental" else None
        rows = None
        with self._spark_errors(f"building {node.relation}", node):
            if node.kind is NodeKind.SEED:
                frame = self._seed_frame(node)
            else:
                query = self.spark_query(node)
                if node.materialized == "view":
                    self._create_view(node.relation, query)
                    self.relations[node.relation] = {"kind": "view", "sql": query.sql("spark")}
                    return NodeResult(node.name, node.relation, "success", time.perf_counter() - started, None)
                frame = self.spark.sql(query.sql("spark"))
            path = f"{self.run_root}/{node.schema}/{node.name}"
            self._writes[node.relation] = self._writes.get(node.relation, 0) + 1
            if self._writes[node.relation] > 1:  # rebuilt in the same run (the as-of settled): a new file set
                path += f"__{self._writes[node.relation]}"
            frame.write.mode("errorifexists").parquet(path)
            stored = self.spark.read.parquet(path)
            self._check_columns(node, stored.columns)
            self._register(node.relation, stored)
            self.relations[node.relation] = {"kind": "table", "path": path, "fingerprint": fingerprint}
            rows = stored.count()
            if node.kind in (NodeKind.METRIC, NodeKind.SEED):
                self._collect(node)  # small: scored locally, and its contract checked there
            if node.kind is NodeKind.METRIC:
                self._record_coverage(node)
        message = "incremental models are rebuilt in full on Spark" if mode else ""
        return NodeResult(node.name, node.relation, "success", time.perf_counter() - started, rows, message, mode)

    def describe(self, node: CompiledNode) -> tuple[Column, ...] | None:
        if node.relation not in self.relations:
            return None
        schema = self.spark.table(_view_name(node.relation)).schema
        return tuple(Column(f.name, f.dataType.simpleString().upper()) for f in schema.fields)

    def read_table(self, node: CompiledNode) -> pa.Table:
        import pyarrow as pa

        frame = self.spark.table(_view_name(node.relation))
        if hasattr(frame, "toArrow"):  # pyspark 4
            return frame.toArrow()
        return pa.Table.from_batches(frame._collect_as_arrow(), schema=None)  # pyspark 3.5

    def scoring_connection(self, manifest: Manifest) -> duckdb.DuckDBPyConnection:
        """The metric tables and seeds in an in-memory DuckDB (a few hundred rows each): built ones were
        collected as they were built, unselected ones committed earlier are collected now."""
        with self._spark_errors("collecting the metric tables", None):
            for node in manifest.nodes:
                if node.kind in (NodeKind.METRIC, NodeKind.SEED) and node.relation in self.relations:
                    if node.relation not in self._collected:
                        self._collect(node, check=False)
        return self._local()

    def _local(self) -> duckdb.DuckDBPyConnection:
        if self._scoring is None:
            self._scoring = duckdb.connect(":memory:")
        return self._scoring

    def _collect(self, node: CompiledNode, check: bool = True) -> None:
        con = self._local()
        con.register("_ns_collected", self.read_table(node))
        con.execute(exp.Create(kind="SCHEMA", exists=True, this=exp.to_identifier(node.schema, quoted=True)).sql("duckdb"))
        con.execute(exp.Create(kind="TABLE", replace=True, this=exp.table_(node.name, db=node.schema, quoted=True),
                               expression=exp.select("*").from_("_ns_collected")).sql("duckdb"))
        con.unregister("_ns_collected")
        self._collected.add(node.relation)
        if check and node.kind is NodeKind.METRIC:
            check_one_row_per_period(con, node)  # the DuckDB engine's checks, on the collected rows
            check_aligned(con, node)

    def _record_coverage(self, node: CompiledNode) -> None:
        """The days the metric's data covers, computed on Spark (it reads the models), stored for scoring."""
        first = last = None
        if node.coverage_sql:
            query = self._spark_sql(coverage_span(node), node)
            row = self.spark.sql(query.sql("spark")).collect()[0]
            first, last = row["first_day"], row["last_day"]
        store_coverage(self._local(), node, first, last)

    def commit(self) -> None:
        catalog = {"version": CATALOG_VERSION, "run_id": self.run_id, "warehouse": self.config.warehouse,
                   "committed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "relations": self.relations}
        self.catalog_path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.catalog_path.with_name(f".{self.catalog_path.name}.{self.run_id}.tmp")
        temp.write_text(json.dumps(catalog, indent=2, sort_keys=True) + "\n")
        os.replace(temp, self.catalog_path)  # the swap: readers see the old tree or the new one
        self._prune_runs()

    def rollback(self) -> None:
        local = _local_path(self.run_root)
        if local is not None:
            shutil.rmtree(local, ignore_errors=True)

    def close(self) -> None:
        if self._scoring is not None:
            self._scoring.close()
        try:
            for view in self._views:
                self.spark.catalog.dropTempView(view)
        finally:
            if self._owns_session:
                self.spark.stop()

    # -- helpers ----------------------------------------------------------------------------------

    def spark_query(self, node: CompiledNode) -> exp.Expression:
        """The node's query for Spark: the dialect transforms, then each relation read through its view."""
        ast = node.ast if node.ast is not None else sqlglot.parse_one(node.sql, read="duckdb")
        return self._spark_sql(ast, node)

    def _spark_sql(self, ast: exp.Expression, node: CompiledNode) -> exp.Expression:
        """A DuckDB query of ``node``'s for Spark: the dialect transforms, each relation read through its view."""
        try:
            query = to_dialect(ast, "spark")
        except Inexpressible as exc:
            raise CompileError(str(exc), path=node.relpath, line=node.line, hint=exc.hint) from None

        def to_view(table: exp.Expression) -> exp.Expression:
            if isinstance(table, exp.Table) and table.db and not table.args.get("catalog"):
                view = exp.to_table(_view_name(f"{table.db}.{table.name}"), quoted=True)
                view.set("alias", table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(table.name)))
                return view
            return table

        return query.transform(to_view, copy=query is ast)

    def _seed_frame(self, node: CompiledNode) -> Any:
        """A seed read with DuckDB's CSV reader (the types compile saw), handed to Spark as rows."""
        con = duckdb.connect(":memory:")
        try:
            rows = con.execute(node.sql).fetchall()
        finally:
            con.close()
        schema = ", ".join(exp.ColumnDef(this=exp.to_identifier(c.name, quoted=True),
                                         kind=exp.DataType.build(c.type, dialect="duckdb")).sql("spark")
                           for c in node.columns)
        return self.spark.createDataFrame(rows, schema=schema)

    def _register(self, relation: str, frame: Any) -> None:
        frame.createOrReplaceTempView(_view_name(relation))
        self._views.add(_view_name(relation))

    def _create_view(self, relation: str, query: exp.Expression) -> None:
        view = exp.Create(kind="VIEW", replace=True, this=exp.to_table(_view_name(relation), quoted=True),
                          expression=query, properties=exp.Properties(expressions=[exp.TemporaryProperty()]))
        self.spark.sql(view.sql("spark"))
        self._views.add(_view_name(relation))

    def _check_columns(self, node: CompiledNode, columns: list[str]) -> None:
        expected = [c.name for c in node.columns]
        if [c.lower() for c in columns] != [c.lower() for c in expected]:
            raise ExecutionError(f"Spark built {node.relation} with columns {', '.join(columns)}; "
                                 f"compile expected {', '.join(expected)}", path=node.relpath, line=node.line,
                                 hint="name every projected expression (AS name)")

    def _prune_runs(self) -> None:
        """Delete run directories no committed relation points at (failed runs, replaced tables)."""
        runs = _local_path(f"{self.config.warehouse.rstrip('/')}/runs")
        if runs is None or not runs.is_dir():
            return  # a cluster's object store: prune runs/ with its own tools
        used = {Path(e["path"]).parent.parent.name for e in self.relations.values() if e["kind"] == "table"}
        for run in runs.iterdir():
            if run.is_dir() and run.name not in used:
                shutil.rmtree(run, ignore_errors=True)

    @contextmanager
    def _spark_errors(self, doing: str, node: CompiledNode | None) -> Iterator[None]:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        try:
            yield
        except (PySparkException, Py4JError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if node is None:
                raise ExecutionError(f"Spark failed {doing}: {first}") from None
            raise ExecutionError(f"Spark failed {doing}: {first}", path=node.relpath, line=node.line,
                                 hint=f"the Spark SQL is in target/compiled/spark/{node.relpath.as_posix()}") from None


def _session(target_name: str, config: SparkTarget) -> tuple[Any, bool]:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError(f"target '{target_name}' has type spark, but pyspark is not installed",
                         hint=INSTALL_HINT) from None
    if config.master and config.master.startswith("local") and not _java():
        raise UsageError(f"target '{target_name}' runs Spark locally, but no Java was found",
                         hint="install Java 17+ (apt-get install -y openjdk-17-jre-headless) or set JAVA_HOME")
    existing = SparkSession.getActiveSession()
    settings = dict(_SESSION_DEFAULTS) if config.master else {}
    settings.update({"spark.sql.warehouse.dir": config.warehouse} if config.master else {})
    settings.update(dict(config.conf))
    builder = SparkSession.builder.remote(config.remote) if config.remote else SparkSession.builder.master(config.master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.appName("northstar").getOrCreate()
        # DuckDB's TIMESTAMP has no time zone: Spark must read and truncate timestamps as UTC wall times.
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        if "spark.sql.ansi.enabled" not in dict(config.conf):
            spark.conf.set("spark.sql.ansi.enabled", "true")
    except Exception as exc:  # the JVM or the server refused: a runtime failure, not a bug here
        raise ExecutionError(f"cannot start Spark for target '{target_name}': {str(exc).strip().splitlines()[0]}",
                             hint="check master/remote and conf in profiles.yml, and that Java 17+ is installed") from None
    return spark, existing is None


def _java() -> bool:
    home = os.environ.get("JAVA_HOME")
    return bool(shutil.which("java")) or bool(home and (Path(home) / "bin" / "java").is_file())


def _read_source(spark: Any, source: Source) -> Any:
    """A source's Parquet files; hive partitions (key=value folders) become columns, as DuckDB reads them."""
    parts = source.location.split("/")
    wild = next((i for i, p in enumerate(parts) if any(ch in p for ch in "*?[{")), None)
    if wild is None:
        return spark.read.parquet(source.location)
    root, rest = "/".join(parts[:wild]) or "/", parts[wild:]
    reader = spark.read
    if "**" in rest:  # any depth: Spark's own directory walk, keeping the file-name pattern
        reader = reader.option("pathGlobFilter", rest[-1])
        if not source.hive_partitioning:
            reader = reader.option("recursiveFileLookup", "true")
        return reader.parquet(root)
    if source.hive_partitioning:
        reader = reader.option("basePath", root)
    return reader.parquet(source.location)


def _view_name(relation: str) -> str:
    return relation.replace(".", "__", 1)


def _read_catalog(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        catalog = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExecutionError(f"cannot read the Spark catalog {path}: {exc}",
                             hint="restore it, or delete it to build every table afresh") from None
    if catalog.get("version") != CATALOG_VERSION:
        raise ExecutionError(f"the Spark catalog {path} has version {catalog.get('version')}",
                             hint="delete it to build every table afresh")
    return catalog


def _local_path(location: str) -> Path | None:
    if location.startswith("file://"):
        return Path(location[len("file://"):])
    return None if "://" in location else Path(location)
