"""The drive: a tree of files under one root, whose first level is spaces (a user's, named by
their username, or a team's, named by the team).

Every path a user gives is relative and starts with a space. ``..``, absolute paths, NUL bytes,
backslashes and links that lead out of the drive are rejected, never followed. Who may read or
write a space is not decided here: a drive that resolves callers' paths is given the guard that
decides it (shared/accounts/access.py), and asks it about every path. Where the files are is
not decided here either: the drive works on logical paths over a storage (shared/storage/), a
local folder or an object store, so the rules are the same on both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from shared.errors import InvalidRequest, NotFound
from shared.storage import local
from shared.storage.backend import FILE, FOLDER, Storage, StoredFile
from shared.storage.local import LocalStorage


@dataclass(frozen=True)
class DrivePath:
    """A checked drive path: ``relative`` as the user wrote it (normalized), which is its key
    in ``storage``; ``real``, where the drive is a local folder, the file on disk (else None)."""

    relative: str
    real: Path | None
    space: str
    storage: Storage = field(compare=False, repr=False, default=None)

    @property
    def file(self) -> StoredFile:
        return StoredFile(self.storage, self.relative)


class SpaceGuard(Protocol):
    def check(self, principal: Any, relative: str, *, write: bool) -> None:
        """Raise NotFound where ``principal`` may not see ``relative`` (a normalized path),
        Forbidden where it may see but not change it and ``write`` is asked."""


class Drive:
    """The drive over a storage (shared/storage/): a local folder (``root`` a Path) or an
    object store. The path rules and the guard work on logical paths; the storage below."""

    def __init__(self, root: Path | Storage, guard: SpaceGuard | None = None):
        self.storage = root if isinstance(root, Storage) else LocalStorage(Path(root))
        local_root = self.storage.local_path("")
        self.root = local_root.resolve() if local_root is not None else None
        self.guard = guard

    def resolve(self, principal: Any, path: str, *, write: bool = False) -> DrivePath:
        """Check ``path`` and the caller's right to it (``write``: to change it), and map it
        to a file under the drive root, or raise."""
        relative = normalize(path)
        if self.guard is None:
            raise RuntimeError("this Drive has no guard: it cannot resolve a caller's paths")
        self.guard.check(principal, relative, write=write)
        return self.checked(relative)

    def checked(self, relative: str) -> DrivePath:
        """A normalized path the caller may use, mapped to the storage."""
        space = relative.split("/", 1)[0]
        if self.root is None:  # an object store has no links to follow out of it
            return DrivePath(relative=relative, real=None, space=space, storage=self.storage)
        real = self.root / relative
        # A symlink anywhere along the path may point outside the drive: check where it lands.
        resolved = real.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise InvalidRequest(f"drive path {relative!r} leads outside the drive")
        return DrivePath(relative=relative, real=resolved, space=space, storage=self.storage)

    def space_home(self, space: str) -> Path | None:
        """The folder of a user's or a team's space, made if it is new (its path, on a local
        drive)."""
        check_segment(space, what="a space name")
        self.storage.make_folder(space)
        return self.storage.local_path(space)

    def move_space(self, old: str, new: str) -> None:
        """Rename a space's folder (a team's rename); a space never used has none to move."""
        check_segment(new, what="a space name")
        if self.storage.stat(new) is not None:
            raise InvalidRequest(f"the drive already holds a folder {new!r}")
        node = self.storage.stat(old)
        if node is not None and node.type == FOLDER:
            self.storage.move(old, new)

    def space_is_empty(self, space: str) -> bool:
        node = self.storage.stat(space)
        return node is None or node.type != FOLDER or not self.storage.list_page(space, None, 1)[0]

    def write(self, target: DrivePath, data: bytes) -> None:
        node = self.storage.stat(target.relative)
        if node is not None and node.type == FOLDER:
            raise InvalidRequest(f"{target.relative!r} is a folder; give a file path to upload to")
        try:
            self.storage.ensure_parents(target.relative)
            self.storage.write_bytes(target.relative, data)
        except (NotADirectoryError, FileExistsError):  # a folder on the way is a file
            raise InvalidRequest(
                f"cannot write {target.relative!r}: one of the folders it is in is a file"
            ) from None

    def read(self, target: DrivePath) -> bytes:
        node = self.storage.stat(target.relative)
        if node is None or node.type != FILE:
            raise NotFound(f"no file at drive path {target.relative!r}")
        return self.storage.read_bytes(target.relative)

    def listing(self, target: DrivePath) -> list[dict]:
        node = self.storage.stat(target.relative)
        if node is None or node.type != FOLDER:
            raise NotFound(f"no folder at drive path {target.relative!r}")
        return [
            {
                "name": child.name,
                "path": f"{target.relative}/{child.name}",
                "type": child.type,
                "size": child.size if child.type == FILE else None,
                "modified": child.modified,
            }
            for child in self.storage.children(target.relative)
        ]

    def delete(self, target: DrivePath) -> None:
        if target.relative == target.space:
            raise InvalidRequest("a space's root folder cannot be deleted")
        if not self.storage.delete(target.relative):
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


def write_atomic(target: Path | StoredFile, data: bytes) -> None:
    """Make ``data`` the whole content of ``target``, atomically as readers see it: a local
    path (a temporary file beside it, renamed over) or a file of a storage."""
    if isinstance(target, StoredFile):
        target.write_bytes(data)
    else:
        local.write_atomic(target, data)
