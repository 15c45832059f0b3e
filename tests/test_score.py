"""Scorecard semantics on hand-made data and on the demo, checked by hand computation or independent SQL:
spine (empty week), zero denominators, ISO weeks across a year boundary, period-to-date comparison,
status bands in both directions, guardrails, formula verification, and exact LMDI contributions."""

from __future__ import annotations

import math
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from conftest import events_glob
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp
from test_errors import edit, run_cli

from northstar_pipeline import api
from northstar_pipeline.errors import TreeError
from northstar_pipeline.tree.formula import contribution_sql, formula_sql, parse_formula

STARTER = Path(__file__).resolve().parent.parent / "northstar_pipeline" / "demo" / "starter"
MON = date(2026, 1, 5)  # an ISO week start


def write_events(out: Path, orders: list[tuple[datetime, int]], tickets: list[tuple[datetime, int]]) -> Path:
    """Events for the starter project: (time, user) per order_placed and per support_ticket, 2 items an order."""
    rows = [(i, user, "order_placed", ts, i, 2) for i, (ts, user) in enumerate(orders, start=1)]
    rows += [(10_000 + i, user, "support_ticket", ts, None, None) for i, (ts, user) in enumerate(tickets)]
    con = duckdb.connect()
    con.execute("CREATE TABLE e (event_id BIGINT, user_id BIGINT, event_type VARCHAR, occurred_at TIMESTAMP, "
                "order_id BIGINT, items INTEGER)")
    con.executemany("INSERT INTO e VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.execute(f"COPY (SELECT *, occurred_at + INTERVAL 5 MINUTE AS landed_at, CAST(occurred_at AS DATE) AS landed_date "
                f"FROM e) TO '{out}' (FORMAT parquet, PARTITION_BY (landed_date))")
    return out


def starter_on(tmp_path: Path, events: Path, as_of: str, targets: str = "") -> Path:
    root = tmp_path / "project"
    shutil.copytree(STARTER, root)
    profiles = root / "profiles.yml"
    profiles.write_text(profiles.read_text().replace("events_path: data/warehouse/events",
                                                     f"events_path: {events}\n  as_of: '{as_of}'"))
    if targets:
        (root / "seeds" / "targets.csv").write_text("metric,grain,period_start,target\n" + targets)
    return root


def card(project_root: Path, grain: str = "week") -> dict[tuple[str, date], dict]:
    project = api.load(project_root)
    con = duckdb.connect()
    cursor = con.execute("SELECT * FROM read_parquet($p) WHERE grain = $g", {"p": str(project.scorecard_path), "g": grain})
    names = [d[0] for d in cursor.description]
    return {(r["metric"], r["period_start"]): r for r in (dict(zip(names, row)) for row in cursor.fetchall())}


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, datetime.min.time()) + timedelta(hours=hour)


@pytest.fixture(scope="module")
def banded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """W1 50 orders/25 users/5 tickets, W2 48/24/5, W3 45/15/5, W4 empty, W5 partial (as of its Monday 00:00)."""
    tmp = tmp_path_factory.mktemp("banded")
    weeks = [MON + timedelta(weeks=k) for k in range(5)]
    orders = [(at(weeks[0]), u % 25) for u in range(50)]
    orders += [(at(weeks[1]), u % 24) for u in range(48)]
    orders += [(at(weeks[2]), u % 15) for u in range(45)]
    tickets = [(at(w, 12), 1) for w in weeks[:3] for _ in range(5)]
    events = write_events(tmp / "events", orders, tickets)
    targets = "\n".join([f"weekly_orders,week,{weeks[0]},50", f"weekly_orders,week,{weeks[1]},50",
                         f"weekly_orders,week,{weeks[2]},50", f"tickets_per_order,week,{weeks[0]},0.1",
                         f"tickets_per_order,week,{weeks[1]},0.1", f"tickets_per_order,week,{weeks[2]},0.2"]) + "\n"
    root = starter_on(tmp, events, as_of=f"{weeks[4]}T00:00:00", targets=targets)
    api.build(api.load(root))
    return {"weeks": weeks, "card": card(root)}


def test_empty_week_is_a_row_with_zero_counts_and_null_ratios(banded: dict) -> None:
    rows, w4 = banded["card"], banded["weeks"][3]
    assert rows[("weekly_orders", w4)]["value"] == 0
    assert rows[("ordering_customers", w4)]["value"] == 0
    for ratio in ("orders_per_customer", "items_per_order", "tickets_per_order"):
        assert rows[(ratio, w4)]["value"] is None, ratio  # zero denominator: no value, not 0
    assert rows[("orders_per_customer", w4)]["denominator"] == 0
    assert rows[("weekly_orders", w4)]["change"] == -45  # the drop to nothing is visible


def test_hand_computed_values_and_completeness(banded: dict) -> None:
    rows, (w1, w2, w3, w4, w5) = banded["card"], banded["weeks"]
    assert [rows[("weekly_orders", w)]["value"] for w in (w1, w2, w3)] == [50, 48, 45]
    assert rows[("orders_per_customer", w3)]["value"] == 3
    assert rows[("tickets_per_order", w2)]["value"] == pytest.approx(5 / 48, rel=1e-12)
    assert all(rows[("weekly_orders", w)]["is_complete"] for w in (w1, w2, w3, w4))
    assert rows[("weekly_orders", w5)]["is_complete"] is False  # as_of is its first instant
    assert rows[("weekly_orders", w1)]["period_end"] == w1 + timedelta(days=6)


def test_status_bands_against_targets_higher_is_better(banded: dict) -> None:
    rows, (w1, w2, w3, *_) = banded["card"], banded["weeks"]
    # 50 vs 50 green; 48 vs 50 is within 5%: yellow; 45 vs 50 is 10% short: red.
    assert [rows[("weekly_orders", w)]["status"] for w in (w1, w2, w3)] == ["green", "yellow", "red"]
    assert rows[("weekly_orders", w2)]["target_pct"] == pytest.approx(0.96)
    assert rows[("weekly_orders", w2)]["status_basis"] == "target"


def test_status_bands_lower_is_better_and_guardrails(banded: dict) -> None:
    rows, (w1, w2, w3, *_) = banded["card"], banded["weeks"]
    # tickets per order: 0.1, 0.10417 (+4.2%: past warn 3%), 0.1111 (+6.7%: past breach 5%).
    assert rows[("tickets_per_order", w1)]["status"] == "green"  # at target, no previous
    assert rows[("tickets_per_order", w2)]["status"] == "yellow"  # 4.2% over target (<5%) and a warn move
    assert rows[("tickets_per_order", w2)]["guardrail_breached"] is False
    assert rows[("tickets_per_order", w3)]["status"] == "red"  # under its 0.2 target but the move breaches
    assert rows[("tickets_per_order", w3)]["guardrail_breached"] is True
    assert rows[("tickets_per_order", w3)]["change_pct"] == pytest.approx((5 / 45) / (5 / 48) - 1)


def test_status_trend_band_without_target(banded: dict) -> None:
    rows, (w1, w2, w3, *_) = banded["card"], banded["weeks"]
    # ordering customers 25 -> 24 (-4%: yellow) -> 15 (-37.5%: red); orders per customer 2 -> 3 (up: green).
    assert rows[("ordering_customers", w1)]["status"] is None
    assert rows[("ordering_customers", w2)]["status"] == "yellow"
    assert rows[("ordering_customers", w3)]["status"] == "red"
    assert rows[("orders_per_customer", w3)]["status"] == "green"
    assert rows[("ordering_customers", w3)]["status_basis"] == "trend"


def test_lower_is_better_target_band(tmp_path: Path) -> None:
    """A lower-is-better input: at or under target green, up to 5% over yellow, beyond red."""
    weeks = [MON + timedelta(weeks=k) for k in range(3)]
    orders = [(at(w), u) for w in weeks for u in range(10)]
    tickets = [(at(w, 12), 1) for w in weeks for _ in range(5)]
    events = write_events(tmp_path / "events", orders, tickets)
    targets = f"tickets,week,{weeks[0]},6\ntickets,week,{weeks[1]},4.9\ntickets,week,{weeks[2]},4\n"
    root = starter_on(tmp_path, events, as_of=f"{weeks[2] + timedelta(days=7)}T00:00:00", targets=targets)
    (root / "metrics" / "tickets.sql").write_text(
        "{{ config(kind='input', parent='weekly_orders', edge='hypothesis', dimension='efficiency', owner='Support',"
        " direction='lower_is_better') }}\n"
        "select {{ period('opened_at') }} as period_start, count(*) as value from {{ ref('stg_tickets') }} group by 1\n")
    api.build(api.load(root))
    rows = card(root)
    assert [rows[("tickets", w)]["status"] for w in weeks] == ["green", "yellow", "red"]


def test_iso_weeks_across_a_year_boundary(tmp_path: Path) -> None:
    days = [date(2025, 12, 29), date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 4), date(2026, 1, 5)]
    events = write_events(tmp_path / "events", [(at(d), i) for i, d in enumerate(days)], [])
    root = starter_on(tmp_path, events, as_of="2026-01-12T00:00:00")
    api.build(api.load(root))
    weekly, monthly = card(root, "week"), card(root, "month")
    assert weekly[("weekly_orders", date(2025, 12, 29))]["value"] == 4  # Mon 29 Dec .. Sun 4 Jan is one ISO week
    assert weekly[("weekly_orders", date(2026, 1, 5))]["value"] == 1
    assert weekly[("weekly_orders", date(2025, 12, 29))]["period_end"] == date(2026, 1, 4)
    assert monthly[("weekly_orders", date(2025, 12, 1))]["value"] == 2
    assert monthly[("weekly_orders", date(2026, 1, 1))]["value"] == 3
    assert monthly[("weekly_orders", date(2026, 1, 1))]["is_complete"] is False


# -- partial period on the demo: compared with the same elapsed span of the previous period --------

PTD_ORACLE = """
WITH raw AS (
    SELECT DISTINCT event_id, user_id, event_type, occurred_at, order_id, promised_at, delivered_at
    FROM read_parquet($glob, hive_partitioning = true)
), placed AS (
    SELECT p.order_id, p.user_id, p.occurred_at,
           EXISTS (SELECT 1 FROM raw d WHERE d.event_type = 'order_delivered' AND d.order_id = p.order_id
                   AND d.delivered_at <= d.promised_at) AS on_time
    FROM raw p WHERE p.event_type = 'order_placed'
      AND p.occurred_at >= $start AND p.occurred_at <= $end
)
SELECT sum(CASE WHEN on_time THEN 1 ELSE 0 END), count(DISTINCT user_id), count(*) FROM placed
"""


@pytest.mark.parametrize("grain", ["week", "month"])
def test_partial_period_is_compared_period_to_date(built_demo, warehouse, grain: str) -> None:
    project, _ = built_demo
    con = duckdb.connect()
    as_of = con.execute("SELECT max(occurred_at) FROM read_parquet($g, hive_partitioning = true)",
                        {"g": events_glob(warehouse)}).fetchall()[0][0]
    current = as_of.date() - timedelta(days=as_of.weekday()) if grain == "week" else as_of.date().replace(day=1)
    previous = current - timedelta(days=7) if grain == "week" else (current - timedelta(days=1)).replace(day=1)
    elapsed = as_of - datetime.combine(current, datetime.min.time())
    end = datetime.combine(previous, datetime.min.time()) + elapsed
    on_time, customers, orders = con.execute(PTD_ORACLE, {"glob": events_glob(warehouse), "start": previous,
                                                          "end": end}).fetchall()[0]
    rows = card(project.root, grain)
    nsm = rows[("on_time_orders", current)]
    assert nsm["is_complete"] is False and nsm["comparison"] == "period_to_date"
    assert nsm["previous_value"] == on_time
    assert rows[("ordering_customers", current)]["previous_value"] == customers
    assert rows[("orders_per_customer", current)]["previous_value"] == pytest.approx(orders / customers, rel=1e-12)
    # the full previous period is strictly more: a full-period comparison would be wrong
    assert rows[("on_time_orders", previous)]["value"] > on_time
    assert rows[("on_time_orders", previous)]["is_complete"] is True


# -- formula verification --------------------------------------------------------------------------


def test_broken_formula_fails_the_build_naming_the_period(demo_project: Path) -> None:
    before = (demo_project / "target" / "scorecard.parquet").read_bytes()
    edit(demo_project / "metrics/on_time_orders.sql", "formula='ordering_customers * orders_per_customer * on_time_rate'",
         "formula='ordering_customers * orders_per_customer * on_time_rate * 1.01'")
    result = run_cli(demo_project, "build")
    assert result.returncode == 1, result.stderr
    assert "metrics/on_time_orders.sql:2: formula does not hold for" in result.stderr
    assert "(off by" in result.stderr and "0.990%)" in result.stderr  # 1 - 1/1.01 of the larger side
    assert "Traceback" not in result.stderr
    assert (demo_project / "target" / "scorecard.parquet").read_bytes() == before


def test_formula_that_is_not_arithmetic_is_a_compile_error(demo_project: Path) -> None:
    edit(demo_project / "metrics/on_time_orders.sql", "formula='ordering_customers * orders_per_customer * on_time_rate'",
         "formula='ordering_customers * orders_per_customer * sqrt(on_time_rate)'")
    with pytest.raises(Exception) as info:
        api.compile_project(api.load(demo_project))
    assert "formula" in str(info.value) and "metrics/on_time_orders.sql" in str(info.value)


def test_verification_holds_on_the_demo(built_demo) -> None:
    project, _ = built_demo
    rows = duckdb.connect().execute(
        "SELECT grain, holds, periods_checked, max_rel_error FROM read_parquet($p) WHERE validation = 'formula'",
        {"p": str(project.target_dir / "tree_validation.parquet")}).fetchall()
    assert {r[0] for r in rows} == {"week", "month"}
    assert all(r[1] and r[2] >= 10 and r[3] <= 1e-9 for r in rows)


def test_tree_error_is_importable() -> None:
    assert issubclass(TreeError, Exception)


# -- contributions ---------------------------------------------------------------------------------


def _contributions(text: str, cur: dict[str, float], prev: dict[str, float]) -> tuple[dict[str, float], float]:
    formula = parse_formula(text)
    shares = contribution_sql(formula, lambda m: exp.column(f"{m}_cur"), lambda m: exp.column(f"{m}_prev"))
    delta = exp.Sub(this=exp.paren(formula_sql(formula, lambda m: exp.column(f"{m}_cur"))),
                    expression=exp.paren(formula_sql(formula, lambda m: exp.column(f"{m}_prev"))))
    inputs = exp.select(*[exp.cast(exp.Literal.number(repr(v)), "DOUBLE").as_(f"{k}_cur") for k, v in cur.items()],
                        *[exp.cast(exp.Literal.number(repr(v)), "DOUBLE").as_(f"{k}_prev") for k, v in prev.items()])
    query = exp.select(*[s.as_(m) for m, s in shares.items()], delta.as_("delta")).from_(inputs.subquery("t"))
    row = duckdb.connect().execute(query.sql("duckdb")).fetchall()[0]
    return dict(zip(shares, row[:-1])), row[-1]


def test_lmdi_hand_worked_example() -> None:
    # P = a * b: a 10 -> 12, b 5 -> 4, so P 50 -> 48.
    # L(48, 50) = (48 - 50) / ln(48 / 50); a's share = L * ln(12 / 10), b's = L * ln(4 / 5).
    shares, delta = _contributions("a * b", {"a": 12, "b": 4}, {"a": 10, "b": 5})
    log_mean = -2 / math.log(48 / 50)
    assert shares["a"] == pytest.approx(log_mean * math.log(1.2), rel=1e-12)
    assert shares["b"] == pytest.approx(log_mean * math.log(0.8), rel=1e-12)
    assert shares["a"] == pytest.approx(8.932516, abs=1e-6) and shares["b"] == pytest.approx(-10.932516, abs=1e-6)
    assert shares["a"] + shares["b"] == pytest.approx(delta, rel=1e-12) and delta == pytest.approx(-2)


def test_sum_contributions_are_plain_differences() -> None:
    shares, delta = _contributions("a + b - c", {"a": 5, "b": 7, "c": 1}, {"a": 3, "b": 9, "c": 4})
    assert shares == pytest.approx({"a": 2, "b": -2, "c": 3})
    assert delta == pytest.approx(3)


positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(text=st.sampled_from(["a * b * c", "a * b / c", "a / (b * c)", "a * (b + c)", "a + b * c", "(a - c) * b + c"]),
       values=st.lists(positive, min_size=6, max_size=6))
def test_contributions_add_up_to_the_change(text: str, values: list[float]) -> None:
    cur = dict(zip("abc", values[:3]))
    prev = dict(zip("abc", values[3:]))
    if text == "(a - c) * b + c" and (cur["a"] <= cur["c"] or prev["a"] <= prev["c"]):
        return  # LMDI needs positive factors; that case is NULL by design
    shares, delta = _contributions(text, cur, prev)
    # Exact in arithmetic; in floating point the sum carries the rounding of its largest term, so the
    # bound is relative to the larger of the change and the biggest single contribution.
    # Where the parent barely moved, the change itself is rounding noise of the parent's size.
    size = max(abs(eval(text, {}, cur)), abs(eval(text, {}, prev)))  # the formula in Python, as a second opinion
    scale = max(abs(delta), *(abs(s) for s in shares.values()))
    assert abs(sum(shares.values()) - delta) <= 1e-9 * scale + 1e-12 * size


def test_demo_contributions_add_up_to_the_north_star_change(built_demo) -> None:
    project, _ = built_demo
    rows = duckdb.connect().execute("""
        SELECT n.grain, n.period_start, n.change, sum(c.contribution), count(c.contribution)
        FROM read_parquet($p) n JOIN read_parquet($p) c
          ON c.parent = n.metric AND c.grain = n.grain AND c.period_start = n.period_start AND c.edge = 'formula'
        WHERE n.kind = 'north_star' AND n.change IS NOT NULL
        GROUP BY ALL""", {"p": str(project.scorecard_path)}).fetchall()
    checked = [r for r in rows if r[4] == 3]
    assert len(checked) >= 40
    for grain, period, change, total, _ in checked:
        assert total == pytest.approx(change, rel=1e-9, abs=1e-9), (grain, period)


def test_demo_scorecard_contract(built_demo, warehouse) -> None:
    project, _ = built_demo
    import pyarrow.parquet as pq

    table = pq.read_table(project.scorecard_path)
    contract = ["metric", "label", "kind", "level", "parent", "edge", "owner", "grain", "period_start", "period_end",
                "is_complete", "value", "previous_value", "change", "change_pct", "target", "target_pct", "status",
                "contribution", "contribution_to_nsm", "sparkline", "definition_hash", "run_id", "built_at"]
    assert set(contract) <= set(table.column_names)
    assert table.schema.metadata[b"northstar.schema_version"] == b"1"
    con = duckdb.connect()
    con.register("card", table)
    assert con.execute("SELECT count(DISTINCT metric) FROM card WHERE kind = 'north_star'").fetchall() == [(1,)]
    assert {g for (g,) in con.execute("SELECT DISTINCT grain FROM card").fetchall()} == {"week", "month"}
    partial = con.execute("SELECT grain, count(DISTINCT period_start) FROM card WHERE NOT is_complete "
                          "AND kind <> 'outcome' GROUP BY 1").fetchall()
    # the as-of period, and the first: the 60k-event demo's first orders land on Friday 2025-11-21
    assert sorted(partial) == [("month", 2), ("week", 2)]
    # revenue starts two weeks in (the demo's planted lag): its periods before the first payment are partial too
    assert con.execute("SELECT count(*) FROM card WHERE metric = 'revenue' AND grain = 'week' AND NOT is_complete "
                       "AND period_start < DATE '2025-12-08'").fetchall() == [(3,)]
    assert {s for (s,) in con.execute("SELECT DISTINCT status FROM card WHERE status IS NOT NULL").fetchall()} == \
        {"green", "yellow", "red"}
    assert con.execute("SELECT count(*) FROM card WHERE kind = 'input' AND contribution IS NOT NULL").fetchall()[0][0] > 50
    assert con.execute("SELECT max(len(sparkline)) FROM card").fetchall() == [(12,)]


def test_planted_push_effect_is_found_at_its_lag(built_demo, warehouse) -> None:
    project, _ = built_demo
    rows = duckdb.connect().execute(
        "SELECT lag, r, supported FROM read_parquet($p) WHERE validation = 'hypothesis' AND is_best_lag "
        "AND child = 'push_click_through_rate' AND grain = 'week'",
        {"p": str(project.target_dir / "tree_validation.parquet")}).fetchall()
    assert rows and rows[0][0] == warehouse.push_lag_weeks and rows[0][1] > 0.3 and rows[0][2] is True  # 60k events: noisy


def test_partial_period_is_not_judged_against_a_full_period_target(tmp_path: Path) -> None:
    weeks = [MON + timedelta(weeks=k) for k in range(2)]
    orders = [(at(weeks[0]), u) for u in range(10)] + [(at(weeks[1]), u) for u in range(3)]
    events = write_events(tmp_path / "events", orders, [])
    targets = f"weekly_orders,week,{weeks[1]},10\n"
    root = starter_on(tmp_path, events, as_of=f"{weeks[1]}T12:00:00", targets=targets)
    api.build(api.load(root))
    row = card(root)[("weekly_orders", weeks[1])]
    assert row["is_complete"] is False and row["target_pct"] == pytest.approx(0.3)
    # 3 orders by Monday noon against 10 by the previous Monday noon: the trend says red, not the target.
    assert row["previous_value"] == 10 and row["status"] == "red" and row["status_basis"] == "trend"


def test_hypothesis_changes_are_relative_to_magnitude_for_negative_metrics(tmp_path: Path) -> None:
    """A metric below zero (here minus the order count) must correlate -1 with the orders it mirrors."""
    counts = [5, 9, 4, 12, 7, 15, 6, 11, 8, 14]
    weeks = [MON + timedelta(weeks=k) for k in range(len(counts))]
    orders = [(at(w), u) for w, n in zip(weeks, counts) for u in range(n)]
    events = write_events(tmp_path / "events", orders, [])
    root = starter_on(tmp_path, events, as_of=f"{weeks[-1] + timedelta(days=7)}T00:00:00")
    (root / "metrics" / "minus_orders.sql").write_text(
        "{{ config(kind='input', parent='weekly_orders', edge='hypothesis', dimension='depth', owner='Test',"
        " direction='lower_is_better') }}\n"
        "select {{ period('placed_at') }} as period_start, -count(*) as value from {{ ref('stg_orders') }} group by 1\n")
    project = api.load(root)
    api.build(project)
    rows = duckdb.connect().execute(
        "SELECT r, supported FROM read_parquet($p) WHERE child = 'minus_orders' AND grain = 'week' AND lag = 0",
        {"p": str(project.target_dir / "tree_validation.parquet")}).fetchall()
    assert rows[0][0] == pytest.approx(-1.0, abs=1e-9)
    assert rows[0][1] is True  # opposite directions, opposite moves: the hypothesis holds
