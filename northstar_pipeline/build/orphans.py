"""Relations of nodes the project no longer has (a renamed or deleted metric or model).

A build drops them in its own transaction, so a rollback keeps them; with ``keep`` they are
listed and left. What northstar built is recorded in ``_northstar.relations``, so a node whose
whole schema went (a custom schema, an input level that is now empty) is still found. Sources
(views over Parquet), the scorecard, northstar's own bookkeeping and ``main`` are never touched, except
the partials kept for a removed metric's nights (engines/stored_partials.py), dropped with it.
"""

from __future__ import annotations

import duckdb
from sqlglot import exp

from northstar_pipeline.engines.stored_partials import drop_kept, kept_metrics
from northstar_pipeline.sql import insert_rows
from northstar_pipeline.types import Manifest

REGISTRY = ("_northstar", "relations")
_NEVER = frozenset({"main", "scorecard", "_northstar", "information_schema", "pg_catalog"})


def clean_orphans(con: duckdb.DuckDBPyConnection, manifest: Manifest, keep: bool = False) -> tuple[str, ...]:
    """Drop (or with ``keep`` only find) the orphans; record the project's relations; return the orphans."""
    current = {(node.schema, node.name) for node in manifest.nodes}
    managed = {schema for schema, _ in current} | _recorded_schemas(con)
    managed -= _NEVER | {source.source_name for source in manifest.project.sources}
    existing = con.execute(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE table_catalog = current_database()").fetchall()
    orphans = sorted((s, t, kind) for s, t, kind in existing if s in managed and (s, t) not in current)
    if not keep:
        for schema, name, kind in orphans:
            con.execute(exp.Drop(kind="VIEW" if kind == "VIEW" else "TABLE", exists=True,
                                 tables=[exp.table_(name, db=schema, quoted=True)]).sql("duckdb"))
        drop_kept(con, kept_metrics(con) - {node.name for node in manifest.nodes})  # their nights' partials
    _record(con, current | ({(s, t) for s, t, _ in orphans} if keep else set()))
    return tuple(f"{schema}.{name}" for schema, name, _ in orphans)


def _recorded_schemas(con: duckdb.DuckDBPyConnection) -> set[str]:
    # Looked up, not tried: a failed statement would abort the build's transaction.
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
                       "AND table_schema = ? AND table_name = ?", list(REGISTRY)).fetchall()[0][0]:
        return set()  # a database built before the registry: only the current schemas are looked at
    return {row[0] for row in con.execute(exp.select("relation_schema").distinct()
                                          .from_(_registry()).sql("duckdb")).fetchall()}


def _record(con: duckdb.DuckDBPyConnection, relations: set[tuple[str, str]]) -> None:
    con.execute(exp.Create(kind="SCHEMA", exists=True, this=exp.to_identifier(REGISTRY[0], quoted=True)).sql("duckdb"))
    con.execute(f"CREATE OR REPLACE TABLE {_registry().sql('duckdb')} (relation_schema VARCHAR, relation_name VARCHAR)")
    insert_rows(con, _registry(), ["VARCHAR", "VARCHAR"], sorted(relations))  # one statement, not one a row


def _registry() -> exp.Table:
    return exp.table_(REGISTRY[1], db=REGISTRY[0], quoted=True)
