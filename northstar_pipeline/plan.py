"""Plan a build: parse selectors, pick nodes, group them into topological layers.

Selector grammar (as in dbt): ``name``, ``+name`` (with ancestors), ``name+``
(with descendants), ``+name+``, ``tag:x``, ``kind:metric``; several selectors
separated by spaces or commas are a union. A selector is not SQL, so a regex
is the right tool here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import get_close_matches

from .errors import UsageError
from .types import CompiledNode, Manifest

_SELECTOR = re.compile(r"^(?P<up>\+)?(?P<method>tag:|kind:)?(?P<value>[A-Za-z0-9_.\-]+)(?P<down>\+)?$")


@dataclass(frozen=True, slots=True)
class Selector:
    value: str
    method: str = "name"  # name | tag | kind
    ancestors: bool = False
    descendants: bool = False


@dataclass(frozen=True, slots=True)
class Layer:
    depth: int
    nodes: tuple[CompiledNode, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    layers: tuple[Layer, ...]

    @property
    def nodes(self) -> tuple[CompiledNode, ...]:
        return tuple(node for layer in self.layers for node in layer.nodes)


def parse_selectors(text: str | tuple[str, ...] | None) -> tuple[Selector, ...]:
    if not text:
        return ()
    words = text if isinstance(text, tuple) else (text,)
    selectors = []
    for word in (w for item in words for w in re.split(r"[\s,]+", item) if w):
        match = _SELECTOR.match(word)
        if not match:
            raise UsageError(f"cannot read selector '{word}'", hint="use name, +name, name+, tag:x or kind:metric")
        selectors.append(Selector(
            value=match["value"],
            method=(match["method"] or "name:").rstrip(":"),
            ancestors=bool(match["up"]),
            descendants=bool(match["down"]),
        ))
    return tuple(selectors)


def plan_layers(manifest: Manifest, select: tuple[Selector, ...] = (), exclude: tuple[Selector, ...] = ()) -> Plan:
    nodes = {node.name: node for node in manifest.nodes}
    parents = {name: tuple(d for d in node.depends_on if d in nodes) for name, node in nodes.items()}
    children: dict[str, set[str]] = {name: set() for name in nodes}
    for name, ups in parents.items():
        for up in ups:
            children[up].add(name)

    chosen = set(nodes) if not select else set().union(*(_expand(s, nodes, parents, children) for s in select))
    for selector in exclude:
        chosen -= _expand(selector, nodes, parents, children)

    depth: dict[str, int] = {}
    for node in manifest.nodes:  # manifest order is topological
        depth[node.name] = 1 + max((depth[p] for p in parents[node.name]), default=-1)
    by_depth: dict[int, list[CompiledNode]] = {}
    for node in manifest.nodes:
        if node.name in chosen:
            by_depth.setdefault(depth[node.name], []).append(node)
    return Plan(tuple(Layer(d, tuple(by_depth[d])) for d in sorted(by_depth)))


def _expand(selector: Selector, nodes: dict, parents: dict, children: dict) -> set[str]:
    if selector.method == "tag":
        base = {n for n, node in nodes.items() if selector.value in node.tags}
    elif selector.method == "kind":
        base = {n for n, node in nodes.items() if node.kind.value == selector.value}
    else:
        base = {selector.value} if selector.value in nodes else set()
    if not base:
        close = get_close_matches(selector.value, sorted(nodes), n=1)
        raise UsageError(f"selector '{selector.method}:{selector.value}' matches no node",
                         hint=f"did you mean '{close[0]}'?" if close else "list nodes with 'northstar ls'")
    result = set(base)
    if selector.ancestors:
        result |= _walk(base, parents)
    if selector.descendants:
        result |= _walk(base, children)
    return result


def _walk(start: set[str], edges: dict) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        for nxt in edges[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen
