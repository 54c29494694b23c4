"""What the file APIs do to the drive beyond a whole file in memory: a node's metadata, a page
of a folder, a body streamed to disk (whole, or appended at a cursor), a new folder, and the
two tree operations, copy and extract, each checked in full before anything is written.

Every path here is one the caller's guard has already passed (``Drive.resolve``); what is
checked here is what the tree on disk allows: a folder where a file is asked for, a file on the
way to a folder, a link that would carry a write elsewhere. Bodies never sit in memory whole:
they are written chunk by chunk to a temporary file beside their target and renamed over it,
so readers see the old file or the new one.
"""

from __future__ import annotations

import fcntl
import heapq
import os
import re
import stat
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shared.drive import DrivePath, normalize
from shared.errors import Conflict, InvalidRequest, NotFound, TooLarge

CHUNK_BYTES = 1024 * 1024
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
# What one extract may unpack: past either, the archive is refused (413) before anything is
# written, so that a small zip cannot fill the disk.
MAX_EXTRACT_BYTES = 1024 * 1024 * 1024
MAX_EXTRACT_ENTRIES = 50_000

FILE = "file"
FOLDER = "folder"

# Temporary files of writes in progress (this module's and shared/drive.write_atomic's): not
# listed, since they are gone, renamed over their target, a moment later.
_PARTIAL = re.compile(r"^\..+\.(?:[0-9a-f]{32}\.upload|\d+\.\d+\.tmp)$")


@dataclass(frozen=True)
class Node:
    name: str
    path: str  # the drive path
    type: str  # FILE or FOLDER
    size: int  # bytes; 0 for a folder
    modified: int  # Unix seconds


@dataclass(frozen=True)
class Page:
    nodes: list[Node]
    next_token: str | None  # where the next page starts; None on the last page


def _node(path: str, real: Path) -> Node | None:
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
    return Node(PurePosixPath(path).name, path, kind, size, int(info.st_mtime))


def node_of(target: DrivePath) -> Node | None:
    """What is at ``target``, or None."""
    return _node(target.relative, target.real)


def require_node(target: DrivePath) -> Node:
    node = node_of(target)
    if node is None:
        raise NotFound(f"nothing at drive path {target.relative!r}")
    return node


def list_page(folder: DrivePath, after: str | None = None, size: int = DEFAULT_PAGE_SIZE) -> Page:
    """The entries of ``folder`` sorted by name, the first ``size`` of those after the name
    ``after`` (a page's ``next_token``). A file has no entries: its page is empty."""
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidRequest(f"a page holds 1 to {MAX_PAGE_SIZE} entries, not {size}")
    node = require_node(folder)
    if node.type == FILE:
        return Page([], None)
    with os.scandir(folder.real) as entries:
        names = [
            entry.name
            for entry in entries
            if not _PARTIAL.match(entry.name) and (not after or entry.name > after)
        ]
    first = heapq.nsmallest(size + 1, names)
    nodes = [
        child
        for name in first[:size]
        if (child := _node(f"{folder.relative}/{name}", folder.real / name)) is not None
    ]
    return Page(nodes, first[size - 1] if len(first) > size else None)


# -- writing ----------------------------------------------------------------------------------
def _make_parents(target: DrivePath) -> None:
    try:
        target.real.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InvalidRequest(
            f"cannot write {target.relative!r}: one of the folders it is in is a file"
        ) from None


def _not_a_folder(target: DrivePath) -> None:
    if target.relative == target.space:
        raise InvalidRequest(f"{target.relative!r} is a space, a folder: give a path inside it")
    if target.real.is_dir():
        raise InvalidRequest(f"{target.relative!r} is a folder; give a file path to write to")


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


def _replace(target: Path, chunks: Iterable[bytes], limit: int | None = None) -> int:
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


def _chunks_of(source) -> Iterable[bytes]:
    return iter(lambda: source.read(CHUNK_BYTES), b"")


def write_stream(target: DrivePath, chunks: Iterable[bytes], limit: int | None = None) -> int:
    """Make ``chunks`` the whole content of the file ``target`` (parents made); its size."""
    _not_a_folder(target)
    _make_parents(target)
    return _replace(target.real, chunks, limit)


def append_stream(
    target: DrivePath,
    chunks: Iterable[bytes],
    expected_size: int | None = None,
    limit: int | None = None,
) -> int:
    """Add ``chunks`` at the end of the file ``target`` (made if missing, when no size is
    expected); ``expected_size``: the size it must have now, or a 409 says the size it has.
    A write cut short leaves the file as it was. Its size after."""
    _not_a_folder(target)
    flags = os.O_WRONLY | os.O_APPEND
    if expected_size is None:
        _make_parents(target)
        flags |= os.O_CREAT
    try:
        fd = os.open(target.real, flags, 0o644)
    except (FileNotFoundError, NotADirectoryError):
        raise Conflict(
            f"{target.relative!r} does not exist (its size is 0): start it with cursor 0"
        ) from None
    except IsADirectoryError:  # made a folder since the check
        raise InvalidRequest(f"{target.relative!r} is a folder; give a file path") from None
    try:
        # One appender at a time: the size checked is the size written at.
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if expected_size is not None and size != expected_size:
            raise Conflict(
                f"{target.relative!r} is {size} bytes, not {expected_size}: "
                f"send the chunk that starts at byte {size}"
            )
        try:
            return _write_all(fd, chunks, limit, size)
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def make_folder(target: DrivePath) -> bool:
    """Make the folder ``target`` and its parents; False if it was there already."""
    if target.real.is_dir():
        return False
    if target.real.exists():
        raise Conflict(f"{target.relative!r} is a file, so it cannot be made a folder")
    try:
        target.real.mkdir(parents=True)
    except FileExistsError:
        if target.real.is_dir():  # made by another request meanwhile
            return False
        raise InvalidRequest(
            f"cannot make {target.relative!r}: one of the folders it is in is a file"
        ) from None
    except NotADirectoryError:
        raise InvalidRequest(
            f"cannot make {target.relative!r}: one of the folders it is in is a file"
        ) from None
    return True


def make_empty_file(target: DrivePath) -> bool:
    """Make ``target`` an empty file unless it is a file already (False)."""
    if target.real.is_file():
        return False
    if target.real.is_dir():
        raise Conflict(f"{target.relative!r} is a folder, so it cannot be made a file")
    write_stream(target, [])
    return True


# -- copy and extract -------------------------------------------------------------------------
@dataclass(frozen=True)
class Transfer:
    """What a copy or an extract did."""

    files: int
    bytes: int
    folders: int
    links_skipped: int = 0


def _check_destination(dst: DrivePath, parts: tuple[str, ...], kind: str, what: str) -> None:
    """That ``dst`` + ``parts`` can become a ``kind``: every existing folder on the way is a
    real folder (no link, which could lead the write out of the space) and what is already
    there is of the same kind."""
    relative = "/".join((dst.relative, *parts))
    try:
        normalize(relative)
    except InvalidRequest as error:
        raise InvalidRequest(f"{what}: {error.msg}") from None
    path = dst.real
    for index, part in enumerate(parts):
        path = path / part
        last = index == len(parts) - 1
        try:
            info = path.lstat()
        except FileNotFoundError:
            return  # nothing further down exists either
        if stat.S_ISLNK(info.st_mode):
            raise InvalidRequest(f"{what}: {relative!r} passes through a link in the drive")
        if stat.S_ISDIR(info.st_mode):
            if last and kind == FILE:
                raise Conflict(f"{what}: {relative!r} is a folder in the destination")
        elif not last or kind == FOLDER:
            shown = "/".join((dst.relative, *parts[: index + 1]))
            raise Conflict(f"{what}: {shown!r} is a file in the destination")


class Copy:
    """A copy from ``src`` to ``dst``, checked when made: a file to a file path (overwritten if
    there), a folder to a folder path (merged into it if there, its files overwritten). Links
    inside a copied folder are not followed, nor copied."""

    def __init__(self, src: DrivePath, dst: DrivePath):
        self.src, self.dst = src, dst
        node = require_node(src)
        self.kind = node.type
        if dst.relative == src.relative or dst.real == src.real:
            raise InvalidRequest("src_path and dst_path are the same: nothing to copy")
        if self.kind == FILE and dst.relative == dst.space:
            raise InvalidRequest(f"dst_path {dst.relative!r} is a space: give the new file's path")
        if self.kind == FOLDER and (
            dst.relative.startswith(src.relative + "/") or src.real in dst.real.parents
        ):
            raise InvalidRequest(f"cannot copy the folder {src.relative!r} into itself")
        self.folders: list[tuple[str, ...]] = []
        self.files: list[tuple[str, ...]] = []
        self.links = 0
        if self.kind == FILE:
            self.files.append(())
        else:
            self._walk()
        _check_parents(dst)
        for parts in self.folders:
            _check_destination(dst, parts, FOLDER, "dst_path")
        for parts in self.files:
            _check_destination(dst, parts, FILE, "dst_path")
        _check_destination_root(dst, self.kind)

    def _walk(self) -> None:
        for folder, folders, files in os.walk(self.src.real):
            base = Path(folder).relative_to(self.src.real).parts
            for name in list(folders):
                if (Path(folder) / name).is_symlink():
                    folders.remove(name)
                    self.links += 1
                else:
                    self.folders.append((*base, name))
            for name in files:
                path = Path(folder) / name
                if path.is_symlink():
                    self.links += 1
                elif path.is_file() and not _PARTIAL.match(name):
                    self.files.append((*base, name))

    def run(self) -> Transfer:
        total = 0
        if self.kind == FOLDER:
            self.dst.real.mkdir(parents=True, exist_ok=True)
        else:
            self.dst.real.parent.mkdir(parents=True, exist_ok=True)
        for parts in self.folders:
            self.dst.real.joinpath(*parts).mkdir(parents=True, exist_ok=True)
        for parts in self.files:
            with self.src.real.joinpath(*parts).open("rb") as source:
                total += _replace(self.dst.real.joinpath(*parts), _chunks_of(source))
        return Transfer(len(self.files), total, len(self.folders), self.links)


def _check_parents(dst: DrivePath) -> None:
    """The folders ``dst`` would be in are folders, or can be made."""
    parent = dst.real.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidRequest(
            f"cannot write {dst.relative!r}: one of the folders it is in is a file"
        )


def _check_destination_root(dst: DrivePath, kind: str) -> None:
    if kind == FOLDER and dst.real.exists() and not dst.real.is_dir():
        raise Conflict(f"dst_path: {dst.relative!r} is a file; a folder is copied to a folder")
    if kind == FILE and dst.real.is_dir():
        raise Conflict(f"dst_path: {dst.relative!r} is a folder; give the new file's path")


def _entry_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """An archive entry's path inside the destination, or a 400 naming it when it would land
    outside (absolute, '..', a backslash, a drive letter), is a link or cannot be read."""
    name = info.filename
    refusal = None
    if "\\" in name:
        refusal = "holds a backslash"
    elif name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        refusal = "is an absolute path"
    elif ".." in name.split("/"):
        refusal = "contains '..'"
    elif "\x00" in name:
        refusal = "contains a NUL byte"
    elif stat.S_ISLNK(info.external_attr >> 16):
        refusal = "is a symbolic link"
    elif info.flag_bits & 0x1:
        refusal = "is encrypted"
    if refusal:
        raise InvalidRequest(f"the archive's entry {name!r} {refusal}: nothing was extracted")
    return tuple(part for part in name.split("/") if part not in ("", "."))


class Extract:
    """An extract of the zip file ``archive`` into the folder ``dst`` (made, or merged into:
    the archive's files overwrite those of the same path), checked in full when made."""

    def __init__(
        self,
        archive: DrivePath,
        dst: DrivePath,
        max_bytes: int | None = None,
        max_entries: int | None = None,
    ):
        self.dst = dst
        max_bytes = MAX_EXTRACT_BYTES if max_bytes is None else max_bytes
        max_entries = MAX_EXTRACT_ENTRIES if max_entries is None else max_entries
        node = require_node(archive)
        if node.type != FILE:
            raise InvalidRequest(f"{archive.relative!r} is a folder, not a zip file")
        try:
            self.zip = zipfile.ZipFile(archive.real)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
            raise InvalidRequest(
                f"{archive.relative!r} is not a zip file this can read: {error}"
            ) from None
        try:
            self._check(max_bytes, max_entries)
        except BaseException:
            self.zip.close()
            raise

    def _check(self, max_bytes: int, max_entries: int) -> None:
        infos = self.zip.infolist()
        if len(infos) > max_entries:
            raise TooLarge(f"the archive has {len(infos)} entries, more than {max_entries}")
        total = sum(info.file_size for info in infos)
        if total > max_bytes:
            raise TooLarge(
                f"the archive unpacks to {total} bytes, more than the {max_bytes} an extract "
                "may write"
            )
        files: dict[tuple[str, ...], zipfile.ZipInfo] = {}
        folders: set[tuple[str, ...]] = set()
        for info in infos:
            parts = _entry_parts(info)
            if not parts:
                continue
            folders.update(parts[:end] for end in range(1, len(parts)))
            if info.is_dir():
                folders.add(parts)
            else:
                files[parts] = info
        both = folders & files.keys()
        if both:
            name = "/".join(sorted(both)[0])
            raise InvalidRequest(f"the archive holds {name!r} both as a file and as a folder")
        if self.dst.real.exists() and not self.dst.real.is_dir():
            raise Conflict(f"dst_path: {self.dst.relative!r} is a file, not a folder")
        _check_parents(self.dst)
        for parts in sorted(folders):
            _check_destination(self.dst, parts, FOLDER, f"entry {'/'.join(parts)!r}")
        for parts in files:
            _check_destination(self.dst, parts, FILE, f"entry {'/'.join(parts)!r}")
        self.folders = sorted(folders)
        self.files = files

    def run(self) -> Transfer:
        total = 0
        try:
            self.dst.real.mkdir(parents=True, exist_ok=True)
            for parts in self.folders:
                self.dst.real.joinpath(*parts).mkdir(exist_ok=True)
            for parts, info in self.files.items():
                target = self.dst.real.joinpath(*parts)
                with self.zip.open(info) as source:
                    total += _replace(target, _chunks_of(source))
        finally:
            self.zip.close()
        return Transfer(len(self.files), total, len(self.folders))
