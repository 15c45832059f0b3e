"""Before a subset runs: the tables its selected nodes read but do not build must be there.

On a fresh database, selecting a metric whose upstream was never built would fail deep in
DuckDB with "table does not exist", which no retry fixes. This says what to run instead
(``--select +name``), or, with ``--defer --state DIR`` (as dbt's defer), copies each missing
upstream table from the earlier run's database into this one, inside the build's transaction,
so the database stays self-contained.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from sqlglot import exp

from northstar_pipeline.build.bi import BI_FILE
from northstar_pipeline.errors import UsageError
from northstar_pipeline.types import Manifest

DEFER_ALIAS = "_northstar_defer"


def state_database(state_dir: Path | str) -> Path:
    """The DuckDB file of an earlier run: the one ``*.duckdb`` in its target/ directory (the BI database,
    views only, is not a build's)."""
    found = sorted(p for p in Path(state_dir).glob("*.duckdb") if p.name != BI_FILE)
    if len(found) != 1:
        raise UsageError(f"--defer needs one DuckDB file in {state_dir}, found {len(found)}",
                         hint="point --state at the target/ directory of the run to defer to (it holds its .duckdb)")
    return found[0].resolve()


def missing_upstream(con: duckdb.DuckDBPyConnection, manifest: Manifest, selected: set[str]) -> list[tuple[str, str]]:
    """(selected node, upstream node) pairs where the upstream is not selected and not in the database."""
    existing = {(s, t) for s, t in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = current_database()"
    ).fetchall()}
    nodes = {node.name: node for node in manifest.nodes}
    pairs = []
    for node in manifest.nodes:
        if node.name not in selected:
            continue
        for dep in node.depends_on:
            up = nodes.get(dep)
            if up is not None and dep not in selected and (up.schema, up.name) not in existing:
                pairs.append((node.name, dep))
    return pairs


def prepare_upstream(con: duckdb.DuckDBPyConnection, manifest: Manifest, selected: set[str],
                     defer: Path | None = None) -> tuple[str, ...]:
    """Raise a UsageError naming what to run, or (``defer``) copy the missing tables; return those copied."""
    pairs = missing_upstream(con, manifest, selected)
    if not pairs:
        return ()
    if defer is None:
        node, dep = pairs[0]
        relation = manifest.node(dep).relation
        more = f" (and {len(pairs) - 1} more)" if len(pairs) > 1 else ""
        raise UsageError(f"'{node}' reads {relation}, which this database does not have: it was never built{more}",
                         path=manifest.node(node).relpath,
                         hint=f"build it with what it reads: northstar build --select +{node}; or read the tables "
                              "of an earlier run: --defer --state DIR")
    con.execute(exp.Attach(this=exp.alias_(exp.Literal.string(str(defer)), DEFER_ALIAS),
                           expressions=[exp.AttachOption(this=exp.var("READ_ONLY"))]).sql("duckdb"))
    try:
        deferred = {(s, t) for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = ?",
            [DEFER_ALIAS]).fetchall()}
        copied = []
        for dep in dict.fromkeys(dep for _, dep in pairs):
            up = manifest.node(dep)
            if (up.schema, up.name) not in deferred:  # looked up, not tried: a failure would abort the transaction
                raise UsageError(f"--defer: the earlier run's database {defer} has no {up.relation} either",
                                 hint=f"build it: northstar build --select +{up.name}")
            source = exp.table_(up.name, db=up.schema, catalog=DEFER_ALIAS, quoted=True)
            con.execute(exp.Create(kind="SCHEMA", exists=True,
                                   this=exp.to_identifier(up.schema, quoted=True)).sql("duckdb"))
            con.execute(exp.Create(kind="TABLE", replace=True, this=exp.table_(up.name, db=up.schema, quoted=True),
                                   expression=exp.select("*").from_(source)).sql("duckdb"))
            copied.append(up.relation)
    finally:
        # Detached at once: later steps look tables up by schema and name, and must see this database only.
        con.execute(exp.Detach(this=exp.to_identifier(DEFER_ALIAS)).sql("duckdb"))
    return tuple(copied)
