"""A small log of runs, target/runs.jsonl: one JSON line per build, appended when it ends.

`northstar status` reads its tail. It is kept short (the newest MAX_RUNS lines), so it never
grows with the nights.
"""

from __future__ import annotations

import json
from pathlib import Path

from northstar_pipeline.build.publish import atomic_path
from northstar_pipeline.types import RunResult

RUN_LOG = "runs.jsonl"
MAX_RUNS = 200


def append_run(target_dir: Path, result: RunResult, command: str = "build") -> None:
    """Record a finished run: when, how long, its status and what failed."""
    failed_nodes = [r.name for r in result.results if r.status == "error"]
    failed_tests = [t["test"] for t in result.tests if t.get("status") == "error"]
    record = {
        "run_id": result.run_id, "command": command, "started_at": result.built_at,
        "seconds": round(result.seconds, 3), "status": "error" if result.error else "success",
        "error": result.error.splitlines()[0] if result.error else None,
        "failed_nodes": failed_nodes, "failed_tests": failed_tests,
        "skipped_nodes": [r.name for r in result.results if r.status == "skipped"],
        "warned_tests": [t["test"] for t in result.tests if t.get("status") == "warn"],
        "nodes": len(result.results), "scorecard_rows": result.scorecard_rows,
    }
    path = target_dir / RUN_LOG
    lines = read_lines(path)[-(MAX_RUNS - 1):] + [json.dumps(record, default=str)]
    try:
        with atomic_path(path) as tmp:  # rewritten whole: a reader never sees half a line
            tmp.write_text("\n".join(lines) + "\n")
    except Exception:  # noqa: BLE001 - the log is a convenience; the run's own outcome matters more
        pass


def read_runs(target_dir: Path, last: int = 10) -> list[dict]:
    runs = []
    for line in read_lines(target_dir / RUN_LOG)[-last:]:
        try:
            runs.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash of an older version: skip it
    return runs


def read_lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []
