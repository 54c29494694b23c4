"""Which storage holds the drive and the binary store, from the settings.

``FLOWBIN_DRIVE_URL`` empty (the default) or ``file:///path``: local folders, the drive in
``FLOWBIN_DRIVE_DIR`` (default ``<data dir>/drive``) or that path, the binaries in
``<data dir>/binaries``. ``s3://bucket/prefix``: objects in that bucket, the drive under
``prefix/drive/`` and the binaries under ``prefix/binaries/``, reached at
``FLOWBIN_S3_ENDPOINT_URL`` (empty: AWS) with ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``
and ``AWS_REGION`` (empty: boto3's own chain, e.g. an instance role). One client per process:
boto3 clients are thread-safe but must not cross a fork, so a forked child makes its own
(storages are kept by process id too).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shared.config import Settings
from shared.storage.backend import Storage
from shared.storage.local import LocalStorage

DRIVE_FOLDER = "drive"
BINARIES_FOLDER = "binaries"


@functools.lru_cache(maxsize=8)
def _s3_client(pid: int, endpoint: str, key_id: str, secret: str, region: str):
    # boto3 is imported here: a local drive never pays for it.
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=key_id or None,
        aws_secret_access_key=secret or None,
        region_name=region or None,
    )
    config = Config(
        # SeaweedFS and MinIO serve buckets at paths, not at subdomains.
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
        # Checksums only where S3 requires them: older S3-compatible stores refuse the
        # trailing CRC32 that boto3 sends by default since 1.36.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=20,
    )
    return session.client("s3", endpoint_url=endpoint or None, config=config)


def s3_location(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(
            f"FLOWBIN_DRIVE_URL must be s3://bucket/prefix or file:///path, not {url!r}"
        )
    return parts.netloc, unquote(parts.path).strip("/")


def is_s3(settings: Settings) -> bool:
    return settings.drive_url.startswith("s3://")


def s3_client(settings: Settings):
    return _s3_client(
        os.getpid(),
        settings.s3_endpoint_url,
        settings.aws_access_key_id,
        settings.aws_secret_access_key,
        settings.aws_region,
    )


@functools.lru_cache(maxsize=32)
def _storage(pid: int, settings: Settings, folder: str, local: Path) -> Storage:
    url = settings.drive_url
    if not url.startswith("s3://"):
        if url and not url.startswith("file://"):
            s3_location(url)  # says what it must be
        return LocalStorage(local)  # settings.drive_root is the file:// URL's folder
    bucket, prefix = s3_location(url)
    from shared.storage.s3 import S3Storage

    return S3Storage(s3_client(settings), bucket, f"{prefix}/{folder}" if prefix else folder)


def drive_storage(settings: Settings) -> Storage:
    """Where the drive's files are: user files, flow projects, binaries, run outputs."""
    return _storage(os.getpid(), settings, DRIVE_FOLDER, settings.drive_root)


def binary_storage(settings: Settings) -> Storage:
    """Where the content-addressed snapshots of the binaries that runs execute are."""
    return _storage(os.getpid(), settings, BINARIES_FOLDER, settings.binary_store)
