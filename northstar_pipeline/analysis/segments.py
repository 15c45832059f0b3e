"""Where the North Star moved: the segments that drove a change, and the tree inside one segment.

Reads the published target/segments.parquet (and the scorecard); the arithmetic (each segment's
effect, mix and rate, explanatory power, surprise, ranks) is SQL in ``tree/segments.py``. This
module picks the period, words the answer and shapes the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa

from northstar_pipeline.build.segment_publish import segments_path
from northstar_pipeline.errors import PublishError, UsageError
from northstar_pipeline.present.formatting import format_change, format_value
from northstar_pipeline.present.rows import period_rows
from northstar_pipeline.tree.score import TARGET_YELLOW, TREND_RED, TREND_YELLOW
from northstar_pipeline.tree.segments import segment_drivers
from northstar_pipeline.tree.tree import Tree
from northstar_pipeline.types import Project

MAX_SEGMENTS_SHOWN = 5


def read_segments(project: Project, *, required: bool = False) -> pa.Table | None:
    """target/segments.parquet, or None when no metric is cut by a dimension (an error if ``required``)."""
    path = segments_path(project)
    if not path.is_file():
        if required:
            raise PublishError(f"no segment table at {path}",
                               hint="declare dimensions in dimensions.yml, list them in a metric's "
                                    "config(dimensions=[...]) and run 'northstar build'")
        return None
    con = duckdb.connect(":memory:")
    try:
        return con.read_parquet(str(path)).to_arrow_table()
    finally:
        con.close()


def parse_segment(spec: str) -> tuple[str, str]:
    """'platform=ios' -> ('platform', 'ios')."""
    dimension, sep, value = spec.partition("=")
    if not sep or not dimension.strip() or not value.strip():
        raise UsageError(f"--segment {spec!r} is not DIMENSION=VALUE", hint="e.g. --segment platform=ios")
    return dimension.strip(), value.strip()


def segment_card(card: pa.Table, segments: pa.Table, spec: str) -> pa.Table:
    """The scorecard restricted to one segment: the metrics cut by its dimension, with the segment's values.

    Comparisons, contributions (LMDI inside the segment) and the trend/target status are the segment's own;
    metrics not cut by the dimension are left out.
    """
    dimension, value = parse_segment(spec)
    con = duckdb.connect(":memory:")
    try:
        con.register("card", card)
        con.register("segments", segments)
        known = con.execute("SELECT DISTINCT dimension, segment FROM segments ORDER BY 1, 2").fetchall()
        if (dimension, value) not in known:
            dims = sorted({d for d, _ in known})
            values = [s for d, s in known if d == dimension]
            hint = (f"segments of {dimension}: {', '.join(values)}" if values else
                    f"dimensions built: {', '.join(dims) or 'none'}")
            raise UsageError(f"no segment {dimension}={value} in the segment table", hint=hint)
        return con.sql(_SEGMENT_CARD_SQL, params={"dimension": dimension, "segment": value,
                                                  "target_yellow": TARGET_YELLOW, "trend_yellow": TREND_YELLOW,
                                                  "trend_red": TREND_RED}).to_arrow_table()
    finally:
        con.close()


_SEGMENT_CARD_SQL = """
WITH joined AS (
    SELECT c.* REPLACE (
               s.value AS value, s.numerator AS numerator, s.denominator AS denominator,
               s.previous_value AS previous_value, s.change AS change, s.change_pct AS change_pct,
               s.contribution AS contribution, s.value / nullif(c.target, 0) AS target_pct),
           CASE WHEN c.direction = 'lower_is_better' THEN s.change_pct ELSE -s.change_pct END AS bad_move
    FROM card c
    JOIN segments s ON s.metric = c.metric AND s.grain = c.grain AND s.period_start = c.period_start
    WHERE s.dimension = $dimension AND s.segment = $segment
), banded AS (
    SELECT *,
        CASE WHEN target IS NULL OR value IS NULL OR NOT is_complete THEN NULL
             WHEN direction = 'lower_is_better' THEN
                 CASE WHEN value <= target THEN 'green' WHEN value <= target * (1 + $target_yellow) THEN 'yellow' ELSE 'red' END
             ELSE CASE WHEN value >= target THEN 'green' WHEN value >= target * (1 - $target_yellow) THEN 'yellow' ELSE 'red' END
        END AS target_status,
        CASE WHEN bad_move IS NULL THEN NULL WHEN bad_move >= $trend_red THEN 'red'
             WHEN bad_move >= $trend_yellow THEN 'yellow' ELSE 'green' END AS trend_status
    FROM joined
)
SELECT * EXCLUDE (bad_move, target_status, trend_status) REPLACE (
    coalesce(target_status, trend_status) AS status,
    CASE WHEN target_status IS NOT NULL THEN 'target' WHEN trend_status IS NOT NULL THEN 'trend' END AS status_basis,
    CAST(CASE WHEN kind = 'north_star' THEN change WHEN edge = 'formula' AND level = 1 THEN contribution END
         AS DOUBLE) AS contribution_to_nsm,
    list(value) FILTER (WHERE is_complete) OVER (
        PARTITION BY metric, grain ORDER BY period_start ROWS BETWEEN 12 PRECEDING AND CURRENT ROW)[-12:] AS sparkline)
FROM banded
ORDER BY CASE kind WHEN 'north_star' THEN 0 WHEN 'input' THEN 1 ELSE 2 END, level NULLS LAST, metric, grain, period_start
"""


def segment_report(card: pa.Table, segments: pa.Table, *, grain: str, period: str | None = None,
                   metric: str | None = None, tree: Tree | None = None) -> dict[str, Any]:
    """Which segments drove ``metric``'s (default: the North Star's) change in one period, ranked, with a headline."""
    rows = period_rows(card, grain, period, complete_only=period is None)
    by_name = {r["metric"]: r for r in rows}
    chosen = by_name.get(metric) if metric else next((r for r in rows if r["kind"] == "north_star"), None)
    if chosen is None:
        raise UsageError(f"the scorecard has no metric '{metric}'" if metric else "the scorecard has no North Star",
                         hint=f"metrics: {', '.join(sorted(by_name))}")
    units = {m.name: m.config.unit for m in tree.metrics} if tree else {}
    con = duckdb.connect(":memory:")
    try:
        con.register("segments", segments)
        drivers = segment_drivers(con, chosen["metric"], grain, chosen["period_start"]).to_pylist()
        children = con.execute(
            "SELECT metric, label, dimension, segment, value, previous_value, contribution FROM segments "
            "WHERE parent = $metric AND edge = 'formula' AND grain = $grain AND period_start = $period_start",
            {"metric": chosen["metric"], "grain": grain, "period_start": chosen["period_start"]}).fetchall()
    finally:
        con.close()
    inside: dict[tuple[str, str], list[tuple]] = {}
    for child in children:
        inside.setdefault((child[2], child[3]), []).append(child)
    dimensions: dict[str, dict[str, Any]] = {}
    for d in drivers:
        entry = dimensions.setdefault(d["dimension"], {
            "dimension": d["dimension"], "label": d["dimension_label"], "rank": d["dimension_rank"],
            "surprise": d["dimension_surprise"], "explanatory_power": d["dimension_explanatory_power"],
            "total_change": d["total_change"], "segments": []})
        entry["segments"].append({
            "segment": d["segment"], "rank": d["segment_rank"], "value": d["value"],
            "previous_value": d["previous_value"], "effect": d["effect"], "mix_effect": d["mix_effect"],
            "rate_effect": d["rate_effect"], "explanatory_power": d["explanatory_power"], "surprise": d["surprise"],
            "in_explanation": d["in_explanation"],
            "driver": _inside_driver(inside.get((d["dimension"], d["segment"]), []), d["effect"]),
        })
    ranked = sorted(dimensions.values(), key=lambda e: e["rank"])
    report = {
        "metric": chosen["metric"], "label": chosen["label"], "grain": grain,
        "period_start": str(chosen["period_start"]), "comparison": chosen["comparison"],
        "value": chosen["value"], "previous_value": chosen["previous_value"], "change": chosen["change"],
        "change_pct": chosen["change_pct"], "is_ratio": chosen["denominator"] is not None,
        "dimensions": ranked,
    }
    report["headline"] = _headline(report, units)
    return report


def _inside_driver(children: list[tuple], effect: float | None) -> dict[str, Any] | None:
    """The formula child whose LMDI share moved the segment's value most in the segment's direction."""
    known = [c for c in children if c[6] is not None]
    if not known:  # LMDI is undefined where a factor is 0 (say, no order on time): the biggest relative move
        moved = [c for c in children if c[4] is not None and c[5]]
        if not moved:
            return None
        known = [(*c[:6], (c[4] - c[5]) / abs(c[5])) for c in moved]
    same_way = [c for c in known if effect and c[6] * effect > 0]
    metric, label, _, _, value, previous, contribution = max(same_way or known, key=lambda c: abs(c[6]))
    contribution = contribution if all(c[6] is not None for c in children) else None
    return {"metric": metric, "label": label, "value": value, "previous_value": previous, "contribution": contribution}


def _headline(report: Mapping[str, Any], units: Mapping[str, str]) -> str:
    label, grain, change = report["label"], report["grain"], report["change"]
    if change is None or report["previous_value"] is None:
        return f"{label} has no previous {grain} to compare with."
    span = f"{grain} over {grain}" + (" (period to date)" if report["comparison"] == "period_to_date" else "")
    pct = f" {abs(report['change_pct']):.0%}" if report["change_pct"] is not None else f" by {format_change(change)}"
    if not change:
        return f"{label} was flat {span}."
    moved = f"{label} {_verb(change)}{pct} {span}"
    if not report["dimensions"] or not report["dimensions"][0]["segments"]:
        return moved + "."
    dimension = report["dimensions"][0]
    top = dimension["segments"][0]
    if top["explanatory_power"] is None:
        return moved + "."
    noun = "drop" if change < 0 else "rise"
    line = f"{moved}; {top['explanatory_power']:.0%} of the {noun} is {dimension['dimension']}={top['segment']}"
    driver = top["driver"]
    unit = units.get(report["metric"], "")
    if driver is not None and driver["previous_value"] is not None and driver["value"] is not None:
        child_unit = units.get(driver["metric"], "")
        line += (f", where {_noun(driver['label'])} {_verb(driver['value'] - driver['previous_value'])} from "
                 f"{format_value(driver['previous_value'], child_unit)} to {format_value(driver['value'], child_unit)}")
    elif top["previous_value"] is not None and top["value"] is not None:
        line += (f", where it {_verb(top['value'] - top['previous_value'])} from "
                 f"{format_value(top['previous_value'], unit)} to {format_value(top['value'], unit)}")
    return line + "."


def format_segment_report(report: Mapping[str, Any], units: Mapping[str, str] | None = None) -> str:
    """The words: the headline, then per dimension (best first) its segments' shares of the change."""
    units = units or {}
    unit = units.get(report["metric"], "")
    lines = [f"Where it moved · {report['label']} by segment", "", report["headline"], ""]
    for dimension in report["dimensions"]:
        lines.append(f"  {dimension['label']} (rank {dimension['rank']}: explains "
                     f"{_pct(dimension['explanatory_power'])}, surprise {dimension['surprise']:.3f})")
        for segment in dimension["segments"][:MAX_SEGMENTS_SHOWN]:
            split = ""
            if report["is_ratio"] and segment["mix_effect"] is not None:
                split = f" = mix {format_change(segment['mix_effect'])} + rate {format_change(segment['rate_effect'])}"
            mark = "*" if segment["in_explanation"] else " "
            lines.append(
                f"   {mark} {dimension['dimension']}={segment['segment']}: {format_value(segment['previous_value'], unit)}"
                f" -> {format_value(segment['value'], unit)}; {format_change(segment['effect'])}{split}, "
                f"{_pct(segment['explanatory_power'])} of the change; surprise {segment['surprise']:.3f}")
        hidden = len(dimension["segments"]) - MAX_SEGMENTS_SHOWN
        if hidden > 0:
            lines.append(f"     ... {hidden} more")
    lines += ["", "  * the segments that explain the move (Adtributor: >= 10% of the change each, the most "
                  "surprising first, until 67%)"]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _verb(change: float) -> str:
    return "rose" if change > 0 else "fell" if change < 0 else "was flat"


def _noun(label: str) -> str:
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        label = label[0].lower() + label[1:]
    return label if label.startswith(("%", "the ")) else f"the {label}"
