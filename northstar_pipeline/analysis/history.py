"""A file's definition changes in git history, for NS013 (the North Star redefined repeatedly).

Git is read only (``git log``, ``git diff``); the working tree is never touched. A change is a
commit that edits the file beyond whitespace (``git diff -w``); the commit that adds it is not a
change. The window ends at the revision's commit date, so the answer does not drift with the clock.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Change:
    commit: str  # "working tree" for uncommitted edits
    day: str  # YYYY-MM-DD (commit date, UTC)


def definition_changes(repo_dir: Path, relpath: Path, revision: str | None, window_days: int) -> list[Change] | None:
    """Changes of ``relpath`` (relative to ``repo_dir``) in the ``window_days`` before ``revision``.

    ``revision`` None means the working tree: HEAD's history plus an uncommitted edit, if any.
    None when ``repo_dir`` is not in a git repository (or the revision has no commits).
    """
    repo_dir = Path(repo_dir)
    tip = _git(repo_dir, "rev-parse", "--verify", "--quiet", f"{revision or 'HEAD'}^{{commit}}")
    if tip is None:
        return None
    end = datetime.fromtimestamp(int(_git(repo_dir, "log", "-1", "--format=%ct", tip) or 0), tz=timezone.utc)
    since = end - timedelta(days=window_days)
    log = _git(repo_dir, "log", "--format=%H %ct", f"--since={int(since.timestamp())}", tip, "--",
               relpath.as_posix()) or ""
    changes = []
    for line in log.splitlines():
        commit, stamp = line.split()
        if not _existed(repo_dir, f"{commit}^", relpath) or not _existed(repo_dir, commit, relpath):
            continue  # added (or deleted) here: a first definition is not a redefinition
        if _differs(repo_dir, [f"{commit}^", commit], relpath):
            day = datetime.fromtimestamp(int(stamp), tz=timezone.utc).date().isoformat()
            changes.append(Change(commit, day))
    if revision is None and (repo_dir / relpath).is_file() and _existed(repo_dir, tip, relpath) \
            and _differs(repo_dir, [tip], relpath):
        changes.insert(0, Change("working tree", datetime.now(timezone.utc).date().isoformat()))
    return changes


def _existed(repo_dir: Path, commit: str, relpath: Path) -> bool:
    return _git(repo_dir, "cat-file", "-e", f"{commit}:./{relpath.as_posix()}", allow_empty=True) is not None


def _differs(repo_dir: Path, revisions: list[str], relpath: Path) -> bool:
    result = _run(repo_dir, "diff", "-w", "--quiet", *revisions, "--", relpath.as_posix())
    return result is not None and result.returncode == 1


def _git(repo_dir: Path, *args: str, allow_empty: bool = False) -> str | None:
    result = _run(repo_dir, *args)
    if result is None or result.returncode != 0 or (not allow_empty and not result.stdout.strip()):
        return None
    return result.stdout.strip()


def _run(repo_dir: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], cwd=repo_dir, capture_output=True, text=True)
    except (FileNotFoundError, NotADirectoryError):
        return None  # no git, or no such directory: no history to read
