"""Time the build with dimensions against the build without them and against a hand-written script.

    python benchmarks/segments_bench.py --events 10000000 --work /tmp/ns-segments-bench [--runs 1] [--keep]

For each size: the demo warehouse is generated under ``--work`` (deleted at the end unless ``--keep``);
``northstar build`` of the demo project as it is (every metric but the counter cut by region and
platform) and of a copy with the dimensions removed, each a cold build (fresh target/) timed as a whole
process; ``benchmarks/segments_handwritten.py`` computing every metric in total and per region and
platform. The values of segments.parquet and of the script are checked equal (relative 1e-9).
Prints one JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
PARTS = ("profiles.yml", "dimensions.yml", "models", "metrics", "seeds", "macros")


def copy_project(dest: Path, *, dimensions: bool) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for part in PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part)
        elif source.is_file():
            shutil.copy(source, dest / part)
    if not dimensions:
        (dest / "dimensions.yml").unlink()
        for path in (dest / "metrics").glob("*.sql"):  # the config() argument only: a Jinja call, not SQL
            path.write_text(re.sub(r",?\s*dimensions=\[[^\]]*\],?", "", path.read_text()))
    return dest


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def build(project: Path, events: Path) -> tuple[float, float | None]:
    """Seconds of the whole process, and of the segment step inside it (its 'segments' log event)."""
    shutil.rmtree(project / "target", ignore_errors=True)
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "northstar_pipeline", "build", "--project-dir", str(project),
                          "--vars", json.dumps({"events_path": str(events)}), "--log-format", "json"],
                         check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    step = None
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("{") and '"segments"' in line:
            event = json.loads(line)
            if event.get("event") == "segments":
                step = event.get("seconds")
    return seconds, step


def check_values(segments: Path, hand: Path) -> dict:
    con = duckdb.connect()
    mismatches, missing, extra = con.execute("""
        WITH h AS (SELECT * FROM read_parquet($hand) WHERE dimension <> 'total'),
             s AS (SELECT * FROM read_parquet($segments))
        SELECT (SELECT count(*) FROM h JOIN s USING (metric, grain, period_start, dimension, segment)
                WHERE (h.value IS NULL) <> (s.value IS NULL)
                   OR abs(h.value - s.value) > 1e-9 * greatest(1, abs(h.value))),
               (SELECT count(*) FROM h ANTI JOIN s USING (metric, grain, period_start, dimension, segment)),
               (SELECT count(*) FROM s ANTI JOIN h USING (metric, grain, period_start, dimension, segment)
                WHERE s.value <> 0)""", {"hand": str(hand), "segments": str(segments)}).fetchone()
    compared = con.execute("SELECT count(*) FROM read_parquet($h) WHERE dimension <> 'total'",
                           {"h": str(hand)}).fetchone()[0]
    return {"compared": compared, "mismatches": mismatches, "missing": missing, "extra_nonzero": extra,
            "passed": mismatches == 0 and missing == 0 and extra == 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[10_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/ns-segments-bench"))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the generated data and projects")
    args = parser.parse_args(argv)
    ok = True
    try:
        for size in args.events:
            data = args.work / f"data-{size}"
            if not (data / "events").is_dir():
                timed([sys.executable, "-m", "northstar_pipeline", "demo-data", "--events", str(size),
                       "--seed", str(args.seed), "--out", str(data)])
            events = data / "events"
            cut = copy_project(args.work / f"with-{size}", dimensions=True)
            plain = copy_project(args.work / f"without-{size}", dimensions=False)
            hand_out = args.work / f"hand-{size}.parquet"
            times: dict[str, list[float]] = {"with_dimensions": [], "without_dimensions": [], "handwritten": [],
                                             "segment_step": []}
            for _ in range(args.runs):
                times["without_dimensions"].append(build(plain, events)[0])
                total, step = build(cut, events)
                times["with_dimensions"].append(total)
                times["segment_step"].append(step or 0.0)
                times["handwritten"].append(timed([sys.executable, str(REPO / "benchmarks" / "segments_handwritten.py"),
                                                   "--events-dir", str(events), "--out", str(hand_out)]))
            check = check_values(cut / "target" / "segments.parquet", hand_out)
            ok &= check["passed"]
            best = {k: round(min(v), 2) for k, v in times.items()}
            print(json.dumps({"events": size, "seconds": best, "runs": times,
                              "with_vs_without": round(best["with_dimensions"] / best["without_dimensions"], 2),
                              "with_vs_handwritten": round(best["with_dimensions"] / best["handwritten"], 2),
                              "values": check}), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
