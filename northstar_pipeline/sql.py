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

    Rows go in as parameters of one INSERT (never as SQL text). Not through pyarrow: converting Python
    lists to Arrow makes pyarrow import pandas when it is installed (0.2-0.4 s of every build).
    """
    table = exp.to_table(name)
    schema = exp.Schema(this=table, expressions=[
        exp.ColumnDef(this=exp.to_identifier(c, quoted=True), kind=exp.DataType.build(t, dialect="duckdb"))
        for c, t in columns])
    properties = exp.Properties(expressions=[exp.TemporaryProperty()]) if temp else None
    con.execute(exp.Create(kind="TABLE", replace=True, this=schema, properties=properties).sql("duckdb"))
    if rows:
        placeholders = ", ".join("?" for _ in columns)
        con.executemany(f"INSERT INTO {table.sql('duckdb')} VALUES ({placeholders})", [list(r) for r in rows])
