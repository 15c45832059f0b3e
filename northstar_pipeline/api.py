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

from northstar_pipeline.build.testing import run_tests

__all__ = ["DEFAULT_DIALECT", "Reporter", "build", "compile_project", "list_nodes", "load", "read_scorecard",
           "run_tests"]
