"""northstar lint: each anti-pattern rule fires on a real project broken on purpose, at the metric's
file and config line; data rules read the last build; silencing, output formats and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from test_errors import edit, line_of, run_cli

from northstar_pipeline import api
from northstar_pipeline.analysis.lint import (
    RULES,
    Finding,
    format_findings,
    has_errors,
    lint_project,
)

STARTER = Path(__file__).resolve().parent.parent / "northstar_pipeline" / "demo" / "starter"
NSM = "metrics/on_time_orders.sql"
ITEMS = "metrics/items_per_order.sql"
COUNTER = "metrics/support_tickets_per_order.sql"
NSM_FORMULA = "formula='ordering_customers * orders_per_customer * on_time_rate'"
NSM_BODY = """select
    {{ period('placed_at') }} as period_start,
    count(*) filter (where is_on_time) as value
from {{ ref('orders_enriched') }}
group by 1"""


def lint(root: Path) -> tuple[Finding, ...]:
    return lint_project(api.load(root))


def of(findings: tuple[Finding, ...], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


def config_line(root: Path, relpath: str) -> int:
    return line_of(root / relpath, "config(")


def assert_single(findings: tuple[Finding, ...], rule: str, severity: str, root: Path, relpath: str,
                  metric: str | None) -> Finding:
    found = of(findings, rule)
    assert len(found) == 1, findings
    finding = found[0]
    assert (finding.severity, finding.path, finding.line, finding.metric, finding.silenced) == (
        severity, Path(relpath), config_line(root, relpath), metric, None)
    return finding


@pytest.fixture
def starter(tmp_path: Path, warehouse) -> Path:
    """The `northstar init` starter, unbuilt, reading the session warehouse."""
    root = tmp_path / "starter"
    shutil.copytree(STARTER, root, ignore=shutil.ignore_patterns("__pycache__"))
    edit(root / "profiles.yml", "events_path: data/warehouse/events", f"events_path: {warehouse.events_dir}")
    return root


# -- the rule table --------------------------------------------------------------------------------


def test_rule_table() -> None:
    assert [(r.id, r.severity) for r in RULES] == [
        ("NS001", "error"), ("NS002", "error"), ("NS003", "warning"), ("NS004", "warning"), ("NS005", "warning"),
        ("NS006", "error"), ("NS007", "error"), ("NS008", "error"), ("NS009", "warning"), ("NS010", "error"),
        ("NS011", "warning"), ("NS012", "error"), ("NS013", "warning")]
    assert all(r.title and r.why and "\n" not in r.why for r in RULES)


# -- clean projects --------------------------------------------------------------------------------


def test_demo_has_only_data_driven_hypothesis_warnings(demo_project: Path) -> None:
    findings = lint(demo_project)
    assert not has_errors(findings)
    assert {f.rule for f in findings} <= {"NS009"}
    # Oracle: the build's own tree_validation.parquet, read with independent SQL.
    expected = duckdb.sql(f"""
        SELECT child, grain FROM read_parquet('{demo_project / "target" / "tree_validation.parquet"}')
        WHERE validation = 'hypothesis'
        GROUP BY ALL
        HAVING NOT bool_or(coalesce(is_best_lag, false)) OR bool_or(is_best_lag AND NOT supported)
    """).fetchall()
    assert expected  # the session warehouse does leave some dotted lines unsupported
    got = [(f.metric, f.message.split("grain ")[1].split(":")[0]) for f in findings]
    assert sorted(got) == sorted(expected)
    for finding in findings:
        relpath = f"metrics/{finding.metric}.sql"
        assert (finding.severity, finding.path, finding.line) == ("warning", Path(relpath),
                                                                  config_line(demo_project, relpath))
        assert all(word in finding.message for word in ("r=", "lag", "n=", "p="))


def test_unbuilt_starter_is_clean_and_says_data_rules_were_skipped(starter: Path) -> None:
    findings = lint(starter)
    assert findings == ()
    text = format_findings(findings, "text")
    assert text.splitlines()[0] == "0 errors, 0 warnings"
    assert "data rules (NS008, NS009) skipped: no build at target/dev.duckdb" in text


# -- structural rules ------------------------------------------------------------------------------


def test_ns001_no_north_star(starter: Path) -> None:
    edit(starter / "metrics/weekly_orders.sql", "kind='north_star'", "kind='counter', guard='tickets_per_order'")
    findings = lint(starter)
    [finding] = of(findings, "NS001")
    assert (finding.severity, finding.path, finding.line, finding.metric) == ("error", None, None, None)
    assert format_findings(findings, "text").startswith("error NS001 the tree has no North Star")
    assert has_errors(findings)


def test_ns002_second_north_star(demo_project: Path) -> None:
    relpath = "metrics/active_customers.sql"
    (demo_project / relpath).write_text(
        "{#- a second North Star, on purpose -#}\n"
        "{{ config(kind='north_star', label='Active customers') }}\n"
        "select {{ period('placed_at') }} as period_start, count(distinct user_id) as value\n"
        "from {{ ref('stg_orders') }}\ngroup by 1\n")
    findings = lint(demo_project)
    finding = assert_single(findings, "NS002", "error", demo_project, relpath, "active_customers")
    assert "'on_time_orders'" in finding.message
    assert config_line(demo_project, relpath) == 2
    # The extra North Star is not in the last build: it is named in a note, not checked on data.
    assert "not checked on data: active_customers" in format_findings(findings, "text")


def test_ns003_fewer_than_three_level_one_inputs(starter: Path) -> None:
    (starter / "metrics/items_per_order.sql").unlink()
    finding = assert_single(lint(starter), "NS003", "warning", starter, "metrics/weekly_orders.sql", "weekly_orders")
    assert "2 Level-1 input(s)" in finding.message


def test_ns003_more_than_five_level_one_inputs(demo_project: Path) -> None:
    edit(demo_project / "metrics/push_click_through_rate.sql", "parent='orders_per_customer'", "parent='on_time_orders'")
    edit(demo_project / "metrics/search_to_cart_rate.sql", "parent='items_per_order'", "parent='on_time_orders'")
    finding = assert_single(lint(demo_project), "NS003", "warning", demo_project, NSM, "on_time_orders")
    assert "6 Level-1 input(s)" in finding.message


def test_ns004_input_without_owner(demo_project: Path) -> None:
    edit(demo_project / ITEMS, "owner='Discovery & Merchandising', ", "")
    findings = lint(demo_project)
    assert_single(findings, "NS004", "warning", demo_project, ITEMS, "items_per_order")
    assert not has_errors(findings)


def test_ns005_input_without_dimension(demo_project: Path) -> None:
    edit(demo_project / "metrics/new_customers.sql", "dimension='breadth',", "")
    assert_single(lint(demo_project), "NS005", "warning", demo_project, "metrics/new_customers.sql", "new_customers")


@pytest.mark.parametrize(("old", "new", "word"), [
    ("label='On-time orders'", "label='Weekly revenue'", "revenue"),
    ("description='Orders placed", "description='Net MRR from orders placed", "MRR"),
    ("label='On-time orders'", "label='Gross_bookings'", "bookings"),
], ids=["label", "description", "underscored"])
def test_ns006_lagging_north_star(demo_project: Path, old: str, new: str, word: str) -> None:
    edit(demo_project / NSM, old, new)
    finding = assert_single(lint(demo_project), "NS006", "error", demo_project, NSM, "on_time_orders")
    assert f"'{word}'" in finding.message


def test_ns006_needs_whole_words(demo_project: Path) -> None:
    edit(demo_project / NSM, "label='On-time orders'", "label='On-time arrivals, not wholesale'")
    assert of(lint(demo_project), "NS006") == []


CUMULATIVE = {
    "running_total": """select
    {{ period('placed_at') }} as period_start,
    sum(count(*) filter (where is_on_time)) over (order by {{ period('placed_at') }}) as value
from {{ ref('orders_enriched') }}
group by 1""",
    "to_date_join": """with periods as (
    select distinct {{ period('placed_at') }} as period_start from {{ ref('orders_enriched') }}
)
select p.period_start, count(*) filter (where o.is_on_time) as value
from periods as p
join {{ ref('orders_enriched') }} as o on {{ period('o.placed_at') }} <= p.period_start
group by 1""",
    "all_time": """select
    max({{ period('placed_at') }}) as period_start,
    count(*) filter (where is_on_time) as value
from {{ ref('orders_enriched') }}""",
}


@pytest.mark.parametrize(("kind", "words"), [
    ("running_total", "is a running total"),
    ("to_date_join", "counts everything up to each period"),
    ("all_time", "no GROUP BY on the period"),
])
def test_ns007_cumulative_north_star(demo_project: Path, kind: str, words: str) -> None:
    edit(demo_project / NSM, NSM_BODY, CUMULATIVE[kind])
    finding = assert_single(lint(demo_project), "NS007", "error", demo_project, NSM, "on_time_orders")
    assert words in finding.message


@pytest.mark.parametrize("body", [
    # a rolling window is bounded, not cumulative
    NSM_BODY.replace("count(*) filter (where is_on_time) as value",
                     "sum(count(*) filter (where is_on_time)) over (order by {{ period('placed_at') }} "
                     "rows between 3 preceding and current row) as value"),
    # a join bounded on both sides picks one period
    CUMULATIVE["to_date_join"].replace(
        "<= p.period_start", "<= p.period_start and {{ period('o.placed_at') }} >= p.period_start"),
], ids=["rolling_window", "bounded_join"])
def test_ns007_not_fooled_by_per_period_windows(demo_project: Path, body: str) -> None:
    edit(demo_project / NSM, NSM_BODY, body)
    assert of(lint(demo_project), "NS007") == []


def test_ns010_north_star_without_counter_metric(demo_project: Path) -> None:
    (demo_project / COUNTER).unlink()
    findings = lint(demo_project)
    assert_single(findings, "NS010", "error", demo_project, NSM, "on_time_orders")
    assert has_errors(findings)


def test_ns011_counter_metric_without_threshold(demo_project: Path) -> None:
    edit(demo_project / COUNTER, "direction='lower_is_better',\n          warn_change_pct=3, breach_change_pct=5, "
                                 "ceiling=0.08)", "direction='lower_is_better')")
    findings = lint(demo_project)
    assert_single(findings, "NS011", "warning", demo_project, COUNTER, "support_tickets_per_order")
    assert not has_errors(findings)


# -- data rules ------------------------------------------------------------------------------------


def test_ns008_formula_that_does_not_hold_on_the_last_build(demo_project: Path) -> None:
    edit(demo_project / NSM, NSM_FORMULA, NSM_FORMULA[:-1] + " * 2'")
    findings = of(lint(demo_project), "NS008")
    assert [f.message.split("grain ")[1].split(":")[0] for f in findings] == ["month", "week"]
    con = duckdb.connect(str(demo_project / "target" / "dev.duckdb"), read_only=True)
    try:
        for finding, grain in zip(findings, ["month", "week"]):
            assert (finding.severity, finding.path, finding.line, finding.metric) == (
                "error", Path(NSM), config_line(demo_project, NSM), "on_time_orders")
            # Oracle: the first period of the last build with a non-zero North Star breaks "x = 2x".
            first, value = con.execute(
                "SELECT period_start, value FROM north_star.on_time_orders "
                "WHERE grain = ? AND NOT is_to_date AND value <> 0 ORDER BY period_start LIMIT 1", [grain]).fetchone()
            assert f"first break in period {first}" in finding.message
            assert f"on_time_orders = {value:,.6g} but the formula gives {2 * value:,.6g}" in finding.message
    finally:
        con.close()


def test_ns009_hypothesis_without_enough_data(starter: Path) -> None:
    # Quarters of a one-year warehouse give fewer than 6 paired changes: the edge cannot be tested.
    edit(starter / "profiles.yml", "grains: [week, month]", "grains: [quarter]")
    api.build(api.load(starter))
    findings = lint(starter)
    finding = assert_single(findings, "NS009", "warning", starter, ITEMS, "items_per_order")
    assert "'items_per_order' -> 'weekly_orders' cannot be tested at grain quarter" in finding.message
    assert "needs at least 6" in finding.message
    assert [f.rule for f in findings] == ["NS009"]  # the formula holds on the data
    assert "data rules checked on the last build in target/dev.duckdb" in format_findings(findings, "text")


# -- silencing, output, CLI ------------------------------------------------------------------------


def test_lint_ignore_silences_a_metric_rule(demo_project: Path) -> None:
    edit(demo_project / ITEMS, "owner='Discovery & Merchandising',",
         "lint_ignore={'NS004': 'owned by the merchandising guild', 'NS04': 'a typo'},")
    findings = lint(demo_project)
    [finding] = of(findings, "NS004")
    assert finding.silenced == "owned by the merchandising guild"
    text = format_findings(findings, "text")
    assert f"{ITEMS}:1: warning NS004 " in text and "[silenced: owned by the merchandising guild]" in text
    assert ", 1 silenced" in text
    assert f"note: {ITEMS}:1: lint_ignore names unknown rule 'NS04'" in text


def test_lint_ignore_on_the_north_star_silences_project_rules(demo_project: Path) -> None:
    (demo_project / COUNTER).unlink()
    edit(demo_project / NSM, "owner='Leadership',", "owner='Leadership',\n    lint_ignore={'NS010': 'guarded in BI'},")
    findings = lint(demo_project)
    [finding] = of(findings, "NS010")
    assert finding.silenced == "guarded in BI"
    assert not has_errors(findings)
    result = run_cli(demo_project, "lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_has_errors_counts_only_unsilenced_errors() -> None:
    error = Finding("NS006", "error", "m", Path("metrics/x.sql"), 1, "x")
    warning = Finding("NS004", "warning", "m", Path("metrics/y.sql"), 1, "y")
    assert has_errors((warning, error))
    assert not has_errors((warning, Finding("NS006", "error", "m", None, None, None, silenced="why")))
    assert not has_errors((warning,))
    assert not has_errors(())


def test_json_output(demo_project: Path) -> None:
    edit(demo_project / NSM, "label='On-time orders'", "label='Weekly revenue'")
    edit(demo_project / ITEMS, "owner='Discovery & Merchandising',", "lint_ignore={'NS004': 'guild'},")
    findings = lint(demo_project)
    payload = json.loads(format_findings(findings, "json"))
    assert len(payload) == len(findings)
    for item, finding in zip(payload, findings):
        assert item == {"rule": finding.rule, "severity": finding.severity, "message": finding.message,
                        "path": finding.path.as_posix() if finding.path else None, "line": finding.line,
                        "metric": finding.metric, "silenced": finding.silenced}
    assert {"rule": "NS004", "path": ITEMS, "silenced": "guild"}.items() <= next(
        i for i in payload if i["rule"] == "NS004").items()


def test_cli_exit_codes(demo_project: Path) -> None:
    clean = run_cli(demo_project, "lint")
    assert clean.returncode == 0, clean.stderr
    assert "0 errors" in clean.stdout
    edit(demo_project / NSM, "label='On-time orders'", "label='Weekly revenue'")
    broken = run_cli(demo_project, "lint", "--format", "json")
    assert broken.returncode == 1, broken.stderr
    assert any(i["rule"] == "NS006" and i["path"] == NSM for i in json.loads(broken.stdout))
    edit(demo_project / NSM, "as value", "as as value")  # a compile error: printed with its location
    failed = run_cli(demo_project, "lint")
    assert failed.returncode == 1
    assert f"{NSM}:" in failed.stderr and "SQL syntax error" in failed.stderr
    for result in (clean, broken, failed):
        assert "Traceback" not in result.stdout + result.stderr
