"""The library API: the functions a caller (the CLI, a script, an Airflow task) chains.

Each is a step or a chain of steps that lives in its own subpackage; this module only gathers
them, so a caller need not know the layout. The CLI is a thin layer over these.
"""

from __future__ import annotations

from northstar_pipeline.build.pipeline import (
                                               DEFAULT_DIALECT,
                                               Reporter,
                                               build,
                                               compile_project,
                                               list_nodes,
                                               load,
                                               read_scorecard,
)

from northstar_pipeline.build.retry import retry_nodes
from northstar_pipeline.build.testing import run_tests
from northstar_pipeline.build.upstream import state_database

__all__ = ["DEFAULT_DIALECT", "Reporter", "build", "compile_project", "diff_project", "list_nodes", "load",
           "read_scorecard", "retry_nodes", "run_tests", "show_metric", "state_database"]


def show_metric(project, metric, grain=None, last=8):  # noqa: ANN001, ANN201 (analysis.show's signature)
    """analysis.show.show_metric: a metric's latest periods from the built tables."""
    from northstar_pipeline.analysis.show import show_metric as show

    return show(project, metric, grain=grain, last=last)


def diff_project(project_dir, base, head=None, **options):  # noqa: ANN001, ANN003, ANN201 (review.diff's signature)
    """review.diff.diff_project with each side linted by analysis.lint (new findings at head are reported)."""
    from northstar_pipeline.analysis.lint import lint_project
    from northstar_pipeline.review.diff import diff_project as compare

    def lint(project, repo_dir, revision):  # noqa: ANN001, ANN202
        return lint_project(project, repo_dir=repo_dir, revision=revision)

    return compare(project_dir, base, head, lint=lint, **options)
