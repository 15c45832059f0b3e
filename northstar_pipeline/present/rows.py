"""Which scorecard rows a view shows: one grain and period, in tree order.

One period, one story: every view (scorecard table and exports, tree, explain, the HTML page)
opens on the same default period, the last complete one, chosen here by ``choose_period``; the
current partial period is shown beside it as "to date" (``review_rows``), never instead of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pyarrow as pa

from northstar_pipeline.errors import UsageError
from northstar_pipeline.project.connection import connect_confined


@dataclass(frozen=True, slots=True)
class Review:
    """What a view shows: one period of one grain in tree order, and the current partial period beside it.

    ``to_date`` maps each metric to its row of the partial period (with ``elapsed``, ``projected`` and
    ``pace_pct`` added, see ``pace``) when the chosen period is the default one (the last complete one)
    and a partial period follows it; else it is empty.
    """

    grain: str
    rows: tuple[dict, ...]
    to_date: Mapping[str, dict] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return period_title(self.rows)

    @property
    def to_date_title(self) -> str:
        return to_date_title(next(iter(self.to_date.values()), None))


def review_rows(card: pa.Table, grain: str, period: str | None = None) -> Review:
    """The rows every view shows: ``period`` (default: ``choose_period``'s) plus the partial period to date."""
    rows = scorecard_rows(card, grain, period)
    to_date: dict[str, dict] = {}
    default = scorecard_rows(card, grain, None) if period is not None else rows
    # Beside the default period only: next to an August week, this week's progress would be noise.
    if rows and rows[0]["is_complete"] and default and rows[0]["period_start"] == default[0]["period_start"]:
        latest = period_rows(card, grain, "latest")
        if latest and not latest[0]["is_complete"]:
            full = {r["metric"]: r for r in rows}  # the default period is the one the partial period follows
            to_date = {r["metric"]: {**r, **pace(r, full.get(r["metric"]))} for r in latest}
    return Review(grain, tuple(rows), to_date)


def pace(row: Mapping, previous: Mapping | None = None) -> dict:
    """How far a partial period is, and its pace toward the full period's target (README "Pace to goal").

    ``elapsed``: the share of the period up to the as-of time. ``share_at_span``: for an additive metric
    (a count: no denominator, not a percent), the share of the previous period's full value it had reached
    at the same elapsed span (the scorecard's to-date comparison / ``previous``'s value); a weekday or
    month-end pattern so counts. ``projected``: the full period's value at that pace (value so far /
    share_at_span; value / elapsed when the previous period gives no share); a ratio's value so far is its
    pace. ``needed_so_far``: the target times that share, what the period needed by now to be on track.
    ``pace_pct``: projected / target; ``on_track``: projected reaches the target in the metric's good
    direction (None without a target). ``pace_basis`` says which share was used.
    """
    start, end, as_of = row.get("period_start"), row.get("period_end"), row.get("as_of")
    elapsed = None
    if isinstance(start, date) and isinstance(end, date) and isinstance(as_of, datetime):
        span = (datetime.combine(end + timedelta(days=1), datetime.min.time())
                - datetime.combine(start, datetime.min.time())).total_seconds()
        done = (as_of - datetime.combine(start, datetime.min.time())).total_seconds()
        elapsed = min(max(done / span, 0.0), 1.0) if span > 0 else None
    value, target = row.get("value"), row.get("target")
    additive = row.get("denominator") is None and (row.get("unit") or "") not in ("percent", "ratio")
    share, basis = None, None
    if additive:
        same_span = row.get("previous_value") if row.get("comparison") == "period_to_date" else None
        full = (previous or {}).get("value")
        if same_span is not None and full and same_span > 0 and (previous or {}).get("is_complete", True):
            share, basis = same_span / full, "previous period at the same span"
        elif elapsed:
            share, basis = elapsed, "elapsed share of the period"
    else:
        basis = "value so far (a ratio)"
    projected = None
    if value is not None:
        projected = (value / share if share else None) if additive else value
    pace_pct = projected / target if projected is not None and target else None
    on_track = None
    if projected is not None and target is not None:
        on_track = projected <= target if row.get("direction") == "lower_is_better" else projected >= target
    needed = None if target is None else (target * share if additive and share else (None if additive else target))
    return {"elapsed": elapsed, "projected": projected, "pace_pct": pace_pct, "share_at_span": share,
            "pace_basis": basis, "needed_so_far": needed, "on_track": on_track}


def to_date_title(row: Mapping | None) -> str:
    """'to date: week of 2026-11-16, 43% elapsed (compared with the same span of the previous week)'."""
    if not row:
        return ""
    elapsed = f", {row['elapsed']:.0%} elapsed" if row.get("elapsed") is not None else ""
    return (f"to date: {row['grain']} of {row['period_start']}{elapsed} "
            f"(compared with the same span of the previous {row['grain']})")


def scorecard_rows(card: pa.Table, grain: str, period: str | None) -> list[dict]:
    """The scorecard rows of one grain and period (default: the last complete one) in tree order.

    Each row is the scorecard's row as a dict plus ``depth`` (0 for the North Star; a counter-metric
    takes the depth of the metric it guards).
    """
    rows = period_rows(card, grain, period)
    return [{**row, "depth": depth} for row, depth in tree_order(rows)]


_PERIODS_SQL = """
SELECT period_start, any_value(period_end) AS period_end, bool_and(is_complete) AS is_complete
FROM card WHERE grain = $grain GROUP BY period_start ORDER BY period_start
"""


def period_rows(card: pa.Table, grain: str, period: str | None, *, complete_only: bool = False) -> list[dict]:
    """The scorecard rows of one grain and period as dicts (scorecard order).

    ``period`` is a period start (YYYY-MM-DD), or 'latest' (partial included); without it, the
    ``choose_period`` default (``complete_only``: raise when no period is complete). An unknown grain or
    period is a UsageError whose hint names what exists.
    """
    con = connect_confined()  # the scorecard is registered from memory: no file is read
    try:
        con.register("card", card)
        grains = [r[0] for r in con.execute("SELECT DISTINCT grain FROM card ORDER BY grain").fetchall()]
        if grain not in grains:
            raise UsageError(f"the scorecard has no grain '{grain}'",
                             hint=f"grains built: {', '.join(grains) or 'none (run northstar build)'}")
        periods = con.execute(_PERIODS_SQL, {"grain": grain}).fetchall()
        chosen = _choose_period(periods, grain, period, complete_only)
        rows = con.sql("SELECT * FROM card WHERE grain = $grain AND period_start = $period",
                       params={"grain": grain, "period": chosen})
        return rows.to_arrow_table().to_pylist()  # scorecard order is kept: the scan is not reordered
    finally:
        con.close()


def choose_period(periods: Sequence[tuple]) -> date:
    """THE default period of every view: the last complete one; before any is complete, the partial one.

    ``periods``: (period_start, period_end, is_complete) in order.
    """
    complete = [p for p in periods if p[2]]
    return (complete or list(periods))[-1][0]


def _choose_period(periods: list[tuple], grain: str, period: str | None, complete_only: bool) -> date:
    if period is None or period == "latest":
        if complete_only and not any(p[2] for p in periods):
            raise UsageError(f"the scorecard has no complete {grain} yet",
                             hint="build again once a full period of data has landed")
        if not periods:
            raise UsageError(f"the scorecard has no {grain} rows", hint="run northstar build")
        return periods[-1][0] if period == "latest" else choose_period(periods)
    try:
        wanted = date.fromisoformat(period)
    except ValueError:
        raise UsageError(f"period '{period}' is not a date", hint="give the period's first day as YYYY-MM-DD") from None
    for start, end, _ in periods:
        if start == wanted:
            return start
        if start <= wanted <= end:
            raise UsageError(f"{period} is not the start of a {grain}",
                             hint=f"it falls in the {grain} {start} .. {end}: use --period {start}")
    first, last = periods[0][0], periods[-1][0]
    raise UsageError(f"the scorecard has no {grain} starting {period}",
                     hint=f"{grain}s built: {first} .. {last}")


def tree_order(rows: Iterable[Mapping]) -> list[tuple[Mapping, int]]:
    """(row, depth) in review order: each metric, then the counters guarding it, then its children.

    Rows need ``metric``, ``kind``, ``parent``, ``edge`` and ``dimension``. Children are sorted formula
    first, then by dimension (breadth, depth, frequency, efficiency), then name. A metric whose parent is
    missing (a partial build) is shown at the end as its own root.
    """
    rows = list(rows)
    names = {r["metric"] for r in rows}
    children: dict[str, list[Mapping]] = {}
    guards: dict[str, list[Mapping]] = {}
    roots = []
    for row in rows:
        parent = row.get("parent")
        if row["kind"] == "north_star" or parent not in names:
            roots.append(row)
        elif row["kind"] == "counter":
            guards.setdefault(parent, []).append(row)
        else:
            children.setdefault(parent, []).append(row)
    roots.sort(key=lambda r: (r["kind"] != "north_star", r["kind"] == "counter", r["metric"]))
    out: list[tuple[Mapping, int]] = []
    seen: set[str] = set()

    def visit(row: Mapping, depth: int) -> None:
        if row["metric"] in seen:
            return
        seen.add(row["metric"])
        out.append((row, depth))
        for counter in sorted(guards.get(row["metric"], ()), key=lambda r: r["metric"]):
            visit(counter, depth)
        for child in sorted(children.get(row["metric"], ()), key=_child_key):
            visit(child, depth + 1)

    for root in roots:
        visit(root, 0)
    return out


_DIMENSIONS = ("breadth", "depth", "frequency", "efficiency")


def _child_key(row: Mapping) -> tuple:
    dimension = row.get("dimension")
    rank = _DIMENSIONS.index(dimension) if dimension in _DIMENSIONS else len(_DIMENSIONS)
    return (row.get("edge") != "formula", rank, row["metric"])


def period_title(rows: Sequence[Mapping]) -> str:
    """'week of 2026-08-10 (complete; compared with the previous week)' or the partial equivalent."""
    if not rows:
        return "no rows"
    row = rows[0]
    grain, start = row["grain"], row["period_start"]
    if row["is_complete"]:
        tail = f"compared with the previous {grain}" if row.get("comparison") else f"the first {grain}: no comparison"
        return f"{grain} of {start} .. {row['period_end']} ({tail})"
    if row.get("comparison"):
        return f"{grain} of {start} (partial: compared with the same span of the previous {grain})"
    return f"{grain} of {start} (partial; the first {grain}: no comparison)"


