"""Pictures of the metric tree: a terminal tree (rich), Mermaid, Graphviz DOT and a standalone SVG.

The tree comes from the compiled project (so it draws even before the first build); when a
scorecard has been published, each metric carries its latest value for the grain, change %,
status and, for hypothesis edges, the tested correlation and lag. A partial latest period is
marked as such.

Notation, after the North Star Framework:

* formula edge (proven arithmetic): solid -- rich ``━━ formula``, Mermaid ``-->``, DOT ``style=solid``;
* hypothesis edge (to be validated on data): dotted -- rich ``┄┄ hypothesis``, Mermaid ``-.->``,
  DOT ``style=dashed``;
* guardrail (a counter-metric beside what it guards): rich ``⛨ guards``, Mermaid a thick ``==>``
  link drawn red, DOT ``style=bold color=red`` with the pair on the same rank.

Every edge points down the tree, from the metric to what explains or guards it: parent -> child,
guarded metric -> counter-metric. Output is deterministic: metrics in review order (see
``report.tree_order``), edges in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

from rich.console import Console, Group
from rich.text import Text
from rich.tree import Tree as RichTree

from northstar_pipeline.build import pipeline
from northstar_pipeline.errors import UsageError
from northstar_pipeline.present.formatting import (
    STATUS_STYLE,
    export,
    format_pct,
    format_value,
    status_word,
    threshold_text,
)
from northstar_pipeline.present.rows import period_title, review_rows, tree_order
from northstar_pipeline.tree.tree import Tree, TreeMetric, build_tree
from northstar_pipeline.types import MetricKind, Project

FORMATS = ("rich", "mermaid", "dot", "svg")
STATUS_FILL = {"green": "#d4edda", "yellow": "#fff3cd", "red": "#f8d7da"}
STATUS_STROKE = {"green": "#2e7d32", "yellow": "#b8860b", "red": "#c62828"}
NO_STATUS_FILL, NO_STATUS_STROKE = "#eeeeee", "#777777"
TREE_WIDTH = 200  # when not writing to a terminal: fixed, so the output is deterministic


@dataclass(frozen=True, slots=True)
class _Node:
    """One metric as drawn: its tree facts plus the latest scorecard row (if any)."""

    metric: TreeMetric
    depth: int
    row: Mapping | None

    @property
    def name(self) -> str:
        return self.metric.name

    @property
    def label(self) -> str:
        return self.metric.config.label

    @property
    def status(self) -> str | None:
        return self.row.get("status") if self.row else None


def render_tree(project: Project, *, fmt: str, grain: str, color: bool | None = None, period: str | None = None,
                width: int | None = None, card: pa.Table | None = None) -> str:
    """The project's metric tree as text in ``fmt`` (rich|mermaid|dot|svg), with one ``grain`` period's values.

    ``period``: default the one every view opens on (``rows.choose_period``: the last complete one).
    ``color`` (rich only; default: stdout is a terminal) keeps ANSI colours; ``width`` (rich): wrap to
    it (default: the terminal's; a fixed 200 off a terminal).
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown tree format '{fmt}'", hint=f"formats: {', '.join(FORMATS)}")
    grains = [g.value for g in project.grains]
    if grain not in grains:
        raise UsageError(f"the project has no grain '{grain}'", hint=f"grains in profiles.yml: {', '.join(grains)}")
    tree = build_tree(pipeline.compile_project(project))
    if card is None and project.scorecard_path.is_file():
        card = pipeline.read_scorecard(project)  # else: a given card, e.g. one segment's (analysis/segments.py)
    review = review_rows(card, grain, period) if card is not None else None
    rows = list(review.rows) if review else []
    nodes = _nodes(tree, rows)
    title = period_title(rows) if rows else f"no scorecard yet for {grain}: run 'northstar build' for values"
    if review and review.to_date:
        title += f"; {review.to_date_title}"
    if fmt == "mermaid":
        return _mermaid(nodes, title)
    if fmt == "dot":
        return _dot(nodes, title)
    if fmt == "svg":
        return _svg(nodes, title)
    return _rich(nodes, title, Console().is_terminal if color is None else color, width)


def _nodes(tree: Tree, rows: list[dict]) -> list[_Node]:
    by_name = {r["metric"]: r for r in rows}
    facts = [{"metric": m.name, "kind": m.kind.value, "parent": m.config.parent or m.config.guard,
              "edge": m.config.edge.value if m.config.edge else None,
              "dimension": m.config.dimension.value if m.config.dimension else None} for m in tree.metrics]
    return [_Node(tree.get(fact["metric"]), depth, by_name.get(fact["metric"])) for fact, depth in tree_order(facts)]


def _children(nodes: list[_Node], parent: _Node) -> list[_Node]:
    return [n for n in nodes if n.metric.kind is MetricKind.INPUT and n.metric.config.parent == parent.name]


def _guards(nodes: list[_Node], guarded: _Node) -> list[_Node]:
    return [n for n in nodes if n.metric.kind is MetricKind.COUNTER and n.metric.config.guard == guarded.name]


def _roots(nodes: list[_Node]) -> list[_Node]:
    names = {n.name for n in nodes}
    return [n for n in nodes if n.metric.kind is MetricKind.NORTH_STAR
            or (n.metric.config.parent or n.metric.config.guard) not in names]


def _value(node: _Node) -> str:
    return format_value(node.row.get("value"), node.metric.config.unit) if node.row else "-"


def _change(node: _Node) -> str:
    return format_pct(node.row.get("change_pct")) if node.row else "-"


def _hypothesis_note(node: _Node) -> str:
    """'r=+0.77, lag 2' from the scorecard, or 'untested' before enough history."""
    if not node.row or node.row.get("correlation") is None:
        return "untested"
    return f"r={node.row['correlation']:+.2f}, lag {node.row['correlation_lag']}"


# rich ------------------------------------------------------------------------------------------------

WIDE_TREE = 160  # from this width each metric is one line; below it three (name, numbers, owner)


def _rich(nodes: list[_Node], title: str, color: bool, width: int | None = None) -> str:
    width = width or (Console().width if color else TREE_WIDTH)
    stacked = width < WIDE_TREE  # a narrow terminal: short lines, so no name is wrapped in two
    trees = []
    for root in _roots(nodes):
        rich_tree = RichTree(_rich_label(root, nodes, stacked))
        _rich_branch(rich_tree, root, nodes, stacked)
        trees.append(rich_tree)
    legend = Text("━━ formula: solid line, proven arithmetic   ┄┄ hypothesis: dotted line, tested by lagged "
                  "correlation   ⛨ guardrail: counter-metric beside what it guards", style="dim")
    group = Group(Text(f"Metric tree · {title}", style="bold"), *trees, legend)
    return export(group, color=color, width=width)


def _rich_branch(branch: RichTree, parent: _Node, nodes: list[_Node], stacked: bool = False) -> None:
    for counter in _guards(nodes, parent):
        branch.add(_rich_label(counter, nodes, stacked))
    for child in _children(nodes, parent):
        _rich_branch(branch.add(_rich_label(child, nodes, stacked)), child, nodes, stacked)


def _rich_label(node: _Node, nodes: list[_Node], stacked: bool = False) -> Text:
    """One line per metric; ``stacked``: the name, then its numbers, then its owner, each on its own line."""
    config = node.metric.config
    text = Text()
    gap = "\n" if stacked else "  "
    hypothesis = config.edge is not None and config.edge.value == "hypothesis" and node.metric.kind is MetricKind.INPUT
    if node.metric.kind is MetricKind.NORTH_STAR:
        text.append("★ North Star  ", style="bold")
    elif node.metric.kind is MetricKind.COUNTER:
        guarded = next((n.label for n in nodes if n.name == config.guard), config.guard)
        text.append(f"⛨ guards {guarded}  ", style="magenta")
    elif config.edge is not None and config.edge.value == "formula":
        text.append("━━ formula  ", style="bold")
    elif stacked:
        text.append("┄┄ hypothesis  ", style="dim")
    else:
        text.append(f"┄┄ hypothesis ({_hypothesis_note(node)})  ", style="dim")
    status = node.status
    text.append("● " if status else "○ ", style=STATUS_STYLE.get(status or "", "dim"))
    text.append(node.label, style="bold" if node.metric.kind is MetricKind.NORTH_STAR else "")
    text.append(f" ({node.name})", style="dim")
    numbers = gap
    if node.row:
        text.append(f"{gap}{_value(node)}  {_change(node)}  ")
        text.append(status_word(node.row), style=STATUS_STYLE.get(status or "", ""))
        numbers = "  · "
    if stacked and hypothesis:
        text.append(f"{numbers}{_hypothesis_note(node)}", style="dim")
        numbers = "  · "
    if node.metric.kind is MetricKind.COUNTER:
        text.append(f"{numbers}threshold: {threshold_text(config.threshold, config.unit)}")
    text.append(f"{gap if stacked else '  · '}{config.owner or 'no owner'}", style="cyan")
    if config.dimension is not None:
        text.append(f" · {config.dimension.value}", style="dim")
    return text


# Mermaid ---------------------------------------------------------------------------------------------

def _mermaid(nodes: list[_Node], title: str) -> str:
    lines = ["flowchart TD", f"    %% {_mermaid_comment(title)}",
             "    %% --> formula (solid), -.-> hypothesis (dotted), ==> guarded by a counter-metric (red);"
             " edges point from a metric to what explains or guards it"]
    for node in nodes:
        lines.append(f"    {node.name}{_mermaid_shape(node)}")
    edges: list[tuple[str, str]] = []  # (kind, line)
    for node in nodes:
        for counter in _guards(nodes, node):
            note = threshold_text(counter.metric.config.threshold, counter.metric.config.unit)
            edges.append(("guardrail", f"    {node.name} ==>|\"⛨ guarded by ({_mermaid_text(note)})\"| {counter.name}"))
        for child in _children(nodes, node):
            if child.metric.config.edge is not None and child.metric.config.edge.value == "formula":
                edges.append(("formula", f"    {node.name} --> {child.name}"))
            else:
                edges.append(("hypothesis", f"    {node.name} -.->|\"{_hypothesis_note(child)}\"| {child.name}"))
    lines += [line for _, line in edges]
    for status in ("green", "yellow", "red"):
        lines.append(f"    classDef {status} fill:{STATUS_FILL[status]},stroke:{STATUS_STROKE[status]},color:#000")
    lines.append(f"    classDef nostatus fill:{NO_STATUS_FILL},stroke:{NO_STATUS_STROKE},color:#000")
    for status in ("green", "yellow", "red", "nostatus"):
        members = [n.name for n in nodes if (n.status or "nostatus") == status]
        if members:
            lines.append(f"    class {','.join(members)} {status}")
    guard_links = [str(i) for i, (kind, _) in enumerate(edges) if kind == "guardrail"]
    if guard_links:
        lines.append(f"    linkStyle {','.join(guard_links)} stroke:#c62828,stroke-width:3px")
    return "\n".join(lines) + "\n"


def _mermaid_shape(node: _Node) -> str:
    """North Star a stadium, counter-metrics a hexagon, inputs a rectangle."""
    parts = [f"<b>{_mermaid_text(node.label)}</b>"]
    if node.row:
        parts.append(f"{_value(node)} · {_change(node)} · {status_word(node.row)}")
    parts.append(_mermaid_text(node.metric.config.owner or "no owner"))
    label = '"' + "<br/>".join(parts) + '"'
    if node.metric.kind is MetricKind.NORTH_STAR:
        return f"([{label}])"
    if node.metric.kind is MetricKind.COUNTER:
        return "{{" + label + "}}"
    return f"[{label}]"


def _mermaid_text(text: str) -> str:
    return text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _mermaid_comment(text: str) -> str:
    return " ".join(text.split())


# Graphviz DOT ----------------------------------------------------------------------------------------

def _dot(nodes: list[_Node], title: str) -> str:
    lines = ["digraph metric_tree {", "    rankdir=TB;", f"    label={_dot_str('Metric tree · ' + title)};",
             "    labelloc=t;", '    node [shape=box, style="rounded,filled", fontname="Helvetica"];',
             '    edge [fontname="Helvetica", fontsize=10];']
    for node in nodes:
        fill = STATUS_FILL.get(node.status or "", NO_STATUS_FILL)
        stroke = STATUS_STROKE.get(node.status or "", NO_STATUS_STROKE)
        text = [node.label]
        if node.row:
            text.append(f"{_value(node)} · {_change(node)} · {status_word(node.row)}")
        text.append(node.metric.config.owner or "no owner")
        extra = ""
        if node.metric.kind is MetricKind.NORTH_STAR:
            extra = ", penwidth=3, shape=box"
        elif node.metric.kind is MetricKind.COUNTER:
            extra = ', shape=hexagon, style="filled"'
        lines.append(f"    {_dot_str(node.name)} [label={_dot_str(chr(10).join(text))}, fillcolor=\"{fill}\", "
                     f"color=\"{stroke}\"{extra}];")
    for node in nodes:
        for counter in _guards(nodes, node):
            note = threshold_text(counter.metric.config.threshold, counter.metric.config.unit)
            lines.append(f"    {_dot_str(node.name)} -> {_dot_str(counter.name)} [style=bold, color=red, "
                         f"label={_dot_str('guarded by (' + note + ')')}];")
            lines.append(f"    {{ rank=same; {_dot_str(node.name)}; {_dot_str(counter.name)}; }}")
        for child in _children(nodes, node):
            if child.metric.config.edge is not None and child.metric.config.edge.value == "formula":
                lines.append(f"    {_dot_str(node.name)} -> {_dot_str(child.name)} [style=solid, label=\"formula\"];")
            else:
                lines.append(f"    {_dot_str(node.name)} -> {_dot_str(child.name)} [style=dashed, "
                             f"label={_dot_str('hypothesis: ' + _hypothesis_note(child))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# SVG -------------------------------------------------------------------------------------------------

def _svg(nodes: list[_Node], title: str) -> str:
    from northstar_pipeline.present.tree_svg import render_svg

    rows = []
    for node in nodes:
        config = node.metric.config
        facts = {"metric": node.name, "label": node.label, "kind": node.metric.kind.value,
                 "parent": config.parent or config.guard, "edge": config.edge.value if config.edge else None,
                 "owner": config.owner, "unit": config.unit}
        rows.append({**facts, **{k: node.row.get(k) for k in ("value", "change_pct", "status", "guardrail_breached")}}
                    if node.row else facts)
    return render_svg(rows, title=f"Metric tree · {title}")


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
