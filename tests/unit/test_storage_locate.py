"""Which storage the drive and the binary store are in (shared/storage/locate.py), from
FLOWBIN_DRIVE_URL and the standard AWS variables (shared/config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Settings
from shared.storage.local import LocalStorage
from shared.storage.locate import binary_storage, drive_storage
from shared.storage.s3 import S3Storage

S3_ENV = {
    "FLOWBIN_DRIVE_URL": "s3://flowbin-bucket/prod/eu",
    "FLOWBIN_S3_ENDPOINT_URL": "http://seaweedfs:8333",
    "AWS_ACCESS_KEY_ID": "key-id",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_REGION": "eu-west-1",
}


def test_the_default_is_the_local_data_folder(tmp_path):
    settings = Settings.from_env({"FLOWBIN_DATA_DIR": str(tmp_path)})
    assert drive_storage(settings) == LocalStorage(tmp_path / "drive")
    assert binary_storage(settings) == LocalStorage(tmp_path / "binaries")


def test_a_file_url_is_a_local_drive_at_that_path(tmp_path):
    settings = Settings.from_env(
        {"FLOWBIN_DATA_DIR": str(tmp_path), "FLOWBIN_DRIVE_URL": f"file://{tmp_path}/elsewhere"}
    )
    assert settings.drive_root == tmp_path / "elsewhere"
    assert drive_storage(settings) == LocalStorage(tmp_path / "elsewhere")


def test_an_s3_url_puts_the_drive_and_the_binaries_under_its_prefix():
    settings = Settings.from_env(S3_ENV)
    assert (settings.aws_access_key_id, settings.aws_region) == ("key-id", "eu-west-1")
    drive, binaries = drive_storage(settings), binary_storage(settings)
    assert isinstance(drive, S3Storage) and isinstance(binaries, S3Storage)
    assert (drive.bucket, drive.prefix) == ("flowbin-bucket", "prod/eu/drive/")
    assert binaries.prefix == "prod/eu/binaries/"
    client = drive.client
    assert client.meta.endpoint_url == "http://seaweedfs:8333"
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.s3["addressing_style"] == "path"
    assert drive_storage(settings) is drive  # one per process


def test_the_aws_variables_pass_to_children_by_their_own_names_and_only_when_set():
    env = Settings.from_env(S3_ENV).to_env()
    assert {name: env[name] for name in S3_ENV} == S3_ENV
    assert "FLOWBIN_AWS_REGION" not in env
    assert "AWS_ACCESS_KEY_ID" not in Settings().to_env()  # boto3's own chain stays in charge


def test_a_drive_url_of_another_kind_says_what_it_must_be():
    with pytest.raises(ValueError, match="FLOWBIN_DRIVE_URL must be s3://bucket/prefix"):
        drive_storage(Settings(data_dir=Path("var"), drive_url="ftp://host/x"))
