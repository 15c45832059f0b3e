"""Plan a build: parse selectors, pick nodes, group them into topological layers.

Selector grammar (as in dbt): ``name``, ``+name`` (with ancestors), ``name+``
(with descendants), ``+name+``, ``tag:x``, ``kind:metric``, ``state:modified``
and ``state:new`` (against the manifest.json of an earlier run, ``--state DIR``);
several selectors separated by spaces or commas are a union. A selector is not
SQL, so a regex is the right tool here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

from northstar_pipeline.build.publish import manifest_payload
from northstar_pipeline.errors import UsageError
from northstar_pipeline.types import CompiledNode, Manifest

_SELECTOR = re.compile(r"^(?P<up>\+)?(?P<method>tag:|kind:|state:)?(?P<value>[A-Za-z0-9_.\-]+)(?P<down>\+)?$")
STATES = ("modified", "new")


@dataclass(frozen=True, slots=True)
class Selector:
    value: str
    method: str = "name"  # name | tag | kind | state
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
        if match["method"] == "state:" and match["value"] not in STATES:
            raise UsageError(f"unknown state selector '{word}'", hint="use state:modified or state:new")
        selectors.append(Selector(
            value=match["value"],
            method=(match["method"] or "name:").rstrip(":"),
            ancestors=bool(match["up"]),
            descendants=bool(match["down"]),
        ))
    return tuple(selectors)


def plan_layers(manifest: Manifest, select: tuple[Selector, ...] = (), exclude: tuple[Selector, ...] = (),
                state: Mapping[str, str] | None = None) -> Plan:
    """Layers of the selected nodes. ``state`` maps node names to fingerprints of an earlier run."""
    nodes = {node.name: node for node in manifest.nodes}
    parents, children = _edges(manifest)

    current = node_fingerprints(manifest_payload(manifest)) if state is not None else {}

    def expand(selector: Selector) -> set[str]:
        return _expand(selector, nodes, parents, children, state, current)

    chosen = set(nodes) if not select else set().union(*(expand(s) for s in select))
    for selector in exclude:
        chosen -= expand(selector)

    depth: dict[str, int] = {}
    for node in manifest.nodes:  # manifest order is topological
        depth[node.name] = 1 + max((depth[p] for p in parents[node.name]), default=-1)
    by_depth: dict[int, list[CompiledNode]] = {}
    for node in manifest.nodes:
        if node.name in chosen:
            by_depth.setdefault(depth[node.name], []).append(node)
    return Plan(tuple(Layer(d, tuple(by_depth[d])) for d in sorted(by_depth)))


def descendants(manifest: Manifest, name: str) -> set[str]:
    """Every node that reads ``name``, directly or through others."""
    return _walk({name}, _edges(manifest)[1])


def _edges(manifest: Manifest) -> tuple[dict[str, tuple[str, ...]], dict[str, set[str]]]:
    """(parents, children) of every node, over nodes only (sources are not nodes)."""
    names = {node.name for node in manifest.nodes}
    parents = {node.name: tuple(d for d in node.depends_on if d in names) for node in manifest.nodes}
    children: dict[str, set[str]] = {name: set() for name in names}
    for name, ups in parents.items():
        for up in ups:
            children[up].add(name)
    return parents, children


def node_fingerprints(manifest_json: Mapping) -> dict[str, str]:
    """Per node, what makes it "modified": its compiled SQL (definition_hash) and its config."""
    def config(node: Mapping) -> dict:  # where config() sits in the file is not part of the definition
        return {k: v for k, v in (node.get("config") or {}).items() if k != "line"}

    return {name: json.dumps([node.get("definition_hash"), config(node)], sort_keys=True, default=str)
            for name, node in manifest_json.get("nodes", {}).items()}


def load_state(directory: Path | str) -> dict[str, str]:
    """Fingerprints from the manifest.json in ``directory`` (an earlier run's target/), for state: selectors."""
    path = Path(directory) / "manifest.json"
    try:
        return node_fingerprints(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}",
                         hint="--state takes the target/ directory of an earlier run (it holds manifest.json)") from None


def _expand(selector: Selector, nodes: dict, parents: dict, children: dict, state: Mapping[str, str] | None,
            current: Mapping[str, str]) -> set[str]:
    if selector.method == "state":
        if state is None:
            raise UsageError(f"'state:{selector.value}' needs --state DIR",
                             hint="point --state at a directory holding the manifest.json of the run to compare with")
        new = {n for n in nodes if n not in state}
        base = new if selector.value == "new" else new | {n for n in nodes if n in state and state[n] != current[n]}
        return base | _related(base, selector, parents, children)  # nothing changed is a fine, empty answer
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
    return base | _related(base, selector, parents, children)


def _related(base: set[str], selector: Selector, parents: dict, children: dict) -> set[str]:
    result: set[str] = set()
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
