"""What the file APIs do to the drive beyond a whole file in memory: a node's metadata, a page
of a folder, a body streamed to storage (whole, or appended at a cursor), a new folder, and the
two tree operations, copy and extract, each checked in full before anything is written.

Every path here is one the caller's guard has already passed (``Drive.resolve``); what is
checked here is what the tree in storage allows: a folder where a file is asked for, a file on
the way to a folder, a link that would carry a write elsewhere (a local drive's). Bodies never
sit in memory whole: the storage (shared/storage/) writes them chunk by chunk, to a temporary
file renamed over its target or as the parts of one object, so readers see the old file or the
new one.
"""

from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from shared.drive import DrivePath, normalize
from shared.errors import Conflict, InvalidRequest, NotFound, TooLarge
from shared.storage.backend import CHUNK_BYTES, FILE, FOLDER, LINK, Node

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
# What one extract may unpack: past either, the archive is refused (413) before anything is
# written, so that a small zip cannot fill the disk.
MAX_EXTRACT_BYTES = 1024 * 1024 * 1024
MAX_EXTRACT_ENTRIES = 50_000

__all__ = ["CHUNK_BYTES", "FILE", "FOLDER", "Node", "Page"]


@dataclass(frozen=True)
class Page:
    nodes: list[Node]
    next_token: str | None  # where the next page starts; None on the last page


def node_of(target: DrivePath) -> Node | None:
    """What is at ``target``, or None."""
    return target.storage.stat(target.relative)


def require_node(target: DrivePath) -> Node:
    node = node_of(target)
    if node is None:
        raise NotFound(f"nothing at drive path {target.relative!r}")
    return node


def list_page(folder: DrivePath, after: str | None = None, size: int = DEFAULT_PAGE_SIZE) -> Page:
    """The entries of ``folder`` sorted by name, the first ``size`` of those after the token
    ``after`` (a page's ``next_token``). A file has no entries: its page is empty."""
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidRequest(f"a page holds 1 to {MAX_PAGE_SIZE} entries, not {size}")
    node = require_node(folder)
    if node.type == FILE:
        return Page([], None)
    nodes, token = folder.storage.list_page(folder.relative, after, size)
    return Page(nodes, token)


# -- writing ----------------------------------------------------------------------------------
def _a_file_on_the_way(target: DrivePath) -> InvalidRequest:
    return InvalidRequest(
        f"cannot write {target.relative!r}: one of the folders it is in is a file"
    )


def _make_parents(target: DrivePath) -> None:
    try:
        target.storage.ensure_parents(target.relative)
    except (FileExistsError, NotADirectoryError):
        raise _a_file_on_the_way(target) from None


def _not_a_folder(target: DrivePath) -> None:
    if target.relative == target.space:
        raise InvalidRequest(f"{target.relative!r} is a space, a folder: give a path inside it")
    node = node_of(target)
    if node is not None and node.type == FOLDER:
        raise InvalidRequest(f"{target.relative!r} is a folder; give a file path to write to")


def _chunks_of(source) -> Iterable[bytes]:
    return iter(lambda: source.read(CHUNK_BYTES), b"")


def write_stream(target: DrivePath, chunks: Iterable[bytes], limit: int | None = None) -> int:
    """Make ``chunks`` the whole content of the file ``target`` (parents made); its size."""
    _not_a_folder(target)
    _make_parents(target)
    return target.storage.write_stream(target.relative, chunks, limit)


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
    try:
        return target.storage.append_stream(target.relative, chunks, expected_size, limit)
    except (FileNotFoundError, NotADirectoryError) as error:
        if expected_size is None:
            raise _a_file_on_the_way(target) from None
        raise Conflict(
            f"{target.relative!r} does not exist (its size is 0): start it with cursor 0"
        ) from error
    except IsADirectoryError:  # made a folder since the check
        raise InvalidRequest(f"{target.relative!r} is a folder; give a file path") from None


def make_folder(target: DrivePath) -> bool:
    """Make the folder ``target`` and its parents; False if it was there already."""
    node = node_of(target)
    if node is not None:
        if node.type == FOLDER:
            return False
        raise Conflict(f"{target.relative!r} is a file, so it cannot be made a folder")
    try:
        return target.storage.make_folder(target.relative)
    except (FileExistsError, NotADirectoryError):
        raise InvalidRequest(
            f"cannot make {target.relative!r}: one of the folders it is in is a file"
        ) from None


def make_empty_file(target: DrivePath) -> bool:
    """Make ``target`` an empty file unless it is a file already (False)."""
    node = node_of(target)
    if node is not None and node.type == FILE:
        return False
    if node is not None:
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
    for index in range(len(parts)):
        last = index == len(parts) - 1
        found = dst.storage.kind_of("/".join((dst.relative, *parts[: index + 1])))
        if found is None:
            return  # nothing further down exists either
        if found == LINK:
            raise InvalidRequest(f"{what}: {relative!r} passes through a link in the drive")
        if found == FOLDER:
            if last and kind == FILE:
                raise Conflict(f"{what}: {relative!r} is a folder in the destination")
        elif not last or kind == FOLDER:
            shown = "/".join((dst.relative, *parts[: index + 1]))
            raise Conflict(f"{what}: {shown!r} is a file in the destination")


def _key(target: DrivePath, parts: tuple[str, ...]) -> str:
    return "/".join((target.relative, *parts))


class Copy:
    """A copy from ``src`` to ``dst``, checked when made: a file to a file path (overwritten if
    there), a folder to a folder path (merged into it if there, its files overwritten). Links
    inside a copied folder are not followed, nor copied."""

    def __init__(self, src: DrivePath, dst: DrivePath):
        self.src, self.dst = src, dst
        node = require_node(src)
        self.kind = node.type
        if dst.relative == src.relative or (dst.real is not None and dst.real == src.real):
            raise InvalidRequest("src_path and dst_path are the same: nothing to copy")
        if self.kind == FILE and dst.relative == dst.space:
            raise InvalidRequest(f"dst_path {dst.relative!r} is a space: give the new file's path")
        if self.kind == FOLDER and (
            dst.relative.startswith(src.relative + "/")
            or (src.real is not None and src.real in dst.real.parents)
        ):
            raise InvalidRequest(f"cannot copy the folder {src.relative!r} into itself")
        self.folders: list[tuple[str, ...]] = []
        self.files: list[tuple[str, ...]] = []
        self.links = 0
        if self.kind == FILE:
            self.files.append(())
        else:
            tree = src.storage.tree(src.relative)
            self.folders, self.files, self.links = tree.folders, tree.files, tree.links_skipped
        _check_parents(dst)
        for parts in self.folders:
            _check_destination(dst, parts, FOLDER, "dst_path")
        for parts in self.files:
            _check_destination(dst, parts, FILE, "dst_path")
        _check_destination_root(dst, self.kind)

    def run(self) -> Transfer:
        total = 0
        storage = self.dst.storage
        if self.kind == FOLDER:
            storage.make_folder(self.dst.relative)
        else:
            storage.ensure_parents(self.dst.relative)
        for parts in self.folders:
            storage.make_folder(_key(self.dst, parts))
        for parts in self.files:
            total += storage.copy_file(_key(self.src, parts), _key(self.dst, parts))
        return Transfer(len(self.files), total, len(self.folders), self.links)


def _check_parents(dst: DrivePath) -> None:
    """The folders ``dst`` would be in are folders, or can be made."""
    parts = dst.relative.split("/")[:-1]
    for end in range(len(parts), 0, -1):
        node = dst.storage.stat("/".join(parts[:end]))  # the nearest that exists
        if node is None:
            continue
        if node.type != FOLDER:
            raise _a_file_on_the_way(dst)
        return


def _check_destination_root(dst: DrivePath, kind: str) -> None:
    node = node_of(dst)
    if kind == FOLDER and node is not None and node.type != FOLDER:
        raise Conflict(f"dst_path: {dst.relative!r} is a file; a folder is copied to a folder")
    if kind == FILE and node is not None and node.type == FOLDER:
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
        # Read in place (a seekable reader: on an object store, ranged GETs), never copied.
        source = archive.storage.open_read(archive.relative)
        try:
            self.zip = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
            source.close()
            raise InvalidRequest(
                f"{archive.relative!r} is not a zip file this can read: {error}"
            ) from None
        self.source = source
        try:
            self._check(max_bytes, max_entries)
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        self.zip.close()
        self.source.close()

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
        node = node_of(self.dst)
        if node is not None and node.type != FOLDER:
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
        storage = self.dst.storage
        try:
            storage.make_folder(self.dst.relative)
            for parts in self.folders:
                storage.make_folder(_key(self.dst, parts))
            for parts, info in self.files.items():
                with self.zip.open(info) as source:
                    total += storage.write_stream(_key(self.dst, parts), _chunks_of(source))
        finally:
            self._close()
        return Transfer(len(self.files), total, len(self.folders))
