"""Calendar arithmetic for grains. Weeks are ISO weeks starting Monday.

The period containing the data's as-of time (see sources.resolve_as_of) is
partial, and is compared with the same elapsed span of the period before.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlglot import exp

from northstar_pipeline.types import Grain

_INTERVALS = {Grain.DAY: ("1", "DAY"), Grain.WEEK: ("7", "DAY"), Grain.MONTH: ("1", "MONTH"),
              Grain.QUARTER: ("3", "MONTH")}


def grain_interval(grain: Grain) -> exp.Interval:
    amount, unit = _INTERVALS[grain]
    return exp.Interval(this=exp.Literal.string(amount), unit=exp.var(unit))


def period_start(grain: Grain, moment: datetime | date) -> date:
    day = moment.date() if isinstance(moment, datetime) else moment
    if grain is Grain.DAY:
        return day
    if grain is Grain.WEEK:
        return day - timedelta(days=day.weekday())
    if grain is Grain.MONTH:
        return day.replace(day=1)
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def next_start(grain: Grain, start: date) -> date:
    if grain is Grain.DAY:
        return start + timedelta(days=1)
    if grain is Grain.WEEK:
        return start + timedelta(days=7)
    months = 1 if grain is Grain.MONTH else 3
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def previous_start(grain: Grain, start: date) -> date:
    return period_start(grain, start - timedelta(days=1))


def to_date_window(grain: Grain, as_of: datetime) -> tuple[date, datetime]:
    """(start, inclusive end) of the previous period cut to the elapsed span of the as-of period."""
    current = period_start(grain, as_of)
    previous = previous_start(grain, current)
    end = datetime.combine(previous, time()) + (as_of - datetime.combine(current, time()))
    return previous, min(end, datetime.combine(current, time()) - timedelta(microseconds=1))


def is_complete(grain: Grain, start: date, as_of: datetime | None) -> bool:
    return as_of is None or datetime.combine(next_start(grain, start), time()) <= as_of
