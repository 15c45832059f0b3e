"""The demo charter on the demo data: the planted lead of the North Star over revenue is found at its lag.

The oracle is independent of the pipeline: weekly on-time orders and revenue are computed here by SQL
over the raw Parquet (not the scorecard), and the lead is tested by partial correlation
(Frisch-Waugh-Lovell: both sides residualised on the outcome's own previous change) with scipy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats

from test_charter import run_cli


def _weekly_series(warehouse) -> tuple[list, list, list]:
    """(weeks, on-time orders, revenue) for the complete ISO weeks that have revenue, by raw SQL."""
    con = duckdb.connect()
    try:
        rows = con.execute(f"""
            with e as (
                select * from read_parquet('{warehouse.events_dir}/**/*.parquet', hive_partitioning = true)
                qualify row_number() over (partition by event_id order by landed_at) = 1
            ), placed as (select order_id, occurred_at from e where event_type = 'order_placed'),
            delivered as (select order_id, delivered_at <= promised_at as ok from e where event_type = 'order_delivered'),
            ot as (
                select date_trunc('week', p.occurred_at)::date as week, count(*) filter (where d.ok) as n
                from placed as p left join delivered as d using (order_id) group by 1
            ), paid as (
                select * from read_parquet('{warehouse.payments_dir}/*.parquet')
                qualify row_number() over (partition by payment_id order by paid_at) = 1
            ), pay as (select date_trunc('week', paid_at)::date as week, sum(amount) as amount from paid group by 1)
            select ot.week, ot.n, pay.amount from ot join pay using (week)
            -- complete weeks: the data covers them whole (revenue starts two weeks in, mid-Monday)
            where ot.week >= (select min(paid_at) from paid)
              and ot.week + interval 7 day <= (select max(occurred_at) from e)
            order by 1""").fetchall()
    finally:
        con.close()
    return [r[0] for r in rows], [float(r[1]) for r in rows], [float(r[2]) for r in rows]


def _changes(values: list[float]) -> np.ndarray:
    v = np.array(values)
    return np.concatenate([[np.nan], np.diff(v) / np.abs(v[:-1])])


def _partial_lead(nsm: list[float], outcome: list[float], lag: int) -> tuple[float, float, int]:
    """(effect, two-sided p, n) of dx(t - lag) on dy(t), controlling for dy(t - 1), by partial correlation."""
    dx, dy = _changes(nsm), _changes(outcome)
    t = np.arange(max(lag, 2), len(dy))
    y, own, lead = dy[t], dy[t - 1], dx[t - lag]
    keep = ~(np.isnan(y) | np.isnan(own) | np.isnan(lead))
    y, own, lead = y[keep], own[keep], lead[keep]
    control = np.column_stack([np.ones(len(y)), own])
    ry = y - control @ np.linalg.lstsq(control, y, rcond=None)[0]
    rx = lead - control @ np.linalg.lstsq(control, lead, rcond=None)[0]
    r = stats.pearsonr(rx, ry).statistic
    dof = len(y) - 3
    t_stat = r * math.sqrt(dof / (1 - r * r))
    return float(rx @ ry / (rx @ rx)), float(2 * stats.t.sf(abs(t_stat), dof)), len(y)


def test_the_checklist_finds_the_planted_lead_over_revenue_at_its_lag(demo_project: Path, warehouse) -> None:
    result = run_cli(["checklist", "--project-dir", str(demo_project), "--format", "json"])
    payload = json.loads(result.output[: result.output.rindex("}") + 1])
    assert payload["charter"]["outcomes"] == ["revenue", "retention_4w"]
    [revenue] = [v for v in payload["checklist"]
                 if v["criterion"] == "leading_indicator" and v["facts"]["outcome"] == "revenue"]

    weeks, on_time, paid = _weekly_series(warehouse)
    assert len(weeks) >= 40
    tried = {lag: _partial_lead(on_time, paid, lag) for lag in range(1, 5)}
    best = min(tried, key=lambda lag: tried[lag][1])
    effect, p, n = tried[best]
    assert best == warehouse.revenue_lag_weeks == 2  # the oracle finds the planted lag too
    # a plain cross-correlation of the changes peaks there as well
    dx, dy = _changes(on_time), _changes(paid)
    corr = {k: np.corrcoef(dx[1:len(dx) - k], dy[1 + k:])[0, 1] for k in range(0, 5)}
    assert max(corr, key=corr.get) == 2

    facts = revenue["facts"]
    assert revenue["verdict"] == "pass", revenue
    assert facts["lag"] == best and facts["n"] == n and facts["lags_tried"] == 4
    assert facts["effect"] == pytest.approx(effect, rel=1e-6)
    assert facts["p_value"] == pytest.approx(p, rel=1e-6, abs=1e-300)
    assert facts["p_corrected"] == pytest.approx(min(1.0, 4 * p), rel=1e-6, abs=1e-300)
    assert facts["p_corrected"] < 0.05
    assert f"best lag 2 week(s)" in revenue["evidence"] and f"n={n}" in revenue["evidence"]
