"""Formulas over metric names: parse with sqlglot, evaluate and decompose as SQL.

A formula is arithmetic over metric names (``a * b / c``, ``a + b - c``,
parentheses and numeric constants). It becomes SQL expressions that the engine
evaluates per period: its value, and each metric's exact contribution to its
change, LMDI (logarithmic mean Divisia index) for products and quotients and
plain differences for sums, so contributions add up to the change.

>>> f = parse_formula("customers * orders_per_customer")
>>> f.metrics
('customers', 'orders_per_customer')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from northstar_pipeline.errors import CompileError

ColumnFor = Callable[[str], exp.Expression]
_ALLOWED = (exp.Column, exp.Identifier, exp.Mul, exp.Div, exp.Add, exp.Sub, exp.Paren, exp.Neg, exp.Literal)


@dataclass(frozen=True, slots=True)
class Formula:
    text: str
    metrics: tuple[str, ...]
    ast: exp.Expression = field(compare=False, repr=False)


def parse_formula(text: str, *, path: Path | None = None, line: int | None = None) -> Formula:
    where = {"path": path, "line": line}
    try:
        ast = sqlglot.parse_one(text, read="duckdb")
    except SqlglotError as exc:  # TokenError too: an unclosed quote
        reason = exc.errors[0]["description"] if getattr(exc, "errors", None) else "a quote is not closed"
        raise CompileError(f"cannot parse formula {text!r}: {reason}", **where,
                           hint="write arithmetic over metric names, e.g. 'customers * orders_per_customer'") from None
    for node in ast.walk():
        if not isinstance(node, _ALLOWED) or (isinstance(node, exp.Column) and node.table):
            raise CompileError(
                f"formula {text!r} uses '{node.sql('duckdb')}', which is not a metric name, number, + - * / or ( )",
                **where, hint="formulas are products, quotients, sums and differences of metric names")
        if isinstance(node, exp.Literal) and node.is_string:
            raise CompileError(f"formula {text!r} contains a string", **where)
    names = tuple(dict.fromkeys(c.name for c in ast.find_all(exp.Column, bfs=False)))  # left to right
    if not names:
        raise CompileError(f"formula {text!r} names no metric", **where)
    return Formula(text=text, metrics=names, ast=ast)


def formula_sql(formula: Formula, value: ColumnFor) -> exp.Expression:
    """The formula with each metric name replaced by value(name). Division by zero gives NULL."""
    return _substitute(formula.ast, value)


def contribution_sql(formula: Formula, current: ColumnFor, previous: ColumnFor) -> dict[str, exp.Expression]:
    """For each metric in the formula, SQL for its share of the formula's change from previous to current.

    The shares add up to formula(current) - formula(previous) exactly where every
    factor of every product is positive in both periods; elsewhere they are NULL.
    """
    shares: dict[str, list[exp.Expression]] = {}
    _share(formula.ast, _delta(formula.ast, current, previous), True, current, previous, shares)
    out = {}
    for metric in formula.metrics:
        total: exp.Expression = exp.Literal.number(0)
        for part in shares.get(metric, []):
            total = _add(total, part)
        out[metric] = total
    return out


# Builders that always parenthesise: sqlglot prints a tree as built, without adding parentheses.
def _add(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return exp.paren(exp.Add(this=a, expression=b))


def _sub(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return exp.paren(exp.Sub(this=a, expression=b))


def _mul(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return exp.paren(exp.Mul(this=a, expression=b))


def _div(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return exp.paren(exp.Div(this=a, expression=exp.Nullif(this=b, expression=exp.Literal.number(0))))


def _neg(a: exp.Expression) -> exp.Expression:
    return exp.paren(exp.Neg(this=a))


def _substitute(node: exp.Expression, value: ColumnFor) -> exp.Expression:
    if isinstance(node, exp.Column):
        return exp.paren(value(node.name))
    if isinstance(node, exp.Div):
        return _div(_substitute(node.this, value), _substitute(node.expression, value))
    if isinstance(node, exp.Mul):
        return _mul(_substitute(node.this, value), _substitute(node.expression, value))
    if isinstance(node, exp.Add):
        return _add(_substitute(node.this, value), _substitute(node.expression, value))
    if isinstance(node, exp.Sub):
        return _sub(_substitute(node.this, value), _substitute(node.expression, value))
    if isinstance(node, exp.Neg):
        return _neg(_substitute(node.this, value))
    if isinstance(node, exp.Paren):
        return _substitute(node.this, value)
    return node.copy()


def _share(node: exp.Expression, share: exp.Expression, exact: bool, cur: ColumnFor, prev: ColumnFor,
           out: dict[str, list[exp.Expression]]) -> None:
    """Attribute `share` (part of the parent's change; exactly this node's change when exact) to metrics."""
    if isinstance(node, (exp.Paren, exp.Neg)):
        _share(node.this, share, exact, cur, prev, out)
    elif isinstance(node, exp.Column):
        out.setdefault(node.name, []).append(share)
    elif isinstance(node, (exp.Add, exp.Sub)):
        node_delta = _delta(node, cur, prev)
        for term, sign in _terms(node, 1):
            term_delta = _delta(term, cur, prev) if sign > 0 else _neg(_delta(term, cur, prev))
            part = term_delta if exact else _scaled(share, term_delta, node_delta)
            _share(term, part, exact, cur, prev, out)
    elif isinstance(node, (exp.Mul, exp.Div)):
        factors = [(f, e) for f, e in _factors(node, 1) if f.find(exp.Column)]
        positive = _all_positive([f for f, _ in factors], cur, prev)
        mean = _log_mean(_substitute(node, cur), _substitute(node, prev))
        node_delta = _delta(node, cur, prev)
        for factor, exponent in factors:
            log_ratio = exp.Ln(this=_div(_substitute(factor, cur), _substitute(factor, prev)))
            weight = _mul(mean, log_ratio) if exponent > 0 else _neg(_mul(mean, log_ratio))
            guarded = exp.paren(exp.If(this=positive, true=weight, false=exp.null()))
            part = guarded if exact else _scaled(share, guarded, node_delta)
            # Inside a factor, its LMDI share is not its own change: split it proportionally.
            _share(factor, part, isinstance(factor, exp.Column), cur, prev, out)
    # numeric constants carry no metric


def _terms(node: exp.Expression, sign: int) -> list[tuple[exp.Expression, int]]:
    if isinstance(node, exp.Paren) and isinstance(node.this, (exp.Add, exp.Sub, exp.Paren)):
        return _terms(node.this, sign)
    if isinstance(node, exp.Add):
        return _terms(node.this, sign) + _terms(node.expression, sign)
    if isinstance(node, exp.Sub):
        return _terms(node.this, sign) + _terms(node.expression, -sign)
    return [(node, sign)]


def _factors(node: exp.Expression, exponent: int) -> list[tuple[exp.Expression, int]]:
    if isinstance(node, exp.Paren) and isinstance(node.this, (exp.Mul, exp.Div, exp.Paren)):
        return _factors(node.this, exponent)
    if isinstance(node, exp.Mul):
        return _factors(node.this, exponent) + _factors(node.expression, exponent)
    if isinstance(node, exp.Div):
        return _factors(node.this, exponent) + _factors(node.expression, -exponent)
    return [(node, exponent)]


def _delta(node: exp.Expression, cur: ColumnFor, prev: ColumnFor) -> exp.Expression:
    return _sub(_substitute(node, cur), _substitute(node, prev))


def _scaled(share: exp.Expression, part: exp.Expression, whole: exp.Expression) -> exp.Expression:
    """share * part / whole: split a share in proportion to each part's effect; nothing moved, nothing to split."""
    return exp.paren(exp.Case(ifs=[exp.If(this=exp.EQ(this=whole.copy(), expression=exp.Literal.number(0)),
                                          true=exp.Literal.number(0))],
                              default=_div(_mul(share, part), whole)))


def _log_mean(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    """L(a, b) = (a - b) / (ln a - ln b); its limit (a + b) / 2 where a and b agree to 1e-12.

    The limit also covers products that are equal but rounded differently, whose logs are equal.
    """
    logs = _sub(exp.Ln(this=a.copy()), exp.Ln(this=b.copy()))
    close = exp.LTE(this=exp.func("abs", _sub(a.copy(), b.copy())),
                    expression=_mul(exp.Literal.number("1e-12"), exp.func("greatest", exp.func("abs", a.copy()),
                                                                             exp.func("abs", b.copy()))))
    return exp.paren(exp.If(this=close, true=_div(_add(a.copy(), b.copy()), exp.Literal.number(2)),
                            false=_div(_sub(a.copy(), b.copy()), logs)))


def _all_positive(factors: list[exp.Expression], cur: ColumnFor, prev: ColumnFor) -> exp.Expression:
    checks: exp.Expression = exp.true()
    for factor in factors:
        for side in (cur, prev):
            checks = exp.And(this=checks, expression=exp.GT(this=_substitute(factor, side),
                                                             expression=exp.Literal.number(0)))
    return exp.func("COALESCE", exp.paren(checks), exp.false())
