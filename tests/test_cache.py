"""The compile cache reuses what did not change and never serves a stale result."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_errors import edit

from northstar_pipeline import api
from northstar_pipeline.build import compiling
from northstar_pipeline.errors import CompileError

ITEMS = "metrics/items_per_order.sql"


def compiled(root: Path, relpath: str) -> str:
    return (root / "target" / "compiled" / "duckdb" / relpath).read_text()


def test_warm_compile_equals_cold(demo_project: Path) -> None:
    cold = api.compile_project(api.load(demo_project))
    warm = api.compile_project(api.load(demo_project))
    assert [(n.name, n.sql, n.columns, n.definition_hash) for n in warm.nodes] == \
        [(n.name, n.sql, n.columns, n.definition_hash) for n in cold.nodes]
    assert (demo_project / "target" / ".cache" / "compile.json").is_file()


def test_a_warm_compile_compiles_no_node_again(demo_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every node is served from the cache, metrics cut by dimensions included (their segment queries are
    cached values too: they were not, and every dimensioned metric recompiled on every run)."""
    cold = api.compile_project(api.load(demo_project))
    assert any(n.segment_sql for n in cold.nodes)
    compiled_again: list[str] = []
    original = compiling.compile_node
    monkeypatch.setattr(compiling, "compile_node",
                        lambda node, *a, **k: compiled_again.append(node.name) or original(node, *a, **k))
    warm = api.compile_project(api.load(demo_project))
    assert compiled_again == []
    assert [(n.name, n.sql, n.segment_sql, n.segment_cut) for n in warm.nodes] == \
        [(n.name, n.sql, n.segment_sql, n.segment_cut) for n in cold.nodes]


def test_upstream_column_change_reaches_cached_downstream(demo_project: Path) -> None:
    api.compile_project(api.load(demo_project))
    edit(demo_project / "models/stg_orders.sql", "    items,", "    items as item_count,")
    with pytest.raises(CompileError) as info:
        api.compile_project(api.load(demo_project))
    assert "unknown column" in info.value.message and "items" in info.value.message  # not served from the cache


def test_var_change_re_renders(demo_project: Path) -> None:
    api.compile_project(api.load(demo_project))
    assert "to_minutes(0)" in compiled(demo_project, "models/stg_deliveries.sql").lower()
    api.compile_project(api.load(demo_project, vars={"on_time_grace_minutes": 5}))
    assert "to_minutes(5)" in compiled(demo_project, "models/stg_deliveries.sql").lower()


def test_env_var_change_re_renders(demo_project: Path) -> None:
    path = demo_project / ITEMS
    path.write_text(path.read_text().replace("group by 1", "where items >= {{ env_var('MIN_ITEMS', '1') }}\ngroup by 1"))
    api.compile_project(api.load(demo_project), environ={})
    assert "items >= 1" in compiled(demo_project, ITEMS)
    api.compile_project(api.load(demo_project), environ={"MIN_ITEMS": "3"})
    assert "items >= 3" in compiled(demo_project, ITEMS)


def test_removed_ref_target_is_an_error_not_a_cache_hit(demo_project: Path) -> None:
    api.compile_project(api.load(demo_project))
    (demo_project / "models" / "stg_signups.sql").unlink()
    with pytest.raises(Exception) as info:
        api.compile_project(api.load(demo_project))
    assert "unknown ref 'stg_signups'" in str(info.value)


def test_damaged_cache_is_a_cold_start(demo_project: Path) -> None:
    api.compile_project(api.load(demo_project))
    (demo_project / "target" / ".cache" / "compile.json").write_bytes(b"not a cache")
    manifest = api.compile_project(api.load(demo_project))
    assert len(manifest.nodes) > 10
