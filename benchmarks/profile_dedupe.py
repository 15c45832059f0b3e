"""Time the demo's stg_events statement alone, into a DuckDB file (in a transaction) or in memory.

    python benchmarks/profile_dedupe.py EVENTS_DIR [--memory] [--set preserve_insertion_order=false ...]

It measures how much of the build's largest node is the cost of persisting the staging layer
(BENCHMARKS.md, "Analysis"). The SQL is the model as rendered, its source swapped for read_parquet.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from northstar_pipeline import api
from northstar_pipeline.build.render import render_project

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("events_dir", type=Path)
    parser.add_argument("--memory", action="store_true", help="in-memory database instead of a file")
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a DuckDB setting for the connection (repeatable)")
    args = parser.parse_args()
    project = api.load(REPO, vars={"events_path": str(args.events_dir)})
    rendered = next(n for n in render_project(project) if n.name == "stg_events")
    ast = sqlglot.parse_one(rendered.queries[0].sql, read="duckdb")
    scan = exp.Anonymous(this="read_parquet", expressions=[exp.Literal.string(f"{args.events_dir}/**/*.parquet")])
    ast = ast.transform(lambda n: scan.copy() if isinstance(n, exp.Table) and (n.db, n.name) == ("raw", "events") else n)
    with tempfile.TemporaryDirectory() as tmp:
        path = ":memory:" if args.memory else str(Path(tmp) / "profile.duckdb")
        settings = dict(item.split("=", 1) for item in args.set)
        con = duckdb.connect(path, config={"threads": 2, "memory_limit": args.memory_limit,
                                           "temp_directory": str(Path(tmp) / "spill"), **settings})
        started = time.perf_counter()
        con.execute("BEGIN")
        con.execute(f"CREATE TABLE stg_events AS {ast.sql('duckdb')}")
        con.execute("COMMIT")
        rows = con.execute("SELECT count(*) FROM stg_events").fetchall()[0][0]
        print(f"{'memory' if args.memory else 'file'} {' '.join(args.set)}: {time.perf_counter() - started:.2f} s, "
              f"{rows:,} rows")


if __name__ == "__main__":
    main()
