"""DuckDB SQL to another dialect, correct by construction: sqlglot transforms, AST in, AST out.

sqlglot's generator translates names and syntax; it does not make two engines compute the same
value. The transforms below fix what Spark, Snowflake, BigQuery and Trino read differently from
DuckDB, and a construct with no faithful equivalent is a compile error naming the file and line,
never SQL that fails (or silently differs) later:

- CTE materialization hints (``AS [NOT] MATERIALIZED``) are DuckDB/Postgres only: dropped (they
  change how a query runs, never what it returns);
- ``to_minutes(n)`` and its siblings build intervals: an ``INTERVAL`` literal (times ``n`` where
  the dialect multiplies intervals);
- ``/`` is a DOUBLE division in DuckDB for every numeric type; Spark and Snowflake divide DECIMALs
  as DECIMALs (rounded at a scale of 6) and Trino divides integers as integers, so both operands
  are cast to DOUBLE: every engine then computes in the same type (``count(*) / count(...)``
  included, whatever type each engine gives a count);
- ``date_diff`` counts unit boundaries crossed in DuckDB and Snowflake and whole units elapsed in
  Spark, BigQuery and Trino: operands are truncated to the unit first;
- a week is an ISO week (Monday) in DuckDB; BigQuery's WEEK starts on Sunday and Snowflake's
  follows the WEEK_START parameter: made explicit;
- ``agg(...) FILTER (WHERE cond)`` is spelt ``agg(CASE WHEN cond THEN ... END)`` where FILTER
  does not exist; SEMI/ANTI joins become ``[NOT] EXISTS`` where those joins do not exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

from northstar_pipeline.errors import CompileError
from northstar_pipeline.types import CompiledNode

DIALECTS = ("spark", "snowflake", "bigquery", "trino")
_NO_FILTER_CLAUSE = {"snowflake", "bigquery"}
_NO_SEMI_JOIN = {"snowflake", "bigquery", "trino"}
_ELAPSED_DATEDIFF = {"spark", "databricks", "bigquery", "trino"}  # whole units, not boundaries
_TO_INTERVAL = {"to_microseconds": "MICROSECOND", "to_milliseconds": "MILLISECOND", "to_seconds": "SECOND",
                "to_minutes": "MINUTE", "to_hours": "HOUR", "to_days": "DAY", "to_weeks": "WEEK",
                "to_months": "MONTH", "to_years": "YEAR"}
_DATEDIFF_UNITS = {"SECOND", "MINUTE", "HOUR", "DAY", "MONTH", "QUARTER", "YEAR"}


class Inexpressible(Exception):
    """A construct with no faithful equivalent in the target dialect; ``word`` locates it in the template."""

    def __init__(self, message: str, word: str, hint: str) -> None:
        super().__init__(message)
        self.word, self.hint = word, hint


def to_dialect(ast: exp.Expression, dialect: str) -> exp.Expression:
    """A copy of ``ast`` (DuckDB) that computes the same values when generated for ``dialect``."""
    if dialect == "duckdb":
        return ast
    tree = ast.copy()
    for transform in _TRANSFORMS:
        tree = transform(tree, dialect)
    leftover = next((f for f in tree.find_all(exp.Anonymous)), None)
    if leftover is not None:
        name = str(leftover.this).lower()
        raise Inexpressible(f"function {name}() has no known {dialect} equivalent", name,
                            "write it with standard SQL functions, or build this project on DuckDB")
    return tree


def transpile_sql(sql: str, dialect: str, node: CompiledNode | None = None,
                  ast: exp.Expression | None = None) -> str:
    """DuckDB SQL as ``dialect`` SQL that sqlglot reads back in that dialect, or a CompileError at file:line."""
    ast = ast if ast is not None else sqlglot.parse_one(sql, read="duckdb")
    try:
        out = to_dialect(ast, dialect).sql(dialect, pretty=True, unsupported_level=ErrorLevel.RAISE)
    except Inexpressible as exc:
        raise _error(node, dialect, str(exc), exc.word, exc.hint) from None
    except UnsupportedError as exc:
        raise _error(node, dialect, f"cannot be written in {dialect}: {str(exc).splitlines()[0]}", None,
                     "rewrite the construct in standard SQL") from None
    try:
        sqlglot.parse(out, read=dialect)
    except ParseError as exc:
        raise _error(node, dialect, f"the {dialect} SQL does not parse back: {str(exc).splitlines()[0]}", None,
                     "rewrite the construct in standard SQL") from None
    return out


def _error(node: CompiledNode | None, dialect: str, message: str, word: str | None, hint: str) -> CompileError:
    if node is None:
        return CompileError(message, hint=hint)
    return CompileError(message, path=node.relpath,
                        line=_template_line(node.path, word) or node.line, hint=hint)


def _template_line(path: Path, word: str | None) -> int | None:
    """The first template line naming ``word`` (a function name): where the construct was written."""
    if not word or not path.is_file():
        return None
    pattern = re.compile(rf"\b{re.escape(word)}\s*\(", re.IGNORECASE)
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if pattern.search(text):
            return number
    return None


# -- transforms -------------------------------------------------------------------------------------


def _drop_materialization(tree: exp.Expression, dialect: str) -> exp.Expression:
    for cte in tree.find_all(exp.CTE):
        cte.set("materialized", None)
    return tree


def _intervals(tree: exp.Expression, dialect: str) -> exp.Expression:
    def rewrite(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Anonymous) or str(node.this).lower() not in _TO_INTERVAL:
            return node
        unit = _TO_INTERVAL[str(node.this).lower()]
        amount = node.expressions[0] if len(node.expressions) == 1 else None
        if amount is None:
            return node
        if isinstance(amount, exp.Literal) and not amount.is_string:
            return exp.Interval(this=exp.Literal.string(amount.name), unit=exp.var(unit))
        if dialect == "bigquery":
            return exp.Interval(this=amount.copy(), unit=exp.var(unit))
        if dialect == "snowflake":
            name = str(node.this).lower()
            raise Inexpressible(f"{name}() of a non-constant has no {dialect} interval equivalent", name,
                                f"use a constant ({name}(15)) or dateadd() on the timestamp")
        return exp.Mul(this=exp.paren(amount.copy()), expression=exp.Interval(this=exp.Literal.string("1"),
                                                                           unit=exp.var(unit)))

    return tree.transform(rewrite)


def _double_division(tree: exp.Expression, dialect: str) -> exp.Expression:
    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Div) and not node.args.get("typed"):
            node.set("this", _as_double(node.this))
            node.set("expression", _as_double(node.expression))
        return node

    return tree.transform(rewrite)


def _as_double(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.DOUBLE):
        return node
    return exp.cast(node, exp.DataType.Type.DOUBLE)


def _date_diff(tree: exp.Expression, dialect: str) -> exp.Expression:
    def rewrite(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.DateDiff):
            return node
        unit = (node.unit.name if node.unit else "DAY").upper()
        if unit not in _DATEDIFF_UNITS:  # DuckDB's week difference is whole 7-day spans, nobody else's
            raise Inexpressible(f"date_diff('{unit.lower()}', ...) has no exact {dialect} equivalent", "date_diff",
                                "use 'day' and divide by 7, or another unit: "
                                + ", ".join(sorted(u.lower() for u in _DATEDIFF_UNITS)))
        if dialect in _ELAPSED_DATEDIFF and node.args.get("date_part_boundary"):
            for key in ("this", "expression"):
                node.set(key, exp.TimestampTrunc(this=node.args[key], unit=exp.var(unit)))
            node.set("date_part_boundary", None)
        return node

    return tree.transform(rewrite)


def _iso_weeks(tree: exp.Expression, dialect: str) -> exp.Expression:
    if dialect not in ("bigquery", "snowflake"):
        return tree  # Spark and Trino truncate WEEK to Monday, as DuckDB does

    def rewrite(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, (exp.TimestampTrunc, exp.DateTrunc)) or not node.unit:
            return node
        if node.unit.name.upper() != "WEEK":
            return node
        if dialect == "bigquery":
            node.set("unit", exp.var("ISOWEEK"))
            return node
        day = exp.TimestampTrunc(this=node.this.copy(), unit=exp.var("DAY"))
        back = exp.Sub(this=exp.Literal.number(1), expression=exp.DayOfWeekIso(this=node.this.copy()))
        return exp.DateAdd(this=day, expression=back, unit=exp.var("DAY"))

    return tree.transform(rewrite)


def _filter_clauses(tree: exp.Expression, dialect: str) -> exp.Expression:
    if dialect not in _NO_FILTER_CLAUSE:
        return tree

    def rewrite(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Filter) or not isinstance(node.expression, exp.Where):
            return node
        agg, condition = node.this.copy(), node.expression.this
        target = agg.this if isinstance(agg.this, exp.Distinct) else agg
        arg_key = "expressions" if isinstance(agg.this, exp.Distinct) else "this"
        args = target.expressions if arg_key == "expressions" else [target.this]
        if len(args) != 1 or args[0] is None:
            raise Inexpressible(f"{agg.sql('duckdb')} FILTER (...) has no {dialect} equivalent", agg.key,
                                "aggregate a CASE WHEN ... THEN ... END instead of FILTER")
        value = exp.Literal.number(1) if isinstance(args[0], exp.Star) else args[0].copy()
        case = exp.Case(ifs=[exp.If(this=condition.copy(), true=value)])
        if arg_key == "expressions":
            target.set("expressions", [case])
        else:
            target.set("this", case)
        return agg

    return tree.transform(rewrite)


def _semi_joins(tree: exp.Expression, dialect: str) -> exp.Expression:
    if dialect not in _NO_SEMI_JOIN:
        return tree
    for select in list(tree.find_all(exp.Select)):
        joins = select.args.get("joins") or []
        kept = []
        for join in joins:
            kind = (join.args.get("kind") or "").upper()
            if kind not in ("SEMI", "ANTI"):
                kept.append(join)
                continue
            exists = exp.Exists(this=exp.select("1").from_(join.this.copy()).where(_join_condition(select, join, kept)))
            select.where(exp.not_(exists) if kind == "ANTI" else exists, copy=False)
        select.set("joins", kept or None)
    return tree


def _join_condition(select: exp.Select, join: exp.Join, earlier: list[exp.Join]) -> exp.Expression:
    if join.args.get("on") is not None:
        return join.args["on"].copy()
    source = select.args.get("from_") or select.args.get("from")
    if earlier or source is None:
        raise Inexpressible("a SEMI/ANTI JOIN ... USING after other joins has no equivalent here", "join",
                            "write the condition with ON, or WHERE [NOT] EXISTS (...)")
    left, right = source.this.alias_or_name, join.this.alias_or_name
    return exp.and_(*(exp.column(c.name, table=right).eq(exp.column(c.name, table=left))
                      for c in join.args.get("using") or []))


_TRANSFORMS: tuple[Callable[[exp.Expression, str], exp.Expression], ...] = (
    _drop_materialization, _intervals, _date_diff, _iso_weeks, _filter_clauses, _semi_joins, _double_division,
)
