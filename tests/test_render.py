"""Rendering in the sandbox: helpers, line mapping, config validation, and what templates may not do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from northstar_pipeline import api
from northstar_pipeline.build.render import _line_map, render_project
from northstar_pipeline.errors import CompileError, ProjectError, RenderError

STARTER = Path(__file__).resolve().parent.parent / "northstar_pipeline" / "demo" / "starter"


@pytest.fixture
def starter(tmp_path: Path, warehouse) -> Path:
    root = tmp_path / "starter"
    shutil.copytree(STARTER, root)
    text = (root / "profiles.yml").read_text().replace("events_path: data/warehouse/events",
                                                       f"events_path: {warehouse.events_dir}")
    (root / "profiles.yml").write_text(text)
    return root


def write_metric(root: Path, name: str, body: str) -> Path:
    path = root / "metrics" / f"{name}.sql"
    path.write_text(body)
    return path


def test_period_renders_per_grain(starter: Path) -> None:
    nodes = {n.name: n for n in render_project(api.load(starter))}
    week, month, coverage = nodes["weekly_orders"].queries
    assert "DATE_TRUNC('WEEK', placed_at)" in week.sql
    assert "DATE_TRUNC('MONTH', placed_at)" in month.sql
    # the coverage rendering: the days the data covers (a period not covered from its first day is partial)
    assert coverage.coverage and "DATE_TRUNC('DAY', placed_at)" in coverage.sql
    assert '"__ref__"."stg_orders"' in week.sql


def test_macros_are_callable(starter: Path) -> None:
    nodes = {n.name: n for n in render_project(api.load(starter))}
    assert "NULLIF(COUNT(DISTINCT USER_ID), 0)" in nodes["orders_per_customer"].queries[0].sql.upper()


@pytest.mark.parametrize("payload", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ config.__globals__ }}",
    "{{ ref.__code__ }}",
])
def test_sandbox_blocks_attribute_escapes(starter: Path, payload: str) -> None:
    write_metric(starter, "evil", "{{ config(kind='input', parent='weekly_orders') }}\n" + payload + "\nselect 1")
    with pytest.raises(RenderError) as info:
        render_project(api.load(starter))
    assert info.value.path == Path("metrics/evil.sql") and info.value.line == 2


def test_no_file_system_access(starter: Path) -> None:
    write_metric(starter, "evil", "{{ config(kind='input', parent='weekly_orders') }}\n{% include '/etc/passwd' %}\n")
    with pytest.raises(RenderError) as info:
        render_project(api.load(starter))
    assert info.value.line == 2


def test_unknown_config_key_suggests(starter: Path) -> None:
    write_metric(starter, "m", "\n{{ config(kind='input', parnt='weekly_orders') }}\nselect 1")
    with pytest.raises(RenderError) as info:
        render_project(api.load(starter))
    assert info.value.line == 2 and "did you mean 'parent'" in str(info.value)


def test_input_without_parent(starter: Path) -> None:
    write_metric(starter, "m", "{{ config(kind='input') }}\nselect 1")
    with pytest.raises(RenderError, match="needs parent"):
        render_project(api.load(starter))


def test_var_precedence_and_missing_var(starter: Path) -> None:
    write_metric(starter, "m", "{{ config(kind='input', parent='weekly_orders') }}\n-- {{ var('x') }}\nselect 1")
    with pytest.raises(RenderError) as info:
        render_project(api.load(starter))
    assert info.value.line == 2 and "variable 'x' is not set" in str(info.value)
    nodes = {n.name: n for n in render_project(api.load(starter, vars={"x": "from-cli"}))}
    assert "-- from-cli" in nodes["m"].queries[0].sql


def test_errors_point_at_template_lines_after_multiline_tags(starter: Path) -> None:
    """A multi-line config() renders to nothing; the error must still name the template line."""
    write_metric(starter, "m", (
        "{{ config(\n    kind='input',\n    parent='weekly_orders',\n) }}\n"
        "select\n    {{ period('placed_at') }} as period_start,\n    count(nope) as value\n"
        "from {{ ref('stg_orders') }}\ngroup by 1\n"))
    project = api.load(starter)
    with pytest.raises(CompileError) as info:
        api.compile_project(project)
    assert (info.value.line, info.value.col) == (7, 11)
    assert "unknown column 'nope'" in info.value.message


def test_table_outside_ref_is_rejected(starter: Path) -> None:
    write_metric(starter, "m", "{{ config(kind='input', parent='weekly_orders') }}\n"
                               "select current_date as period_start, 1 as value\nfrom staging.stg_orders\n")
    with pytest.raises(CompileError) as info:
        api.compile_project(api.load(starter))
    assert info.value.line == 3 and "ref(" in (info.value.hint or "")


def test_contract_types_checked(starter: Path) -> None:
    write_metric(starter, "m", "{{ config(kind='input', parent='weekly_orders') }}\n"
                               "select {{ period('placed_at') }} as period_start, 'x' as value\n"
                               "from {{ ref('stg_orders') }}\n")
    with pytest.raises(CompileError, match="value must be numeric"):
        api.compile_project(api.load(starter))


def test_env_var_default_and_override(starter: Path) -> None:
    # A database outside the project needs a trusted profiles.yml (--profiles-dir): README, Threat model.
    project = api.load(starter, profiles_dir=starter,
                       environ={"NORTHSTAR_TARGET": "prod", "NORTHSTAR_PROD_DB": "/tmp/x.duckdb"})
    assert project.target.name == "prod" and str(project.target.database) == "/tmp/x.duckdb"
    inside = api.load(starter, environ={"NORTHSTAR_TARGET": "prod", "NORTHSTAR_PROD_DB": "target/x.duckdb"})
    assert inside.target.database == starter.resolve() / "target" / "x.duckdb"
    assert api.load(starter, environ={}).target.name == "dev"


def test_missing_profiles(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no profiles.yml"):
        api.load(tmp_path)


def test_line_map_aligns_unchanged_lines() -> None:
    template = "{{ config(\n  kind='x'\n) }}\nselect a\nfrom {{ ref('t') }}\nwhere b\n"
    rendered = "\nselect a\nfrom \"__ref__\".\"t\"\nwhere b\n"
    assert _line_map(template, rendered) == (1, 4, 5, 6)  # the residue of config() belongs to its block
