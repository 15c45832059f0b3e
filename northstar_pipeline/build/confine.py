"""What a template's SQL may read: refs, sources, CTEs in scope and a few harmless table functions.

A model or metric arrives in a pull request, so it must not read a file, list a folder or run a
query given as a string. Each table reference is checked in its own sqlglot scope: a CTE named
like a file path hides that path only where the CTE is visible; anywhere else the same name is a
file DuckDB would open (a replacement scan). The engine is confined as well
(project/connection.py); this check comes first, with the template's file and line.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.scope import traverse_scope

from northstar_pipeline.errors import CompileError
from northstar_pipeline.types import RenderedNode, RenderedQuery

# Table functions that compute rows and read nothing: documented in README "Threat model".
ALLOWED_TABLE_FUNCTIONS = ("generate_series", "range", "unnest")

_HINT_FUNCTION = ("read data through {{ source('...', '...') }} (declared in models/sources.yml) or "
                  "{{ ref('...') }}; the only table functions allowed are " + ", ".join(ALLOWED_TABLE_FUNCTIONS))


def check_reads(ast: exp.Query, node: RenderedNode, query: RenderedQuery, sources: set[tuple[str, str]],
                ref_schema: str) -> None:
    """Raise a CompileError at the first table that is not a ref, a source, a CTE in scope or an allowed function."""
    try:
        scopes = traverse_scope(ast)
    except OptimizeError as exc:
        raise CompileError(f"cannot follow the query's scopes: {exc}", path=node.relpath, line=1,
                           hint="simplify the query: every table must be a ref(), a source() or a CTE") from None
    checked: set[int] = set()
    for scope in scopes:
        ctes = {name.lower() for name in scope.cte_sources}
        for table in scope.tables:
            checked.add(id(table))
            _check_table(table, ctes, node, query, sources, ref_schema)
    for table in ast.find_all(exp.Table):
        if id(table) not in checked:  # a table somewhere no scope covers: refuse rather than guess
            _check_table(table, set(), node, query, sources, ref_schema)


def _check_table(table: exp.Table, ctes: set[str], node: RenderedNode, query: RenderedQuery,
                 sources: set[tuple[str, str]], ref_schema: str) -> None:
    target = table.this
    if isinstance(target, exp.Func):
        name = (target.name if isinstance(target, exp.Anonymous) else target.sql_name()).lower()
        if name in ALLOWED_TABLE_FUNCTIONS and not table.args.get("db"):
            return
        raise CompileError(f"table function {name}() is not allowed in a template: it can read files or run "
                           "other SQL", path=node.relpath, line=_line(table, query), hint=_HINT_FUNCTION)
    if not isinstance(target, exp.Identifier) or table.catalog:
        raise CompileError(f"table '{table.sql('duckdb')}' is not a ref() or source()", path=node.relpath,
                           line=_line(table, query), hint=_HINT_FUNCTION)
    if table.db == ref_schema:
        if table.name in {name for name, _ in node.refs} or table.name == node.name:  # ref() or {{ this }}
            return
        raise CompileError(f"table '{table.sql('duckdb')}' names ref()'s placeholder schema without calling ref()",
                           path=node.relpath, line=_line(table, query),
                           hint=f"write {{{{ ref('{table.name}') }}}}, so the dependency is known")
    if (table.db, table.name) in sources:
        return
    if not table.db and table.name.lower() in ctes:
        return
    if target.args.get("quoted") and any(c in table.name for c in "/.\\:"):
        raise CompileError(f"table '{table.sql('duckdb')}' is a file path: a template may not read files",
                           path=node.relpath, line=_line(table, query),
                           hint="declare the data in models/sources.yml and read it with {{ source('...', '...') }}")
    raise CompileError(
        f"table '{table.sql('duckdb')}' is not a ref(), a source() or a CTE visible here",
        path=node.relpath, line=_line(table, query),
        hint=f"write {{{{ ref('{table.name}') }}}} or {{{{ source('...', '{table.name}') }}}}; a CTE is visible only in "
             "its own WITH and the queries inside it")


def _line(table: exp.Table, query: RenderedQuery) -> int | None:
    for part in table.walk():
        line = part.meta.get("line") if isinstance(part, exp.Expression) else None
        if line:
            return query.template_line(line)
    return None
