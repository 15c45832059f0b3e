"""A deterministic demo event warehouse for a grocery delivery app.

``generate_demo_data(out_dir)`` writes one Parquet dataset, ``out_dir/events/``,
hive-partitioned by the date each event *landed* in the warehouse::

    out_dir/events/landed_date=YYYY-MM-DD/events_<n>.parquet

Columns (DuckDB types): ``event_id BIGINT, user_id BIGINT, event_type VARCHAR,
occurred_at TIMESTAMP, landed_at TIMESTAMP, order_id BIGINT, items INTEGER,
promised_at TIMESTAMP, delivered_at TIMESTAMP, region VARCHAR, platform VARCHAR`` plus the partition column
``landed_date DATE`` (= ``CAST(landed_at AS DATE)``, read it back with
``hive_partitioning=true``). All timestamps are naive UTC, whole seconds.

Beside it, ``out_dir/payments/payments.parquet`` (one flat file, not partitioned): ``payment_id BIGINT,
user_id BIGINT, paid_at TIMESTAMP, amount DOUBLE`` (see "Revenue" below). It is the demo's second source,
so revenue does not go through the event staging models.

Semantics the metric SQL relies on
----------------------------------
* History: ``first_day`` is the Monday ``HISTORY_WEEKS`` (52) weeks before the
  Monday of ``end_date``'s ISO week; ``last_day`` is ``end_date``. With the
  default end date that is 2025-11-17 .. 2026-11-18 (a Wednesday), so the data
  crosses a year boundary and ends in a partial ISO week. No event *occurs*
  after ``end_date 23:59:59``; late events may *land* a few days later.
* ``event_type`` is one of signup, app_open, search, add_to_cart, push_sent,
  push_click, order_placed, order_delivered, support_ticket.
* Every user has exactly one ``signup`` event (``occurred_at`` = signup time)
  and no event of a user occurs before it. Weekly signups grow about 2.4x
  from the first to the last full week; a user stays active for a
  geometric-ish number of weeks (35% never churn), so weekly ordering
  customers grow over the year.
* ``order_id`` is set only on order_placed, order_delivered and
  support_ticket. An order is one ``order_placed`` event (``items >= 1``,
  ``promised_at`` = ``occurred_at`` + 30..60 minutes) and, unless the
  delivery would fall after the end of the data (orders placed in the last
  few hours), one ``order_delivered`` event with the same ``order_id`` and
  ``promised_at`` and ``delivered_at = occurred_at``. On time means
  ``delivered_at <= promised_at``.
* ``support_ticket`` rows carry the ``order_id`` of a delivered order of the
  same user and occur after its delivery (10 minutes to 2 days later); late
  orders get more tickets (mildly more the later they are).
* ``items`` is the basket size on ``order_placed`` (1..~20, about 8 on
  average), ``1`` on every ``add_to_cart`` row (one row per item added) and
  NULL on all other events. ``promised_at`` is set on order_placed and
  order_delivered, ``delivered_at`` only on order_delivered.
* Sessions: an ``app_open`` starts each session, its ``search`` events follow
  within minutes, some searches are followed by an ``add_to_cart`` a few
  seconds later (search-to-cart), and orders are placed 10-30 minutes into a
  session. Each ordering user-week has at least as many sessions as orders.
* Pushes: ``push_click`` follows a ``push_sent`` of the same user within two
  hours and always in the same ISO week, so clicks <= sents per user-week.
* Landing: about 3% of events land 1-3 days (plus up to 6 hours) after they
  occurred; the rest land 5 seconds to 10 minutes after. ``landed_at >=
  occurred_at`` always.
* Duplicates: about 0.3% of events are delivered twice. The second copy is an
  exact duplicate (same ``event_id`` and every other column) except that
  ``landed_at`` is 1-12 hours later, so it may sit in a later partition.
  Staging must dedupe on ``event_id`` (keep the first landing).
* ``event_id`` is unique per logical event and ``order_id`` per order; both
  are composed from (user, week, type, index) bit fields, so they are stable
  for a given (events, seed, end_date) but carry no meaning downstream.

The story planted for the metric tree
-------------------------------------
1. Growth: new customers per week grow steadily (about 2.4x over the year);
   weekly ordering customers grow with them.
2. Lagged push effect: every week has a push campaign whose click-through rate
   follows a deterministic mean-reverting pseudo-random walk (AR(1), squashed
   into 5%..25%, typically moving 3-8 points a week). The chance that an active
   user orders in week w, and how many orders they place, rise with the push
   click-through rate of week
   ``w - PUSH_LAG_WEEKS`` (2), not of week w. Week-over-week changes of orders
   per ordering customer therefore correlate best with push CTR changes two
   weeks earlier.
3. Dip week: in the week starting ``first_day + DIP_WEEK_OFFSET`` weeks (a
   Monday in August 2026 with the default end date) on-time delivery collapses
   to ~58% (normally 90-93%, with mild weekly noise), deliveries are much
   later, and support tickets per order jump to ~0.15 (normally ~0.035).
   The collapse is concentrated in one region: ``north`` (30% of users) is on
   time only 5% of that week, the other regions 80%, so most of the drop in
   on-time orders (about 60% with the default seed) is region=north.
4. Depth: items per order average about 8 (mostly 4-13); weeks and users with
   a higher search-to-cart rate have somewhat bigger baskets.
5. Segments: every event carries its user's ``region`` (north 30%, south
   25%, east 25%, west 20%) and ``platform`` (ios 45%, android 40%, web 15%),
   drawn once per user from the user id. Web users click pushes at half the
   rate (``WEB_PUSH_CLICK_FACTOR``): push click-through on web is about half.
6. Revenue follows the North Star: each on-time order brings its customer back for a repeat basket paid
   exactly ``REVENUE_LAG_WEEKS`` (2) weeks after the order was placed (``payment_id`` = that order's id,
   ``amount`` = items x ``REVENUE_PER_ITEM`` x the paying week's price factor, 1 +- ``REVENUE_NOISE``).
   Weekly revenue is therefore weekly on-time orders two weeks earlier (basket-weighted) plus weekly
   noise: the lead `northstar checklist` must find. Payments due after the end of the data are not
   written, so the first two weeks have no revenue.


How it is generated
-------------------
Everything is set-based DuckDB SQL in one in-memory connection: a weeks table
(campaigns, delivery quality), users from ``range()`` with signup times drawn
by inverse CDF of an exponential growth curve (user ids increase with signup
time), user-weeks by unnesting the weeks each user is alive, per-user-week
event counts, and one ``COPY`` that expands the counts with
``unnest(range(n))``, UNION ALLs the event families, adds landing delays and
duplicates, and writes the partitioned Parquet. All randomness is
``hash(hash(seed, ...))`` mapped to [0, 1), never ``random()``, so the output
(as a multiset of rows) is identical for the same (events, seed, end_date)
whatever the thread count (for one DuckDB version and platform: the hash and
libm may differ elsewhere); row order and file layout inside partitions are not.
The number of users is calibrated from the requested event count with a pilot
population; the actual count is within a few percent of the target (within
10% even for a thousand events, which is only a handful of users).

The dataset is written into a temporary directory inside ``out_dir`` (DuckDB
spills there too) and renamed into place: a re-run replaces the old dataset
whole and a failed run leaves the previous one untouched. Two runs into the
same ``out_dir`` at the same time are not supported. 100M events take 1-1.5
minutes on 2 cores with a 4 GB DuckDB memory limit (2.1 GB of Parquet).
"""

from __future__ import annotations

import datetime
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

DEFAULT_END_DATE = datetime.date(2026, 11, 18)  # a Wednesday: history ends in a partial ISO week
HISTORY_WEEKS = 52
"""Full weeks of history before the ISO week of the end date (which is included, maybe partially)."""
DIP_WEEK_OFFSET = 38
"""The dip week starts DIP_WEEK_OFFSET weeks after first_day (2026-08-10 by default): always a full past week."""
PUSH_LAG_WEEKS = 2
"""Orders in week w respond to the push click-through rate of week w - PUSH_LAG_WEEKS."""
REVENUE_LAG_WEEKS = 2
"""Revenue in week w is the repeat baskets of the on-time orders of week w - REVENUE_LAG_WEEKS."""
REVENUE_PER_ITEM = 3.5
REVENUE_NOISE = 0.03
"""The paying week's price factor is uniform in 1 +- REVENUE_NOISE (one draw per week)."""
MIN_EVENTS = 1000

_WEEK_S = 7 * 86400
_N_WEEKS = HISTORY_WEEKS + 1
_PILOT_USERS = 20_000
_CALIBRATION_TOLERANCE = 0.03
_MAX_USERS = 2**35  # event_id = user_id * 2**27 + ... must stay below 2**63

# The model; see the module docstring for what each number shapes.
_SIGNUP_GROWTH = 2.5  # signup density at the end / at the start of the history
_LOYAL_SHARE = 0.35  # users who never churn
_CHURN_MEAN_WEEKS = 6.0  # mean extra weeks alive of the others
_SESSIONS_MEAN = 2.5  # sessions per full alive week (geometric)
_CTR_MIN, _CTR_MAX = 0.05, 0.25  # push click-through rate range of the campaign walk
_CTR_PERSISTENCE = 0.55  # AR(1) coefficient of the walk: a campaign's level carries over a little
_CTR_SPREAD = 0.8  # tanh scale of the walk (shocks are uniform in [-1, 1])
_CTR_BURN_IN = 20  # weeks the walk runs before it is used
_ORDER_P_BASE, _ORDER_P_PER_CTR = 0.25, 1.5  # P(orders in week w) = base + per_ctr * ctr[w - lag]
_EXTRA_ORDERS_BASE, _EXTRA_ORDERS_PER_CTR = 0.10, 3.5  # mean extra orders of an ordering user-week
_ON_TIME_P, _ON_TIME_JITTER, _ON_TIME_P_DIP = 0.915, 0.03, 0.45
_LATE_MEAN_MIN, _LATE_MEAN_MIN_DIP = 12, 38  # mean minutes late of a late delivery
_TICKET_P_ON_TIME, _TICKET_P_LATE, _TICKET_P_PER_LATE_MIN, _TICKET_P_MAX = 0.025, 0.10, 0.004, 0.5
_STC_BASE, _STC_WEEK, _STC_USER = 0.38, 0.07, 0.12  # search-to-cart: base +- weekly +- per-user spread
_REGIONS = (("north", 0.30), ("south", 0.25), ("east", 0.25), ("west", 0.20))  # (value, share of users)
_PLATFORMS = (("ios", 0.45), ("android", 0.40), ("web", 0.15))
DIP_REGION = "north"
"""The region where the dip week's on-time collapse is concentrated."""
_ON_TIME_P_DIP_REGION, _ON_TIME_P_DIP_ELSEWHERE = 0.05, 0.80  # on-time probability in the dip week
WEB_PUSH_CLICK_FACTOR = 0.5
"""Web users click pushes at half the rate of app users (browser notifications): the segment where the
push click-through hypothesis input behaves differently."""
_LATE_LANDING_SHARE = 0.03
_DUPLICATE_SHARE = 0.003

# event_id type field. Follow-up events come right after the event they follow (search -> add_to_cart,
# push_sent -> push_click, order_placed -> order_delivered -> support_ticket): the SQL adds 0, 1, 2 to the first.
_TYPE_CODES = {
    "signup": 0, "app_open": 1, "search": 2, "add_to_cart": 3, "push_sent": 4,
    "push_click": 5, "order_placed": 6, "order_delivered": 7, "support_ticket": 8,
}
EVENT_TYPES = tuple(_TYPE_CODES)


@dataclass(frozen=True, slots=True)
class DemoDataSummary:
    out_dir: Path  # the directory given
    events_dir: Path  # out_dir / "events"
    events: int  # rows actually written (duplicates included)
    users: int
    first_day: datetime.date
    last_day: datetime.date
    dip_week: datetime.date  # Monday of the dip week
    push_lag_weeks: int  # the planted lag (2)
    payments_dir: Path | None = None  # out_dir / "payments"
    payments: int = 0  # payment rows written
    revenue_lag_weeks: int = REVENUE_LAG_WEEKS  # the North Star's planted lead over revenue


def history_bounds(end_date: datetime.date = DEFAULT_END_DATE) -> tuple[datetime.date, datetime.date, datetime.date]:
    """(first_day, last_day, dip_week Monday) for an end date."""
    end_date = _check_date(end_date)
    first_day = end_date - datetime.timedelta(days=end_date.weekday(), weeks=HISTORY_WEEKS)
    return first_day, end_date, first_day + datetime.timedelta(weeks=DIP_WEEK_OFFSET)


def generate_demo_data(out_dir: Path, *, events: int = 2_000_000, seed: int = 42,
                       end_date: datetime.date = DEFAULT_END_DATE) -> DemoDataSummary:
    """Write the demo warehouse to ``out_dir/events/``, replacing any previous one; see the module docstring."""
    events = _check_int("events", events)
    if events < MIN_EVENTS:
        raise ValueError(f"events must be at least {MIN_EVENTS:,} (got {events:,}): "
                         "smaller warehouses cannot show the weekly story")
    seed = _check_int("seed", seed)
    if not -(2**63) <= seed < 2**63:
        raise ValueError(f"seed must fit in a signed 64-bit integer (got {seed})")
    first_day, last_day, dip_week = history_bounds(end_date)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    events_dir = out_dir / "events"
    payments_dir = out_dir / "payments"

    work = Path(tempfile.mkdtemp(prefix=".demo-data-", dir=out_dir))
    try:
        staging = work / "events"
        con = _connect(work / "spill")
        try:
            ctx = _Context(seed=seed, first_s=_epoch_s(first_day),
                           end_s=_epoch_s(last_day + datetime.timedelta(days=1)))
            con.execute(_weeks_sql(ctx))
            users = _calibrate_users(con, ctx, events)
            written = con.execute(_copy_sql(ctx, staging)).fetchone()[0]
            staged_payments = work / "payments"
            staged_payments.mkdir()
            payments = con.execute(_payments_sql(ctx, staging, staged_payments / "payments.parquet")).fetchone()[0]
        finally:
            con.close()
        if not staging.is_dir():  # COPY of zero rows writes nothing; cannot happen with >= 1 user
            raise RuntimeError("demo data generation wrote no files")
        for final, staged in ((events_dir, staging), (payments_dir, staged_payments)):
            if final.exists() or final.is_symlink():
                os.replace(final, work / f"previous-{final.name}")  # aside first: a directory cannot be replaced
            os.replace(staged, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return DemoDataSummary(out_dir=out_dir, events_dir=events_dir, events=int(written), users=users,
                           first_day=first_day, last_day=last_day, dip_week=dip_week,
                           push_lag_weeks=PUSH_LAG_WEEKS, payments_dir=payments_dir, payments=int(payments))


# --- validation and connection ----------------------------------------------------------------------------------


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (got {type(value).__name__})")
    return int(value)


def _check_date(value: object) -> datetime.date:
    if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
        raise TypeError(f"end_date must be a datetime.date (got {type(value).__name__})")
    return value


def _epoch_s(day: datetime.date) -> int:
    return (day - datetime.date(1970, 1, 1)).days * 86400


def _connect(spill_dir: Path) -> duckdb.DuckDBPyConnection:
    spill_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET memory_limit = '{_memory_limit_mb()}MB'")
    con.execute("SET temp_directory = ?", [str(spill_dir)])
    return con


def _memory_limit_mb() -> int:
    """4 GB, or 60% of physical memory on smaller machines.

    The partitioned Parquet write keeps a row group open per landing day (~370 of them), so peak memory tracks the
    limit; DuckDB flushes under pressure. At 100M events on 2 cores: 2 GB -> 84 s, 4 GB -> 60-90 s, 8 GB -> 79 s
    (a shared machine), so more memory does not help.
    """
    try:
        physical_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (AttributeError, ValueError, OSError):
        return 4096
    return max(512, min(4096, physical_mb * 6 // 10))


# --- SQL building blocks ----------------------------------------------------------------------------------------
# Only validated ints and module constants are spliced into SQL text; nothing user-provided is a string.


@dataclass(frozen=True, slots=True)
class _Context:
    seed: int
    first_s: int  # epoch seconds of first_day 00:00
    end_s: int  # epoch seconds of the day after end_date 00:00 (exclusive bound of occurred_at)


def _i(value: int) -> str:
    """An int as a BIGINT SQL literal (checked to really be an int)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not an int: {value!r}")
    return f"CAST({int(value)} AS BIGINT)"


def _f(value: float) -> str:
    """A module constant as a DOUBLE SQL literal."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"not a finite number: {value!r}")
    return f"CAST({float(value)!r} AS DOUBLE)"


def _h(ctx: _Context, *parts: str | int) -> str:
    """A 64-bit pseudo-random UBIGINT from the seed and the parts.

    DuckDB's multi-argument hash xors in the last argument, so two hashes that differ only there are linked;
    hashing the result again breaks that.
    """
    args = ", ".join([_i(ctx.seed)] + [_i(p) if isinstance(p, int) else f"CAST({p} AS BIGINT)" for p in parts])
    return f"hash(hash({args}))"


def _u(h: str, slot: int) -> str:
    """Uniform [0, 1) from 21 bits (slot 0, 1 or 2) of a 64-bit hash."""
    if slot not in (0, 1, 2):
        raise ValueError(slot)
    return f"((({h}) >> {21 * slot}) & 2097151) / 2097152.0"


def _geometric(u: str, mean: str) -> str:
    """Geometric count (0, 1, 2, ...) with the given mean, from a uniform."""
    return f"floor(ln(1.0 - ({u})) / ln(({mean}) / (1.0 + ({mean}))))"


def _user_category(ctx: _Context, user: str, slot: int, choices: tuple[tuple[str, float], ...]) -> str:
    """A per-user attribute (region, platform) drawn once from the user id: the same on every event."""
    u = _u(_h(ctx, user, 203), slot)
    ifs, cumulative = [], 0.0
    for value, share in choices[:-1]:
        cumulative += share
        ifs.append(f"WHEN {u} < {_f(cumulative)} THEN '{value}'")
    return f"(CASE {' '.join(ifs)} ELSE '{choices[-1][0]}' END)"


def _region(ctx: _Context, user: str) -> str:
    return _user_category(ctx, user, 0, _REGIONS)


def _platform(ctx: _Context, user: str) -> str:
    return _user_category(ctx, user, 1, _PLATFORMS)


def _event_id(user: str, week: str, type_code: str | int, idx: str) -> str:
    # user_id (<= 2**35) | week (7 bits) | type (4 bits) | index within the user-week (16 bits)
    return f"(({user}) * 134217728 + ({week}) * 1048576 + ({type_code}) * 65536 + ({idx}))"


def _session_start(ctx: _Context, j: str) -> str:
    """Start of session j of a user-week (needs user_id, w, ws, we in scope); the last hour is left for its events."""
    span = "CASE WHEN we - ws > 7200 THEN we - ws - 3600 ELSE we - ws END"
    return f"(ws + CAST(floor({_u(_h(ctx, 'user_id', 'w', j, 501), 0)} * ({span})) AS BIGINT))"


def _weeks_sql(ctx: _Context) -> str:
    """Per week: bounds, push CTR (a mean-reverting walk), on-time probability, lateness, search-to-cart.

    The campaign walk is x[w] = sum over k <= w of phi**(w - k) * e[k] (an AR(1) process with uniform shocks,
    started _CTR_BURN_IN weeks early), squashed into (_CTR_MIN, _CTR_MAX) with tanh. Terms are rounded to exact
    integers before summing: a floating-point sum could differ in the last bit between runs.
    """
    scale = 1_000_000
    first_w = -PUSH_LAG_WEEKS - _CTR_BURN_IN
    h = _h(ctx, "w", 101)
    h2 = _h(ctx, "w", 102)
    mid, half = (_CTR_MAX + _CTR_MIN) / 2, (_CTR_MAX - _CTR_MIN) / 2
    return f"""
CREATE OR REPLACE TEMP TABLE weeks AS
WITH raw AS (
    SELECT w, h2, CAST(floor({_u('h', 0)} * {2 * scale}) AS BIGINT) - {scale} AS shock
    FROM (SELECT w, {h} AS h, {h2} AS h2 FROM range({first_w}, {_N_WEEKS}) AS t(w))
), walk AS (
    SELECT a.w, any_value(a.h2) AS h2,
           sum(CAST(round(b.shock * pow({_f(_CTR_PERSISTENCE)}, a.w - b.w)) AS BIGINT)) AS x
    FROM raw AS a JOIN raw AS b ON b.w <= a.w
    GROUP BY a.w
)
SELECT
    w,
    {_i(ctx.first_s)} + w * {_WEEK_S} AS start_s,
    least({_i(ctx.first_s)} + (w + 1) * {_WEEK_S}, {_i(ctx.end_s)}) AS end_s,
    {_f(mid)} + {_f(half)} * tanh(x / {_f(_CTR_SPREAD * scale)}) AS ctr,
    CASE WHEN w = {DIP_WEEK_OFFSET} THEN {_f(_ON_TIME_P_DIP)}
         ELSE {_f(_ON_TIME_P)} + {_f(_ON_TIME_JITTER)} * ({_u('h2', 0)} - 0.5) END AS on_time_p,
    CASE WHEN w = {DIP_WEEK_OFFSET} THEN {_LATE_MEAN_MIN_DIP * 60} ELSE {_LATE_MEAN_MIN * 60} END AS late_mean_s,
    {_f(_STC_BASE)} + {_f(_STC_WEEK)} * (2 * {_u('h2', 1)} - 1) AS stc
FROM walk
WHERE w >= {-PUSH_LAG_WEEKS}
"""


def _population_sql(ctx: _Context, n_users: int) -> tuple[str, str]:
    """users and user_weeks (one row per week a user is alive, with that week's event counts)."""
    span = ctx.end_s - ctx.first_s
    g = _f(_SIGNUP_GROWTH)
    users = f"""
CREATE OR REPLACE TEMP TABLE users AS
SELECT user_id, signup_s, (signup_s - {_i(ctx.first_s)}) // {_WEEK_S} AS sw, lifetime, stc_off
FROM (
    SELECT
        user_id,
        least({_i(ctx.end_s - 1)}, {_i(ctx.first_s)} + CAST(floor(
            ln(1.0 + (user_id - 1 + {_u('h', 0)}) / {_i(n_users)} * ({g} - 1.0)) / ln({g}) * {_i(span)}) AS BIGINT))
            AS signup_s,
        CASE WHEN {_u('h', 1)} < {_f(_LOYAL_SHARE)} THEN {_N_WEEKS}
             ELSE CAST(floor(-ln(1.0 - {_u('h', 2)}) * {_f(_CHURN_MEAN_WEEKS)}) AS BIGINT) END AS lifetime,
        {_f(_STC_USER)} * (2 * {_u('h2', 0)} - 1) AS stc_off
    FROM (SELECT user_id, {_h(ctx, 'user_id', 201)} AS h, {_h(ctx, 'user_id', 202)} AS h2
          FROM range(1, {_i(n_users + 1)}) AS t(user_id))
)
"""
    k = "k"
    order_p = f"least(0.95, {_f(_ORDER_P_BASE)} + {_f(_ORDER_P_PER_CTR)} * ctr_lag)"
    extra_mean = f"({k} * ({_f(_EXTRA_ORDERS_BASE)} + {_f(_EXTRA_ORDERS_PER_CTR)} * ctr_lag))"
    user_weeks = f"""
CREATE OR REPLACE TEMP TABLE user_weeks AS
SELECT user_id, w, ws, we, ctr, on_time_p, late_mean_s, p_cart, n_push, n_orders,
       n_sess, CAST(floor(n_sess * (1.0 + 2.5 * {_u('hb', 1)})) AS INTEGER) AS n_search
FROM (
    SELECT *, CAST(least(60, greatest(n_sess_raw, n_orders)) AS INTEGER) AS n_sess
    FROM (
        SELECT
            user_id, w, ws, we, ctr, on_time_p, late_mean_s, p_cart, hb,
            CAST(floor({k} * (1.0 + 3.0 * {_u('ha', 0)})) AS INTEGER) AS n_push,
            {_geometric(_u('ha', 1), f'{_f(_SESSIONS_MEAN)} * {k}')} AS n_sess_raw,
            CASE WHEN {_u('ha', 2)} < {k} * {order_p}
                 THEN CAST(1 + least(40, {_geometric(_u('hb', 0), extra_mean)}) AS INTEGER) ELSE 0 END AS n_orders
        FROM (
            SELECT
                uw.user_id, uw.w, greatest(wk.start_s, uw.signup_s) AS ws, wk.end_s AS we,
                (wk.end_s - wk.start_s) / {float(_WEEK_S)} * CASE WHEN uw.w = uw.sw
                    THEN 0.5 + 0.5 * (wk.end_s - greatest(wk.start_s, uw.signup_s)) / (wk.end_s - wk.start_s)
                    ELSE 1.0 END AS k,
                wk.ctr, lag.ctr AS ctr_lag,
                CASE WHEN uw.w = {DIP_WEEK_OFFSET} THEN CASE WHEN {_region(ctx, 'uw.user_id')} = '{DIP_REGION}'
                     THEN {_f(_ON_TIME_P_DIP_REGION)} ELSE {_f(_ON_TIME_P_DIP_ELSEWHERE)} END
                     ELSE wk.on_time_p END AS on_time_p,
                wk.late_mean_s,
                least(0.95, greatest(0.05, wk.stc + uw.stc_off)) AS p_cart,
                {_h(ctx, 'uw.user_id', 'uw.w', 301)} AS ha,
                {_h(ctx, 'uw.user_id', 'uw.w', 302)} AS hb
            FROM (SELECT user_id, signup_s, sw, stc_off, unnest(range(sw, least({_N_WEEKS}, sw + lifetime + 1))) AS w
                  FROM users) AS uw
            JOIN weeks AS wk ON wk.w = uw.w
            JOIN weeks AS lag ON lag.w = uw.w - {PUSH_LAG_WEEKS}
        )
    )
)
"""
    return users, user_weeks


def _expected_events_sql() -> str:
    """Expected rows written for the current population (filtered events at their probabilities)."""
    ticket_share = 0.04
    return f"""
SELECT ((SELECT count(*) FROM users) + coalesce(sum(n_push * (1.0 + ctr) + n_sess + n_search * (1.0 + p_cart)
        + n_orders * (2.0 + {ticket_share})), 0)) * (1.0 + {_f(_DUPLICATE_SHARE)})
FROM user_weeks
"""


def _calibrate_users(con: duckdb.DuckDBPyConnection, ctx: _Context, events: int) -> int:
    """Pick a number of users whose expected event count is close to the target; leave that population built.

    Users are spread over the history by quantile, so events per user hardly depend on the count: a pilot gives the
    ratio and one or two corrections absorb the rest. Tiny targets (a handful of users, each worth a few hundred
    events) also try neighbouring counts.
    """
    built: dict[int, float] = {}  # users -> expected events
    current = [0]  # the population now in the tables

    def build(n_users: int) -> float:
        if n_users >= _MAX_USERS:
            raise ValueError(f"events={events:,} is too large for the demo generator")
        for statement in _population_sql(ctx, n_users):
            con.execute(statement)
        current[0] = n_users
        built[n_users] = float(con.execute(_expected_events_sql()).fetchone()[0])
        return built[n_users]

    def error(n_users: int) -> float:
        return abs(built[n_users] / events - 1.0)

    pilot = min(_PILOT_USERS, max(2_000, events // 100))
    per_user = build(pilot) / pilot
    del built[pilot]
    n_users = max(1, round(events / per_user))
    for _ in range(3):
        expected = build(n_users)
        if error(n_users) <= _CALIBRATION_TOLERANCE or expected <= 0:
            break
        n_users = max(1, round(n_users * events / expected))
    else:
        build(n_users)
    center = min(built, key=error)
    if error(center) > _CALIBRATION_TOLERANCE and center <= 10_000:
        for step in range(1, 9):
            for n in (center + step, center - step):
                if n >= 1 and n not in built:
                    build(n)
            if error(min(built, key=error)) <= _CALIBRATION_TOLERANCE:
                break
    best = min(built, key=error)
    if current[0] != best:
        build(best)
    return best


def _copy_sql(ctx: _Context, target: Path) -> str:
    end = _i(ctx.end_s)
    null_cols = "CAST(NULL AS BIGINT), CAST(NULL AS INTEGER), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT)"
    code = _TYPE_CODES
    signup_id = _event_id("user_id", "sw", code["signup"], "0")
    push_id = _event_id("user_id", "w", f"{code['push_sent']} + c", "j")
    session_id = _event_id("user_id", "w", code["app_open"], "j")
    search_id = _event_id("user_id", "w", f"{code['search']} + c", "j")
    order_event_id = _event_id("user_id", "w", f"{code['order_placed']} + c", "j")
    signups = f"""
SELECT {signup_id} AS event_id, user_id, 'signup' AS event_type, signup_s AS occurred_s, {null_cols}
FROM users"""

    hp = _h(ctx, "user_id", "w", "j", 401)
    pushes = f"""
SELECT {push_id}, user_id,
       CASE c WHEN 0 THEN 'push_sent' ELSE 'push_click' END,
       CASE c WHEN 0 THEN sent_s ELSE sent_s + CAST(floor({_u('h', 2)} * least(7200, we - sent_s)) AS BIGINT) END,
       {null_cols}
FROM (
    SELECT *, unnest(CASE WHEN {_u('h', 1)} < ctr * CASE WHEN {_platform(ctx, 'user_id')} = 'web'
                          THEN {_f(WEB_PUSH_CLICK_FACTOR)} ELSE 1.0 END THEN [0, 1] ELSE [0] END) AS c
    FROM (
        SELECT user_id, w, we, ctr, j, h, ws + CAST(floor({_u('h', 0)} * (we - ws)) AS BIGINT) AS sent_s
        FROM (SELECT *, {hp} AS h
              FROM (SELECT user_id, w, ws, we, ctr, unnest(range(n_push)) AS j FROM user_weeks))
    )
)"""

    sessions = f"""
SELECT {session_id}, user_id, 'app_open', {_session_start(ctx, 'j')}, {null_cols}
FROM (SELECT user_id, w, ws, we, unnest(range(n_sess)) AS j FROM user_weeks)"""

    hs = _h(ctx, "user_id", "w", "j", 601)
    searches = f"""
SELECT {search_id}, user_id,
       CASE c WHEN 0 THEN 'search' ELSE 'add_to_cart' END,
       CASE c WHEN 0 THEN search_s ELSE least(we - 1, search_s + 5 + CAST(floor({_u('h', 2)} * 80) AS BIGINT)) END,
       CAST(NULL AS BIGINT), CAST(CASE c WHEN 0 THEN NULL ELSE 1 END AS INTEGER), CAST(NULL AS BIGINT),
       CAST(NULL AS BIGINT)
FROM (
    SELECT *, unnest(CASE WHEN {_u('h', 1)} < p_cart THEN [0, 1] ELSE [0] END) AS c
    FROM (
        SELECT user_id, w, we, p_cart, j, h,
               least(we - 1, s + 15 + (j // n_sess) * 60 + CAST(floor({_u('h', 0)} * 45) AS BIGINT)) AS search_s
        FROM (SELECT *, {_session_start(ctx, 'j % n_sess')} AS s, {hs} AS h
              FROM (SELECT user_id, w, ws, we, n_sess, p_cart, unnest(range(n_search)) AS j FROM user_weeks))
    )
)"""

    h1, h2, h3 = (_h(ctx, "user_id", "w", "j", tag) for tag in (701, 702, 703))
    late_mean = "late_mean_s"
    delivered = (f"CASE WHEN {_u('h1', 2)} < on_time_p "
                 f"THEN placed_s + 600 + CAST(floor({_u('h2', 0)} * (window_s - 600)) AS BIGINT) "
                 f"ELSE placed_s + window_s + 60 + CAST(floor(-ln(1.0 - {_u('h2', 0)}) * {late_mean}) AS BIGINT) END")
    ticket_p = (f"CASE WHEN delivered_s <= promised_s THEN {_f(_TICKET_P_ON_TIME)} "
                f"ELSE least({_f(_TICKET_P_MAX)}, {_f(_TICKET_P_LATE)} + "
                f"{_f(_TICKET_P_PER_LATE_MIN)} * (delivered_s - promised_s) / 60.0) END")
    items = (f"CAST(greatest(1, round(2.3 + 15.0 * p_cart + 4.0 * "
             f"({_u('h3', 0)} + {_u('h3', 1)} + {_u('h3', 2)} - 1.5))) AS INTEGER)")
    orders = f"""
SELECT {order_event_id}, user_id,
       CASE c WHEN 0 THEN 'order_placed' WHEN 1 THEN 'order_delivered' ELSE 'support_ticket' END,
       CASE c WHEN 0 THEN placed_s WHEN 1 THEN delivered_s ELSE ticket_s END,
       user_id * 8192 + w * 64 + j,
       CASE c WHEN 0 THEN items END,
       CASE WHEN c < 2 THEN promised_s END,
       CASE c WHEN 1 THEN delivered_s END
FROM (
    SELECT *, unnest(CASE WHEN delivered_s >= {end} THEN [0]
                          WHEN {_u('h2', 1)} < {ticket_p} AND ticket_s < {end} THEN [0, 1, 2]
                          ELSE [0, 1] END) AS c
    FROM (
        SELECT *, delivered_s + 600
                  + CAST(floor(least(172800.0, -ln(1.0 - {_u('h2', 2)}) * 10800.0)) AS BIGINT) AS ticket_s
        FROM (
            SELECT *, placed_s + window_s AS promised_s, {delivered} AS delivered_s, {items} AS items
            FROM (
                SELECT *, least(we - 1, s + 600 + CAST(floor({_u('h1', 0)} * 1200) AS BIGINT)) AS placed_s,
                       1800 + CAST(floor({_u('h1', 1)} * 1801) AS BIGINT) AS window_s
                FROM (SELECT *, {_session_start(ctx, 'j')} AS s, {h1} AS h1, {h2} AS h2, {h3} AS h3
                      FROM (SELECT user_id, w, ws, we, on_time_p, late_mean_s, p_cart,
                                   unnest(range(n_orders)) AS j
                            FROM user_weeks))
            )
        )
    )
)"""

    hl = _h(ctx, "event_id", 801)
    hd = _h(ctx, "event_id", 802)
    lag = (f"CASE WHEN {_u('hl', 0)} < {_f(_LATE_LANDING_SHARE)} "
           f"THEN 86400 * (1 + CAST(floor({_u('hl', 1)} * 3) AS BIGINT)) + CAST(floor({_u('hl', 2)} * 21600) AS BIGINT)"
           f" ELSE 5 + CAST(floor({_u('hl', 1)} * 595) AS BIGINT) END")
    dup = (f"unnest(CASE WHEN {_u('hd', 0)} < {_f(_DUPLICATE_SHARE)} "
           f"THEN [0, 3600 + CAST(floor({_u('hd', 1)} * 39600) AS BIGINT)] ELSE [CAST(0 AS BIGINT)] END)")
    families = "\nUNION ALL\n".join([signups, pushes, sessions, searches, orders])
    target_sql = str(target).replace("'", "''")
    return f"""
COPY (
    SELECT
        event_id, user_id, event_type,
        make_timestamp(occurred_s * 1000000) AS occurred_at,
        make_timestamp(landed_s * 1000000) AS landed_at,
        order_id, items,
        make_timestamp(promised_s * 1000000) AS promised_at,
        make_timestamp(delivered_s * 1000000) AS delivered_at,
        {_region(ctx, 'user_id')} AS region,
        {_platform(ctx, 'user_id')} AS platform,
        CAST(make_timestamp(landed_s * 1000000) AS DATE) AS landed_date
    FROM (
        SELECT *, occurred_s + landed_lag_s + extra_s AS landed_s
        FROM (
            SELECT *, {lag} AS landed_lag_s, {dup} AS extra_s
            FROM (SELECT *, {hl} AS hl, {hd} AS hd
                  FROM (
{families}
                  ) AS e(event_id, user_id, event_type, occurred_s, order_id, items, promised_s, delivered_s))
        )
    )
) TO '{target_sql}' (FORMAT parquet, PARTITION_BY (landed_date), FILENAME_PATTERN 'events_{{i}}')
"""


def _payments_sql(ctx: _Context, events: Path, target: Path) -> str:
    """Revenue (story item 6): a repeat basket REVENUE_LAG_WEEKS after each on-time order, read back from the events.

    Set-based over the written events (orders only): one row per order with its delivery, deduplicated by order_id.
    """
    events_sql = (str(events) + "/**/*.parquet").replace("'", "''")
    target_sql = str(target).replace("'", "''")
    lag_s = REVENUE_LAG_WEEKS * _WEEK_S
    week = f"(paid_s - {_i(ctx.first_s)}) // {_WEEK_S}"
    factor = f"(1.0 + {_f(REVENUE_NOISE)} * (2 * {_u(_h(ctx, week, 901), 0)} - 1))"
    return f"""
COPY (
    SELECT order_id AS payment_id, user_id, make_timestamp(paid_s * 1000000) AS paid_at,
           round(items * {_f(REVENUE_PER_ITEM)} * {factor}, 2) AS amount
    FROM (
        SELECT order_id, any_value(user_id) AS user_id,
               max(items) FILTER (WHERE event_type = 'order_placed') AS items,
               epoch(min(occurred_at) FILTER (WHERE event_type = 'order_placed'))::BIGINT + {lag_s} AS paid_s,
               bool_or(event_type = 'order_delivered' AND delivered_at <= promised_at) AS on_time
        FROM read_parquet('{events_sql}', hive_partitioning = true)
        WHERE event_type IN ('order_placed', 'order_delivered')
        GROUP BY order_id
    )
    WHERE on_time AND paid_s < {_i(ctx.end_s)}
) TO '{target_sql}' (FORMAT parquet)
"""
