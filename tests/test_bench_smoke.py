"""A small run of the benchmark driver, so `make bench` cannot rot between its (long) runs.

20k events, one run, no dbt and no compile experiment: the driver must generate the data, build
the demo project, run the hand-written limit, find the same metric values in both and write its
results and a BENCHMARKS-style report, all into tmp_path. Timings are reported, never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "benchmarks" / "run.py"


def test_bench_driver_smoke(tmp_path: Path) -> None:
    real_report = REPO / "benchmarks" / "BENCHMARKS.md"
    real_before = real_report.read_text() if real_report.is_file() else None
    results_path, report_path = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"

    completed = subprocess.run(
        [sys.executable, str(DRIVER), "--sizes", "20000", "--runs", "1", "--no-dbt", "--no-compile", "--no-plot",
         "--work", str(tmp_path / "work"), "--results", str(results_path), "--report", str(report_path)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    results = json.loads(results_path.read_text())
    assert results["values_equal"] is True
    assert results["errors"] == []
    (size,) = results["sizes"]
    check = size["checks"]["northstar_vs_handwritten"]
    assert check["passed"] and check["mismatches"] == 0 and check["unexpected_rows"] == 0
    assert check["compared"] >= 2 * 10 * 10, "ten metrics over about a year at two grains"
    assert size["dbt"] is None and results["compile"] is None
    for tool in ("northstar", "handwritten"):
        assert size[tool]["ok"] and size[tool]["min"] > 0 and size[tool]["peak_rss_mb"] > 0
    assert size["profiles"]["northstar"]["nodes"] and size["profiles"]["handwritten"]
    nightly = size["checks"]["northstar_nightly_vs_handwritten"]  # the second, incremental build
    assert nightly["passed"] and nightly["compared"] == check["compared"]
    modes = {n["node"]: n["mode"] for n in size["profiles"]["northstar_nightly"]["nodes"]}
    assert modes["staging.stg_events"] == "incremental"
    assert "(incremental) |" in report_path.read_text()

    report = report_path.read_text()
    assert "**Value checks: all passed**" in report
    assert "| 20k | 1 |" in report and "yes (" in report  # the build-vs-limit table, values equal
    assert "<!-- END GENERATED: goals -->" in report
    assert (real_report.read_text() if real_report.is_file() else None) == real_before
