"""`northstar demo-data --append-day DATE`: land one more day of events into an existing demo warehouse.

So the nightly loop can run for real: each call adds the day after the newest one, and the build
that follows is a night. The day is the same weekday of the week before, replayed (the same users
doing the same things, seven days later, with new event and order ids; each order comes with its
delivery, which may fall early the next day), plus what makes nights hard:

- **late arrivals**: about 2% of the day's events land one or two days late (in later partitions;
  nothing lands after DATE + 2, so the demo's 3-day lookback sees every file);
- **re-deliveries**: about 0.5% of the events that landed in the three days before land again today
  (same event, same values, a later ``landed_at``), and about 0.3% of today's events land twice.

Deterministic for a (warehouse, DATE, seed). Files are written as
``landed_date=D/events_append_<DATE>_<n>.parquet`` beside the existing ones (a temp directory
first, then moved in), so appending a day never rewrites an existing file.

Payments (``out_dir/payments/``, the revenue source) get the day too: the payments of the same weekday of
the week before, replayed seven days later with new payment ids, as
``payments/payments_append_<DATE>.parquet``. Revenue so keeps its level; the planted lead over on-time
orders is a property of the generated history, not of appended days. A warehouse without a payments
folder (generated before it existed) gets events only.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
from sqlglot import exp

from northstar_pipeline.errors import UsageError

LATE_PER_MILLE, REDELIVERED_PER_MILLE, DOUBLED_PER_MILLE = 20, 5, 3
REDELIVERY_DAYS = 3
MAX_LATE_DAYS = 2  # nothing lands after DATE + 2: the demo's 3-day lookback then sees every new file


@dataclass(frozen=True, slots=True)
class AppendSummary:
    day: datetime.date
    events: int  # new events (first landings)
    late: int  # of which land after DATE
    redelivered: int  # copies of events already in the lake, landed today
    doubled: int  # today's events landed twice
    partitions: tuple[datetime.date, ...]  # landed_date partitions written to
    payments: int | None = None  # payments landed for the day (None: the warehouse has no payments folder)


def append_day(out_dir: Path, day: datetime.date, seed: int = 42, share: float = 1.0) -> AppendSummary:
    """``share`` (0-1] replays only that share of the users (by a hash of user_id): the same night's data on a
    bigger history (benchmarks/nightly_bench.py --night-share)."""
    if not 0 < share <= 1:
        raise UsageError(f"--day-share {share} is not in (0, 1]", hint="give the share of users to replay, e.g. 0.1")
    events_dir = Path(out_dir) / "events"
    files = sorted(events_dir.glob("landed_date=*/*.parquet")) if events_dir.is_dir() else []
    if not files:
        raise UsageError(f"no demo warehouse at {events_dir}",
                         hint="generate one first: northstar demo-data --out DIR, then --append-day DATE --out DIR")
    tag = day.isoformat()
    if any(f.name.startswith(f"events_append_{tag}_") for f in files):
        raise UsageError(f"{tag} was already appended to {events_dir}", hint="append the next day instead")
    con = duckdb.connect(":memory:")
    try:
        scan = exp.Anonymous(this="read_parquet", expressions=[
            exp.Literal.string(f"{events_dir}/**/*.parquet"),
            exp.EQ(this=exp.var("hive_partitioning"), expression=exp.Boolean(this=True))])
        con.execute(exp.Create(kind="VIEW", this=exp.to_identifier("lake"), expression=exp.select("*").from_(scan))
                    .sql("duckdb"))
        # The newest day of activity; a late-evening order's delivery may fall on the next day.
        newest = con.execute("SELECT max(CAST(occurred_at AS DATE)) FROM lake "
                             "WHERE event_type <> 'order_delivered'").fetchall()[0][0]
        if day <= newest:
            raise UsageError(f"the warehouse already has events of {newest}; --append-day {tag} would repeat days",
                             hint=f"append {newest + datetime.timedelta(days=1)} (the day after the newest)")
        if day != newest + datetime.timedelta(days=1):
            raise UsageError(f"--append-day {tag} leaves a gap after {newest}",
                             hint=f"append the days in order, starting with {newest + datetime.timedelta(days=1)}")
        template = day - datetime.timedelta(days=7)
        params = {"day": day, "template": template, "seed": seed, "late": LATE_PER_MILLE, "share": round(share * 1000),
                  "redelivered": REDELIVERED_PER_MILLE, "doubled": DOUBLED_PER_MILLE, "back": REDELIVERY_DAYS}
        params["last_landing"] = datetime.datetime.combine(day + datetime.timedelta(days=MAX_LATE_DAYS + 1),
                                                           datetime.time()) - datetime.timedelta(seconds=1)
        for statement in _NEW_DAY_SQL.split(";\n"):  # our own statements; each gets the parameters it names
            if statement.strip():
                con.execute(statement, {k: v for k, v in params.items() if f"${k}" in statement})
        work = Path(tempfile.mkdtemp(prefix=".append-", dir=out_dir))
        try:
            copy = exp.Copy(this=exp.select("*").from_("appended").subquery(), kind=False, files=[exp.Literal.string(str(work))],
                            params=[exp.CopyParameter(this=exp.var("FORMAT"), expression=exp.var("parquet")),
                                    exp.CopyParameter(this=exp.var("PARTITION_BY"),
                                                      expression=exp.paren(exp.column("landed_date"))),
                                    exp.CopyParameter(this=exp.var("FILENAME_PATTERN"),
                                                      expression=exp.Literal.string(f"events_append_{tag}_{{i}}"))])
            con.execute(copy.sql("duckdb"))
            partitions = []
            for written in sorted(work.glob("landed_date=*/*.parquet")):
                target = events_dir / written.parent.name / written.name
                target.parent.mkdir(exist_ok=True)
                os.replace(written, target)
                partitions.append(datetime.date.fromisoformat(written.parent.name.split("=", 1)[1]))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        events, late, redelivered, doubled = con.execute("""
            SELECT count(*) FILTER (WHERE kind = 'new'), count(*) FILTER (WHERE kind = 'new' AND landed_date > $day),
                   count(*) FILTER (WHERE kind = 'redelivered'), count(*) FILTER (WHERE kind = 'doubled')
            FROM appended_kinds""", {"day": day}).fetchall()[0]
        payments = _append_payments(con, Path(out_dir), day, round(share * 1000))
    finally:
        con.close()
    return AppendSummary(day, events, late, redelivered, doubled, tuple(sorted(set(partitions))), payments)


def _append_payments(con: duckdb.DuckDBPyConnection, out_dir: Path, day: datetime.date, share: int = 1000) -> int | None:
    """The template day's payments, seven days later, with new ids (see the module docstring)."""
    folder = out_dir / "payments"
    if not any(folder.glob("*.parquet")):
        return None
    target = folder / f"payments_append_{day.isoformat()}.parquet"
    scan = exp.Anonymous(this="read_parquet", expressions=[exp.Literal.string(f"{folder}/*.parquet")])
    con.execute(exp.Create(kind="VIEW", this=exp.to_identifier("paid"), expression=exp.select("*").from_(scan))
                .sql("duckdb"))
    con.execute("""
        CREATE TEMP TABLE new_payments AS
        SELECT (SELECT max(payment_id) FROM paid) + row_number() OVER (ORDER BY payment_id) AS payment_id,
               user_id, paid_at + INTERVAL 7 DAY AS paid_at, amount
        FROM paid WHERE CAST(paid_at AS DATE) = $template AND hash(user_id, 'share') % 1000 < $share""",
                {"template": day - datetime.timedelta(days=7), "share": share})
    work = Path(tempfile.mkdtemp(prefix=".append-payments-", dir=out_dir))
    try:
        copy = exp.Copy(this=exp.select("*").from_("new_payments").subquery(), kind=False,
                        files=[exp.Literal.string(str(work / target.name))],
                        params=[exp.CopyParameter(this=exp.var("FORMAT"), expression=exp.var("parquet"))])
        con.execute(copy.sql("duckdb"))
        os.replace(work / target.name, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return int(con.execute("SELECT count(*) FROM new_payments").fetchall()[0][0])


# Parameters only ($day, $template, $seed, per-mille shares); one statement per step, all set-based.
_NEW_DAY_SQL = """
CREATE TEMP TABLE firsts AS
    SELECT * FROM lake
    WHERE occurred_at >= $template - INTERVAL 1 DAY   -- the template day, and deliveries of its orders
      AND hash(user_id, 'share') % 1000 < $share      -- the share of users replayed (all by default)
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY landed_at) = 1;
CREATE TEMP TABLE ids AS SELECT max(event_id) AS max_event, max(order_id) AS max_order FROM lake;
CREATE TEMP TABLE order_map AS
    SELECT order_id, (SELECT max_order FROM ids) + row_number() OVER (ORDER BY order_id) AS new_order_id
    FROM firsts WHERE event_type = 'order_placed' AND CAST(occurred_at AS DATE) = $template;
CREATE TEMP TABLE replayed AS
    SELECT (SELECT max_event FROM ids) + row_number() OVER (ORDER BY f.event_id) AS event_id,
           f.user_id, f.event_type,
           f.occurred_at + to_days(CAST($day - $template AS INTEGER)) AS occurred_at,
           f.occurred_at + to_days(CAST($day - $template AS INTEGER)) + (f.landed_at - f.occurred_at) AS on_time_landing,
           coalesce(m.new_order_id, f.order_id) AS order_id, f.items,
           f.promised_at + to_days(CAST($day - $template AS INTEGER)) AS promised_at,
           f.delivered_at + to_days(CAST($day - $template AS INTEGER)) AS delivered_at,
           f.region, f.platform,  -- the user's, as on every event of theirs
           hash(f.event_id, $seed, $day) AS h
    FROM firsts AS f LEFT JOIN order_map AS m USING (order_id)
    WHERE (CAST(f.occurred_at AS DATE) = $template AND f.event_type <> 'order_delivered')
       OR (f.event_type = 'order_delivered' AND m.new_order_id IS NOT NULL);
CREATE TEMP TABLE appended_kinds AS
    SELECT *, CAST(landed_at AS DATE) AS landed_date FROM (
        SELECT event_id, user_id, event_type, occurred_at,
               least(CASE WHEN h % 1000 < $late THEN occurred_at + to_hours(CAST(24 + h % 24 AS INTEGER))
                          ELSE on_time_landing END, $last_landing) AS landed_at,
               order_id, items, promised_at, delivered_at, region, platform, 'new' AS kind
        FROM replayed
        UNION ALL
        SELECT event_id, user_id, event_type, occurred_at,
               least(on_time_landing + to_hours(CAST(1 + h % 11 AS INTEGER)), $last_landing),
               order_id, items, promised_at, delivered_at, region, platform, 'doubled'
        FROM replayed WHERE (h // 1000) % 1000 < $doubled
        UNION ALL
        SELECT event_id, user_id, event_type, occurred_at,
               CAST($day AS TIMESTAMP) + to_hours(CAST(hash(event_id, $seed) % 20 AS INTEGER)),
               order_id, items, promised_at, delivered_at, region, platform, 'redelivered'
        FROM lake
        WHERE landed_date >= $day - CAST($back AS INTEGER) AND landed_date < $day
          AND hash(event_id, $seed, $day, 'again') % 1000 < $redelivered
          AND hash(user_id, 'share') % 1000 < $share
    );
CREATE TEMP VIEW appended AS
    SELECT event_id, user_id, event_type, occurred_at, landed_at, order_id, items, promised_at, delivered_at,
           region, platform, landed_date
    FROM appended_kinds
"""
