"""Periods at the edges of the data, on the starter project built through the CLI, against hand computation:
a first and a last period the data covers only in part (flagged, never compared with a full one, kept out of
the hypothesis tests), the as-of defaulted from the data and said so, loaded_at_field as an expression, and a
period_start not aligned to its grain (a build error) or not from period() at all (lint NS012)."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from scipy import stats
from test_errors import edit, run_cli

STARTER = Path(__file__).resolve().parent.parent / "northstar_pipeline" / "demo" / "starter"
W0 = date(2026, 1, 5)  # the Monday of the first week; the data starts on its Wednesday
WEEKS = [W0 + timedelta(weeks=k) for k in range(12)]
# weekly orders and items per order: W0 (from Wednesday) and W11 (to Wednesday 10:00) are partial
COUNTS = [1, 10, 12, 9, 14, 11, 13, 8, 15, 12, 10, 4]
ITEMS = [20, 2, 3, 2, 4, 2, 3, 2, 3, 3, 2, 2]
AS_OF = datetime(2026, 3, 25, 10)  # W11's Wednesday 10:00: its last order, the latest occurred_at


def order_times(week: int) -> list[datetime]:
    """Orders at 10:00, Monday to Friday in turn; W0's one order on Wednesday, W11's on Mon, Mon, Tue, Wed."""
    monday = datetime.combine(WEEKS[week], datetime.min.time()) + timedelta(hours=10)
    if week == 0:
        return [monday + timedelta(days=2)]
    if week == 11:
        return [monday, monday, monday + timedelta(days=1), monday + timedelta(days=2)]
    return [monday + timedelta(days=i % 5) for i in range(COUNTS[week])]


def write_orders(out: Path) -> Path:
    rows, event = [], 0
    for week in range(len(WEEKS)):
        for i, ts in enumerate(order_times(week)):
            event += 1
            rows.append((event, i % 4, "order_placed", ts, event, ITEMS[week]))
    con = duckdb.connect()
    con.execute("CREATE TABLE e (event_id BIGINT, user_id BIGINT, event_type VARCHAR, occurred_at TIMESTAMP, "
                "order_id BIGINT, items INTEGER)")
    con.executemany("INSERT INTO e VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.execute("COPY (SELECT *, occurred_at + INTERVAL 5 MINUTE AS landed_at, CAST(occurred_at AS DATE) AS landed_date "
                f"FROM e) TO '{out}' (FORMAT parquet, PARTITION_BY (landed_date))")
    return out


def starter(tmp: Path, events: Path) -> Path:
    root = tmp / "project"
    shutil.copytree(STARTER, root, ignore=shutil.ignore_patterns("__pycache__"))
    edit(root / "profiles.yml", "events_path: data/warehouse/events", f"events_path: {events}")
    return root


def card(root: Path, grain: str) -> dict[tuple[str, date], dict]:
    cursor = duckdb.connect().execute("SELECT * FROM read_parquet($p) WHERE grain = $g",
                                      {"p": str(root / "target" / "scorecard.parquet"), "g": grain})
    names = [d[0] for d in cursor.description]
    return {(r["metric"], r["period_start"]): r for r in (dict(zip(names, row)) for row in cursor.fetchall())}


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_orders(tmp_path_factory.mktemp("midweek") / "events")


@pytest.fixture(scope="module")
def midweek(tmp_path_factory: pytest.TempPathFactory, events: Path) -> dict:
    root = starter(tmp_path_factory.mktemp("midweek_project"), events)
    result = run_cli(root, "build")
    assert result.returncode == 0, result.stderr
    return {"root": root, "stderr": result.stderr, "week": card(root, "week"), "month": card(root, "month")}


def test_both_end_weeks_are_flagged_and_never_compared_with_a_full_week(midweek: dict) -> None:
    rows = midweek["week"]
    first, full, last = rows[("weekly_orders", WEEKS[0])], rows[("weekly_orders", WEEKS[1])], rows[("weekly_orders", WEEKS[11])]
    assert (first["value"], first["is_complete"], first["completeness"]) == (1, False, "partial_start")
    assert first["data_from"] == date(2026, 1, 7)  # the Wednesday
    assert first["comparison"] is None and first["previous_value"] is None and first["status"] is None
    # the first full week has only a partial week before it: no comparison (was +900%, green)
    assert (full["value"], full["is_complete"], full["comparison"], full["change"]) == (10, True, None, None)
    assert full["status"] is None
    second = rows[("weekly_orders", WEEKS[2])]
    assert (second["comparison"], second["previous_value"], second["change"]) == ("previous_period", 10, 2)
    # the last week, to Wednesday 10:00, against W10 to Wednesday 10:00 (inclusive): Mon 2 + Tue 2 + Wed 2 orders
    assert (last["value"], last["is_complete"], last["completeness"]) == (4, False, "partial_end")
    assert (last["comparison"], last["previous_value"]) == ("period_to_date", 6)
    assert all(rows[("weekly_orders", w)]["completeness"] == "complete" for w in WEEKS[1:11])
    assert "as of 2026-03-25 10:00:00 (the latest loaded_at_field of the sources)" in midweek["stderr"]


def test_end_months_are_flagged_and_not_compared(midweek: dict) -> None:
    rows = midweek["month"]
    jan, feb, mar = (rows[("weekly_orders", date(2026, m, 1))] for m in (1, 2, 3))
    assert (jan["is_complete"], jan["completeness"], jan["comparison"]) == (False, "partial_start", None)
    assert (feb["is_complete"], feb["comparison"], feb["previous_value"]) == (True, None, None)  # after a partial one
    assert (mar["is_complete"], mar["completeness"], mar["comparison"]) == (False, "partial_end", "period_to_date")
    # March to the 25th 10:00 against February to the 25th 10:00: W7 (Feb 16-20) and W8 to Wed 25th
    feb_to_date = sum(1 for w in range(12) for ts in order_times(w) if datetime(2026, 2, 1) <= ts <= datetime(2026, 2, 25, 10))
    assert mar["previous_value"] == feb_to_date


def _changes(series: list[float]) -> list[float | None]:
    """Relative change of each complete week (1..10) from the one before, None where either is partial."""
    return [None if k < 2 or k > 10 else (series[k] - series[k - 1]) / abs(series[k - 1]) for k in range(len(series))]


def test_hypothesis_tests_exclude_the_partial_weeks(midweek: dict) -> None:
    rows = duckdb.connect().execute(
        "SELECT lag, n, r, spearman_r, p_value, spearman_p_value, is_best_lag, lags_tested, p_value_adjusted, supported "
        "FROM read_parquet($p) WHERE validation = 'hypothesis' AND child = 'items_per_order' AND grain = 'week' "
        "ORDER BY lag", {"p": str(midweek["root"] / "target" / "tree_validation.parquet")}).fetchall()
    child, parent = _changes([float(i) for i in ITEMS]), _changes([float(c) for c in COUNTS])
    expected = {}
    for lag in range(4):
        pairs = [(child[k - lag], parent[k]) for k in range(len(COUNTS))
                 if k - lag >= 0 and child[k - lag] is not None and parent[k] is not None]
        xs, ys = zip(*pairs)
        expected[lag] = (len(pairs), stats.pearsonr(xs, ys), stats.spearmanr(xs, ys))
    assert [r[0] for r in rows] == [0, 1, 2, 3]
    for lag, n, r, rho, p, rho_p, _, tested, _, _ in rows:
        want_n, pearson, spearman = expected[lag]
        assert n == want_n == 9 - lag  # 9 changes between the 10 complete weeks; the partial W0 and W11 are out
        assert r == pytest.approx(pearson.statistic, abs=1e-12)
        assert rho == pytest.approx(spearman.statistic, abs=1e-12)
        assert p == pytest.approx(pearson.pvalue, rel=1e-9)
        assert rho_p == pytest.approx(spearman.pvalue, rel=1e-9)
        assert tested == 4
    best = [r for r in rows if r[6]]
    strongest = max(range(4), key=lambda lag: min(abs(expected[lag][1].statistic), abs(expected[lag][2].statistic)))
    assert len(best) == 1 and best[0][0] == strongest
    assert best[0][8] == pytest.approx(min(1.0, 4 * expected[strongest][1].pvalue), rel=1e-9)
    # had the opening week (1 order of 20 items, then 10 orders of 2) counted, its one pair (-90%, +900%) would
    # flip lag 0 from r = +0.84 to -0.44
    with_opening = stats.pearsonr([(2 - 20) / 20, *[c for c in child if c is not None]],
                                  [(10 - 1) / 1, *[c for c in parent if c is not None]]).statistic
    assert rows[0][2] == pytest.approx(0.8363546535831, abs=1e-9) and with_opening == pytest.approx(-0.4374794955, abs=1e-9)


def test_no_as_of_defaults_to_the_end_of_the_last_day_covered_and_says_so(tmp_path: Path, events: Path) -> None:
    root = starter(tmp_path, events)
    edit(root / "models" / "sources.yml", "        loaded_at_field: occurred_at\n", "")
    result = run_cli(root, "build")
    assert result.returncode == 0, result.stderr
    assert ("as of 2026-03-26 00:00:00 (no loaded_at_field or as_of var: the end of the last day the metrics' "
            "data covers)") in result.stderr
    rows = card(root, "week")
    last = rows[("weekly_orders", WEEKS[11])]
    assert last["as_of"] == datetime(2026, 3, 26)
    # three days elapsed: W10 from Monday to Thursday 00:00 holds 6 orders (Mon 2, Tue 2, Wed 2)
    assert (last["is_complete"], last["comparison"], last["previous_value"]) == (False, "period_to_date", 6)
    assert rows[("weekly_orders", WEEKS[10])]["is_complete"] is True


def test_no_as_of_in_json_logs_is_an_event(tmp_path: Path, events: Path) -> None:
    root = starter(tmp_path, events)
    edit(root / "models" / "sources.yml", "        loaded_at_field: occurred_at\n", "")
    result = run_cli(root, "build", "--log-format", "json")
    assert result.returncode == 0, result.stderr
    assert '"event": "as_of", "as_of": "2026-03-26 00:00:00", "source": "data"' in result.stderr


def test_loaded_at_field_may_be_an_expression(tmp_path: Path, events: Path) -> None:
    root = starter(tmp_path, events)
    # the landed_date partitions: a day has landed when its folder exists, so the as-of is the next midnight
    edit(root / "models" / "sources.yml", "loaded_at_field: occurred_at",
         "loaded_at_field: \"make_date(year(landed_date), month(landed_date), day(landed_date)) + INTERVAL 1 DAY\"")
    result = run_cli(root, "build")
    assert result.returncode == 0, result.stderr
    assert card(root, "week")[("weekly_orders", WEEKS[11])]["as_of"] == datetime(2026, 3, 26)


@pytest.mark.parametrize("expression", ["(select max(x) from read_csv('/etc/passwd'))", "make_date(2026, 1, 1"])
def test_loaded_at_field_expression_that_reads_elsewhere_or_does_not_parse(tmp_path: Path, events: Path,
                                                                          expression: str) -> None:
    root = starter(tmp_path, events)
    edit(root / "models" / "sources.yml", "loaded_at_field: occurred_at", f"loaded_at_field: \"{expression}\"")
    result = run_cli(root, "build")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "models/sources.yml:" in result.stderr and "loaded_at_field" in result.stderr and "hint:" in result.stderr


# -- period_start aligned to the grain ------------------------------------------------------------

ALIGNMENT = [
    ("date_trunc_week", "{{ period('placed_at') }} as period_start", "date_trunc('week', placed_at)::date as period_start",
     "is not the start of a month"),
    ("cast_to_date", "{{ period('placed_at') }} as period_start", "cast(placed_at as date) as period_start",
     "is not the start of a"),
]


@pytest.mark.parametrize("case", ALIGNMENT, ids=[c[0] for c in ALIGNMENT])
def test_period_start_not_aligned_to_its_grain_is_a_build_error(case: tuple, demo_project: Path) -> None:
    _, old, new, words = case
    before = (demo_project / "target" / "scorecard.parquet").read_bytes()
    edit(demo_project / "metrics" / "orders_per_customer.sql", old, new)
    result = run_cli(demo_project, "build")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "metrics/orders_per_customer.sql:" in result.stderr and words in result.stderr
    assert "hint: write {{ period('your_timestamp') }} as period_start" in result.stderr
    assert (demo_project / "target" / "scorecard.parquet").read_bytes() == before


def test_metric_without_period_is_lint_error_ns012(tmp_path: Path, events: Path) -> None:
    root = starter(tmp_path, events)
    edit(root / "metrics" / "items_per_order.sql", "{{ period('placed_at') }} as period_start",
         "cast(date_trunc('week', placed_at) as date) as period_start")
    (root / "profiles.yml").write_text((root / "profiles.yml").read_text().replace("grains: [week, month]",
                                                                                  "grains: [week]"))
    result = run_cli(root, "lint")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "metrics/items_per_order.sql:1: error NS012" in result.stdout
    assert "never calls period()" in result.stdout
