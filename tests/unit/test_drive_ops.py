"""shared/drive_ops.py on a real folder: bodies streamed (never whole in memory) and rolled back
when cut short, pages of a folder, and copy and extract checked in full before anything is
written: an archive entry or a link that would lead out of the destination writes nothing."""

from __future__ import annotations

import io
import os
import re
import stat
import tracemalloc
import zipfile

import pytest

from shared import drive_ops
from shared.accounts.principal import Principal
from shared.drive import Drive
from shared.errors import Conflict, InvalidRequest, NotFound, TooLarge

ALICE = Principal(1, "alice", False)
MIB = 1024 * 1024


class Everyone:
    def check(self, principal, relative, *, write):
        return None


@pytest.fixture
def drive(tmp_path) -> Drive:
    drive = Drive(tmp_path / "drive", Everyone())
    drive.space_home("alice")
    return drive


def at(drive: Drive, path: str):
    return drive.resolve(ALICE, path, write=True)


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
    assert written == 64 * MIB == target.real.stat().st_size
    assert peak < 4 * MIB, f"peak {peak} bytes: the body was held in memory"


def test_a_body_cut_short_leaves_the_old_file_and_no_temporary(drive):
    target = at(drive, "alice/a.txt")
    drive_ops.write_stream(target, [b"old"])

    def broken():
        yield b"new"
        raise OSError("connection reset")

    with pytest.raises(OSError):
        drive_ops.write_stream(target, broken())
    assert target.real.read_bytes() == b"old"
    assert os.listdir(target.real.parent) == ["a.txt"]


def test_a_body_past_the_limit_is_a_413_and_writes_nothing(drive):
    target = at(drive, "alice/a.txt")
    with pytest.raises(TooLarge):
        drive_ops.write_stream(target, chunks(3, 10), limit=25)
    assert not target.real.exists() and os.listdir(target.real.parent) == []


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
    assert target.real.read_bytes() == b"abcdef"


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
    for name in ("d", "b", "a", "e", "c"):
        drive_ops.write_stream(at(drive, f"alice/in/{name}"), [name.encode()])
    (at(drive, "alice/in").real / ".a.0123456789abcdef0123456789abcdef.upload").write_bytes(b"")
    folder = at(drive, "alice/in")
    seen, token = [], None
    while True:
        page = drive_ops.list_page(folder, token, 2)
        seen.append([node.name for node in page.nodes])
        token = page.next_token
        if token is None:
            break
    assert seen == [["a", "b"], ["c", "d"], ["e"]]
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
    assert not at(drive, "alice/out").real.exists()


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
    out = at(drive, "alice/out").real
    assert (out / "keep.txt").read_bytes() == b"kept"
    assert (out / "sub/a.txt").read_bytes() == b"new"
    assert (out / "sub/deep/b.txt").read_bytes() == b"b"
    clash = put_zip(drive, "alice/b.zip", zip_of({"sub": b"a file where a folder is"}))
    with pytest.raises(Conflict, match="is a folder"):
        drive_ops.Extract(clash, at(drive, "alice/out"))


def test_a_link_in_the_destination_is_not_written_through(drive, tmp_path):
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
    os.symlink(tmp_path, at(drive, "alice/src").real / "escape")
    done = drive_ops.Copy(at(drive, "alice/src"), at(drive, "alice/dst")).run()
    assert (done.files, done.links_skipped) == (1, 1)
    assert sorted(os.listdir(at(drive, "alice/dst").real)) == ["a.txt"]
    with pytest.raises(InvalidRequest, match="into itself"):
        drive_ops.Copy(at(drive, "alice/src"), at(drive, "alice/src/inner"))
    with pytest.raises(InvalidRequest, match="the same"):
        drive_ops.Copy(at(drive, "alice/src"), at(drive, "alice/src"))
    with pytest.raises(NotFound):
        drive_ops.Copy(at(drive, "alice/none"), at(drive, "alice/dst"))
