"""What one night costs: the nightly build after one appended day, against the hand-written full run.

    python benchmarks/nightly_bench.py --events 10000000 [--seed 42] [--memory-limit 4GB] [--work benchmarks/work]
                                       [--night-share 0.1] [--grains 'week, month, quarter']

Builds a history of N events in full (the demo project on a copy of the warehouse), lands one more day with
`northstar demo-data --append-day`, then times the nightly `northstar build` and the hand-written script's
full run (benchmarks/handwritten.py) on the same lake, checks every metric row of the nightly build equals a
`--full-refresh` build (to 1e-9) and prints the per-node breakdown from run_results.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PARTS = ("profiles.yml", "dimensions.yml", "northstar.yml", "models", "metrics", "seeds", "macros", "data_tests")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    root = args.work / f"nightly-{args.events}"
    data = args.work / "data" / f"events-{args.events}-seed{args.seed}" / "events"
    if not data.is_dir():
        _run(_northstar("demo-data", "--events", str(args.events), "--seed", str(args.seed),
                        "--out", str(data.parent)), "generate")
    shutil.rmtree(root, ignore_errors=True)
    lake = root / "warehouse"
    shutil.copytree(data, lake / "events")
    if (data.parent / "payments").is_dir():  # the revenue source, beside the events (demo data v3)
        shutil.copytree(data.parent / "payments", lake / "payments")
    nightly, full = (_project(root / name, lake / "events", args.grains) for name in ("nightly", "full"))
    env = {**os.environ, "NORTHSTAR_MEMORY_LIMIT": args.memory_limit}
    history = _timed(_northstar("build", "--project-dir", str(nightly)), env, "history (full build)")
    day = _last_day(lake / "events") + datetime.timedelta(days=1)
    appended = _run(_northstar("demo-data", "--append-day", day.isoformat(), "--out", str(lake),
                               "--day-share", str(args.night_share)), "append-day")
    night, log = _timed(_northstar("build", "--project-dir", str(nightly), "--log-format", "json"), env,
                        "nightly build", output=True)
    steps = phases(log)
    run_results = json.loads((nightly / "target" / "run_results.json").read_text())
    hand = _timed([sys.executable, str(HERE / "handwritten.py"), "--events-dir", str(lake / "events"),
                   "--out", str(root / "handwritten.parquet"), "--memory-limit", args.memory_limit], env,
                  "hand-written full run")
    refresh = _timed(_northstar("build", "--project-dir", str(full), "--full-refresh"), env, "--full-refresh")
    differ = compare(nightly / "target" / "dev.duckdb", full / "target" / "dev.duckdb")
    print(f"\nhistory: {args.events:,} events; night {day}: {appended.strip()}")
    print("| run | seconds | vs hand-written |\n|---|---:|---:|")
    for name, seconds in (("nightly build", night), ("hand-written full run", hand),
                          ("--full-refresh build", refresh), ("history build (first)", history)):
        print(f"| {name} | {seconds:.2f} | {seconds / hand:.2f}x |")
    print("\n| node | mode | seconds | rows | recomputed from |\n|---|---|---:|---:|---|")
    for node in sorted(run_results["results"], key=lambda r: -r["seconds"]):
        cut = node.get("recomputed_from")
        cut = ", ".join(f"{g} {d or 'all'}" for g, d in cut.items()) if cut else ("-" if cut is None else "nothing")
        print(f"| {node['name']} | {node.get('mode') or node_kind(node)} | {node['seconds']:.3f} | "
              f"{node['rows'] if node['rows'] is not None else '-'} | {cut} |")
    tests = sum(t["seconds"] for t in run_results.get("tests", []))
    print("\n| step of the nightly build | seconds |\n|---|---:|")
    for name, seconds in (*steps.items(), ("data tests (inside the nodes' step)", tests)):
        print(f"| {name} | {seconds:.2f} |")
    print(f"\nvalues equal to --full-refresh (1e-9): {'yes' if not differ else differ}")
    return 0 if not differ else 1


def phases(log: str) -> dict[str, float]:
    """Seconds of the build's steps from its JSON log: compile and plan, nodes and their data tests,
    segments (dimension cuts), then scoring and publishing (the rest up to build_done)."""
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    at = {}
    for event in events:
        at.setdefault(event["event"], []).append(datetime.datetime.fromisoformat(event["ts"]))
    start, done = at["build_start"][0], at["build_done"][-1]
    first_node = at["node_start"][0]
    last_node = max(at.get("test_done", []) + at["node_done"])
    segments = next((e["seconds"] for e in events if e["event"] == "segments"), 0.0)
    compiles = [e for e in events if e["event"] == "compile"  # render + compile + binding the as-of's window
                and datetime.datetime.fromisoformat(e["ts"]) <= first_node]
    return {"compile and plan": (first_node - start).total_seconds(),
            **({f"(compile, inside it: {sum(len(e['compiled']) for e in compiles)} nodes compiled afresh)":
                sum(e["seconds"] for e in compiles)} if compiles else {}),
            "nodes and data tests": (last_node - first_node).total_seconds(),
            "segments (dimension cuts)": segments,
            "scoring and publishing": (done - last_node).total_seconds() - segments}


def node_kind(node: dict) -> str:
    return "view" if node["rows"] is None else "table"


# Published tables, keyed: every column compared (doubles to 1e-9), run ids and build times aside.
PUBLISHED = {"scorecard.scorecard": ("metric", "grain", "period_start"),
             "scorecard.segments": ("metric", "dimension", "segment", "grain", "period_start")}


def compare(nightly: Path, full: Path) -> list[str]:
    """Rows that differ between the two databases (doubles beyond 1e-9), or that only one has: every metric
    table (its schema is the metric's layer; _northstar's state tables are not results) and the published
    scorecard and segments."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{nightly}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{full}' AS b (READ_ONLY)")
    metrics = con.execute("SELECT table_schema, table_name FROM information_schema.columns "
                          "WHERE column_name = 'is_to_date' AND table_catalog = 'a' "
                          "AND table_schema NOT IN ('_northstar', 'scorecard')").fetchall()
    tables = {f"{schema}.{name}": ("grain", "is_to_date", "period_start") for schema, name in metrics}
    differ = []
    for table, key in {**tables, **PUBLISHED}.items():
        schema, name = table.split(".")
        columns = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = 'a' "
                              "AND table_schema = ? AND table_name = ? AND column_name NOT IN ('run_id', 'built_at')",
                              [schema, name]).fetchall()
        same = [f'abs(x."{c}" - y."{c}") <= 1e-9 * greatest(1, abs(y."{c}")) OR x."{c}" IS NOT DISTINCT FROM y."{c}"'
                if kind == "DOUBLE" else f'x."{c}" IS NOT DISTINCT FROM y."{c}"' for c, kind in columns
                if c not in key and kind != "DOUBLE[]"]  # the sparkline: the values themselves, compared above
        on = " AND ".join(f'x."{k}" IS NOT DISTINCT FROM y."{k}"' for k in key)
        bad = con.execute(f'SELECT count(*) FROM a."{schema}"."{name}" x FULL JOIN b."{schema}"."{name}" y ON {on} '
                          f'WHERE x."{key[0]}" IS NULL OR y."{key[0]}" IS NULL OR NOT ('
                          + " AND ".join(f"({c})" for c in same) + ")").fetchall()[0][0]
        if bad:
            differ.append(f"{table}: {bad} rows")
    return differ


def _project(dest: Path, events: Path, grains: str | None = None) -> Path:
    dest.mkdir(parents=True)
    for part in PARTS:
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, dest / part)
        elif (REPO / part).is_file():
            shutil.copy(REPO / part, dest / part)
    profiles = dest / "profiles.yml"
    text = profiles.read_text().replace("events_path: data/warehouse/events", f"events_path: {events}")
    if grains:
        assert "grains: [week, month]" in text, "the demo's grains line moved: update --grains"
        text = text.replace("grains: [week, month]", f"grains: [{grains}]")
    profiles.write_text(text)
    return dest


def _last_day(events: Path) -> datetime.date:
    """The newest day of activity, as `demo-data --append-day` counts it."""
    return duckdb.sql(f"SELECT max(CAST(occurred_at AS DATE)) FROM read_parquet('{events}/**/*.parquet') "
                      "WHERE event_type <> 'order_delivered'").fetchall()[0][0]


def _northstar(*args: str) -> list[str]:
    return [sys.executable, "-m", "northstar_pipeline", *args]


def _run(cmd: list[str], what: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"{what} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def _timed(cmd: list[str], env: dict, what: str, output: bool = False):
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{what} failed ({done.returncode}): {done.stderr[-2000:]}")
    print(f"{what}: {seconds:.2f} s", flush=True)
    return (seconds, done.stdout + done.stderr) if output else seconds


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events of history (default: 10M)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--night-share", type=float, default=1.0,
                        help="the night replays this share of the users (0.1 at 100M: the 10M history's night)")
    parser.add_argument("--work", type=Path, default=HERE / "work", help="data and project copies")
    parser.add_argument("--grains", default=None,
                        help="the project's grains instead of the demo's, e.g. 'week, month, quarter' (the "
                             "hand-written script still computes weeks and months)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
