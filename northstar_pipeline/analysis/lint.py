"""Lint the metric tree against the North Star Framework's anti-patterns.

Structural rules read the compiled tree (configs and the sqlglot AST of each
metric); data rules (NS008, NS009) read the last build's tables read-only and
reuse the build's own tree validation. A metric's ``lint_ignore={'NS004': 'why'}``
silences a rule for findings on that metric; project-wide rules (NS001-NS003,
NS010) are silenced on the North Star. Silenced findings are still reported.

>>> [rule.id for rule in RULES][:3]
['NS001', 'NS002', 'NS003']
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from northstar_pipeline.build import pipeline
from northstar_pipeline.project.connection import connect_confined
from northstar_pipeline.errors import EXIT_DATA, EXIT_LOCKED
from northstar_pipeline.tree import score
from northstar_pipeline.tree.tree import Tree, TreeMetric, build_tree
from northstar_pipeline.types import Manifest, MetricKind, Project

ERROR, WARNING = "error", "warning"
NSM_WINDOW_DAYS = 90  # NS013's window and the changes allowed in it (vars nsm_window_days, nsm_max_changes)
NSM_MAX_CHANGES = 1


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: str  # "error" | "warning"
    title: str
    why: str  # one line from the framework texts


RULES: tuple[Rule, ...] = (
    Rule("NS001", ERROR, "no North Star",
         "Identify one North Star Metric that best captures the core value delivered to customers."),
    Rule("NS002", ERROR, "more than one North Star",
         "Selecting multiple North Stars for different stakeholders defeats the alignment purpose."),
    Rule("NS003", WARNING, "fewer than 3 or more than 5 Level-1 inputs",
         "Beneath the North Star are three to five input metrics: the levers teams can directly move."),
    Rule("NS004", WARNING, "input without owner",
         "No ownership of input metrics: everyone's responsibility is no one's."),
    Rule("NS005", WARNING, "input without dimension",
         "Inputs span breadth, depth, frequency and efficiency: how many, how much, how often, how well."),
    Rule("NS006", ERROR, "lagging/revenue metric as North Star",
         "It must be a leading indicator of revenue, not a lagging one like MRR."),
    Rule("NS007", ERROR, "cumulative vanity count as North Star",
         "Total registered users, page views or app downloads are classic vanity metrics."),
    Rule("NS008", ERROR, "formula does not hold on the data",
         "Solid lines indicate a direct, proven relationship, e.g. a mathematical formula."),
    Rule("NS009", WARNING, "hypothesis not supported by the data",
         "Validate the connections using historical data: do changes in an input correlate with the NSM?"),
    Rule("NS010", ERROR, "North Star without a counter-metric",
         "For every key metric you optimize, pair it with a counter-metric (or guardrail) to prevent harm."),
    Rule("NS011", WARNING, "counter-metric without a threshold",
         "Set a threshold: a drop of 3-5% is a common starting point for an alert."),
    Rule("NS012", ERROR, "metric without period()",
         "A metric is a number per period: its rows must be bucketed by the grain being reviewed."),
    Rule("NS013", WARNING, "North Star redefined repeatedly",
         "Changing the NSM when results disappoint destroys strategic consistency."),
)
PROJECT_WIDE = frozenset({"NS001", "NS002", "NS003", "NS010"})
DATA_RULES = ("NS008", "NS009")
_BY_ID = {rule.id: rule for rule in RULES}

# Lagging business words in a metric's name, label or description (text, not SQL).
_LAGGING = re.compile(r"(?<![a-z0-9])(revenue|mrr|arr|churn(?:ed)?|sales|gmv|bookings|profits?|income)(?![a-z0-9])",
                      re.IGNORECASE)
_RUNNING = (exp.Sum, exp.Count, exp.CountIf, exp.ApproxDistinct)
_TRUNCS = (exp.DateTrunc, exp.TimestampTrunc, exp.DatetimeTrunc)
_TEMPORAL_NAMES = frozenset({"period", "period_start", "date", "day", "week", "month", "quarter", "year", "ts"})
_TEMPORAL_SUFFIXES = ("_at", "_date", "_day", "_week", "_month", "_time", "_ts", "_period")


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: str
    message: str
    path: Path | None
    line: int | None
    metric: str | None
    silenced: str | None = None  # the reason, when silenced


class Findings(tuple[Finding, ...]):
    """What lint_project returns: the findings, plus notes on what could not be checked.

    Notes (data rules skipped for lack of a build, unknown rule ids in lint_ignore)
    go into the text summary; they are not findings and never fail the lint.
    """

    notes: tuple[str, ...]
    # Why the data rules could not run on a build that exists (locked, unreadable, last build failed),
    # and the exit code that says so: lint then never reports "0 errors" as if they had passed.
    skipped: str | None
    skipped_code: int

    def __new__(cls, findings: Iterable[Finding] = (), notes: Iterable[str] = (), skipped: str | None = None,
                skipped_code: int = 0) -> Findings:
        self = super().__new__(cls, findings)
        self.notes = tuple(notes)
        self.skipped = skipped
        self.skipped_code = skipped_code
        return self


def lint_project(project: Project, *, repo_dir: Path | None = None, revision: str | None = None) -> Findings:
    """Compile the project and check its tree; data rules use the last build if there is one.

    NS013 reads the git history of the North Star's file in ``repo_dir`` (default: the project
    root) up to ``revision`` (default: the working tree, uncommitted edits counted).
    """
    manifest = pipeline.compile_project(project)
    tree = build_tree(manifest)
    findings = [f for check in _TREE_CHECKS for f in check(tree)]
    history, history_notes = nsm_history_findings(project, tree, repo_dir, revision)
    findings += history
    skipped = _last_build_failed(project)
    data_findings, notes = ([], []) if skipped else _data_findings(project, manifest, tree)
    if not skipped and (unreadable := _unreadable(notes)):
        skipped = unreadable
    findings += data_findings
    notes += history_notes
    notes += _unknown_ignores(tree)
    silenced = [_silence(f, tree) for f in findings]
    return Findings(sorted(silenced, key=_sort_key), notes, skipped=skipped[0] if skipped else None,
                    skipped_code=skipped[1] if skipped else 0)


def has_errors(findings: Iterable[Finding]) -> bool:
    """True when any error finding is not silenced."""
    return any(f.severity == ERROR and f.silenced is None for f in findings)


def format_findings(findings: Iterable[Finding], fmt: str) -> str:
    """'text': one `path:line: severity RULE message` line per finding and a summary; 'json': a list."""
    notes = getattr(findings, "notes", ())
    findings_in, findings = findings, tuple(findings)
    if fmt == "json":
        return json.dumps([_as_json(f) for f in findings], indent=2)
    if fmt != "text":
        raise ValueError(f"unknown lint format {fmt!r}")
    lines = [_as_text(f) for f in findings]
    active = [f for f in findings if f.silenced is None]
    errors = sum(f.severity == ERROR for f in active)
    warnings = sum(f.severity == WARNING for f in active)
    summary = f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    if len(active) < len(findings):
        summary += f", {len(findings) - len(active)} silenced"
    if getattr(findings_in, "skipped", None):
        summary += f"; data rules {', '.join(DATA_RULES)} NOT CHECKED: {findings_in.skipped}"
    lines.append(summary)
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)


# -- structural rules ------------------------------------------------------------------------------


def _check_north_star(tree: Tree) -> Iterable[Finding]:
    north_stars = tree.north_stars
    if not north_stars:
        yield Finding("NS001", ERROR, "the tree has no North Star: mark exactly one metric kind='north_star'",
                      None, None, None)
        return
    primary = _primary(tree)
    for extra in north_stars:
        if extra is not primary:
            yield _finding("NS002", extra, f"'{extra.name}' is a second North Star (the tree already has "
                                           f"'{primary.name}'): make it an input or a counter-metric")


def _check_level_one(tree: Tree) -> Iterable[Finding]:
    for north_star in tree.north_stars:
        inputs = [c for c in north_star.children if tree.get(c).kind is MetricKind.INPUT]
        if not 3 <= len(inputs) <= 5:
            names = ", ".join(inputs) or "none"
            yield _finding("NS003", north_star, f"North Star '{north_star.name}' has {len(inputs)} Level-1 "
                                                f"input(s) ({names}); the framework asks for 3 to 5")


def _check_inputs(tree: Tree) -> Iterable[Finding]:
    for metric in tree.metrics:
        if metric.kind is not MetricKind.INPUT:
            continue
        if not metric.config.owner:
            yield _finding("NS004", metric, f"input '{metric.name}' has no owner: add owner='<team>'")
        if metric.config.dimension is None:
            yield _finding("NS005", metric, f"input '{metric.name}' has no dimension: add "
                                            "dimension='breadth' | 'depth' | 'frequency' | 'efficiency'")


def _check_lagging(tree: Tree) -> Iterable[Finding]:
    for north_star in tree.north_stars:
        for field, text in (("name", north_star.name), ("label", north_star.config.label),
                            ("description", north_star.config.description)):
            match = _LAGGING.search(text)
            if match:
                yield _finding("NS006", north_star, f"North Star '{north_star.name}' looks like a lagging business "
                                                    f"metric ('{match.group(0)}' in its {field}): measure the value "
                                                    "customers get, which leads revenue")
                break


def _check_cumulative(tree: Tree) -> Iterable[Finding]:
    for north_star in tree.north_stars:
        reasons: dict[str, str] = {}  # one finding per kind of reason, worded on the first grain showing it
        for _, sql in north_star.node.grain_sql:
            for kind, reason in cumulative_reasons(sqlglot.parse_one(sql, read="duckdb")):
                reasons.setdefault(kind, reason)
        for reason in reasons.values():
            yield _finding("NS007", north_star, f"North Star '{north_star.name}' is a cumulative count: {reason}; "
                                                "count per period so the number can fall when value does")


def _check_counters(tree: Tree) -> Iterable[Finding]:
    guarded = {c.config.guard for c in tree.counters}
    for north_star in tree.north_stars:
        if north_star.name not in guarded:
            yield _finding("NS010", north_star, f"no counter-metric guards North Star '{north_star.name}': add one "
                                                f"with kind='counter', guard='{north_star.name}' and a threshold")
    for counter in tree.counters:
        threshold = counter.config.threshold
        if threshold is None or all(v is None for v in (threshold.warn_change_pct, threshold.breach_change_pct,
                                                        threshold.floor, threshold.ceiling, threshold.warn_change,
                                                        threshold.breach_change)):
            yield _finding("NS011", counter, f"counter-metric '{counter.name}' has no threshold: add "
                                             "warn_change_pct / breach_change_pct (e.g. 3 and 5), floor or ceiling")


def _check_period(tree: Tree) -> Iterable[Finding]:
    for metric in tree.metrics:
        if not metric.node.uses_period:
            yield _finding("NS012", metric, f"metric '{metric.name}' never calls period(): its period_start is the "
                                            "same at every grain, so at most one grain is right and the days its "
                                            "data covers are unknown; select {{ period('your_timestamp') }} as "
                                            "period_start")


_TREE_CHECKS = (_check_north_star, _check_level_one, _check_inputs, _check_lagging, _check_cumulative, _check_counters,
                _check_period)


def cumulative_reasons(query: exp.Expression) -> list[tuple[str, str]]:
    """(kind, why) for each way a metric query computes a running or all-time total, not a per-period value.

    >>> cumulative_reasons(sqlglot.parse_one("SELECT d AS period_start, SUM(COUNT(*)) OVER (ORDER BY d) AS value "
    ...                                      "FROM t GROUP BY 1", read="duckdb"))
    [('running_total', 'SUM(COUNT(*)) OVER (ORDER BY d) is a running total')]
    """
    reasons = [("running_total", f"{_short(w)} is a running total") for w in query.find_all(exp.Window)
               if _is_running(w)]
    reasons += [("to_date", f"{_short(c)} counts everything up to each period (no lower bound)")
                for c in _to_date_conditions(query)]
    aggregate = _all_time_value(query)
    if aggregate is not None:
        reasons.append(("all_time", f"its value {_short(aggregate)} is aggregated with no GROUP BY on the period"))
    return reasons


def _is_running(window: exp.Window) -> bool:
    function = window.this
    while isinstance(function, (exp.Filter, exp.IgnoreNulls, exp.RespectNulls)):
        function = function.this
    if not isinstance(function, _RUNNING) or not window.args.get("order"):
        return False
    spec = window.args.get("spec")
    return spec is None or str(spec.args.get("start", "")).upper() == "UNBOUNDED"


def _to_date_conditions(query: exp.Expression) -> list[exp.Expression]:
    """Join/where conditions bounding one table's dates by another's on one side only."""
    roots = [j.args["on"] for j in query.find_all(exp.Join) if j.args.get("on")]
    roots += [w.this for w in query.find_all(exp.Where)]
    found = []
    for root in roots:
        bounds: dict[frozenset, dict[tuple, exp.Expression]] = {}
        for comparison in root.find_all(exp.LT, exp.LTE, exp.GT, exp.GTE):
            low, high = (comparison.this, comparison.expression)
            if isinstance(comparison, (exp.GT, exp.GTE)):
                low, high = high, low
            low_tables, high_tables = _tables(low), _tables(high)
            if not low_tables or not high_tables or low_tables == high_tables:
                continue
            if not (_is_temporal(low) or _is_temporal(high)):
                continue
            bounds.setdefault(frozenset({low_tables, high_tables}), {})[(low_tables, high_tables)] = comparison
        found += [next(iter(sides.values())) for sides in bounds.values() if len(sides) == 1]
    return found


def _all_time_value(query: exp.Expression) -> exp.Expression | None:
    ctes = {cte.alias_or_name: cte.this for cte in query.find_all(exp.CTE)}
    return _trace_aggregate(query, "value", ctes, frozenset())


def _trace_aggregate(query: exp.Expression, name: str, ctes: dict, seen: frozenset) -> exp.Expression | None:
    """The aggregate behind output column `name` computed without a GROUP BY on a period, if any."""
    for select in _selects(query):
        projection = next((p for p in select.selects if p.alias_or_name == name), None)
        if projection is None:
            continue
        expression = projection.unalias()
        aggregates = [a for a in expression.find_all(exp.AggFunc) if a.find_ancestor(exp.Window, exp.Select) is select]
        if aggregates:
            if not _groups_by_period(select):
                return aggregates[0]
            continue
        for column in expression.find_all(exp.Column):
            source = _source(select, column, ctes)
            if source is not None and id(source) not in seen:
                found = _trace_aggregate(source, column.name, ctes, seen | {id(source)})
                if found is not None:
                    return found
    return None


def _groups_by_period(select: exp.Select) -> bool:
    group = select.args.get("group")
    if group is None:
        return False
    if group.args.get("all"):
        return any(_is_temporal(p.unalias()) for p in select.selects)
    by_alias = {p.alias_or_name: p.unalias() for p in select.selects}
    for key in group.expressions:
        if isinstance(key, exp.Literal) and key.is_int and 0 < int(key.name) <= len(select.selects):
            key = select.selects[int(key.name) - 1].unalias()
        elif isinstance(key, exp.Column) and not key.table and key.name in by_alias:
            key = by_alias[key.name]
        if _is_temporal(key):
            return True
    return False


def _selects(query: exp.Expression) -> list[exp.Select]:
    if isinstance(query, exp.Select):
        return [query]
    if isinstance(query, exp.SetOperation):
        return _selects(query.this) + _selects(query.expression)
    if isinstance(query, exp.Subquery):
        return _selects(query.this)
    return []


def _source(select: exp.Select, column: exp.Column, ctes: dict) -> exp.Expression | None:
    sources = [s for s in [select.args.get("from_"), *select.args.get("joins", [])] if s is not None]
    sources = [s.this for s in sources]
    if column.table:
        sources = [s for s in sources if s.alias_or_name == column.table]
    if len(sources) != 1:
        return None
    source = sources[0]
    if isinstance(source, exp.Subquery):
        return source.this
    if isinstance(source, exp.Table) and not source.db:
        return ctes.get(source.name)
    return None


def _tables(expression: exp.Expression) -> frozenset[str]:
    return frozenset(c.table for c in expression.find_all(exp.Column))


def _is_temporal(expression: exp.Expression) -> bool:
    for node in expression.walk():
        if isinstance(node, _TRUNCS):
            return True
        if isinstance(node, exp.Cast) and node.to.is_type(*exp.DataType.TEMPORAL_TYPES):
            return True
        if isinstance(node, exp.Column):
            name = node.name.lower()
            if name in _TEMPORAL_NAMES or name.endswith(_TEMPORAL_SUFFIXES) or name.startswith("period"):
                return True
    return False


# -- history rule (NS013) -------------------------------------------------------------------------


def nsm_history_findings(project: Project, tree: Tree, repo_dir: Path | None,
                         revision: str | None) -> tuple[list[Finding], list[str]]:
    """NS013: the North Star's file changed more than ``nsm_max_changes`` times in ``nsm_window_days`` (vars)."""
    from northstar_pipeline.analysis.history import definition_changes  # git is only needed here

    primary = _primary(tree)
    if primary is None:
        return [], []
    variables = project.var_map
    window = int(variables.get("nsm_window_days", NSM_WINDOW_DAYS))
    allowed = int(variables.get("nsm_max_changes", NSM_MAX_CHANGES))
    changes = definition_changes(repo_dir or project.root, primary.node.relpath, revision, window)
    if changes is None:
        return [], ["NS013 skipped: the project is not in a git repository"]
    if len(changes) <= allowed:
        return [], []
    when = ", ".join(f"{c.day} {c.commit[:8]}" for c in changes)
    return [_finding("NS013", primary, (
        f"North Star '{primary.name}' was redefined {len(changes)} times in {window} days ({when}); "
        f"more than {allowed} suggests moving the goalposts: keep it and change inputs instead, or record "
        "why in the commit and silence with lint_ignore"))], []


# -- data rules ------------------------------------------------------------------------------------


def _last_build_failed(project: Project) -> tuple[str, int] | None:
    """After a failed build the database holds the build before it: checking it would vouch for old data."""
    path = project.target_dir / "run_results.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # no run recorded: the database (if any) is all there is
    statuses = {r.get("status") for r in record.get("results", [])}
    if record.get("status") != "error" or "success_unpublished" in statuses:
        return None  # past the commit the tables are this build's own
    return (f"the last build (run {record.get('run_id')}) failed, so {project.relative(project.target.database).as_posix()} "
            "still holds the build before it; fix the build, rerun it, then lint", EXIT_DATA)


def _unreadable(notes: list[str]) -> tuple[str, int] | None:
    """A database that exists but cannot be read (another build holds it, or it is stale) is no pass."""
    for note in notes:
        if "skipped: cannot open" in note or "cannot be read" in note:
            reason = note.split("skipped: ", 1)[1]
            locked = "lock" in note.lower()
            hint = "another build holds it; lint again when it is done" if locked else "rebuild, then lint"
            return f"{reason} ({hint})", EXIT_LOCKED if locked else EXIT_DATA
    return None


def _data_findings(project: Project, manifest: Manifest, tree: Tree) -> tuple[list[Finding], list[str]]:
    database = project.target.database
    where = project.relative(database).as_posix()
    skipped = f"data rules ({', '.join(DATA_RULES)}) skipped"
    if project.target.engine != "duckdb":  # a Spark build checks formulas and hypotheses as it scores
        return [], [f"{skipped}: target '{project.target.name}' builds on {project.target.engine}; "
                    "its builds check them (target/tree_validation.parquet)"]
    if not database.is_file():
        return [], [f"{skipped}: no build at {where} yet; run 'northstar build'"]
    try:
        con = connect_confined(database, read_only=True)
    except duckdb.Error as exc:  # e.g. a build holds the file
        return [], [f"{skipped}: cannot open {where}: {_first_line(exc)}"]
    try:
        built = {(s, t) for s, t in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
        validation = score.validate_tree(con, manifest, tree)
    except duckdb.Error as exc:  # a build from an older definition of the tables
        return [], [f"{skipped}: the last build in {where} cannot be read ({_first_line(exc)}); rebuild"]
    finally:
        con.close()
    rows = validation.to_pylist() if validation.num_columns else []
    present = {m.name for m in tree.metrics if (m.node.schema, m.node.name) in built}
    notes = [f"data rules checked on the last build in {where}"]
    missing = sorted(m.name for m in tree.metrics if m.name not in present)
    if missing:
        notes.append(f"not in the last build, so not checked on data: {', '.join(missing)}")
    findings = [_formula_finding(tree, r) for r in rows if r["validation"] == "formula" and r["holds"] is False]
    findings += _hypothesis_findings(project, tree, rows, present)
    return findings, notes


def _formula_finding(tree: Tree, row: dict) -> Finding:
    parent = tree.get(row["metric"])
    error = row["max_rel_error"]
    error_text = f"max relative error {error:.1%}, " if error is not None and math.isfinite(error) else ""
    return _finding("NS008", parent, (
        f"formula '{row['formula']}' of '{parent.name}' does not hold at grain {row['grain']}: first break in period "
        f"{row['first_break']}, {parent.name} = {_number(row['parent_value'])} but the formula gives "
        f"{_number(row['formula_value'])} ({error_text}{row['periods_checked']} periods checked)"))


def _hypothesis_findings(project: Project, tree: Tree, rows: list[dict], present: set[str]) -> list[Finding]:
    findings = []
    grains = [g.value for g in project.grains]
    for child_name, parent_name in tree.hypothesis_edges():
        if child_name not in present or parent_name not in present:
            continue
        child = tree.get(child_name)
        edge = f"hypothesis '{child_name}' -> '{parent_name}'"
        sign = "r > 0" if child.config.direction is tree.get(parent_name).config.direction else "r < 0"
        for grain in grains:
            tested = [r for r in rows if r["validation"] == "hypothesis" and r["child"] == child_name
                      and r["grain"] == grain]
            best = next((r for r in tested if r["is_best_lag"] is True), None)
            if best is None:
                most = max((r["n"] or 0 for r in tested), default=0)
                findings.append(_finding("NS009", child, (
                    f"{edge} cannot be tested at grain {grain}: n={most} paired periods, "
                    f"needs at least {score.MIN_PAIRS}")))
            elif best["supported"] is False:
                rho = best.get("spearman_r")
                rank = f", Spearman rho={rho:.2f} (p={_p(best.get('spearman_p_value'))})" if rho is not None else ""
                adjusted = best.get("p_value_adjusted")
                findings.append(_finding("NS009", child, (
                    f"{edge} is not supported at grain {grain}: r={best['r']:.2f} at lag {best['lag']}, "
                    f"n={best['n']}, p={_p(adjusted if adjusted is not None else best['p_value'])} adjusted for "
                    f"{best.get('lags_tested') or 1} lag(s){rank} (needs both p < {score.SIGNIFICANCE} and "
                    f"{sign} with rho of the same sign)")))
    return findings


# -- helpers ---------------------------------------------------------------------------------------


def _finding(rule: str, metric: TreeMetric, message: str) -> Finding:
    return Finding(rule, _BY_ID[rule].severity, message, metric.node.relpath, metric.config.line, metric.name)


def _primary(tree: Tree) -> TreeMetric | None:
    """The North Star the tree hangs from: the one with most inputs, then by name."""
    return min(tree.north_stars, key=lambda m: (-len(m.children), m.name), default=None)


def _silence(finding: Finding, tree: Tree) -> Finding:
    ignores = {}
    if finding.rule in PROJECT_WIDE and (primary := _primary(tree)) is not None:
        ignores.update(primary.config.lint_ignore)
    if finding.metric is not None:
        ignores.update(tree.get(finding.metric).config.lint_ignore)
    reason = ignores.get(finding.rule)
    return replace(finding, silenced=reason or "(no reason given)") if finding.rule in ignores else finding


def _unknown_ignores(tree: Tree) -> list[str]:
    return [f"{m.node.relpath.as_posix()}:{m.config.line}: lint_ignore names unknown rule '{rule}'"
            for m in tree.metrics for rule, _ in m.config.lint_ignore if rule not in _BY_ID]


def _sort_key(finding: Finding) -> tuple:
    return (finding.path is not None, finding.path.as_posix() if finding.path else "", finding.line or 0, finding.rule)


def _as_text(finding: Finding) -> str:
    where = ""
    if finding.path is not None:
        where = finding.path.as_posix() + (f":{finding.line}" if finding.line is not None else "") + ": "
    text = f"{where}{finding.severity} {finding.rule} {finding.message}"
    return f"{text} [silenced: {finding.silenced}]" if finding.silenced is not None else text


def _as_json(finding: Finding) -> dict:
    payload = asdict(finding)
    payload["path"] = finding.path.as_posix() if finding.path is not None else None
    return payload


def _short(node: exp.Expression, limit: int = 80) -> str:
    text = " ".join(node.sql("duckdb").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: float | None) -> str:
    return "NULL" if value is None else f"{value:,.6g}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
