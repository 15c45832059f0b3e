"""The scorecard's history: every good build appends the scorecard it published, for the record and for BI.

``target/history/build_date=YYYY-MM-DD/run_<run_id>.parquet`` (``history_path`` in profiles.yml), one
file per build, hive-partitioned by the build's (UTC) date, the scorecard's own columns: so "what
did we report last Monday", "how was this value revised by late data" and "when did a definition
change" (``definition_hash``) are queries over one dataset (docs/scorecard.md, "History").
``history_keep_days`` drops the partitions older than that many days; by default every build stays.
Each file is written under a temporary name and renamed, like the scorecard.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from northstar_pipeline.build.publish import atomic_path, latest_version
from northstar_pipeline.types import Project

PARTITION = "build_date"


@dataclass(frozen=True, slots=True)
class PreviousBuild:
    """The definitions of the build before the current scorecard's, as the history recorded them."""

    run_id: str
    built_at: str
    hashes: dict[str, str]


def history_dir(project: Project) -> Path:
    return project.history_path or project.target_dir / "history"


def history_glob(project: Project) -> str:
    """The files of every recorded build, for read_parquet(..., hive_partitioning = true)."""
    return str(history_dir(project).resolve() / f"{PARTITION}=*" / "*.parquet")


def append_history(project: Project, run_id: str, built_at: str) -> Path:
    """Copy the scorecard version just published into the history (its bytes: the record is the published file;
    the stable path also holds the previous version's chunks, for its readers)."""
    build_day = datetime.fromisoformat(built_at).date()
    path = history_dir(project) / f"{PARTITION}={build_day.isoformat()}" / f"run_{run_id}.parquet"
    with atomic_path(path) as tmp:
        shutil.copyfile(latest_version(project.scorecard_path), tmp)
    prune_history(project, today=build_day)
    return path


def prune_history(project: Project, today: date) -> list[Path]:
    """Remove the build-date partitions older than ``history_keep_days`` (none without it)."""
    if project.history_keep_days is None:
        return []
    oldest = today - timedelta(days=project.history_keep_days)
    removed = []
    for folder in sorted(history_dir(project).glob(f"{PARTITION}=*")):
        try:
            day = date.fromisoformat(folder.name.partition("=")[2])
        except ValueError:
            continue  # not ours: leave it
        if day < oldest:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


_PREVIOUS_SQL = """
WITH runs AS (
    SELECT run_id, max(built_at) AS built_at FROM read_parquet($glob, hive_partitioning = true, union_by_name = true)
    WHERE run_id <> $current GROUP BY run_id
), previous AS (SELECT run_id, built_at FROM runs ORDER BY built_at DESC, run_id DESC LIMIT 1)
SELECT p.run_id, CAST(p.built_at AS VARCHAR), h.metric, any_value(h.definition_hash)
FROM read_parquet($glob, hive_partitioning = true, union_by_name = true) h JOIN previous p USING (run_id)
GROUP BY ALL
"""


def previous_definitions(project: Project) -> PreviousBuild | None:
    """The last recorded build other than the one that wrote the current scorecard, or None."""
    if not project.scorecard_path.is_file() or not any(history_dir(project).glob(f"{PARTITION}=*/*.parquet")):
        return None
    con = duckdb.connect(":memory:")
    try:
        current = con.execute("SELECT any_value(run_id) FROM read_parquet($p)",
                              {"p": str(project.scorecard_path)}).fetchall()[0][0]
        rows = con.execute(_PREVIOUS_SQL, {"glob": history_glob(project), "current": current or ""}).fetchall()
    finally:
        con.close()
    if not rows:
        return None
    return PreviousBuild(rows[0][0], rows[0][1], {metric: digest for _, _, metric, digest in rows})
