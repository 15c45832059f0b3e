"""The BI database: a small DuckDB file of views over what a build published, for Superset, pandas, polars.

``target/bi.duckdb`` (``bi_path`` in profiles.yml) holds no data, only views, each over the
published Parquet by its ABSOLUTE path (a relative one would resolve against the BI server's
working directory and silently read another file):

* ``scorecard``: the scorecard as published; ``scorecard_complete``: complete periods only;
  ``scorecard_latest``: the latest complete period of each metric and grain;
* ``sparkline_points``: the sparkline lists in long form (metric, grain, period_start, point, value),
  for tools that show a list column as text;
* ``history``: every recorded build's scorecard (build/history.py), with ``build_date``;
* ``tree_validation``: formula checks and hypothesis tests.

The file is written under a temporary name in a storage version older DuckDB releases open
(``STORAGE_VERSION``), then renamed over the old one: a BI tool holding the previous file open
read-only never blocks a build and keeps reading the previous views; its next connection sees
the new ones. View bodies are sqlglot trees; paths enter them as string literals.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from northstar_pipeline.build.bi_state import bi_unchanged, record_bi
from northstar_pipeline.build.history import history_dir, history_glob
from northstar_pipeline.errors import PublishError
from northstar_pipeline.types import Project

BI_FILE = "bi.duckdb"  # the default name in target/ (a views-only database, not a build's)

STORAGE_VERSION = "v1.0.0"  # DuckDB 1.0 and later open the file
ALIAS = "ns_bi"

# Each view over a placeholder table, swapped for a read_parquet() of the published file.
_VIEWS = {
    "scorecard": "SELECT * FROM __scorecard__",
    "scorecard_complete": "SELECT * FROM __scorecard__ WHERE is_complete",
    "scorecard_latest": "SELECT * FROM __scorecard__ WHERE is_complete "
                        "QUALIFY row_number() OVER (PARTITION BY metric, grain ORDER BY period_start DESC) = 1",
    "sparkline_points": "SELECT metric, label, grain, period_start, generate_subscripts(sparkline, 1) AS point, "
                        "unnest(sparkline) AS value FROM __scorecard__",
    "tree_validation": "SELECT * FROM __validation__",
    "history": "SELECT * FROM __history__",
}


def bi_path(project: Project) -> Path:
    return project.bi_path or project.target_dir / BI_FILE


def publish_bi(project: Project) -> Path:
    """Write the BI database's views over the published files, then swap it in atomically."""
    path = bi_path(project)
    sources = {"__scorecard__": _scan(project.scorecard_path)}
    validation = project.target_dir / "tree_validation.parquet"
    if validation.is_file():
        sources["__validation__"] = _scan(validation)
    if any(history_dir(project).glob("build_date=*/*.parquet")):
        sources["__history__"] = _scan(Path(history_glob(project)), hive=True)
    statements = [exp.Create(this=exp.table_(view, db="main", catalog=ALIAS), kind="VIEW", expression=query).sql("duckdb")
                  for view, query in ((v, _bind(body, sources)) for v, body in _VIEWS.items()) if query is not None]
    bound = ([project.scorecard_path, validation], history_dir(project))  # the columns the views bind to
    if bi_unchanged(project, path, statements, *bound):
        return path  # the views name the same files: a night need not rewrite the database (40-110 ms)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(name)  # DuckDB creates the file itself
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc}", hint="check the directory exists and is writable") from None
    tmp = Path(name)
    try:
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"ATTACH {exp.Literal.string(str(tmp)).sql('duckdb')} AS {ALIAS} "
                        f"(STORAGE_VERSION {exp.Literal.string(STORAGE_VERSION).sql('duckdb')})")
            for statement in statements:
                con.execute(statement)
            con.execute(f"DETACH {ALIAS}")
        finally:
            con.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        record_bi(project, path, statements, *bound)
    except (OSError, duckdb.Error) as exc:
        raise PublishError(f"cannot write the BI database {path}: {exc}",
                           hint="check the directory is writable; the scorecard itself was published") from None
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    return path


def _scan(path: Path, hive: bool = False) -> exp.Table:
    """read_parquet('<absolute path>'[, hive_partitioning = true, union_by_name = true]) as a table."""
    args: list[exp.Expression] = [exp.Literal.string(str(path.resolve() if not hive else path))]
    if hive:
        args += [exp.EQ(this=exp.column("hive_partitioning"), expression=exp.true()),
                 exp.EQ(this=exp.column("union_by_name"), expression=exp.true())]
    return exp.Table(this=exp.Anonymous(this="read_parquet", expressions=args))


def _bind(body: str, sources: dict[str, exp.Table]) -> exp.Expression | None:
    """The view's query with its placeholder replaced by the scan; None when that file does not exist."""
    tree = sqlglot.parse_one(body, read="duckdb")
    placeholders = [t for t in tree.find_all(exp.Table) if t.name.startswith("__")]
    if any(t.name not in sources for t in placeholders):
        return None
    for table in placeholders:
        table.replace(sources[table.name].copy())
    return tree
