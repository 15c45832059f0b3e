"""The demo warehouse generator: shape, semantics the metric SQL relies on, determinism and the planted story.

Every check is independent SQL over the written Parquet files, read back the way the project reads them.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import duckdb
import pytest

from northstar_pipeline.demo import demo_data
from northstar_pipeline.demo.demo_data import (
    DEFAULT_END_DATE,
    DemoDataSummary,
    generate_demo_data,
)

SMALL_EVENTS = 30_000
LARGE_EVENTS = 300_000
EVENT_TYPES = {"signup", "app_open", "search", "add_to_cart", "push_sent", "push_click", "order_placed",
               "order_delivered", "support_ticket"}
SCHEMA = [
    ("event_id", "BIGINT"), ("user_id", "BIGINT"), ("event_type", "VARCHAR"), ("occurred_at", "TIMESTAMP"),
    ("landed_at", "TIMESTAMP"), ("order_id", "BIGINT"), ("items", "INTEGER"), ("promised_at", "TIMESTAMP"),
    ("delivered_at", "TIMESTAMP"), ("region", "VARCHAR"), ("platform", "VARCHAR"), ("landed_date", "DATE"),
]


def events_sql(events_dir: Path) -> str:
    return f"read_parquet('{events_dir}/**/*.parquet', hive_partitioning = true)"


def deduped_sql(events_dir: Path) -> str:
    return (f"(select * from {events_sql(events_dir)} "
            "qualify row_number() over (partition by event_id order by landed_at) = 1)")


def one(con: duckdb.DuckDBPyConnection, sql: str):
    rows = con.execute(sql).fetchall()
    assert len(rows) == 1, rows
    return rows[0][0] if len(rows[0]) == 1 else rows[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> DemoDataSummary:
    return generate_demo_data(tmp_path_factory.mktemp("small") / "warehouse", events=SMALL_EVENTS, seed=7)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> DemoDataSummary:
    return generate_demo_data(tmp_path_factory.mktemp("large") / "warehouse", events=LARGE_EVENTS, seed=42)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def small_table(small: DemoDataSummary) -> duckdb.DuckDBPyConnection:
    """A connection holding the small warehouse deduplicated as table e (the raw files stay readable too)."""
    connection = duckdb.connect()
    connection.execute(f"create table e as select * from {deduped_sql(small.events_dir)}")
    yield connection
    connection.close()


# --- arguments and summary --------------------------------------------------------------------------------------


def test_rejects_too_few_events(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1,000"):
        generate_demo_data(tmp_path, events=999)
    assert not (tmp_path / "events").exists()


@pytest.mark.parametrize("kwargs", [{"events": 10_000.0}, {"events": True}, {"seed": "42"},
                                    {"end_date": datetime.datetime(2026, 11, 18)}, {"end_date": "2026-11-18"}])
def test_rejects_wrong_argument_types(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(TypeError):
        generate_demo_data(tmp_path, **{"events": 10_000, **kwargs})


def test_summary_describes_what_was_written(small: DemoDataSummary, con: duckdb.DuckDBPyConnection) -> None:
    assert small.events_dir == small.out_dir / "events"
    assert small.first_day == datetime.date(2025, 11, 17) and small.first_day.weekday() == 0
    assert small.last_day == DEFAULT_END_DATE == datetime.date(2026, 11, 18)
    assert small.dip_week == small.first_day + datetime.timedelta(weeks=demo_data.DIP_WEEK_OFFSET)
    assert small.dip_week.weekday() == 0 and small.dip_week.month == 8
    assert small.push_lag_weeks == 2
    rows, users = one(con, f"select count(*), count(distinct user_id) from {events_sql(small.events_dir)}")
    assert rows == small.events
    assert users == small.users
    assert abs(small.events / SMALL_EVENTS - 1) <= 0.10


def test_tiny_target_is_still_calibrated(tmp_path: Path) -> None:
    summary = generate_demo_data(tmp_path, events=1_000, seed=3)
    assert abs(summary.events / 1_000 - 1) <= 0.10


# --- determinism ------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_data(small: DemoDataSummary, tmp_path: Path,
                                        con: duckdb.DuckDBPyConnection) -> None:
    again = generate_demo_data(tmp_path / "again", events=SMALL_EVENTS, seed=7)
    assert again.events == small.events and again.users == small.users
    a, b = events_sql(small.events_dir), events_sql(again.events_dir)
    assert one(con, f"select count(*) from (select * from {a} except all select * from {b})") == 0
    assert one(con, f"select count(*) from (select * from {b} except all select * from {a})") == 0


def test_other_seed_gives_other_data(small: DemoDataSummary, tmp_path: Path,
                                     con: duckdb.DuckDBPyConnection) -> None:
    other = generate_demo_data(tmp_path / "other", events=SMALL_EVENTS, seed=8)
    a, b = events_sql(small.events_dir), events_sql(other.events_dir)
    only_a = one(con, f"select count(*) from (select * from {a} except all select * from {b})")
    assert only_a > 0.9 * small.events


# --- layout and schema ------------------------------------------------------------------------------------------


def test_schema_and_event_types(small: DemoDataSummary, con: duckdb.DuckDBPyConnection) -> None:
    described = con.execute(f"describe select * from {events_sql(small.events_dir)}").fetchall()
    assert [(row[0], row[1]) for row in described] == SCHEMA
    distinct_types = con.execute(f"select distinct event_type from {events_sql(small.events_dir)}").fetchall()
    types = {row[0] for row in distinct_types}
    assert types == EVENT_TYPES


def test_hive_partitions_match_landed_at(small: DemoDataSummary, con: duckdb.DuckDBPyConnection) -> None:
    entries = list(small.events_dir.iterdir())
    assert entries and all(p.is_dir() and re.fullmatch(r"landed_date=\d{4}-\d{2}-\d{2}", p.name) for p in entries)
    assert all(any(p.glob("*.parquet")) for p in entries)
    # the directory name, parsed here from the file path itself, is the day the event landed
    mismatched = one(con, f"""
        select count(*) from read_parquet('{small.events_dir}/**/*.parquet', hive_partitioning = false, filename = true)
        where cast(regexp_extract(filename, 'landed_date=(\\d{{4}}-\\d{{2}}-\\d{{2}})', 1) as date)
              <> cast(landed_at as date)""")
    assert mismatched == 0
    assert one(con, f"select count(*) from {events_sql(small.events_dir)} "
                    "where landed_date <> cast(landed_at as date)") == 0


def test_rerun_replaces_the_dataset_and_leaves_no_temp_files(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    out = tmp_path / "warehouse"
    first = generate_demo_data(out, events=5_000, seed=1)
    con.execute(f"create table first_run as select * from {events_sql(first.events_dir)}")
    (out / "events" / "landed_date=1999-01-01").mkdir()  # a stray partition must not survive
    second = generate_demo_data(out, events=5_000, seed=2)
    assert sorted(p.name for p in out.iterdir()) == ["events", "payments"]
    assert not (out / "events" / "landed_date=1999-01-01").exists()
    new = events_sql(second.events_dir)
    assert one(con, f"select count(*) from {new}") == second.events
    assert one(con, f"select count(*) from (select * from {new} intersect all select * from first_run)") \
        < 0.1 * second.events


def test_failed_run_keeps_the_previous_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               con: duckdb.DuckDBPyConnection) -> None:
    out = tmp_path / "warehouse"
    first = generate_demo_data(out, events=5_000, seed=1)
    monkeypatch.setattr(demo_data, "_copy_sql", lambda ctx, target: "select * from no_such_table")
    with pytest.raises(duckdb.Error):
        generate_demo_data(out, events=5_000, seed=2)
    assert sorted(p.name for p in out.iterdir()) == ["events", "payments"]
    assert one(con, f"select count(*) from {events_sql(out / 'events')}") == first.events


# --- semantics the metric SQL relies on -------------------------------------------------------------------------


def test_time_bounds(small: DemoDataSummary, small_table: duckdb.DuckDBPyConnection) -> None:
    lo, hi, bad_landing = one(small_table, """
        select min(occurred_at), max(occurred_at), count(*) filter (where landed_at < occurred_at) from e""")
    assert lo >= datetime.datetime.combine(small.first_day, datetime.time())
    assert hi <= datetime.datetime.combine(small.last_day, datetime.time(23, 59, 59))
    assert bad_landing == 0
    weeks = one(small_table, "select count(distinct date_trunc('week', occurred_at)) from e")
    assert weeks == 53  # 52 full ISO weeks and the partial week of the end date


def test_every_user_signs_up_once_before_anything_else(small_table: duckdb.DuckDBPyConnection) -> None:
    assert one(small_table, """
        select count(*) from (select user_id from e group by user_id
                              having count(*) filter (where event_type = 'signup') <> 1)""") == 0
    assert one(small_table, """
        select count(*) from e join e as s on s.user_id = e.user_id and s.event_type = 'signup'
        where e.occurred_at < s.occurred_at""") == 0


def test_columns_are_set_only_where_documented(small_table: duckdb.DuckDBPyConnection) -> None:
    rows = small_table.execute("""
        select event_type,
               count(*) filter (where order_id is not null), count(*) filter (where items is not null),
               count(*) filter (where promised_at is not null), count(*) filter (where delivered_at is not null),
               count(*)
        from e group by 1""").fetchall()
    by_type = {r[0]: r[1:] for r in rows}
    for event_type, (orders, items, promised, delivered, total) in by_type.items():
        assert orders == (total if event_type in {"order_placed", "order_delivered", "support_ticket"} else 0)
        assert items == (total if event_type in {"order_placed", "add_to_cart"} else 0)
        assert promised == (total if event_type in {"order_placed", "order_delivered"} else 0)
        assert delivered == (total if event_type == "order_delivered" else 0)
    assert one(small_table, "select count(*) from e where event_type = 'add_to_cart' and items <> 1") == 0


def test_orders_and_deliveries(small: DemoDataSummary, small_table: duckdb.DuckDBPyConnection) -> None:
    placed, min_items, avg_items, bad_promise, duplicate_orders = one(small_table, """
        select count(*), min(items), avg(items),
               count(*) filter (where promised_at not between occurred_at + interval 30 minute
                                                          and occurred_at + interval 60 minute),
               count(*) - count(distinct order_id)
        from e where event_type = 'order_placed'""")
    assert placed > 500 and min_items >= 1 and 6 <= avg_items <= 10
    assert bad_promise == 0 and duplicate_orders == 0
    # every delivery matches its placed order: same user and promise, delivered_at is when it happened
    assert one(small_table, """
        select count(*) from e as d
        left join e as p on p.order_id = d.order_id and p.event_type = 'order_placed'
        where d.event_type = 'order_delivered'
          and (p.order_id is null or p.user_id <> d.user_id or p.promised_at <> d.promised_at
               or d.delivered_at <> d.occurred_at or d.delivered_at <= p.occurred_at)""") == 0
    assert one(small_table, """
        select count(*) from (select order_id from e where event_type = 'order_delivered'
                              group by 1 having count(*) > 1)""") == 0
    # only orders from the last few hours of the data are still on their way
    end = datetime.datetime.combine(small.last_day, datetime.time(23, 59, 59))
    undelivered_since = one(small_table, """
        select min(p.occurred_at) from e as p
        where p.event_type = 'order_placed'
          and not exists (select 1 from e as d where d.order_id = p.order_id and d.event_type = 'order_delivered')""")
    assert undelivered_since is None or end - undelivered_since < datetime.timedelta(hours=5)


def test_tickets_are_about_delivered_orders_of_the_user(small_table: duckdb.DuckDBPyConnection) -> None:
    tickets, orphans = one(small_table, """
        select count(*), count(*) filter (where d.order_id is null or d.user_id <> t.user_id
                                                or t.occurred_at <= d.delivered_at)
        from e as t left join e as d on d.order_id = t.order_id and d.event_type = 'order_delivered'
        where t.event_type = 'support_ticket'""")
    assert tickets > 0 and orphans == 0


def test_push_clicks_follow_sends_in_the_same_week(small_table: duckdb.DuckDBPyConnection) -> None:
    assert one(small_table, """
        select count(*) from (
            select user_id, date_trunc('week', occurred_at)
            from e where event_type in ('push_sent', 'push_click') group by all
            having count(*) filter (where event_type = 'push_click')
                 > count(*) filter (where event_type = 'push_sent'))""") == 0
    assert one(small_table, """
        select count(*) from e as c
        where c.event_type = 'push_click' and not exists (
            select 1 from e as s
            where s.user_id = c.user_id and s.event_type = 'push_sent' and s.occurred_at <= c.occurred_at
              and date_trunc('week', s.occurred_at) = date_trunc('week', c.occurred_at))""") == 0


def test_sessions_searches_and_carts(small_table: duckdb.DuckDBPyConnection) -> None:
    search_to_cart = one(small_table, """
        select count(*) filter (where event_type = 'add_to_cart') / count(*) filter (where event_type = 'search')
        from e""")
    assert 0.2 < search_to_cart < 0.6
    # every user-week with a search or an order also opened the app
    assert one(small_table, """
        select count(*) from (
            select user_id, date_trunc('week', occurred_at) from e group by all
            having count(*) filter (where event_type in ('search', 'order_placed')) > 0
               and count(*) filter (where event_type = 'app_open') = 0)""") == 0


def test_late_landings_share(small_table: duckdb.DuckDBPyConnection) -> None:
    late, slowest_on_time = one(small_table, """
        select avg(case when landed_at >= occurred_at + interval 1 day then 1.0 else 0.0 end),
               max(landed_at - occurred_at) filter (where landed_at < occurred_at + interval 1 day)
        from e""")
    assert 0.01 <= late <= 0.06
    assert slowest_on_time <= datetime.timedelta(minutes=15)


def test_duplicates_are_exact_except_landed_at(small: DemoDataSummary, con: duckdb.DuckDBPyConnection) -> None:
    raw = events_sql(small.events_dir)
    rows, distinct_ids = one(con, f"select count(*), count(distinct event_id) from {raw}")
    assert 0.0005 * rows < rows - distinct_ids < 0.01 * rows
    bad = one(con, f"""
        select count(*) from (
            select event_id from {raw} group by event_id having count(*) > 1
               and (count(*) <> 2
                    or count(distinct landed_at) <> 2
                    or count(distinct (user_id, event_type, occurred_at, order_id, items, promised_at,
                                       delivered_at)) <> 1))""")
    assert bad == 0


def test_other_end_date(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    summary = generate_demo_data(tmp_path, events=5_000, end_date=datetime.date(2024, 3, 3))  # a Sunday
    assert summary.first_day == datetime.date(2023, 2, 27)  # Monday of that week (2024-02-26) minus 52 weeks
    assert summary.dip_week == datetime.date(2023, 11, 20)
    lo, hi = one(con, f"select min(occurred_at), max(occurred_at) from {events_sql(summary.events_dir)}")
    assert lo >= datetime.datetime(2023, 2, 27) and hi < datetime.datetime(2024, 3, 4)


# --- the planted story ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weekly(large: DemoDataSummary) -> duckdb.DuckDBPyConnection:
    """Weekly measures over full weeks of the large warehouse, in table w (week, ...)."""
    connection = duckdb.connect()
    last_full_week_end = large.last_day + datetime.timedelta(days=1)
    connection.execute(f"create table e as select * from {deduped_sql(large.events_dir)}")
    connection.execute(f"""
        create table w as
        with orders as (
            select date_trunc('week', p.occurred_at) as week, count(*) as orders,
                   count(distinct p.user_id) as customers,
                   count(*) filter (where d.delivered_at <= p.promised_at) as on_time
            from e as p left join e as d on d.order_id = p.order_id and d.event_type = 'order_delivered'
            where p.event_type = 'order_placed' group by 1
        ), tickets as (
            select date_trunc('week', occurred_at) as week, count(*) as tickets
            from e where event_type = 'support_ticket' group by 1
        ), pushes as (
            select date_trunc('week', occurred_at) as week,
                   count(*) filter (where event_type = 'push_click')
                     / count(*) filter (where event_type = 'push_sent') as ctr
            from e where event_type in ('push_sent', 'push_click') group by 1
        ), signups as (
            select date_trunc('week', occurred_at) as week, count(*) as signups
            from e where event_type = 'signup' group by 1
        )
        select cast(week as date) as week, signups, customers, orders / customers as orders_per_customer,
               on_time / orders as on_time_rate, coalesce(tickets, 0) / orders as tickets_per_order, ctr
        from orders join pushes using (week) join signups using (week) left join tickets using (week)
        where week + interval 7 day <= DATE '{last_full_week_end}'
        order by week""")
    yield connection
    connection.close()


def test_story_growth(weekly: duckdb.DuckDBPyConnection) -> None:
    first_signups, last_signups, first_customers, last_customers = one(weekly, """
        select sum(signups) filter (where rank <= 8), sum(signups) filter (where rank > n - 8),
               sum(customers) filter (where rank <= 8), sum(customers) filter (where rank > n - 8)
        from (select *, row_number() over (order by week) as rank, count(*) over () as n from w)""")
    assert 1.8 <= last_signups / first_signups <= 3.2
    assert last_customers > 2.5 * first_customers


def test_story_dip_week(large: DemoDataSummary, weekly: duckdb.DuckDBPyConnection) -> None:
    dip_on_time, dip_tickets, normal_on_time, normal_tickets = one(weekly, f"""
        select any_value(on_time_rate) filter (where week = DATE '{large.dip_week}'),
               any_value(tickets_per_order) filter (where week = DATE '{large.dip_week}'),
               median(on_time_rate) filter (where week <> DATE '{large.dip_week}'),
               median(tickets_per_order) filter (where week <> DATE '{large.dip_week}')
        from w""")
    assert 0.85 <= normal_on_time <= 0.95
    assert dip_on_time < normal_on_time - 0.3
    assert 0.02 <= normal_tickets <= 0.06
    assert dip_tickets > 2.5 * normal_tickets
    # and it is the worst week of the year on both counts
    worst = one(weekly, "select week from w order by on_time_rate limit 1")
    assert worst == large.dip_week


def test_story_push_effect_lags_two_weeks(large: DemoDataSummary, weekly: duckdb.DuckDBPyConnection) -> None:
    ctr_lo, ctr_hi = one(weekly, "select min(ctr), max(ctr) from w")
    assert ctr_lo < 0.08 and ctr_hi > 0.18
    rows = weekly.execute("""
        with changes as (
            select week,
                   orders_per_customer - lag(orders_per_customer) over (order by week) as d_opc,
                   ctr - lag(ctr) over (order by week) as d_ctr
            from w
        )
        select lags.lag, corr(a.d_opc, b.d_ctr)
        from changes as a
        cross join range(4) as lags(lag)
        join changes as b on b.week = a.week - cast(lags.lag * 7 as integer)
        where a.week >= (select min(week) from w) + 28
        group by 1 order by 1""").fetchall()
    correlations = {lag: r for lag, r in rows}
    assert set(correlations) == {0, 1, 2, 3}
    assert max(correlations, key=correlations.get) == large.push_lag_weeks
    assert correlations[2] > 0.5


def test_payments_are_repeat_baskets_of_on_time_orders_two_weeks_later(small: DemoDataSummary,
                                                                       small_table: duckdb.DuckDBPyConnection) -> None:
    """Story item 6, by independent SQL: one payment per on-time order, 14 days after it was placed."""
    assert small.revenue_lag_weeks == 2 and small.payments_dir == small.out_dir / "payments"
    small_table.execute(f"create or replace temp view pay as select * from read_parquet('{small.payments_dir}/*.parquet')")
    assert small_table.execute("describe pay").fetchall()[0][:2] == ("payment_id", "BIGINT")
    assert one(small_table, "select count(*) from pay") == small.payments > 0
    assert one(small_table, "select count(*) - count(distinct payment_id) from pay") == 0
    joined = """
        select p.*, o.user_id as order_user, o.occurred_at as placed_at, o.items, d.delivered_at <= d.promised_at as on_time
        from pay as p
        left join e as o on o.order_id = p.payment_id and o.event_type = 'order_placed'
        left join e as d on d.order_id = p.payment_id and d.event_type = 'order_delivered'"""
    assert one(small_table, f"select count(*) from ({joined}) where order_user = user_id and on_time "
                            "and paid_at = placed_at + interval 14 day "
                            "and amount between round(items * 3.5 * 0.97, 2) - 0.01 and round(items * 3.5 * 1.03, 2) + 0.01"
               ) == small.payments
    # every on-time order whose repeat basket falls inside the data has one
    expected = one(small_table, """
        select count(*) from e as o join e as d on d.order_id = o.order_id and d.event_type = 'order_delivered'
        where o.event_type = 'order_placed' and d.delivered_at <= d.promised_at
          and o.occurred_at + interval 14 day < (select max(occurred_at) from e) """)
    assert small.payments >= expected and small.payments - expected <= 20  # the last moments of the data
