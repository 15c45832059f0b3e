"""Readers never see a torn file: pyarrow, pandas and polars read in a loop while real builds publish."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas  # noqa: F401  (the [test] extra: readers below use them; a missing one is an error, not a skip)
import polars  # noqa: F401
import pyarrow.parquet as pq
from test_errors import run_cli

from northstar_pipeline.build.publish import KEEP_VERSIONS, latest_version

# Each mode is one way a BI script reads the scorecard; "latest" modes resolve target/scorecard/latest once,
# then read the immutable version it names. pyarrow.parquet.read_table and pandas open a path twice and read
# pages at the offsets of the footer they read first: the "stable" modes are the ones a rename could tear.
READER = r"""
import json, sys, time
from pathlib import Path
import pyarrow.parquet as pq, pandas as pd, polars as pl
stable, stop, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
versions = stable.with_suffix("")
def latest():
    return versions / (versions / "latest").read_text().strip()
modes = {
    "pyarrow_latest": lambda: pq.read_table(latest()).num_rows,
    "pandas_latest": lambda: len(pd.read_parquet(latest())),
    "polars_latest": lambda: pl.read_parquet(latest()).height,
    "polars_stable": lambda: pl.read_parquet(stable).height,
    "pyarrow_stable": lambda: pq.read_table(stable).num_rows,
    "pandas_stable": lambda: len(pd.read_parquet(stable)),
    "pyarrow_file_stable": lambda: pq.ParquetFile(stable.open("rb")).read().num_rows,
}
counts = {m: {"reads": 0, "failures": [], "rows": []} for m in modes}
print("ready", flush=True)
while not stop.exists():
    for name, read in modes.items():
        try:
            rows = read()
            counts[name]["reads"] += 1
            if rows not in counts[name]["rows"]:
                counts[name]["rows"].append(rows)
        except Exception as exc:
            counts[name]["failures"].append(f"{type(exc).__name__}: {exc}")
out.write_text(json.dumps(counts))
"""


def test_readers_in_a_loop_while_builds_publish(demo_project: Path, tmp_path: Path) -> None:
    stable = demo_project / "target" / "scorecard.parquet"
    first = run_cli(demo_project, "build", "--log-format", "json")  # the first versioned publish
    assert first.returncode == 0, first.stderr
    old_version = latest_version(stable)
    old_bytes = old_version.read_bytes()
    script, stop, out = tmp_path / "reader.py", tmp_path / "stop", tmp_path / "counts.json"
    script.write_text(READER)
    reader = subprocess.Popen([sys.executable, str(script), str(stable), str(stop), str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "ready"
        published = []
        for _ in range(3):
            result = run_cli(demo_project, "build", "--log-format", "json")
            assert result.returncode == 0, result.stderr
            published.append(json.loads((demo_project / "target" / "run_results.json").read_text())["scorecard_rows"])
            time.sleep(0.2)
    finally:
        stop.write_text("")
        reader.wait(timeout=60)
    counts = json.loads(out.read_text())
    for mode, seen in counts.items():
        assert seen["failures"] == [], (mode, seen["failures"][:3])
        assert seen["reads"] > 0, mode
        assert set(seen["rows"]) <= set(published), (mode, seen["rows"], published)  # whole versions only
    # Versions are immutable: the first one is still byte-identical, `latest` names the newest, and the
    # stable path holds the newest version's table.
    assert old_version.read_bytes() == old_bytes
    newest = latest_version(stable)
    assert newest != old_version and pq.read_table(newest).equals(pq.read_table(stable))
    assert len(list(stable.with_suffix("").glob("v-*.parquet"))) <= KEEP_VERSIONS


def test_versions_are_pruned_to_the_newest(demo_project: Path) -> None:
    versions = demo_project / "target" / "scorecard"
    versions.mkdir(exist_ok=True)
    for i in range(KEEP_VERSIONS + 3):  # older versions from earlier builds
        (versions / f"v-20000101T0000{i:02d}-old{i:02d}.parquet").write_bytes(b"old")
    result = run_cli(demo_project, "build")
    assert result.returncode == 0, result.stderr
    kept = sorted(p.name for p in versions.glob("v-*.parquet"))
    assert len(kept) == KEEP_VERSIONS and kept[-1] == (versions / "latest").read_text().strip()


def test_a_reader_holding_the_old_footer_reads_the_old_version(demo_project: Path) -> None:
    """The torn read made deterministic: read a footer, let a build publish, open the path again with it."""
    target = demo_project / "target"
    assert run_cli(demo_project, "build").returncode == 0
    published = ["scorecard.parquet", "segments.parquet", "tree_validation.parquet"]
    held = {name: pq.read_metadata(target / name) for name in published}
    before = {name: pq.read_table(target / name) for name in published}
    changed = run_cli(demo_project, "build", "--vars", "{on_time_grace_minutes: 30}")  # other values
    assert changed.returncode == 0, changed.stderr
    assert not pq.read_table(target / "scorecard.parquet").equals(before["scorecard.parquet"])
    for name in published:  # what read_table's second open does: pages at the first footer's offsets
        assert pq.ParquetFile(target / name, metadata=held[name]).read().equals(before[name]), name
    assert pq.read_table(target / "scorecard.parquet").equals(pq.read_table(latest_version(target / "scorecard.parquet")))
