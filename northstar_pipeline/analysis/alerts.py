"""Alerts a scheduler acts on: a breached guardrail or a red North Star in the last complete period.

`northstar build --fail-on breach|red` publishes first (the scorecard is there to look at), then
reads it back here; each finding becomes an `alert` event in the JSON log and the build exits 5.
The numbers are the scorecard's own columns (status, guardrail_breached, value, target); the
threshold that was crossed comes from the metric's config in target/manifest.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date

import duckdb

from northstar_pipeline.build.pipeline import read_scorecard
from northstar_pipeline.tree.score import TREND_RED
from northstar_pipeline.types import Project

FAIL_ON = ("breach", "red")
TREND_RED_PCT = TREND_RED * 100  # docs/scorecard.md: a move in the bad direction of 5% or more is red


@dataclass(frozen=True, slots=True)
class Alert:
    finding: str  # guardrail_breached | north_star_red
    metric: str
    label: str
    kind: str
    grain: str
    period: date
    value: float | None
    previous_value: float | None
    threshold: str  # what was crossed, e.g. "ceiling 0.08" or "target 45000"
    owner: str | None
    status: str | None

    def payload(self) -> dict:
        data = asdict(self)
        data["period"] = self.period.isoformat()
        return data


def find_alerts(project: Project, fail_on: tuple[str, ...], grain: str | None = None) -> tuple[Alert, ...]:
    """The findings of the last complete period of `grain` (default: the project's first grain)."""
    grain = grain or project.grains[0].value
    card = read_scorecard(project)
    con = duckdb.connect(":memory:")
    try:
        con.register("card", card)
        rows = con.execute("""
            SELECT metric, label, kind, grain, period_start, value, previous_value, target, change_pct, status,
                   guardrail_breached, owner, direction, status_basis
            FROM card
            WHERE grain = $grain AND is_complete
              AND period_start = (SELECT max(period_start) FROM card WHERE grain = $grain AND is_complete)
              AND ((kind = 'counter' AND guardrail_breached AND $breach)
                   OR (kind = 'north_star' AND status = 'red' AND $red))
            ORDER BY kind = 'north_star' DESC, metric""",
                           {"grain": grain, "breach": "breach" in fail_on, "red": "red" in fail_on}).fetchall()
    finally:
        con.close()
    configs = _configs(project)
    alerts = []
    for (metric, label, kind, row_grain, period, value, previous, target, change_pct, status, _breached, owner,
         direction, basis) in rows:
        config = configs.get(metric, {})
        alerts.append(Alert(
            finding="guardrail_breached" if kind == "counter" else "north_star_red",
            metric=metric, label=label, kind=kind, grain=row_grain, period=period, value=value,
            previous_value=previous,
            threshold=_guardrail_threshold(config, value, change_pct, direction) if kind == "counter"
            else _red_threshold(basis, target, direction),
            owner=owner, status=status))
    return tuple(alerts)


def _configs(project: Project) -> dict[str, dict]:
    try:
        manifest = json.loads((project.target_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return {name: node.get("config") or {} for name, node in manifest.get("nodes", {}).items()}


def _guardrail_threshold(config: dict, value: float | None, change_pct: float | None, direction: str) -> str:
    """The bound or move that was crossed (docs/scorecard.md, "Status bands")."""
    threshold = config.get("threshold") or {}
    ceiling, floor, breach = threshold.get("ceiling"), threshold.get("floor"), threshold.get("breach_change_pct")
    if value is not None and ceiling is not None and value > ceiling:
        return f"ceiling {ceiling:g}"
    if value is not None and floor is not None and value < floor:
        return f"floor {floor:g}"
    if breach is not None:
        sign = "+" if direction == "lower_is_better" else "-"
        moved = f" (moved {change_pct * 100:+.1f}%)" if change_pct is not None else ""
        return f"breach_change_pct {sign}{breach:g}%{moved}"
    return "guardrail"


def _red_threshold(basis: str | None, target: float | None, direction: str) -> str:
    if basis == "target" and target is not None:
        return f"target {target:g}"
    sign = "-" if direction == "higher_is_better" else "+"
    return f"trend {sign}{TREND_RED_PCT:g}% vs the previous period"
