"""Publish the scorecard as Parquet, and the run artifacts as JSON, atomically.

Every file is written next to its final path and swapped in with os.replace,
so a reader never sees half a file and a failed build leaves the previous
one untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import duckdb

from northstar_pipeline.build.stable_layout import lay_out
from northstar_pipeline.errors import PublishError
from northstar_pipeline.types import CompiledNode, Manifest, NodeKind, RunResult

SCORECARD_SCHEMA_VERSION = "1"
SCORECARD_TABLE = "scorecard.scorecard"
VALIDATION_TABLE = "scorecard.tree_validation"


def write_table(con: duckdb.DuckDBPyConnection, table_name: str, path: Path) -> None:
    """Write a table to Parquet at a path readers may hold open (laid out by build/stable_layout.py)."""
    write_stable(path, parquet_bytes(con, table_name, {b"northstar.schema_version": SCORECARD_SCHEMA_VERSION.encode()}))


def parquet_bytes(con: duckdb.DuckDBPyConnection, table_name: str, metadata: dict[bytes, bytes]) -> bytes:
    """A table as Parquet bytes (zstd), with ``metadata`` in the schema's key-value metadata."""
    import io

    import pyarrow.parquet as pq  # imported here: compile-only commands never need it

    table = con.table(table_name).to_arrow_table()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def write_stable(path: Path, data: bytes) -> None:
    """Swap in ``data`` at ``path`` (temp file + rename), keeping the previous file's column chunks at their
    offsets: a reader that read the old footer and opens the path again still reads the old version."""
    try:
        previous = path.read_bytes() if path.is_file() else None
    except OSError:
        previous = None
    laid = lay_out(previous, data)
    with atomic_path(path) as tmp:
        tmp.write_bytes(laid)


KEEP_VERSIONS = 10  # immutable versions kept beside the stable path; older ones are removed


def publish_scorecard(con: duckdb.DuckDBPyConnection, table_name: str, path: Path, built_at: str, run_id: str) -> Path:
    """Publish a new immutable version, then point the stable path and `latest` at it.

    - `<dir>/<stem>/v-<built_at>-<run_id>.parquet` is written once (temp file + rename) and never
      rewritten: a reader holding its name can open it any number of times and read the same bytes.
    - `<dir>/<stem>/latest` holds that file's name (replaced atomically).
    - the stable path (`target/scorecard.parquet`) gets the same table, laid out so that the previous
      version's column chunks stay at their offsets (build/stable_layout.py): pyarrow.parquet.read_table
      opens a path twice and reads pages at the offsets of the footer it read first, and still reads
      one whole version when a publish lands between its two opens.
    """
    versions = path.with_suffix("")
    stamp = built_at.replace("-", "").replace(":", "")
    version = versions / f"v-{stamp}-{run_id}.parquet"
    data = parquet_bytes(con, table_name, {b"northstar.schema_version": SCORECARD_SCHEMA_VERSION.encode()})
    with atomic_path(version) as tmp:
        tmp.write_bytes(data)
    write_stable(path, data)
    with atomic_path(versions / "latest") as tmp:
        tmp.write_text(version.name + "\n")
    _prune_versions(versions, keep=KEEP_VERSIONS)
    return version


def latest_version(path: Path) -> Path:
    """The newest published version of the scorecard at `path` (what `latest` names)."""
    versions = path.with_suffix("")
    return versions / (versions / "latest").read_text().strip()


def _prune_versions(versions: Path, keep: int) -> None:
    """Remove all but the newest `keep` versions (names sort by build time; a reader's open file survives)."""
    for old in sorted(versions.glob("v-*.parquet"))[:-keep]:
        old.unlink(missing_ok=True)


def write_json(path: Path, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc}", hint="check the directory exists and is writable") from None
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); a published file must be readable like any other.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc}", hint="check the directory exists and is writable") from None
    finally:
        tmp.unlink(missing_ok=True)


def manifest_payload(manifest: Manifest) -> dict:
    project = manifest.project
    return {
        "metadata": {"project": project.name, "target": project.target.name, "grains": [g.value for g in project.grains]},
        "nodes": {
            node.name: {
                "kind": node.kind.value,
                "path": node.relpath.as_posix(),
                "relation": node.relation,
                "depends_on": list(node.depends_on),
                "columns": {c.name: c.type for c in node.columns},
                "config": _config_payload(node),
                "definition_hash": node.definition_hash,
                "compiled_path": f"compiled/duckdb/{node.relpath.as_posix()}" if node.kind is not NodeKind.SEED else None,
            }
            for node in manifest.nodes
        },
        "sources": {
            f"{s.source_name}.{s.table_name}": {"location": s.location, "hive_partitioning": s.hive_partitioning}
            for s in project.sources
        },
    }


def run_results_payload(result: RunResult) -> dict:
    return {
        "run_id": result.run_id,
        "built_at": result.built_at,
        "elapsed_seconds": round(result.seconds, 3),
        "scorecard": str(result.scorecard_path) if result.scorecard_path else None,
        "scorecard_rows": result.scorecard_rows,
        "status": "error" if result.error else "success",
        "error": result.error,
        "results": [asdict(r) for r in result.results],
        "tests": list(result.tests),
    }


def _config_payload(node: CompiledNode) -> dict:
    if node.config is None:
        return {}
    data = asdict(node.config)
    return {k: (v.value if hasattr(v, "value") else v) for k, v in data.items()}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
