"""Typed values of profiles.yml and sources.yml, checked once at load with the line they are on.

YAML gives strings, numbers and booleans; a wrong type found later (DuckDB refusing a memory
limit at connect, the string 'false' read as true) would point nowhere. Each check here raises a
ProjectError naming the file and line, so `compile` and `build` fail the same way, before any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from northstar_pipeline.errors import ProjectError


def read_text(path: Path, rel: Path) -> str:
    """A project file as UTF-8 text, or a located error naming the first byte that is not."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ProjectError(f"file is not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded",
                           path=rel, line=line, col=col,
                           hint="save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def as_bool(value: Any, key: str, rel: Path, line: int | None) -> bool:
    """A YAML boolean; the string 'false' is truthy in Python, so strings are refused."""
    if isinstance(value, bool):
        return value
    raise ProjectError(f"{key} must be true or false, got {value!r}", path=rel, line=line,
                       hint=f"write {key}: true or {key}: false, without quotes")


def as_text(value: Any, key: str, rel: Path, line: int | None) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
        return str(value)
    raise ProjectError(f"{key} must be a non-empty string, got {value!r}", path=rel, line=line,
                       hint=f"write {key}: some_value")


def as_share(value: Any, key: str, rel: Path, line: int | None) -> float:
    """A share between 0 and 1 (e.g. 0.5 = half)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise ProjectError(f"{key} must be a number between 0 and 1, got {value!r}", path=rel, line=line,
                       hint=f"e.g. {key}: 0.5 (stop a build whose table loses more than half its rows)")


def check_engine_setting(name: str, value: Any, key: str, rel: Path, line: int | None) -> None:
    """Ask DuckDB itself whether it accepts the setting (e.g. memory_limit '4GB' yes, 'lots' no)."""
    try:
        duckdb.connect(":memory:", config={name: value}).close()
    except (duckdb.Error, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProjectError(f"{key}: DuckDB does not accept {value!r}: {first}", path=rel, line=line,
                           hint="e.g. memory_limit: 4GB (a number and a unit: KB, MB, GB, TB)") from None


def check_path_usable(path: Path, key: str, rel: Path, line: int | None, *, is_file: bool = True) -> None:
    """Every folder above a path we will create must be a folder (or not exist yet)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ProjectError(f"{key} {path} is under {parent}, which is a file, not a folder",
                                   path=rel, line=line, hint=f"point {key} at a path inside a folder")
            break
    if is_file and path.is_dir():
        raise ProjectError(f"{key} {path} is a folder", path=rel, line=line, hint=f"{key} names a file")
