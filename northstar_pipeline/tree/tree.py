"""The metric tree as a model: levels, children, formula and hypothesis edges, guardrails.

Built from the compiled manifest and checked at compile time: a formula names
only metrics that are this metric's formula children, and every formula child
appears in its parent's formula.
"""

from __future__ import annotations

from dataclasses import dataclass

from northstar_pipeline.errors import CompileError
from northstar_pipeline.tree.formula import Formula, parse_formula
from northstar_pipeline.tree.levels import metric_level
from northstar_pipeline.types import (
    CompiledNode,
    Edge,
    Manifest,
    MetricConfig,
    MetricKind,
    NodeKind,
)


@dataclass(frozen=True, slots=True)
class TreeMetric:
    name: str
    node: CompiledNode
    config: MetricConfig
    level: int | None  # 0 North Star, 1.. inputs, None counter-metrics
    children: tuple[str, ...]
    formula: Formula | None

    @property
    def kind(self) -> MetricKind:
        return self.config.kind


@dataclass(frozen=True, slots=True)
class Tree:
    metrics: tuple[TreeMetric, ...]  # North Star first, then inputs by level, then counter-metrics

    def get(self, name: str) -> TreeMetric:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)

    @property
    def north_stars(self) -> tuple[TreeMetric, ...]:
        return tuple(m for m in self.metrics if m.kind is MetricKind.NORTH_STAR)

    @property
    def counters(self) -> tuple[TreeMetric, ...]:
        return tuple(m for m in self.metrics if m.kind is MetricKind.COUNTER)

    @property
    def outcomes(self) -> tuple[TreeMetric, ...]:
        return tuple(m for m in self.metrics if m.kind is MetricKind.OUTCOME)

    @property
    def formula_parents(self) -> tuple[TreeMetric, ...]:
        return tuple(m for m in self.metrics if m.formula is not None)

    def hypothesis_edges(self) -> tuple[tuple[str, str], ...]:
        """(child, parent) for every dotted line."""
        return tuple((m.name, m.config.parent) for m in self.metrics
                     if m.kind is MetricKind.INPUT and m.config.edge is Edge.HYPOTHESIS and m.config.parent)

    def formula_chain(self, name: str) -> list[str]:
        """Metrics from `name` up to the North Star along formula edges only; [] if the chain breaks."""
        chain = [name]
        current = self.get(name)
        while current.kind is MetricKind.INPUT:
            if current.config.edge is not Edge.FORMULA or not current.config.parent:
                return []
            current = self.get(current.config.parent)
            chain.append(current.name)
        return chain if current.kind is MetricKind.NORTH_STAR else []


def build_tree(manifest: Manifest) -> Tree:
    nodes = {n.name: n for n in manifest.nodes if n.kind is NodeKind.METRIC}
    children: dict[str, list[str]] = {name: [] for name in nodes}
    for node in nodes.values():
        config = _config(node)
        if config.kind is MetricKind.INPUT and config.parent in children:
            children[config.parent].append(node.name)
    metrics = []
    for name, node in nodes.items():
        config = _config(node)
        formula = parse_formula(config.formula, path=node.relpath, line=config.line) if config.formula else None
        metrics.append(TreeMetric(name, node, config, metric_level(node, nodes), tuple(children[name]), formula))
    tree = Tree(tuple(sorted(metrics, key=_order)))
    _check_formulas(tree)
    return tree


def metric_levels(manifest: Manifest) -> dict[str, int | None]:
    """0 for the North Star, depth below it for inputs, None for counter-metrics."""
    metrics = {n.name: n for n in manifest.nodes if n.kind is NodeKind.METRIC}
    return {name: metric_level(node, metrics) for name, node in metrics.items()}


def _check_formulas(tree: Tree) -> None:
    for metric in tree.metrics:
        formula_children = [c for c in metric.children if tree.get(c).config.edge is Edge.FORMULA]
        if metric.formula is None:
            if formula_children:
                child = tree.get(formula_children[0])
                raise CompileError(
                    f"'{child.name}' has a formula edge to '{metric.name}', which states no formula",
                    path=child.node.relpath, line=child.config.line,
                    hint=f"add formula='...' to {metric.node.relpath.as_posix()}, or make this edge 'hypothesis'")
            continue
        for name in metric.formula.metrics:
            if name not in formula_children:
                why = "is not a metric" if name not in {m.name for m in tree.metrics} else \
                    f"is not a formula child of '{metric.name}' (give it parent='{metric.name}', edge='formula')"
                raise CompileError(f"formula of '{metric.name}' names '{name}', which {why}",
                                   path=metric.node.relpath, line=metric.config.line)
        for name in formula_children:
            if name not in metric.formula.metrics:
                child = tree.get(name)
                raise CompileError(
                    f"'{name}' is a formula child of '{metric.name}' but its formula does not use it",
                    path=child.node.relpath, line=child.config.line,
                    hint=f"add it to the formula of '{metric.name}', or make this edge 'hypothesis'")


def _config(node: CompiledNode) -> MetricConfig:
    assert isinstance(node.config, MetricConfig)
    return node.config


def _order(metric: TreeMetric) -> tuple:
    kind_order = {MetricKind.NORTH_STAR: 0, MetricKind.INPUT: 1, MetricKind.COUNTER: 2, MetricKind.OUTCOME: 3}
    return (kind_order[metric.kind], metric.level if metric.level is not None else 99, metric.name)


def check_one_north_star(tree: Tree) -> None:
    """A build scores one tree: exactly one North Star (lint's NS001/NS002 say the same without failing)."""
    stars = sorted(tree.north_stars, key=lambda m: (-len(m.children), m.name))
    if len(stars) > 1:
        extra = stars[1]
        others = ", ".join(m.node.relpath.as_posix() for m in stars if m is not extra)
        raise CompileError(
            f"'{extra.name}' is a second North Star: {others} is one already; a tree has exactly one",
            path=extra.node.relpath, line=extra.config.line,
            hint="make it an input (kind='input', parent='...') or a counter-metric (kind='counter', guard='...'); "
                 "'northstar lint' reports it as NS002")
    if not stars and tree.metrics:
        first = tree.metrics[0]
        raise CompileError(
            "the tree has no North Star: no metric has kind='north_star'", path=first.node.relpath,
            line=first.config.line,
            hint="give the metric everything hangs from kind='north_star'; 'northstar lint' reports it as NS001")
