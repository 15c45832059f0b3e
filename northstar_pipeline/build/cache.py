"""The compile cache: reuse what did not change between two compiles.

Two levels, as in dbt's partial parsing: a rendered node is reused when its
template, the project's vars, target, grains, as-of time and macros are the
same and the environment variables it read still have the same values; a
compiled node is reused when its rendered SQL, its layer and the columns of
everything it reads are the same. Entries live in ``target/.cache/compile.json``
and are keyed by the versions of northstar, sqlglot and duckdb, so an upgrade
starts cold.

target/ may come from a pull request (committed, or a target_path pointing at a
committed folder), so the file is data, never code: JSON whose only objects are
the frozen values of ``types.py`` named in ``_TYPES``, checked on the way in. A
file that is damaged, of another format or version, or names anything else is
ignored whole and rebuilt. Environment variables are kept as hashes, not values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
from enum import Enum
from pathlib import Path
from typing import Any

import duckdb
import sqlglot

from northstar_pipeline import __version__, types
from northstar_pipeline.build.publish import atomic_path
from northstar_pipeline.project.sealed import machine_key as _machine_key  # the same key seals target/.cache/

CACHE_FORMAT = "northstar-compile-cache"
CACHE_VERSION = 2  # 2: SegmentCut.partials_sql, value_sql
_VERSIONS = [__version__, sqlglot.__version__, duckdb.__version__]
_TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    types.RenderedNode, types.RenderedQuery, types.CompiledNode, types.Column, types.ModelConfig,
    types.MetricConfig, types.Threshold, types.SegmentQuery, types.SegmentCut)}
_ENUMS: dict[str, type[Enum]] = {cls.__name__: cls for cls in (
    types.Grain, types.NodeKind, types.MetricKind, types.Edge, types.Dimension, types.Direction)}
_SKIPPED_FIELDS = {"ast"}  # rebuilt from the SQL text when needed


class CacheFormatError(ValueError):
    """The file is not a cache this version wrote: it is ignored."""


def cache_key(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class CompileCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._old: dict[str, Any] = {}
        self._raw: dict[str, Any] = {}  # the file's JSON of each entry: saved again as it is while unchanged
        self._used: dict[str, Any] = {}
        self.missed: list[tuple[str, str]] = []  # (step, node) done afresh: the JSON log's compile event
        self._put = False  # an entry added since the file was read or last written
        if path is not None and path.is_file():
            try:
                self._raw = read_raw_entries(path.read_bytes())
                self._old = {name: decode(value) for name, value in self._raw.items()}
            except (OSError, ValueError, TypeError, RecursionError):  # damaged or foreign: a cold start
                self._old, self._raw = {}, {}
        self._on_disk: set[str] = set(self._old)

    def get(self, key: str) -> Any | None:
        value = self._used.get(key, self._old.get(key))  # _used: a build's second compile sees the first's entries
        if value is not None:
            self._used[key] = value
        return value

    def put(self, key: str, value: Any) -> None:
        self._used[key] = value
        self._put = True

    def note_miss(self, step: str, name: str) -> None:
        """Record that ``step`` (render, compile) of node ``name`` was not served from the cache."""
        self.missed.append((step, name))

    def save(self) -> None:
        """Keep only what this compile used, so the file does not grow forever."""
        if self.path is None:
            return
        if not self._put and self._used.keys() == self._on_disk:
            return  # a warm compile that used every entry and added none: the file already holds them
        key = _machine_key()
        if key is None:
            return  # nowhere to keep a key: every compile is cold, never trusting a file it cannot check
        entries: dict[str, Any] = {}
        for name, value in self._used.items():
            if name in self._raw and value is self._old.get(name):  # read from the file and not replaced
                entries[name] = self._raw[name]
                continue
            try:
                entries[name] = encode(value)
            except TypeError:
                continue  # a value JSON cannot hold is simply not cached
        body = json.dumps(entries, separators=(",", ":")).encode()
        header = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "versions": _VERSIONS,
                  "mac": hmac.new(key, body, hashlib.sha256).hexdigest()}
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(json.dumps(header).encode() + b"\n" + body)
        self._on_disk, self._put = set(entries), False  # a build's second compile saves against this file


def read_entries(data: bytes) -> dict[str, Any]:
    """The entries of a cache file this machine wrote for these versions, else {}."""
    return {name: decode(value) for name, value in read_raw_entries(data).items()}


def read_raw_entries(data: bytes) -> dict[str, Any]:
    """The entries (their JSON, not decoded) of a cache file this machine wrote for these versions, else {}.

    The header carries an HMAC of the entries under a key kept outside the project (``_machine_key``):
    a cache committed to a pull request, or written on another machine, does not verify and is ignored.
    CacheFormatError when the file is not a cache at all.
    """
    head, _, body = data.partition(b"\n")
    header = json.loads(head)
    if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT:
        raise CacheFormatError("not a northstar compile cache")
    if header.get("version") != CACHE_VERSION or header.get("versions") != _VERSIONS:
        return {}
    key = _machine_key()
    mac = header.get("mac")
    if key is None or not isinstance(mac, str) or not hmac.compare_digest(
            mac, hmac.new(key, body, hashlib.sha256).hexdigest()):
        return {}
    entries = json.loads(body)
    if not isinstance(entries, dict):
        raise CacheFormatError("cache entries must be a mapping")
    return {str(name): value for name, value in entries.items()}


def encode(value: Any) -> Any:
    """JSON for the cached values: tagged frozen dataclasses, enums and paths; tuples as lists."""
    if value is None or isinstance(value, (bool, int, float, str)) and not isinstance(value, Enum):
        return value
    if isinstance(value, Enum) and type(value).__name__ in _ENUMS:
        return {"enum": type(value).__name__, "value": value.value}
    if isinstance(value, Path):
        return {"path": str(value)}
    if isinstance(value, (tuple, list)):
        return [encode(item) for item in value]
    if dataclasses.is_dataclass(value) and _TYPES.get(type(value).__name__) is type(value):
        return {"type": type(value).__name__, "fields": {
            f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in _SKIPPED_FIELDS}}
    raise TypeError(f"cannot cache a {type(value).__name__}")


def decode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return tuple(decode(item) for item in value)
    if isinstance(value, dict):
        if set(value) == {"path"} and isinstance(value["path"], str):
            return Path(value["path"])
        if set(value) == {"enum", "value"} and value["enum"] in _ENUMS:
            return _ENUMS[value["enum"]](value["value"])
        if set(value) == {"type", "fields"} and value["type"] in _TYPES and isinstance(value["fields"], dict):
            cls = _TYPES[value["type"]]
            names = {f.name for f in dataclasses.fields(cls)} - _SKIPPED_FIELDS
            if not set(value["fields"]) <= names:
                raise CacheFormatError(f"unknown fields of {value['type']}")
            return cls(**{name: decode(item) for name, item in value["fields"].items()})
    raise CacheFormatError("unexpected value in the cache")


def env_value_hash(value: str | None) -> str | None:
    """What the cache keeps of an environment variable: enough to see it changed, not its value."""
    return None if value is None else hashlib.sha256(("northstar-env\0" + value).encode()).hexdigest()


def environment_matches(recorded: tuple[tuple[str, str | None], ...], environ: Any = None) -> bool:
    environ = os.environ if environ is None else environ
    return all(env_value_hash(environ.get(name)) == value for name, value in recorded)
