"""The project's files as they were at a git revision, written into a directory (for ``northstar diff``)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from northstar_pipeline.errors import ProjectError, UsageError


def export_revision(project_dir: Path, revision: str, dest: Path) -> Path:
    """Write the project's folder at ``revision`` under ``dest``; return the project root inside it.

    ``git archive`` reads the object store only: the working tree, its index and its
    checked-out branch are left as they are.
    """
    project_dir = project_dir.resolve()
    top, commit = _toplevel(project_dir), _commit(project_dir, revision)
    prefix = project_dir.relative_to(top.resolve()).as_posix()
    pathspec = [prefix] if prefix != "." else []
    result = subprocess.run(["git", "archive", "--format=tar", commit, "--", *pathspec], cwd=top,
                            capture_output=True)
    if result.returncode != 0:
        raise ProjectError(f"the project folder '{prefix}' does not exist in this revision",
                           hint="pick a revision where the project existed")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        try:
            archive.extractall(dest, filter="data")  # no absolute paths, links out of dest, or device files
        except tarfile.FilterError as exc:  # a committed symlink pointing out of the project
            member = Path(exc.tarinfo.name)
            shown = member.relative_to(prefix) if prefix != "." and member.is_relative_to(prefix) else member
            raise ProjectError("this file is a link outside the project "
                               f"({type(exc).__name__})", path=shown,
                               hint="commit the file itself, not a symlink to it; northstar reads only the "
                                    "project's own files") from None
    return dest / prefix


def describe_revision(project_dir: Path, revision: str) -> str:
    """``main (1a2b3c4d5e6f)``: the name as given, with the commit it points at."""
    _toplevel(project_dir.resolve())
    commit = _commit(project_dir.resolve(), revision)
    return revision if commit.startswith(revision) else f"{revision} ({commit[:12]})"


def _toplevel(project_dir: Path) -> Path:
    return Path(_git(["rev-parse", "--show-toplevel"], project_dir, "the project is not inside a git repository",
                     "run northstar diff from a git checkout of the project"))


def _commit(project_dir: Path, revision: str) -> str:
    return _git(["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], project_dir,
                f"unknown git revision '{revision}'", "use a branch, tag or commit, e.g. main or HEAD~1")


def _git(args: list[str], cwd: Path, message: str, hint: str) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise UsageError("git is not installed", hint="install git; northstar diff reads revisions with it") from None
    if result.returncode != 0 or not result.stdout.strip():
        raise UsageError(message, hint=hint)
    return result.stdout.strip()


def changed_files(project_dir: Path, base: str, head: str | None) -> list[tuple[str, str]]:
    """(status, path relative to the project) of files that differ between ``base`` and ``head``.

    ``head`` None is the working tree, untracked files included. Used when a side does not
    compile, so the report can still say which definitions changed. Status: added | removed | modified.
    """
    project_dir = project_dir.resolve()
    revisions = [_commit(project_dir, base)] + ([_commit(project_dir, head)] if head else [])
    result = subprocess.run(["git", "diff", "--name-status", "--no-renames", "--relative", *revisions, "--", "."],
                            cwd=project_dir, capture_output=True, text=True)
    words = {"A": "added", "D": "removed"}
    files = [(words.get(line[0], "modified"), line.split("\t", 1)[1])
             for line in result.stdout.splitlines() if "\t" in line]
    if head is None:
        untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "--", "."], cwd=project_dir,
                                   capture_output=True, text=True)
        files += [("added", line) for line in untracked.stdout.splitlines() if line]
    return sorted(files, key=lambda item: item[1])
