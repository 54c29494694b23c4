"""The interface every storage backend implements, what it answers (``Node``), and
``StoredFile``, a key of a backend used like a small ``pathlib.Path`` by the code that reads
and writes a run's files (layout, steps, endings, review, snapshots).

The promises, on every backend:
- a write is atomic as readers see it: they read the old content or the new, never a part;
- a folder is what holds files or was made empty (on S3, a ``folder/`` marker object);
- listings come a page at a time, sorted, with a token that says where the next page starts;
- bodies stream both ways in chunks: nothing here needs a whole file in memory.
"""

from __future__ import annotations

import abc
import contextlib
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

FILE = "file"
FOLDER = "folder"
LINK = "link"  # only a local folder has them; the drive never follows one out of itself

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Node:
    name: str
    path: str  # the key, which for the drive is the drive path
    type: str  # FILE or FOLDER
    size: int  # bytes; 0 for a folder
    modified: int  # Unix seconds (0 for a folder an object store only implies)


@dataclass(frozen=True)
class Tree:
    """What is under a folder, as paths of parts relative to it."""

    folders: list[tuple[str, ...]]
    files: list[tuple[str, ...]]
    links_skipped: int = 0


def join(*parts: str) -> str:
    return "/".join(part for part in parts if part)


def name_of(key: str) -> str:
    return PurePosixPath(key).name


class Storage(abc.ABC):
    """Files and folders under logical keys ("" is the root)."""

    # -- reading --------------------------------------------------------------------------
    @abc.abstractmethod
    def stat(self, key: str) -> Node | None:
        """What is at ``key`` (a file or a folder), or None."""

    @abc.abstractmethod
    def kind_of(self, key: str) -> str | None:
        """FILE, FOLDER, LINK (local only, not followed) or None, for checks on the way."""

    @abc.abstractmethod
    def list_page(self, key: str, after: str | None, size: int) -> tuple[list[Node], str | None]:
        """The first ``size`` entries of the folder ``key`` after the token ``after``, sorted;
        and the token of the next page (None on the last)."""

    def children(self, key: str) -> Iterator[Node]:
        """Every entry of the folder ``key``, a page at a time."""
        token = None
        while True:
            nodes, token = self.list_page(key, token, 1000)
            yield from nodes
            if token is None:
                return

    @abc.abstractmethod
    def tree(self, key: str) -> Tree:
        """Every folder and file under the folder ``key`` (links are counted, not followed)."""

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A seekable binary reader of the file ``key``; FileNotFoundError if there is none."""

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The whole file (for small files: records, manifests); FileNotFoundError."""

    def read_chunks(self, key: str) -> Iterator[bytes]:
        with self.open_read(key) as source:
            while chunk := source.read(CHUNK_BYTES):
                yield chunk

    def local_path(self, key: str) -> Path | None:
        """The file's path on this host's file system, where there is one (local only)."""
        return None

    # -- writing --------------------------------------------------------------------------
    @abc.abstractmethod
    def ensure_parents(self, key: str) -> None:
        """Make what must exist for ``key`` to be written (local: its folders); raise
        NotADirectoryError when one of the folders on the way is a file."""

    @abc.abstractmethod
    def write_stream(self, key: str, chunks: Iterable[bytes], limit: int | None = None) -> int:
        """Make ``chunks`` the whole content of ``key``, atomically; its size. Past ``limit``
        bytes, TooLarge, and nothing is written."""

    def write_bytes(self, key: str, data: bytes) -> None:
        """Make ``data`` the whole content of ``key``, atomically (parents made)."""
        self.write_stream(key, [data])

    @abc.abstractmethod
    def append_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        expected_size: int | None = None,
        limit: int | None = None,
    ) -> int:
        """Add ``chunks`` at the end of ``key`` (made if missing when no size is expected,
        else FileNotFoundError); Conflict when its size is not ``expected_size``; a write cut
        short leaves the file as it was. Its size after; the file may not pass ``limit``."""

    @abc.abstractmethod
    def make_folder(self, key: str) -> bool:
        """Make the folder ``key`` (and its parents); False if it was there already."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the file or the folder (with all it holds) at ``key``; False if none."""

    @abc.abstractmethod
    def move(self, old: str, new: str) -> None:
        """Give the folder or file ``old`` the key ``new`` (nothing there yet)."""

    def copy_file(self, src: str, dst: str) -> int:
        """Copy the file ``src`` over ``dst``, atomically as readers of ``dst`` see it."""
        return self.write_stream(dst, self.read_chunks(src))

    def file(self, key: str) -> StoredFile:
        return StoredFile(self, key)

    @contextlib.contextmanager
    def folder_on_host(self, key: str, suffixes: tuple[str, ...]) -> Iterator[Path]:
        """The folder ``key`` as a folder of this host, for code that needs one (the compiler
        imports UDF modules): its own path on a local drive, else a temporary copy of its
        files whose names end in ``suffixes`` (the sources, not the data beside them)."""
        local = self.local_path(key)
        if local is not None:
            yield local
            return
        with tempfile.TemporaryDirectory(prefix="flowbin-") as temporary:
            root = Path(temporary) / (name_of(key) or "drive")
            root.mkdir()
            tree = self.tree(key)
            for parts in tree.folders:
                root.joinpath(*parts).mkdir(parents=True, exist_ok=True)
            for parts in tree.files:
                if parts[-1].endswith(suffixes):
                    with root.joinpath(*parts).open("wb") as copy:
                        for chunk in self.read_chunks(join(key, *parts)):
                            copy.write(chunk)
            yield root


@dataclass(frozen=True)
class StoredFile:
    """A key of a storage, with the few ``Path`` methods the run's files are used with."""

    storage: Storage
    key: str

    def __truediv__(self, name: str) -> StoredFile:
        return StoredFile(self.storage, join(self.key, name))

    def __str__(self) -> str:
        return self.key

    @property
    def name(self) -> str:
        return name_of(self.key)

    @property
    def parent(self) -> StoredFile:
        return StoredFile(self.storage, self.key.rpartition("/")[0])

    def exists(self) -> bool:
        return self.storage.stat(self.key) is not None

    def is_file(self) -> bool:
        node = self.storage.stat(self.key)
        return node is not None and node.type == FILE

    def is_dir(self) -> bool:
        node = self.storage.stat(self.key)
        return node is not None and node.type == FOLDER

    def read_bytes(self) -> bytes:
        return self.storage.read_bytes(self.key)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        self.storage.write_bytes(self.key, data)

    def local_path(self) -> Path | None:
        return self.storage.local_path(self.key)
