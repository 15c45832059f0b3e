"""Breaking or not: does a changed node's data change, so that everything downstream must rebuild?

The rule is SQLMesh's (``sqlmesh/core/snapshot/categorizer.py``): a SQL change is non-breaking
only when every edit of the syntax-tree diff inserts a projection (a new column) or lies inside
one, and no inserted projection is a table function (UNNEST, EXPLODE) that would multiply rows;
anything else is breaking. A change of comments or formatting (equal trees) and a config change
that leaves the stored rows alone are non-breaking. The numbers then overrule the trees: a node
whose values moved on the same data is breaking whatever its SQL looks like.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.diff import Insert, Keep

BREAKING, NON_BREAKING = "breaking", "non-breaking"
# Model config keys that change where or which rows are stored; every other key leaves the rows alone.
_ROW_KEYS = frozenset({"schema", "unique_key"})
_UDTFS = (exp.Explode, exp.Posexplode, exp.Unnest)


def categorize_sql(edits: list) -> tuple[str, str]:
    """(category, reason) from sqlglot's diff edits (``sqlglot.diff(old, new)``)."""
    if all(isinstance(e, Keep) for e in edits):
        return NON_BREAKING, "comments or formatting only: the syntax trees are equal"
    inserted = {id(e.expression) for e in edits if isinstance(e, Insert)}
    for edit in edits:
        if isinstance(edit, Keep):
            continue
        if not isinstance(edit, Insert):
            return BREAKING, "an existing expression changed, moved or went: its values change"
        node = edit.expression
        if isinstance(node, _UDTFS) or (not _is_projection(node) and id(node.parent) not in inserted):
            return BREAKING, "a clause other than a new column was added: its values change"
    return NON_BREAKING, "only new columns: existing values stay as they are"


def categorize_config(kind: str, keys: list[str]) -> tuple[str, str]:
    """(category, reason) for a change of config() only (same compiled SQL)."""
    rows = sorted(k for k in keys if k in _ROW_KEYS) if kind == "model" else []
    if rows:
        return BREAKING, f"config {', '.join(rows)} changed: the stored relation changes"
    if kind == "metric":
        return NON_BREAKING, "config only: the metric's values stay; its status or place in the tree may change"
    return NON_BREAKING, "config only: the stored rows stay as they are"


def _is_projection(node: exp.Expression) -> bool:
    parent = node.parent
    return isinstance(parent, exp.Select) and any(node is e for e in parent.expressions)
