"""Compare two published scorecards column by column (all but run_id and built_at).

Usage: python tools/compare_scorecards.py OLD.parquet NEW.parquet [--rel 1e-12]

Floats (and float lists) are equal within a relative tolerance: DuckDB's parallel sums of doubles
are not bit-reproducible from one run of the same code to the next (seen: 60 of 660 values differ
in the last bits between two builds of one commit). Everything else must be equal exactly.
Exit 0 when equal, 1 with the differing cells listed otherwise.
"""

from __future__ import annotations

import argparse
import math
import sys

import duckdb

KEY = ("metric", "grain", "period_start")
VOLATILE = {"run_id", "built_at"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rel", type=float, default=1e-12)
    args = parser.parse_args(argv)
    con = duckdb.connect()
    old = {_key(r): r for r in con.read_parquet(args.old).to_arrow_table().to_pylist()}
    new = {_key(r): r for r in con.read_parquet(args.new).to_arrow_table().to_pylist()}
    problems = [f"row only in old: {k}" for k in old.keys() - new.keys()]
    problems += [f"row only in new: {k}" for k in new.keys() - old.keys()]
    for key in sorted(old.keys() & new.keys(), key=str):
        a, b = old[key], new[key]
        if a.keys() != b.keys():
            problems.append(f"columns differ: {sorted(a.keys() ^ b.keys())}")
            break
        for column in a.keys() - VOLATILE:
            if not _same(a[column], b[column], args.rel):
                problems.append(f"{key} {column}: {a[column]!r} != {b[column]!r}")
    for line in problems[:50]:
        print(line)
    print(f"{len(old)} rows compared, {len(problems)} differences (floats within {args.rel:g} relative)")
    return 1 if problems else 0


def _key(row: dict) -> tuple:
    return tuple(row[k] for k in KEY)


def _same(a: object, b: object, rel: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-300) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, rel) for x, y in zip(a, b))
    return a == b


if __name__ == "__main__":
    sys.exit(main())
