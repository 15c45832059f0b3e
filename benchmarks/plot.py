"""Plot build time vs events for northstar, the hand-written limit and dbt-duckdb.

    benchmarks/.venv-dbt/bin/python benchmarks/plot.py RESULTS.json OUT.png

Runs in the bench virtualenv: matplotlib is not a northstar dependency.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

SERIES = (("northstar", "northstar build", "o-"), ("handwritten", "hand-written DuckDB (the limit)", "s--"),
          ("dbt", "dbt-duckdb run", "^-."))


def plot(results: dict, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for key, label, style in SERIES:
        points = [(s["size"], s[key]["min"], s[key]["median"]) for s in results["sizes"]
                  if s.get(key) and s[key].get("min")]
        if not points:
            continue
        x, lo, mid = zip(*points)
        line, = ax.plot(x, lo, style, label=f"{label} (min)")
        ax.plot(x, mid, style[0], color=line.get_color(), alpha=0.4, markersize=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    sizes = sorted({s["size"] for s in results["sizes"]})
    ax.set_xticks(sizes, [_events(n) for n in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))
    ax.set_xlabel("events (northstar demo-data)")
    ax.set_ylabel("wall time of the whole process (s)")
    machine = results.get("machine", {})
    ax.set_title(f"Build time vs events ({machine.get('cores', '?')} cores, "
                 f"{machine.get('memory_gb', '?')} GB; faint dots: medians)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


def _events(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div:
            return f"{n / div:g}{unit}"
    return str(n)


if __name__ == "__main__":
    plot(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
