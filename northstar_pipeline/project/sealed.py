"""JSON state files under target/ that only this machine's northstar trusts (footer statistics, the BI state).

target/ may come from a pull request, so a state file there is data to check, not to believe: each is
written with an HMAC under the same machine key as the compile cache (``~/.cache/northstar/``, never
under the project; build/cache.py), and one that does not verify (committed, from another machine,
damaged) reads as empty: the caller recomputes, never trusting what it cannot check.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any


def read_sealed(path: Path, kind: str) -> Any | None:
    """The payload a ``write_sealed(path, kind, ...)`` on this machine wrote, else None."""
    key = machine_key()
    try:
        head, _, body = path.read_bytes().partition(b"\n")
        header = json.loads(head)
        if (key is None or not isinstance(header, dict) or header.get("kind") != kind
                or not isinstance(header.get("mac"), str)
                or not hmac.compare_digest(header["mac"], hmac.new(key, body, hashlib.sha256).hexdigest())):
            return None
        return json.loads(body)
    except (OSError, ValueError, RecursionError):
        return None


def write_sealed(path: Path, kind: str, payload: Any) -> bool:
    """Write ``payload`` with its HMAC (temporary name, then rename); False when it could not (no key, no disk)."""
    key = machine_key()
    if key is None:
        return False
    body = json.dumps(payload, separators=(",", ":")).encode()
    header = json.dumps({"kind": kind, "mac": hmac.new(key, body, hashlib.sha256).hexdigest()}).encode()
    name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(header + b"\n" + body)
        os.chmod(name, 0o644)
        os.replace(name, path)
        return True
    except OSError:
        if name is not None:
            Path(name).unlink(missing_ok=True)
        return False


def machine_key() -> bytes | None:
    """A random key in the user's cache folder (never under the project), made on first use: it seals the
    compile cache (build/cache.py) and the state files here."""
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "northstar"
    path = folder / "compile-cache.key"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_bytes()
            return key if len(key) >= 32 else None
        with os.fdopen(fd, "wb") as out:
            key = secrets.token_bytes(32)
            out.write(key)
        return key
    except OSError:
        return None


def file_identity(path: str | Path) -> list[int] | None:
    """What changes when a file is written again, in place or replaced: size, mtime, inode, ctime (a rewrite
    that kept the mtime still moves the ctime). None when it is not a local file (or is gone)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns]
