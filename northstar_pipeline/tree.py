"""The metric tree: levels and parent links of the compiled metrics."""

from __future__ import annotations

from .compiling import metric_level
from .types import Manifest, NodeKind


def metric_levels(manifest: Manifest) -> dict[str, int | None]:
    """0 for the North Star, depth below it for inputs, None for counter-metrics."""
    metrics = {n.name: n for n in manifest.nodes if n.kind is NodeKind.METRIC}
    return {name: metric_level(node, metrics) for name, node in metrics.items()}
