"""What a build asks of an engine: the few operations every engine implements.

The pipeline opens one engine per build (engines/select.py picks it from the target), runs every
node through it, scores on the DuckDB connection it hands back, then commits or rolls back.
A failed build must leave the last committed tree as it was: DuckDB with a transaction, Spark by
building under a run-specific location and swapping one catalog file (engines/spark.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from northstar_pipeline.types import Column, CompiledNode, Manifest, NodeResult


class Engine(Protocol):
    name: str
    relations_in_duckdb: bool  # scoring_connection() reads every built relation (not only the metric tables)

    def begin(self) -> None:
        """Start the build: nothing it creates is visible as the tree until commit()."""

    def create_sources(self, manifest: Manifest) -> None:
        """Make every declared source readable under its source.table name."""

    def execute_node(self, node: CompiledNode, fingerprint: str = "", full_refresh: bool = False) -> NodeResult:
        """Create the node's relation (an incremental model adds a batch, or is rebuilt, or refused)."""

    def describe(self, node: CompiledNode) -> tuple[Column, ...] | None:
        """The stored relation's columns, or None when it does not exist."""

    def read_table(self, node: CompiledNode) -> pa.Table:
        """A small relation (a metric table, a seed) as Arrow."""

    def scoring_connection(self, manifest: Manifest) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection holding the metric tables and seeds, where tree/score.py runs."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...
