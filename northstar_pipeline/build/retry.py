"""``northstar retry``: what the last run (target/run_results.json) did not finish.

A build is one transaction, so a failed run rolled back every node of its plan: each one is
re-run (the node that failed and everything after it, upstream of it or not). A run that
succeeded leaves nothing to retry.
"""

from __future__ import annotations

import json
from pathlib import Path

from northstar_pipeline.errors import UsageError


def retry_nodes(target_dir: Path) -> tuple[str, ...]:
    """Names of the last run's nodes that did not end in success, in its build order."""
    path = Path(target_dir) / "run_results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UsageError(f"no run to retry: cannot read {path}", hint="run 'northstar build' first") from None
    if results.get("status") == "success":
        return ()
    return tuple(r["name"] for r in results.get("results", []) if r.get("status") != "success")
