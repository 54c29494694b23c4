"""Documents (``POST /api/v2/documents``) and a job's contents (``/api/v2/jobs/<id>/contents``)
on real workers: uploads raw and as a form, streamed and capped, a flow run on documents to
its end, every kind of content listed and read (pages, bytes, ranges), a collaborator on one
step reading only that step, and what another user gets for someone else's document or job."""

from __future__ import annotations

import io
import json
import re
import tracemalloc
from urllib.parse import quote

import pytest

from api.app import MAX_UPLOAD_BYTES
from tests.integration.flows import (
    CHECKED_FLOW,
    LINES_FLOW,
    compile_flow,
    invoice,
    put_project,
    wait_done,
)

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# -- helpers ----------------------------------------------------------------------------------
def ok(response, code: int = 200):
    assert response.status_code == code, (response.status_code, response.data[:500])
    return response.get_json()


def error(response, code: int) -> str:
    assert response.status_code == code, (response.status_code, response.data[:500])
    body = response.get_json()
    assert body["status"] == "ERROR", body
    return body["msg"]


def upload(stack, data, user: str = "alice", query: str = "", headers=None):
    """POST a raw body (bytes, or a stream the test client reads as the server does)."""
    body = {"input_stream": data} if isinstance(data, io.IOBase) else {"data": data}
    return stack.client.post(
        f"/api/v2/documents{query}", headers={**stack.headers(user), **(headers or {})}, **body
    )


def document(stack, name: str, data: bytes, user: str = "alice") -> dict:
    return ok(upload(stack, data, user, f"?name={quote(name)}"), 201)


def v2(stack, method: str, path: str, body=None, user: str = "alice", headers=None):
    data = json.dumps(body) if isinstance(body, dict | list) else body
    return stack.client.open(
        f"/api/v2{path}",
        method=method,
        data=data,
        headers={**stack.headers(user), **(headers or {})},
    )


def run_on(stack, binary: str, ids: list[str], user: str = "alice", **fields) -> dict:
    body = {"type": "flow-run", "binary_path": binary, "documents": ids, **fields}
    return ok(v2(stack, "POST", "/jobs", body, user), 201)


def contents(stack, job_id: str, user: str = "alice") -> dict[str, dict]:
    listed = ok(v2(stack, "GET", f"/jobs/{job_id}/contents", user=user))
    assert listed["next"] is None, listed
    return {content["id"]: content for content in listed["values"]}


def content(stack, job_id: str, content_id: str, user: str = "alice", query: str = ""):
    return v2(stack, "GET", f"/jobs/{job_id}/contents/{quote(content_id)}{query}", user=user)


def documents_folders(stack, user: str = "alice") -> set[str]:
    folder = stack.settings.drive_root / user / "documents"
    return {path.name for path in folder.iterdir()} if folder.is_dir() else set()


class Body(io.RawIOBase):
    """A request body made as it is read: ``head``, ``size`` zero bytes, ``tail``."""

    def __init__(self, size: int, head: bytes = b"", tail: bytes = b"", read_allowed=True):
        self.parts = [head, size, tail]
        self.total = len(head) + size + len(tail)
        self.position, self.read_allowed = 0, read_allowed

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.total}[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        assert self.read_allowed, "the body was read"
        head, size, tail = self.parts
        start = self.position
        end = min(start + len(buffer), self.total)
        if end <= start:
            return 0
        view = memoryview(buffer)
        view[: end - start] = bytes(end - start)
        for offset, piece in ((0, head), (len(head) + size, tail)):
            low, high = max(start, offset), min(end, offset + len(piece))
            if low < high:
                view[low - start : high - start] = piece[low - offset : high - offset]
        self.position = end
        return end - start


@pytest.fixture(scope="module")
def binaries(stack) -> dict[str, str]:
    root = f"alice/docs-{stack.backend}"
    put_project(stack, f"{root}/checked", flow=CHECKED_FLOW)
    put_project(stack, f"{root}/lines", flow=LINES_FLOW)
    found = {}
    for name in ("checked", "lines"):
        compiled = compile_flow(stack, f"{root}/{name}")
        assert compiled["cur_status"]["status"] == "COMPLETE", compiled
        found[name] = compiled["results"][0]["binary_path"]
    return found


# -- uploads ----------------------------------------------------------------------------------
def test_a_raw_upload_is_kept_in_the_uploaders_own_space(stack):
    made = document(stack, "invoice 1.txt", invoice("D-1", "100.00"))
    assert UUID.match(made["id"]), made
    assert made == {
        "id": made["id"],
        "name": "invoice 1.txt",
        "size": len(invoice("D-1", "100.00")),
        "uri": f"alice/documents/{made['id']}/invoice 1.txt",
    }
    assert (stack.settings.drive_root / made["uri"]).read_bytes() == invoice("D-1", "100.00")
    assert ok(v2(stack, "GET", f"/documents/{made['id']}")) == made
    # The drive serves it too: its uri is a drive path.
    read = stack.client.get(f"/api/v1/drive/{quote(made['uri'])}", headers=stack.headers())
    assert read.status_code == 200 and read.data == invoice("D-1", "100.00")

    # The name: the parameter, else the Content-Disposition's filename, else "document".
    disposition = {"Content-Disposition": "attachment; filename*=UTF-8''%E2%82%AC%20rates.txt"}
    assert ok(upload(stack, b"x", headers=disposition), 201)["name"] == "€ rates.txt"
    path_in_header = {"Content-Disposition": 'attachment; filename="scans/2024/s.txt"'}
    assert ok(upload(stack, b"x", headers=path_in_header), 201)["name"] == "s.txt"
    bare = ok(upload(stack, b""), 201)
    assert (bare["name"], bare["size"]) == ("document", 0)

    for name in ("../x.txt", ".hidden", "a\nb"):
        assert error(upload(stack, b"x", query=f"?name={quote(name)}"), 400).startswith("name: ")
    dotted = {"Content-Disposition": 'attachment; filename=".env"'}
    assert "start with '.'" in error(upload(stack, b"x", headers=dotted), 400)


def test_a_form_upload_takes_its_file_part(stack):
    before = documents_folders(stack)
    form = {"note": "ignored", "file": (io.BytesIO(invoice("F-1", "12")), "scan.txt")}
    made = ok(
        stack.client.post(
            "/api/v2/documents",
            data=form,
            content_type="multipart/form-data",
            headers=stack.headers(),
        ),
        201,
    )
    assert (made["name"], made["size"]) == ("scan.txt", len(invoice("F-1", "12")))
    assert (stack.settings.drive_root / made["uri"]).read_bytes() == invoice("F-1", "12")
    renamed = ok(
        stack.client.post(
            "/api/v2/documents?name=renamed.txt",
            data={"file": (io.BytesIO(b"y"), "scan.txt")},
            content_type="multipart/form-data",
            headers=stack.headers(),
        ),
        201,
    )
    assert renamed["name"] == "renamed.txt"
    assert documents_folders(stack) == before | {made["id"], renamed["id"]}

    refusals = [
        ({"file": (io.BytesIO(b"a"), "a.txt"), "other": (io.BytesIO(b"b"), "b.txt")}, "one file"),
        ({"upload": (io.BytesIO(b"a"), "a.txt")}, "name it 'file'"),
        ({"note": "no file"}, "no file part named 'file'"),
    ]
    for data, says in refusals:
        refused = stack.client.post(
            "/api/v2/documents",
            data=data,
            content_type="multipart/form-data",
            headers=stack.headers(),
        )
        assert says in error(refused, 400)
    cut = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc'
    truncated = upload(stack, cut, headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert "multipart" in error(truncated, 400)
    # A refused upload leaves nothing behind.
    assert documents_folders(stack) == before | {made["id"], renamed["id"]}


def test_an_upload_is_streamed_to_disk_and_capped(stack):
    before = documents_folders(stack)
    too_big = upload(stack, Body(MAX_UPLOAD_BYTES + 1, read_allowed=False))
    assert "at most" in error(too_big, 413) and too_big.get_json()["code"] == "too_large"

    head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    form = {"Content-Type": "multipart/form-data; boundary=B"}
    refused = upload(stack, Body(MAX_UPLOAD_BYTES, head, b"\r\n--B--\r\n"), headers=form)
    assert "at most" in error(refused, 413)
    assert documents_folders(stack) == before

    size = 48 * MIB
    tracemalloc.start()
    try:
        made = upload(stack, Body(size, head, b"\r\n--B--\r\n"), headers=form)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    made = ok(made, 201)
    assert (made["name"], made["size"]) == ("big.bin", size)
    assert peak < 16 * MIB, f"the upload peaked at {peak} bytes in memory"
    (stack.settings.drive_root / made["uri"]).unlink()


# -- runs on documents ------------------------------------------------------------------------
def test_a_flow_run_on_documents_runs_on_them_and_lists_them(stack, binaries):
    first = document(stack, "invoice.txt", invoice("R-1", "100.00"))
    second = document(stack, "invoice.txt", invoice("R-2", "250.00"))  # the same name
    job = run_on(stack, binaries["checked"], [first["id"], second["id"]], tags=["on-docs"])
    assert job["input_content"]["type"] == "documents"
    input_dir = job["input_content"]["uri"]
    assert input_dir == f"alice/documents/runs/{job['id']}/input"
    listed = job["input_content"]["documents"]
    assert [(d["id"], d["name"], d["uri"]) for d in listed] == [
        (first["id"], "invoice.txt", first["uri"]),
        (second["id"], "invoice.txt", second["uri"]),
    ]
    names = [d["file_name"] for d in listed]
    assert names == ["invoice.txt", f"invoice-{second['id'][:8]}.txt"]
    staged = stack.settings.drive_root / input_dir
    assert sorted(path.name for path in staged.iterdir()) == sorted(names)

    done = wait_done(stack, job["id"])
    assert done["cur_status"]["status"] == "COMPLETE", done
    shown = ok(v2(stack, "GET", f"/jobs/{job['id']}"))
    assert shown["status"] == "completed"
    out = f"alice/documents/runs/{job['id']}/out"  # the input folder's sibling
    assert shown["output_content"] == {
        "type": "flow-results",
        "uri": f"{out}/results.json",
        "url": f"/api/v2/jobs/{job['id']}/contents/results",
    }
    results = ok(stack.client.get(shown["output_content"]["url"], headers=stack.headers()))
    assert results["id"] == "results" and results["uri"] == f"{out}/results.json"
    numbers = [
        field["value"]
        for result in results["values"]
        for field in result["results"]
        if field["key"] == "invoice_number"
    ]
    assert sorted(numbers) == ["R-1", "R-2"] and results["total"] == 2

    types = ok(v2(stack, "GET", "/job-types/flow-run"))
    assert "documents" in types["fields"]["properties"]
    assert {"required": ["documents"]} in types["fields"]["oneOf"]
    assert "input-file" in [found["type"] for found in types["contents"]]


def test_documents_that_are_not_the_callers_are_refused(stack, binaries):
    mine = document(stack, "mine.txt", invoice("M-1", "50"))
    bobs = document(stack, "bobs.txt", invoice("B-1", "50"), user="bob")
    unknown = "00000000-0000-4000-8000-000000000000"
    runs = stack.settings.drive_root / "alice/documents/runs"
    before = sorted(runs.iterdir()) if runs.is_dir() else []

    def refused(body: dict, user: str = "alice") -> str:
        return error(v2(stack, "POST", "/jobs", {"type": "flow-run", **body}, user), 400)

    binary = binaries["checked"]
    msg = refused({"binary_path": binary, "documents": [mine["id"], bobs["id"], unknown]})
    assert msg.startswith("documents: ") and bobs["id"] in msg and unknown in msg
    assert mine["id"] not in msg
    both = {"binary_path": binary, "documents": [mine["id"]], "input_dir": "alice/x"}
    assert "not both" in refused(both)
    assert refused({"binary_path": binary}).startswith("input_dir: ")
    assert "listed twice" in refused({"binary_path": binary, "documents": [mine["id"]] * 2})
    assert refused({"binary_path": binary, "documents": []}).startswith("documents: ")
    assert refused({"binary_path": binary, "documents": ["not-a-uuid"]}).startswith("documents")
    # A run refused after its input was made takes it away again.
    missing_binary = {"binary_path": "alice/no/such.ibflowbin", "documents": [mine["id"]]}
    assert v2(stack, "POST", "/jobs", {"type": "flow-run", **missing_binary}).status_code == 404
    assert (sorted(runs.iterdir()) if runs.is_dir() else []) == before

    # Bob's document is missing for alice as an id that names none is, admins included.
    assert ok(v2(stack, "GET", f"/documents/{bobs['id']}", user="bob")) == bobs
    for user in ("alice", "root"):
        hidden = error(v2(stack, "GET", f"/documents/{bobs['id']}", user=user), 404)
        missing = error(v2(stack, "GET", f"/documents/{unknown}", user=user), 404)
        assert hidden == missing.replace(unknown, bobs["id"])
    assert error(v2(stack, "GET", "/documents/x"), 404) == error(
        v2(stack, "GET", f"/documents/{unknown}"), 404
    ).replace(unknown, "x")


# -- contents ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stopped(stack, binaries) -> dict:
    """A run stopped at its checkpoint: a.txt came through, b.txt (total 5) awaits review."""
    ids = [
        document(stack, "a.txt", invoice("C-1", "100.00"))["id"],
        document(stack, "b.txt", invoice("C-2", "5"))["id"],
    ]
    job = run_on(stack, binaries["checked"], ids)
    done = wait_done(stack, job["id"])
    assert done["cur_status"]["status"] == "STOPPED_AT_CHECKPOINT", done
    return ok(v2(stack, "GET", f"/jobs/{job['id']}"))


def test_the_contents_list_each_kind_and_serve_it(stack, stopped):
    job_id, out = stopped["id"], f"alice/documents/runs/{stopped['id']}/out"
    found = contents(stack, job_id)
    steps = ["00_read", "01_fields", "02_check", "03_enrich"]
    wanted = [
        "input:a.txt",
        "input:b.txt",
        "results",
        "ibflowresults",
        "results:a.txt",
        "results:b.txt",
        "step:00:a.txt",
        "step:00:b.txt",
        "step:01:a.txt",
        "step:01:b.txt",
        "step:02:a.txt",
        "step:02:b.txt",
        "step:03:a.txt",  # b.txt stopped before it
        "review",
    ]
    assert list(found) == wanted
    assert found["input:a.txt"] == {
        "id": "input:a.txt",
        "type": "input-file",
        "uri": f"alice/documents/runs/{job_id}/input/a.txt",
        "url": f"/api/v2/jobs/{job_id}/contents/input:a.txt",
        "name": "a.txt",
        "size": len(invoice("C-1", "100.00")),
    }
    assert found["step:02:b.txt"]["uri"] == f"{out}/steps/{steps[2]}/b.txt.json"
    assert found["step:02:b.txt"]["step_id"] == "check"
    assert found["review"] == {
        "id": "review",
        "type": "review-records",
        "uri": None,
        "url": f"/api/v2/jobs/{job_id}/contents/review",
    }
    assert {found[key]["type"] for key in ("results", "ibflowresults", "results:a.txt")} == {
        "flow-results",
        "ibflowresults",
        "file-results",
    }

    # Input files: their bytes, streamed; a range of them.
    raw = content(stack, job_id, "input:b.txt")
    assert raw.status_code == 200 and raw.data == invoice("C-2", "5")
    assert raw.mimetype == "application/octet-stream"
    part = v2(stack, "GET", f"/jobs/{job_id}/contents/input:b.txt", headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.data == b"ACME"
    # JSON contents: a page of their records.
    step = ok(content(stack, job_id, "step:01:a.txt"))
    assert (step["total"], step["offset"], step["next"]) == (1, 0, None)
    assert step["values"][0]["fields"]["invoice_number"] == "C-1"
    assert step["uri"] == found["step:01:a.txt"]["uri"]
    batch = ok(content(stack, job_id, "ibflowresults"))
    assert sorted(record["file_name"] for record in batch["values"]) == ["a.txt", "b.txt"]
    assert ok(content(stack, job_id, "results:a.txt"))["total"] == 1
    review = ok(content(stack, job_id, "review"))
    assert [(r["file_name"], r["checkpoint_step"]) for r in review["values"]] == [
        ("b.txt", "check")
    ]
    # raw=true: the file as it is in the drive.
    whole = content(stack, job_id, "results", query="?raw=true")
    assert whole.mimetype == "application/octet-stream"
    assert whole.data == (stack.settings.drive_root / out / "results.json").read_bytes()
    assert "not a file" in error(content(stack, job_id, "review", query="?raw=true"), 400)

    for unknown in ("nothing", "input:c.txt", "step:09:a.txt", "step:03:b.txt", "input:"):
        msg = error(content(stack, job_id, unknown), 404)
        assert msg.startswith(f"job {job_id!r} has no content {unknown!r}"), msg


def test_a_long_list_is_read_a_page_at_a_time(stack, binaries):
    lines = b"".join(f"line {number}\n".encode() for number in range(2500))
    job = run_on(stack, binaries["lines"], [document(stack, "lines.txt", lines)["id"]])
    assert wait_done(stack, job["id"])["cur_status"]["status"] == "COMPLETE"
    url = f"/api/v2/jobs/{job['id']}/contents/{quote('step:01:lines.txt')}"
    texts, pages = [], 0
    while url:
        page = ok(stack.client.get(url, headers=stack.headers()))
        assert page["total"] == 2500 and len(page["values"]) <= 1000
        texts += [record["text"] for record in page["values"]]
        url, pages = page["next"], pages + 1
    assert pages == 3 and texts == [f"line {number}" for number in range(2500)]
    middle = ok(content(stack, job["id"], "step:01:lines.txt", query="?offset=2490&limit=20"))
    assert len(middle["values"]) == 10 and middle["next"] is None
    assert middle["values"][0]["text"] == "line 2490"

    # The list of contents pages too.
    first = ok(v2(stack, "GET", f"/jobs/{job['id']}/contents?limit=2"))
    assert [c["id"] for c in first["values"]] == ["input:lines.txt", "results"]
    rest = ok(stack.client.get(first["next"], headers=stack.headers()))
    assert rest["values"][0]["id"] == "ibflowresults"


def share(stack, job_id: str, steps: list[str]) -> None:
    users = [{"username": "bob", "steps": steps}]
    body = {"job_id": job_id, "collaboration": {"teams": [], "users": users}}
    shared = stack.client.post(
        "/api/v1/jobs/collaboration", data=json.dumps(body), headers=stack.headers()
    )
    assert shared.status_code == 200, shared.get_json()


def test_a_collaborator_on_one_step_reads_only_that_step(stack, stopped):
    job_id = stopped["id"]
    # Not shared yet: the job, and so each of its contents, does not exist for bob.
    missing = error(v2(stack, "GET", "/jobs/no-such-job/contents", user="bob"), 404)
    hidden = error(v2(stack, "GET", f"/jobs/{job_id}/contents", user="bob"), 404)
    assert hidden == missing.replace("no-such-job", job_id)
    assert error(content(stack, job_id, "results", "bob"), 404) == hidden
    try:
        share(stack, job_id, ["check"])
        found = contents(stack, job_id, "bob")
        assert list(found) == ["step:02:a.txt", "step:02:b.txt", "review"]
        review = ok(content(stack, job_id, "review", "bob"))
        assert [r["file_name"] for r in review["values"]] == ["b.txt"]
        assert ok(content(stack, job_id, "step:02:b.txt", "bob"))["total"] == 1
        # The rest is missing for bob, exactly as a content that does not exist.
        for other in ("input:a.txt", "results", "ibflowresults", "step:01:a.txt"):
            msg = error(content(stack, job_id, other, "bob"), 404)
            absent = error(content(stack, job_id, "nothing", "bob"), 404)
            assert msg == absent.replace("'nothing'", repr(other))

        share(stack, job_id, ["fields"])  # no checkpoint: nothing of bob's to review
        assert list(contents(stack, job_id, "bob")) == ["step:01:a.txt", "step:01:b.txt"]
        assert error(content(stack, job_id, "review", "bob"), 404).startswith(
            f"job {job_id!r} has no content 'review'"
        )
        share(stack, job_id, ["*"])
        assert list(contents(stack, job_id, "bob")) == list(contents(stack, job_id))
    finally:
        body = {"job_id": job_id, "collaboration": {"teams": [], "users": []}}
        stack.client.post(
            "/api/v1/jobs/collaboration", data=json.dumps(body), headers=stack.headers()
        )
    assert error(v2(stack, "GET", f"/jobs/{job_id}/contents", user="bob"), 404) == hidden


def test_a_run_on_a_folder_has_contents_too_whatever_its_file_names(stack, binaries):
    # A name in the drive may hold a carriage return (not NUL, '/', '\\'; a URL carries no
    # line feed), which no header may carry.
    folder, odd = f"alice/docs-{stack.backend}/odd input", "odd\rname.txt"
    put = stack.client.put(
        f"/api/v1/drive/{quote(folder)}/{quote(odd)}",
        data=invoice("O-1", "70"),
        headers=stack.headers(),
    )
    assert put.status_code == 200, put.get_json()
    body = {"type": "flow-run", "binary_path": binaries["checked"], "input_dir": folder}
    job = ok(v2(stack, "POST", "/jobs", body), 201)
    assert job["input_content"] == {
        "type": "folder",
        "uri": folder,
        "binary_path": binaries["checked"],
    }
    assert wait_done(stack, job["id"])["cur_status"]["status"] == "COMPLETE"
    found = contents(stack, job["id"])
    assert "input:odd\rname.txt" in found and "step:03:odd\rname.txt" in found
    streamed = content(stack, job["id"], "input:odd\rname.txt")
    assert streamed.status_code == 200 and streamed.data == invoice("O-1", "70")
    assert "\r" not in streamed.headers["Content-Disposition"]
    page = ok(stack.client.get(found["step:03:odd\rname.txt"]["url"], headers=stack.headers()))
    assert page["values"][0]["file_name"] == "odd\rname.txt"
