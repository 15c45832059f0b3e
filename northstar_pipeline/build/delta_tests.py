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

* ``relationships`` (child -> parent): if the test passed on ``before`` of both, a stored child row fails
  only if its parent key was removed; when every key of the parent's delta ``old`` rows is still in the
  parent (checked over those few rows), the failing rows are exactly the batch's child rows without a
  parent. The recorded version is the pair (child, parent).

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
    version: str | None = delta.from_version
    if test.kind == "relationships":
        version = _parent_unchanged(con, compiled, deltas, version)
        if version is None:
            return None
    elif not (test.kind in ROW_LOCAL or (test.kind == "unique" and key == (test.column,))):
        return None
    _ensure(con)
    rows = con.execute(f"SELECT definition, version FROM {STATE} WHERE test = ?", [test.name]).fetchall()
    if not rows or rows[0] != (compiled.sql, version):
        return None
    return replace(compiled, query=_over_batch(compiled.query, node))


def _parent_unchanged(con: duckdb.DuckDBPyConnection, compiled, deltas: RunDeltas, child_version: str
                      ) -> str | None:
    """The (child, parent) version pair before this run when no parent key the stored children may use was
    removed this run; else None (the test runs in full)."""
    parent_name = compiled.depends_on[1] if len(compiled.depends_on) > 1 else None
    parent = deltas.nodes.get(parent_name or "")
    if parent is None or parent.materialized == "view":
        return None  # not built this run, or a view: its change is not known here (the test runs in full)
    delta = deltas.built.get(parent.name)
    if delta is None or delta.from_version is None:
        return None
    field = exp.column(str(compiled.test.argument_map["field"]), quoted=True)
    stored = exp.table_(parent.name, db=parent.schema, quoted=True)
    removed = (exp.select(exp.Count(this=exp.Star())).from_(delta.old.subquery("o"))
               .where(exp.not_(exp.Exists(this=exp.select("1").from_(exp.alias_(stored, "p", table=True)).where(
                   exp.column(field.name, table="p", quoted=True).eq(exp.column(field.name, table="o", quoted=True)))))))
    if con.execute(removed.sql("duckdb")).fetchall()[0][0]:
        return None
    return f"{child_version}|{delta.from_version}"


def remember(con: duckdb.DuckDBPyConnection, compiled, failures: int, deltas: RunDeltas | None) -> None:
    """After a test of a model: a pass with no failing row is recorded against the model's version."""
    test = compiled.test
    if deltas is None or test.model not in deltas.nodes or test.kind not in ROW_LOCAL | {"unique", "relationships"}:
        return
    _ensure(con)
    con.execute(f"DELETE FROM {STATE} WHERE test = ?", [test.name])
    version = stored_version(con, test.model)[0]
    if test.kind == "relationships" and version is not None:
        parent = stored_version(con, compiled.depends_on[1])[0] if len(compiled.depends_on) > 1 else None
        version = f"{version}|{parent}" if parent is not None else None
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
