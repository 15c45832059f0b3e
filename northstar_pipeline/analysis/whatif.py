"""What-if and goal-seek through the tree, on the last complete period's values.

``project_changes`` moves some metrics and carries the moves up to the North Star:

* through a **formula** edge exactly: the parent is its formula evaluated on the moved children
  (the formula's sqlglot tree, evaluated node by node; no SQL text is built);
* through a **hypothesis** edge as an estimate: the parent's relative change is the child's
  relative change times the fitted elasticity (the slope of the parent's relative changes on the
  child's, at the best lag, over complete periods), with its 95% confidence interval. The result
  is labelled an estimate, and the interval is carried up the formula edges above it.

``seek_goal`` answers the reverse question: by how much would one input alone (or a mix of inputs,
all by the same relative amount) have to move for the North Star to reach a goal; it solves the
what-if above with scipy's brentq, so feeding the answer back into ``project_changes`` reaches
the goal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import optimize, stats
from sqlglot import exp

from northstar_pipeline.analysis.leading import relative_changes
from northstar_pipeline.errors import UsageError
from northstar_pipeline.project.charter import Change
from northstar_pipeline.tree.tree import Tree
from northstar_pipeline.types import Edge, MetricKind


@dataclass(frozen=True, slots=True)
class Elasticity:
    child: str
    parent: str
    lag: int
    slope: float
    low: float  # 95% confidence interval of the slope
    high: float
    n: int


@dataclass(frozen=True, slots=True)
class Projection:
    period_start: object
    grain: str
    before: dict[str, float]  # metric -> value in the period
    after: dict[str, float]  # metric -> projected value (only metrics that moved)
    low: dict[str, float]  # for estimates: the interval of the projection
    high: dict[str, float]
    estimated: frozenset[str]  # metrics whose projection went through a hypothesis edge

    @property
    def north_star_change(self) -> float:
        name = self.north_star
        return self.after.get(name, self.before[name]) - self.before[name]

    @property
    def north_star(self) -> str:
        return next(iter(self.before))  # before is ordered North Star first


def project_changes(tree: Tree, card_rows: Sequence[Mapping], changes: Mapping[str, Change], grain: str,
                    elasticities: Mapping[str, Elasticity] | None = None) -> Projection:
    """``card_rows``: the scorecard rows of one grain (all periods); the last complete period is projected."""
    period, values = _last_complete(card_rows, grain, tree)
    for name in changes:
        _metric(tree, name)
    moved = {name: change.apply(values[name]) for name, change in changes.items()}
    low, high = dict(moved), dict(moved)
    estimated: set[str] = set()
    # Walk up level by level: a parent moves once all its children's moves are known.
    levels = sorted({m.level for m in tree.metrics if m.level is not None}, reverse=True)
    for level in levels:
        for parent in [m for m in tree.metrics if m.level == level - 1 and m.kind is not MetricKind.OUTCOME]:
            kids = [tree.get(c) for c in parent.children]
            if not any(k.name in moved for k in kids) or parent.name in changes:
                continue
            if parent.formula is not None and any(k.name in moved and k.config.edge is Edge.FORMULA for k in kids):
                def at(which: dict[str, float]) -> float:
                    return _evaluate(parent.formula.ast, {c: which.get(c, values[c]) for c in parent.formula.metrics})
                moved[parent.name], low[parent.name], high[parent.name] = at(moved), at(low), at(high)
                if any(k.name in estimated for k in kids):
                    estimated.add(parent.name)
                    low[parent.name], high[parent.name] = sorted((low[parent.name], high[parent.name]))
            hypothesis_kids = [k for k in kids if k.name in moved and k.config.edge is Edge.HYPOTHESIS]
            for kid in hypothesis_kids:
                fit = (elasticities or {}).get(kid.name)
                if fit is None or values[kid.name] == 0:
                    continue
                base = moved.get(parent.name, values[parent.name])
                rel = (moved[kid.name] - values[kid.name]) / abs(values[kid.name])
                moved[parent.name] = base + base * fit.slope * rel
                ends = sorted((base + base * fit.low * rel, base + base * fit.high * rel))
                low[parent.name], high[parent.name] = ends
                estimated.add(parent.name)
    ordered = {m.name: values[m.name] for m in tree.metrics if m.name in values}
    return Projection(period, grain, ordered, moved, low, high, frozenset(estimated))


def seek_goal(tree: Tree, card_rows: Sequence[Mapping], goal: Change, grain: str,
              inputs: Sequence[str]) -> float:
    """The relative move (0.05 = +5%) of ``inputs`` together that takes the North Star to ``goal``."""
    north_star = tree.north_stars[0].name
    _, values = _last_complete(card_rows, grain, tree)
    target = goal.apply(values[north_star])
    for name in inputs:
        if not tree.formula_chain(name):
            raise UsageError(f"'{name}' does not reach the North Star through formula edges",
                             hint="goal-seek solves exact arithmetic; a hypothesis edge is only an estimate")

    def gap(x: float) -> float:
        projection = project_changes(tree, card_rows, {n: Change(x, True, "") for n in inputs}, grain)
        return projection.after.get(north_star, values[north_star]) - target

    low, high = -0.999999, 1.0
    while gap(low) * gap(high) > 0 and high < 1e6:
        high *= 4
    if gap(low) * gap(high) > 0:
        raise UsageError(f"no move of {', '.join(inputs)} reaches that goal",
                         hint="the formula cannot reach it with these inputs alone; try a mix")
    return optimize.brentq(gap, low, high, xtol=1e-15, rtol=4 * float.fromhex("0x1p-52"), maxiter=500)


def fit_elasticities(tree: Tree, card_rows: Sequence[Mapping], grain: str,
                     lags: Mapping[str, int]) -> dict[str, Elasticity]:
    """For each hypothesis child: slope of the parent's relative change on the child's, at its best lag."""
    series = _series(card_rows, grain)
    out = {}
    for child, parent in tree.hypothesis_edges():
        lag = lags.get(child, 0)
        dx, dy = relative_changes(series.get(child, [])), relative_changes(series.get(parent, []))
        pairs = [(dx[t - lag], dy[t]) for t in range(lag, len(dy))
                 if t - lag >= 0 and dx[t - lag] is not None and dy[t] is not None]
        if len(pairs) < 4:
            continue
        fit = stats.linregress([p[0] for p in pairs], [p[1] for p in pairs])
        half = stats.t.ppf(0.975, len(pairs) - 2) * fit.stderr
        out[child] = Elasticity(child, parent, lag, fit.slope, fit.slope - half, fit.slope + half, len(pairs))
    return out


def _last_complete(card_rows: Sequence[Mapping], grain: str, tree: Tree) -> tuple[object, dict[str, float]]:
    rows = [r for r in card_rows if r["grain"] == grain and r["is_complete"]]
    if not rows:
        raise UsageError(f"the scorecard has no complete {grain}", hint="build once a full period of data has landed")
    period = max(r["period_start"] for r in rows)
    values = {r["metric"]: r["value"] for r in rows if r["period_start"] == period and r["value"] is not None}
    missing = [m.name for m in tree.metrics if m.name not in values and m.kind is not MetricKind.COUNTER]
    if tree.north_stars and tree.north_stars[0].name in missing:
        raise UsageError(f"the North Star has no value in the {grain} of {period}", hint="run northstar build")
    return period, values


def _series(card_rows: Sequence[Mapping], grain: str) -> dict[str, list[float | None]]:
    rows = sorted((r for r in card_rows if r["grain"] == grain and r["is_complete"]), key=lambda r: r["period_start"])
    out: dict[str, list[float | None]] = {}
    for row in rows:
        out.setdefault(row["metric"], []).append(row["value"])
    return out


def _metric(tree: Tree, name: str) -> None:
    try:
        tree.get(name)
    except KeyError:
        raise UsageError(f"'{name}' is not a metric", hint="metrics: " + ", ".join(m.name for m in tree.metrics)) from None


def _evaluate(node: exp.Expression, values: Mapping[str, float]) -> float:
    """A formula's value: its tree holds only names, numbers, + - * / and parentheses (tree/formula.py)."""
    if isinstance(node, exp.Paren):
        return _evaluate(node.this, values)
    if isinstance(node, exp.Neg):
        return -_evaluate(node.this, values)
    if isinstance(node, exp.Column):
        return float(values[node.name])
    if isinstance(node, exp.Literal):
        return float(node.this)
    a, b = _evaluate(node.this, values), _evaluate(node.expression, values)
    if isinstance(node, exp.Add):
        return a + b
    if isinstance(node, exp.Sub):
        return a - b
    if isinstance(node, exp.Mul):
        return a * b
    if isinstance(node, exp.Div):
        return a / b if b != 0 else float("nan")
    raise TypeError(f"unexpected formula node {type(node).__name__}")
