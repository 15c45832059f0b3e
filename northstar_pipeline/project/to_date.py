"""The to-date window as named placeholders, so a rendering and its compile do not depend on the as-of.

A metric's to-date rendering compares the partial period with the same elapsed span of the
period before. That span moves every night; if its dates were baked into the rendered SQL,
every night would miss the render and compile caches and re-render, parse, qualify and check
every metric. So ``period()`` renders the span's bounds as ``$to_date_start_<grain>`` and
``$to_date_end_<grain>`` (sqlglot ``Placeholder`` nodes), the caches hold that as-of-free SQL,
and the build binds the actual window with an AST transform (``bind_to_date``) before anything
runs or is written for people: what executes and what target/compiled/ shows has the literal dates.
"""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from northstar_pipeline.project.periods import is_complete, period_start, to_date_window
from northstar_pipeline.types import Grain

PREFIX = "to_date_"  # reserved: a template may not use $to_date_... placeholders itself
_START, _END = PREFIX + "start_", PREFIX + "end_"
# Describing a query (its columns and types) does not depend on the window's values: any as-of will do.
DESCRIBE_AS_OF = datetime(2000, 1, 5, 12)


def window_placeholders(grain: Grain) -> tuple[exp.Placeholder, exp.Placeholder]:
    """(start, inclusive end) of ``grain``'s to-date window, as placeholders the build binds."""
    return exp.Placeholder(this=_START + grain.value), exp.Placeholder(this=_END + grain.value)


def partial_grains(grains: tuple[Grain, ...] | list[Grain], as_of: datetime | None) -> tuple[Grain, ...]:
    """The grains whose as-of period is partial: the ones rendered to date (all a rendering depends on)."""
    if as_of is None:
        return ()
    return tuple(g for g in grains if not is_complete(g, period_start(g, as_of), as_of))


def is_window_placeholder(node: exp.Expression) -> bool:
    return isinstance(node, exp.Placeholder) and str(node.name).startswith(PREFIX)


def window_values(as_of: datetime) -> dict[str, exp.Literal]:
    """Every grain's window bounds at ``as_of``, as the literals the placeholders stand for."""
    values = {}
    for grain in Grain:
        start, end = to_date_window(grain, as_of)
        values[_START + grain.value] = exp.Literal.string(start.isoformat())
        values[_END + grain.value] = exp.Literal.string(end.isoformat(sep=" "))
    return values


def bind_to_date(ast: exp.Expression, as_of: datetime | None) -> exp.Expression:
    """``ast`` (changed in place) with each to-date placeholder replaced by its literal at ``as_of``.

    A placeholder left without an as-of is a bug upstream (renderings are to-date only with one).
    """
    if as_of is None:
        if any(is_window_placeholder(p) for p in ast.find_all(exp.Placeholder)):
            raise ValueError("a to-date rendering has no as-of to bind")
        return ast
    values = window_values(as_of)

    def bound(node: exp.Expression) -> exp.Expression:
        if is_window_placeholder(node) and node.name in values:
            return values[node.name].copy()
        return node

    return ast.transform(bound, copy=False)
