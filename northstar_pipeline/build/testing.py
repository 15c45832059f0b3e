"""`northstar test`: run the data tests against the tables the last build left, without building."""

from __future__ import annotations

from collections.abc import Mapping

from northstar_pipeline.build.datatests import TestResult, TestRun, prepare_tests, store_failures
from northstar_pipeline.build.lock import project_lock
from northstar_pipeline.build.pipeline import Reporter, compile_project
from northstar_pipeline.build.plan import Selector, plan_layers
from northstar_pipeline.engines.duckdb import connect
from northstar_pipeline.types import Project


def run_tests(project: Project, *, select: tuple[Selector, ...] = (), exclude: tuple[Selector, ...] = (),
              report: Reporter | None = None, store: bool = False,
              environ: Mapping[str, str] | None = None) -> tuple[TestResult, ...]:
    """Every test attached to the selected nodes, in build order; the caller turns errors into an exit code."""
    report = report or (lambda event, payload: None)
    with project_lock(project, "test"):
        manifest = compile_project(project, environ=environ)
        plan = plan_layers(manifest, select, exclude)
        tests: TestRun = prepare_tests(manifest, plan, report, store)
        con = connect(project.target)
        try:
            tests.after_node(con, set())  # every table exists already: all tests are ready
            store_failures(con, tests.stored)
        finally:
            con.close()
    return tuple(tests.results)
