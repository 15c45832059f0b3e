"""Small sqlglot node builders shared by the steps that assemble SQL (compile, score)."""

from __future__ import annotations

from sqlglot import exp


def union_all(parts: list[exp.Query]) -> exp.Query:
    """UNION ALL of the parts, in order (the parts are consumed, not copied)."""
    union = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False, copy=False)
    return union
