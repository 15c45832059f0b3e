"""Dimensions and segments: values against SQL over the raw events, exact shares of the change,
the planted segment found by explain, formulas checked per segment, compile errors, the guard."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import events_glob

from northstar_pipeline import api
from northstar_pipeline.analysis.segments import read_segments, segment_report
from northstar_pipeline.errors import CompileError, TreeError

TOL = 1e-9

# Written apart from the pipeline: DISTINCT dedupe, isodow/make_date buckets, own order-delivery join,
# a segment column per dimension (and 'total' = the whole, for the changes).
ORACLE = """
WITH raw AS (
    SELECT DISTINCT event_id, user_id, event_type, occurred_at, order_id, items, promised_at, delivered_at,
                    region, platform
    FROM read_parquet($glob, hive_partitioning = true)
), grains(grain) AS (VALUES ('week'), ('month')),
dims(dimension) AS (VALUES ('region'), ('platform'), ('total')),
bucketed AS (
    SELECT r.*, g.grain, d.dimension,
        CASE d.dimension WHEN 'region' THEN r.region WHEN 'platform' THEN r.platform ELSE 'all' END AS seg,
        CASE g.grain WHEN 'week' THEN CAST(r.occurred_at AS DATE) - CAST(isodow(r.occurred_at) - 1 AS INTEGER)
                     ELSE make_date(year(r.occurred_at), month(r.occurred_at), 1) END AS p
    FROM raw r CROSS JOIN grains g CROSS JOIN dims d
), placed AS (
    SELECT b.grain, b.dimension, b.seg, b.p, b.order_id, b.user_id, b.items,
           EXISTS (SELECT 1 FROM raw d WHERE d.event_type = 'order_delivered' AND d.order_id = b.order_id
                   AND d.delivered_at <= d.promised_at) AS on_time
    FROM bucketed b WHERE b.event_type = 'order_placed'
), orders AS (
    SELECT grain, dimension, seg, p, count(*) AS n, count(DISTINCT user_id) AS customers, sum(items) AS items,
           sum(CASE WHEN on_time THEN 1 ELSE 0 END) AS on_time
    FROM placed GROUP BY ALL
), events AS (
    SELECT grain, dimension, seg, p,
        sum(CASE WHEN event_type = 'signup' THEN 1 ELSE 0 END) AS signups,
        sum(CASE WHEN event_type = 'push_sent' THEN 1 ELSE 0 END) AS sent,
        sum(CASE WHEN event_type = 'push_click' THEN 1 ELSE 0 END) AS clicks,
        sum(CASE WHEN event_type = 'search' THEN 1 ELSE 0 END) AS searches,
        sum(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS carts
    FROM bucketed GROUP BY ALL
), lateness AS (
    SELECT grain, dimension, seg, p, avg(epoch(delivered_at) - epoch(promised_at)) / 60 AS minutes_late
    FROM bucketed WHERE event_type = 'order_delivered' GROUP BY ALL
)
SELECT 'on_time_orders' AS metric, grain, dimension, seg, p, on_time AS v FROM orders
UNION ALL SELECT 'ordering_customers', grain, dimension, seg, p, customers FROM orders
UNION ALL SELECT 'orders_per_customer', grain, dimension, seg, p, n / customers FROM orders
UNION ALL SELECT 'on_time_rate', grain, dimension, seg, p, on_time / n FROM orders
UNION ALL SELECT 'items_per_order', grain, dimension, seg, p, items / n FROM orders
UNION ALL SELECT 'new_customers', grain, dimension, seg, p, signups FROM events WHERE signups > 0
UNION ALL SELECT 'push_click_through_rate', grain, dimension, seg, p, clicks / nullif(sent, 0) FROM events
    WHERE sent + clicks > 0
UNION ALL SELECT 'search_to_cart_rate', grain, dimension, seg, p, carts / nullif(searches, 0) FROM events
    WHERE searches + carts > 0
UNION ALL SELECT 'avg_delivery_minutes_late', grain, dimension, seg, p, minutes_late FROM lateness
"""
CUT = {"on_time_orders", "ordering_customers", "orders_per_customer", "on_time_rate", "items_per_order",
       "new_customers", "push_click_through_rate", "search_to_cart_rate", "avg_delivery_minutes_late"}
RATIOS = {"orders_per_customer", "on_time_rate", "items_per_order", "push_click_through_rate", "search_to_cart_rate",
          "avg_delivery_minutes_late"}


@pytest.fixture(scope="module")
def oracle(warehouse) -> dict[tuple, float | None]:
    rows = duckdb.connect().execute(ORACLE, {"glob": events_glob(warehouse)}).fetchall()
    return {(m, g, d, s, str(p)): v for m, g, d, s, p, v in rows}


@pytest.fixture(scope="module")
def segments(built_demo):
    project, _ = built_demo
    table = read_segments(project, required=True)
    return project, table, table.to_pylist()


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "northstar_pipeline", *args, "--project-dir", str(root)],
                          capture_output=True, text=True, timeout=300)


def test_segment_values_match_sql_over_the_raw_events(segments, oracle) -> None:
    _, _, rows = segments
    seen = set()
    for r in rows:
        key = (r["metric"], r["grain"], r["dimension"], r["segment"], str(r["period_start"]))
        seen.add(key)
        expected = oracle.get(key, None if r["metric"] in RATIOS else 0)
        assert close(r["value"], expected), (key, r["value"], expected)
    cut = {k for k in oracle if k[2] != "total"}
    assert cut <= seen, sorted(cut - seen)[:5]
    # every metric x dimension x grain, on the scorecard's spine: as many periods as the scorecard
    combos = {(r["metric"], r["dimension"], r["grain"]) for r in rows}
    assert combos == {(m, d, g) for m in CUT for d in ("region", "platform") for g in ("week", "month")}
    assert {r["segment"] for r in rows if r["dimension"] == "region"} == {"north", "south", "east", "west"}
    assert {r["segment"] for r in rows if r["dimension"] == "platform"} == {"ios", "android", "web"}


def test_segments_share_the_scorecards_spine_and_completeness(segments) -> None:
    project, _, rows = segments
    card = api.read_scorecard(project).to_pylist()
    for metric in CUT:  # each metric's own spine: an outcome whose data starts later has partial early periods
        spine = {(r["grain"], r["period_start"], r["period_end"], r["is_complete"]) for r in card
                 if r["metric"] == metric}
        for dimension, segment in (("region", "north"), ("platform", "web")):
            got = {(r["grain"], r["period_start"], r["period_end"], r["is_complete"]) for r in rows
                   if r["metric"] == metric and r["dimension"] == dimension and r["segment"] == segment}
            assert got == spine


def test_contributions_add_up_to_the_total_change(segments, oracle) -> None:
    """Per dimension: additive effects sum to the change; for ratios mix + rate per segment, summing to it."""
    project, table, _ = segments
    card = api.read_scorecard(project)
    con = duckdb.connect()
    con.register("card", card)
    periods = con.execute("SELECT DISTINCT grain, period_start, period_start - CASE grain WHEN 'week' THEN "
                          "INTERVAL 7 DAY ELSE INTERVAL 1 MONTH END FROM card "
                          "WHERE is_complete AND comparison = 'previous_period' ORDER BY 1, 2").fetchall()
    checked = 0
    for metric in sorted(CUT):
        for grain, start, previous in periods[::3] + periods[-4:]:
            report = segment_report(card, table, grain=grain, period=str(start), metric=metric)
            now = oracle.get((metric, grain, "total", "all", str(start)), None if metric in RATIOS else 0)
            before = oracle.get((metric, grain, "total", "all", str(previous.date())),
                                None if metric in RATIOS else 0)
            if now is None or before is None:
                continue
            for dim in report["dimensions"]:
                total = sum(s["effect"] for s in dim["segments"])
                assert close(total, now - before), (metric, grain, start, dim["dimension"], total, now - before)
                for s in dim["segments"]:
                    if metric in RATIOS:
                        assert close(s["mix_effect"] + s["rate_effect"], s["effect"])
                    else:
                        assert s["mix_effect"] is None and close(s["effect"], s["value"] - s["previous_value"])
                if now != before:
                    assert close(sum(s["explanatory_power"] for s in dim["segments"]), 1.0)
                checked += 1
    assert checked > 200


def test_mix_and_rate_by_hand(segments, oracle, warehouse) -> None:
    """On-time rate in the dip week by region: mix and rate from the raw counts, computed here in Python."""
    project, table, _ = segments
    report = segment_report(api.read_scorecard(project), table, grain="week", period=str(warehouse.dip_week),
                            metric="on_time_rate")
    rows = duckdb.connect().execute("""
        WITH raw AS (SELECT DISTINCT event_id, event_type, occurred_at, order_id, promised_at, delivered_at, region
                     FROM read_parquet($glob, hive_partitioning = true)),
        o AS (SELECT order_id, region, CAST(date_trunc('week', occurred_at) AS DATE) AS w FROM raw
              WHERE event_type = 'order_placed'),
        d AS (SELECT order_id, delivered_at <= promised_at AS ok FROM raw WHERE event_type = 'order_delivered')
        SELECT region, w, count(*), count(*) FILTER (WHERE ok) FROM o LEFT JOIN d USING (order_id)
        WHERE w IN ($dip, $dip - 7) GROUP BY ALL""",
        {"glob": events_glob(warehouse), "dip": warehouse.dip_week}).fetchall()
    counts = {(r, str(w)): (n, k) for r, w, n, k in rows}
    dip, before = str(warehouse.dip_week), str(warehouse.dip_week.fromordinal(warehouse.dip_week.toordinal() - 7))
    regions = sorted({r for r, _ in counts})
    d1, d0 = (sum(counts.get((r, w), (0, 0))[0] for r in regions) for w in (dip, before))
    big_r1 = sum(counts.get((r, dip), (0, 0))[1] for r in regions) / d1
    big_r0 = sum(counts.get((r, before), (0, 0))[1] for r in regions) / d0
    by_segment = {s["segment"]: s for s in next(d for d in report["dimensions"] if d["dimension"] == "region")["segments"]}
    for region in regions:
        n1, k1 = counts[(region, dip)]
        n0, k0 = counts[(region, before)]
        w1, w0, r1, r0 = n1 / d1, n0 / d0, k1 / n1, k0 / n0
        assert close(by_segment[region]["rate_effect"], (w0 + w1) / 2 * (r1 - r0))
        assert close(by_segment[region]["mix_effect"], (w1 - w0) * ((r0 + r1) / 2 - (big_r0 + big_r1) / 2))
    assert close(sum(s["mix_effect"] + s["rate_effect"] for s in by_segment.values()), big_r1 - big_r0)


def test_explain_ranks_the_planted_region_first(built_demo, warehouse) -> None:
    project, _ = built_demo
    text = run_cli(project.root, "explain", "--period", str(warehouse.dip_week))
    assert text.returncode == 0, text.stderr
    headline = next(line for line in text.stdout.splitlines() if "of the drop is" in line)
    assert headline.startswith("On-time orders fell ") and "week over week" in headline
    assert "of the drop is region=north, where % of orders delivered on time fell from" in headline
    out = run_cli(project.root, "explain", "--period", str(warehouse.dip_week), "--format", "json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)["segments"]
    assert payload["metric"] == "on_time_orders" and payload["period_start"] == str(warehouse.dip_week)
    top = payload["dimensions"][0]
    assert top["dimension"] == "region" and top["rank"] == 1
    assert top["segments"][0]["segment"] == "north" and top["segments"][0]["in_explanation"]
    assert top["segments"][0]["explanatory_power"] > 0.5
    assert payload["headline"] == headline
    assert payload["dimensions"][1]["dimension"] == "platform"
    assert top["surprise"] > payload["dimensions"][1]["surprise"]


def test_the_web_segment_clicks_pushes_at_half_the_rate(segments) -> None:
    _, _, rows = segments
    ctr = {}
    for r in rows:
        if r["metric"] == "push_click_through_rate" and r["grain"] == "month" and r["dimension"] == "platform":
            n, d = ctr.get(r["segment"], (0.0, 0.0))
            ctr[r["segment"]] = (n + r["numerator"], d + r["denominator"])
    rate = {k: n / d for k, (n, d) in ctr.items()}
    assert rate["web"] < 0.7 * min(rate["ios"], rate["android"])


def test_scorecard_and_tree_for_one_segment(built_demo, segments) -> None:
    project, _ = built_demo
    _, _, rows = segments
    out = run_cli(project.root, "scorecard", "--segment", "platform=ios", "--format", "json")
    assert out.returncode == 0, out.stderr
    card = json.loads(out.stdout)
    card_rows = card["rows"] if isinstance(card, dict) else card
    ios = {(r["metric"], str(r["period_start"])): r["value"] for r in rows
           if r["dimension"] == "platform" and r["segment"] == "ios" and r["grain"] == "week"}
    assert card_rows and all(close(r["value"], ios[(r["metric"], str(r["period_start"]))]) for r in card_rows)
    assert {r["metric"] for r in card_rows} <= CUT
    tree = run_cli(project.root, "tree", "--segment", "platform=ios")
    assert tree.returncode == 0 and "On-time orders" in tree.stdout
    bad = run_cli(project.root, "scorecard", "--segment", "platform=ipad")
    assert bad.returncode == 2 and "segments of platform: android, ios, web" in bad.stderr
    assert "Traceback" not in bad.stderr


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_a_formula_broken_inside_one_segment_fails_the_build(demo_project: Path, warehouse) -> None:
    """Orders of the dip week move from north to south in orders_enriched only: the totals still hold."""
    before = (demo_project / "target" / "segments.parquet").read_bytes()
    dip = warehouse.dip_week
    edit(demo_project / "models" / "orders_enriched.sql", "    o.region,\n",
         f"    case when o.region = 'north' and o.placed_at >= DATE '{dip}' and o.placed_at < DATE '{dip}' + 7\n"
         "         then 'south' else o.region end as region,\n")
    with pytest.raises(TreeError) as caught:
        api.build(api.load(demo_project))
    message = str(caught.value)
    assert "formula of 'on_time_orders' does not hold in segment region=" in message
    assert f"month {dip.replace(day=1)}" in message
    assert message.startswith("metrics/on_time_orders.sql:")
    assert (demo_project / "target" / "segments.parquet").read_bytes() == before
    out = run_cli(demo_project, "build")
    assert out.returncode == 1 and "region=" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("change, where, message", [
    (("metrics/support_tickets_per_order.sql", "ceiling=0.08", "ceiling=0.08, dimensions=['region']"),
     "metrics/support_tickets_per_order.sql:1", "column 'region' is not in the FROM of the query that returns "
                                                  "period_start (orders: orders, period_start; tickets: period_start, tickets)"),
    (("metrics/new_customers.sql", "dimensions=['region', 'platform']", "dimensions=['regoin']"),
     "metrics/new_customers.sql:1", "unknown dimension 'regoin'"),
    (("dimensions.yml", "expression: platform", "expression: case when platform then"),
     "dimensions.yml:10", "dimension 'platform': cannot parse expression"),
    (("dimensions.yml", "expression: platform", "expression: platform - 1"),  # parses, but DuckDB cannot bind it
     "metrics/avg_delivery_minutes_late.sql:1",
     "dimension 'platform' cannot cut avg_delivery_minutes_late: DuckDB rejects the query: Binder Error"),
])
def test_dimension_compile_errors(demo_project: Path, change, where, message) -> None:
    path, old, new = change
    edit(demo_project / path, old, new)
    with pytest.raises(CompileError) as caught:
        api.compile_project(api.load(demo_project))
    assert str(caught.value).startswith(where + ":"), str(caught.value)
    assert message in str(caught.value)
    out = run_cli(demo_project, "compile")
    assert out.returncode == 1 and where in out.stderr and "Traceback" not in out.stderr
    assert "hint:" in out.stderr


def test_a_formula_child_without_the_parents_dimension_leaves_that_cut_unchecked(demo_project: Path) -> None:
    edit(demo_project / "metrics" / "on_time_rate.sql", "dimensions=['region', 'platform']", "dimensions=['region']")
    api.build(api.load(demo_project))
    rows = read_segments(api.load(demo_project)).to_pylist()
    contributions = {(r["metric"], r["dimension"]) for r in rows if r["contribution"] is not None}
    assert ("ordering_customers", "region") in contributions
    assert not any(d == "platform" for _, d in contributions)  # no formula per platform segment: on_time_rate is not cut


def test_the_cardinality_guard_keeps_the_top_n_and_recomputes_other(demo_project: Path, warehouse) -> None:
    """A user id as a dimension: the 3 users with most orders, and '(other)' computed exactly from the rest."""
    with (demo_project / "dimensions.yml").open("a") as f:
        f.write("  - name: customer\n    expression: user_id\n    label: Customer\n    max_segments: 3\n")
    edit(demo_project / "metrics" / "items_per_order.sql", "dimensions=['region', 'platform']",
         "dimensions=['region', 'platform', 'customer']")
    api.build(api.load(demo_project))
    project = api.load(demo_project)
    rows = [r for r in read_segments(project).to_pylist() if r["dimension"] == "customer"]
    con = duckdb.connect()
    top = [str(u) for u, _ in con.execute("""
        SELECT user_id, count(*) FROM (SELECT DISTINCT event_id, user_id, event_type
                                       FROM read_parquet($glob, hive_partitioning = true))
        WHERE event_type = 'order_placed' GROUP BY 1 ORDER BY 2 DESC, CAST(user_id AS VARCHAR) LIMIT 3""",
        {"glob": events_glob(warehouse)}).fetchall()]
    assert {r["segment"] for r in rows} == {*top, "(other)"}
    assert {r["metric"] for r in rows} == {"items_per_order"}
    other = dict(con.execute("""
        WITH e AS (SELECT DISTINCT event_id, user_id, event_type, occurred_at, items
                   FROM read_parquet($glob, hive_partitioning = true))
        SELECT CAST(occurred_at AS DATE) - CAST(isodow(occurred_at) - 1 AS INTEGER), sum(items) / count(*)
        FROM e WHERE event_type = 'order_placed' AND CAST(user_id AS VARCHAR) NOT IN (SELECT unnest($top))
        GROUP BY 1""", {"glob": events_glob(warehouse), "top": top}).fetchall())
    got = {r["period_start"]: r["value"] for r in rows if r["segment"] == "(other)" and r["grain"] == "week"}
    assert other and all(close(got[p], v) for p, v in other.items())
    assert all(r["is_other"] == (r["segment"] == "(other)") for r in rows)


def test_no_dimensions_no_segment_table(demo_project: Path) -> None:
    (demo_project / "dimensions.yml").unlink()
    for path in (demo_project / "metrics").glob("*.sql"):
        text = path.read_text()
        for old in (",\n          dimensions=['region', 'platform']", "    dimensions=['region', 'platform'],\n"):
            text = text.replace(old, "")
        path.write_text(text)
    shutil.rmtree(demo_project / "target" / ".cache", ignore_errors=True)
    result = api.build(api.load(demo_project))
    assert result.scorecard_rows > 0
    assert not (demo_project / "target" / "segments.parquet").exists()


def test_explain_inside_one_segment(built_demo, segments, warehouse) -> None:
    """explain --segment region=north: the North Star's change inside the segment, split by its formula inputs."""
    project, _ = built_demo
    _, _, rows = segments
    out = run_cli(project.root, "explain", "--segment", "region=north", "--period", str(warehouse.dip_week),
                  "--format", "json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    north = {r["metric"]: r for r in rows if r["dimension"] == "region" and r["segment"] == "north"
             and r["grain"] == "week" and str(r["period_start"]) == str(warehouse.dip_week)}
    nsm = north["on_time_orders"]
    assert payload["segment"] == "region=north" and payload["segments"] is None
    assert f"On-time orders (North Star) fell from {nsm['previous_value']:,.0f} to {nsm['value']:,.0f}" in payload["text"]
    assert "% of orders delivered on time (on_time_rate)" in payload["text"]
