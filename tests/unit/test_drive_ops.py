"""shared/drive_ops.py on both storage backends, a real folder and a real object store
(SeaweedFS): bodies streamed (never whole in memory) and rolled back when cut short, pages of a
folder, and copy and extract checked in full before anything is written: an archive entry or a
link (a local folder's) that would lead out of the destination writes nothing."""

from __future__ import annotations

import io
import os
import re
import stat
import tracemalloc
import uuid
import zipfile

import pytest

from shared import drive_ops
from shared.accounts.principal import Principal
from shared.drive import Drive
from shared.errors import Conflict, InvalidRequest, NotFound, TooLarge
from shared.storage import s3

ALICE = Principal(1, "alice", False)
MIB = 1024 * 1024


class Everyone:
    def check(self, principal, relative, *, write):
        return None


@pytest.fixture(params=["local", "s3"])
def drive(request, tmp_path) -> Drive:
    if request.param == "local":
        drive = Drive(tmp_path / "drive", Everyone())
    else:
        store = request.getfixturevalue("object_store")
        storage = s3.S3Storage(store.client(), store.bucket, f"unit/{uuid.uuid4().hex}")
        drive = Drive(storage, Everyone())
    drive.space_home("alice")
    return drive


def local_only(drive: Drive) -> None:
    if drive.root is None:
        pytest.skip("links exist only in a local folder; an object store has none")


def at(drive: Drive, path: str):
    return drive.resolve(ALICE, path, write=True)


def content(drive: Drive, path: str) -> bytes:
    return drive.storage.read_bytes(path)


def exists(drive: Drive, path: str) -> bool:
    return drive.storage.stat(path) is not None


def held(drive: Drive, folder: str) -> list[str]:
    """What the storage holds in ``folder``, writes in progress included: a local folder's
    names (temporary files too), an object store's keys and its unfinished uploads."""
    if drive.root is not None:
        return sorted(os.listdir(drive.root / folder))
    storage = drive.storage
    prefix = f"{storage.prefix}{folder}/"
    listed = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=prefix, Delimiter="/")
    names = [item["Key"][len(prefix) :] for item in listed.get("Contents") or []]
    names += [item["Prefix"][len(prefix) :] for item in listed.get("CommonPrefixes") or []]
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=prefix)
    names += [f"upload of {item['Key']}" for item in uploads.get("Uploads") or []]
    return sorted(name for name in names if name)


def chunks(count: int, size: int = MIB):
    chunk = b"x" * size
    for _ in range(count):
        yield chunk


def test_a_64_mib_body_is_written_without_holding_it(drive):
    target = at(drive, "alice/big/file.bin")
    tracemalloc.start()
    try:
        written = drive_ops.write_stream(target, chunks(64))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == 64 * MIB == drive_ops.require_node(target).size
    # A local write holds a chunk; an object store's, the part it is sending (8 MiB).
    bound = 4 * MIB if drive.root is not None else 3 * s3.PART_BYTES
    assert peak < bound, f"peak {peak} bytes: the body was held in memory"


def test_a_body_cut_short_leaves_the_old_file_and_no_temporary(drive):
    target = at(drive, "alice/a.txt")
    drive_ops.write_stream(target, [b"old"])

    def broken():
        yield b"new"
        yield from chunks(9)  # past a part: on an object store, a multipart upload is open
        raise OSError("connection reset")

    with pytest.raises(OSError):
        drive_ops.write_stream(target, broken())
    assert content(drive, "alice/a.txt") == b"old"
    assert held(drive, "alice") == ["a.txt"]  # no temporary file, no upload left open


def test_a_body_past_the_limit_is_a_413_and_writes_nothing(drive):
    target = at(drive, "alice/a.txt")
    with pytest.raises(TooLarge):
        drive_ops.write_stream(target, chunks(3, 10), limit=25)
    assert not exists(drive, "alice/a.txt") and held(drive, "alice") == []


def test_appending_checks_the_size_and_undoes_a_cut_append(drive):
    target = at(drive, "alice/a.txt")
    with pytest.raises(Conflict, match="does not exist"):
        drive_ops.append_stream(target, [b"x"], expected_size=3)
    assert drive_ops.append_stream(target, [b"abc"]) == 3  # made when missing
    assert drive_ops.append_stream(target, [b"def"], expected_size=3) == 6
    with pytest.raises(Conflict, match="is 6 bytes"):
        drive_ops.append_stream(target, [b"ghi"], expected_size=3)

    def broken():
        yield b"partial"
        raise OSError("connection reset")

    with pytest.raises(OSError):
        drive_ops.append_stream(target, broken())
    assert content(drive, "alice/a.txt") == b"abcdef"


def test_appending_to_a_big_file_keeps_every_byte_and_a_cut_append_changes_nothing(drive):
    # Past a part's size an object store copies the file inside itself, then adds the chunk.
    target = at(drive, "alice/big.bin")
    drive_ops.write_stream(target, [b"a" * (6 * MIB)])
    assert drive_ops.append_stream(target, [b"b" * 100], expected_size=6 * MIB) == 6 * MIB + 100
    assert drive_ops.append_stream(target, chunks(9)) == 15 * MIB + 100

    def broken():
        yield b"partial"
        raise OSError("connection reset")

    with pytest.raises(OSError):
        drive_ops.append_stream(target, broken())
    with pytest.raises(TooLarge):
        drive_ops.append_stream(target, [b"c" * 10], limit=15 * MIB + 105)
    data = content(drive, "alice/big.bin")
    assert len(data) == 15 * MIB + 100
    assert data[: 6 * MIB] == b"a" * (6 * MIB) and data[6 * MIB : 6 * MIB + 100] == b"b" * 100
    assert data[6 * MIB + 100 :] == b"x" * (9 * MIB)
    assert held(drive, "alice") == ["big.bin"]


def test_a_space_or_a_folder_is_not_written_as_a_file(drive):
    drive_ops.make_folder(at(drive, "alice/folder"))
    for path in ("alice", "alice/folder", "nobody"):
        with pytest.raises(InvalidRequest):
            drive_ops.write_stream(at(drive, path), [b"x"])
    drive_ops.write_stream(at(drive, "alice/file"), [b"x"])
    with pytest.raises(InvalidRequest, match="is a file"):
        drive_ops.write_stream(at(drive, "alice/file/inner"), [b"x"])
    with pytest.raises(Conflict):
        drive_ops.make_folder(at(drive, "alice/file"))
    assert drive_ops.make_folder(at(drive, "alice/folder")) is False


def test_pages_follow_one_another_by_name(drive):
    for name in ("d", "b", "a", "e"):
        drive_ops.write_stream(at(drive, f"alice/in/{name}"), [name.encode()])
    drive_ops.write_stream(at(drive, "alice/in/c/inside"), [b"a folder's file"])
    if drive.root is not None:  # a write in progress, which a listing leaves out
        (drive.root / "alice/in/.a.0123456789abcdef0123456789abcdef.upload").write_bytes(b"")
    folder = at(drive, "alice/in")
    seen, token = [], None
    while True:
        page = drive_ops.list_page(folder, token, 2)
        seen.append([node.name for node in page.nodes])
        token = page.next_token
        if token is None:
            break
    assert seen == [["a", "b"], ["c", "d"], ["e"]]
    # A page that ends with a folder goes on after everything in it.
    first = drive_ops.list_page(folder, None, 3)
    assert [(node.name, node.type) for node in first.nodes] == [
        ("a", "file"),
        ("b", "file"),
        ("c", "folder"),
    ]
    rest = drive_ops.list_page(folder, first.next_token, 3)
    assert [node.name for node in rest.nodes] == ["d", "e"] and rest.next_token is None
    assert drive_ops.list_page(at(drive, "alice/in/a")).nodes == []
    with pytest.raises(NotFound):
        drive_ops.list_page(at(drive, "alice/none"))


def zip_of(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def put_zip(drive: Drive, path: str, data: bytes):
    target = at(drive, path)
    drive_ops.write_stream(target, [data])
    return target


@pytest.mark.parametrize(
    ("entries", "links", "named"),
    [
        ({"ok.txt": b"1", "../evil.txt": b"x"}, (), "../evil.txt"),
        ({"ok.txt": b"1", "/abs.txt": b"x"}, (), "/abs.txt"),
        ({"ok.txt": b"1", "a\\b.txt": b"x"}, (), "a\\b.txt"),
        ({"ok.txt": b"1", "C:/x.txt": b"x"}, (), "C:/x.txt"),
        ({"ok.txt": b"1"}, ("link",), "link"),
    ],
)
def test_an_entry_that_leaves_the_destination_writes_nothing(drive, entries, links, named):
    archive = put_zip(drive, "alice/a.zip", zip_of(entries, links))
    with pytest.raises(InvalidRequest, match=re.escape(f"entry {named!r}")):
        drive_ops.Extract(archive, at(drive, "alice/out"))
    assert not exists(drive, "alice/out")


def test_an_archive_that_unpacks_past_the_cap_is_a_413(drive):
    archive = put_zip(drive, "alice/a.zip", zip_of({"a": b"0" * 100, "b": b"0" * 100}))
    with pytest.raises(TooLarge, match="unpacks to 200 bytes"):
        drive_ops.Extract(archive, at(drive, "alice/out"), max_bytes=150)
    with pytest.raises(TooLarge, match="2 entries"):
        drive_ops.Extract(archive, at(drive, "alice/out"), max_entries=1)


def test_extract_merges_and_refuses_a_file_where_a_folder_is(drive):
    drive_ops.write_stream(at(drive, "alice/out/keep.txt"), [b"kept"])
    drive_ops.write_stream(at(drive, "alice/out/sub/a.txt"), [b"old"])
    archive = put_zip(drive, "alice/a.zip", zip_of({"sub/a.txt": b"new", "sub/deep/b.txt": b"b"}))
    done = drive_ops.Extract(archive, at(drive, "alice/out")).run()
    assert (done.files, done.bytes) == (2, 4)
    assert content(drive, "alice/out/keep.txt") == b"kept"
    assert content(drive, "alice/out/sub/a.txt") == b"new"
    assert content(drive, "alice/out/sub/deep/b.txt") == b"b"
    clash = put_zip(drive, "alice/b.zip", zip_of({"sub": b"a file where a folder is"}))
    with pytest.raises(Conflict, match="is a folder"):
        drive_ops.Extract(clash, at(drive, "alice/out"))


def test_a_link_in_the_destination_is_not_written_through(drive, tmp_path):
    local_only(drive)
    outside = tmp_path / "outside"
    outside.mkdir()
    drive_ops.make_folder(at(drive, "alice/out"))
    os.symlink(outside, at(drive, "alice/out").real / "sub")
    archive = put_zip(drive, "alice/a.zip", zip_of({"sub/x.txt": b"x"}))
    with pytest.raises(InvalidRequest, match="link"):
        drive_ops.Extract(archive, at(drive, "alice/out"))
    drive_ops.write_stream(at(drive, "alice/src/sub/x.txt"), [b"x"])
    with pytest.raises(InvalidRequest, match="link"):
        drive_ops.Copy(at(drive, "alice/src"), at(drive, "alice/out"))
    assert list(outside.iterdir()) == []


def test_copy_leaves_links_out_and_not_into_itself(drive, tmp_path):
    drive_ops.write_stream(at(drive, "alice/src/a.txt"), [b"a"])
    links = 0
    if drive.root is not None:
        os.symlink(tmp_path, at(drive, "alice/src").real / "escape")
        links = 1
    done = drive_ops.Copy(at(drive, "alice/src"), at(drive, "alice/dst")).run()
    assert (done.files, done.links_skipped) == (1, links)
    assert held(drive, "alice/dst") == ["a.txt"]
    assert content(drive, "alice/dst/a.txt") == b"a"
    with pytest.raises(InvalidRequest, match="into itself"):
        drive_ops.Copy(at(drive, "alice/src"), at(drive, "alice/src/inner"))
    with pytest.raises(InvalidRequest, match="the same"):
        drive_ops.Copy(at(drive, "alice/src"), at(drive, "alice/src"))
    with pytest.raises(NotFound):
        drive_ops.Copy(at(drive, "alice/none"), at(drive, "alice/dst"))
