"""What the BI database was last written with, so a build whose views are the same leaves it alone.

The views name the published files by path, not their contents: every night they are the same
statements, and rewriting the database (a 270 KB DuckDB file in the v1.0.0 format) cost 40-110 ms
of each build. ``target/.cache/bi.json`` records the statements' digest (with the columns they
bind to) and the file's identity (size, mtime, inode, ctime) as written; the file is rewritten when either
differs (new views, a moved project, a deleted or edited file). The file carries an HMAC under
this machine's key (project/sealed.py): one committed or copied from elsewhere is ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb

from northstar_pipeline.project.sealed import file_identity, read_sealed, write_sealed
from northstar_pipeline.types import Project

_KIND = "northstar-bi-state"


def _state_path(project: Project) -> Path:
    return project.target_dir / ".cache" / "bi.json"


def _digest(path: Path, statements: list[str], files: list[Path], history: Path) -> str:
    """The statements, where they are written, and the columns their views bind to: the published files'
    schemas and the oldest history partition (pruning it can drop a column from the history's union)."""
    payload = json.dumps({"path": str(path.resolve()), "duckdb": duckdb.__version__, "statements": statements,
                          "schemas": _schemas(files), "oldest": min((p.name for p in history.glob("build_date=*")),
                                                                    default=None)})
    return hashlib.sha256(payload.encode()).hexdigest()


def _schemas(files: list[Path]) -> list[str | None]:
    """Each file's Parquet schema (names and types), from its footer (pyarrow: a build has it loaded; a DuckDB
    connection would cost more than the check saves)."""
    import pyarrow.parquet as pq

    schemas: list[str | None] = []
    for file in files:
        try:
            schemas.append(pq.read_schema(file).remove_metadata().to_string())
        except (OSError, ValueError):  # missing or unreadable: None, so a file that appears changes the digest
            schemas.append(None)
    return schemas


def bi_unchanged(project: Project, path: Path, statements: list[str], files: list[Path], history: Path) -> bool:
    """The file at ``path`` is the one last written, from these statements over these files' columns."""
    state = read_sealed(_state_path(project), _KIND)  # committed or copied from elsewhere: not trusted
    return (isinstance(state, dict) and state.get("digest") == _digest(path, statements, files, history)
            and file_identity(path) is not None and state.get("file") == file_identity(path))


def record_bi(project: Project, path: Path, statements: list[str], files: list[Path], history: Path) -> None:
    """Remember the database just swapped in at ``path`` (a failure only means the next build rewrites it)."""
    write_sealed(_state_path(project), _KIND, {"digest": _digest(path, statements, files, history),
                                                "file": file_identity(path)})
