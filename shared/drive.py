"""The drive: a tree of files under one root, namespaced by username.

Every path a user gives is relative and starts with the owner's username. ``..``, absolute paths,
NUL bytes, backslashes and links that lead out of the drive are rejected, never followed.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shared.errors import InvalidRequest, NotFound
from shared.users import Principal


@dataclass(frozen=True)
class DrivePath:
    """A checked drive path: ``relative`` as the user wrote it (normalized), ``real`` on disk."""

    relative: str
    real: Path
    owner: str


class Drive:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def resolve(self, principal: Principal, path: str) -> DrivePath:
        """Check ``path`` and map it to a file under the drive root, or raise."""
        relative = normalize(path)
        owner = relative.split("/", 1)[0]
        if owner != principal.username and not principal.is_admin:
            # Another user's namespace looks the same as one that does not exist.
            raise NotFound(
                f"no such drive path {relative!r}: your paths start with '{principal.username}/'"
            )
        real = self.root / relative
        # A symlink anywhere along the path may point outside the drive: check where it lands.
        resolved = real.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise InvalidRequest(f"drive path {relative!r} leads outside the drive")
        return DrivePath(relative=relative, real=resolved, owner=owner)

    def user_home(self, username: str) -> Path:
        home = self.root / username
        home.mkdir(parents=True, exist_ok=True)
        return home

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
        if target.relative == target.owner:
            raise InvalidRequest("a user's drive root cannot be deleted")
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
    if (
        path.startswith("/")
        or PurePosixPath(path).is_absolute()
        or (len(path) > 1 and path[1] == ":")
    ):
        raise InvalidRequest(
            f"drive path {path!r} is absolute: give it relative to the drive, starting with "
            "your username"
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
