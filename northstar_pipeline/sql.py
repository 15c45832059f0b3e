"""Small sqlglot node builders shared by the steps that assemble SQL (compile, score)."""

from __future__ import annotations

from sqlglot import exp


def union_all(parts: list[exp.Query]) -> exp.Query:
    """UNION ALL of the parts, in order (the parts are consumed, not copied)."""
    union = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False, copy=False)
    return union


def create_rows_table(con, name: str, columns: list[tuple[str, str]], rows: list[tuple], *, temp: bool = True) -> None:
    """A (temp) table of a few rows assembled in Python, with the given (column, DuckDB type) list.

    Rows go in as parameters of one INSERT (never as SQL text; ``insert_rows``: executemany ran one statement
    per row, 40-170 ms for the hundred rows of tree_validation, one statement 4 ms). Not through pyarrow:
    converting Python lists to Arrow makes pyarrow import pandas when it is installed (0.2-0.4 s of a build).
    """
    table = exp.to_table(name)
    schema = exp.Schema(this=table, expressions=[
        exp.ColumnDef(this=exp.to_identifier(c, quoted=True), kind=exp.DataType.build(t, dialect="duckdb"))
        for c, t in columns])
    properties = exp.Properties(expressions=[exp.TemporaryProperty()]) if temp else None
    con.execute(exp.Create(kind="TABLE", replace=True, this=schema, properties=properties).sql("duckdb"))
    insert_rows(con, table, [t for _, t in columns], rows)


def insert_rows(con, table: exp.Table | str, types: list[str], rows: list[tuple] | list[list]) -> None:
    """Append rows (Python values, ``types`` their columns' DuckDB types in order) in one statement.

    One list parameter per column, unnested side by side and cast to its column's type (the cast a
    prepared INSERT's parameter gets); the rows keep their order.
    """
    if not rows:
        return
    values = [exp.Cast(this=exp.Unnest(expressions=[exp.Parameter(this=exp.Literal.number(i + 1))]),
                       to=exp.DataType.build(t, dialect="duckdb")) for i, t in enumerate(types)]
    con.execute(exp.insert(exp.select(*values), exp.to_table(table) if isinstance(table, str) else table)
                .sql("duckdb"), [list(column) for column in zip(*rows)])


def existing_relations(con) -> set[tuple[str, str]]:
    """(schema, name) of every table and view the connection sees, in one catalog query (asking per relation
    cost 1.5-2 ms each, for every metric of the tree)."""
    return {(schema, name) for schema, name in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables").fetchall()}


PARTIALS_KEPT = "_ns_partials_kept"  # temp (metric, table_name): the partials a full build kept for its cuts


def reading_table(query: exp.Expression, placeholder: str, table: str) -> exp.Expression:
    """``query`` (copied) with every reference to the table ``placeholder`` replaced by ``table``."""

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and not node.db and node.name == placeholder:
            return exp.table_(exp.to_identifier(table, quoted=True), alias=node.alias or None)
        return node

    return query.transform(swap)
