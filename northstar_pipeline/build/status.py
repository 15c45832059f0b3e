"""`northstar status`: what a scheduler's operator asks first. Last runs, data as-of and freshness,
periods covered, who holds the lock, and whether the tables still match the published scorecard.

Reads only: the run log, the lock, the scorecard Parquet, the sources' footers and (read-only) the
database. While a build runs the database has one writer, so the table check says so instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
from sqlglot import exp

from northstar_pipeline.build.lock import lock_holder
from northstar_pipeline.build.publish import SCORECARD_TABLE
from northstar_pipeline.build.runlog import read_runs
from northstar_pipeline.engines.duckdb import connect
from northstar_pipeline.errors import NorthstarError
from northstar_pipeline.project.freshness import check_freshness
from northstar_pipeline.types import Project


@dataclass(frozen=True, slots=True)
class Status:
    project: str
    target: str
    runs: tuple[dict, ...]  # newest last
    lock: dict | None
    as_of: str | None
    scorecard: str | None
    scorecard_run_id: str | None
    periods: tuple[dict, ...]  # per grain: first, last, last complete, count
    freshness: tuple[dict, ...]
    tables_match_scorecard: bool | None  # None: cannot tell (no scorecard, no database, or a build holds it)
    tables_note: str

    def payload(self) -> dict:
        return {"project": self.project, "target": self.target, "runs": list(self.runs), "lock": self.lock,
                "as_of": self.as_of, "scorecard": self.scorecard, "scorecard_run_id": self.scorecard_run_id,
                "periods": list(self.periods), "freshness": list(self.freshness),
                "tables_match_scorecard": self.tables_match_scorecard, "tables_note": self.tables_note}


def project_status(project: Project, last: int = 5) -> Status:
    lock = lock_holder(project)
    periods: tuple[dict, ...] = ()
    as_of = run_id = None
    card_path = project.scorecard_path
    if card_path.is_file():
        con = duckdb.connect(":memory:")
        try:
            card = con.read_parquet(str(card_path))
            as_of, run_id = card.aggregate("max(as_of), max(run_id)").fetchall()[0]
            periods = tuple(
                {"grain": g, "first": str(first), "last": str(last_start), "last_complete": str(done) if done else None,
                 "periods": n}
                for g, first, last_start, done, n in card.aggregate(
                    "grain, min(period_start), max(period_start), max(period_start) FILTER (WHERE is_complete), "
                    "count(DISTINCT period_start)", "grain").order("grain").fetchall())
        finally:
            con.close()
    try:
        freshness = tuple(r.payload() for r in check_freshness(project))
    except NorthstarError as error:
        freshness = ({"status": "runtime_error", "error": error.message},)
    match, note = _tables_match(project, lock)
    return Status(project.name, project.target.name, tuple(read_runs(project.target_dir, last)), lock,
                  as_of.isoformat() if as_of else None, str(card_path) if card_path.is_file() else None, run_id,
                  periods, freshness, match, note)


def _tables_match(project: Project, lock: dict | None) -> tuple[bool | None, str]:
    """Compare the database's scorecard table with the published Parquet, row for row."""
    if not project.scorecard_path.is_file():
        return None, "no published scorecard"
    if not project.target.database.is_file():
        return None, "no database"
    try:
        # confined (project/connection.py): the database may read the published scorecard, nothing else
        con = connect(project.target, read_only=True, reads=((), (str(project.scorecard_path.resolve()),)))
    except NorthstarError:
        return None, "the database is open for writing" + (" by the running build" if lock else "")
    try:
        schema, name = SCORECARD_TABLE.split(".")
        table = exp.table_(name, db=schema, quoted=True)
        parquet = exp.Anonymous(this="read_parquet", expressions=[exp.Literal.string(str(project.scorecard_path))])
        differ = exp.select(exp.Count(this=exp.Star())).from_(exp.union(
            exp.except_(exp.select("*").from_(table.copy()), exp.select("*").from_(parquet.copy()), distinct=False),
            exp.except_(exp.select("*").from_(parquet.copy()), exp.select("*").from_(table.copy()), distinct=False),
            distinct=False).subquery("d"))
        rows = con.execute(differ.sql("duckdb")).fetchall()[0][0]
    except duckdb.Error as exc:
        return False, f"cannot compare: {str(exc).splitlines()[0]}"
    finally:
        con.close()
    return rows == 0, "identical" if rows == 0 else f"{rows} rows differ"
