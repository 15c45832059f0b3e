"""Compile data tests to sqlglot queries of failing rows, run them in DuckDB, judge them as dbt does.

A test's query selects the rows that fail it; its failures are that query's row count. With
``severity: error`` (the default) a test errors when ``error_if`` holds for the count, else warns
when ``warn_if`` holds; with ``severity: warn`` it can only warn. Both default to ``!=0``.
Failing rows of tests with ``store_failures`` (or ``--store-failures``) are kept as tables in the
schema ``test_failures``, written after the build's transaction so they outlive a rollback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from northstar_pipeline.build.delta_tests import narrowed, remember
from northstar_pipeline.errors import CompileError, DataTestError, ExecutionError, ProjectError
from northstar_pipeline.project.datatests import DataTest, load_data_tests, parse_test_config
from northstar_pipeline.project.sandbox import (
    TemplateCallError,
    compile_template,
    make_environment,
    render_template,
)
from northstar_pipeline.types import CompiledNode, Manifest

FAILURES_SCHEMA = "test_failures"
SAMPLE_ROWS = 5
Reporter = Callable[[str, dict], None]


@dataclass(frozen=True, slots=True)
class CompiledTest:
    test: DataTest
    query: exp.Query  # the failing rows
    depends_on: tuple[str, ...]  # nodes it reads; it runs once they are built
    attached_to: tuple[str, ...]  # nodes whose downstream a failure skips (dbt build)

    @property
    def sql(self) -> str:
        return self.query.sql("duckdb")


@dataclass(frozen=True, slots=True)
class TestResult:
    name: str
    kind: str
    model: str | None
    column: str | None
    path: str
    line: int
    severity: str
    status: str  # pass | warn | error | skipped
    failures: int
    seconds: float
    sample_columns: tuple[str, ...] = ()
    sample: tuple[tuple[Any, ...], ...] = ()
    stored_as: str | None = None
    message: str = ""

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"

    def payload(self) -> dict:
        return {"test": self.name, "kind": self.kind, "model": self.model, "column": self.column,
                "path": self.path, "line": self.line, "severity": self.severity, "status": self.status,
                "failures": self.failures, "seconds": round(self.seconds, 3),
                "sample": [dict(zip(self.sample_columns, row, strict=True)) for row in self.sample],
                "stored_as": self.stored_as, **({"message": self.message} if self.message else {})}


# --- compile -----------------------------------------------------------------------------------------------

def compile_tests(manifest: Manifest, tests: Iterable[DataTest]) -> tuple[CompiledTest, ...]:
    nodes = {node.name: node for node in manifest.nodes}
    return tuple(_compile_singular(t, manifest) if t.kind == "singular" else _compile_generic(t, nodes)
                 for t in tests)


def _compile_generic(test: DataTest, nodes: Mapping[str, CompiledNode]) -> CompiledTest:
    node = nodes.get(test.model or "")
    if node is None:
        raise ProjectError(f"test '{test.name}' is declared on '{test.model}', which is no model, metric or seed",
                           path=test.path, line=test.line, hint="check the name: under models: matches a file name")
    columns = {c.name for c in node.columns}
    if test.column is not None and test.column not in columns:
        raise ProjectError(f"test '{test.name}': {node.relation} has no column '{test.column}'", path=test.path,
                           line=test.line, hint=f"its columns are: {', '.join(sorted(columns))}")
    base: exp.Expression = _relation(node)
    if test.config.where:
        condition = _condition(test.config.where, test, columns, "where")
        base = exp.select("*").from_(base).where(condition).subquery("tested")
    else:
        base = exp.alias_(base, "tested", table=True)
    args = test.argument_map
    column = exp.column(test.column, quoted=True) if test.column else None
    count = exp.Count(this=exp.Star())
    depends = [node.name]
    if test.kind == "unique":
        query = (exp.select(column.copy().as_("unique_field"), count.copy().as_("n_records")).from_(base)
                 .where(exp.Not(this=exp.paren(column.copy().is_(exp.null())))).group_by(column.copy())
                 .having(exp.GT(this=count.copy(), expression=exp.Literal.number(1))))
    elif test.kind == "not_null":
        query = exp.select("*").from_(base).where(column.copy().is_(exp.null()))
    elif test.kind == "accepted_values":
        quote = args.get("quote", True)
        values = [exp.Literal.string(str(v)) if quote else _number_literal(v, test) for v in args["values"]]
        query = (exp.select(column.copy().as_("value_field"), count.copy().as_("n_records")).from_(base)
                 .where(exp.Not(this=exp.paren(exp.In(this=column.copy(), expressions=values)))).group_by(column.copy()))
    elif test.kind == "relationships":
        parent = _relationship_target(str(args["to"]), test, nodes)
        field_name = str(args["field"])
        if field_name not in {c.name for c in parent.columns}:
            raise ProjectError(f"test '{test.name}': {parent.relation} has no column '{field_name}'",
                               path=test.path, line=test.line,
                               hint=f"its columns are: {', '.join(sorted(c.name for c in parent.columns))}")
        child_key = exp.column(test.column, table="tested", quoted=True)
        parent_key = exp.column(field_name, table="parent", quoted=True)
        query = (exp.select(child_key.copy().as_("from_field")).from_(base)
                 .join(exp.alias_(_relation(parent), "parent", table=True), on=exp.EQ(this=child_key.copy(),
                                                                                        expression=parent_key.copy()),
                       join_type="left")
                 .where(exp.and_(exp.Not(this=exp.paren(child_key.copy().is_(exp.null()))), parent_key.copy().is_(exp.null()))))
        depends.append(parent.name)
    elif test.kind == "row_count":
        bounds = []
        if args.get("min") is not None:
            bounds.append(exp.GTE(this=count.copy(), expression=_number_literal(args["min"], test)))
        if args.get("max") is not None:
            bounds.append(exp.LTE(this=count.copy(), expression=_number_literal(args["max"], test)))
        query = exp.select(count.copy().as_("row_count")).from_(base).having(exp.Not(this=exp.paren(exp.and_(*bounds))))
    elif test.kind == "expression_is_true":
        condition = _condition(str(args["expression"]), test, columns, "expression")
        query = exp.select("*").from_(base).where(exp.Not(this=exp.paren(condition)))
    else:  # pragma: no cover - load_data_tests admits only the kinds above
        raise ProjectError(f"unknown test kind {test.kind}", path=test.path, line=test.line)
    return CompiledTest(test, query, tuple(dict.fromkeys(depends)), (node.name,))


def _compile_singular(test: DataTest, manifest: Manifest) -> CompiledTest:
    """Render the SQL file in the sandbox (ref, source, var, config), then check it reads only those."""
    template = test.template
    assert template is not None
    nodes = {node.name: node for node in manifest.nodes}
    sources = {(s.source_name, s.table_name) for s in manifest.project.sources}
    refs: list[str] = []
    configs: list[dict] = []
    allowed: set[tuple[str, str]] = set()

    def ref(name: str) -> str:
        node = nodes.get(str(name))
        if node is None:
            raise TemplateCallError(f"unknown ref '{name}': no model, metric or seed has that name",
                                    error_class=ProjectError)
        refs.append(node.name)
        allowed.add((node.schema, node.name))
        return _relation(node).sql("duckdb")

    def source(source_name: str, table_name: str) -> str:
        key = (str(source_name), str(table_name))
        if key not in sources:
            raise TemplateCallError(f"unknown source '{key[0]}.{key[1]}'", hint="declare it in models/sources.yml",
                                    error_class=ProjectError)
        allowed.add(key)
        return exp.table_(key[1], db=key[0], quoted=True).sql("duckdb")

    def var(name: str, default: Any = None) -> Any:
        return manifest.project.var_map.get(str(name), default)

    def config(**kwargs: Any) -> str:
        configs.append(kwargs)
        return ""

    compiled = compile_template(make_environment(), template.text, template.relpath, ProjectError)
    sql = render_template(compiled, {"ref": ref, "source": source, "var": var, "config": config},
                          template.relpath, ProjectError)
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        errors = getattr(exc, "errors", None) or [{}]
        raise CompileError(f"SQL syntax error: {str(exc).splitlines()[0]}", path=template.relpath,
                           line=errors[0].get("line"), hint="a singular test is one SELECT returning the failing rows"
                           ) from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise CompileError("a singular test must be exactly one SELECT", path=template.relpath, line=1,
                           hint="return the rows that fail the test; no rows means it passes")
    query = statements[0]
    ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
    for table in query.find_all(exp.Table):
        if table.name and (table.db, table.name) not in allowed and not (not table.db and table.name in ctes):
            raise CompileError(f"table '{table.sql('duckdb')}' is not a ref() or source()", path=template.relpath,
                               line=1, hint=f"write {{{{ ref('{table.name}') }}}} so the test runs after it is built")
    config = test.config
    for raw in configs:
        config = parse_test_config(raw, template.relpath, 1, config)
    deps = tuple(dict.fromkeys(refs))
    return CompiledTest(replace(test, config=config), query, deps, deps)


def _relation(node: CompiledNode) -> exp.Table:
    return exp.table_(node.name, db=node.schema, quoted=True)


def _relationship_target(text: str, test: DataTest, nodes: Mapping[str, CompiledNode]) -> CompiledNode:
    """`to:` is ref('name') as in dbt (read as a sqlglot call, never evaluated), or a bare name."""
    try:
        parsed = sqlglot.parse_one(text, read="duckdb")
    except sqlglot.errors.ParseError:
        parsed = None
    name = None
    if isinstance(parsed, exp.Anonymous) and parsed.name.lower() == "ref" and len(parsed.expressions) == 1 \
            and isinstance(parsed.expressions[0], exp.Literal) and parsed.expressions[0].is_string:
        name = parsed.expressions[0].this
    elif isinstance(parsed, (exp.Column, exp.Identifier)) and not isinstance(parsed, exp.Star):
        name = parsed.name
    if name is None or name not in nodes:
        raise ProjectError(f"test '{test.name}': to: {text} is not a ref() of a model, metric or seed",
                           path=test.path, line=test.line, hint="e.g. to: ref('stg_orders')")
    return nodes[name]


def _condition(text: str, test: DataTest, columns: set[str], key: str) -> exp.Expression:
    """A SQL condition over the tested model's columns only (no subqueries: it reads nothing else)."""
    try:
        condition = sqlglot.parse_one(text, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ProjectError(f"test '{test.name}': {key} is not valid SQL: {str(exc).splitlines()[0]}",
                           path=test.path, line=test.line, hint="write a condition, e.g. 'delivered_at >= promised_at'"
                           ) from None
    if isinstance(condition, (exp.Query, exp.Command, exp.DDL, exp.DML)) or condition.find(exp.Table, exp.Subquery):
        raise ProjectError(f"test '{test.name}': {key} must be a condition over the model's columns", path=test.path,
                           line=test.line, hint="write anything that reads other tables as a singular test")
    for column in condition.find_all(exp.Column):
        if column.name not in columns:
            raise ProjectError(f"test '{test.name}': {key} names unknown column '{column.name}'", path=test.path,
                               line=test.line, hint=f"the model's columns are: {', '.join(sorted(columns))}")
    return condition


def _number_literal(value: Any, test: DataTest) -> exp.Expression:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProjectError(f"test '{test.name}': expected a number, got '{value}'", path=test.path, line=test.line)
    return exp.Literal.number(value)


# --- run ---------------------------------------------------------------------------------------------------

def judge(test: DataTest, failures: int) -> str:
    """dbt's rule: error_if first (severity error only), then warn_if."""
    if test.config.severity == "error" and test.config.error_if.holds(failures):
        return "error"
    if test.config.warn_if.holds(failures):
        return "warn"
    return "pass"


def run_test(con: duckdb.DuckDBPyConnection, compiled: CompiledTest, store_failures: bool = False
             ) -> tuple[TestResult, Any]:
    """(the result, the failing rows as Arrow when they are to be stored, else None)."""
    test = compiled.test
    started = time.perf_counter()
    keep = store_failures or test.config.store_failures
    failing = exp.alias_(compiled.query.subquery(), "failing", table=True)
    try:
        failures = con.execute(exp.select(exp.Count(this=exp.Star())).from_(failing.copy()).sql("duckdb")
                               ).fetchall()[0][0]
        status = judge(test, failures)
        columns: tuple[str, ...] = ()
        sample: tuple[tuple[Any, ...], ...] = ()
        if failures:
            cursor = con.execute(exp.select("*").from_(failing.copy()).limit(SAMPLE_ROWS).sql("duckdb"))
            columns = tuple(d[0] for d in cursor.description)
            sample = tuple(tuple(row) for row in cursor.fetchall())
        rows = con.sql(compiled.sql).to_arrow_table() if keep else None
    except duckdb.Error as exc:
        raise ExecutionError(f"DuckDB failed running data test '{test.name}': {str(exc).strip().splitlines()[0]}",
                             path=test.path, line=test.line,
                             hint="the tested table must exist: run 'northstar build' first") from None
    result = TestResult(test.name, test.kind, test.model, test.column, test.path.as_posix(), test.line,
                        test.config.severity, status, int(failures), time.perf_counter() - started, columns, sample,
                        f"{FAILURES_SCHEMA}.{test.name}" if keep else None)
    return result, rows


def store_failures(con: duckdb.DuckDBPyConnection, stored: Mapping[str, Any]) -> None:
    """Keep each test's failing rows as test_failures.<test> (replaced on every run), in its own transaction."""
    if not stored:
        return
    con.execute(exp.Create(kind="SCHEMA", exists=True, this=exp.to_identifier(FAILURES_SCHEMA, quoted=True))
                .sql("duckdb"))
    for name, rows in stored.items():
        view = f"__failing_{len(name)}"
        con.register(view, rows)
        try:
            con.execute(exp.Create(kind="TABLE", replace=True, this=exp.table_(name, db=FAILURES_SCHEMA, quoted=True),
                                   expression=exp.select("*").from_(exp.to_identifier(view, quoted=True)))
                        .sql("duckdb"))
        finally:
            con.unregister(view)


@dataclass
class TestRun:
    """The tests of one build or one `northstar test`: each runs once every node it reads is built."""

    compiled: tuple[CompiledTest, ...]
    report: Reporter
    store_all: bool = False
    results: list[TestResult] = field(default_factory=list)
    stored: dict[str, Any] = field(default_factory=dict)
    pending: list[CompiledTest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pending = list(self.compiled)

    def after_node(self, con: duckdb.DuckDBPyConnection, unbuilt: set[str], deltas: Any = None) -> set[str]:
        """Run the tests now ready (nothing they read is still to build); the nodes whose downstream to skip.

        ``deltas`` (the run's, engines/delta.py): a test that passed last time checks only an incremental
        model's new rows when that is a proof (build/delta_tests.py)."""
        failed: set[str] = set()
        for compiled in list(self.pending):
            if any(dep in unbuilt for dep in compiled.depends_on):
                continue
            self.pending.remove(compiled)
            narrow = narrowed(con, compiled, deltas) if deltas is not None else None
            result, rows = run_test(con, narrow or compiled, self.store_all)
            if narrow is not None:
                result = replace(result, message="checked this run's new rows only: the stored rows passed")
            if deltas is not None:
                remember(con, compiled, result.failures, deltas)
            self._record(result, rows)
            if result.status == "error":
                failed.update(compiled.attached_to)
        return failed

    def skip_pending(self, reason: str) -> None:
        for compiled in self.pending:
            test = compiled.test
            self._record(TestResult(test.name, test.kind, test.model, test.column, test.path.as_posix(), test.line,
                                    test.config.severity, "skipped", 0, 0.0, message=reason), None)
        self.pending = []

    def _record(self, result: TestResult, rows: Any) -> None:
        self.results.append(result)
        if rows is not None:
            self.stored[result.name] = rows
        self.report("test_done", result.payload())

    @property
    def errors(self) -> list[TestResult]:
        return [r for r in self.results if r.status == "error"]

    def raise_for_errors(self, node_results: tuple = ()) -> None:
        errors = self.errors
        if not errors:
            return
        first = errors[0]
        names = ", ".join(f"{r.name} ({r.failures:,} failing)" for r in errors)
        sample = format_sample(first)
        raise DataTestError(
            f"{len(errors)} data test(s) failed: {names}" + (f"\n{sample}" if sample else ""),
            path=first.path, line=first.line,
            hint=(f"failing rows are kept in {FAILURES_SCHEMA}.<test>" if first.stored_as else
                  "run 'northstar test --store-failures' to keep the failing rows as tables") +
                 "; nothing was published: the last good tables and scorecard are intact",
            results=tuple(self.results), node_results=node_results)


def format_sample(result: TestResult) -> str:
    if not result.sample:
        return ""
    header = " | ".join(result.sample_columns)
    lines = [" | ".join("NULL" if v is None else str(v) for v in row) for row in result.sample]
    more = f"\n    ... {result.failures - len(result.sample):,} more" if result.failures > len(result.sample) else ""
    return "    " + header + "\n" + "\n".join("    " + line for line in lines) + more


def prepare_tests(manifest: Manifest, plan: Any, report: Reporter, store_all: bool = False) -> TestRun:
    """Load, compile and select the tests of the planned nodes (compile errors surface before anything runs)."""
    compiled = compile_tests(manifest, load_data_tests(manifest.project))
    return TestRun(select_tests(compiled, {node.name for node in plan.nodes}), report, store_all)


def select_tests(compiled: Iterable[CompiledTest], names: set[str] | None) -> tuple[CompiledTest, ...]:
    """The tests attached to the selected nodes (all when names is None)."""
    return tuple(c for c in compiled if names is None or any(n in names for n in c.attached_to))
