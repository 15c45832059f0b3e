"""A metric's one-scan partials kept between builds, so a night re-reads only the days it changed.

A full one-scan build (engines/metric_scan.py) aggregates the metric's rows once per (period of every
rendering, day, raw dimension value) into partials. They are kept in ``_northstar."partials__<metric>"``
(when they are few: engines/partials.py ``MAX_KEPT_PARTIALS``, and the scan has a day), with the key of
the scan that made them in ``STATE``. A night (engines/incremental_metrics.py found the first day C any
delta row falls on, and the first period of each grain) then:

1. replaces the kept partials from day C on by the scan of those days' rows alone;
2. makes the full build's partials for the night's as-of from them: a week or month period is a
   function of the day, so a kept row keeps it; a to-date period (x between its span's start s and
   end b) is the span's period for every day wholly inside [s, b], NULL for the days outside, and the
   rows of the day b falls on (and of s's, when s is not a midnight) are scanned again: the span ends
   inside that day;
3. rolls them up as a full build does, keeping the recomputed periods and the to-date rows, and leaves
   them for the segment cuts of the same build (engines/partials.py), which then cut every period
   from them.

So a night reads the rows of its changed days and of a day or two per to-date span, not the periods'
whole history. Partials recombine exactly (counts and sums of integers, min, max), so the rows are a
full build's (tests/test_stored_partials.py, against --full-refresh). A scan of another shape, or
partials recorded as not kept, keeps the union's incremental path; a scan whose kept partials are
missing or were made by another scan is rebuilt in full (and keeps them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import duckdb
from sqlglot import exp

from northstar_pipeline.engines.metric_scan import DAY, MetricScan
from northstar_pipeline.engines.partial_aggregates import to_date_bounds
from northstar_pipeline.engines import partials as kept_for_cuts
from northstar_pipeline.engines.partials import create_partials
from northstar_pipeline.sql import reading_table, union_all
from northstar_pipeline.types import METRIC_PARTIALS

STATE = "_northstar.partials_state"  # (metric, key of the scan, kept)
_COARSER_THAN_A_DAY = {"DAY", "WEEK", "MONTH", "QUARTER", "YEAR"}


@dataclass(frozen=True)
class _ToDate:
    column: str  # its _ns_p<i>
    start: datetime
    end: datetime  # inclusive
    period: exp.Expression  # what the CASE returns inside the span

    def boundary_days(self) -> set[date]:
        days = {self.end.date()}
        if self.start.time() != time():
            days.add(self.start.date())
        return days

    def over_days(self) -> exp.Expression:
        """The period of a kept row from its day alone: the days wholly inside the span (the boundary days are
        scanned again)."""
        first = self.start.date() if self.start.time() == time() else self.start.date() + timedelta(days=1)
        day = exp.column(DAY)
        inside = exp.and_(exp.GTE(this=day.copy(), expression=_date(first)),
                          exp.LT(this=day.copy(), expression=_date(self.end.date())))
        return exp.Case(ifs=[exp.If(this=inside, true=self.period.copy())])


def stored_table(metric: str) -> exp.Table:
    return exp.table_(exp.to_identifier(f"partials__{metric}", quoted=True), db=exp.to_identifier("_northstar"))


def scan_key(scan: MetricScan) -> str:
    """What the kept partials depend on besides the rows: the scan without its to-date periods (they move
    with the as-of and are made again each night, step 2)."""
    pre = scan.partials.copy()
    to_date = {f"_ns_p{i}" for i, (_, is_to_date) in enumerate(scan.renderings) if is_to_date}
    for projection in pre.expressions:
        if projection.alias in to_date:
            projection.set("this", exp.null())
    return hashlib.sha256(pre.sql("duckdb").encode()).hexdigest()[:16]


def keep_partials(con: duckdb.DuckDBPyConnection, metric: str, scan: MetricScan, partials: exp.Table) -> None:
    """After a full one-scan build: keep its partials for the nights, or record that they are not kept."""
    _ensure(con)
    con.execute(f"DELETE FROM {STATE} WHERE metric = ?", [metric])
    table = stored_table(metric)
    kept = (bool(scan.day_key) and _night_shape(scan) is not None
            and _rows(con, partials) <= kept_for_cuts.MAX_KEPT_PARTIALS)
    if kept:
        con.execute(exp.Create(kind="TABLE", replace=True, this=table,
                               expression=exp.select("*").from_(partials.copy())).sql("duckdb"))
    else:
        con.execute(exp.Drop(kind="TABLE", exists=True, tables=[table]).sql("duckdb"))
    con.execute(f"INSERT INTO {STATE} VALUES (?, ?, ?)", [metric, scan_key(scan), kept])


def kept_state(con: duckdb.DuckDBPyConnection, metric: str, scan: MetricScan) -> bool | str:
    """True: the kept partials are this scan's; False: recorded as not kept (the union's night path);
    a reason to rebuild in full when they should be there and are not, or were made by another scan."""
    _ensure(con)
    rows = con.execute(f"SELECT key, kept FROM {STATE} WHERE metric = ?", [metric]).fetchall()
    if not rows:
        return "its partials were not kept by its last full build"
    key, kept = rows[0]
    if key != scan_key(scan):
        return "its kept partials were made by another scan of its rows"
    if not kept:
        return False
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = '_northstar' "
                         "AND table_name = ?", [f"partials__{metric}"]).fetchall()[0][0]
    return True if exists else "its kept partials are missing"


def night_partials(con: duckdb.DuckDBPyConnection, metric: str, scan: MetricScan, first_day: date | None
                   ) -> exp.Table:
    """Steps 1 and 2: the kept partials brought up to date from ``first_day`` (None: no row changed), and the
    full build's partials at this night's as-of made from them, as the temp table a full build leaves."""
    shape = _night_shape(scan)
    assert shape is not None  # keep_partials keeps only such scans
    column, spans = shape
    stored = stored_table(metric)
    if first_day is not None:
        con.execute(exp.delete(stored.copy(), where=exp.GTE(this=exp.column(DAY), expression=_date(first_day)))
                    .sql("duckdb"))
        rows = _scan_where(scan, exp.GTE(this=column.copy(), expression=_date(first_day)))
        con.execute(f"INSERT INTO {stored.sql('duckdb')} BY NAME {rows.sql('duckdb')}")
    boundary = sorted(set().union(*(s.boundary_days() for s in spans))) if spans else []
    by_column = {s.column: s for s in spans}
    names = [e.alias for e in scan.partials.expressions]
    kept = exp.select(*(exp.alias_(by_column[n].over_days(), n) if n in by_column else exp.column(n)
                        for n in names)).from_(stored.copy())
    if boundary:
        kept = kept.where(exp.or_(exp.column(DAY).is_(exp.null()),
                                  exp.not_(exp.column(DAY).isin(*(_date(d) for d in boundary)))))
    again = [_scan_where(scan, exp.and_(exp.GTE(this=column.copy(), expression=_date(d)),
                                        exp.LT(this=column.copy(), expression=_date(d + timedelta(days=1)))))
             for d in boundary]
    return create_partials(con, metric, union_all([kept, *again]))


def night_rows(scan: MetricScan, partials: exp.Table, starts: dict[str, date | None]) -> exp.Select:
    """Step 3: the metric table's to-date rows and its rows of each grain from ``starts[grain]`` on."""
    rolled = reading_table(scan.rollup, METRIC_PARTIALS, partials.name)
    keep: list[exp.Expression] = [exp.column("is_to_date", "r")]
    for grain, start in starts.items():
        if start is not None:
            keep.append(exp.and_(exp.column("grain", "r").eq(exp.Literal.string(grain)),
                                 exp.GTE(this=exp.column("period_start", "r"), expression=_date(start))))
    return exp.select("*").from_(rolled.subquery("r")).where(exp.or_(*keep))


def forget_if_grown(con: duckdb.DuckDBPyConnection, metric: str) -> None:
    """Kept partials that grew past the limit (a dimension gained many values) are dropped: the next nights
    take the union's path, the next full build decides again."""
    if _rows(con, stored_table(metric)) > kept_for_cuts.MAX_KEPT_PARTIALS:
        con.execute(exp.Drop(kind="TABLE", tables=[stored_table(metric)]).sql("duckdb"))
        con.execute(f"UPDATE {STATE} SET kept = false WHERE metric = ?", [metric])


def drop_kept(con: duckdb.DuckDBPyConnection, metrics: set[str]) -> None:
    """Forget the kept partials of these metrics (removed from the project, or no longer built in one scan)."""
    if not metrics:
        return
    _ensure(con)
    for metric in sorted(metrics):
        con.execute(exp.Drop(kind="TABLE", exists=True, tables=[stored_table(metric)]).sql("duckdb"))
    con.execute(f"DELETE FROM {STATE} WHERE list_contains($metrics, metric)", {"metrics": sorted(metrics)})


def kept_metrics(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The metrics with kept partials recorded (kept or not)."""
    _ensure(con)
    return {m for (m,) in con.execute(f"SELECT metric FROM {STATE}").fetchall()}


def _night_shape(scan: MetricScan) -> tuple[exp.Expression, list[_ToDate]] | None:
    """(the column the day truncates, each to-date span), when every period is a function of the day or such
    a span over the same column; else None."""
    projections = {e.alias: e.this for e in scan.partials.expressions}
    day = projections.get(DAY)
    column = _truncated(day, {"DAY"})
    if column is None:
        return None
    spans = []
    for i, (_, to_date) in enumerate(scan.renderings):
        name = f"_ns_p{i}"
        period = projections.get(name)
        if not to_date:
            if _truncated(period, _COARSER_THAN_A_DAY) != column:
                return None
            continue
        bounds = to_date_bounds(period) if period is not None else None
        if bounds is None or bounds[0] != column:
            return None
        start, end = _instant(bounds[1]), _instant(bounds[2])
        if start is None or end is None:
            return None
        spans.append(_ToDate(name, start, end, bounds[3]))
    return column, spans


def _truncated(period: exp.Expression | None, units: set[str]) -> exp.Expression | None:
    """x of CAST(date_trunc(unit, x) AS DATE) with unit in ``units``, else None."""
    if not (isinstance(period, exp.Cast) and period.to.this == exp.DataType.Type.DATE
            and isinstance(period.this, (exp.TimestampTrunc, exp.DateTrunc)) and period.this.unit is not None
            and period.this.unit.name.upper() in units and isinstance(period.this.this, exp.Column)):
        return None
    return period.this.this


def _instant(value: exp.Expression) -> datetime | None:
    literal = value.this if isinstance(value, exp.Cast) else value
    if not (isinstance(literal, exp.Literal) and literal.is_string):
        return None
    try:
        return datetime.fromisoformat(literal.this)
    except ValueError:
        return None


def _scan_where(scan: MetricScan, condition: exp.Expression) -> exp.Select:
    return scan.partials.copy().where(condition, append=True, copy=False)


def _rows(con: duckdb.DuckDBPyConnection, table: exp.Table) -> int:
    return con.execute(exp.select(exp.Count(this=exp.Star())).from_(table.copy()).sql("duckdb")).fetchall()[0][0]


def _date(value: date) -> exp.Expression:
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.Type.DATE)


def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS _northstar")
    con.execute(f"CREATE TABLE IF NOT EXISTS {STATE} (metric VARCHAR, key VARCHAR, kept BOOLEAN)")
