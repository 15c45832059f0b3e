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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.diff import Insert, Keep, Remove

from northstar_pipeline.build import pipeline
from northstar_pipeline.build.plan import descendants, node_fingerprints
from northstar_pipeline.build.publish import manifest_payload
from northstar_pipeline.errors import LockedError, NorthstarError, ProjectError, UsageError
from northstar_pipeline.project.connection import connect_confined, glob_base, source_reads
from northstar_pipeline.review.categorize import BREAKING, NON_BREAKING, categorize_config, categorize_sql
from northstar_pipeline.review.gitrev import changed_files, describe_revision, export_revision
from northstar_pipeline.types import CompiledNode, Manifest, MetricConfig, NodeKind, Project

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
    category: str | None = None  # breaking | non-breaking (review/categorize.py); None: not compared
    reason: str = ""  # why that category
    affected: tuple[str, ...] = ()  # metrics whose values or place move with it, up to the North Star
    values_moved: bool | None = None  # on the same data: its own (or, for a model, any affected) values; None unbuilt


@dataclass(frozen=True, slots=True)
class PeriodValues:
    period_start: str
    is_complete: bool
    before: float | None
    after: float | None
    status_before: str | None = None
    status_after: str | None = None
    basis_before: str | None = None  # what the status was judged on: target | guardrail | trend
    basis_after: str | None = None
    change_pct_before: float | None = None  # vs the previous period (or period-to-date)
    change_pct_after: float | None = None
    target_before: float | None = None
    target_after: float | None = None

    @property
    def moved(self) -> bool:
        return not _same(self.before, self.after)

    @property
    def status_changed(self) -> bool:
        return self.status_before != self.status_after


@dataclass(frozen=True, slots=True)
class MetricNumbers:
    metric: str
    label: str
    kind: str
    periods: tuple[PeriodValues, ...]  # newest first
    status_before: str | None  # of the latest period
    status_after: str | None
    thresholds_before: str = ""  # a counter-metric's guardrail as written, e.g. "warn_change_pct=10, ..."
    thresholds_after: str = ""

    @property
    def values_moved(self) -> bool:
        return any(p.moved for p in self.periods)

    @property
    def moved(self) -> bool:
        return self.values_moved or any(p.status_changed for p in self.periods)


@dataclass(frozen=True, slots=True)
class SideError:
    """Why one side could not be compiled or built: the report carries it instead of failing."""

    side: str  # base | head
    label: str
    stage: str  # compile | build
    message: str
    location: str  # path:line[:col], or ""
    hint: str | None
    exit_code: int


@dataclass(frozen=True, slots=True)
class LintItem:
    rule: str
    severity: str
    message: str
    location: str


@dataclass(frozen=True, slots=True)
class DiffReport:
    base: str
    head: str
    changes: tuple[NodeChange, ...]
    grain: str | None = None
    as_of: str | None = None
    numbers: tuple[MetricNumbers, ...] | None = None  # None: not built (--no-build, or a side failed)
    errors: tuple[SideError, ...] = ()
    built: bool = False  # a build was asked for (not --no-build)
    new_lint: tuple[LintItem, ...] | None = None  # findings at head that base did not have; None: not linted

    @property
    def head_broken(self) -> bool:
        return any(e.side == "head" for e in self.errors)


Lint = Callable[[Project, Path, "str | None"], Iterable[Any]]


def diff_project(project_dir: Path | str, base: str, head: str | None = None, *,
                 profiles_dir: Path | str | None = None, target: str | None = None,
                 vars: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                 build: bool = True, grain: str | None = None, periods: int = 4,
                 lint: Lint | None = None) -> DiffReport:
    """Compare ``base`` with ``head`` (a revision, or the working tree when None).

    Always returns a report: a side that does not compile or build is an entry of ``errors``
    (with file:line and hint) and the definitions are then compared file by file. Only a wrong
    command line (an unknown revision, no git) raises. ``lint(project, repo_dir, revision)``
    gives a side's lint findings (the api passes analysis.lint); the new ones at head are reported.
    """
    project_dir = Path(project_dir).resolve()
    options = {"profiles_dir": profiles_dir, "target": target, "vars": vars, "environ": environ}
    labels = (describe_revision(project_dir, base), describe_revision(project_dir, head) if head else "working tree")
    revisions = (base, head)
    errors: list[SideError] = []
    with tempfile.TemporaryDirectory(prefix="northstar-diff-") as scratch:
        sides: list[Project | None] = []
        manifests: list[Manifest | None] = []
        for name, revision, label in zip(("base", "head"), revisions, labels, strict=True):
            side = manifest = None
            try:
                with _on_side(label):
                    side = _side(project_dir, revision, Path(scratch) / name, options)
                    manifest = pipeline.compile_project(side, environ=environ)
            except (UsageError, LockedError):
                raise
            except NorthstarError as error:
                errors.append(_side_error(name, label, "compile", error))
            sides.append(side)
            manifests.append(manifest)
        if sides[0] is not None and sides[1] is not None and manifests[1] is not None:
            try:  # the change under review reads only where the base reads, or inside the project
                check_head_reads(sides[0], sides[1], project_dir, labels[1])
            except ProjectError as error:
                errors.append(_side_error("head", labels[1], "compile", error))
                manifests[1] = None
        if manifests[0] is not None and manifests[1] is not None:
            changes = compare_manifests(manifests[0], manifests[1])
        else:
            changes = _file_changes(project_dir, base, head, manifests[0] or manifests[1])
        chosen = grain or next((s.grains[0].value for s in (sides[1], sides[0]) if s is not None), None)
        head_manifest = manifests[1] or manifests[0]
        report = DiffReport(base=labels[0], head=labels[1], changes=changes, grain=chosen,
                            as_of=head_manifest.as_of.isoformat(sep=" ") if head_manifest and head_manifest.as_of
                            else None, built=build)
        built = [False, False]
        if build:
            for i, (side, label) in enumerate(zip(sides, labels, strict=True)):
                if side is None or manifests[i] is None:
                    continue
                try:
                    with _on_side(label):
                        pipeline.build(side, environ=environ)
                    built[i] = True
                except (UsageError, LockedError):
                    raise
                except NorthstarError as error:
                    errors.append(_side_error(("base", "head")[i], label, "build", error))
        if all(built) and chosen:
            numbers = compare_scorecards(sides[0].scorecard_path, sides[1].scorecard_path, chosen, periods)
            numbers = _with_thresholds(numbers, manifests[0], manifests[1])
            report = replace(report, numbers=numbers, changes=_refine(report.changes, numbers))
        if lint is not None and all(m is not None for m in manifests):
            report = replace(report, new_lint=_new_findings(lint, sides, project_dir, revisions))
        return replace(report, errors=tuple(errors))


def _side_error(side: str, label: str, stage: str, error: NorthstarError) -> SideError:
    message = error.message.removeprefix(f"at {label}: ")
    return SideError(side, label, stage, message, error.location, error.hint, error.exit_code)


def _file_changes(project_dir: Path, base: str, head: str | None,
                  known: Manifest | None) -> tuple[NodeChange, ...]:
    """When a side does not compile: the definition files that changed, by name (not compared as trees).

    What reads them comes from the side that did compile (``known``), if one did.
    """
    names = {n.name for n in known.nodes} if known is not None else set()
    kinds = {"models": "model", "metrics": "metric", "seeds": "seed", "macros": "macro"}
    changes = []
    for status, relpath in changed_files(project_dir, base, head):
        path = Path(relpath)
        if path.parts and path.parts[0] in kinds and path.suffix in (".sql", ".csv"):
            downstream = _downstream(path.stem, known) if path.stem in names else ()
            affected = _affected(path.stem, downstream, known) if path.stem in names else ()
            changes.append(NodeChange(path.stem, kinds[path.parts[0]], status, downstream=downstream,
                                      affected=affected))
        elif path.name in ("profiles.yml", "sources.yml"):
            changes.append(NodeChange(path.as_posix(), "project", status))
    return tuple(changes)


def _new_findings(lint: Lint, sides: list[Project | None], project_dir: Path,
                  revisions: tuple[str, str | None]) -> tuple[LintItem, ...] | None:
    found: list[list[LintItem]] = []
    for side, revision in zip(sides, revisions, strict=True):
        try:
            found.append([_lint_item(f) for f in lint(side, project_dir, revision) if f.silenced is None])
        except NorthstarError:
            return None  # a side that compiled but cannot be linted: say nothing rather than guess
    before = {(item.rule, item.location, _first_words(item.message)) for item in found[0]}
    return tuple(item for item in found[1] if (item.rule, item.location, _first_words(item.message)) not in before)


def _lint_item(finding: Any) -> LintItem:
    location = finding.path.as_posix() + (f":{finding.line}" if finding.line else "") if finding.path else ""
    return LintItem(finding.rule, finding.severity, finding.message, location)


def _first_words(message: str) -> str:
    """A finding's identity without its numbers (an r or a p-value that moved is the same finding)."""
    return message.split(":")[0]


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


def check_head_reads(base: Project, head: Project, project_dir: Path, label: str) -> None:
    """The change under review may read where the base already reads (or inside the project), nowhere new.

    Its numbers end up in a PR comment, so a source pointing at another folder of the machine would
    publish that folder's data; a new table in the same lake is fine.
    """
    allowed = [Path(d) for d in source_reads(base.sources)[0]] + [Path(f) for f in source_reads(base.sources)[1]]
    allowed.append(project_dir)
    for source in head.sources:
        where = Path(glob_base(source.location)[0])
        if not any(where == a or where.is_relative_to(a) for a in allowed):
            raise ProjectError(
                f"at {label}: source '{source.source_name}.{source.table_name}' reads {source.location}, "
                "outside every location the base revision reads", path=source.path, line=source.line,
                hint="diff builds a change only on the data its base already reads; run a build with a trusted "
                     "profiles.yml (--profiles-dir) to try a new location")


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
    configs = [{n: _flat_config(node["config"]) for n, node in p["nodes"].items()} for p in payloads]
    changes = []
    for name in [*after, *(n for n in before if n not in after)]:
        old, new = before.get(name), after.get(name)
        node = new or old
        downstream = _downstream(name, head if new else base)
        affected = _affected(name, downstream, head if new else base)
        if old is None or new is None:
            category, reason = ((NON_BREAKING, "new: nothing read it before") if old is None
                                else (BREAKING, "removed: whatever read it must change"))
            changes.append(NodeChange(name, node.kind.value, "added" if old is None else "removed",
                                      downstream=downstream, category=category, reason=reason, affected=affected))
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
            category, reason = categorize_config(node.kind.value, [key for key, _, _ in config_changes])
        elif node.kind is NodeKind.SEED:
            status, (category, reason) = "modified", (BREAKING, "its rows changed")
        else:
            status = "modified" if removed or added else "comments"
            category, reason = categorize_sql(_edits(old, new))
            if config_changes and category == NON_BREAKING:
                config_category = categorize_config(node.kind.value, [key for key, _, _ in config_changes])
                category, reason = config_category if config_category[0] == BREAKING else (category, reason)
        changes.append(NodeChange(name, node.kind.value, status, removed, added, config_changes, text, downstream,
                                  category, reason, affected))
    return tuple(changes)


def _flat_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """config() keys as the user writes them: a counter's threshold is its four keys, not a nested dict."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key == "threshold":
            flat.update({k: v for k, v in (value or {}).items()})
        elif key == "lint_ignore":
            flat[key] = dict(value) if value else None
        else:
            flat[key] = list(value) if isinstance(value, tuple) else value
    return flat


def _edits(old: CompiledNode, new: CompiledNode) -> list:
    old_ast, new_ast = (sqlglot.parse_one(_display_sql(n), read="duckdb") for n in (old, new))
    return [Keep(old_ast, new_ast)] if old_ast == new_ast else sqlglot.diff(old_ast, new_ast)


def _affected(name: str, downstream: tuple[str, ...], manifest: Manifest) -> tuple[str, ...]:
    """Metrics that read it, then up each one's tree (parent, or the metric a counter guards) to the North Star."""
    configs = {n.name: n.config for n in manifest.nodes if isinstance(n.config, MetricConfig)}
    result: dict[str, None] = {}
    for start in ([name] if name in configs else []) + list(downstream):
        current, seen = start, set()
        while current in configs and current not in seen:
            seen.add(current)
            if current != name:
                result[current] = None
            config = configs[current]
            current = config.parent or config.guard
    return tuple(result)


def _refine(changes: tuple[NodeChange, ...], numbers: tuple[MetricNumbers, ...]) -> tuple[NodeChange, ...]:
    """The numbers overrule the trees: a node whose values moved on the same data is breaking.

    A move is only laid at a node's door when no other change sits upstream of the metric that
    moved; otherwise ``values_moved`` is None (cannot tell) and the tree's category stands.
    """
    moved = {m.metric for m in numbers if m.values_moved}
    changed = {c.name for c in changes}
    refined = []
    for change in changes:
        elsewhere = {m for other in changes if other is not change for m in other.downstream}
        watched = [change.name] if change.kind == "metric" else list(change.downstream)
        clean = [m for m in watched if m not in elsewhere and (m == change.name or m not in changed)]
        if change.status == "removed":
            values_moved: bool | None = True
        elif clean:
            values_moved = any(m in moved for m in clean)
        else:
            values_moved = None if any(m in moved for m in watched) else False
        if values_moved and change.category == NON_BREAKING and change.status != "added":
            change = replace(change, category=BREAKING, reason=f"values moved on the same data ({change.reason})")
        refined.append(replace(change, values_moved=values_moved))
    return tuple(refined)


def _with_thresholds(numbers: tuple[MetricNumbers, ...], base: Manifest, head: Manifest) -> tuple[MetricNumbers, ...]:
    def text(manifest: Manifest, metric: str) -> str:
        node = next((n for n in manifest.nodes if n.name == metric), None)
        config = node.config if node is not None else None
        threshold = getattr(config, "threshold", None)
        if threshold is None:
            return ""
        keys = ("warn_change_pct", "breach_change_pct", "floor", "ceiling")
        return ", ".join(f"{k}={format_value(getattr(threshold, k))}" for k in keys if getattr(threshold, k) is not None)

    return tuple(replace(m, thresholds_before=text(base, m.metric), thresholds_after=text(head, m.metric))
                 for m in numbers)


def format_value(value: Any) -> str:
    """A config value as written in config(...): 10 not 10.0, 'Growth' quoted, unset when absent."""
    if value is None:
        return "unset"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return repr(value)
    return str(value)


def compare_scorecards(base: Path, head: Path, grain: str, periods: int) -> tuple[MetricNumbers, ...]:
    """Per metric, the latest ``periods`` periods of ``grain`` before and after, in the head's tree order."""
    con = connect_confined(files=[base, head])
    try:
        rows = con.execute("""
            WITH b AS (SELECT * FROM read_parquet($base) WHERE grain = $grain),
                 h AS (SELECT *, row_number() OVER () AS position FROM read_parquet($head) WHERE grain = $grain),
                 joined AS (
                    SELECT coalesce(h.metric, b.metric) AS metric, coalesce(h.label, b.label) AS label,
                           coalesce(h.kind, b.kind) AS kind, coalesce(h.period_start, b.period_start) AS period_start,
                           coalesce(h.is_complete, b.is_complete) AS is_complete, b.value AS before,
                           h.value AS after, b.status AS status_before, h.status AS status_after,
                           b.status_basis AS basis_before, h.status_basis AS basis_after,
                           b.change_pct AS change_pct_before, h.change_pct AS change_pct_after,
                           b.target AS target_before, h.target AS target_after,
                           min(h.position) OVER (PARTITION BY coalesce(h.metric, b.metric)) AS position
                    FROM b FULL JOIN h USING (metric, grain, period_start))
            SELECT metric, label, kind, CAST(period_start AS VARCHAR), is_complete, before, after,
                   status_before, status_after, basis_before, basis_after, change_pct_before, change_pct_after,
                   target_before, target_after
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
                      periods=tuple(PeriodValues(*r[3:]) for r in group),
                      status_before=group[0][7], status_after=group[0][8])
        for metric, group in by_metric.items())


def _sql_changes(old: CompiledNode, new: CompiledNode) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """The clauses each side has that the other does not (comments ignored), and a unified diff."""
    old_sql, new_sql = _display_sql(old), _display_sql(new)
    old_ast, new_ast = (sqlglot.parse_one(sql, read="duckdb") for sql in (old_sql, new_sql))
    if old_ast == new_ast:  # sqlglot's equality ignores comments
        return (), (), ""
    gone: list[exp.Expression] = []
    came: list[exp.Expression] = []
    for edit in sqlglot.diff(old_ast, new_ast, delta_only=True):
        if isinstance(edit, Remove):
            gone.append(_clause(edit.expression))
        elif isinstance(edit, Insert):
            came.append(_clause(edit.expression))
        else:  # Update and Move: the source was in the base, the target is in the head
            source, target = getattr(edit, "source", None), getattr(edit, "target", None)
            if source is not None:
                gone.append(_clause(source))
            if target is not None:
                came.append(_clause(target))
    removed, added = _outermost(gone), _outermost(came)
    both = set(removed) & set(added)  # a clause moved or rebuilt as it was
    text = "".join(difflib.unified_diff(old_sql.splitlines(keepends=True), new_sql.splitlines(keepends=True),
                                        fromfile=f"a/{old.relpath.as_posix()}", tofile=f"b/{new.relpath.as_posix()}"))
    return (tuple(s for s in removed if s not in both), tuple(s for s in added if s not in both), text)


def _outermost(nodes: list[exp.Expression]) -> dict[str, None]:
    """Each edited clause once: one inside another edited clause (the condition of a new WHERE) is not repeated."""
    ids = {id(node) for node in nodes}

    def inside(node: exp.Expression) -> bool:
        parent = node.parent
        while parent is not None:
            if id(parent) in ids:
                return True
            parent = parent.parent
        return False

    return dict.fromkeys(node.sql("duckdb") for node in nodes if not inside(node))


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
