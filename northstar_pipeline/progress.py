"""Build progress for people and for schedulers: rich on a TTY, plain lines otherwise, or JSON lines."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO

from rich.console import Console


class Reporter:
    """Called as reporter(event, payload) by api.build."""

    def __init__(self, log_format: str = "text", stream: IO[str] | None = None) -> None:
        self.log_format = log_format
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream, highlight=False)
        self.is_tty = self.console.is_terminal

    def __call__(self, event: str, payload: dict) -> None:
        if self.log_format == "json":
            record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event, **payload}
            self.stream.write(json.dumps(record, default=str) + "\n")
            self.stream.flush()
            return
        line = self._text(event, payload)
        if line is None:
            return
        if self.is_tty:
            self.console.print(line)
        else:
            self.stream.write(Console(highlight=False, no_color=True).render_str(line).plain + "\n")
            self.stream.flush()

    def _text(self, event: str, p: dict) -> str | None:
        if event == "build_start":
            return f"[bold]northstar build[/] project={p['project']} target={p['target']} run_id={p['run_id']}"
        if event == "plan":
            return f"planned {p['nodes']} nodes in {p['layers']} layers"
        if event == "node_done":
            rows = "" if p["rows"] is None else f"{p['rows']:,} rows"
            return f"[green]OK[/] [{p['index']}/{p['total']}] {p['relation']:<40} {rows:>14}  {p['seconds']:.2f}s"
        if event == "build_done":
            return (f"[bold green]Done[/]: {p['nodes']} nodes, scorecard {p['scorecard']} "
                    f"({p['scorecard_rows']:,} rows) in {p['seconds']:.2f}s")
        return None
