"""Incremental models: add a batch to the stored table instead of rebuilding it.

A model with ``materialized='incremental'`` is built in full the first time, with
``--full-refresh``, and whenever what its stored rows were computed from changed: its full
query, anything upstream of it, or its columns. The fingerprint of that lineage is kept in
``_northstar.incremental_state`` in the same transaction as the rows, so a rolled-back build
leaves both as they were. Otherwise the ``is_incremental()`` query runs as a batch: with a
``unique_key``, stored rows with a key in the batch are deleted first (delete+insert; a NULL key
matches nothing, as in SQL), then the batch is appended.
"""

from __future__ import annotations

import hashlib

import duckdb
import sqlglot
from sqlglot import exp

from northstar_pipeline.engines.delta import (RunDeltas, batch_table, capture_delta, delete_replaced, record_version,
                                              stored_version)
from northstar_pipeline.types import CompiledNode, Manifest, NodeKind

STATE_SCHEMA, STATE_TABLE = "_northstar", "incremental_state"
BATCH = "_northstar_batch"


def lineage_fingerprints(manifest: Manifest) -> dict[str, str]:
    """Per node: a hash of its full query and, recursively, of everything upstream of it."""
    # A source counts by where it is read from: pointed at another lake, stored rows are not its rows.
    fingerprints: dict[str, str] = {f"{s.source_name}.{s.table_name}": f"{s.location}|{s.hive_partitioning}"
                                    for s in manifest.project.sources}
    for node in manifest.nodes:  # topological order: parents first
        parents = sorted(fingerprints.get(p, p) for p in node.depends_on)
        # A metric's SQL bakes in the as-of (its to-date rendering); its definition is its grain queries.
        own = f"{node.definition_hash}|{node.coverage_sql}" if node.kind is NodeKind.METRIC else node.sql
        fingerprints[node.name] = hashlib.sha256("\n".join([own, *parents]).encode()).hexdigest()[:16]
    return fingerprints


def build_incremental(con: duckdb.DuckDBPyConnection, node: CompiledNode, fingerprint: str, full_refresh: bool,
                      deltas: RunDeltas | None = None, force_full: str = "") -> str:
    """Build ``node`` in full or as a batch; return which ("full" or "incremental").

    ``force_full`` (a reason) rebuilds in full: what the batch reads was itself rebuilt in full this run.
    With ``deltas``, the run keeps the batch's delta (engines/delta.py) and the relation's new version.
    """
    relation = exp.table_(node.name, db=node.schema, quoted=True)
    stored = _stored_fingerprint(con, node)
    kind, columns = _stored_relation(con, node)
    previous = stored_version(con, node.name)[0] if deltas is not None else None
    delta = None
    same_columns = columns == [(c.name, c.type) for c in node.columns]
    if full_refresh or force_full or stored != fingerprint or not same_columns:
        if deltas is not None:  # run_results.json says why
            deltas.reasons[node.name] = ("--full-refresh" if full_refresh else force_full or
                                         ("first build" if stored is None else "its definition or an upstream "
                                          "definition changed" if stored != fingerprint else "its columns changed"))
        query = node.ast if node.ast is not None else sqlglot.parse_one(node.sql, read="duckdb")
        if kind == "VIEW":  # it was a view before: CREATE OR REPLACE TABLE does not replace a view
            con.execute(exp.Drop(kind="VIEW", tables=[relation.copy()]).sql("duckdb"))
        con.execute(exp.Create(kind="TABLE", replace=True, this=relation, expression=query.copy()).sql("duckdb"))
        mode = "full"
    else:
        batch = sqlglot.parse_one(node.incremental_sql, read="duckdb")
        con.execute(exp.Create(kind="TABLE", replace=True, this=exp.to_table(BATCH), expression=batch,
                               properties=exp.Properties(expressions=[exp.TemporaryProperty()])).sql("duckdb"))
        key = getattr(node.config, "unique_key", ())
        delta = capture_delta(con, node, BATCH, relation, key, previous) if deltas is not None else None
        if delta is not None and delta.rowids:
            delete_replaced(con, relation, delta)
        elif key:
            match = exp.and_(*(exp.column(k, table=node.name, quoted=True).eq(exp.column(k, table=BATCH, quoted=True))
                               for k in key))
            con.execute(f"DELETE FROM {relation.sql('duckdb')} USING {BATCH} WHERE {match.sql('duckdb')}")
        con.execute(f"INSERT INTO {relation.sql('duckdb')} BY NAME SELECT * FROM {BATCH}")
        if deltas is not None:  # kept for the run: data tests check the inserted rows (build/delta_tests.py)
            con.execute(exp.Drop(kind="TABLE", tables=[exp.to_table(batch_table(node))], exists=True).sql("duckdb"))
            con.execute(f"ALTER TABLE {BATCH} RENAME TO {exp.to_identifier(batch_table(node), quoted=True).sql('duckdb')}")
        else:
            con.execute(exp.Drop(kind="TABLE", tables=[exp.to_table(BATCH)]).sql("duckdb"))
        mode = "incremental"
    _record(con, node, fingerprint)
    if deltas is not None:
        record_version(con, node.name, fingerprint)
        deltas.record(node, delta if mode == "incremental" else None)
    return mode


def _stored_relation(con: duckdb.DuckDBPyConnection, node: CompiledNode) -> tuple[str | None, list[tuple[str, str]]]:
    """The stored relation's kind (BASE TABLE, VIEW or None) and its (column, type) list, in one query."""
    rows = con.execute("SELECT t.table_type, c.column_name, c.data_type FROM information_schema.tables AS t "
                       "JOIN information_schema.columns AS c USING (table_catalog, table_schema, table_name) "
                       "WHERE t.table_schema = ? AND t.table_name = ? ORDER BY c.ordinal_position",
                       [node.schema, node.name]).fetchall()
    return (rows[0][0] if rows else None), [(name, kind) for _, name, kind in rows]


def _stored_fingerprint(con: duckdb.DuckDBPyConnection, node: CompiledNode) -> str | None:
    _ensure_state(con)
    rows = con.execute(f"SELECT fingerprint FROM {STATE_SCHEMA}.{STATE_TABLE} WHERE relation = ?",
                       [node.relation]).fetchall()
    return rows[0][0] if rows else None


def _record(con: duckdb.DuckDBPyConnection, node: CompiledNode, fingerprint: str) -> None:
    con.execute(f"INSERT OR REPLACE INTO {STATE_SCHEMA}.{STATE_TABLE} VALUES (?, ?, current_timestamp)",
                [node.relation, fingerprint])


def _ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.{STATE_TABLE} "
                "(relation VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL, built_at TIMESTAMP)")

