"""seeds/targets.csv must apply to the tree: a known metric, a grain the project renders, a period start.

A row that applies to nothing would be silently ignored by the scorecard's join (and a duplicate
would double a row), so each is an error naming its CSV line. The file is a small seed read once.
"""

from __future__ import annotations

import csv
from datetime import date
from difflib import get_close_matches
from pathlib import Path

from northstar_pipeline.errors import ProjectError
from northstar_pipeline.project.periods import period_start
from northstar_pipeline.tree.tree import Tree
from northstar_pipeline.types import Grain, Project

TARGETS_SEED = "targets"
COLUMNS = ("metric", "grain", "period_start", "target")


def check_targets(project: Project, tree: Tree) -> None:
    seed = next((s for s in project.seeds if s.name == TARGETS_SEED), None)
    if seed is None:
        return
    relpath = project.relative(seed.path)
    metrics = sorted(m.name for m in tree.metrics)
    grains = {g.value: g for g in project.grains}
    with Path(seed.path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ProjectError(f"targets.csv has no column {', '.join(missing)}", path=relpath, line=1,
                               hint="its header is: metric,grain,period_start,target")
        seen: dict[tuple[str, str, date], int] = {}
        for row in reader:
            line = reader.line_num
            metric, grain_name = (row["metric"] or "").strip(), (row["grain"] or "").strip()
            if metric not in metrics:
                close = get_close_matches(metric, metrics, n=1)
                raise ProjectError(f"target for unknown metric '{metric}'", path=relpath, line=line,
                                   hint=f"did you mean '{close[0]}'?" if close else
                                   f"metrics are: {', '.join(metrics)}")
            if grain_name not in grains:
                raise ProjectError(f"target at grain '{grain_name}', which the project does not render",
                                   path=relpath, line=line,
                                   hint=f"grains are: {', '.join(grains)} (grains: in profiles.yml)")
            grain = grains[grain_name]
            day = _date(row["period_start"], relpath, line)
            if period_start(grain, day) != day:
                raise ProjectError(
                    f"target period_start {day} is not the start of a {grain.value}", path=relpath, line=line,
                    hint=f"use {period_start(grain, day)}, the first day of the {grain.value} containing it"
                         + (" (weeks start on Monday)" if grain is Grain.WEEK else ""))
            try:
                float(row["target"])
            except (TypeError, ValueError):
                raise ProjectError(f"target {row['target']!r} is not a number", path=relpath, line=line) from None
            key = (metric, grain.value, day)
            if key in seen:
                raise ProjectError(f"a second target for {metric} {grain.value} {day} (the first is on line "
                                   f"{seen[key]})", path=relpath, line=line, hint="keep one row per period")
            seen[key] = line


def _date(text: str | None, relpath: Path, line: int) -> date:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        raise ProjectError(f"target period_start {text!r} is not a date", path=relpath, line=line,
                           hint="write it as YYYY-MM-DD") from None
