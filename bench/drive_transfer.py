"""A 64 MiB upload and download through the API, on the local drive and on an object store
(SeaweedFS, started here as the tests start it): time and the API process's peak RSS.

Over real HTTP to a real `gunicorn api.wsgi:app` (one worker, one thread), PUT and GET
`/api/v2/files/<path>`; the peak RSS is the worker's VmHWM from /proc, read after a warm-up
(small files up and down) and after each transfer, so the growth is what the transfer cost.

    .venv/bin/python bench/drive_transfer.py [--mib 64] [--backend local|s3|both]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sync_latency import free_port  # noqa: E402
from shared.accounts import credentials, users  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.drive import Drive  # noqa: E402
from shared.storage.locate import drive_storage  # noqa: E402
from shared.store import migrate  # noqa: E402
from shared.store.db import session_scope  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64, help="size of the file, in MiB")
    parser.add_argument("--backend", choices=["local", "s3", "both"], default="both")
    return parser.parse_args()


def peak_rss_kib(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of ``pid``, in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}")
        try:
            if requests.get(f"{url}/health", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer {url}/health within {timeout} s")


def worker_pid(master: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise SystemExit("gunicorn started no worker")


def measure(settings: Settings, folder: Path, size: int, label: str) -> None:
    migrate.upgrade(settings.sql_url)
    with session_scope(settings.sql_url) as session:
        users.create_user(session, "bench")
        token = credentials.create_token(session, "bench")
    Drive(drive_storage(settings)).space_home("bench")
    port = free_port()
    env = {**os.environ, **settings.to_env()}
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        f"--bind=127.0.0.1:{port}",
        "--workers=1",
        "--threads=1",
        "api.wsgi:app",
    ]
    with (folder / "gunicorn.log").open("ab") as sink:
        gunicorn = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        wait_healthy(url, gunicorn)
        pid = worker_pid(gunicorn.pid)
        for index in range(3):  # warm-up: imports, clients, connection pools
            small = f"{url}/api/v2/files/bench/warm/{index}.bin"
            requests.put(small, data=b"x" * MIB, headers=headers).raise_for_status()
            requests.get(small, headers=headers).raise_for_status()
        before, _ = peak_rss_kib(pid)
        body = folder / "body.bin"
        with body.open("wb") as handle:
            handle.truncate(size)
        target = f"{url}/api/v2/files/bench/big/{uuid.uuid4().hex}.bin"
        started = time.perf_counter()
        with body.open("rb") as handle:
            requests.put(target, data=handle, headers=headers).raise_for_status()
        upload_s = time.perf_counter() - started
        after_upload, _ = peak_rss_kib(pid)
        started = time.perf_counter()
        received = 0
        with requests.get(target, headers=headers, stream=True) as got:
            got.raise_for_status()
            for chunk in got.iter_content(MIB):
                received += len(chunk)
        download_s = time.perf_counter() - started
        after_download, rss = peak_rss_kib(pid)
        assert received == size, (received, size)
        mib = size / MIB
        print(
            f"{label}: {mib:.0f} MiB up in {upload_s:.2f} s ({mib / upload_s:.0f} MiB/s), "
            f"down in {download_s:.2f} s ({mib / download_s:.0f} MiB/s); API worker peak RSS "
            f"{before / 1024:.1f} MiB after warm-up, {after_upload / 1024:.1f} MiB after the "
            f"upload (+{(after_upload - before) / 1024:.1f}), {after_download / 1024:.1f} MiB "
            f"after the download (+{(after_download - after_upload) / 1024:.1f}); "
            f"RSS now {rss / 1024:.1f} MiB"
        )
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=20)


def main() -> None:
    args = parse_args()
    size = args.mib * MIB
    with tempfile.TemporaryDirectory(prefix="flowbin-transfer-") as tmp:
        base = Settings(data_dir=Path(tmp) / "local")
        if args.backend in ("local", "both"):
            folder = Path(tmp) / "local"
            folder.mkdir()
            measure(base, folder, size, "local drive")
        if args.backend in ("s3", "both"):
            from tests import seaweedfs

            folder = Path(tmp) / "s3"
            folder.mkdir()
            (folder / "store").mkdir()
            serving = seaweedfs.serve(folder / "store")
            store = next(serving)
            try:
                settings = replace(base, data_dir=folder, **store.settings_overrides("bench"))
                measure(settings, folder, size, "S3 drive (SeaweedFS)")
            finally:
                serving.close()


if __name__ == "__main__":
    main()
