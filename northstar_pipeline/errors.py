"""One error family. Every user-facing failure is a NorthstarError with a location.

The CLI catches only NorthstarError and prints ``path:line:col: message`` plus a
``hint:`` line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path

# Exit codes, documented in README.md ("Exit codes").
EXIT_OK = 0
EXIT_PROJECT = 1  # the project is wrong: templates, SQL, config, profiles, tree
EXIT_USAGE = 2  # the command line is wrong (click uses 2 as well)
EXIT_DATA = 3  # the data or the engine failed: missing source data, runtime SQL error, publish
EXIT_LOCKED = 4  # another build holds the project's lock
EXIT_ALERT = 5  # build --fail-on: published, but a guardrail is breached or the North Star is red
EXIT_TEST = 7  # a data test of severity error failed: fix the data or the model, not a retry
EXIT_HEAD_BROKEN = 6  # northstar diff wrote its report, and the head side does not compile or build
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT); the build's transaction was rolled back


class NorthstarError(Exception):
    """A user error with a location in a file the user wrote."""

    exit_code = EXIT_PROJECT
    node: str | None = None  # the node being built when it failed, set by the pipeline (run_results, JSON logs)

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        col: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        self.col = col
        self.hint = hint

    @property
    def location(self) -> str:
        if self.path is None:
            return ""
        parts = [self.path.as_posix()]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def __str__(self) -> str:
        head = f"{self.location}: {self.message}" if self.location else self.message
        return f"{head}\n  hint: {self.hint}" if self.hint else head


class ProjectError(NorthstarError):
    """profiles.yml, sources.yml, file layout, duplicate names, vars, env vars."""


class RenderError(NorthstarError):
    """Jinja could not render a template."""


class CompileError(NorthstarError):
    """sqlglot could not parse, resolve or validate a rendered query."""


class PlanError(NorthstarError):
    """The DAG is wrong: cycles, selectors that match nothing."""


class TreeError(NorthstarError):
    """The metric tree is wrong on the data: a formula that does not hold."""


class ExecutionError(NorthstarError):
    """DuckDB failed while building, or the data broke a runtime contract."""

    exit_code = EXIT_DATA


class SourceDataError(ExecutionError):
    """A declared source has no data where it says it lives."""


class PublishError(NorthstarError):
    """The scorecard or run artifacts could not be written."""

    exit_code = EXIT_DATA


class LockedError(NorthstarError):
    """Another build of the same project is running."""

    exit_code = EXIT_LOCKED


class BuildInterrupted(NorthstarError):
    """Ctrl-C (SIGINT) during a build: DuckDB stopped the statement, the transaction rolled back."""

    exit_code = EXIT_INTERRUPTED


class UsageError(NorthstarError):
    """A command-line value is wrong (bad --vars, bad --select)."""

    exit_code = EXIT_USAGE


class FormulaError(TreeError):
    """A formula that does not hold on the data; the build still publishes tree_validation.parquet."""


class DataTestError(NorthstarError):
    """A data test of severity error failed: the build rolled back, nothing was published."""

    exit_code = EXIT_TEST

    def __init__(self, message: str, *, results: tuple = (), node_results: tuple = (), **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.results = results  # every test's result, for run_results.json
        self.node_results = node_results  # which nodes ran and which were skipped


class StaleDataError(ExecutionError):
    """A source's newest data is older than its freshness error_after (build --fail-on-stale)."""
