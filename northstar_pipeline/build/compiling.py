"""Compile rendered SQL with sqlglot: parse, resolve refs, qualify, check contracts.

Import as ``compiling`` (not ``compile``) so it does not shadow the builtin.
Upstream schemas come from the engine itself: each compiled query is described
by DuckDB over empty "shadow" tables with the upstream columns, so a model's
schema is exactly what its projection will produce.
"""

from __future__ import annotations

import csv
import graphlib
import hashlib
from collections.abc import Iterable
from dataclasses import replace
from difflib import get_close_matches

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, TokenError
from sqlglot.optimizer.qualify import qualify

from northstar_pipeline.build.cache import CompileCache, cache_key
from northstar_pipeline.build.confine import check_reads
from northstar_pipeline.build.dimensions import KEEP_TABLE, KEEP_TABLE_COLUMNS, compile_segments, load_dimensions
from northstar_pipeline.build.segment_cut import compile_segment_cut
from northstar_pipeline.build.render import REF_SCHEMA
from northstar_pipeline.engines.transpile import transpile_sql
from northstar_pipeline.errors import CompileError, UsageError
from northstar_pipeline.project.connection import connect_confined
from northstar_pipeline.project.sources import describe_sources
from northstar_pipeline.project.to_date import DESCRIBE_AS_OF, PREFIX, bind_to_date, is_window_placeholder
from northstar_pipeline.project.values import read_text
from northstar_pipeline.sql import union_all
from northstar_pipeline.tree.levels import metric_level
from northstar_pipeline.types import (
    Column,
    CompiledNode,
    DimensionDef,
    Manifest,
    MetricConfig,
    MetricKind,
    ModelConfig,
    NodeKind,
    Project,
    RenderedNode,
    RenderedQuery,
    Seed,
)

METRIC_REQUIRED = ("period_start", "value")
METRIC_OPTIONAL = ("numerator", "denominator")
METRIC_TABLE_COLUMNS = (Column("grain", "VARCHAR"), Column("period_start", "DATE"), Column("value", "DOUBLE"),
                        Column("numerator", "DOUBLE"), Column("denominator", "DOUBLE"), Column("is_to_date", "BOOLEAN"))
_DATE_TYPES = {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}
_NUMERIC_PREFIXES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                     "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


def compile_project(project: Project, rendered: Iterable[RenderedNode], cache: CompileCache | None = None,
                    source_columns: dict[tuple[str, str], tuple[Column, ...]] | None = None) -> Manifest:
    rendered = tuple(rendered)
    by_name = {node.name: node for node in rendered}
    order = _topological_order(rendered, {s.name for s in project.seeds})
    schemas = _node_schemas(rendered)
    shadow = Shadow()
    dimensions = load_dimensions(project)
    shadow.add("main", KEEP_TABLE, KEEP_TABLE_COLUMNS)  # the guard's kept values, filled by the build
    try:
        compiled: list[CompiledNode] = []
        source_columns = source_columns if source_columns is not None else describe_sources(project)
        for source in project.sources:
            shadow.add(source.source_name, source.table_name, source_columns[(source.source_name, source.table_name)])
        for seed in project.seeds:
            columns = _describe_seed(seed, project)
            shadow.add("seeds", seed.name, columns)
            compiled.append(_seed_node(seed, columns, project))
        for name in order:
            if name not in by_name:
                continue  # seeds are already in
            node = _compile_cached(by_name[name], schemas, shadow, project, cache, dimensions)
            shadow.add(node.schema, node.name, node.columns)
            compiled.append(node)
    finally:
        shadow.close()
    return Manifest(project=project, nodes=tuple(compiled), dimensions=dimensions)


class Shadow:
    """Upstream schemas, and empty tables with those columns in an in-memory DuckDB to describe queries over.

    Tables are created only when a query that reads them must be described, so a warm
    compile that reuses every node never starts DuckDB work at all.
    """

    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, dict[str, str]]] = {}
        self._columns: dict[tuple[str, str], tuple[Column, ...]] = {}
        self._created: set[tuple[str, str]] = set()
        self._con: duckdb.DuckDBPyConnection | None = None

    def add(self, schema: str, name: str, columns: tuple[Column, ...]) -> None:
        self.schemas.setdefault(schema, {})[name] = {c.name: c.type for c in columns}
        self._columns[(schema, name)] = columns

    def columns(self, schema: str, name: str) -> tuple[Column, ...] | None:
        return self._columns.get((schema, name))

    def describe(self, sql: str, reads: Iterable[tuple[str, str]], node: RenderedNode) -> tuple[Column, ...]:
        if self._con is None:
            self._con = connect_confined()  # shadow tables only: no file is readable
        for table in reads:
            if table in self._columns and table not in self._created:
                _create_shadow_table(self._con, *table, self._columns[table])
                self._created.add(table)
        return _describe(self._con, sql, node)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


def _compile_cached(node: RenderedNode, schemas: dict[str, str], shadow: Shadow, project: Project,
                    cache: CompileCache | None, dimensions: tuple[DimensionDef, ...] = ()) -> CompiledNode:
    reads = _reads(node, schemas)
    key = cache_key("compile", node.name, node.kind, node.relpath,
                    [(q.grain, q.sql, q.to_date, q.incremental, q.coverage) for q in node.queries],
                    repr(node.config), node.uses_period, schemas[node.name], [(t, shadow.columns(*t)) for t in reads],
                    [(d.name, d.expression, d.max_segments) for d in dimensions])
    hit = cache.get(key) if cache else None
    if hit is not None:
        return replace(hit, path=node.path)
    compiled = compile_node(node, schemas, shadow, project, dimensions)
    if cache is not None:
        cache.note_miss("compile", node.name)
        cache.put(key, replace(compiled, ast=None))
    return compiled


def _reads(node: RenderedNode, schemas: dict[str, str]) -> list[tuple[str, str]]:
    """(schema, table) of everything the node reads: its refs and sources."""
    return sorted({(schemas.get(r, "seeds"), r) for r, _ in node.refs} | {(s, t) for s, t, _ in node.sources})


def compile_node(node: RenderedNode, schemas: dict[str, str], shadow: Shadow, project: Project,
                 dimensions: tuple[DimensionDef, ...] = ()) -> CompiledNode:
    sources = {(s.source_name, s.table_name) for s in project.sources}
    template_lines = node.path.read_text().splitlines() if node.path.is_file() else []
    selects: list[tuple[RenderedQuery, exp.Query]] = []
    batch: tuple[RenderedQuery, exp.Query] | None = None
    coverage_sql = ""
    for query in node.queries:
        ast = _parse(node, query, template_lines)
        check_reads(ast, node, query, sources, REF_SCHEMA)  # no files, folders or SQL strings: build/confine.py
        ast = _resolve_tables(ast, node, query, schemas, sources, template_lines)
        if not query.to_date:
            _check_no_window_placeholder(ast, node, query)
        if query.incremental:
            batch = (query, ast)  # qualified below, once its own table's columns are known
            continue
        _check_no_self_read(ast, node, query, schemas)
        if query.coverage:  # differs from a grain's rendering only in what period() returns, as to-date does
            coverage_sql = ast.sql("duckdb", pretty=True) if node.uses_period else ""
            continue
        if not query.to_date:  # a to-date rendering differs from its grain's only in what period() returns
            _qualify(ast, node, query, shadow.schemas, template_lines)
            if node.kind is NodeKind.METRIC:
                _check_metric_projection(ast, node, query)
        selects.append((query, ast))
    to_date = any(q.to_date for q in node.queries)  # its cuts hold the window's placeholders: bound to describe
    describe_cut = lambda sql: shadow.describe(_bound_to_describe(sql) if to_date else sql,  # noqa: E731
                                               [*_reads(node, schemas), ("main", KEEP_TABLE)], node)
    segment_cut = compile_segment_cut(  # the cuts in one scan (None: its renderings do not allow it)
        node, selects, dimensions, describe_cut) if node.kind is NodeKind.METRIC else None
    segment_sql = compile_segments(  # before the union consumes the ASTs; the one-scan cut described them already
        node, selects, shadow.schemas, dimensions, None if segment_cut else describe_cut)

    if node.kind is NodeKind.METRIC:
        grain_sql = tuple((q.grain, ast.sql("duckdb", pretty=True)) for q, ast in selects if not q.to_date)
        final = _metric_union(selects)
    else:
        grain_sql = ()
        final = selects[0][1]
    sql = final.sql("duckdb", pretty=True)
    if node.kind is NodeKind.METRIC:
        # The union's columns are fixed by construction; the contract's types are checked per grain.
        for _, text in grain_sql:
            _check_metric_types(shadow.describe(text, _reads(node, schemas), node), node)
        columns = METRIC_TABLE_COLUMNS
    else:
        columns = shadow.describe(sql, _reads(node, schemas), node)
        _check_unique_columns(columns, node, selects[0])
    incremental_sql = _compile_batch(batch, node, schemas, shadow, columns, template_lines) if batch else ""
    return CompiledNode(
        name=node.name,
        kind=node.kind,
        path=node.path,
        relpath=node.relpath,
        schema=schemas[node.name],
        depends_on=tuple(dict.fromkeys([*(r for r, _ in node.refs), *(f"{s}.{t}" for s, t, _ in node.sources)])),
        sql=sql,
        columns=columns,
        config=node.config,
        # Hash the definition, not the as-of dates baked into the to-date rendering.
        definition_hash=hashlib.sha256(
            "\n".join(s for _, s in grain_sql).encode() if grain_sql else (sql + incremental_sql).encode()).hexdigest()[:16],
        line=_select_line(selects[0][1], node.queries[0]) or 1,
        is_ratio="denominator" in {n.lower() for n in selects[0][1].named_selects},
        grain_sql=grain_sql,  # type: ignore[arg-type]
        incremental_sql=incremental_sql,
        coverage_sql=coverage_sql,
        uses_period=node.uses_period,
        segment_sql=segment_sql,
        segment_cut=segment_cut,
        ast=final,
    )


def _bound_to_describe(sql: str) -> str:
    """A cut's SQL with its to-date placeholders bound to some window: its columns do not depend on which."""
    return bind_to_date(sqlglot.parse_one(sql, read="duckdb"), DESCRIBE_AS_OF).sql("duckdb")


def _check_no_window_placeholder(ast: exp.Query, node: RenderedNode, query: RenderedQuery) -> None:
    """$to_date_... placeholders are the build's own (the to-date window): a template may not write them."""
    for placeholder in ast.find_all(exp.Placeholder):
        if is_window_placeholder(placeholder):
            raise CompileError(f"${placeholder.name} is reserved for the to-date window the build binds",
                               path=node.relpath, line=_select_line(ast, query) or 1,
                               hint=f"rename the parameter (no ${PREFIX}... prefix), or compare with "
                                    "{{ period('ts') }}, which renders the to-date window itself")


def _check_unique_columns(columns: tuple[Column, ...], node: RenderedNode,
                          select: tuple[RenderedQuery, exp.Query]) -> None:
    """A model's columns become a table's: DuckDB names are case-insensitive and must be unique."""
    seen: set[str] = set()
    for column in columns:
        if column.name.lower() in seen:
            query, ast = select
            raise CompileError(
                f"column '{column.name}' is selected twice",
                path=node.relpath, line=_repeat_line(ast, column.name.lower(), query),
                hint=f"drop one, or give it another name: ... AS {column.name}_2",
            )
        seen.add(column.name.lower())


def _repeat_line(ast: exp.Query, name: str, query: RenderedQuery) -> int | None:
    """The line of the second projection named `name` (the repeat), else the select's."""
    select = ast if isinstance(ast, exp.Select) else next(ast.find_all(exp.Select), None)
    same = [p for p in (select.expressions if select else []) if p.alias_or_name.lower() == name]
    for identifier in (same[1].find_all(exp.Identifier) if len(same) > 1 else ()):
        if identifier.meta.get("line"):
            return query.template_line(identifier.meta["line"])
    return _select_line(ast, query)


def _check_no_self_read(ast: exp.Query, node: RenderedNode, query: RenderedQuery, schemas: dict[str, str]) -> None:
    for table in ast.find_all(exp.Table):
        if table.name == node.name and table.db == schemas[node.name]:
            line = table.this.meta.get("line") if isinstance(table.this, exp.Identifier) else None
            raise CompileError(
                "{{ this }} is read outside an incremental model's is_incremental() branch",
                path=node.relpath, line=query.template_line(line) if line else None,
                hint="read {{ this }} only inside {% if is_incremental() %} ... {% endif %} of a "
                     "materialized='incremental' model: a full build has no table to read yet")


def _compile_batch(batch: tuple[RenderedQuery, exp.Query], node: RenderedNode, schemas: dict[str, str],
                   shadow: Shadow, columns: tuple[Column, ...], template_lines: list[str]) -> str:
    """The is_incremental() query, qualified against the model's own table; it must return the same columns."""
    query, ast = batch
    missing = [k for k in getattr(node.config, "unique_key", ()) if k not in {c.name for c in columns}]
    if missing:
        raise CompileError(f"unique_key {', '.join(missing)} is not a column of the model",
                           path=node.relpath,
                           line=next((i for i, text in enumerate(template_lines, 1) if "unique_key" in text), 1),
                           hint=f"the model's columns are: {', '.join(c.name for c in columns)}")
    shadow.add(schemas[node.name], node.name, columns)
    _qualify(ast, node, query, shadow.schemas, template_lines)
    sql = ast.sql("duckdb", pretty=True)
    got = shadow.describe(sql, [*_reads(node, schemas), (schemas[node.name], node.name)], node)
    if [(c.name, c.type) for c in got] != [(c.name, c.type) for c in columns]:
        raise CompileError(
            "the is_incremental() query returns other columns than the full query: "
            f"{', '.join(f'{c.name} {c.type}' for c in got)} against {', '.join(f'{c.name} {c.type}' for c in columns)}",
            path=node.relpath, line=_select_line(ast, query) or 1,
            hint="both branches must select the same columns, in the same order, with the same types")
    return sql


def transpile(sql: str, dialect: str, node: CompiledNode | None = None) -> str:
    """DuckDB SQL in ``dialect`` through the AST transforms of engines/transpile.py (a CompileError if inexpressible)."""
    return transpile_sql(sql, dialect, node)


# -- graph -----------------------------------------------------------------------------------------


def _topological_order(nodes: tuple[RenderedNode, ...], seeds: set[str]) -> list[str]:
    graph = {node.name: {r for r, _ in node.refs} for node in nodes}
    for seed in seeds:
        graph.setdefault(seed, set())
    sorter = graphlib.TopologicalSorter(graph)
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]  # [a, b, ..., a]
        by_name = {node.name: node for node in nodes}
        first = by_name[cycle[1]] if cycle[1] in by_name else by_name[cycle[0]]
        line = next((ln for r, ln in first.refs if r in cycle), None)
        raise CompileError(
            f"dependency cycle: {' -> '.join(reversed(cycle))}",
            path=first.relpath,
            line=line,
            hint="a model or metric cannot depend on itself through ref(); break one of these refs",
        ) from None


def _node_schemas(nodes: tuple[RenderedNode, ...]) -> dict[str, str]:
    """Schemas mirror the tree: staging, inputs_l2, inputs_l1, north_star, counter."""
    metrics = {n.name: n for n in nodes if n.kind is NodeKind.METRIC}
    schemas: dict[str, str] = {}
    for node in nodes:
        if isinstance(node.config, ModelConfig):
            schemas[node.name] = node.config.schema
        else:
            schemas[node.name] = _metric_schema(node, metrics)
    return schemas


def _metric_schema(node: RenderedNode, metrics: dict) -> str:
    config = node.config
    assert isinstance(config, MetricConfig)
    if config.kind is MetricKind.NORTH_STAR:
        return "north_star"
    if config.kind is MetricKind.OUTCOME:
        return "outcome"
    if config.kind is MetricKind.COUNTER:
        if config.guard not in metrics:
            close = get_close_matches(str(config.guard), sorted(metrics), n=1)
            raise CompileError(f"counter-metric guards '{config.guard}', which is not a metric", path=node.relpath,
                               line=config.line, hint=f"did you mean '{close[0]}'?" if close else None)
        return "counter"
    return f"inputs_l{metric_level(node, metrics)}"


# -- per query -------------------------------------------------------------------------------------


def _parse(node: RenderedNode, query: RenderedQuery, template_lines: list[str]) -> exp.Query:
    try:
        statements = [s for s in sqlglot.parse(query.sql, read="duckdb") if s is not None]
    except ParseError as exc:
        error = exc.errors[0] if exc.errors else {}
        line, col = error.get("line"), error.get("col")
        raise CompileError(
            f"SQL syntax error: {error.get('description', exc)}",
            path=node.relpath,
            line=query.template_line(line) if line else None,
            col=_template_col(query, line, col - len(error.get("highlight") or "x") + 1 if col else None, template_lines),
            hint=f"near '{error.get('highlight', '')}'" if error.get("highlight") else None,
        ) from None
    except TokenError:
        line = _token_error_line(query.sql)
        raise CompileError(
            "SQL syntax error: a string or quoted identifier is not closed",
            path=node.relpath,
            line=query.template_line(line) if line else None,
            hint="close the ' of a string or the \" of a quoted identifier on this line",
        ) from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise CompileError(
            f"expected exactly one SELECT, found {len(statements)} statement(s)",
            path=node.relpath,
            line=1,
            hint="a model or metric is one query; DDL and DML are written by the build",
        )
    return statements[0]


def _token_error_line(sql: str) -> int | None:
    """The line the tokenizer fails from: the first line after the longest prefix that tokenizes."""
    tokenizer = sqlglot.Dialect.get_or_raise("duckdb").tokenizer_class()
    lines = sql.splitlines(keepends=True)
    for count in range(len(lines) - 1, -1, -1):
        try:
            tokenizer.tokenize("".join(lines[:count]))
        except TokenError:
            continue
        return count + 1
    return None


def _resolve_tables(ast: exp.Query, node: RenderedNode, query: RenderedQuery, schemas: dict[str, str],
                    sources: set[tuple[str, str]], template_lines: list[str]) -> exp.Query:
    ctes = {cte.alias_or_name for cte in ast.find_all(exp.CTE)}
    for table in list(ast.find_all(exp.Table)):
        if not table.name:
            continue  # table functions such as range(); columns come from their own aliases
        if table.db == REF_SCHEMA:  # a seed has no rendered node: its schema is `seeds`
            table.set("db", exp.to_identifier(schemas.get(table.name, "seeds"), quoted=True))
        elif (table.db, table.name) in sources or (not table.db and table.name in ctes):
            continue
        else:
            line = table.this.meta.get("line") if isinstance(table.this, exp.Identifier) else None
            raise CompileError(
                f"table '{table.sql('duckdb')}' is not a ref() or source()",
                path=node.relpath,
                line=query.template_line(line) if line else None,
                hint=f"write {{{{ ref('{table.name}') }}}} or {{{{ source('...', '{table.name}') }}}} so lineage and schemas are known",
            )
    return ast


def _qualify(ast: exp.Query, node: RenderedNode, query: RenderedQuery, upstream: dict, template_lines: list[str]) -> None:
    # Only the tables this query reads: sqlglot normalises the whole schema it is given on every call.
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for table in ast.find_all(exp.Table):
        columns = upstream.get(table.db, {}).get(table.name)
        if columns is not None:
            schema.setdefault(table.db, {})[table.name] = columns
    try:
        qualify(ast.copy(), schema=schema, dialect="duckdb", validate_qualify_columns=True, quote_identifiers=False)
    except OptimizeError as exc:
        column, candidates = _unknown_column(ast, upstream)
        if column is None:
            raise CompileError(f"cannot resolve columns: {exc}", path=node.relpath, line=1) from None
        line = column.this.meta.get("line")
        close = get_close_matches(column.name, sorted(candidates), n=1)
        raise CompileError(
            f"unknown column '{column.sql('duckdb')}'",
            path=node.relpath,
            line=query.template_line(line) if line else None,
            col=_template_col(query, line, _start_col(column.this.meta), template_lines),
            hint=f"did you mean '{close[0]}'?" if close else "check the upstream model's columns in target/manifest.json",
        ) from None


def _unknown_column(ast: exp.Query, upstream: dict) -> tuple[exp.Column | None, set[str]]:
    """The first column no table in the query provides (and no alias in it defines)."""
    candidates: set[str] = set()
    for table in ast.find_all(exp.Table):
        candidates |= set(upstream.get(table.db, {}).get(table.name, {}))
    defined = {a.alias for a in ast.find_all(exp.Alias)} | {c.alias for c in ast.find_all(exp.TableAlias) for c in [c]}
    for alias in ast.find_all(exp.TableAlias):
        defined |= {col.name for col in alias.columns}
    known = {c.lower() for c in candidates | defined}
    for column in ast.find_all(exp.Column):
        if column.name and column.name.lower() not in known:
            return column, candidates
    return None, candidates


def _check_metric_projection(ast: exp.Query, node: RenderedNode, query: RenderedQuery) -> None:
    names = [n.lower() for n in ast.named_selects]
    missing = [c for c in METRIC_REQUIRED if c not in names]
    extra = [c for c in names if c not in METRIC_REQUIRED + METRIC_OPTIONAL]
    problem = None
    if missing:
        problem = f"metric query must return {', '.join(METRIC_REQUIRED)}; missing {', '.join(missing)}"
        if extra:
            problem += f" (it returns {', '.join(extra)} instead)"
    elif extra:
        problem = f"metric query returns unexpected column(s) {', '.join(extra)}"
    elif ("numerator" in names) != ("denominator" in names):
        problem = "a ratio metric returns both numerator and denominator, or neither"
    elif len(set(names)) != len(names):
        problem = "metric query returns a column twice"
    if problem:
        raise CompileError(
            problem,
            path=node.relpath,
            line=_projection_line(ast, extra[0], query) if extra else _select_line(ast, query),
            hint="select {{ period('ts') }} AS period_start, <expr> AS value [, numerator, denominator] ... GROUP BY 1",
        )


def _check_metric_types(columns: tuple[Column, ...], node: RenderedNode) -> None:
    types = {c.name.lower(): c.type.upper() for c in columns}
    if types.get("period_start") not in _DATE_TYPES:
        raise CompileError(f"period_start must be a DATE, got {types.get('period_start')}", path=node.relpath,
                           hint="use {{ period('your_timestamp') }} AS period_start")
    for name in ("value", "numerator", "denominator"):
        if name in types and not types[name].startswith(_NUMERIC_PREFIXES) and types[name] != '"NULL"':
            raise CompileError(f"{name} must be numeric, got {types[name]}", path=node.relpath,
                               hint=f"cast it: CAST(... AS DOUBLE) AS {name}")


def _metric_union(selects: list[tuple[RenderedQuery, exp.Query]]) -> exp.Query:
    """One table per metric keyed by (grain, is_to_date, period_start), every grain computed from its own query."""
    parts = []
    for query, ast in selects:
        grain = query.grain
        names = {n.lower() for n in ast.named_selects}
        projection = [
            exp.alias_(exp.Literal.string(grain.value if grain else ""), "grain"),
            exp.alias_(exp.cast(exp.column("period_start", "m"), exp.DataType.Type.DATE), "period_start"),
            exp.alias_(exp.cast(exp.column("value", "m"), exp.DataType.Type.DOUBLE), "value"),
        ]
        for name in METRIC_OPTIONAL:
            part = exp.column(name, "m") if name in names else exp.null()
            projection.append(exp.alias_(exp.cast(part, exp.DataType.Type.DOUBLE), name))
        projection.append(exp.alias_(exp.Boolean(this=query.to_date), "is_to_date"))
        select = exp.select(*projection).from_(ast.subquery("m", copy=False), copy=False)
        if query.to_date:  # rows outside the elapsed span were grouped under NULL
            select = select.where(exp.column("period_start", "m").is_(exp.null()).not_(), copy=False)
        parts.append(select)
    return union_all(parts)


def _describe(shadow: duckdb.DuckDBPyConnection, sql: str, node: RenderedNode) -> tuple[Column, ...]:
    try:
        relation = shadow.sql(sql)
    except duckdb.Error as exc:
        raise CompileError(f"DuckDB rejects the query: {_first_line(exc)}", path=node.relpath,
                           hint=f"see the compiled SQL in target/compiled/duckdb/{node.relpath.as_posix()}") from None
    return tuple(Column(n, str(t)) for n, t in zip(relation.columns, relation.types, strict=True))


def _create_shadow_table(shadow: duckdb.DuckDBPyConnection, schema: str, name: str,
                        columns: tuple[Column, ...]) -> None:
    shadow.execute(exp.Create(kind="SCHEMA", this=exp.to_identifier(schema, quoted=True), exists=True).sql("duckdb"))
    table = exp.Schema(
        this=exp.table_(name, db=schema, quoted=True),
        expressions=[
            exp.ColumnDef(this=exp.to_identifier(c.name, quoted=True), kind=exp.DataType.build(c.type, dialect="duckdb"))
            for c in columns
        ],
    )
    shadow.execute(exp.Create(kind="TABLE", this=table, replace=True).sql("duckdb"))


def _check_seed_rows(seed: Seed, project: Project) -> None:
    """Every row has the header's number of fields; DuckDB's sniffer would otherwise guess a shape silently."""
    rel = project.relative(seed.path)
    reader = csv.reader(read_text(seed.path, rel).splitlines())
    header = next(reader, None)
    if not header:
        raise CompileError("seed is empty: it needs a header row", path=rel, line=1,
                           hint="write the column names on the first line, e.g. metric,grain,period_start,target")
    for row in reader:
        if row and len(row) != len(header):
            raise CompileError(f"row has {len(row)} fields, the header has {len(header)} ({', '.join(header)})",
                               path=rel, line=reader.line_num,
                               hint="give every row one value per header column (quote values that contain commas)")


def check_dialect(dialect: str) -> None:
    """An unknown --dialect is a command-line error, found before any work."""
    try:
        sqlglot.Dialect.get_or_raise(dialect)
    except ValueError as exc:
        raise UsageError(f"--dialect: {exc}", hint="e.g. --dialect spark, snowflake, bigquery, postgres, trino") from None


def _describe_seed(seed: Seed, project: Project) -> tuple[Column, ...]:
    _check_seed_rows(seed, project)
    con = connect_confined(files=[seed.path])
    try:
        relation = con.read_csv(str(seed.path), header=True)
        return tuple(Column(n, str(t)) for n, t in zip(relation.columns, relation.types, strict=True))
    except duckdb.Error as exc:
        raise CompileError(f"cannot read seed: {_first_line(exc)}", path=project.relative(seed.path), line=1) from None
    finally:
        con.close()


def _seed_node(seed: Seed, columns: tuple[Column, ...], project: Project) -> CompiledNode:
    literal = exp.Literal.string(str(seed.path))
    ast = exp.select("*").from_(exp.Anonymous(this="read_csv", expressions=[literal, exp.EQ(this=exp.var("header"), expression=exp.true())]))
    sql = ast.sql("duckdb", pretty=True)
    return CompiledNode(
        name=seed.name, kind=NodeKind.SEED, path=seed.path, relpath=project.relative(seed.path), schema="seeds",
        depends_on=(), sql=sql, columns=columns, config=None,
        definition_hash=hashlib.sha256(seed.path.read_bytes()).hexdigest()[:16], ast=ast,
    )


def _projection_line(ast: exp.Query, name: str, query: RenderedQuery) -> int | None:
    select = ast if isinstance(ast, exp.Select) else next(ast.find_all(exp.Select), None)
    for projection in select.expressions if select else []:
        if projection.alias_or_name.lower() == name:
            for identifier in projection.find_all(exp.Identifier):
                if identifier.meta.get("line"):
                    return query.template_line(identifier.meta["line"])
    return _select_line(ast, query)


def _select_line(ast: exp.Query, query: RenderedQuery) -> int | None:
    for identifier in ast.find_all(exp.Identifier):
        line = identifier.meta.get("line")
        if line:
            return query.template_line(line)
    return None


def _start_col(meta: dict) -> int | None:
    """sqlglot's token 'col' is where the token ends; people point at where it starts."""
    if not meta.get("col"):
        return None
    return meta["col"] - (meta.get("end", 0) - meta.get("start", 0))


def _template_col(query: RenderedQuery, line: int | None, col: int | None, template_lines: list[str]) -> int | None:
    """A column number is only trustworthy where Jinja left the line untouched."""
    if not line or not col:
        return None
    rendered = query.sql.splitlines()
    template_line = query.template_line(line)
    if 0 < line <= len(rendered) and 0 < template_line <= len(template_lines):
        if rendered[line - 1] == template_lines[template_line - 1]:
            return col
    return None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
