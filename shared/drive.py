"""The drive: a tree of files under one root, whose first level is spaces (a user's, named by
their username, or a team's, named by the team).

Every path a user gives is relative and starts with a space. ``..``, absolute paths, NUL bytes,
backslashes and links that lead out of the drive are rejected, never followed. Who may read or
write a space is not decided here: a drive that resolves callers' paths is given the guard that
decides it (shared/accounts/access.py), and asks it about every path.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from shared.errors import InvalidRequest, NotFound


@dataclass(frozen=True)
class DrivePath:
    """A checked drive path: ``relative`` as the user wrote it (normalized), ``real`` on disk."""

    relative: str
    real: Path
    space: str


class SpaceGuard(Protocol):
    def check(self, principal: Any, relative: str, *, write: bool) -> None:
        """Raise NotFound where ``principal`` may not see ``relative`` (a normalized path),
        Forbidden where it may see but not change it and ``write`` is asked."""


class Drive:
    def __init__(self, root: Path, guard: SpaceGuard | None = None):
        self.root = Path(root).resolve()
        self.guard = guard

    def resolve(self, principal: Any, path: str, *, write: bool = False) -> DrivePath:
        """Check ``path`` and the caller's right to it (``write``: to change it), and map it
        to a file under the drive root, or raise."""
        relative = normalize(path)
        if self.guard is None:
            raise RuntimeError("this Drive has no guard: it cannot resolve a caller's paths")
        self.guard.check(principal, relative, write=write)
        real = self.root / relative
        # A symlink anywhere along the path may point outside the drive: check where it lands.
        resolved = real.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise InvalidRequest(f"drive path {relative!r} leads outside the drive")
        return DrivePath(relative=relative, real=resolved, space=relative.split("/", 1)[0])

    def space_home(self, space: str) -> Path:
        """The folder of a user's or a team's space, made if it is new."""
        home = self.root / check_segment(space, what="a space name")
        home.mkdir(parents=True, exist_ok=True)
        return home

    def move_space(self, old: str, new: str) -> None:
        """Rename a space's folder (a team's rename); a space never used has none to move."""
        source, target = self.root / old, self.root / check_segment(new, what="a space name")
        if target.exists():
            raise InvalidRequest(f"the drive already holds a folder {new!r}")
        if source.is_dir():
            source.rename(target)

    def space_is_empty(self, space: str) -> bool:
        folder = self.root / space
        return not folder.is_dir() or next(folder.iterdir(), None) is None

    def write(self, target: DrivePath, data: bytes) -> None:
        if target.real.is_dir():
            raise InvalidRequest(f"{target.relative!r} is a folder; give a file path to upload to")
        try:
            write_atomic(target.real, data)
        except (NotADirectoryError, FileExistsError):  # a folder on the way is a file
            raise InvalidRequest(
                f"cannot write {target.relative!r}: one of the folders it is in is a file"
            ) from None

    def read(self, target: DrivePath) -> bytes:
        if not target.real.is_file():
            raise NotFound(f"no file at drive path {target.relative!r}")
        return target.real.read_bytes()

    def listing(self, target: DrivePath) -> list[dict]:
        if not target.real.is_dir():
            raise NotFound(f"no folder at drive path {target.relative!r}")
        entries = []
        for child in sorted(target.real.iterdir(), key=lambda p: p.name):
            stat = child.lstat()
            entries.append(
                {
                    "name": child.name,
                    "path": f"{target.relative}/{child.name}",
                    "type": "folder" if child.is_dir() else "file",
                    "size": stat.st_size if child.is_file() else None,
                    "modified": int(stat.st_mtime),
                }
            )
        return entries

    def delete(self, target: DrivePath) -> None:
        if target.relative == target.space:
            raise InvalidRequest("a space's root folder cannot be deleted")
        if target.real.is_dir():
            shutil.rmtree(target.real)
        elif target.real.exists():
            target.real.unlink()
        else:
            raise NotFound(f"nothing at drive path {target.relative!r}")


MAX_NAME_BYTES = 200
MAX_PATH_BYTES = 1024


def normalize(path: str) -> str:
    """A relative POSIX path with no empty, '.' or '..' segments, or InvalidRequest."""
    if not isinstance(path, str) or not path.strip():
        raise InvalidRequest("a drive path is required, e.g. 'alice/invoices/input'")
    if "\x00" in path:
        raise InvalidRequest("drive paths cannot contain NUL bytes")
    if "\\" in path:
        raise InvalidRequest("drive paths use '/' as separator, not '\\'")
    # Instabase clients write drive paths with a leading '/': it means the drive's root.
    path = path.lstrip("/")
    if PurePosixPath(path).is_absolute() or (len(path) > 1 and path[1] == ":"):
        raise InvalidRequest(
            f"drive path {path!r} is absolute: give it relative to the drive, starting with "
            "a space (your username or a team's name)"
        )
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidRequest(f"drive path {path!r} contains '..', which is not allowed")
    if not parts:
        raise InvalidRequest("a drive path is required, e.g. 'alice/invoices/input'")
    relative = "/".join(parts)
    # What the file system can hold, checked here so that it is a 400 rather than an OSError:
    # a name stays under NAME_MAX (255 bytes) with write_atomic's temporary suffix, and the
    # path under PATH_MAX (4096) with the drive root before it.
    try:
        size = len(relative.encode())
    except UnicodeEncodeError:
        raise InvalidRequest("drive paths cannot contain unpaired surrogates") from None
    if size > MAX_PATH_BYTES:
        raise InvalidRequest(f"drive paths are at most {MAX_PATH_BYTES} bytes (UTF-8)")
    if any(len(part.encode()) > MAX_NAME_BYTES for part in parts):
        raise InvalidRequest(f"a name in a drive path is at most {MAX_NAME_BYTES} bytes (UTF-8)")
    return relative


def check_segment(name: str, *, what: str) -> str:
    """``name`` as one segment of a drive path (a space's name), or InvalidRequest."""
    if normalize(name) != name or "/" in name:
        raise InvalidRequest(f"{what} must be one drive path segment, not {name!r}")
    return name


def write_atomic(target: Path, data: bytes) -> None:
    """Write to a temporary file beside ``target`` and rename it over: readers see old or new.

    The temporary name is unique per process and thread, which is all the uniqueness needed
    (one writer of a name at a time per thread) without mkstemp's random-name retries."""
    tmp = f"{target.parent}/.{target.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:  # the folder is new: make it once, not on every write
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
