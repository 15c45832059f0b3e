"""The demo project built on DuckDB and on Spark local[2] at a given size; times and the largest value gap.

    .venv/bin/python benchmarks/spark_vs_duckdb.py --events 1000000 10000000

For each size: generate the demo warehouse under --work (default /tmp/northstar-spark-bench), copy the
demo project pointed at it, `northstar build` (DuckDB, the `dev` target) then `northstar build
--target spark` (local[2]), compare every (metric, grain, period) row of both scorecards, print one
Markdown row, and delete the data. Not part of `make test` or `make bench`.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
PARTS = ("profiles.yml", "models", "metrics", "seeds", "macros")
SPARK_OUTPUT = ("\noutputs:\n  spark:\n    type: spark\n    master: local[2]\n    warehouse: target/spark-warehouse\n"
                "    conf:\n      spark.sql.shuffle.partitions: 4\n      spark.driver.memory: {memory}\n")
NUMERIC = ("value", "numerator", "denominator", "previous_value", "change", "change_pct", "target", "target_pct",
           "contribution", "contribution_to_nsm", "correlation")
TEXT = ("status", "status_basis", "comparison", "is_complete", "guardrail_breached")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/northstar-spark-bench"))
    parser.add_argument("--driver-memory", default="3g")
    args = parser.parse_args()
    print("| events | DuckDB build (s) | Spark local[2] build (s) | Spark / DuckDB | scorecard rows | "
          "max relative gap | statuses equal |")
    print("|---:|---:|---:|---:|---:|---:|:---:|")
    for events in args.events:
        print(run(events, args.work / str(events), args.driver_memory), flush=True)


def run(events: int, work: Path, memory: str) -> str:
    shutil.rmtree(work, ignore_errors=True)
    try:
        northstar("demo-data", "--events", str(events), "--seed", "42", "--out", str(work / "warehouse"), cwd=REPO)
        project = work / "project"
        project.mkdir(parents=True)
        for part in PARTS:
            source = REPO / part
            (shutil.copytree if source.is_dir() else shutil.copy)(source, project / part)
        profiles = project / "profiles.yml"
        text = profiles.read_text().replace("events_path: data/warehouse/events",
                                            f"events_path: {work / 'warehouse' / 'events'}")
        profiles.write_text(text.replace("\noutputs:\n", SPARK_OUTPUT.format(memory=memory), 1))
        duck_seconds = timed(lambda: northstar("build", cwd=project))
        shutil.copy(project / "target" / "scorecard.parquet", work / "duckdb.parquet")
        spark_seconds = timed(lambda: northstar("build", "--target", "spark", cwd=project))
        rows, gap, statuses = compare(work / "duckdb.parquet", project / "target" / "scorecard.parquet")
        return (f"| {events:,} | {duck_seconds:.1f} | {spark_seconds:.1f} | {spark_seconds / duck_seconds:.1f}x | "
                f"{rows:,} | {gap:.1e} | {'yes' if statuses else 'NO'} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def northstar(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "northstar_pipeline", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, env={k: v for k, v in os.environ.items() if k != "NORTHSTAR_TARGET"})


def timed(step) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def compare(left: Path, right: Path) -> tuple[int, float, bool]:
    """Rows, the largest relative gap of any numeric column, and whether statuses and the like are equal."""
    con = duckdb.connect()
    key = "metric, grain, period_start"
    a = {r[:3]: r[3:] for r in con.execute(f"SELECT {key}, {', '.join(NUMERIC + TEXT)} FROM read_parquet($p)",
                                           {"p": str(left)}).fetchall()}
    b = {r[:3]: r[3:] for r in con.execute(f"SELECT {key}, {', '.join(NUMERIC + TEXT)} FROM read_parquet($p)",
                                           {"p": str(right)}).fetchall()}
    if a.keys() != b.keys():
        return len(a), math.inf, False
    gap, same = 0.0, True
    for k, row in a.items():
        for i, (x, y) in enumerate(zip(row, b[k], strict=True)):
            if i < len(NUMERIC):
                if (x is None) != (y is None):
                    gap = math.inf
                elif x is not None and x != y:
                    gap = max(gap, abs(x - y) / max(abs(x), abs(y)))
            else:
                same = same and x == y
    return len(a), gap, same


if __name__ == "__main__":
    main()
