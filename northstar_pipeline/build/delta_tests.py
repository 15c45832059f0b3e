"""Data tests of an incremental model that check only the rows a night inserted, when that is a proof.

Why it is one: the model's table after the batch is (before - deleted) + batch, where ``deleted`` is
every stored row whose unique_key is in the batch. If the same test (same compiled query) found no
failing row in ``before`` (recorded in ``_northstar.test_state`` with the model's version, in the
build's transaction), then:

* ``not_null`` and ``accepted_values`` judge each row alone: the rows of ``before`` still there pass,
  so the failing rows of the table are exactly the batch's failing rows;
* ``unique`` on the unique_key: for a key in the batch every stored row with it was deleted, so the
  table's rows with that key are the batch's; keys not in the batch are ``before``'s, unique. The
  duplicated keys of the table are exactly the batch's (NULL keys are ignored by both).

So the failure count, the sample and the stored failures are the same as a full run's. Any other
case (another test kind, a ``where``, a model rebuilt in full, a changed test, failures last time,
a version the state does not know) runs the test in full.
"""

from __future__ import annotations

from dataclasses import replace

import duckdb
from sqlglot import exp

from northstar_pipeline.engines.delta import RunDeltas, batch_table, stored_version
from northstar_pipeline.types import CompiledNode

STATE = "_northstar.test_state"
ROW_LOCAL = {"not_null", "accepted_values"}


def narrowed(con: duckdb.DuckDBPyConnection, compiled, deltas: RunDeltas | None):  # CompiledTest -> CompiledTest | None
    """The test over the batch's rows only, when the module docstring's proof holds; else None."""
    test = compiled.test
    node = deltas.nodes.get(test.model or "") if deltas is not None else None
    delta = deltas.built.get(node.name) if node is not None else None
    if node is None or delta is None or delta.from_version is None or test.config.where:
        return None
    key = tuple(getattr(node.config, "unique_key", ()))
    if not (test.kind in ROW_LOCAL or (test.kind == "unique" and key == (test.column,))):
        return None
    _ensure(con)
    rows = con.execute(f"SELECT definition, version FROM {STATE} WHERE test = ?", [test.name]).fetchall()
    if not rows or rows[0] != (compiled.sql, delta.from_version):
        return None
    return replace(compiled, query=_over_batch(compiled.query, node))


def remember(con: duckdb.DuckDBPyConnection, compiled, failures: int, deltas: RunDeltas | None) -> None:
    """After a test of a model: a pass with no failing row is recorded against the model's version."""
    test = compiled.test
    if deltas is None or test.model not in deltas.nodes or test.kind not in ROW_LOCAL | {"unique"}:
        return
    _ensure(con)
    con.execute(f"DELETE FROM {STATE} WHERE test = ?", [test.name])
    version = stored_version(con, test.model)[0]
    if failures == 0 and version is not None:
        con.execute(f"INSERT INTO {STATE} VALUES (?, ?, ?)", [test.name, compiled.sql, version])


def _over_batch(query: exp.Query, node: CompiledNode) -> exp.Query:
    def swap(table: exp.Expression) -> exp.Expression:
        if isinstance(table, exp.Table) and table.name == node.name and table.db == node.schema:
            return exp.alias_(exp.to_table(batch_table(node)), table.alias or node.name, table=True)
        return table

    return query.copy().transform(swap)


def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS _northstar")
    con.execute(f"CREATE TABLE IF NOT EXISTS {STATE} (test VARCHAR PRIMARY KEY, definition VARCHAR, version VARCHAR)")
