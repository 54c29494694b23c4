"""The drive in an S3-compatible object store (AWS S3, SeaweedFS, MinIO), through boto3.

Why boto3: it is AWS's own SDK, released every week, and speaks every S3-compatible store
through ``endpoint_url``; it gives the three calls this needs directly and streaming (multipart
uploads, ``list_objects_v2`` with continuation tokens, ranged ``get_object``), with retries and
the standard credential chain (``AWS_ACCESS_KEY_ID``...). fsspec/s3fs adds a file-system layer
(and aiobotocore) this does not need; obstore is younger and has no multipart control from
Python. boto3's managed transfers (``upload_fileobj``) buffer up to ten 8 MiB parts at once;
this module sends parts itself, one at a time, so an upload holds one part in memory.

How the drive maps to objects: the key ``alice/in/a.txt`` is the object
``<prefix>alice/in/a.txt``; a folder is every key under ``<prefix>alice/in/``, and a folder
made empty is a marker object ``<prefix>alice/in/`` (no bytes). Writes are atomic as readers
see them because an object appears whole: a PUT, or a multipart upload's completion (an upload
that fails is aborted and leaves nothing). An append rewrites the object (its old bytes
copied inside the store as the first parts of a multipart upload, or read back when the file
is smaller than a part, then the new ones); two appends to one file at the same time race, the
last completed wins (an object store has no lock; the local folder does).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain
from typing import BinaryIO

from shared.errors import Conflict, TooLarge
from shared.storage.backend import FILE, FOLDER, Node, Storage, Tree, name_of

# A multipart upload's parts are at least this big (S3's minimum is 5 MiB, but for the last).
PART_BYTES = 8 * 1024 * 1024
# Every part but the last is at least this big (S3's rule); a part copied inside the store is
# at most COPY_PART_BYTES here (S3 allows up to 5 GiB).
MIN_PART_BYTES = 5 * 1024 * 1024
COPY_PART_BYTES = 1024 * 1024 * 1024
DELETE_BATCH = 1000  # delete_objects takes at most 1000 keys
# Above every UTF-8 encoded character: "folder/" + this sorts after every key in the folder.
AFTER_EVERYTHING = "\U0010ffff"


def _missing(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def _seconds(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment is not None else 0


def _copy_ranges(size: int) -> list[tuple[int, int]]:
    """Inclusive byte ranges that copy ``size`` bytes as parts of an upload that goes on after
    them: none shorter than a part may be (the remainder joins the range before it)."""
    ranges, start = [], 0
    while start < size:
        end = min(start + COPY_PART_BYTES, size)
        if size - end < MIN_PART_BYTES:
            end = size
        ranges.append((start, end - 1))
        start = end
    return ranges


class S3Reader(io.RawIOBase):
    """A seekable reader of one object: each read streams from a ranged GET, opened at the
    position read from, so a seek (zipfile's, a Range request's) costs one new request."""

    def __init__(self, client, bucket: str, key: str, size: int):
        self.client, self.bucket, self.key, self.size = client, bucket, key, size
        self.position = 0
        self.body = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        position = max(base + offset, 0)
        if position != self.position:
            self._drop_body()
            self.position = position
        return position

    def readinto(self, buffer) -> int:
        if self.position >= self.size or not len(buffer):
            return 0
        if self.body is None:
            self.body = self.client.get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes={self.position}-"
            )["Body"]
        data = self.body.read(len(buffer))
        if not data:  # the connection ended before the object did: never a short file
            self._drop_body()
            raise OSError(f"the object store stopped sending {self.key} at byte {self.position}")
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


class S3Storage(Storage):
    def __init__(self, client, bucket: str, prefix: str = ""):
        self.client, self.bucket = client, bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""

    def __repr__(self) -> str:
        return f"S3Storage('s3://{self.bucket}/{self.prefix}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Storage) and (other.bucket, other.prefix) == (
            self.bucket,
            self.prefix,
        )

    def __hash__(self) -> int:
        return hash((self.bucket, self.prefix))

    def _object(self, key: str) -> str:
        return self.prefix + key

    def _folder(self, key: str) -> str:
        return f"{self.prefix}{key}/" if key else self.prefix

    def _head(self, key: str) -> dict | None:
        if not key:
            return None
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        except self.client.exceptions.ClientError as error:
            if _missing(error):
                return None
            raise

    def _holds_anything(self, key: str) -> dict | None:
        """The first object under the folder ``key`` (its marker, if it has one), or None."""
        page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._folder(key), MaxKeys=1)
        contents = page.get("Contents") or []
        return contents[0] if contents else None

    # -- reading --------------------------------------------------------------------------
    def stat(self, key: str) -> Node | None:
        if not key:
            return Node("", "", FOLDER, 0, 0)
        head = self._head(key)
        if head is not None:
            return Node(
                name_of(key), key, FILE, head["ContentLength"], _seconds(head["LastModified"])
            )
        first = self._holds_anything(key)
        if first is None:
            return None
        modified = first["LastModified"] if first["Key"] == self._folder(key) else None
        return Node(name_of(key), key, FOLDER, 0, _seconds(modified))

    def kind_of(self, key: str) -> str | None:
        node = self.stat(key)
        return node.type if node is not None else None

    def list_page(self, key: str, after: str | None, size: int) -> tuple[list[Node], str | None]:
        # Tokens are names as S3 orders them: a folder's with its '/', so that the next page
        # starts after everything in it.
        folder = self._folder(key)
        start = folder + after + (AFTER_EVERYTHING if after.endswith("/") else "") if after else ""
        entries: list[tuple[str, Node]] = []
        request = {"Bucket": self.bucket, "Prefix": folder, "Delimiter": "/", "MaxKeys": size + 1}
        if start:
            request["StartAfter"] = start
        while len(entries) <= size:
            page = self.client.list_objects_v2(**request)
            for item in page.get("Contents") or []:
                name = item["Key"][len(folder) :]
                if name:  # the folder's own marker is not an entry of it
                    node = Node(
                        name,
                        f"{key}/{name}" if key else name,
                        FILE,
                        item["Size"],
                        _seconds(item["LastModified"]),
                    )
                    entries.append((name, node))
            for item in page.get("CommonPrefixes") or []:
                name = item["Prefix"][len(folder) : -1]
                node = Node(name, f"{key}/{name}" if key else name, FOLDER, 0, 0)
                entries.append((f"{name}/", node))
            if not page.get("IsTruncated"):
                break
            request["ContinuationToken"] = page["NextContinuationToken"]
        entries.sort(key=lambda entry: entry[0].encode())
        nodes = [node for _, node in entries[:size]]
        return nodes, entries[size - 1][0] if len(entries) > size else None

    def _objects_under(self, key: str) -> Iterator[dict]:
        request = {"Bucket": self.bucket, "Prefix": self._folder(key)}
        while True:
            page = self.client.list_objects_v2(**request)
            yield from page.get("Contents") or []
            if not page.get("IsTruncated"):
                return
            request["ContinuationToken"] = page["NextContinuationToken"]

    def tree(self, key: str) -> Tree:
        folder = self._folder(key)
        folders: set[tuple[str, ...]] = set()
        files = []
        for item in self._objects_under(key):
            parts = tuple(part for part in item["Key"][len(folder) :].split("/") if part)
            if not parts:
                continue
            if item["Key"].endswith("/"):
                folders.add(parts)
            else:
                files.append(parts)
            folders.update(parts[:end] for end in range(1, len(parts)))
        return Tree(sorted(folders), files)

    def open_read(self, key: str) -> BinaryIO:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(key)
        raw = S3Reader(self.client, self.bucket, self._object(key), head["ContentLength"])
        return io.BufferedReader(raw, buffer_size=1024 * 1024)

    def read_bytes(self, key: str) -> bytes:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self._object(key))
        except self.client.exceptions.ClientError as error:
            if _missing(error):
                raise FileNotFoundError(key) from None
            raise
        return reply["Body"].read()

    # -- writing --------------------------------------------------------------------------
    def ensure_parents(self, key: str) -> None:
        # No folders to make: a key's prefixes are its folders. One of them may be a file.
        parts = key.split("/")[:-1]
        for end in range(len(parts), 0, -1):
            if self._head("/".join(parts[:end])) is not None:
                raise NotADirectoryError(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._object(key), Body=data)

    def write_stream(self, key: str, chunks: Iterable[bytes], limit: int | None = None) -> int:
        written = 0
        buffer = bytearray()
        upload_id = None
        parts: list[dict] = []
        target = self._object(key)
        try:
            for chunk in chunks:
                written += len(chunk)
                if limit is not None and written > limit:
                    raise TooLarge(f"more than the {limit} bytes one write may carry")
                buffer += chunk
                if len(buffer) >= PART_BYTES:  # sent as it is: one part's bytes in memory
                    if upload_id is None:
                        upload_id = self.client.create_multipart_upload(
                            Bucket=self.bucket, Key=target
                        )["UploadId"]
                    self._send_part(target, upload_id, parts, buffer)
                    buffer = bytearray()
            if upload_id is None:  # small enough for one PUT
                self.client.put_object(Bucket=self.bucket, Key=target, Body=buffer)
                return written
            if buffer or not parts:
                self._send_part(target, upload_id, parts, buffer)
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=target,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            return written
        except BaseException:
            if upload_id is not None:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=target, UploadId=upload_id
                )
            raise

    def _send_part(self, target: str, upload_id: str, parts: list[dict], data: bytearray) -> None:
        number = len(parts) + 1
        reply = self.client.upload_part(
            Bucket=self.bucket, Key=target, UploadId=upload_id, PartNumber=number, Body=data
        )
        parts.append({"PartNumber": number, "ETag": reply["ETag"]})

    def append_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        expected_size: int | None = None,
        limit: int | None = None,
    ) -> int:
        head = self._head(key)
        if head is None:
            if expected_size is not None:
                raise FileNotFoundError(key)
            if self.stat(key) is not None:
                raise IsADirectoryError(key)
            self.ensure_parents(key)
            return self.write_stream(key, chunks, limit)
        size = head["ContentLength"]
        if expected_size is not None and size != expected_size:
            raise Conflict(
                f"{key!r} is {size} bytes, not {expected_size}: "
                f"send the chunk that starts at byte {size}"
            )
        if size < MIN_PART_BYTES:  # too small to be a part of its own: rewritten whole
            return self.write_stream(key, chain(self.read_chunks(key), chunks), limit)
        return self._append_after_copy(key, size, chunks, limit)

    def _append_after_copy(
        self, key: str, size: int, chunks: Iterable[bytes], limit: int | None
    ) -> int:
        """One multipart upload over the object: its bytes copied inside the store as the
        first parts, then the new ones sent part by part; the old bytes never reach us."""
        target = self._object(key)
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=target)["UploadId"]
        parts: list[dict] = []
        try:
            for first, last in _copy_ranges(size):
                reply = self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=target,
                    UploadId=upload_id,
                    PartNumber=len(parts) + 1,
                    CopySource={"Bucket": self.bucket, "Key": target},
                    CopySourceRange=f"bytes={first}-{last}",
                )
                parts.append(
                    {"PartNumber": len(parts) + 1, "ETag": reply["CopyPartResult"]["ETag"]}
                )
            written, buffer = size, bytearray()
            for chunk in chunks:
                written += len(chunk)
                if limit is not None and written > limit:
                    raise TooLarge(f"more than the {limit} bytes one write may carry")
                buffer += chunk
                if len(buffer) >= PART_BYTES:
                    self._send_part(target, upload_id, parts, buffer)
                    buffer = bytearray()
            if buffer:
                self._send_part(target, upload_id, parts, buffer)
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=target,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            return written
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id)
            raise

    def make_folder(self, key: str) -> bool:
        node = self.stat(key)
        if node is not None and node.type == FOLDER:
            return False
        self.ensure_parents(key)
        self.client.put_object(Bucket=self.bucket, Key=self._folder(key), Body=b"")
        return True

    def delete(self, key: str) -> bool:
        found = False
        if self._head(key) is not None:
            self.client.delete_object(Bucket=self.bucket, Key=self._object(key))
            found = True
        batch = []
        for item in self._objects_under(key):
            batch.append({"Key": item["Key"]})
            if len(batch) == DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
            found = True
        if batch:
            self._delete_batch(batch)
        return found

    def _delete_batch(self, batch: list[dict]) -> None:
        self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def move(self, old: str, new: str) -> None:
        # An object store renames by copying: not atomic, but a team's rename is rare and the
        # old space stays whole until every object is copied.
        if self._head(old) is not None:
            self.copy_file(old, new)
        for item in list(self._objects_under(old)):
            self.client.copy(
                {"Bucket": self.bucket, "Key": item["Key"]},
                self.bucket,
                self._folder(new) + item["Key"][len(self._folder(old)) :],
            )
        self.delete(old)

    def copy_file(self, src: str, dst: str) -> int:
        # Copied inside the store (multipart for big objects): the bytes never reach us.
        self.client.copy(
            {"Bucket": self.bucket, "Key": self._object(src)}, self.bucket, self._object(dst)
        )
        return self._head(dst)["ContentLength"]
