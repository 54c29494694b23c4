"""The drive as a local folder (the default): a key is a path under the root. Writes go to a
temporary file beside their target, renamed over it (``os.replace``), so readers see the old
file or the new one; appends hold an exclusive lock, so the size checked is the size written at.
"""

from __future__ import annotations

import fcntl
import heapq
import os
import re
import shutil
import stat
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from shared.errors import Conflict, TooLarge
from shared.storage.backend import FILE, FOLDER, LINK, Node, Storage, Tree, name_of

# Temporary files of writes in progress: not listed, since they are gone, renamed over their
# target, a moment later.
PARTIAL = re.compile(r"^\..+\.(?:[0-9a-f]{32}\.upload|\d+\.\d+\.tmp)$")


def _node(key: str, real: Path) -> Node | None:
    try:
        info = real.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(info.st_mode):
        kind, size = FOLDER, 0
    elif stat.S_ISREG(info.st_mode):
        kind, size = FILE, info.st_size
    else:  # a socket or a pipe someone left in the drive folder: nothing a client can use
        return None
    return Node(name_of(key), key, kind, size, int(info.st_mtime))


def _write_all(fd: int, chunks: Iterable[bytes], limit: int | None, written: int = 0) -> int:
    """Write ``chunks`` to ``fd``; the count of bytes, which may not pass ``limit``."""
    for chunk in chunks:
        written += len(chunk)
        if limit is not None and written > limit:
            raise TooLarge(f"more than the {limit} bytes one write may carry")
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
    return written


def replace_file(target: Path, chunks: Iterable[bytes], limit: int | None = None) -> int:
    """Write ``chunks`` to a temporary file beside ``target`` and rename it over; the size."""
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.upload"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            written = _write_all(fd, chunks, limit)
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return written


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


class LocalStorage(Storage):
    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalStorage) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def local_path(self, key: str) -> Path:
        return self.path(key)

    # -- reading --------------------------------------------------------------------------
    def stat(self, key: str) -> Node | None:
        return _node(key, self.path(key))

    def kind_of(self, key: str) -> str | None:
        try:
            info = self.path(key).lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(info.st_mode):
            return LINK
        return FOLDER if stat.S_ISDIR(info.st_mode) else FILE

    def list_page(self, key: str, after: str | None, size: int) -> tuple[list[Node], str | None]:
        folder = self.path(key)
        try:
            with os.scandir(folder) as entries:
                names = [
                    entry.name
                    for entry in entries
                    if not PARTIAL.match(entry.name) and (not after or entry.name > after)
                ]
        except (FileNotFoundError, NotADirectoryError):
            return [], None
        first = heapq.nsmallest(size + 1, names)
        prefix = f"{key}/" if key else ""
        nodes = [
            child
            for name in first[:size]
            if (child := _node(f"{prefix}{name}", folder / name)) is not None
        ]
        return nodes, first[size - 1] if len(first) > size else None

    def tree(self, key: str) -> Tree:
        base_path = self.path(key)
        folders, files, links = [], [], 0
        for folder, subfolders, names in os.walk(base_path):
            base = Path(folder).relative_to(base_path).parts
            for name in list(subfolders):
                if (Path(folder) / name).is_symlink():
                    subfolders.remove(name)
                    links += 1
                else:
                    folders.append((*base, name))
            for name in names:
                path = Path(folder) / name
                if path.is_symlink():
                    links += 1
                elif path.is_file() and not PARTIAL.match(name):
                    files.append((*base, name))
        return Tree(folders, files, links)

    def open_read(self, key: str) -> BinaryIO:
        path = self.path(key)
        if path.is_dir():
            raise FileNotFoundError(key)
        return path.open("rb")

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    # -- writing --------------------------------------------------------------------------
    def ensure_parents(self, key: str) -> None:
        try:
            self.path(key).parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise NotADirectoryError(key) from None

    def write_stream(self, key: str, chunks: Iterable[bytes], limit: int | None = None) -> int:
        return replace_file(self.path(key), chunks, limit)

    def write_bytes(self, key: str, data: bytes) -> None:
        write_atomic(self.path(key), data)

    def append_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        expected_size: int | None = None,
        limit: int | None = None,
    ) -> int:
        flags = os.O_WRONLY | os.O_APPEND
        if expected_size is None:
            self.ensure_parents(key)
            flags |= os.O_CREAT
        fd = os.open(self.path(key), flags, 0o644)  # FileNotFoundError, IsADirectoryError
        try:
            # One appender at a time: the size checked is the size written at.
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if expected_size is not None and size != expected_size:
                raise Conflict(
                    f"{key!r} is {size} bytes, not {expected_size}: "
                    f"send the chunk that starts at byte {size}"
                )
            try:
                return _write_all(fd, chunks, limit, size)
            except BaseException:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)

    def make_folder(self, key: str) -> bool:
        path = self.path(key)
        if path.is_dir():
            return False
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            if path.is_dir():  # made by another request meanwhile
                return False
            raise NotADirectoryError(key) from None
        return True

    def delete(self, key: str) -> bool:
        path = self.path(key)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            return False
        return True

    def move(self, old: str, new: str) -> None:
        self.path(old).rename(self.path(new))

    def copy_file(self, src: str, dst: str) -> int:
        with self.path(src).open("rb") as source:
            return replace_file(self.path(dst), iter(lambda: source.read(1024 * 1024), b""))
