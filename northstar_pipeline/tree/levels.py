"""A metric's level in the tree: 0 for the North Star, its parent's level + 1 for an input."""

from __future__ import annotations

from difflib import get_close_matches

from northstar_pipeline.errors import CompileError
from northstar_pipeline.types import (
    CompiledNode,
    MetricConfig,
    MetricKind,
    RenderedNode,
)


def metric_level(node: RenderedNode | CompiledNode, metrics: dict) -> int | None:
    """0 for the North Star, parent's level + 1 for inputs, None for counter-metrics and outcomes."""
    seen = []
    current = node
    while True:
        config = current.config
        assert isinstance(config, MetricConfig)
        if config.kind is MetricKind.NORTH_STAR:
            return len(seen)
        if config.kind is MetricKind.OUTCOME:
            return None
        if config.kind is MetricKind.COUNTER:
            return None if not seen else len(seen)
        if current.name in seen:
            raise CompileError(f"parent cycle: {' -> '.join([*seen, current.name])}", path=node.relpath, line=config.line)
        seen.append(current.name)
        parent = config.parent
        if parent not in metrics:
            close = get_close_matches(str(parent), sorted(metrics), n=1)
            raise CompileError(
                f"parent '{parent}' of '{current.name}' is not a metric",
                path=current.relpath,
                line=config.line,
                hint=f"did you mean '{close[0]}'?" if close else "parent must name a file in metrics/",
            )
        current = metrics[parent]
