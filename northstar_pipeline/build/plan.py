"""Plan a build: parse selectors, pick nodes, group them into topological layers.

Selector grammar, with dbt's meanings (docs.getdbt.com, "Node selection syntax"):

- methods: ``name`` (the default; Unix wildcards ``stg_*``), ``tag:x``, ``kind:metric``
  (``resource_type:`` too), ``path:metrics/`` (a folder or file; a bare word with a ``/`` is a
  path), ``file:x.sql``, ``source:raw`` / ``source:raw.events`` (the nodes that read it: sources
  are views here, not nodes), ``config.KEY:VALUE`` (``config.owner:Engagement``, a
  threshold key such as ``config.warn_change_pct:3``), ``state:modified`` / ``state:new``
  (against the manifest.json of an earlier run, ``--state DIR``);
- graph operators: ``+name`` (all ancestors), ``name+`` (all descendants), ``2+name`` /
  ``name+1`` (up to that many edges), ``@name`` (descendants and all their ancestors);
- set operators: words separated by a space (or repeated options) are a union; words joined
  by a comma with no space are an intersection (``tag:ops,kind:metric``).

Methods first, then graph operators, then sets, then ``--exclude``. A selector is not SQL, so
a regex is the right tool here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from difflib import get_close_matches
from pathlib import Path

from northstar_pipeline.build.publish import manifest_payload
from northstar_pipeline.errors import UsageError
from northstar_pipeline.types import CompiledNode, Manifest

_SELECTOR = re.compile(r"^(?P<at>@)?(?:(?P<up_n>\d*)(?P<up>\+))?"
                       r"(?P<method>(?:tag|kind|resource_type|state|path|file|source|name|config\.[A-Za-z_]+):)?"
                       r"(?P<value>[A-Za-z0-9_.\-/*?\[\]&]+?)(?:(?P<down>\+)(?P<down_n>\d*))?$")
STATES = ("modified", "new")
METHODS = ("name", "tag", "kind", "resource_type", "path", "file", "source", "config.KEY", "state")


@dataclass(frozen=True, slots=True)
class Selector:
    value: str
    method: str = "name"  # name | tag | kind | path | file | source | config.<key> | state
    ancestors: bool = False
    descendants: bool = False
    ancestor_depth: int | None = None  # 2+name: at most 2 edges up; None: all the way
    descendant_depth: int | None = None
    at: bool = False  # @name: descendants and every ancestor of them


@dataclass(frozen=True, slots=True)
class Intersection:
    """Comma-joined selectors: the nodes every part selects."""

    parts: tuple[Selector, ...]


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


def parse_selectors(text: str | tuple[str, ...] | None) -> tuple[Selector | Intersection, ...]:
    """Each space-separated word (of each option) is a union member; a comma inside a word intersects."""
    if not text:
        return ()
    words = text if isinstance(text, tuple) else (text,)
    selection: list[Selector | Intersection] = []
    for word in (w for item in words for w in item.split() if w):
        parts = tuple(parse_selector(part) for part in word.split(",") if part)
        if parts:
            selection.append(parts[0] if len(parts) == 1 else Intersection(parts))
    return tuple(selection)


def parse_selector(word: str) -> Selector:
    match = _SELECTOR.match(word)
    if not match or (match["at"] and match["up"]):
        raise UsageError(f"cannot read selector '{word}'",
                         hint="use name, +name, name+, 2+name, name+1, @name, tag:x, kind:metric, path:metrics/, "
                              "source:raw, config.owner:X or state:modified; join with ',' to intersect")
    method = (match["method"] or "").rstrip(":") or ("path" if "/" in match["value"] else "name")
    if method == "resource_type":
        method = "kind"
    if method == "state" and match["value"] not in STATES:
        raise UsageError(f"unknown state selector '{word}'", hint="use state:modified or state:new")
    return Selector(
        value=match["value"],
        method=method,
        ancestors=bool(match["up"]),
        descendants=bool(match["down"]) or bool(match["at"]),
        ancestor_depth=int(match["up_n"]) if match["up_n"] else None,
        descendant_depth=int(match["down_n"]) if match["down_n"] else None,
        at=bool(match["at"]),
    )


def plan_layers(manifest: Manifest, select: tuple[Selector | Intersection, ...] = (),
                exclude: tuple[Selector | Intersection, ...] = (), state: Mapping[str, str] | None = None) -> Plan:
    """Layers of the selected nodes. ``state`` maps node names to fingerprints of an earlier run."""
    nodes = {node.name: node for node in manifest.nodes}
    parents, children = _edges(manifest)

    current = node_fingerprints(manifest_payload(manifest)) if state is not None else {}

    def expand(selector: Selector | Intersection) -> set[str]:
        if isinstance(selector, Intersection):
            return set.intersection(*(expand(part) for part in selector.parts))
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
    base = {n for n, node in nodes.items() if _matches(selector, node)}
    if not base:
        close = get_close_matches(selector.value, sorted(nodes), n=1) if selector.method == "name" else []
        raise UsageError(f"selector '{selector.method}:{selector.value}' matches no node",
                         hint=f"did you mean '{close[0]}'?" if close else "list nodes with 'northstar ls'")
    return base | _related(base, selector, parents, children)


def _matches(selector: Selector, node: CompiledNode) -> bool:
    """The method's test of one node (dbt's: Unix wildcards wherever a name or a value is matched)."""
    method, value = selector.method, selector.value
    if method == "name":
        return fnmatchcase(node.name, value)
    if method == "tag":
        return any(fnmatchcase(tag, value) for tag in node.tags)
    if method == "kind":
        return node.kind.value == value
    if method == "path":
        path, folder = node.relpath.as_posix(), value.removeprefix("./").rstrip("/")
        return path == folder or path.startswith(folder + "/") or fnmatchcase(path, folder)
    if method == "file":
        return fnmatchcase(node.relpath.name, value) or fnmatchcase(node.relpath.stem, value)
    if method == "source":
        sources = [d for d in node.depends_on if "." in d]  # "raw.events"; refs never hold a dot
        return any(fnmatchcase(s, value) if "." in value else fnmatchcase(s.split(".")[0], value) for s in sources)
    if method.startswith("config."):
        return any(fnmatchcase(text, value) for text in _config_values(node, method.removeprefix("config.")))
    raise UsageError(f"unknown selector method '{method}'", hint=f"use one of {', '.join(METHODS)}")


def _config_values(node: CompiledNode, key: str) -> list[str]:
    """A config key's value(s) as text: 10 for 10.0, true/false, each item of a list."""
    config = node.config
    if config is None:
        return []
    if hasattr(config, key):
        value = getattr(config, key)
    elif getattr(config, "threshold", None) is not None and hasattr(config.threshold, key):
        value = getattr(config.threshold, key)
    else:
        return []
    values = value if isinstance(value, tuple) else (value,)
    texts = []
    for item in values:
        item = getattr(item, "value", item)  # enums by their value
        if isinstance(item, tuple):
            item = item[0]  # lint_ignore pairs: the rule id
        if item is None:
            continue
        if isinstance(item, bool):
            texts.append(str(item).lower())
        elif isinstance(item, float) and item.is_integer():
            texts.append(str(int(item)))
        else:
            texts.append(str(item))
    return texts


def _related(base: set[str], selector: Selector, parents: dict, children: dict) -> set[str]:
    result: set[str] = set()
    if selector.descendants:
        result |= _walk(base, children, selector.descendant_depth)
    if selector.at:
        result |= _walk(base | result, parents)  # @: every ancestor of the node and of its descendants
    elif selector.ancestors:
        result |= _walk(base, parents, selector.ancestor_depth)
    return result


def _walk(start: set[str], edges: dict, depth: int | None = None) -> set[str]:
    """Nodes reachable from ``start`` along ``edges`` in at most ``depth`` steps (None: any number)."""
    seen: set[str] = set()
    frontier, steps = set(start), 0
    while frontier and (depth is None or steps < depth):
        frontier = {nxt for name in frontier for nxt in edges[name]} - seen
        seen |= frontier
        steps += 1
    return seen
