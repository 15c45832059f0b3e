"""Guards that keep a broken input from becoming the new truth.

- The DuckDB file's name is its catalog's name: one equal to a schema (a source, `staging`...)
  makes `raw.events` ambiguous, so it is refused at compile, naming the profiles.yml line.
- An empty source (a lake holding only an empty Parquet file) stops the build before anything
  is written: replacing every table by 0 rows is never what a nightly run means.
- A built table that loses more than `max_shrink` of its rows since the last good build stops the
  build before the commit (`build --allow-shrink` accepts it), so a broken export never wipes the tree.

Row counts are SQL run in the engine (sqlglot nodes, no user values in SQL text).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
from sqlglot import exp

from northstar_pipeline.errors import ExecutionError, ProjectError, SourceDataError
from northstar_pipeline.types import CompiledNode, Manifest, NodeKind, NodeResult

# Schemas every build creates besides the nodes' own, and DuckDB's own catalogs.
FIXED_SCHEMAS = frozenset({"seeds", "scorecard", "_northstar", "main"})
DUCKDB_CATALOGS = frozenset({"memory", "system", "temp"})


class ShrinkError(ExecutionError):
    """A built table lost more rows than the project allows."""


class EmptySourceError(SourceDataError):
    """A source the build reads has no rows."""


@dataclass(frozen=True, slots=True)
class Shrink:
    node: CompiledNode
    before: int
    after: int


def check_database_name(manifest: Manifest) -> None:
    """The database file's stem is the catalog name DuckDB gives it: it must not be a schema's name."""
    project = manifest.project
    catalog = project.target.database.stem.lower()
    schemas = {s.source_name.lower(): f"source '{s.source_name}'" for s in project.sources}
    schemas.update({n.schema.lower(): f"schema '{n.schema}' ({n.relpath.as_posix()})" for n in manifest.nodes
                    if n.schema.lower() not in schemas})
    schemas.update({name: f"schema '{name}'" for name in FIXED_SCHEMAS if name not in schemas})
    clash = schemas.get(catalog) or (f"DuckDB's catalog '{catalog}'" if catalog in DUCKDB_CATALOGS else None)
    if clash:
        raise ProjectError(
            f"the DuckDB file {project.relative(project.target.database).as_posix()} is named like {clash}: "
            f"DuckDB names the database '{catalog}', so '{catalog}.<table>' would be ambiguous",
            path=project.relative(project.profiles_path), line=project.target.line,
            hint=f"rename the file, e.g. path: {project.relative(project.target.database.with_stem(catalog + '_dev')).as_posix()}",
        )


def check_sources_not_empty(manifest: Manifest, names: set[str]) -> None:
    """Every source the plan reads has rows: one row is enough (LIMIT 1 stops at the first file that has
    one, where count(*) read every file's footer: a cost growing with the lake's files, every night)."""
    con = duckdb.connect(":memory:")
    try:
        for source in manifest.project.sources:
            if f"{source.source_name}.{source.table_name}" not in names:
                continue
            scan = exp.Anonymous(this="read_parquet", expressions=[
                exp.Literal.string(source.location),
                exp.EQ(this=exp.var("hive_partitioning"), expression=exp.Boolean(this=source.hive_partitioning))])
            if not con.execute(exp.select("1").from_(scan).limit(1).sql("duckdb")).fetchall():
                raise EmptySourceError(
                    f"source '{source.source_name}.{source.table_name}' has no rows at {source.location}",
                    path=source.path, line=source.line,
                    hint="the export that fills it may have failed; nothing was built, the last good tables "
                         "and scorecard are kept. Rerun when the data has landed",
                )
    except duckdb.Error as exc:
        raise SourceDataError(f"cannot count the rows of the sources: {str(exc).strip().splitlines()[0]}",
                              hint="check the sources' locations in models/sources.yml") from None
    finally:
        con.close()


def count_existing(con: duckdb.DuckDBPyConnection, nodes: tuple[CompiledNode, ...]) -> dict[str, int]:
    """Row counts of the stored tables of these nodes, as the last good build committed them (one query)."""
    stored = {(s, t) for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
    tables = [n for n in nodes if n.kind is not NodeKind.SEED and n.materialized != "view"
              and (n.schema, n.name) in stored]
    if not tables:
        return {}
    parts = [exp.select(exp.Literal.string(n.name).as_("node"), exp.Count(this=exp.Star()).as_("n"))
             .from_(exp.table_(n.name, db=n.schema, quoted=True)) for n in tables]
    query = parts[0]
    for part in parts[1:]:
        query = exp.union(query, part, distinct=False)
    return {name: count for name, count in con.execute(query.sql("duckdb")).fetchall()}


def check_shrink(before: dict[str, int], results: tuple[NodeResult, ...], nodes: tuple[CompiledNode, ...],
                 max_shrink: float) -> None:
    """Stop before the commit when a table lost more than max_shrink of its rows."""
    by_name = {n.name: n for n in nodes}
    shrunk = [Shrink(by_name[r.name], before[r.name], r.rows) for r in results
              if r.rows is not None and before.get(r.name) and r.rows < before[r.name] * (1 - max_shrink)]
    if not shrunk:
        return
    first = shrunk[0]
    others = f" (and {len(shrunk) - 1} more: {', '.join(s.node.name for s in shrunk[1:4])})" if len(shrunk) > 1 else ""
    error = ShrinkError(
        f"{first.node.relation} would fall from {first.before:,} to {first.after:,} rows "
        f"(-{1 - first.after / first.before:.0%}, more than max_shrink {max_shrink:.0%}){others}; nothing was committed",
        path=first.node.relpath, line=first.node.line,
        hint="if the source really shrank, rerun with 'northstar build --allow-shrink' (or raise max_shrink "
             "in profiles.yml); otherwise fix the export: the last good tables and scorecard are kept",
    )
    error.node = first.node.name
    raise error
