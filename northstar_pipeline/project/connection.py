"""Every DuckDB connection opened for a project, confined to what the project legitimately reads.

A model's SQL comes from a pull request, so the engine itself is the last wall: external access
is off except for the directories and files given here (the sources' folders, the seeds, the
build's own target), extensions are neither installed nor loaded on demand, and the
configuration is locked so no statement can widen any of it (DuckDB's "Securing DuckDB" page).
DuckDB adds its temp (spill) directory to the allowed directories itself. The compile step
rejects file-reading table functions first (build/confine.py); this is the defence behind it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
from sqlglot import exp

from northstar_pipeline.types import Project, Source

_GLOB_CHARACTERS = frozenset("*?[{")


def connect_confined(database: str | Path = ":memory:", *, directories: Iterable[str | Path] = (),
                     files: Iterable[str | Path] = (), read_only: bool = False,
                     config: dict[str, str | int] | None = None,
                     settings: dict[str, bool | str | int] | None = None) -> duckdb.DuckDBPyConnection:
    """Open ``database`` with file access limited to ``directories`` and ``files``, then lock it.

    ``config`` is applied when the database starts (threads, memory_limit, temp_directory);
    ``settings`` are SET before the lock (they cannot change after it).
    """
    start = {"autoinstall_known_extensions": False, "autoload_known_extensions": False, **(config or {})}
    con = duckdb.connect(str(database), read_only=read_only, config=start)
    try:
        # A table name must never resolve to a Python object of the caller's frames (a replacement scan).
        for name, value in {"python_enable_replacements": False, **(settings or {})}.items():
            _set(con, name, _literal(value))
        # allowed_* can only be set on a started database with external access still on.
        _set(con, "allowed_directories", _strings(sorted({_directory(d) for d in directories})))
        _set(con, "allowed_paths", _strings(sorted({str(f) for f in files})))
        _set(con, "enable_external_access", exp.false())
        _set(con, "lock_configuration", exp.true())
    except BaseException:
        con.close()
        raise
    return con


def project_reads(project: Project) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(directories, files) a build of ``project`` reads: its sources, its seeds, its target dir."""
    directories, files = source_reads(project.sources)
    return (tuple(sorted({*directories, str(project.target_dir)})),
            tuple(sorted({*files, *(str(seed.path) for seed in project.seeds)})))


def source_reads(sources: Iterable[Source]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(directories, files) the sources' locations are read from."""
    directories, files = set(), set()
    for source in sources:
        base, is_glob = glob_base(source.location)
        (directories if is_glob else files).add(base)
    return tuple(sorted(directories)), tuple(sorted(files))


def glob_base(location: str) -> tuple[str, bool]:
    """The folder a glob reads under (``/lake/events/**/*.parquet`` -> ``/lake/events``), or the file itself."""
    parts = Path(location).parts
    for index, part in enumerate(parts):
        if _GLOB_CHARACTERS & set(part):
            return str(Path(*parts[:index])) if index else ".", True
    return location, False


def _directory(path: str | Path) -> str:
    text = str(path)
    return text if text.endswith("/") else text + "/"


def _strings(values: Iterable[str]) -> exp.Expression:
    return exp.Array(expressions=[exp.Literal.string(v) for v in values])


def _literal(value: bool | str | int) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    return exp.Literal.string(value)


def _set(con: duckdb.DuckDBPyConnection, name: str, value: exp.Expression) -> None:
    item = exp.SetItem(this=exp.EQ(this=exp.var(name), expression=value))
    con.execute(exp.Set(expressions=[item]).sql("duckdb"))
