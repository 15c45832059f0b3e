"""Bind the to-date window into a compiled manifest: the step after the (as-of free) cached compile.

The render and compile caches hold metric SQL whose to-date window is placeholders
(project/to_date.py), so a night's new as-of reuses every cached node. This step puts the
night's dates in, with a sqlglot transform, so the SQL texts that run as they are and that people
read (target/compiled/, compiled_segments/, `show`, Spark's transpile) carry the literal window:
each metric's union is parsed once, bound and kept as the node's AST (the engine then does not
parse it again), and its segment cuts' full queries are bound the same way. The cuts' night
queries (``since_sql``) already hold ``$since_<grain>`` placeholders that the segment step binds
on the parse it makes anyway (tree/segment_store.py): their window is bound there too, which
saves a parse and a print of the biggest texts every night. Volumes read only the full
renderings (no window).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import sqlglot

from northstar_pipeline.build.cache import CompileCache, cache_key
from northstar_pipeline.project.to_date import bind_to_date, partial_grains
from northstar_pipeline.types import CompiledNode, Manifest, NodeKind


def bind_manifest(manifest: Manifest, as_of: datetime | None, cache: CompileCache | None = None) -> Manifest:
    """The manifest with every metric's SQL (and AST) bound to ``as_of``'s to-date windows.

    With ``cache``, a node bound at the same as-of before keeps its bound texts from it (no parse, no print:
    at 1,000 metrics that is most of a warm compile); its AST is then parsed where it runs."""
    if not partial_grains(manifest.project.grains, as_of):
        return manifest  # nothing was rendered to date: no placeholders anywhere
    return replace(manifest, nodes=tuple(_bind_cached(n, as_of, cache) if n.kind is NodeKind.METRIC else n
                                         for n in manifest.nodes))


def _bind_cached(node: CompiledNode, as_of: datetime | None, cache: CompileCache | None) -> CompiledNode:
    if cache is None or as_of is None:
        return bind_node(node, as_of)
    cut = node.segment_cut
    key = cache_key("bound", node.sql, [q.sql for q in node.segment_sql], cut.sql if cut else None, as_of.isoformat())
    hit = cache.get(key)
    if hit is not None and len(hit) == 3 and len(hit[1]) == len(node.segment_sql):
        sql, segments, cut_sql = hit
        return replace(node, sql=sql, ast=None, segment_sql=tuple(replace(q, sql=t) for q, t in zip(node.segment_sql, segments)),
                       segment_cut=replace(cut, sql=cut_sql) if cut is not None else None)
    bound = bind_node(node, as_of)
    cache.put(key, [bound.sql, [q.sql for q in bound.segment_sql], bound.segment_cut.sql if bound.segment_cut else None])
    return bound


def bind_node(node: CompiledNode, as_of: datetime | None) -> CompiledNode:
    ast = bind_to_date(node.ast if node.ast is not None else sqlglot.parse_one(node.sql, read="duckdb"), as_of)
    cut = node.segment_cut
    if cut is not None:  # SegmentCut texts are flat, SegmentQuery.sql pretty (build/segment_cut.py, dimensions.py)
        cut = replace(cut, sql=bound_sql(cut.sql, as_of, pretty=False))
    segments = tuple(replace(q, sql=bound_sql(q.sql, as_of)) for q in node.segment_sql)
    return replace(node, sql=ast.sql("duckdb", pretty=True), ast=ast, segment_sql=segments, segment_cut=cut)


def bound_sql(sql: str, as_of: datetime | None, pretty: bool = True) -> str:
    """``sql`` with its to-date placeholders bound ("" stays "")."""
    if not sql:
        return sql
    return bind_to_date(sqlglot.parse_one(sql, read="duckdb"), as_of).sql("duckdb", pretty=pretty)
