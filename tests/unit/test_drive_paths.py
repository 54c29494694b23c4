import os
import uuid

import pytest

from shared.accounts.access import StoreGuard
from shared.accounts.principal import Principal
from shared.drive import Drive, normalize
from shared.errors import InvalidRequest, NotFound
from shared.storage import s3

ALICE = Principal(1, "alice", False)
ADMIN = Principal(2, "admin", True)


@pytest.mark.parametrize(
    "path",
    [
        "alice/../bob/x",
        "..",
        "alice/a/../../x",
        "alice\\x",
        "alice/\x00x",
        "C:/windows",
        "",
        "   ",
        "./../x",
    ],
)
def test_bad_paths_are_rejected(path):
    with pytest.raises(InvalidRequest):
        normalize(path)


def test_normalize_drops_empty_and_dot_segments():
    assert normalize("alice//a/./b/") == "alice/a/b"


def test_a_leading_slash_means_the_drive_root():
    assert normalize("/alice/in") == normalize("//alice/in") == "alice/in"
    with pytest.raises(InvalidRequest):
        normalize("/")


@pytest.fixture(params=["local", "s3"])
def storage_root(request, tmp_path):
    """What a Drive is made over: a local folder, or a fresh prefix of a real object store."""
    if request.param == "local":
        return tmp_path
    store = request.getfixturevalue("object_store")
    return s3.S3Storage(store.client(), store.bucket, f"paths/{uuid.uuid4().hex}")


def test_other_users_namespace_is_not_found_for_users_but_open_to_admins(storage_root, store_url):
    drive = Drive(storage_root, StoreGuard(store_url))
    with pytest.raises(NotFound):
        drive.resolve(ALICE, "bob/secret.txt")
    resolved = drive.resolve(ADMIN, "bob/secret.txt")
    assert resolved.relative == "bob/secret.txt"
    if drive.root is not None:
        assert resolved.real == storage_root.resolve() / "bob/secret.txt"


def test_a_drive_without_a_guard_resolves_no_caller_path(tmp_path):
    with pytest.raises(RuntimeError, match="no guard"):
        Drive(tmp_path).resolve(ALICE, "alice/a.txt")


def test_symlink_leaving_the_drive_is_rejected(tmp_path, store_url):
    root = tmp_path / "drive"
    (root / "alice").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("no")
    os.symlink(outside, root / "alice" / "link")
    drive = Drive(root, StoreGuard(store_url))
    with pytest.raises(InvalidRequest, match="outside the drive"):
        drive.resolve(ALICE, "alice/link/secret.txt")


def test_write_read_list_delete(storage_root, store_url):
    drive = Drive(storage_root, StoreGuard(store_url))
    target = drive.resolve(ALICE, "alice/in/a.txt")
    drive.write(target, b"hello")
    assert drive.read(target) == b"hello"
    listing = drive.listing(drive.resolve(ALICE, "alice/in"))
    assert [(e["name"], e["type"], e["size"]) for e in listing] == [("a.txt", "file", 5)]
    with pytest.raises(InvalidRequest, match="is a file"):
        drive.write(drive.resolve(ALICE, "alice/in/a.txt/b.txt"), b"under a file")
    drive.delete(drive.resolve(ALICE, "alice/in"))
    with pytest.raises(NotFound):
        drive.read(target)
    with pytest.raises(NotFound):
        drive.listing(drive.resolve(ALICE, "alice/in"))
    with pytest.raises(InvalidRequest):
        drive.delete(drive.resolve(ALICE, "alice"))
