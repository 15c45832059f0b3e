"""Dimensions: declared once in dimensions.yml, listed per metric, added to its query as a sqlglot rewrite.

A metric with ``dimensions=['region']`` gets, per dimension, a second query: its own query with the
dimension's expression added to the projection and the GROUP BY of the outermost SELECT (the one that
returns ``period_start``). A ratio is thereby recomputed from its numerator and denominator in every
segment, never averaged. Before the rewrite, sqlglot's scope tells which columns the FROM of that
SELECT provides, so a dimension a metric cannot reach is a compile error at the metric's config() line.

The cardinality guard is in the rewritten SQL itself: a value outside the dimension's top N (by
volume of the highest metric it cuts, chosen at build time into ``_ns_segment_keep``) becomes '(other)',
so '(other)' is recomputed exactly (distinct counts included), not summed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

from northstar_pipeline.build.segment_rows import period_of, since_rows
from northstar_pipeline.errors import CompileError
from northstar_pipeline.sql import union_all
from northstar_pipeline.types import (
    Column,
    DimensionDef,
    MetricConfig,
    NodeKind,
    Project,
    RenderedNode,
    RenderedQuery,
    SegmentQuery,
)

DIMENSIONS_FILE = "dimensions.yml"
DEFAULT_MAX_SEGMENTS = 10
OTHER = "(other)"
NULL_SEGMENT = "(null)"
KEEP_TABLE = "_ns_segment_keep"  # (dimension, segment): the values the guard keeps, filled by the build
KEEP_TABLE_COLUMNS = (Column("dimension", "VARCHAR"), Column("segment", "VARCHAR"))
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_dimensions(project: Project) -> tuple[DimensionDef, ...]:
    """Read dimensions.yml at the project root (none declared without it)."""
    path = project.root / DIMENSIONS_FILE
    if not path.is_file():
        return ()
    rel = Path(DIMENSIONS_FILE)
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CompileError(f"cannot parse {DIMENSIONS_FILE}: {getattr(exc, 'problem', exc)}", path=rel,
                           line=mark.line + 1 if mark else None,
                           hint="check indentation and that every 'key: value' is on its own line") from None
    if not isinstance(data, dict) or not isinstance(data.get("dimensions"), list):
        raise CompileError(f"{DIMENSIONS_FILE} must be a mapping with a 'dimensions:' list", path=rel, line=1,
                           hint="dimensions:\n  - name: region\n    expression: region\n    label: Region")
    items = _list_nodes(node, "dimensions")
    default_max = _max_segments(data.get("max_segments", DEFAULT_MAX_SEGMENTS), rel, _key_line(node, "max_segments"))
    out: dict[str, DimensionDef] = {}
    for i, item in enumerate(data["dimensions"]):
        line = items[i].start_mark.line + 1 if i < len(items) else 1
        if not isinstance(item, dict) or not item.get("name"):
            raise CompileError("each dimension needs a name", path=rel, line=line,
                               hint="- name: region\n  expression: region")
        name = str(item["name"])
        if not _NAME.match(name):
            raise CompileError(f"dimension name {name!r} is not an identifier", path=rel, line=line,
                               hint="use letters, digits and underscores, e.g. customer_type")
        if name in out:
            raise CompileError(f"dimension '{name}' is declared twice", path=rel, line=line,
                               hint=f"first declared at line {out[name].line}")
        expression = str(item.get("expression", item.get("column", name)))
        expr_line = _key_line(items[i], "expression") or _key_line(items[i], "column") or line
        parse_dimension(expression, name, rel, expr_line)
        out[name] = DimensionDef(
            name=name, expression=expression, label=str(item.get("label") or name.replace("_", " ").capitalize()),
            max_segments=_max_segments(item.get("max_segments", default_max), rel, _key_line(items[i], "max_segments") or line),
            path=rel, line=expr_line)
    return tuple(out.values())


def parse_dimension(expression: str, name: str, path: Path, line: int) -> exp.Expression:
    """The dimension's expression as a sqlglot node: one scalar expression over columns."""
    try:
        ast = sqlglot.parse_one(expression, read="duckdb")
    except ParseError as exc:
        raise CompileError(f"dimension '{name}': cannot parse expression {expression!r}: "
                           f"{exc.errors[0]['description'] if exc.errors else exc}", path=path, line=line,
                           hint="write one SQL expression over the metric's columns, e.g. "
                                "\"case when is_first_order then 'new' else 'returning' end\"") from None
    bad = ast if isinstance(ast, exp.Query) else next(
        (n for n in ast.walk() if isinstance(n, (exp.AggFunc, exp.Window, exp.Query))), None)
    if bad is not None or not isinstance(ast, exp.Expression) or isinstance(ast, (exp.Alias, exp.Star)):
        raise CompileError(f"dimension '{name}': {expression!r} is not a scalar expression over columns",
                           path=path, line=line,
                           hint="no aggregates, window functions, subqueries or aliases: one value per row")
    return ast


def compile_segments(node: RenderedNode, selects: list[tuple[RenderedQuery, exp.Query]], upstream: dict,
                     dimensions: tuple[DimensionDef, ...],
                     describe: Callable[[str], object] | None = None) -> tuple[SegmentQuery, ...]:
    """Per dimension listed in the metric's config: the volume query and the union of cut queries (every grain).

    ``describe`` (DuckDB's description over empty tables) checks the rewritten SQL, so a dimension
    expression of the wrong type fails at compile time, not in the build.
    """
    config = node.config
    if node.kind is not NodeKind.METRIC or not isinstance(config, MetricConfig) or not config.dimensions:
        return ()
    declared = {d.name: d for d in dimensions}
    out = []
    for name in config.dimensions:
        dim = declared.get(name)
        if dim is None:
            close = get_close_matches(name, sorted(declared), n=1)
            raise CompileError(
                f"unknown dimension '{name}' in dimensions=[...]", path=node.relpath, line=config.line,
                hint=f"did you mean '{close[0]}'?" if close else
                f"declare it in {DIMENSIONS_FILE} (name, expression, label)"
                + (f"; declared: {', '.join(sorted(declared))}" if declared else ""))
        expression = parse_dimension(dim.expression, dim.name, dim.path, dim.line)
        parts = []
        night: list[exp.Select] | None = []  # the same parts over the night's rows (None: cut in full)
        volume = None
        for query, ast in selects:
            outer = _outer_select(ast, node, config, dim)
            if not query.to_date:
                _check_reachable(ast, expression, node, config, dim, upstream)
            _check_grouped(outer, node, config, dim)
            cut = outer.copy()
            segment = _guarded(expression, dim)
            cut.select(exp.alias_(segment, "segment"), append=True, copy=False)
            group = cut.args.get("group")
            if not (group and group.args.get("all")):
                cut.group_by(segment.copy(), append=True, copy=False)
            parts.append(_union_part(query, cut))
            period = period_of(outer)
            if night is not None and period is not None and query.grain is not None:
                recut = since_rows(cut, period, None if query.to_date else query.grain.value)
                night.append(_union_part(query, recut))
            else:
                night = None
            if volume is None and not query.to_date:
                volume = _volume_query(outer, expression)
        assert volume is not None
        full = [p for (q, _), p in zip(selects, parts) if not q.to_date]  # no as-of dates: stable between nights
        segment = SegmentQuery(dimension=dim.name, volume_sql=volume.sql("duckdb"),
                               sql=_union(parts).sql("duckdb", pretty=True, copy=False),
                               since_sql=_union(night).sql("duckdb", copy=False) if night else "",
                               grains=tuple(q.grain.value for q, _ in selects if not q.to_date and q.grain)
                               if night else (),
                               fingerprint=hashlib.sha256(_union(full).sql("duckdb", copy=False).encode()).hexdigest()[:16])
        if describe is not None:
            try:
                describe(segment.sql)
            except CompileError as exc:
                raise CompileError(f"dimension '{dim.name}' cannot cut {node.name}: {exc.message}",
                                   path=node.relpath, line=config.line,
                                   hint=f"check the expression of '{dim.name}' at {dim.path}:{dim.line}") from None
        out.append(segment)
    return tuple(out)


# -- the rewrite -----------------------------------------------------------------------------------


def _outer_select(ast: exp.Query, node: RenderedNode, config: MetricConfig, dim: DimensionDef) -> exp.Select:
    if not isinstance(ast, exp.Select) or "period_start" not in {n.lower() for n in ast.named_selects}:
        raise CompileError(
            f"dimension '{dim.name}' cannot cut {node.name}: its outermost query is not one SELECT returning "
            "period_start (a UNION or set operation cannot take a GROUP BY)", path=node.relpath, line=config.line,
            hint="wrap the union in a CTE and select period_start, value ... from it with GROUP BY 1")
    return ast


def _check_grouped(ast: exp.Select, node: RenderedNode, config: MetricConfig, dim: DimensionDef) -> None:
    aggregates = any(e.find(exp.AggFunc) for e in ast.expressions)
    if ast.args.get("group") is None and not aggregates:  # a global aggregate takes a GROUP BY; plain rows do not
        raise CompileError(
            f"dimension '{dim.name}' cannot cut {node.name}: the SELECT returning period_start has no GROUP BY "
            "(its rows are computed in a CTE or subquery)", path=node.relpath, line=config.line,
            hint="cut a metric whose outermost SELECT aggregates (... GROUP BY 1), or remove the dimension")


def _segment_value(expression: exp.Expression) -> exp.Expression:
    return exp.func("coalesce", exp.cast(expression.copy(), exp.DataType.Type.VARCHAR),
                    exp.Literal.string(NULL_SEGMENT))


def _guarded(expression: exp.Expression, dim: DimensionDef) -> exp.Expression:
    """CASE WHEN value IN (kept values of the dimension) THEN value ELSE '(other)' END."""
    return guard_value(_segment_value(expression), dim)


def guard_value(value: exp.Expression, dim: DimensionDef) -> exp.Expression:
    """The guard over a segment value already computed (``_segment_value``), e.g. a column of partials."""
    kept = exp.select("segment").from_(KEEP_TABLE).where(
        exp.column("dimension").eq(exp.Literal.string(dim.name)))
    return exp.Case(ifs=[exp.If(this=exp.In(this=value.copy(), query=kept.subquery()), true=value)],
                    default=exp.Literal.string(OTHER))


def _volume_query(outer: exp.Select, expression: exp.Expression) -> exp.Select:
    """Rows of the metric's FROM per dimension value: the volume the guard ranks values by."""
    volume = outer.copy()
    value = _segment_value(expression)
    volume.set("expressions", [exp.alias_(value, "segment"), exp.alias_(exp.Count(this=exp.Star()), "volume")])
    volume.set("group", exp.Group(expressions=[value.copy()]))
    for key in ("having", "order", "limit", "offset", "qualify", "windows", "distinct"):
        volume.set(key, None)
    return volume


def _union_part(query: RenderedQuery, cut: exp.Select) -> exp.Select:
    names = {n.lower() for n in cut.named_selects}
    projection = [
        exp.alias_(exp.Literal.string(query.grain.value if query.grain else ""), "grain"),
        exp.alias_(exp.cast(exp.column("period_start", "m"), exp.DataType.Type.DATE), "period_start"),
        exp.alias_(exp.cast(exp.column("value", "m"), exp.DataType.Type.DOUBLE), "value"),
    ]
    for name in ("numerator", "denominator"):
        part = exp.column(name, "m") if name in names else exp.null()
        projection.append(exp.alias_(exp.cast(part, exp.DataType.Type.DOUBLE), name))
    projection += [exp.alias_(exp.Boolean(this=query.to_date), "is_to_date"),
                   exp.alias_(exp.column("segment", "m"), "segment")]
    select = exp.select(*projection).from_(cut.subquery("m", copy=False), copy=False)
    if query.to_date:  # rows outside the elapsed span were grouped under NULL
        select = select.where(exp.column("period_start", "m").is_(exp.null()).not_(), copy=False)
    return select


def _union(parts: list[exp.Select]) -> exp.Query:
    """UNION ALL of copies of the parts (each is printed in more than one union): one copy each, where
    exp.union copied the whole union built so far at every step (a third of a cold compile)."""
    return union_all([part.copy() for part in parts])


# -- reachability ----------------------------------------------------------------------------------


def _check_reachable(ast: exp.Query, expression: exp.Expression, node: RenderedNode, config: MetricConfig,
                     dim: DimensionDef, upstream: dict) -> None:
    """Every column of the dimension must come from exactly one source of the outer SELECT's FROM."""
    scope = build_scope(ast.copy())
    assert scope is not None
    sources = {alias: _source_columns(source, upstream) for alias, source in scope.selected_sources.items()
               for source in [source[1] if isinstance(source, tuple) else source]}
    where = "; ".join(f"{alias}: {', '.join(sorted(cols)) or '(unknown columns)'}" for alias, cols in sources.items())
    for column in expression.find_all(exp.Column):
        name = column.name.lower()
        if column.table:
            found = [a for a in sources if a.lower() == column.table.lower() and name in sources[a]]
        else:
            found = [a for a, cols in sources.items() if name in cols]
        if not found:
            raise CompileError(
                f"dimension '{dim.name}' cannot cut {node.name}: column '{column.sql('duckdb')}' is not in the FROM "
                f"of the query that returns period_start ({where or 'no tables'})",
                path=node.relpath, line=config.line,
                hint=f"carry the column into that query's FROM (e.g. select it in the upstream model), or remove "
                     f"'{dim.name}' from dimensions=[...]")
        if len(found) > 1:
            raise CompileError(
                f"dimension '{dim.name}' is ambiguous in {node.name}: column '{column.name}' is in "
                f"{' and '.join(found)}", path=node.relpath, line=config.line,
                hint=f"qualify it in {DIMENSIONS_FILE} (e.g. {found[0]}.{column.name}), or give the metric one source")
    check = ast.copy()
    check.select(exp.alias_(_segment_value(expression), "segment"), append=True, copy=False)
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for table in check.find_all(exp.Table):
        columns = upstream.get(table.db, {}).get(table.name)
        if columns is not None:
            schema.setdefault(table.db, {})[table.name] = columns
    try:
        qualify(check, schema=schema, dialect="duckdb", validate_qualify_columns=True, quote_identifiers=False)
    except OptimizeError as exc:
        raise CompileError(f"dimension '{dim.name}' cannot cut {node.name}: {exc}", path=node.relpath,
                           line=config.line, hint=f"check the expression of '{dim.name}' in {DIMENSIONS_FILE}") from None


def _source_columns(source: Any, upstream: dict) -> set[str]:
    if isinstance(source, exp.Table):
        return {c.lower() for c in upstream.get(source.db, {}).get(source.name, {})}
    if isinstance(source, Scope):
        return {n.lower() for n in source.expression.named_selects}
    return set()


# -- yaml helpers ----------------------------------------------------------------------------------


def _list_nodes(node: Any, key: str) -> list:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key and isinstance(v, yaml.SequenceNode):
                return list(v.value)
    return []


def _key_line(node: Any, key: str) -> int | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v.start_mark.line + 1
    return None


def _max_segments(value: Any, path: Path, line: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CompileError(f"max_segments must be a whole number >= 1, got {value!r}", path=path, line=line,
                           hint="e.g. max_segments: 10 (the top 10 values by volume; the rest are '(other)')")
    return value
