"""Selectors with dbt's meanings, checked on the demo's DAG against the examples of dbt's docs
(docs.getdbt.com: "Graph operators", "Set operators", "Node selector methods")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_errors import edit, run_cli

from northstar_pipeline import api
from northstar_pipeline.build.plan import parse_selectors, plan_layers
from northstar_pipeline.errors import UsageError

# The demo's DAG, written out by hand from the ref()/source() calls of its files.
STAGING = {"stg_events", "stg_deliveries", "stg_orders", "stg_pushes", "stg_sessions", "stg_signups", "stg_tickets",
           "stg_payments"}
MODELS = STAGING | {"orders_enriched", "orders_with_previous"}
METRICS = {"on_time_orders", "on_time_rate", "ordering_customers", "orders_per_customer", "items_per_order",
           "avg_delivery_minutes_late", "new_customers", "push_click_through_rate", "search_to_cart_rate",
           "support_tickets_per_order", "revenue", "retention_4w"}
BELOW_STG_ORDERS = {"orders_enriched", "on_time_orders", "on_time_rate", "items_per_order", "ordering_customers",
                    "orders_per_customer", "support_tickets_per_order", "orders_with_previous", "retention_4w"}
BELOW_STG_DELIVERIES = {"orders_enriched", "on_time_orders", "on_time_rate", "avg_delivery_minutes_late"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, built_demo) -> Path:
    """The demo with tags: `ops` on the delivery chain (a model and two metrics)."""
    root = tmp_path_factory.mktemp("selectors") / "project"
    shutil.copytree(built_demo[0].root, root)
    edit(root / "models" / "stg_deliveries.sql", "{{ config(", "{{ config(tags=['ops'], ")
    edit(root / "metrics" / "on_time_rate.sql", "target=0.92", "target=0.92, tags=['ops', 'daily']")
    edit(root / "metrics" / "avg_delivery_minutes_late.sql", "unit='minutes'", "unit='minutes', tags=['ops']")
    return root


@pytest.fixture(scope="module")
def manifest(project: Path):
    return api.compile_project(api.load(project))


def chosen(manifest, *select: str, exclude: tuple[str, ...] = ()) -> set[str]:
    return {n.name for n in plan_layers(manifest, parse_selectors(select), parse_selectors(exclude)).nodes}


# -- graph operators --------------------------------------------------------------------------------


def test_plus_operator(manifest) -> None:
    # "my_model+": it and all descendants; "+my_model": it and all ancestors; both sides: both
    assert chosen(manifest, "stg_orders+") == {"stg_orders"} | BELOW_STG_ORDERS
    assert chosen(manifest, "+on_time_rate") == {"on_time_rate", "orders_enriched", "stg_deliveries", "stg_orders",
                                                 "stg_events"}
    assert chosen(manifest, "+orders_enriched+") == {"orders_enriched", "stg_deliveries", "stg_orders", "stg_events",
                                                     "on_time_orders", "on_time_rate"}


def test_n_plus_operator(manifest) -> None:
    # "my_model+1": it and its first-degree descendants
    assert chosen(manifest, "stg_events+1") == STAGING - {"stg_payments"}  # that one reads billing.payments
    # "2+my_model": it, its parents and its grandparents
    assert chosen(manifest, "2+on_time_orders") == {"on_time_orders", "orders_enriched", "stg_deliveries", "stg_orders"}
    # "3+my_model+4": ancestors up to the 3rd degree, descendants down to the 4th
    assert chosen(manifest, "1+stg_orders+1") == {"stg_events", "stg_orders"} | (BELOW_STG_ORDERS - {"on_time_orders",
                                                                                                      "on_time_rate",
                                                                                                      "retention_4w"})


def test_at_operator(manifest) -> None:
    # "@my_model": it, its descendants, and the ancestors of its descendants
    assert chosen(manifest, "@stg_deliveries") == {"stg_deliveries", "stg_events", "stg_orders"} | BELOW_STG_DELIVERIES


# -- set operators ----------------------------------------------------------------------------------


def test_union_by_space_or_repeated_option(manifest) -> None:
    # "+snowplow_sessions +fct_orders": both, each with its ancestors
    expected = {"on_time_rate", "orders_enriched", "stg_deliveries", "stg_orders", "stg_events", "new_customers",
                "stg_signups"}
    assert chosen(manifest, "+on_time_rate +new_customers") == expected
    assert chosen(manifest, "+on_time_rate", "+new_customers") == expected


def test_intersection_by_comma(manifest) -> None:
    # "+snowplow_sessions,+fct_orders": the common ancestors
    assert chosen(manifest, "+on_time_rate,+items_per_order") == {"stg_orders", "stg_events"}
    # "stg_invoices+,stg_accounts+": the common descendants
    assert chosen(manifest, "stg_orders+,stg_deliveries+") == {"orders_enriched", "on_time_orders", "on_time_rate"}
    # "marts.finance,tag:nightly": in a folder and tagged
    assert chosen(manifest, "path:metrics/,tag:ops") == {"on_time_rate", "avg_delivery_minutes_late"}
    assert chosen(manifest, "tag:ops,kind:metric") == {"on_time_rate", "avg_delivery_minutes_late"}
    assert chosen(manifest, "tag:ops,kind:metric tag:daily") == {"on_time_rate", "avg_delivery_minutes_late"}
    assert chosen(manifest, "stg_*,orders*") == set()  # nothing is both: a fine, empty answer


def test_exclude(manifest) -> None:
    assert chosen(manifest, "stg_*", exclude=("stg_events",)) == STAGING - {"stg_events"}
    assert chosen(manifest, "kind:metric", exclude=("tag:ops,kind:metric",)) == METRICS - {"on_time_rate",
                                                                                          "avg_delivery_minutes_late"}


# -- methods ----------------------------------------------------------------------------------------


def test_methods(manifest) -> None:
    assert chosen(manifest, "stg_*") == STAGING  # Unix wildcards in names
    assert chosen(manifest, "*_rate") == {"on_time_rate", "push_click_through_rate", "search_to_cart_rate"}
    assert chosen(manifest, "stg_[ot]*") == {"stg_orders", "stg_tickets"}
    assert chosen(manifest, "tag:ops") == {"stg_deliveries", "on_time_rate", "avg_delivery_minutes_late"}
    assert chosen(manifest, "kind:model") == MODELS and chosen(manifest, "resource_type:metric") == METRICS
    assert chosen(manifest, "kind:seed") == {"targets"}
    assert chosen(manifest, "path:metrics/") == METRICS == chosen(manifest, "path:metrics")
    assert chosen(manifest, "models/stg_orders.sql") == {"stg_orders"}  # a bare path is the path method
    assert chosen(manifest, "path:models/stg_*.sql") == STAGING
    assert chosen(manifest, "file:stg_orders.sql") == {"stg_orders"}
    # sources are views here, not nodes: source:raw is what reads it, + adds what reads that
    assert chosen(manifest, "source:raw") == {"stg_events"} == chosen(manifest, "source:raw.events")
    assert chosen(manifest, "source:raw+") == (MODELS | METRICS) - {"stg_payments", "revenue"}
    assert chosen(manifest, "source:billing+") == {"stg_payments", "revenue"}
    assert chosen(manifest, "config.owner:Engagement") == {"orders_per_customer", "push_click_through_rate"}
    assert chosen(manifest, "config.owner:Logistics*") == {"on_time_rate", "avg_delivery_minutes_late"}
    assert chosen(manifest, "config.materialized:incremental") == {  # dbt's own example
        "stg_events", "stg_orders", "stg_deliveries", "stg_signups", "stg_tickets", "orders_enriched", "stg_payments",
        "orders_with_previous"}
    assert chosen(manifest, "config.kind:counter") == {"support_tickets_per_order"}
    assert chosen(manifest, "config.warn_change_pct:3") == {"support_tickets_per_order"}
    assert chosen(manifest, "config.tags:daily") == {"on_time_rate"}


@pytest.mark.parametrize("word, words", [
    ("nope", "matches no node"),
    ("config.owner:Nobody", "matches no node"),
    ("@+stg_orders", "cannot read selector"),
    ("state:gone", "unknown state selector"),
])
def test_bad_selectors(manifest, word: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        chosen(manifest, word)


# -- through the command line -----------------------------------------------------------------------


def test_ls_output_name_round_trips_and_ls_excludes(project: Path) -> None:
    listed = run_cli(project, "ls", "--select", "tag:ops+,kind:metric", "--exclude", "on_time_orders",
                     "--output", "name")
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.split()
    assert set(names) == {"on_time_rate", "avg_delivery_minutes_late"}
    again = run_cli(project, "ls", "--select", " ".join(names), "--output", "name")
    assert again.stdout.split() == names
    everything = run_cli(project, "ls", "--output", "name").stdout.split()
    back = run_cli(project, "ls", *[a for name in everything for a in ("-s", name)], "--output", "name")
    assert back.stdout.split() == everything and len(everything) == len(MODELS | METRICS) + 1
    table = run_cli(project, "ls", "-s", "stg_pushes+")  # the default output stays kind and relation
    assert [line.split() for line in table.stdout.splitlines()] == [["model", "staging.stg_pushes"],
                                                                    ["metric", "inputs_l2.push_click_through_rate"]]
