"""The drive in a real object store (SeaweedFS's S3 gateway, tests/seaweedfs.py): files
uploaded over HTTP, a flow compiled and run by a real worker on a host of its own (a data
folder of its own, no shared folder), the results read back over HTTP, a sync run; 64 MiB
streamed up and down without being held; the three file faces' paging, ranges, folders, copy
and extract; documents as a run's input, a review's correction and a job's contents. Nothing of
the drive or the binaries ever lands in a local folder."""

from __future__ import annotations

import base64
import io
import json
import tracemalloc
import uuid
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import pytest

from shared.accounts.credentials import create_token
from shared.accounts.users import create_user
from shared.config import Settings
from shared.drive import Drive
from shared.storage import s3
from shared.storage.locate import drive_storage
from shared.store.db import session_scope
from shared.store.migrate import upgrade
from tests.conftest import ApiUser, start_worker, stop_worker, wait_worker_ready
from tests.integration.flows import (
    CHECKED_FLOW,
    compile_flow,
    invoice,
    put_project,
    run_async,
    wait_done,
)
from tests.integration.test_filesystem_apis import Zeros

pytestmark = pytest.mark.integration

S3_REDIS_DB = 10
MIB = 1024 * 1024
ROOT = "alice/s3 project"


@dataclass
class S3Stack(ApiUser):
    settings: Settings
    client: object
    tokens: dict[str, str]
    store: object  # tests.seaweedfs.ObjectStore
    prefix: str
    homes: tuple[Path, ...]  # the API's and the worker's data folders

    def objects(self, under: str) -> list[str]:
        """The keys of the bucket under ``prefix/under``, relative to it."""
        client, start = self.store.client(), f"{self.prefix}/{under}"
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.store.bucket, Prefix=start
        )
        return [item["Key"][len(start) :] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def s3_stack(object_store, redis_server_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("s3-stack")
    (tmp / "store").mkdir()
    url = f"sqlite:///{tmp / 'store' / 'flowbin.db'}"
    upgrade(url)
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    api_home, worker_home = tmp / "api-host", tmp / "worker-host"
    settings = Settings(
        data_dir=api_home,
        database_url=url,
        redis_url=f"{redis_server_url}/{S3_REDIS_DB}",
        default_step_timeout=60,
        visibility_timeout=300,
        **object_store.settings_overrides(prefix),
    )
    api_home.mkdir()
    worker_home.mkdir()
    tokens = {}
    with session_scope(url) as session:
        create_user(session, "alice")
        tokens["alice"] = create_token(session, "alice")
    Drive(drive_storage(settings)).space_home("alice")

    from api.app import create_app

    app = create_app(settings)
    celery_app = app.extensions["flowbin.celery"]
    with celery_app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()
    # The worker's host: a data folder of its own, no folder shared with the API.
    worker = start_worker(replace(settings, data_dir=worker_home), "s3", tmp / "worker.log")
    try:
        wait_worker_ready(celery_app, "s3")
        yield S3Stack(
            settings, app.test_client(), tokens, object_store, prefix, (api_home, worker_home)
        )
    finally:
        stop_worker(worker)


def files(path: str) -> str:
    return "/api/v2/files/" + quote(path)


def local_drive_files(stack: S3Stack) -> list[Path]:
    """Whatever the drive or the binary store left in the hosts' own data folders."""
    return [
        path
        for home in stack.homes
        for folder in ("drive", "binaries")
        for path in (home / folder).rglob("*")
        if path.is_file()
    ]


def test_a_job_runs_on_a_worker_with_no_shared_folder_and_its_results_come_over_http(s3_stack):
    stack = s3_stack
    put_project(stack, ROOT)
    stack.upload(f"{ROOT}/data/input/a.txt", invoice("A-1", "100.00"))
    stack.upload(f"{ROOT}/data/input/b c.txt", invoice("B-2", "250.50"))
    compiled = compile_flow(stack, ROOT)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    binary = f"{ROOT}/build/bin/three_steps.ibflowbin"
    assert "alice/s3 project/build/bin/three_steps.ibflowbin" in stack.objects("drive/")

    started = run_async(stack, {"binary_path": binary, "input_dir": f"{ROOT}/data/input"})
    assert started.status_code == 200, started.get_json()
    done = wait_done(stack, started.get_json()["data"]["job_id"])
    assert done["cur_status"]["status"] == "COMPLETE", done
    out = f"{ROOT}/data/out"

    results = stack.client.get(f"/api/v1/drive/{quote(out)}/results.json", headers=stack.headers())
    assert results.status_code == 200
    by_file = {
        record["file_name"]: {pair["key"]: pair["value"] for pair in record["results"]}
        for record in json.loads(results.data)
    }
    assert by_file["a.txt"] == {"invoice_number": "A-1", "total": 100.0, "total_with_tax": 110.0}
    assert by_file["b c.txt"]["invoice_number"] == "B-2"
    batch = stack.client.post(
        "/api/v1/flow_binary/results",
        data=json.dumps({"ibresults_path": out}),
        headers=stack.headers(),
    )
    assert batch.status_code == 200, batch.get_json()
    assert sorted(r["file_name"] for r in batch.get_json()["records"]) == ["a.txt", "b c.txt"]
    steps = stack.client.get(
        files(f"{out}/steps/02_enrich") + "?expect-node-type=folder", headers=stack.headers()
    )
    assert [node["name"] for node in steps.get_json()["nodes"]] == ["a.txt.json", "b c.txt.json"]

    # A sync run reads the same binary from the store, in the API's runner processes.
    synced = stack.client.post(
        "/api/v1/flow/run_binary_sync",
        data=json.dumps(
            {
                "binary_path": binary,
                "files": [
                    {
                        "file_name": "s.txt",
                        "file_content": base64.b64encode(invoice("S-1", "7")).decode(),
                    }
                ],
            }
        ),
        headers=stack.headers(),
    )
    assert synced.status_code == 200, synced.get_json()
    [record] = synced.get_json()["records"]
    assert {"key": "invoice_number", "value": "S-1"} in record["results"]

    # Everything is in the object store: the step outputs, the results and the binary's
    # snapshot that the worker ran; nothing in either host's own folders.
    held = stack.objects(f"drive/{out}/")
    assert {"results.json", "batch.ibflowresults", "steps/00_read/a.txt.json"} <= set(held)
    assert any(key.endswith(".ibflowbin") for key in stack.objects("binaries/"))
    assert local_drive_files(stack) == []


def test_64_mib_go_up_and_down_through_the_api_without_being_held(s3_stack):
    stack, path, size = s3_stack, f"{ROOT}/big/sixty four.bin", 64 * MIB
    tracemalloc.start()
    try:
        written = stack.client.put(files(path), input_stream=Zeros(size), headers=stack.headers())
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        got = stack.client.get(files(path), headers=stack.headers(), buffered=False)
        received = sum(len(chunk) for chunk in got.response)
        got.close()
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written.status_code == 204, written.get_json()
    assert got.status_code == 200 and received == size
    # At most the multipart part on its way up (8 MiB), a chunk or so on the way down.
    assert upload_peak < 3 * s3.PART_BYTES, f"the upload peaked at {upload_peak} bytes"
    assert download_peak < 8 * MIB, f"the download peaked at {download_peak} bytes"
    head = stack.client.head(files(path), headers=stack.headers())
    assert head.headers["Content-Length"] == str(size)
    assert stack.objects(f"drive/{path}") == [""]  # one object, whole


def test_the_file_faces_page_range_copy_extract_and_delete_on_the_object_store(s3_stack):
    stack, base = s3_stack, f"{ROOT}/faces"
    for name in ("d", "b", "a", "e", "c"):
        put = stack.client.put(
            files(f"{base}/in/{name}.txt"), data=f"{name}-0123".encode(), headers=stack.headers()
        )
        assert put.status_code == 204
    made = stack.client.post(
        files(f"{base}/in"), data=json.dumps({"name": "empty"}), headers=stack.headers()
    )
    assert made.status_code == 201
    seen, token = [], None
    while True:
        query = "?expect-node-type=folder&page-size=2" + (
            f"&start-token={quote(token)}" if token else ""
        )
        page = stack.client.get(files(f"{base}/in") + query, headers=stack.headers()).get_json()
        seen.append([(node["name"], node["type"]) for node in page["nodes"]])
        token = page["next_page_token"]
        if token is None:
            break
    assert [entry for page in seen for entry in page] == [
        ("a.txt", "file"),
        ("b.txt", "file"),
        ("c.txt", "file"),
        ("d.txt", "file"),
        ("e.txt", "file"),
        ("empty", "folder"),
    ]
    assert all(len(page) <= 2 for page in seen)

    part = stack.client.get(
        files(f"{base}/in/b.txt"), headers={**stack.headers(), "Range": "bytes=2-4"}
    )
    assert part.status_code == 206 and part.data == b"012"
    v1 = stack.client.get(
        f"/api/v1/drives/{quote(base + '/in')}",
        headers={**stack.headers(), "Instabase-API-Args": '{"type": "folder"}'},
    )
    assert [node["name"] for node in v1.get_json()["nodes"]][:2] == ["a.txt", "b.txt"]

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("x/one.txt", b"1")
        zipped.writestr("two.txt", b"22")
    stack.upload(f"{base}/a.zip", archive.getvalue())
    extracted = stack.client.post(
        "/api/v2/files/extract",
        data=json.dumps({"src_path": f"{base}/a.zip", "dst_path": f"{base}/unzipped"}),
        headers=stack.headers(),
    )
    assert extracted.status_code == 202, extracted.get_json()
    copied = stack.client.post(
        "/api/v2/files/copy",
        data=json.dumps({"src_path": f"{base}/in", "dst_path": f"{base}/copy"}),
        headers=stack.headers(),
    )
    assert copied.status_code == 202, copied.get_json()
    assert (
        stack.client.get(files(f"{base}/unzipped/x/one.txt"), headers=stack.headers()).data == b"1"
    )
    assert stack.client.get(files(f"{base}/copy/e.txt"), headers=stack.headers()).data == b"e-0123"
    assert (
        stack.client.head(files(f"{base}/copy/empty"), headers=stack.headers()).status_code == 200
    )

    gone = stack.client.delete(files(f"{base}/copy"), headers=stack.headers())
    assert gone.status_code == 202
    assert (
        stack.client.head(files(f"{base}/copy/e.txt"), headers=stack.headers()).status_code == 404
    )
    assert stack.objects(f"drive/{base}/copy") == []
    assert local_drive_files(stack) == []


def test_documents_a_review_correction_and_a_jobs_contents_on_the_object_store(s3_stack):
    stack, root = s3_stack, f"{ROOT}/checked"
    put_project(stack, root, flow=CHECKED_FLOW)
    assert compile_flow(stack, root)["cur_status"]["status"] == "COMPLETE"
    ids = []
    for name, total in (("a.txt", "100.00"), ("b.txt", "5")):
        made = stack.client.post(
            f"/api/v2/documents?name={name}", data=invoice(name, total), headers=stack.headers()
        )
        assert made.status_code == 201, made.get_json()
        ids.append(made.get_json()["id"])
    body = {
        "type": "flow-run",
        "binary_path": f"{root}/build/bin/checked_invoices.ibflowbin",
        "documents": ids,
    }
    created = stack.client.post("/api/v2/jobs", data=json.dumps(body), headers=stack.headers())
    assert created.status_code == 201, created.get_json()
    job_id = created.get_json()["id"]
    assert wait_done(stack, job_id)["cur_status"]["status"] == "STOPPED_AT_CHECKPOINT"

    # The correction rewrites the checkpoint's persisted input, an object of the store.
    correction = {"job_id": job_id, "file_index": 1, "record_index": 0, "fields": {"total": 42}}
    corrected = stack.client.post(
        "/api/v1/review/correct", data=json.dumps(correction), headers=stack.headers()
    )
    assert corrected.status_code == 200, corrected.get_json()
    retried = stack.client.get(
        f"/api/v1/jobs/retry?job_id={job_id}&type=checkpoint_failure", headers=stack.headers()
    )
    assert retried.status_code == 200, retried.get_json()
    assert wait_done(stack, job_id)["cur_status"]["status"] == "COMPLETE"

    listed = stack.client.get(f"/api/v2/jobs/{job_id}/contents", headers=stack.headers())
    by_id = {content["id"]: content for content in listed.get_json()["values"]}
    results = stack.client.get(
        f"/api/v2/jobs/{job_id}/contents/results", headers=stack.headers()
    ).get_json()
    totals = {
        record["file_name"]: {pair["key"]: pair["value"] for pair in record["results"]}["total"]
        for record in results["values"]
    }
    assert totals == {"a.txt": 100.0, "b.txt": 42}
    streamed = stack.client.get(
        f"/api/v2/jobs/{job_id}/contents/{quote('input:b.txt')}", headers=stack.headers()
    )
    assert streamed.status_code == 200 and streamed.data == invoice("b.txt", "5")
    assert by_id["input:b.txt"]["size"] == len(invoice("b.txt", "5"))
    assert local_drive_files(stack) == []
