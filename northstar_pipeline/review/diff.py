"""Compare the project at two git revisions: what changed in its definitions, and how its numbers move.

Both sides are compiled, and (unless asked not to) built into a scratch directory on the
same data: relative source locations resolve against the working copy, so the only
difference between the two scorecards is the project's own code. The user's target/
and warehouse are never touched.
"""

from __future__ import annotations

import difflib
import math
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.diff import Insert, Remove

from northstar_pipeline.build import pipeline
from northstar_pipeline.build.plan import descendants, node_fingerprints
from northstar_pipeline.build.publish import manifest_payload
from northstar_pipeline.errors import NorthstarError
from northstar_pipeline.review.gitrev import describe_revision, export_revision
from northstar_pipeline.types import CompiledNode, Manifest, NodeKind, Project

REL_TOL = 1e-9  # values closer than this are the same number (float noise across plans)
_CLAUSES = (exp.Select, exp.Where, exp.Having, exp.Group, exp.Order, exp.Join, exp.From, exp.Qualify, exp.With,
            exp.Union, exp.Subquery, exp.CTE)


@dataclass(frozen=True, slots=True)
class NodeChange:
    name: str
    kind: str  # model | metric | seed
    status: str  # added | removed | modified | comments (formatting or comments only) | config
    removed_sql: tuple[str, ...] = ()  # clauses only in the base's compiled SQL
    added_sql: tuple[str, ...] = ()  # clauses only in the head's
    config_changes: tuple[tuple[str, Any, Any], ...] = ()  # (key, before, after)
    sql_diff: str = ""  # unified diff of the compiled SQL (a metric's first grain)
    downstream: tuple[str, ...] = ()  # metrics that read it, directly or not (head's graph, else base's)


@dataclass(frozen=True, slots=True)
class PeriodValues:
    period_start: str
    is_complete: bool
    before: float | None
    after: float | None

    @property
    def moved(self) -> bool:
        return not _same(self.before, self.after)


@dataclass(frozen=True, slots=True)
class MetricNumbers:
    metric: str
    label: str
    kind: str
    periods: tuple[PeriodValues, ...]  # newest first
    status_before: str | None
    status_after: str | None

    @property
    def moved(self) -> bool:
        return any(p.moved for p in self.periods) or self.status_before != self.status_after


@dataclass(frozen=True, slots=True)
class DiffReport:
    base: str
    head: str
    changes: tuple[NodeChange, ...]
    grain: str | None = None
    as_of: str | None = None
    numbers: tuple[MetricNumbers, ...] | None = None  # None: not built (--no-build)


def diff_project(project_dir: Path | str, base: str, head: str | None = None, *,
                 profiles_dir: Path | str | None = None, target: str | None = None,
                 vars: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                 build: bool = True, grain: str | None = None, periods: int = 4) -> DiffReport:
    """Compare ``base`` with ``head`` (a revision, or the working tree when None)."""
    project_dir = Path(project_dir).resolve()
    options = {"profiles_dir": profiles_dir, "target": target, "vars": vars, "environ": environ}
    labels = (describe_revision(project_dir, base), describe_revision(project_dir, head) if head else "working tree")
    with tempfile.TemporaryDirectory(prefix="northstar-diff-") as scratch:
        sides, manifests = [], []
        for name, revision, label in (("base", base, labels[0]), ("head", head, labels[1])):
            with _on_side(label):
                sides.append(_side(project_dir, revision, Path(scratch) / name, options))
                manifests.append(pipeline.compile_project(sides[-1], environ=environ))
        changes = compare_manifests(*manifests)
        chosen = grain or sides[1].grains[0].value
        report = DiffReport(base=labels[0], head=labels[1], changes=changes, grain=chosen,
                            as_of=manifests[1].as_of.isoformat(sep=" ") if manifests[1].as_of else None)
        if not build:
            return report
        for side, label in zip(sides, labels, strict=True):
            with _on_side(label):
                pipeline.build(side, environ=environ)
        numbers = compare_scorecards(sides[0].scorecard_path, sides[1].scorecard_path, chosen, periods)
        return replace(report, numbers=numbers)


@contextmanager
def _on_side(label: str) -> Iterator[None]:
    """Say which side an error comes from: its file paths are the same on both."""
    try:
        yield
    except NorthstarError as error:
        error.message = f"at {label}: {error.message}"
        raise


def _side(project_dir: Path, revision: str | None, scratch: Path, options: dict) -> Project:
    """The project at ``revision`` (the working tree when None), building into ``scratch`` on the working copy's data."""
    root = export_revision(project_dir, revision, scratch / "src") if revision else project_dir
    project = pipeline.load(root, **options)
    work = scratch / "target"
    return replace(
        project,
        sources=tuple(replace(s, location=_rebase(s.location, root, project_dir)) for s in project.sources),
        target=replace(project.target, database=work / "diff.duckdb", temp_directory=None),
        target_dir=work,
        scorecard_path=work / "scorecard.parquet",
        history_path=None, bi_path=None,  # a scratch build records nothing in the user's history or BI file
    )


def _rebase(location: str, root: Path, project_dir: Path) -> str:
    try:
        return str(project_dir / Path(location).relative_to(root))
    except ValueError:
        return location  # absolute, outside the project: the same for both sides


def compare_manifests(base: Manifest, head: Manifest) -> tuple[NodeChange, ...]:
    """Added, removed and modified nodes, in the head's build order (removed ones last)."""
    before, after = {n.name: n for n in base.nodes}, {n.name: n for n in head.nodes}
    payloads = [manifest_payload(m) for m in (base, head)]
    prints = [node_fingerprints(p) for p in payloads]
    configs = [{n: node["config"] for n, node in p["nodes"].items()} for p in payloads]
    changes = []
    for name in [*after, *(n for n in before if n not in after)]:
        old, new = before.get(name), after.get(name)
        node = new or old
        downstream = _downstream(name, head if new else base)
        if old is None or new is None:
            changes.append(NodeChange(name, node.kind.value, "added" if old is None else "removed",
                                      downstream=downstream))
            continue
        if prints[0][name] == prints[1][name]:
            continue
        config_changes = tuple(
            (key, configs[0][name].get(key), configs[1][name].get(key))
            for key in sorted((set(configs[0][name]) | set(configs[1][name])) - {"line"})
            if configs[0][name].get(key) != configs[1][name].get(key))
        removed, added, text = _seed_changes(old, new) if node.kind is NodeKind.SEED else _sql_changes(old, new)
        if old.definition_hash == new.definition_hash:
            status = "config"
        elif not removed and not added:
            status = "comments"
        else:
            status = "modified"
        changes.append(NodeChange(name, node.kind.value, status, removed, added, config_changes, text, downstream))
    return tuple(changes)


def compare_scorecards(base: Path, head: Path, grain: str, periods: int) -> tuple[MetricNumbers, ...]:
    """Per metric, the latest ``periods`` periods of ``grain`` before and after, in the head's tree order."""
    con = duckdb.connect(":memory:")
    try:
        rows = con.execute("""
            WITH b AS (SELECT * FROM read_parquet($base) WHERE grain = $grain),
                 h AS (SELECT *, row_number() OVER () AS position FROM read_parquet($head) WHERE grain = $grain),
                 joined AS (
                    SELECT coalesce(h.metric, b.metric) AS metric, coalesce(h.label, b.label) AS label,
                           coalesce(h.kind, b.kind) AS kind, coalesce(h.period_start, b.period_start) AS period_start,
                           coalesce(h.is_complete, b.is_complete) AS is_complete, b.value AS before,
                           h.value AS after, b.status AS status_before, h.status AS status_after,
                           min(h.position) OVER (PARTITION BY coalesce(h.metric, b.metric)) AS position
                    FROM b FULL JOIN h USING (metric, grain, period_start))
            SELECT metric, label, kind, CAST(period_start AS VARCHAR), is_complete, before, after,
                   status_before, status_after
            FROM joined
            QUALIFY row_number() OVER (PARTITION BY metric ORDER BY period_start DESC) <= $periods
            ORDER BY position NULLS LAST, metric, period_start DESC
        """, {"base": str(base), "head": str(head), "grain": grain, "periods": periods}).fetchall()
    finally:
        con.close()
    by_metric: dict[str, list[tuple]] = {}
    for row in rows:  # at most metrics x periods rows: the scorecard, not events
        by_metric.setdefault(row[0], []).append(row)
    return tuple(
        MetricNumbers(metric=metric, label=group[0][1], kind=group[0][2],
                      periods=tuple(PeriodValues(r[3], r[4], r[5], r[6]) for r in group),
                      status_before=group[0][7], status_after=group[0][8])
        for metric, group in by_metric.items())


def _sql_changes(old: CompiledNode, new: CompiledNode) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """The clauses each side has that the other does not (comments ignored), and a unified diff."""
    old_sql, new_sql = _display_sql(old), _display_sql(new)
    old_ast, new_ast = (sqlglot.parse_one(sql, read="duckdb") for sql in (old_sql, new_sql))
    if old_ast == new_ast:  # sqlglot's equality ignores comments
        return (), (), ""
    removed: dict[str, None] = {}
    added: dict[str, None] = {}
    for edit in sqlglot.diff(old_ast, new_ast, delta_only=True):
        if isinstance(edit, Remove):
            removed[_clause(edit.expression).sql("duckdb")] = None
        elif isinstance(edit, Insert):
            added[_clause(edit.expression).sql("duckdb")] = None
        else:  # Update and Move: the source was in the base, the target is in the head
            source, target = getattr(edit, "source", None), getattr(edit, "target", None)
            if source is not None:
                removed[_clause(source).sql("duckdb")] = None
            if target is not None:
                added[_clause(target).sql("duckdb")] = None
    both = set(removed) & set(added)  # a clause moved or rebuilt as it was
    text = "".join(difflib.unified_diff(old_sql.splitlines(keepends=True), new_sql.splitlines(keepends=True),
                                        fromfile=f"a/{old.relpath.as_posix()}", tofile=f"b/{new.relpath.as_posix()}"))
    return (tuple(s for s in removed if s not in both), tuple(s for s in added if s not in both), text)


def _seed_changes(old: CompiledNode, new: CompiledNode) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """A seed is its CSV: the rows only one side has, and the file's unified diff."""
    old_lines, new_lines = (n.path.read_text().splitlines(keepends=True) for n in (old, new))
    gone, came = set(old_lines) - set(new_lines), set(new_lines) - set(old_lines)
    text = "".join(difflib.unified_diff(old_lines, new_lines, fromfile=f"a/{old.relpath.as_posix()}",
                                        tofile=f"b/{new.relpath.as_posix()}"))
    return (tuple(line.rstrip("\n") for line in old_lines if line in gone),
            tuple(line.rstrip("\n") for line in new_lines if line in came), text)


def _display_sql(node: CompiledNode) -> str:
    """A metric's first grain (the template once, not the union of every grain); a model's whole SQL."""
    if node.kind is NodeKind.METRIC and node.grain_sql:
        return node.grain_sql[0][1]
    return sqlglot.transpile(node.sql, read="duckdb", write="duckdb", pretty=True)[0] if node.sql else ""


def _clause(node: exp.Expression) -> exp.Expression:
    """The smallest whole clause around an edited expression: a projection, a condition, a join."""
    while node.parent is not None and not isinstance(node.parent, _CLAUSES):
        node = node.parent
    return node


def _downstream(name: str, manifest: Manifest) -> tuple[str, ...]:
    below = descendants(manifest, name)
    return tuple(n.name for n in manifest.nodes if n.kind is NodeKind.METRIC and n.name in below)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
