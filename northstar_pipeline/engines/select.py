"""The one place that picks the engine a build runs on, from the target's type in profiles.yml."""

from __future__ import annotations

from northstar_pipeline.engines.base import Engine
from northstar_pipeline.engines.duckdb import DuckDBEngine
from northstar_pipeline.types import Target


def open_engine(target: Target, reads: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())) -> Engine:
    """``reads``: the directories and files a DuckDB build may read (project/connection.py)."""
    if target.engine == "spark":
        from northstar_pipeline.engines.spark import SparkEngine  # pyspark is an optional extra: imported on use

        return SparkEngine(target)
    return DuckDBEngine(target, reads)
