"""Which scorecard rows a view shows: one grain and period, in tree order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import pyarrow as pa

from northstar_pipeline.errors import UsageError
from northstar_pipeline.project.connection import connect_confined


def scorecard_rows(card: pa.Table, grain: str, period: str | None) -> list[dict]:
    """The scorecard rows of one grain and period (default: the latest, partial included) in tree order.

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

    ``period`` is a period start (YYYY-MM-DD); without it, the latest period (or the latest complete
    one with ``complete_only``). An unknown grain or period is a UsageError whose hint names what exists.
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


def _choose_period(periods: list[tuple], grain: str, period: str | None, complete_only: bool) -> date:
    if period is None:
        candidates = [p for p in periods if p[2]] if complete_only else periods
        if not candidates:
            raise UsageError(f"the scorecard has no complete {grain} yet",
                             hint="build again once a full period of data has landed")
        return candidates[-1][0]
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


