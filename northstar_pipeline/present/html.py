"""The weekly review as one self-contained HTML page, for people who will never open a terminal.

Top to bottom, for a product leader: the North Star (value, change, target, status, the partial
period to date) with its trend over the last periods and the target line; why it moved (the
formula inputs' exact contributions as a waterfall whose bars add up to the change); the
guardrails beside what they guard; the input tree with a legend; every metric in a table (owner,
value, previous, change, target, % of target, status, sparkline); the biggest movers; the
hypothesis edges with their verdict; and which definitions changed since the previous build.

The markup is a Jinja template in the package (``templates/scorecard.html.j2``, autoescape on);
this module only prepares what it shows. No script, no stylesheet or font from the network, and
no character that the fonts of a plain Debian machine lack: icons are inline SVG. Values,
comparisons and statuses are the scorecard's own, as in ``report``; the period is the one every
view opens on (``rows.choose_period``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

import duckdb
import jinja2
from markupsafe import Markup

from northstar_pipeline.present.formatting import (
    format_change,
    format_pct,
    format_value,
    status_word,
)
from northstar_pipeline.present.rows import Review
from northstar_pipeline.present.tree_svg import render_svg

if TYPE_CHECKING:
    import pyarrow as pa

    from northstar_pipeline.types import Project

TEMPLATE = "scorecard.html.j2"
SPARK_WIDTH, SPARK_HEIGHT = 96, 22
TREND_PERIODS = 26  # the North Star's chart: up to this many complete periods
CHART_W, CHART_H, CHART_PAD = 1000, 230, 10
MOVERS = 3  # wins and concerns each


@dataclass(frozen=True, slots=True)
class PageContext:
    """What the page needs beside the scorecard, read from the project's target/ (``page_context``).

    ``verdicts``: (child metric, grain) -> True (supported), False (not supported) for the hypothesis
    edges' best lag (tree_validation.parquet). ``previous_hashes``: metric -> definition_hash in the
    previous build recorded in the history; ``previous_run``: that build's (run_id, built_at), or None.
    """

    verdicts: Mapping[tuple[str, str], bool | None] = field(default_factory=dict)
    previous_hashes: Mapping[str, str] = field(default_factory=dict)
    previous_run: tuple[str, str] | None = None
    # The charter (northstar.yml, as analysis/charter_report._charter_json) and the checklist's verdicts (dicts:
    # criterion, verdict, evidence, line, facts), filled by the caller: present/ does not import analysis/.
    charter: Mapping | None = None
    checklist: Sequence[Mapping] = ()
    checklist_note: str | None = None


def page_context(project: Project) -> PageContext:
    """Hypothesis verdicts and the previous build's definitions, where target/ has them."""
    from northstar_pipeline.build.history import previous_definitions

    verdicts: dict[tuple[str, str], bool | None] = {}
    validation = project.target_dir / "tree_validation.parquet"
    if validation.is_file():
        con = duckdb.connect(":memory:")
        try:
            rows = con.execute("SELECT child, grain, supported FROM read_parquet($p) "
                               "WHERE validation = 'hypothesis' AND is_best_lag", {"p": str(validation)}).fetchall()
        finally:
            con.close()
        verdicts = {(child, grain): supported for child, grain, supported in rows}
    previous = previous_definitions(project)
    return PageContext(verdicts, previous.hashes if previous else {},
                       (previous.run_id, previous.built_at) if previous else None)


def render_html(review: Review, *, card: pa.Table | None = None, project: str | None = None,
                context: PageContext | None = None) -> str:
    """The page for ``review`` (rows.review_rows); ``card`` (the whole scorecard) gives the North Star's history."""
    context = context or PageContext()
    rows = list(review.rows)
    first = rows[0] if rows else {}
    meta = " · ".join(part for part in (
        f"as of {first['as_of']}" if first.get("as_of") else "",
        f"built {first['built_at']}" if first.get("built_at") else "",
        f"run {first['run_id']}" if first.get("run_id") else "",
    ) if part)
    by_name = {r["metric"]: r for r in rows}
    nsm = next((r for r in rows if r["kind"] == "north_star"), None)
    return _environment().get_template(TEMPLATE).render(
        heading=f"North Star review{f' · {project}' if project else ''}",
        title=review.title,
        to_date_title=review.to_date_title,
        meta=meta,
        nsm=_north_star(nsm, review, card) if nsm else None,
        waterfall=_waterfall(rows, nsm) if nsm else None,
        guardrails=[_guardrail(r, by_name.get(r.get("parent"))) for r in rows if r["kind"] == "counter"],
        tree_svg=Markup(render_svg(rows)) if rows else "",  # tree_svg escapes every text it draws
        rows=[_row(row, review.to_date.get(row["metric"])) for row in rows],
        movers=_movers(rows),
        hypotheses=_hypotheses(rows, by_name, context),
        definitions=_definitions(rows, context),
        pace=[_pace(row, review.to_date[row["metric"]]) for row in rows
              if review.to_date.get(row["metric"], {}).get("target") is not None],
        charter=_charter(context, by_name),
    ) + "\n"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("northstar_pipeline.present", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _row(row: Mapping, to_date: Mapping | None = None) -> dict:
    kind, unit = row["kind"], row.get("unit")
    return {
        "kind": kind,
        "metric": row["metric"],
        "label": row["label"],
        "edge": "north_star" if kind == "north_star" else ("guardrail" if kind == "counter" else row.get("edge")),
        "indent": f"{(0 if kind == 'north_star' else 1.2 * row['depth']):.1f}",
        "value": format_value(row["value"], unit),
        "previous": format_value(row["previous_value"], unit),
        "change": format_change(row["change"], unit),
        "change_pct": format_pct(row["change_pct"]),
        "target": format_value(row.get("target"), unit),
        "target_pct": format_pct(row["target_pct"], signed=False),
        "status": row.get("status"),
        "status_word": status_word(row),
        "spark": _sparkline(row.get("sparkline")),
        "owner": row.get("owner") or "-",
        "to_date": _to_date(to_date) if to_date else None,
    }


def _to_date(row: Mapping) -> dict:
    unit = row.get("unit")
    return {"value": format_value(row["value"], unit), "previous": format_value(row["previous_value"], unit),
            "change_pct": format_pct(row["change_pct"]),
            "elapsed": format_pct(row.get("elapsed"), signed=False),
            "pace_pct": format_pct(row.get("pace_pct"), signed=False) if row.get("pace_pct") is not None else None,
            "projected": format_value(row.get("projected"), unit) if row.get("projected") is not None else None,
            "on_track": row.get("on_track"),
            "share_at_span": format_pct(row.get("share_at_span"), signed=False)
            if row.get("pace_basis") == "previous period at the same span" else None}


# Pace to goal and the charter ------------------------------------------------------------------------

def _pace(row: Mapping, to_date: Mapping) -> dict:
    unit = to_date.get("unit")
    track = {True: "on track", False: "off track", None: "no pace yet"}[to_date.get("on_track")]
    return {"metric": row["metric"], "label": row["label"], "value": format_value(to_date.get("value"), unit),
            "target": format_value(to_date.get("target"), unit),
            "needed": format_value(to_date.get("needed_so_far"), unit),
            "projected": format_value(to_date.get("projected"), unit),
            "pace_pct": format_pct(to_date.get("pace_pct"), signed=False),
            "basis": to_date.get("pace_basis") or "-",
            "share": format_pct(to_date.get("share_at_span"), signed=False),
            "on_track": {True: "on-track", False: "off-track", None: "unknown"}[to_date.get("on_track")],
            "track_word": track}


_VERDICT_CLASS = {"pass": "green", "warn": "yellow", "fail": "red", "needs a person": "person",
                  "not enough history": "history"}


def _charter(context: PageContext, by_name: Mapping[str, Mapping]) -> dict | None:
    if context.charter is None and not context.checklist and not context.checklist_note:
        return None
    charter = dict(context.charter or {})

    def label(name: str | None) -> str:
        return by_name.get(name, {}).get("label", name) if name else "-"

    streams = [{"team": w["team"], "input": label(w["input"]), "metric": w["input"],
                "initiatives": [f"{i['name']} ({i['change']}{', by ' + i['by'] if i.get('by') else ''})"
                                for i in w["initiatives"]]} for w in charter.get("work_streams", [])]
    verdicts = [{"criterion": v["criterion"].replace("_", " "), "key": v["criterion"], "verdict": v["verdict"],
                 "css": _VERDICT_CLASS.get(v["verdict"], "history"), "evidence": v["evidence"],
                 "outcome": (v.get("facts") or {}).get("outcome") or ""} for v in context.checklist]
    return {"value": charter.get("value"), "games": " + ".join(charter.get("games", [])),
            "north_star": label(charter.get("north_star")), "proxy_for": charter.get("proxy_for"),
            "cadence": charter.get("cadence"), "outcomes": [label(o) for o in charter.get("outcomes", [])],
            "streams": streams, "answers": charter.get("answers", {}), "verdicts": verdicts,
            "note": context.checklist_note}


# The North Star and its trend ------------------------------------------------------------------------

_TREND_SQL = """
SELECT period_start, value, target FROM card
WHERE metric = $metric AND grain = $grain AND is_complete AND period_start <= $period
ORDER BY period_start DESC LIMIT $n
"""


def _north_star(nsm: Mapping, review: Review, card: pa.Table | None) -> dict:
    points: list[tuple] = []
    if card is not None:
        con = duckdb.connect(":memory:")
        try:
            con.register("card", card)
            points = con.execute(_TREND_SQL, {"metric": nsm["metric"], "grain": nsm["grain"],
                                              "period": nsm["period_start"], "n": TREND_PERIODS}).fetchall()[::-1]
        finally:
            con.close()
    return {**_row(nsm, review.to_date.get(nsm["metric"])), "chart": _trend_chart(points, nsm.get("unit"))}


def _trend_chart(points: Sequence[tuple], unit: str | None) -> dict | None:
    """Coordinates of the North Star's line and its target line (a gap where a period has no target)."""
    if not points:
        return None
    numbers = [v for _, v, _ in points if v is not None] + [t for *_, t in points if t is not None]
    low, high = min(numbers + [0.0]), max(numbers)
    span = (high - low) or 1.0
    step = (CHART_W - 2 * CHART_PAD) / max(len(points) - 1, 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        return (round(CHART_PAD + i * step, 1),
                round(CHART_H - CHART_PAD - (value - low) / span * (CHART_H - 2 * CHART_PAD), 1))

    target_segments: list[list[tuple[float, float]]] = [[]]
    for i, (_, _, target) in enumerate(points):
        if target is None:
            target_segments.append([])
        else:
            target_segments[-1].append(xy(i, target))
    return {
        "width": CHART_W, "height": CHART_H,
        "points": [{"x": xy(i, v)[0], "y": xy(i, v)[1], "period": start.isoformat(), "value": v,
                    "text": format_value(v, unit)} for i, (start, v, _) in enumerate(points) if v is not None],
        "targets": [s for s in target_segments if s],
        "first": points[0][0].isoformat(), "last": points[-1][0].isoformat(),
        "low": format_value(low, unit), "high": format_value(high, unit),
        "zero_y": xy(0, low)[1],
    }


# Why it moved ----------------------------------------------------------------------------------------

def _waterfall(rows: Sequence[Mapping], nsm: Mapping) -> dict | None:
    """The North Star's formula inputs as floating bars from the running total of their contributions.

    Their contributions (the scorecard's LMDI shares) add up to the North Star's change, so the last
    bar, the total, ends where the running total does. Positions are percentages of the track.
    """
    inputs = [r for r in rows if r.get("edge") == "formula" and r.get("parent") == nsm["metric"]
              and r.get("contribution") is not None]
    if not inputs or nsm.get("change") is None:
        return None
    inputs.sort(key=lambda r: (-abs(r["contribution"]), r["metric"]))
    unit, change = nsm.get("unit"), nsm["change"]
    running, spans = 0.0, []
    for row in inputs:
        spans.append((row, running, running + row["contribution"]))
        running += row["contribution"]
    ends = [0.0] + [e for _, _, e in spans] + [change]
    low, high = min(ends), max(ends)
    width = (high - low) or 1.0

    def pct(value: float) -> float:
        return round((value - low) / width * 100, 3)

    bars = [{"metric": row["metric"], "label": row["label"], "contribution": row["contribution"],
             "text": format_change(row["contribution"], unit),
             "share": f"{row['contribution'] / change:.0%} of the change" if change else "",
             "moved": f"{format_value(row['previous_value'], row.get('unit'))} to "
                      f"{format_value(row['value'], row.get('unit'))} ({format_pct(row['change_pct'])})",
             "direction": "up" if row["contribution"] >= 0 else "down",
             "left": pct(min(start, end)), "width": max(pct(max(start, end)) - pct(min(start, end)), 0.4)}
            for row, start, end in spans]
    return {"bars": bars, "zero": pct(0.0), "change": change, "change_text": format_change(change, unit),
            "change_pct": format_pct(nsm.get("change_pct")),
            "total": {"left": pct(min(0.0, change)), "width": max(pct(max(0.0, change)) - pct(min(0.0, change)), 0.4),
                      "direction": "up" if change >= 0 else "down"},
            "previous": format_value(nsm.get("previous_value"), unit), "value": format_value(nsm.get("value"), unit)}


# Guardrails, movers, hypotheses, definitions ---------------------------------------------------------

def _guardrail(counter: Mapping, guarded: Mapping | None) -> dict:
    return {"counter": _row(counter), "guarded": _row(guarded) if guarded else None,
            "breached": bool(counter.get("guardrail_breached")),
            "direction": "lower is better" if counter.get("direction") == "lower_is_better" else "higher is better"}


def _movers(rows: Sequence[Mapping]) -> dict:
    """Wins and concerns: the biggest relative moves in each metric's good and bad direction."""
    scored = []
    for row in rows:
        if row["kind"] == "north_star" or row.get("change_pct") is None:
            continue
        good = -row["change_pct"] if row.get("direction") == "lower_is_better" else row["change_pct"]
        scored.append((good, row))
    wins = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]["metric"]))[:MOVERS]
    concerns = sorted((s for s in scored if s[0] < 0), key=lambda s: (s[0], s[1]["metric"]))[:MOVERS]
    return {"wins": [_row(r) for _, r in wins], "concerns": [_row(r) for _, r in concerns]}


def _hypotheses(rows: Sequence[Mapping], by_name: Mapping[str, Mapping], context: PageContext) -> list[dict]:
    out = []
    for row in rows:
        if row["kind"] != "input" or row.get("edge") != "hypothesis":
            continue
        r, lag = row.get("correlation"), row.get("correlation_lag")
        supported = context.verdicts.get((row["metric"], row["grain"]))
        if r is None:
            verdict, word = "untested", "untested: too little history"
        elif supported:
            verdict, word = "supported", "supported (p < 0.05, expected sign)"
        elif supported is False:
            verdict, word = "unsupported", "not supported"
        else:
            verdict, word = "untested", "no verdict recorded"
        parent = by_name.get(row.get("parent"), {})
        out.append({"metric": row["metric"], "label": row["label"], "parent": parent.get("label", row.get("parent")),
                    "r": f"{r:+.2f}" if r is not None else "-",
                    "lag": f"{lag} {row['grain']}{'s' if lag != 1 else ''}" if lag is not None else "-",
                    "verdict": verdict, "verdict_word": word})
    return out


def _definitions(rows: Sequence[Mapping], context: PageContext) -> dict:
    if context.previous_run is None:
        return {"previous_run": None, "changed": [], "new": []}
    changed = [r["label"] for r in rows if r["metric"] in context.previous_hashes
               and context.previous_hashes[r["metric"]] != r.get("definition_hash")]
    new = [r["label"] for r in rows if r["metric"] not in context.previous_hashes]
    return {"previous_run": {"run_id": context.previous_run[0], "built_at": context.previous_run[1]},
            "changed": changed, "new": new}


def _sparkline(values: Sequence[float | None] | None) -> dict | None:
    """Points of an inline SVG line of the last values; a missing value breaks the line."""
    points = list(values or ())
    present = [v for v in points if v is not None]
    if not present:
        return None
    low, high = min(present), max(present)
    span = (high - low) or 1.0
    step = SPARK_WIDTH / max(len(points) - 1, 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        y = SPARK_HEIGHT - 2 - (value - low) / span * (SPARK_HEIGHT - 4) if high != low else SPARK_HEIGHT / 2
        return round(i * step, 1), round(y, 1)

    segments: list[list[tuple[float, float]]] = [[]]
    for i, value in enumerate(points):
        if value is None:
            segments.append([])
        else:
            segments[-1].append(xy(i, value))
    last = next(((i, v) for i, v in reversed(list(enumerate(points))) if v is not None))
    return {"width": SPARK_WIDTH, "height": SPARK_HEIGHT, "segments": [s for s in segments if s], "last": xy(*last)}
