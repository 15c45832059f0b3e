"""The project's build lock, and who holds it (for `northstar status`).

The lock is an OS file lock (filelock), so it dies with its process, kill -9 included. Beside it
a sidecar JSON says which process holds it and since when; a stale sidecar (its process gone) is
ignored because only a held lock makes it count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import filelock

from northstar_pipeline.errors import LockedError
from northstar_pipeline.types import Project

LOCK_FILE = ".northstar.lock"
HOLDER_FILE = ".northstar.lock.json"


@contextmanager
def project_lock(project: Project, command: str) -> Iterator[None]:
    project.target_dir.mkdir(parents=True, exist_ok=True)
    path = project.target_dir / LOCK_FILE
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        holder = lock_holder(project)
        since = f" (pid {holder['pid']}, since {holder['since']})" if holder and holder.get("pid") else ""
        raise LockedError(f"another build of this project is running{since}", path=path,
                          hint="wait for it to finish; a build holds this lock while it runs") from None
    sidecar = project.target_dir / HOLDER_FILE
    try:
        sidecar.write_text(json.dumps({"pid": os.getpid(), "command": command,
                                       "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}) + "\n")
        yield
    finally:
        sidecar.unlink(missing_ok=True)
        lock.release()


def lock_holder(project: Project) -> dict | None:
    """{pid, command, since} of the process holding the lock, or None when no build runs."""
    path = project.target_dir / LOCK_FILE
    if not path.exists():
        return None
    probe = filelock.FileLock(str(path))
    try:
        probe.acquire(timeout=0)
    except filelock.Timeout:
        return _read_holder(project.target_dir / HOLDER_FILE) or {"pid": None, "command": None, "since": None}
    probe.release()
    return None


def _read_holder(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
