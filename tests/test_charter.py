"""The charter (northstar.yml), the checklist's verdicts and what-if / goal-seek, through the CLI.

Small projects are built for real on a Parquet source whose series are planted in Python; the
oracles (the lead's regression, the formula evaluated by hand) are computed here independently.
"""

from __future__ import annotations

import json
import math
import random
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from northstar_pipeline import api

import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Ran:
    exit_code: int
    output: str


def run_cli(args: list[str]) -> Ran:
    """The real CLI in a subprocess: its exit code and what it printed (stdout, then stderr)."""
    done = subprocess.run([sys.executable, "-m", "northstar_pipeline", *args], capture_output=True, text=True,
                          timeout=300)
    return Ran(done.returncode, done.stdout + done.stderr)

FIRST_MONDAY = date(2025, 1, 6)


def _series(weeks: int, *, lead: int | None, seed: int = 3) -> tuple[list[float], list[float]]:
    """A North Star with random weekly moves, and an outcome whose move follows it `lead` weeks later."""
    rng = random.Random(seed)
    nsm, out = [1000.0], [5000.0]
    moves = [rng.gauss(0, 0.05) for _ in range(weeks)]
    for t in range(1, weeks):
        nsm.append(nsm[-1] * (1 + moves[t]))
        driven = 0.9 * moves[t - lead] if lead is not None and t - lead >= 1 else 0.0
        out.append(out[-1] * (1 + driven + rng.gauss(0, 0.01)))
    return nsm, out


def _project(root: Path, nsm: list[float], outcome: list[float], *, north_star_name: str = "active_buyers",
             charter: str | None = None) -> Path:
    (root / "metrics").mkdir(parents=True)
    (root / "models").mkdir()
    data = root / "lake"
    data.mkdir()
    # Every day of every week has a row (a seventh of the week's value), so each week is fully covered.
    days = [FIRST_MONDAY + timedelta(days=d) for d in range(7 * len(nsm))]
    pq.write_table(pa.table({"day": days, "nsm": [nsm[d // 7] / 7 for d in range(len(days))],
                             "outcome": [outcome[d // 7] / 7 for d in range(len(days))]}), data / "series.parquet")
    (root / "profiles.yml").write_text(
        "name: charter_test\ngrains: [week]\nscorecard_path: target/scorecard.parquet\ntarget: dev\n"
        "outputs:\n  dev:\n    type: duckdb\n    path: target/dev.duckdb\n")
    (root / "models" / "sources.yml").write_text(
        f"sources:\n  - name: raw\n    tables:\n      - name: series\n        location: {data}/*.parquet\n")
    (root / "metrics" / f"{north_star_name}.sql").write_text(
        "{{ config(kind='north_star', label='Active buyers', owner='Leadership', formula='buyers * ratio') }}\n"
        "select {{ period('day') }} as period_start, sum(nsm) as value from {{ source('raw', 'series') }} group by 1\n")
    (root / "metrics" / "buyers.sql").write_text(
        f"{{{{ config(kind='input', parent='{north_star_name}', edge='formula', owner='Growth', label='Buyers') }}}}\n"
        "select {{ period('day') }} as period_start, sum(nsm) / 2 as value from {{ source('raw', 'series') }} group by 1\n")
    (root / "metrics" / "ratio.sql").write_text(
        f"{{{{ config(kind='input', parent='{north_star_name}', edge='formula', owner='Ops', label='Ratio') }}}}\n"
        "select {{ period('day') }} as period_start, 2.0 as value from {{ source('raw', 'series') }} group by 1\n")
    (root / "metrics" / "revenue.sql").write_text(
        "{{ config(kind='outcome', label='Revenue', owner='Finance') }}\n"
        "select {{ period('day') }} as period_start, sum(outcome) as value from {{ source('raw', 'series') }} group by 1\n")
    (root / "northstar.yml").write_text(charter or (
        f"value: Shoppers find and buy what they need.\ngame: transaction\nnorth_star: {north_star_name}\n"
        "cadence: weekly\noutcomes: [revenue]\n"
        "work_streams:\n  - {team: Growth, input: buyers}\n  - {team: Ops, input: ratio}\n"
        "criteria:\n  expresses_value: yes, a buyer got what they came for\n"
        "checks: {max_lag: 4, min_periods: 16, alpha: 0.05}\n"))
    return root


def _checklist(root: Path) -> dict:
    result = run_cli(["checklist", "--project-dir", str(root), "--format", "json"])
    assert "Traceback" not in result.output
    return {v["criterion"]: v for v in json.loads(result.output)["checklist"]}


def _build(root: Path) -> None:
    result = run_cli(["build", "--project-dir", str(root)])
    assert result.exit_code == 0, result.output


def _lead_oracle(nsm: list[float], outcome: list[float], max_lag: int) -> tuple[int, float, float]:
    """The distributed-lag t-test, written again from the normal equations: (best lag, effect, corrected p)."""
    dx = [None] + [(b - a) / abs(a) for a, b in zip(nsm, nsm[1:])]
    dy = [None] + [(b - a) / abs(a) for a, b in zip(outcome, outcome[1:])]
    best = None
    for lag in range(1, max_lag + 1):
        ts = [t for t in range(max(lag, 2), len(dy)) if dx[t - lag] is not None and dy[t - 1] is not None]
        x = np.array([[1.0, dy[t - 1], dx[t - lag]] for t in ts])
        y = np.array([dy[t] for t in ts])
        xtx_inv = np.linalg.inv(x.T @ x)
        beta = xtx_inv @ x.T @ y
        resid = y - x @ beta
        dof = len(ts) - 3
        se = math.sqrt(resid @ resid / dof * xtx_inv[2, 2])
        p = 2 * stats.t.sf(abs(beta[2] / se), dof)
        if best is None or p < best[2]:
            best = (lag, float(beta[2]), p)
    lag, effect, p = best
    return lag, effect, min(1.0, p * max_lag)


def test_a_north_star_that_leads_its_outcome_passes_at_the_planted_lag(tmp_path):
    nsm, outcome = _series(60, lead=2)
    root = _project(tmp_path / "p", nsm, outcome)
    _build(root)
    verdict = _checklist(root)["leading_indicator"]
    assert verdict["verdict"] == "pass", verdict
    lag, effect, p_corrected = _lead_oracle(nsm, outcome, 4)
    assert lag == 2
    assert f"best lag {lag} week(s)" in verdict["evidence"]
    assert f"effect {effect:+.3g}" in verdict["evidence"]
    assert f"corrected for 4 lags: {p_corrected:.2g}" in verdict["evidence"]
    assert p_corrected < 0.05


def test_a_north_star_that_does_not_lead_fails_and_short_history_is_its_own_verdict(tmp_path):
    nsm, outcome = _series(60, lead=None)
    root = _project(tmp_path / "none", nsm, outcome)
    _build(root)
    checks = _checklist(root)
    assert checks["leading_indicator"]["verdict"] == "fail"
    _, _, p_corrected = _lead_oracle(nsm, outcome, 4)
    assert p_corrected >= 0.05
    short_nsm, short_outcome = _series(10, lead=2)
    short = _project(tmp_path / "short", short_nsm, short_outcome)
    _build(short)
    verdict = _checklist(short)["leading_indicator"]
    assert verdict["verdict"] == "not enough history"
    assert "needs 16" in verdict["evidence"]


def test_a_revenue_north_star_fails_not_vanity_and_each_criterion_has_a_verdict(tmp_path):
    nsm, outcome = _series(30, lead=1)
    root = _project(tmp_path / "rev", nsm, outcome, north_star_name="weekly_revenue")
    _build(root)
    result = run_cli(["checklist", "--project-dir", str(root)])
    assert result.exit_code == 1  # a failed criterion
    checks = _checklist(root)
    assert checks["not_vanity"]["verdict"] == "fail" and "revenue" in checks["not_vanity"]["evidence"]
    assert checks["expresses_value"]["verdict"] == "needs a person"
    assert checks["represents_vision"]["verdict"] == "warn"  # not answered: shown, never faked
    assert checks["actionable"]["verdict"] == "pass"
    assert checks["understandable"]["verdict"] == "pass"
    assert checks["measurable"]["verdict"] == "pass"
    assert checks["game_fit"]["verdict"] == "warn"  # 'weekly_revenue' does not read as a transaction count


def test_actionable_fails_for_an_input_without_a_work_stream_and_measurable_for_gaps(tmp_path):
    nsm, outcome = _series(30, lead=1)
    nsm[-3] = 0.0  # a week whose rows are all 0
    charter = ("value: v\ngame: transaction\nnorth_star: active_buyers\noutcomes: [revenue]\n"
               "work_streams:\n  - {team: Growth, input: buyers}\n")
    root = _project(tmp_path / "p", nsm, outcome, charter=charter)
    _build(root)
    checks = _checklist(root)
    assert checks["actionable"]["verdict"] == "fail" and "ratio has no work stream" in checks["actionable"]["evidence"]
    assert checks["measurable"]["verdict"] == "fail"


def test_a_bad_charter_names_its_line(tmp_path):
    nsm, outcome = _series(20, lead=1)
    root = _project(tmp_path / "p", nsm, outcome, charter="value: v\ngame: gambling\nnorth_star: active_buyers\n")
    result = run_cli(["checklist", "--project-dir", str(root)])
    assert result.exit_code == 1
    assert "northstar.yml:2" in result.output and "unknown game 'gambling'" in result.output
    assert "Traceback" not in result.output


def _last_complete(project_dir: Path, grain: str = "week") -> dict[str, float]:
    card = api.read_scorecard(api.load(project_dir)).to_pylist()
    rows = [r for r in card if r["grain"] == grain and r["is_complete"]]
    last = max(r["period_start"] for r in rows)
    return {r["metric"]: r["value"] for r in rows if r["period_start"] == last}


def test_whatif_through_formula_edges_equals_the_formula_by_hand(demo_project):
    values = _last_complete(demo_project)
    result = run_cli(["whatif", "--project-dir", str(demo_project), "on_time_rate=+2pt", "orders_per_customer=+3%",
                      "--format", "json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    by_hand = values["ordering_customers"] * (values["orders_per_customer"] * 1.03) * (values["on_time_rate"] + 0.02)
    assert math.isclose(got["after"], by_hand, rel_tol=1e-9)
    assert math.isclose(got["before"], values["on_time_orders"], rel_tol=1e-9)
    assert got["estimate"] is False


def test_goal_seek_fed_back_into_whatif_reaches_the_goal(demo_project):
    values = _last_complete(demo_project)
    goal = values["on_time_orders"] * 1.10
    result = run_cli(["whatif", "--project-dir", str(demo_project), "--goal", "on_time_orders=+10%", "--format", "json"])
    assert result.exit_code == 0, result.output
    seeks = {tuple(r["inputs"]): r["change_pct"] for r in json.loads(result.output)["goal_seek"]}
    for (name,), move in seeks.items():
        back = run_cli(["whatif", "--project-dir", str(demo_project), f"{name}={move * 100!r}%", "--format", "json"])
        assert math.isclose(json.loads(back.output)["after"], goal, rel_tol=1e-9), name
    mixed = run_cli(["whatif", "--project-dir", str(demo_project), "--goal", "+10%",
                     "--mix", "ordering_customers,orders_per_customer", "--format", "json"])
    move = json.loads(mixed.output)["goal_seek"][0]["change_pct"]
    assert math.isclose((1 + move) ** 2, 1.10, rel_tol=1e-9)  # a product of two equal moves


def test_whatif_through_a_hypothesis_edge_is_labelled_an_estimate_with_an_interval(demo_project):
    result = run_cli(["whatif", "--project-dir", str(demo_project), "items_per_order=+5%", "--format", "json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["estimate"] is True
    assert got["low"] <= got["after"] <= got["high"]


def test_the_demo_charter_lists_its_initiatives_worth(demo_project):
    result = run_cli(["whatif", "--project-dir", str(demo_project)])
    assert result.exit_code == 0, result.output
    assert "Growth: Referral credits (ordering_customers +4%) -> on_time_orders +" in result.output
    values = _last_complete(demo_project)
    worth = values["on_time_orders"] * 0.04  # one factor of a product moved by 4%
    assert f"+{worth:.6g}" in result.output


@pytest.mark.parametrize("bad", ["on_time_rate=lots", "nosuch=+3%", "on_time_rate"])
def test_bad_whatif_arguments_are_usage_errors(demo_project, bad):
    result = run_cli(["whatif", "--project-dir", str(demo_project), bad])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
