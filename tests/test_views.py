"""The human-facing views over a real build: tree pictures, the weekly review table, the explanation.

Numbers are checked against the scorecard read independently with DuckDB, never against our own renderers.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from test_errors import run_cli

from northstar_pipeline import api
from northstar_pipeline.analysis.explain import explain_change
from northstar_pipeline.errors import UsageError
from northstar_pipeline.present.report import render_scorecard
from northstar_pipeline.present.rows import scorecard_rows
from northstar_pipeline.present.views import render_tree
from northstar_pipeline.tree.tree import build_tree

NSM, DRIVER, GUARD = "on_time_orders", "on_time_rate", "support_tickets_per_order"


@pytest.fixture(scope="module")
def card(built_demo):
    project, _ = built_demo
    return api.read_scorecard(project)


def card_rows(project, sql: str, params: dict) -> list[tuple]:
    return duckdb.connect().execute(sql.replace("CARD", "read_parquet($path)"),
                                    {"path": str(project.scorecard_path), **params}).fetchall()


def metric_names(project) -> list[str]:
    return [r[0] for r in card_rows(project, "SELECT DISTINCT metric FROM CARD ORDER BY 1", {})]


def amount(value: float) -> str:
    """How explain prints an amount (whole units from 10 up)."""
    return f"{value:+,.0f}" if abs(value) >= 10 else f"{value:+.3g}"


# Tree pictures ---------------------------------------------------------------------------------------

def test_mermaid_tree(built_demo) -> None:
    project, _ = built_demo
    text = render_tree(project, fmt="mermaid", grain="week")
    assert text.startswith("flowchart TD\n")
    for name in metric_names(project):  # every metric declared exactly once as a node
        assert len(re.findall(rf"^    {name}[\[\(\{{]", text, re.M)) == 1, name
    assert re.search(rf"^    {NSM} --> {DRIVER}$", text, re.M)  # formula: solid
    assert re.search(r"^    on_time_rate -\.->\|\"r=[+-]\d\.\d\d, lag \d\"\| avg_delivery_minutes_late$", text, re.M)
    guard = re.search(rf"^    {NSM} ==>\|\"⛨ guarded by \(warn \+3%, breach \+5%, ceiling 0.08\)\"\| {GUARD}$", text, re.M)
    assert guard
    edges = [line for line in text.splitlines() if re.search(r" (-->|-\.->|==>)", line) and "%%" not in line]
    assert f"linkStyle {edges.index(guard.group(0))} stroke:#c62828" in text  # the guardrail link drawn red
    assert "classDef red" in text and "classDef green" in text
    assert text == render_tree(project, fmt="mermaid", grain="week")  # deterministic


def test_dot_tree(built_demo) -> None:
    project, _ = built_demo
    text = render_tree(project, fmt="dot", grain="month")
    assert text.startswith("digraph metric_tree {") and text.rstrip().endswith("}")
    assert f'"{NSM}" -> "{DRIVER}" [style=solid' in text
    assert '"items_per_order" -> "search_to_cart_rate" [style=dashed' in text
    assert f'"{NSM}" -> "{GUARD}" [style=bold, color=red' in text
    assert f'{{ rank=same; "{NSM}"; "{GUARD}"; }}' in text  # the counter-metric beside what it guards
    assert text.count("[label=") == len(metric_names(project))


def test_svg_tree(built_demo) -> None:
    import xml.etree.ElementTree as ET

    project, _ = built_demo
    text = render_tree(project, fmt="svg", grain="week")
    svg = ET.fromstring(text)
    ns = {"s": "http://www.w3.org/2000/svg"}
    boxes = {g.get("data-metric"): g for g in svg.iterfind(".//s:g[@class='metric']", ns)}
    latest = card_rows(project, "SELECT metric, status FROM CARD WHERE grain = 'week' AND period_start = "
                                "(SELECT max(period_start) FROM CARD WHERE grain = 'week' AND is_complete)", {})
    assert {m: boxes[m].get("data-status") for m, _ in latest} == dict(latest) and len(boxes) == len(latest)
    edges = [e.get("class") for e in svg.iterfind(".//s:path", ns) if (e.get("class") or "").startswith("edge ")]
    legend = [g.get("data-edge") for g in svg.iterfind(".//s:g[@class='legend-item']", ns)]
    assert legend == ["formula", "hypothesis", "guardrail"]
    tree = build_tree(api.compile_project(project))
    assert len(edges) == len(tree.metrics) - 1 - len(tree.outcomes)  # into every metric but the North Star, outcomes
    assert edges.count("edge guardrail") == sum(m.kind.value == "counter" for m in tree.metrics)
    assert edges.count("edge formula") == sum(m.config.edge is not None and m.config.edge.value == "formula"
                                              for m in tree.metrics if m.kind.value == "input")
    xs = [(float(r.get("x")), float(r.get("y"))) for r in svg.iterfind(".//s:rect", ns)]
    assert len(set(xs)) == len(xs)  # no two boxes on the same spot


def test_rich_tree(built_demo) -> None:
    project, _ = built_demo
    text = render_tree(project, fmt="rich", grain="week", color=False)
    assert "\x1b[" not in text  # no ANSI codes off a terminal
    assert "★ North Star  ● On-time orders" in text
    for owner in ("Leadership", "Logistics & Fulfillment", "Customer Experience", "Engagement"):
        assert owner in text
    assert "━━ formula  ● % of orders delivered on time" in text
    assert re.search(r"┄┄ hypothesis \(r=[+-]\d\.\d\d, lag \d\)  ● Push click-through rate", text)
    assert "⛨ guards On-time orders  ● Support tickets per order" in text
    assert re.search(r"\b(green|yellow|red)\b", text)
    assert "(compared with the previous week); to date: week of " in text  # the complete week, the partial beside it
    coloured = render_tree(project, fmt="rich", grain="week", color=True)
    assert "\x1b[" in coloured


def test_tree_without_scorecard_and_bad_options(demo_project: Path) -> None:
    project = api.load(demo_project)
    project.scorecard_path.unlink()
    text = render_tree(project, fmt="mermaid", grain="week")
    assert "no scorecard yet" in text and f"{NSM} --> {DRIVER}" in text
    with pytest.raises(UsageError, match="no grain 'day'"):
        render_tree(project, fmt="rich", grain="day")


# The review table ------------------------------------------------------------------------------------

def test_scorecard_order_and_partial_period(built_demo, card) -> None:
    project, _ = built_demo
    rows = scorecard_rows(card, "week", None)
    complete_week, latest, complete = card_rows(
        project, "SELECT max(period_start) FILTER (WHERE is_complete), max(period_start), "
                 "bool_and(is_complete) FILTER (WHERE period_start = (SELECT max(period_start) FROM CARD "
                 "WHERE grain = 'week')) FROM CARD WHERE grain = 'week'", {})[0]
    # The default is the last complete week, never the partial one (every view opens on it).
    assert not complete and latest > complete_week and {r["period_start"] for r in rows} == {complete_week}
    names = [r["metric"] for r in rows]
    assert names[0] == NSM and sorted(names) == metric_names(project)
    assert names.index(GUARD) == names.index(NSM) + 1  # right after the metric it guards
    for row in rows:  # every input sits below its parent, and the values are the scorecard's own
        if row["kind"] == "input":
            assert names.index(row["parent"]) < names.index(row["metric"])
    table = render_scorecard(card, grain="week", fmt="table", color=False)
    assert f"week of {complete_week} .. " in table
    assert f"to date: week of {latest}, " in table and "(compared with the same span of the previous week)" in table
    assert table.index("On-time orders") < table.index("Support tickets per order") < table.index("Ordering customers")
    nsm_value, nsm_prev, to_date = card_rows(
        project, "SELECT c.value, c.previous_value, p.value FROM CARD c, CARD p WHERE c.metric = $m AND p.metric = $m "
                 "AND c.grain = 'week' AND p.grain = 'week' AND c.period_start = $c AND p.period_start = $p",
        {"m": NSM, "c": complete_week, "p": latest})[0]
    # At 150 columns "previous" is the first column to go (report.DROP_ORDER); the to-date value stays.
    assert re.search(rf"On-time orders\s+{nsm_value:,.0f}\s.*\s{to_date:,.0f} [+-]", table)
    wide = render_scorecard(card, grain="week", fmt="table", color=False, width=220)
    assert re.search(rf"On-time orders\s+{nsm_value:,.0f}\s+{nsm_prev:,.0f}\s", wide)


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown", "html"])
def test_scorecard_formats(built_demo, card, warehouse, fmt: str) -> None:
    project, _ = built_demo
    period = warehouse.dip_week.isoformat()
    text = render_scorecard(card, grain="week", fmt=fmt, period=period, color=False)
    expected = card_rows(project, "SELECT metric, value, status FROM CARD WHERE grain = 'week' AND period_start = $p "
                                  "ORDER BY metric", {"p": period})
    if fmt == "json":
        rows = json.loads(text)
        assert rows[0]["metric"] == NSM
        assert sorted((r["metric"], r["value"], r["status"]) for r in rows) == expected
    elif fmt == "csv":
        lines = text.splitlines()
        assert lines[0].startswith("metric,label,kind") and lines[1].startswith(NSM + ",")
        assert len(lines) == len(expected) + 1
    elif fmt == "markdown":
        lines = [line for line in text.splitlines() if line.startswith("|")]
        assert re.fullmatch(r"\|(:?-+:?\|)+", lines[1])  # a valid GFM separator row
        columns = lines[0].count("|")
        assert all(line.count("|") - line.count("\\|") == columns for line in lines)
        assert "On-time orders **(North Star)**" in lines[2] and "Support tickets per order" in lines[3]
        assert "🔴 red (breached)" in lines[3]
        assert len(lines) == len(expected) + 2
    elif fmt == "html":  # cells are checked against the Parquet in test_html.py
        assert text.startswith("<!doctype html>") and f"week of {period} .. " in text
        assert text.count("<tr class=") == len(expected) and '<svg xmlns="http://www.w3.org/2000/svg" class="tree"' in text
        assert "red (breached)" in text
    else:
        assert f"week of {period} .. " in text and "(compared with the previous week)" in text
        assert "red (breached)" in text and "partial" not in text
        assert re.search(r"[▁▂▃▄▅▆▇█]{12}", text)  # 12-week sparkline


def test_scorecard_usage_errors(card) -> None:
    with pytest.raises(UsageError, match="no grain 'day'") as error:
        render_scorecard(card, grain="day", fmt="table")
    assert "month, week" in error.value.hint
    with pytest.raises(UsageError, match="no week starting 1999-01-04") as error:
        render_scorecard(card, grain="week", fmt="table", period="1999-01-04")
    assert "weeks built:" in error.value.hint
    start = scorecard_rows(card, "week", None)[0]["period_start"]
    with pytest.raises(UsageError, match="not the start of a week") as error:
        render_scorecard(card, grain="week", fmt="table", period=(start + timedelta(days=2)).isoformat())
    assert f"--period {start}" in error.value.hint
    with pytest.raises(UsageError, match="not a date"):
        render_scorecard(card, grain="week", fmt="table", period="last week")


# Explain ---------------------------------------------------------------------------------------------

def test_explain_dip_week(built_demo, card, warehouse) -> None:
    project, _ = built_demo
    period = warehouse.dip_week.isoformat()
    text = explain_change(card, grain="week", period=period)
    rows = {r[0]: r[1:] for r in card_rows(
        project, "SELECT metric, value, previous_value, change, change_pct, contribution, status, guardrail_breached "
                 "FROM CARD WHERE grain = 'week' AND period_start = $p", {"p": period})}
    value, previous, change, change_pct, *_ = rows[NSM]
    assert change < 0
    assert f"On-time orders (North Star) fell from {previous:,.0f} to {value:,.0f}: {amount(change)} ({change_pct:+.1%})" in text
    # The main driver is the formula input with the biggest share of the change: on-time delivery.
    contributions = {m: r[4] for m, r in rows.items() if r[4] is not None}
    assert max(contributions, key=lambda m: abs(contributions[m])) == DRIVER
    driver = contributions[DRIVER]
    assert (f"% of orders delivered on time ({DRIVER}) was the main driver: {amount(driver)} of {amount(change)} "
            f"on-time orders ({driver / change:.0%})") in text
    assert abs(sum(contributions.values()) - change) < 1e-6 * abs(change)  # LMDI adds up
    # Inputs listed by |contribution|.
    order = sorted(contributions, key=lambda m: -abs(contributions[m]))
    positions = [text.index(f"({m}): ") for m in order]
    assert positions == sorted(positions)
    # The support-ticket guardrail is named RED, up front and in the guardrail section.
    assert rows[GUARD][5] == "red" and rows[GUARD][6]
    assert "Guardrail in breach: Support tickets per order is RED" in text
    assert re.search(rf"RED: Support tickets per order \({GUARD}, guards On-time orders\) rose .*guardrail breached",
                     text)
    assert "period-to-date" not in text
    # Hypothesis inputs come with their tested correlation.
    assert re.search(r"Push click-through rate \(push_click_through_rate -> Orders per ordering customer\): .*r = [+-]",
                     text)


def test_explain_defaults_thresholds_and_partial(built_demo, card) -> None:
    project, _ = built_demo
    latest_complete, latest = card_rows(project, "SELECT max(period_start) FILTER (WHERE is_complete), max(period_start) "
                                                 "FROM CARD WHERE grain = 'week'", {})[0]
    assert f"week of {latest_complete} .. " in explain_change(card, grain="week", period=None)
    partial = explain_change(card, grain="week", period=latest.isoformat(),
                             tree=build_tree(api.compile_project(project)))
    assert "compared period-to-date" in partial and "(partial" in partial
    assert re.search(r"\d\.\d%", partial)  # ratio units from the tree print as percentages
    with pytest.raises(UsageError, match="no month starting 2001-01-01"):
        explain_change(card, grain="month", period="2001-01-01")


# CLI -------------------------------------------------------------------------------------------------

def test_cli_views(demo_project: Path, warehouse) -> None:
    tree = run_cli(demo_project, "tree", "--format", "mermaid")
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.startswith("flowchart TD") and "-.->" in tree.stdout
    explained = run_cli(demo_project, "explain", "--grain", "week", "--period", warehouse.dip_week.isoformat())
    assert explained.returncode == 0, explained.stderr
    assert f"({DRIVER}) was the main driver" in explained.stdout and "RED: Support tickets per order" in explained.stdout
    card = run_cli(demo_project, "scorecard", "--format", "markdown")
    assert card.returncode == 0, card.stderr
    assert card.stdout.startswith("**North Star scorecard**")
    bad = run_cli(demo_project, "scorecard", "--period", "1999-01-04")
    assert bad.returncode == 2 and "hint: weeks built:" in bad.stderr and "Traceback" not in bad.stderr


# Terminal widths -------------------------------------------------------------------------------------

def test_views_keep_to_a_100_column_terminal(built_demo, card) -> None:
    """scorecard, tree and explain at 100 columns: no line longer, no label, owner or name split over two lines."""
    project, _ = built_demo
    names = card_rows(project, "SELECT DISTINCT metric, label, owner FROM CARD", {})
    views = {
        "scorecard": render_scorecard(card, grain="week", fmt="table", color=False, width=100),
        "tree": render_tree(project, fmt="rich", grain="week", color=False, width=100),
        "explain": explain_change(card, grain="week", width=100),
    }
    for view, text in views.items():
        assert max(len(line) for line in text.splitlines()) <= 100, view
        unwrapped = re.sub(r" *\n[ │├└─]*", " ", text)  # every line joined back: a split name reappears whole
        for name in {n for row in names for n in row}:
            assert text.count(name) == unwrapped.count(name), (view, name)
        for metric, label, owner in names:
            if view != "explain":  # explain names only what moved
                assert label in text, (view, label)
            if view == "tree":
                assert metric in text and owner in text, (view, metric, owner)
    # The table keeps value, change and status; it drops columns in the documented order, not names.
    header = next(line for line in views["scorecard"].splitlines() if line.strip().startswith("metric"))
    assert header.split() == ["metric", "value", "change", "target", "%", "status", "owner"]
    coloured = explain_change(card, grain="week", color=True, width=100)
    assert re.search(r"Status: \x1b\[[0-9;]+m(GREEN|YELLOW|RED)\x1b\[0m", coloured)  # coloured like scorecard's
