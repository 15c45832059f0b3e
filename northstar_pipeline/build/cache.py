"""The compile cache: reuse what did not change between two compiles.

Two levels, as in dbt's partial parsing: a rendered node is reused when its
template, the project's vars, target, grains, as-of time and macros are the
same and the environment variables it read still have the same values; a
compiled node is reused when its rendered SQL, its layer and the columns of
everything it reads are the same. Entries live in ``target/.cache/compile.pkl``
(our own build output, never input from a pull request) and are keyed by the
versions of northstar, sqlglot and duckdb, so an upgrade starts cold.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import duckdb
import sqlglot

from northstar_pipeline import __version__
from northstar_pipeline.build.publish import atomic_path

_VERSIONS = (__version__, sqlglot.__version__, duckdb.__version__)


def cache_key(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class CompileCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._old: dict[str, Any] = {}
        self._used: dict[str, Any] = {}
        if path is not None and path.is_file():
            try:
                versions, entries = pickle.loads(path.read_bytes())
                if versions == _VERSIONS:
                    self._old = entries
            except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError):
                self._old = {}  # a damaged cache is just a cold start

    def get(self, key: str) -> Any | None:
        value = self._old.get(key)
        if value is not None:
            self._used[key] = value
        return value

    def put(self, key: str, value: Any) -> None:
        self._used[key] = value

    def save(self) -> None:
        """Keep only what this compile used, so the file does not grow forever."""
        if self.path is None:
            return
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(pickle.dumps((_VERSIONS, self._used), protocol=pickle.HIGHEST_PROTOCOL))


def environment_matches(recorded: tuple[tuple[str, str | None], ...], environ: Any = None) -> bool:
    environ = os.environ if environ is None else environ
    return all(environ.get(name) == value for name, value in recorded)
