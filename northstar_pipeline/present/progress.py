"""Build progress for people and for schedulers: rich on a TTY, plain lines otherwise, or JSON lines."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress

# rich is imported where text is drawn: a scheduler's JSON lines need none of it (30-40 ms of every build).


def error_record(error: Exception) -> dict:
    """A NorthstarError as a log event: what a scheduler needs to route it without parsing text."""
    path = getattr(error, "path", None)
    return {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": "error", "level": "error",
            "code": getattr(error, "exit_code", 1), "error": type(error).__name__,
            "file": path.as_posix() if path is not None else None, "line": getattr(error, "line", None),
            "col": getattr(error, "col", None), "message": getattr(error, "message", str(error)),
            "hint": getattr(error, "hint", None), "node": getattr(error, "node", None)}


class Reporter:
    """Called as reporter(event, payload) by api.build."""

    def __init__(self, log_format: str = "text", stream: IO[str] | None = None) -> None:
        self.log_format = log_format
        self.stream = stream or sys.stderr
        self.console = None
        self.is_tty = False
        if log_format != "json":
            from rich.console import Console

            self.console = Console(file=self.stream, highlight=False)
            self.is_tty = self.console.is_terminal
        self.progress: Progress | None = None
        self.task = None

    def __call__(self, event: str, payload: dict) -> None:
        if self.log_format == "json":
            record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event, **payload}
            self.stream.write(json.dumps(record, default=str) + "\n")
            self.stream.flush()
            return
        line = self._text(event, payload)
        if line is None or (line == "" and not self.is_tty):
            return
        if self.is_tty:
            self._draw(event, payload, line)
        else:
            from rich.console import Console

            self.stream.write(Console(highlight=False, no_color=True).render_str(line).plain + "\n")
            self.stream.flush()

    def _draw(self, event: str, payload: dict, line: str) -> None:
        """On a terminal: finished nodes scroll above a live progress bar."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if event == "plan":
            self.progress = Progress(TextColumn("[bold]building"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console,
                                     transient=True)
            self.task = self.progress.add_task("", total=payload["nodes"])
            self.progress.start()
        if self.progress is not None and event == "node_start":
            self.progress.update(self.task, description=payload["relation"])
            return
        (self.progress.console if self.progress else self.console).print(line)
        if self.progress is not None and event == "node_done":
            self.progress.advance(self.task)
        if self.progress is not None and event == "build_done":
            self.progress.stop()
            self.progress = None

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _text(self, event: str, p: dict) -> str | None:
        if event == "node_start":
            return ""
        if event == "build_start":
            return f"[bold]northstar build[/] project={p['project']} target={p['target']} run_id={p['run_id']}"
        if event == "plan":
            return f"planned {p['nodes']} nodes in {p['layers']} layers"
        if event == "node_done":
            rows = "" if p["rows"] is None else f"{p['rows']:,} rows"
            mode = f"  ({p['mode']})" if p.get("mode") else ""
            return f"[green]OK[/] [{p['index']}/{p['total']}] {p['relation']:<40} {rows:>14}  {p['seconds']:.2f}s{mode}"
        if event == "as_of":
            why = {"data": p.get("note", "from the data"), "loaded_at_field": "the latest loaded_at_field of the sources",
                   "var as_of": "the as_of var"}.get(p["source"], p["source"])
            return f"as of {p['as_of']} ({why}); the period containing it is partial"
        if event == "test_done":
            return format_test_line(p)
        if event == "node_skipped":
            return f"[yellow]SKIP[/] [{p['index']}/{p['total']}] {p['relation']:<40} an upstream data test failed"
        if event == "alert":
            return (f"[bold red]ALERT[/] {p['finding']}: {p['metric']} {p['period']} = {p['value']} "
                    f"(threshold {p['threshold']}, owner {p['owner']})")
        if event in ("deferred", "orphans"):
            return _relations_text(event, p)
        if event == "segments":
            return f"[green]OK[/] {'scorecard.segments':<46} {p['rows']:>14,} rows  {p['seconds']:.2f}s"
        if event == "build_done":
            return (f"[bold green]Done[/]: {p['nodes']} nodes, scorecard {p['scorecard']} "
                    f"({p['scorecard_rows']:,} rows) in {p['seconds']:.2f}s")
        return None


def format_test_line(p: dict) -> str:
    """One data test's outcome: PASS / WARN / ERROR / SKIP, where it is declared, how many rows fail."""
    from rich.markup import escape

    label = {"pass": "[green]PASS[/]", "warn": "[yellow]WARN[/]", "error": "[bold red]ERROR[/]",
             "skipped": "[yellow]SKIP[/]"}[p["status"]]
    line = f"{label} test {escape(p['test'])}  ({escape(p['path'])}:{p['line']})"
    if p["status"] == "skipped":
        return line + "  " + p.get("message", "")
    if p["failures"]:
        line += f"  {p['failures']:,} failing"
        for row in p.get("sample", [])[:5]:
            line += "\n       " + escape(", ".join(f"{k}={v}" for k, v in row.items()))  # data, not markup
    return line


def _relations_text(event: str, p: dict) -> str | None:
    """Deferred upstream tables and orphan relations: a line only when there are some."""
    names = ", ".join(p["relations"])
    if not names:
        return None
    if event == "deferred":
        return f"deferred (copied from --state): {names}"
    return f"[yellow]kept orphans[/] (no node defines them): {names}" if p["kept"] else f"dropped orphans: {names}"
