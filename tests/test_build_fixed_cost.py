"""What every build pays besides its data: the imports it needs and the work it need not repeat.

A real build in a fresh interpreter imports neither pandas nor (logging JSON) rich, and only scipy.special
of scipy (the t distribution of the hypothesis tests' p-values; scipy.stats would cost a second).
"""

from __future__ import annotations

import math
from datetime import datetime
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import special


def _build_in_a_fresh_interpreter(project: Path) -> tuple[subprocess.CompletedProcess, str]:
    """`northstar build` in a new Python; returns the run and which heavy modules it had imported at exit."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('IMPORTED', ','.join(sorted(m for m in ('scipy.stats', 'pandas', 'rich') "
            "if m in sys.modules)), file=sys.stderr))\n"
            "sys.argv = ['northstar', 'build', '--project-dir', sys.argv[1], '--log-format', 'json']\n"
            "from northstar_pipeline.cli import main\nmain()\n")
    done = subprocess.run([sys.executable, "-c", code, str(project)], capture_output=True, text=True, timeout=300)
    imported = next(line for line in done.stderr.splitlines() if line.startswith("IMPORTED")).partition(" ")[2]
    return done, imported


def test_a_json_logged_build_imports_neither_scipy_stats_nor_pandas_nor_rich_and_its_p_values_are_scipys(demo_project: Path) -> None:
    done, imported = _build_in_a_fresh_interpreter(demo_project)
    assert done.returncode == 0, done.stderr[-2000:]
    assert imported == "", f"a build imported {imported}"
    rows = duckdb.connect().execute(
        "SELECT r, n, p_value, spearman_r, spearman_p_value FROM read_parquet($p) WHERE validation = 'hypothesis'",
        {"p": str(demo_project / "target" / "tree_validation.parquet")}).fetchall()
    checked = 0
    for r, n, p, rho, rho_p in rows:
        for value, got in ((r, p), (rho, rho_p)):
            if value is None or n < 4 or abs(value) >= 1:
                continue
            t = abs(value) * math.sqrt((n - 2) / (1 - value * value))
            assert got == pytest.approx(float(2 * special.stdtr(n - 2, -t)), rel=1e-12, abs=1e-300)
            checked += 1
    assert checked >= 10  # the demo's tree has hypothesis edges at every grain and lag


# -- the BI database is rewritten only when its views change -----------------------------------------


def _identity(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, info.st_size


def test_the_bi_database_is_rewritten_only_when_its_views_change(demo_project: Path) -> None:
    from northstar_pipeline import api
    from northstar_pipeline.build.bi import publish_bi

    project = api.load(demo_project)
    path = project.target_dir / "bi.duckdb"
    first = api.build(project)  # the copy's views name the original's files: rewritten here
    written = _identity(path)
    second = api.build(project)
    assert _identity(path) == written  # same views over the same paths: the file is left alone
    with duckdb.connect(str(path), read_only=True) as con:  # ... and its views read the new build
        assert con.execute("SELECT any_value(run_id) FROM scorecard").fetchall() == [(second.run_id,)]
        assert con.execute("SELECT count(DISTINCT run_id) FROM history").fetchall()[0][0] >= 3
        assert first.run_id in {r[0] for r in con.execute("SELECT DISTINCT run_id FROM history").fetchall()}
    path.unlink()  # deleted: written again
    api.build(project)
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall()[0][0] == 6
    written = _identity(path)
    # the validation file's columns change (say, a new version adds one): the views are bound again
    validation = project.target_dir / "tree_validation.parquet"
    table = pq.read_table(validation)
    pq.write_table(table.append_column("added", pa.array([1] * table.num_rows)), validation)
    publish_bi(project)
    assert _identity(path) != written
    with duckdb.connect(str(path), read_only=True) as con:
        assert "added" in [r[0] for r in con.execute("DESCRIBE tree_validation").fetchall()]
    written = _identity(path)
    with duckdb.connect(str(path)) as con:  # someone edits the file: the next build replaces it
        con.execute("CREATE VIEW mine AS SELECT 1 AS x")
    publish_bi(project)
    assert _identity(path) != written
    with duckdb.connect(str(path), read_only=True) as con:
        assert "mine" not in {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}


# -- the empty-source guard stops at the first row instead of counting the history -------------------


def test_the_empty_source_guard_finds_rows_after_empty_files(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from northstar_pipeline.build.guards import EmptySourceError, check_sources_not_empty

    con = duckdb.connect()
    for day, rows in (("2026-01-01", 0), ("2026-01-02", 0), ("2026-01-03", 3)):  # sorted first: the empty ones
        (tmp_path / f"landed_date={day}").mkdir()
        con.execute(f"COPY (SELECT range AS event_id FROM range({rows})) TO "
                    f"'{tmp_path / f'landed_date={day}' / 'part.parquet'}'")

    def manifest(location: str) -> SimpleNamespace:
        source = SimpleNamespace(source_name="raw", table_name="events", location=location, hive_partitioning=True,
                                 path=Path("models/sources.yml"), line=3)
        return SimpleNamespace(project=SimpleNamespace(sources=[source]))

    check_sources_not_empty(manifest(f"{tmp_path}/**/*.parquet"), {"raw.events"})  # 3 rows, in the last file
    with pytest.raises(EmptySourceError, match="has no rows"):
        check_sources_not_empty(manifest(f"{tmp_path}/landed_date=2026-01-0[12]/*.parquet"), {"raw.events"})


# -- the as-of from footers: each file's statistics read once, every change followed -----------------


def test_footer_statistics_are_read_once_per_file_and_follow_every_change(tmp_path: Path) -> None:
    import os

    from northstar_pipeline.project.footer_stats import CACHE, max_from_footers
    from northstar_pipeline.project.sealed import read_sealed, write_sealed
    from northstar_pipeline.types import Source

    lake, target = tmp_path / "lake", tmp_path / "target"
    con = duckdb.connect()

    def land(day: str, hour: int, name: str = "part.parquet") -> Path:
        folder = lake / f"landed_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        con.execute(f"COPY (SELECT TIMESTAMP '{day} 00:00:00' + to_hours(range) AS occurred_at FROM range({hour} + 1)) "
                    f"TO '{path}.tmp' (FORMAT parquet)")
        os.replace(f"{path}.tmp", path)  # as an export lands a file: a new inode
        return path

    def truth():
        return con.execute("SELECT max(occurred_at) FROM read_parquet($g, hive_partitioning = true)",
                           {"g": f"{lake}/**/*.parquet"}).fetchall()[0][0]

    events = Source("raw", "events", f"{lake}/**/*.parquet", True, Path("models/sources.yml"), 1,
                    loaded_at_field="occurred_at")
    first = land("2026-01-01", 5)
    land("2026-01-02", 7)
    assert max_from_footers(con, events, target) == truth() == datetime(2026, 1, 2, 7)
    cache = read_sealed(target / CACHE, "northstar-footer-stats")
    entries = cache["sources"][f"{events.location}\noccurred_at"]
    assert sorted(entries) == sorted(str(p) for p in lake.rglob("*.parquet"))
    # A cached file is not read again: a cached max for the first file (planted, sealed) is what comes back ...
    entries[str(first)][3] = "2030-01-01T00:00:00"
    write_sealed(target / CACHE, "northstar-footer-stats", cache)
    assert max_from_footers(con, events, target) == datetime(2030, 1, 1)
    # ... but not from a file this machine did not seal (committed to a pull request, say): it is ignored
    head, _, body = (target / CACHE).read_bytes().partition(b"\n")
    (target / CACHE).write_bytes(head + b"\n" + body.replace(b"2030-01-01", b"2031-01-01"))
    assert max_from_footers(con, events, target) == truth()
    write_sealed(target / CACHE, "northstar-footer-stats", cache)
    assert max_from_footers(con, events, target) == datetime(2030, 1, 1)
    # ... until the file changes (another inode, size or mtime): then its footer is read again
    land("2026-01-01", 9)
    assert max_from_footers(con, events, target) == truth() == datetime(2026, 1, 2, 7)
    newest = land("2026-01-03", 2)  # a night lands a day: the new file is read
    assert max_from_footers(con, events, target) == truth() == datetime(2026, 1, 3, 2)
    newest.unlink()  # a file removed: it no longer counts
    assert max_from_footers(con, events, target) == truth() == datetime(2026, 1, 2, 7)
    assert len(read_sealed(target / CACHE, "northstar-footer-stats")["sources"][f"{events.location}\noccurred_at"]) == 2
    # without a target dir (no cache) the same answer, every footer read
    assert max_from_footers(con, events, None) == truth()
