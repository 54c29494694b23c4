"""Instabase's Filesystem APIs v2 (``/api/v2/files``) and v1 (``/api/v1/drives``) as their
clients call them: paths with spaces in every segment sent as requests quotes them, bodies
streamed in and out, chunked uploads, pages of a listing, copy and extract answered with a
finished job that jobs/status reports, and the drive's access rules in a team's space.

Who may call which endpoint, cell by cell, is tests/integration/test_authorization_matrix.py;
this module follows each operation through its answers."""

from __future__ import annotations

import io
import json
import stat
import tracemalloc
import zipfile
from urllib.parse import quote

import pytest

from api.app import MAX_UPLOAD_BYTES
from shared import drive_ops
from shared.accounts.credentials import create_token
from shared.accounts.users import create_user
from shared.store.db import session_scope

pytestmark = pytest.mark.integration

ROOT = "alice/my repo/fs/Instabase Drive"
TEAM = "FS Team"
TEAM_ROOT = f"{TEAM}/my repo/fs/Instabase Drive"
STRANGER = "fs_stranger"
MIB = 1024 * 1024
ARGS = "Instabase-API-Args"


def files(path: str) -> str:
    return "/api/v2/files/" + quote(path)


def drives(path: str) -> str:
    return "/api/v1/drives/" + quote(path)


def call(stack, method: str, url: str, user: str = "alice", body=None, headers=None, **kwargs):
    sent = {**stack.headers(user), **(headers or {})}
    if body is not None:
        kwargs["data"] = body if isinstance(body, bytes) else json.dumps(body)
    return getattr(stack.client, method)(url, headers=sent, **kwargs)


def put(stack, path: str, data: bytes, user: str = "alice") -> None:
    written = call(stack, "put", files(path), user, data)
    assert written.status_code == 204, written.get_json()


def read(stack, path: str, user: str = "alice") -> bytes:
    got = call(stack, "get", files(path) + "?expect-node-type=file", user)
    assert got.status_code == 200, got.get_json()
    return got.data


def listing(stack, path: str, user: str = "alice", query: str = "") -> dict:
    got = call(stack, "get", files(path) + "?expect-node-type=folder" + query, user)
    assert got.status_code == 200, got.get_json()
    return got.get_json()


def names(stack, path: str, user: str = "alice") -> list[str]:
    return [node["name"] for node in listing(stack, path, user)["nodes"]]


def v1(arguments: dict) -> dict:
    return {ARGS: json.dumps(arguments)}


def error(response, code: int) -> str:
    assert response.status_code == code, (response.status_code, response.data)
    body = response.get_json()
    assert body["status"] == "ERROR", body
    return body["msg"]


def zip_of(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "../../../etc/passwd")
    return buffer.getvalue()


def job_status(stack, job_id: str, job_type: str | None = None, user: str = "alice") -> dict:
    query = f"job_id={job_id}" + (f"&type={job_type}" if job_type else "")
    got = call(stack, "get", f"/api/v1/jobs/status?{query}", user)
    assert got.status_code == 200, got.get_json()
    return got.get_json()


class Zeros(io.RawIOBase):
    """A request body of ``size`` zero bytes, made as it is read (seekable: the test client
    measures it); ``read_allowed=False``: a body that must not be read at all."""

    def __init__(self, size: int, read_allowed: bool = True):
        self.size, self.position, self.read_allowed = size, 0, read_allowed

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        assert self.read_allowed, "the body was read"
        count = max(0, min(len(buffer), self.size - self.position))
        buffer[:count] = bytes(count)
        self.position += count
        return count


@pytest.fixture(scope="module")
def stranger(stack) -> str:
    with session_scope(stack.settings.sql_url) as session:
        create_user(session, STRANGER)
        stack.tokens[STRANGER] = create_token(session, STRANGER)
    return STRANGER


@pytest.fixture(scope="module")
def team(stack, stranger) -> dict:
    """The team "FS Team": alice (its admin, who made it) and bob, a viewer."""
    made = call(
        stack,
        "post",
        "/api/v2/teams",
        "alice",
        {"name": TEAM, "members": [{"user": "bob", "role": "viewer"}]},
    )
    assert made.status_code == 201, made.get_json()
    return made.get_json()


# -- v2: write, read, probe -------------------------------------------------------------------
def test_put_writes_the_raw_body_and_get_streams_it_back(stack):
    path = f"{ROOT}/in put/a b.txt"
    written = call(stack, "put", files(path), body=b"first")
    assert written.status_code == 204 and written.data == b""
    put(stack, path, b"hello, drive")  # overwritten

    got = call(stack, "get", files(path) + "?expect-node-type=file")
    assert got.status_code == 200 and got.data == b"hello, drive"
    assert got.mimetype == "application/octet-stream"
    assert call(stack, "get", files(path)).data == b"hello, drive"  # a file by default
    # A leading '/' is the drive's root, as Instabase clients write it.
    assert call(stack, "get", "/api/v2/files/" + quote("/" + path)).data == b"hello, drive"
    part = call(stack, "get", files(path), headers={"Range": "bytes=0-4"})
    assert part.status_code == 206 and part.data == b"hello"


def test_head_tells_a_size_without_reading_the_file(stack):
    put(stack, f"{ROOT}/head/small.txt", b"12345")
    big = stack.settings.drive_root / ROOT / "head" / "one gib.bin"
    with big.open("wb") as handle:  # sparse: a gigabyte that takes no disk, nor time to make
        handle.truncate(1024 * MIB)

    small = call(stack, "head", files(f"{ROOT}/head/small.txt"))
    assert small.status_code == 200 and small.headers["Content-Length"] == "5"
    assert small.data == b""
    huge = call(stack, "head", files(f"{ROOT}/head/one gib.bin"))
    assert huge.status_code == 200 and huge.headers["Content-Length"] == str(1024 * MIB)
    folder = call(stack, "head", files(f"{ROOT}/head"))
    assert folder.status_code == 200 and folder.headers["Content-Length"] == "0"
    missing = call(stack, "head", files(f"{ROOT}/head/nothing.txt"))
    assert missing.status_code == 404 and missing.data == b""


def test_a_put_over_the_per_request_cap_is_a_413_that_says_to_use_patch(stack):
    path = f"{ROOT}/caps/too big.bin"
    body = Zeros(MAX_UPLOAD_BYTES + 1, read_allowed=False)
    refused = call(stack, "put", files(path), input_stream=body)
    assert "PATCH" in error(refused, 413) and refused.get_json()["code"] == "too_large"
    assert call(stack, "head", files(path)).status_code == 404


def test_a_large_put_is_streamed_to_disk_not_held_in_memory(stack):
    path = f"{ROOT}/caps/sixty four.bin"
    size = 64 * MIB
    tracemalloc.start()
    try:
        written = call(stack, "put", files(path), input_stream=Zeros(size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written.status_code == 204, written.get_json()
    assert peak < 16 * MIB, f"the upload peaked at {peak} bytes in memory"
    assert call(stack, "head", files(path)).headers["Content-Length"] == str(size)


# -- v2: listing ----------------------------------------------------------------------------
def test_a_folder_is_listed_a_page_at_a_time_sorted_by_name(stack):
    folder = f"{ROOT}/list ing"
    for name in ("e e.txt", "b b.txt", "a a.txt", "d d.txt"):
        put(stack, f"{folder}/{name}", name.encode())
    put(stack, f"{folder}/c sub/inner.txt", b"inner")

    pages, token = [], ""
    while True:
        page = listing(stack, folder, query=f"&page-size=2&start-token={quote(token)}")
        pages.append(page)
        if not page["has_more"]:
            break
        token = page["next_page_token"]
    assert [[node["name"] for node in page["nodes"]] for page in pages] == [
        ["a a.txt", "b b.txt"],
        ["c sub", "d d.txt"],
        ["e e.txt"],
    ]
    assert [page["has_more"] for page in pages] == [True, True, False]
    assert pages[-1]["next_page_token"] is None
    first, sub = pages[0]["nodes"][0], pages[1]["nodes"][0]
    assert first["full_path"] == f"{folder}/a a.txt" and first["type"] == "file"
    assert first["size"] == len(b"a a.txt") and isinstance(first["modified_timestamp"], int)
    assert sub["type"] == "folder" and sub["size"] == 0
    # Without expect-node-type a folder is listed; the default page holds all five.
    default = call(stack, "get", files(folder)).get_json()
    assert len(default["nodes"]) == 5 and default["has_more"] is False
    for bad in ("0", "10001", "x"):
        error(call(stack, "get", files(folder) + f"?page-size={bad}"), 400)


def test_a_file_listed_as_a_folder_has_no_entries_and_a_folder_is_not_read(stack):
    put(stack, f"{ROOT}/probe/a file.txt", b"x")
    as_folder = listing(stack, f"{ROOT}/probe/a file.txt")
    assert as_folder == {"nodes": [], "has_more": False, "next_page_token": None}
    as_file = call(stack, "get", files(f"{ROOT}/probe") + "?expect-node-type=file")
    assert "is a folder" in error(as_file, 400)
    for kind in ("file", "folder"):
        missing = call(stack, "get", files(f"{ROOT}/probe/none") + f"?expect-node-type={kind}")
        assert error(missing, 404) and missing.get_json()["code"] == "not_found"
    error(call(stack, "get", files(f"{ROOT}/probe") + "?expect-node-type=blob"), 400)


# -- v2: chunked upload, folders, delete --------------------------------------------------------
def test_patch_chunks_reassemble_a_file(stack):
    path = f"{ROOT}/chunks/whole file.bin"
    parts = [b"a" * 1000, b"b" * 10, b"c" * 333]
    url = files(path)
    assert call(stack, "patch", url, body=parts[0], headers={"IB-Cursor": "0"}).status_code == 204
    assert call(stack, "patch", url, body=parts[1], headers={"IB-Cursor": "-1"}).status_code == 204
    at_size = call(stack, "patch", url, body=parts[2], headers={"IB-Cursor": "1010"})
    assert at_size.status_code == 204
    assert read(stack, path) == b"".join(parts)

    stale = call(stack, "patch", url, body=b"again", headers={"IB-Cursor": "1000"})
    assert "is 1343 bytes" in error(stale, 409)
    assert read(stack, path) == b"".join(parts)
    assert call(stack, "patch", url, body=b"new", headers={"IB-Cursor": "0"}).status_code == 204
    assert read(stack, path) == b"new"  # cursor 0 starts the file again

    for header in ({}, {"IB-Cursor": "x"}, {"IB-Cursor": "-2"}):
        assert "IB-Cursor" in error(call(stack, "patch", url, body=b"z", headers=header), 400)
    missing = call(
        stack, "patch", files(f"{ROOT}/chunks/none"), body=b"z", headers={"IB-Cursor": "5"}
    )
    assert "does not exist" in error(missing, 409)
    appended = call(
        stack, "patch", files(f"{ROOT}/chunks/new.txt"), body=b"z", headers={"IB-Cursor": "-1"}
    )
    assert appended.status_code == 204 and read(stack, f"{ROOT}/chunks/new.txt") == b"z"


def test_post_makes_a_folder_or_an_empty_file_in_a_folder(stack):
    parent = f"{ROOT}/made/deep er"  # does not exist yet: made too
    made = call(stack, "post", files(parent), body={"name": "new folder", "node_type": "folder"})
    assert made.status_code == 201, made.get_json()
    assert made.get_json() == {
        "status": "OK",
        "full_path": f"{parent}/new folder",
        "node_type": "folder",
    }
    again = call(stack, "post", files(parent), body={"name": "new folder", "node_type": "folder"})
    assert again.status_code == 200
    assert listing(stack, f"{parent}/new folder")["nodes"] == []

    empty = call(stack, "post", files(parent), body={"name": "empty.txt", "node_type": "file"})
    assert empty.status_code == 201 and read(stack, f"{parent}/empty.txt") == b""
    clash = call(stack, "post", files(parent), body={"name": "empty.txt", "node_type": "folder"})
    assert "is a file" in error(clash, 409)
    for body in ({"name": "a/b"}, {"name": ".."}, {"node_type": "folder"}, {"name": "x", "y": 1}):
        error(call(stack, "post", files(parent), body=body), 400)


def test_delete_removes_a_folder_with_all_it_holds(stack):
    put(stack, f"{ROOT}/gone/sub/a.txt", b"a")
    deleted = call(stack, "delete", files(f"{ROOT}/gone"))
    assert deleted.status_code == 202 and deleted.get_json()["status"] == "OK"
    assert call(stack, "head", files(f"{ROOT}/gone/sub/a.txt")).status_code == 404
    error(call(stack, "delete", files(f"{ROOT}/gone")), 404)
    assert "root folder" in error(call(stack, "delete", files("alice")), 400)


# -- v2: copy and extract ---------------------------------------------------------------------
def assert_job_done(stack, job_id: str) -> None:
    """Done, with results, whatever type the caller names; and not in the job list."""
    for job_type in ("flow", "async", "job", None):
        status = job_status(stack, job_id, job_type)
        assert status["state"] == "DONE", status
        assert status["results"] and status["results"][0]["status"] == "OK", status
    listed = call(stack, "get", "/api/v1/jobs/list?limit=100").get_json()["jobs"]
    assert job_id not in {job["job_id"] for job in listed}
    hidden = call(stack, "get", f"/api/v1/jobs/status?job_id={job_id}", "bob")
    assert hidden.status_code == 404


def transfer(stack, operation: str, src: str, dst: str, user: str = "alice"):
    return call(
        stack, "post", f"/api/v2/files/{operation}", user, {"src_path": src, "dst_path": dst}
    )


def test_copy_of_a_file_and_of_a_folder_answers_a_finished_job(stack):
    put(stack, f"{ROOT}/copy src/a.txt", b"a")
    put(stack, f"{ROOT}/copy src/sub dir/b.txt", b"b")
    copied = transfer(stack, "copy", f"{ROOT}/copy src/a.txt", f"{ROOT}/copy dst/new parent/a.txt")
    assert copied.status_code == 202, copied.get_json()
    assert copied.get_json()["status"] == "OK"
    assert read(stack, f"{ROOT}/copy dst/new parent/a.txt") == b"a"
    assert_job_done(stack, copied.get_json()["job_id"])
    # A file copied over a file replaces it.
    put(stack, f"{ROOT}/copy src/a.txt", b"a, again")
    again = transfer(stack, "copy", f"{ROOT}/copy src/a.txt", f"{ROOT}/copy dst/new parent/a.txt")
    assert again.status_code == 202
    assert read(stack, f"{ROOT}/copy dst/new parent/a.txt") == b"a, again"

    # A folder copied into an existing folder is merged into it.
    put(stack, f"{ROOT}/merged/kept.txt", b"kept")
    put(stack, f"{ROOT}/merged/a.txt", b"old")
    folder = transfer(stack, "copy", f"{ROOT}/copy src", f"{ROOT}/merged")
    assert folder.status_code == 202, folder.get_json()
    assert names(stack, f"{ROOT}/merged") == ["a.txt", "kept.txt", "sub dir"]
    assert read(stack, f"{ROOT}/merged/a.txt") == b"a, again"
    assert read(stack, f"{ROOT}/merged/sub dir/b.txt") == b"b"
    status = job_status(stack, folder.get_json()["job_id"])
    assert status["results"] == [{"status": "OK", "output_folder": f"{ROOT}/merged"}]


def test_a_copy_that_cannot_be_done_is_refused_without_a_job(stack):
    put(stack, f"{ROOT}/bad copy/a.txt", b"a")
    into_itself = transfer(stack, "copy", f"{ROOT}/bad copy", f"{ROOT}/bad copy/inner")
    assert "into itself" in error(into_itself, 400)
    error(transfer(stack, "copy", f"{ROOT}/bad copy/none", f"{ROOT}/x"), 404)
    put(stack, f"{ROOT}/bad copy/folder/x.txt", b"x")
    onto_folder = transfer(stack, "copy", f"{ROOT}/bad copy/a.txt", f"{ROOT}/bad copy/folder")
    assert "is a folder" in error(onto_folder, 409)
    error(call(stack, "post", "/api/v2/files/copy", body={"src_path": "alice/x"}), 400)


def test_extract_merges_a_zip_into_an_existing_folder(stack):
    archive = zip_of({"top.txt": b"top", "in side/a b.txt": b"new", "in side/deep/c.txt": b"c"})
    put(stack, f"{ROOT}/zips/pack age.zip", archive)
    put(stack, f"{ROOT}/un packed/kept.txt", b"kept")
    put(stack, f"{ROOT}/un packed/in side/a b.txt", b"old")

    done = transfer(stack, "extract", f"{ROOT}/zips/pack age.zip", f"{ROOT}/un packed")
    assert done.status_code == 202, done.get_json()
    assert names(stack, f"{ROOT}/un packed") == ["in side", "kept.txt", "top.txt"]
    assert read(stack, f"{ROOT}/un packed/in side/a b.txt") == b"new"
    assert read(stack, f"{ROOT}/un packed/in side/deep/c.txt") == b"c"
    assert read(stack, f"{ROOT}/un packed/kept.txt") == b"kept"
    assert_job_done(stack, done.get_json()["job_id"])


@pytest.mark.parametrize(
    ("entry", "link"),
    [("../escaped.txt", False), ("/absolute.txt", False), ("back\\slash.txt", False), ("ln", True)],
    ids=["dot-dot", "absolute", "backslash", "symlink"],
)
def test_a_zip_slip_entry_is_refused_and_nothing_is_written(stack, entry, link):
    archive = zip_of(
        {"fine.txt": b"fine"} if link else {"fine.txt": b"fine", entry: b"x"},
        (entry,) if link else (),
    )
    name = f"{ROOT}/slip/{quote(entry, safe='')}.zip"
    put(stack, name, archive)
    refused = transfer(stack, "extract", name, f"{ROOT}/slip out")
    assert repr(entry) in error(refused, 400)
    assert call(stack, "head", files(f"{ROOT}/slip out")).status_code == 404
    assert call(stack, "head", files(f"{ROOT}/escaped.txt")).status_code == 404


def test_an_archive_past_the_extract_cap_or_no_zip_at_all_is_refused(stack, monkeypatch):
    put(stack, f"{ROOT}/zips/bomb.zip", zip_of({"zeros.bin": bytes(4096)}))
    monkeypatch.setattr(drive_ops, "MAX_EXTRACT_BYTES", 1024)
    bomb = transfer(stack, "extract", f"{ROOT}/zips/bomb.zip", f"{ROOT}/bomb out")
    assert "unpacks to 4096 bytes" in error(bomb, 413)
    put(stack, f"{ROOT}/zips/not a zip.zip", b"plain text")
    assert "not a zip" in error(
        transfer(stack, "extract", f"{ROOT}/zips/not a zip.zip", f"{ROOT}/bomb out"), 400
    )
    assert call(stack, "head", files(f"{ROOT}/bomb out")).status_code == 404


# -- v1 ---------------------------------------------------------------------------------------
def test_v1_reads_a_file_lists_a_folder_and_tells_metadata(stack):
    folder = f"{ROOT}/v1 read"
    for name in ("a.txt", "b.txt", "c.txt"):
        put(stack, f"{folder}/{name}", name.encode())

    got = call(
        stack, "get", drives(f"{folder}/a.txt"), headers=v1({"type": "file", "get_content": True})
    )
    assert got.status_code == 200 and got.data == b"a.txt"
    assert got.mimetype == "application/octet-stream"

    pages, token = [], ""
    while True:
        arguments = {
            "type": "folder",
            "get_content": True,
            "start_page_token": token,
            "page_size": 2,
        }
        page = call(stack, "get", drives(folder), headers=v1(arguments))
        assert page.status_code == 200 and page.mimetype == "application/json"
        pages.append(page.get_json())
        if not pages[-1]["has_more"]:
            break
        token = pages[-1]["next_page_token"]
    assert [[node["name"] for node in page["nodes"]] for page in pages] == [
        ["a.txt", "b.txt"],
        ["c.txt"],
    ]
    assert pages[0]["status"] == "OK" and pages[-1]["next_page_token"] is None
    node = pages[0]["nodes"][0]
    assert node["type"] == "file" and node["path"] == node["full_path"] == f"{folder}/a.txt"
    assert node["metadata"]["size"] == 5 and isinstance(node["metadata"]["modified_timestamp"], int)

    meta = call(
        stack,
        "get",
        drives(f"{folder}/a.txt"),
        headers=v1({"get_metadata": True, "get_content": False}),
    )
    assert meta.get_json()["status"] == "OK"
    assert (
        meta.get_json()["metadata"]["type"] == "file" and meta.get_json()["metadata"]["size"] == 5
    )
    folder_meta = call(
        stack, "get", drives(folder), headers=v1({"get_metadata": True, "get_content": False})
    )
    assert folder_meta.get_json()["metadata"]["type"] == "folder"
    missing = call(stack, "get", drives(f"{folder}/none"), headers=v1({"type": "file"}))
    assert error(missing, 404) and "code" not in missing.get_json()


def test_v1_writes_a_file_whole_or_at_a_cursor_and_makes_folders(stack):
    path = f"{ROOT}/v1 write/a b.txt"
    arguments = {"type": "file", "if_exists": "overwrite", "cursor": 0}
    written = call(
        stack,
        "post",
        drives(path),
        body=b"first ",
        headers={**v1(arguments), "Content-Type": "application/octet-stream"},
    )
    assert written.status_code == 200 and written.get_json() == {"status": "OK", "cursor": -1}
    more = call(
        stack,
        "post",
        drives(path),
        body=b"second",
        headers={**v1({**arguments, "cursor": 6}), "Content-Type": "text/plain"},
    )
    assert more.status_code == 200 and read(stack, path) == b"first second"
    stale = call(stack, "post", drives(path), body=b"x", headers=v1({**arguments, "cursor": 3}))
    assert "is 12 bytes" in error(stale, 409)
    kept = call(
        stack, "post", drives(path), body=b"x", headers=v1({"type": "file", "if_exists": "fail"})
    )
    assert "exists" in error(kept, 409) and read(stack, path) == b"first second"

    made = call(
        stack, "post", drives(f"{ROOT}/v1 write/new folder"), headers=v1({"type": "folder"})
    )
    assert made.status_code == 200 and made.get_json() == {"status": "OK"}
    assert listing(stack, f"{ROOT}/v1 write/new folder")["nodes"] == []

    deleted = call(stack, "delete", drives(f"{ROOT}/v1 write"), body={"force": True})
    assert deleted.status_code == 200 and deleted.get_json() == {"status": "OK"}
    error(call(stack, "delete", drives(f"{ROOT}/v1 write")), 404)


@pytest.mark.parametrize("arguments", [{"type": "folder"}, None], ids=["type-folder", "no-header"])
def test_v1_unzip_answers_a_job_that_jobs_status_reports(stack, arguments):
    """Instabase's clients send the unzip with {"type": "folder"}; it works without one too."""
    folder = f"{ROOT}/v1 zips {bool(arguments)}"
    put(stack, f"{folder}/in put.zip", zip_of({"a.txt": b"a", "sub/b.txt": b"b"}))
    headers = v1(arguments) if arguments else {}
    url = drives(f"{folder}/unzip")
    started = call(
        stack,
        "post",
        url,
        body={"zip_file": "in put.zip", "destination": f"{folder}/un zipped"},
        headers=headers,
    )
    assert started.status_code == 200, started.get_json()
    assert started.get_json()["status"] == "OK"
    status = job_status(stack, started.get_json()["job_id"])
    assert status["state"] == "DONE" and status["results"][0]["status"] == "OK"
    assert read(stack, f"{folder}/un zipped/sub/b.txt") == b"b"

    missing = {"zip_file": "none.zip", "destination": f"{folder}/un zipped"}
    error(call(stack, "post", url, body=missing, headers=headers), 404)
    error(call(stack, "post", url, body={"zip_file": "x"}, headers=headers), 400)
    error(call(stack, "post", url, body=b"not json", headers=headers), 400)


def test_v1_a_folder_named_unzip_is_made_by_a_post_without_a_body(stack):
    made = call(stack, "post", drives(f"{ROOT}/v1 folders/unzip"), headers=v1({"type": "folder"}))
    assert made.status_code == 200 and made.get_json() == {"status": "OK"}
    assert listing(stack, f"{ROOT}/v1 folders/unzip")["nodes"] == []


def test_v1_header_that_is_not_json_is_a_400_naming_it(stack):
    put(stack, f"{ROOT}/v1 args/a.txt", b"a")
    url = drives(f"{ROOT}/v1 args/a.txt")
    for raw in ("{not json", "[1, 2]", json.dumps({"type": "blob"}), json.dumps({"cursor": "x"})):
        assert ARGS in error(call(stack, "get", url, headers={ARGS: raw}), 400)
    # Keys Flowbin does not know are ignored, and said so.
    listed = call(
        stack, "get", drives(f"{ROOT}/v1 args"), headers=v1({"type": "folder", "mime_type": "x"})
    )
    assert listed.get_json()["warnings"] == ["mime_type is not supported and was ignored"]


# -- the drive's rules ------------------------------------------------------------------------
def test_a_team_viewer_reads_the_team_space_but_cannot_change_it(stack, team):
    path = f"{TEAM_ROOT}/in put/a b.txt"
    put(stack, path, b"team data")  # alice made the team: she writes its space
    assert read(stack, path, "bob") == b"team data"
    assert call(stack, "head", files(path), "bob").headers["Content-Length"] == "9"
    assert names(stack, f"{TEAM_ROOT}/in put", "bob") == ["a b.txt"]
    v1_read = call(stack, "get", drives(path), "bob", headers=v1({"type": "file"}))
    assert v1_read.data == b"team data"

    for method, url, kwargs in (
        ("put", files(path), {"body": b"x"}),
        ("patch", files(path), {"body": b"x", "headers": {"IB-Cursor": "-1"}}),
        ("delete", files(path), {}),
        ("post", files(f"{TEAM_ROOT}/in put"), {"body": {"name": "new", "node_type": "folder"}}),
        ("post", drives(path), {"body": b"x", "headers": v1({"type": "file"})}),
        ("delete", drives(path), {}),
    ):
        assert "viewer" in error(call(stack, method, url, "bob", **kwargs), 403), (method, url)
    into_team = transfer(stack, "copy", "bob", f"{TEAM_ROOT}/bob's", "bob")
    error(into_team, 403)
    out_of_team = transfer(stack, "copy", path, "bob/from the team/a b.txt", "bob")
    assert (
        out_of_team.status_code == 202
        and read(stack, "bob/from the team/a b.txt", "bob") == b"team data"
    )
    assert read(stack, path) == b"team data"


def test_an_admin_writes_any_space_and_a_stranger_sees_none(stack, team, stranger):
    path = f"{TEAM_ROOT}/by root.txt"
    put(stack, path, b"root", "root")
    assert read(stack, path) == b"root"
    assert call(stack, "delete", files(path), "root").status_code == 202

    put(stack, f"{TEAM_ROOT}/secret.txt", b"secret")
    missing = call(stack, "get", files(f"{TEAM_ROOT}/no such file"), stranger).get_json()["msg"]
    for method, url, kwargs in (
        ("get", files(f"{TEAM_ROOT}/secret.txt"), {}),
        ("put", files(f"{TEAM_ROOT}/secret.txt"), {"body": b"x"}),
        ("delete", files(f"{TEAM_ROOT}/secret.txt"), {}),
        ("get", drives(f"{TEAM_ROOT}/secret.txt"), {"headers": v1({"type": "file"})}),
        ("get", files(f"{ROOT}/in put/a b.txt"), {}),
    ):
        hidden = call(stack, method, url, stranger, **kwargs)
        assert error(hidden, 404), (method, url)
    assert call(stack, "head", files(f"{TEAM_ROOT}/secret.txt"), stranger).status_code == 404
    hidden = call(stack, "get", files(f"{TEAM_ROOT}/secret.txt"), stranger).get_json()["msg"]
    assert hidden == missing.replace("no such file", "secret.txt")
    error(
        transfer(stack, "copy", f"{TEAM_ROOT}/secret.txt", f"{stranger}/stolen.txt", stranger), 404
    )
    error(transfer(stack, "extract", f"{stranger}/a.zip", f"{TEAM_ROOT}/planted", stranger), 404)


def test_an_api_key_without_manage_files_cannot_touch_the_drive(stack):
    made = call(
        stack, "post", "/api/v2/api-keys", body={"name": "fs-view", "permissions": ["ViewJobs"]}
    )
    assert made.status_code == 201, made.get_json()
    key = {"Authorization": f"Basic {made.get_json()['key']}"}
    for method, url in (
        ("get", files(ROOT)),
        ("put", files(f"{ROOT}/k.txt")),
        ("get", drives(ROOT)),
    ):
        refused = getattr(stack.client, method)(url, headers=key)
        assert "ManageFiles" in error(refused, 403)
