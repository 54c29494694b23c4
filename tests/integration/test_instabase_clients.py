"""Public programs written for Instabase, replayed against a live Flowbin: a real HTTP server on
the test stack's app (real worker, Redis and store), called with `requests` the way each client
builds its calls (URLs, headers, bodies without a Content-Type where the client sends none, the
status codes it checks), from upload through compile, run, poll and reading results. Every
path has spaces in its segments and lives in a team's space.

The clients (read with the library's search tool, their code is not copied):
- instabase/app-cicd-toolkit ``ib_cicd/ib_helpers.py`` (Filesystem API v2, compile by path,
  job polling), the "toolkit" below;
- instabase/ci-cd-toolkit-NW ``ib_cicd/ib_helpers.py`` (run_flow_async, folder listing with
  paging, results read back), "NW";
- ArooshiVermaIB/optimum-onnx-ibformers ``ci/lib/ibapi.py`` (Filesystem API v1 with the
  ``Instabase-API-Args`` header, run_binary_async, polling until ``state != "PENDING"``),
  "ibformers".
"""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from urllib.parse import quote

import pytest
import requests
from werkzeug.serving import make_server

from shared.accounts.credentials import create_token
from shared.accounts.users import create_user
from shared.store.db import session_scope
from tests.integration.flows import ENRICH_UDF, THREE_STEP_FLOW, invoice
from tests.support import free_port, wait_for

pytestmark = pytest.mark.integration

TEAM = "CI Space"
SOLUTION = f"{TEAM}/Test Subspace/fs/Instabase Drive/My Solution"
RELATIVE_FLOW = "Path to flow/flow.ibflow"


@pytest.fixture(scope="module")
def host(stack):
    """The stack's API behind a real HTTP server, as a client reaches it."""
    from api.app import create_app

    server = make_server("127.0.0.1", free_port(), create_app(stack.settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def token(stack, host) -> str:
    """ic_dev, admin of the team "CI Space" (whose space every path below is in)."""
    with session_scope(stack.settings.sql_url) as session:
        create_user(session, "ic_dev")
        secret = create_token(session, "ic_dev")
    made = requests.post(
        f"{host}/api/v2/teams",
        headers=auth(secret),
        data=json.dumps({"name": TEAM}),
        timeout=10,
    )
    assert made.status_code == 201, made.text
    return secret


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- the toolkit's calls ----------------------------------------------------------------------
def files_root(host: str) -> str:
    return os.path.join(host, "api", "v2", "files")


def upload_file(host, token, path, data) -> requests.Response:
    response = requests.put(os.path.join(files_root(host), path), headers=auth(token), data=data)
    assert response.status_code == 204, response.text
    return response


def upload_chunks(host, token, path, data: bytes, part_size: int) -> None:
    headers = auth(token)
    stream = io.BytesIO(data)
    response = None
    for number, chunk in enumerate(iter(lambda: stream.read(part_size), b"")):
        headers["IB-Cursor"] = "0" if number == 0 else "-1"
        response = requests.patch(os.path.join(files_root(host), path), headers=headers, data=chunk)
    assert response is not None and response.status_code == 204, response.text


def read_file(host, token, path) -> bytes:
    response = requests.get(
        os.path.join(files_root(host), path),
        headers=auth(token),
        params={"expect-node-type": "file"},
    )
    assert response.status_code == 200, response.text
    return response.content


def file_metadata(host, token, path) -> requests.Response:
    headers = {**auth(token), "IB-Retry-Config": json.dumps({"retries": 2, "backoff-seconds": 1})}
    return requests.head(os.path.join(files_root(host), path), headers=headers)


def create_folder_if_missing(host, token, folder) -> None:
    url = os.path.join(files_root(host), folder)
    if requests.head(url, headers=auth(token)).status_code == 404:
        body = json.dumps({"name": os.path.basename(folder), "node_type": "folder"})
        requests.post(os.path.dirname(url), headers=auth(token), data=body)


def list_directory(host, token, folder) -> list[str]:
    url = os.path.join(files_root(host), folder)
    paths, start, has_more = [], None, None
    while has_more is not False:
        params = {"expect-node-type": "folder", "start-token": start}
        response = requests.get(url, headers=auth(token), params=params)
        content = json.loads(response.content)
        assert response.status_code == 200 and content.get("status") != "ERROR", content
        paths += [node["full_path"] for node in content["nodes"]]
        has_more, start = content["has_more"], content["next_page_token"]
    return paths


def compile_solution(host, token, solution_path, relative_flow_path) -> str:
    url = os.path.join(host, "api/v1", "flow_binary", "compile", quote(solution_path))
    binary = relative_flow_path.replace(".ibflow", ".ibflowbin")
    data = json.dumps(
        {
            "binary_type": "Single Flow",
            "flow_project_root": os.path.join(solution_path, *relative_flow_path.split("/")[:-1]),
            "predefined_binary_path": os.path.join(solution_path, binary),
            "settings": {"flow_file": relative_flow_path.split("/")[-1], "is_flow_v3": True},
        }
    )
    response = requests.post(url.replace("//d", "/d"), headers=auth(token), data=data)
    content = json.loads(response.content)
    assert response.status_code == 200 and content.get("status") != "ERROR", content
    return content["job_id"]


def job_status(host, token, job_id, job_type) -> dict:
    url = host + f"/api/v1/jobs/status?job_id={job_id}&type={job_type}"
    response = requests.get(url, headers=auth(token))
    content = json.loads(response.content)
    assert response.status_code == 200 and content["status"] != "ERROR", content
    return content


def wait_until_done(host, token, job_id, job_type) -> dict:
    """NW's loop: status must stay OK; DONE (or COMPLETE) with every result OK."""

    def finished():
        content = job_status(host, token, job_id, job_type)
        return content if content["state"] in ("DONE", "COMPLETE") else None

    content = wait_for(finished, timeout=60, interval=0.1, message=f"job {job_id}")
    assert all(result["status"] == "OK" for result in content.get("results", [])), content
    return content


def copy_file(host, token, source, destination) -> None:
    body = json.dumps({"src_path": source, "dst_path": destination})
    response = requests.post(os.path.join(files_root(host), "copy"), headers=auth(token), data=body)
    assert response.status_code == 202, response.text


def unzip_files(host, token, zip_path, destination=None) -> None:
    destination = destination or ".".join(zip_path.split(".")[:-1])
    body = json.dumps({"src_path": zip_path, "dst_path": destination})
    url = os.path.join(host, "api/v2", "files", "extract")
    response = requests.post(url, headers=auth(token), data=body)
    assert response.status_code == 202, response.text


def put_solution(host, token) -> None:
    folder = f"{SOLUTION}/Path to flow"
    upload_file(host, token, f"{folder}/flow.ibflow", THREE_STEP_FLOW)
    upload_file(host, token, f"{folder}/udfs/enrich.py", ENRICH_UDF)


def test_the_ci_cd_toolkit_uploads_compiles_and_reads_back(host, token):
    put_solution(host, token)
    job_id = compile_solution(host, token, SOLUTION, RELATIVE_FLOW)
    done = wait_until_done(host, token, job_id, "job")
    binary = f"{SOLUTION}/Path to flow/flow.ibflowbin"
    assert done["results"][0]["binary_path"] == binary
    # The toolkit then checks the binary's size with a HEAD, and reads it.
    head = file_metadata(host, token, binary)
    data = read_file(host, token, binary)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data) > 0
    assert file_metadata(host, token, f"{SOLUTION}/missing.bin").status_code == 404

    # A package: copy the binary, zip a folder, extract it where the toolkit expects it.
    copy_file(host, token, binary, f"{SOLUTION}/dist/flow copy.ibflowbin")
    assert read_file(host, token, f"{SOLUTION}/dist/flow copy.ibflowbin") == data
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as package:
        package.writestr("package.json", json.dumps({"name": "My Solution", "version": "1.0"}))
        package.writestr("flows/Path to flow/flow.ibflow", THREE_STEP_FLOW)
    upload_file(host, token, f"{SOLUTION}/dist/My Solution.zip", archive.getvalue())
    unzip_files(host, token, f"{SOLUTION}/dist/My Solution.zip")
    package = json.loads(read_file(host, token, f"{SOLUTION}/dist/My Solution/package.json"))
    assert package["version"] == "1.0"


def test_the_toolkit_makes_folders_lists_and_uploads_in_chunks(host, token):
    folder = f"{SOLUTION}/datasets/dummy input"
    create_folder_if_missing(host, token, f"{SOLUTION}/datasets")
    create_folder_if_missing(host, token, folder)
    assert file_metadata(host, token, folder).status_code == 200
    big = os.urandom(3 * 1024 * 1024 + 17)
    upload_chunks(host, token, f"{folder}/big file.bin", big, part_size=1024 * 1024)
    assert read_file(host, token, f"{folder}/big file.bin") == big
    upload_file(host, token, f"{folder}/foot.txt", "dummy_input")
    assert sorted(list_directory(host, token, folder)) == [
        f"{folder}/big file.bin",
        f"{folder}/foot.txt",
    ]
    # NW asks whether a path is a folder by listing it: a file lists as nothing.
    assert list_directory(host, token, f"{folder}/foot.txt") == []
    deleted = requests.delete(os.path.join(files_root(host), folder), headers=auth(token))
    assert deleted.status_code == 202
    assert file_metadata(host, token, folder).status_code == 404


def test_nw_runs_a_flow_with_run_flow_async_and_reads_the_results(host, token):
    put_solution(host, token)
    inputs = f"{SOLUTION}/Regression Test Runner/datasets/in put"
    upload_file(host, token, f"{inputs}/a b.txt", invoice("R-1", "10.00"))
    upload_file(host, token, f"{inputs}/c d.txt", invoice("R-2", "20.00"))
    payload = {
        "ibflow_path": f"{SOLUTION}/{RELATIVE_FLOW}",
        "input_dir": inputs,
        "compile_and_run_as_binary": True,
        "output_has_run_id": True,
        "delete_out_dir": False,
        "log_to_timeline": True,
        "disable_step_timeout": False,
        "step_timeout": 4500,
        "enable_ibdoc": True,
        "compare_against_golden_set": False,
        "tags": ["regression"],
        "pipeline_ids": [],
        "webhook_config": {"headers": {}},
        "runtime_config": {"APP_ID": "app", "ENV": "test"},
    }
    response = requests.post(
        f"{host}/api/v1/flow/run_flow_async", headers=auth(token), data=json.dumps(payload)
    )
    response.raise_for_status()
    started = response.json()
    assert started["status"] == "OK", started
    assert set(started["warnings"]) == {
        f"{key} is not supported and was ignored"
        for key in ("compile_and_run_as_binary", "enable_ibdoc", "compare_against_golden_set")
    }
    done = wait_until_done(host, token, started["data"]["job_id"], "async")
    output = done["results"][0]["output_folder"]
    assert output == started["data"]["output_folder"]

    listed = list_directory(host, token, output)
    assert f"{output}/batch.ibflowresults" in listed
    results = requests.post(
        f"{host}/api/v1/flow_binary/results",
        headers=auth(token),
        data=json.dumps({"ibresults_path": f"{output}/batch.ibflowresults", "options": {}}),
    )
    assert results.status_code == 200, results.text
    records = results.json()["records"]
    found = {r["file_name"]: {p["key"]: p["value"] for p in r["results"]} for r in records}
    assert found["a b.txt"]["invoice_number"] == "R-1"
    assert found["c d.txt"]["total_with_tax"] == 22.0
    assert {r["output_file_path"] for r in records} == {
        f"{output}/results/a b.txt.json",
        f"{output}/results/c d.txt.json",
    }
    # The same sources again: the binary is not compiled a second time.
    again = requests.post(
        f"{host}/api/v1/flow/run_flow_async", headers=auth(token), data=json.dumps(payload)
    )
    assert again.status_code == 200, again.text
    wait_until_done(host, token, again.json()["data"]["job_id"], "flow")


# -- ibformers' calls (aiohttp: a str body goes as text/plain, bytes as octet-stream) ---------
def drives_url(host, path) -> str:
    return os.path.join(os.path.join(host, "api/v1", "drives"), path)


def api_args(**args) -> dict:
    return {"Instabase-API-Args": json.dumps(dict(args))}


def as_json(response: requests.Response) -> dict:
    """aiohttp's ``r.json()`` refuses any other content type."""
    response.raise_for_status()
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    return response.json()


def test_ibformers_writes_lists_runs_and_polls_without_a_type(host, token):
    root = f"{TEAM}/ib formers/fs/Instabase Drive"
    for name, data in (("in/one.txt", invoice("F-1", "5")), ("in/two.txt", invoice("F-2", "6"))):
        written = requests.post(
            drives_url(host, f"{root}/{name}"),
            headers={
                **auth(token),
                **api_args(type="file", if_exists="overwrite"),
                "Content-Type": "application/octet-stream",
            },
            data=data,
        )
        assert as_json(written)["status"] == "OK"
    names, token_, has_more = [], "", True
    while has_more:
        listing = as_json(
            requests.get(
                drives_url(host, f"{root}/in"),
                headers={
                    **auth(token),
                    **api_args(
                        type="folder",
                        if_exists="overwrite",
                        get_content=True,
                        get_metadata=False,
                        start_page_token=token_,
                    ),
                },
            )
        )
        names += [node["name"] for node in listing.get("nodes", [])]
        has_more, token_ = listing["has_more"], listing["next_page_token"]
    assert sorted(names) == ["one.txt", "two.txt"]
    text = requests.get(
        drives_url(host, f"{root}/in/one.txt"),
        headers={**auth(token), **api_args(type="file", get_content=True)},
    )
    assert text.status_code == 200 and "F-1" in text.text

    put_solution(host, token)
    job = wait_until_done(
        host, token, compile_solution(host, token, SOLUTION, RELATIVE_FLOW), "job"
    )
    binary = job["results"][0]["binary_path"]
    run = as_json(
        requests.post(
            os.path.join(host, "api/v1/flow/run_binary_async"),
            headers={**auth(token), "Content-Type": "text/plain; charset=utf-8"},
            data=json.dumps(
                {
                    "input_dir": f"{root}/in",
                    "binary_path": binary,
                    "settings": {"output_has_run_id": True, "delete_out_dir": False},
                }
            ),
        )
    )
    assert run["status"] == "OK"
    job_id, output = run["data"]["job_id"], run["data"]["output_folder"]

    def finished():
        status = as_json(
            requests.get(f"{host}/api/v1/jobs/status?job_id={job_id}", headers=auth(token))
        )
        return status if status["state"] != "PENDING" else None

    result = wait_for(finished, timeout=60, interval=0.1, message="the run")["results"][0]
    assert result["status"] == "OK" and result["output_folder"] == output

    # A zip unpacked with the v1 drive's unzip, polled the same way.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as package:
        package.writestr("model/config.json", "{}")
    requests.post(
        drives_url(host, f"{root}/models/m.zip"),
        headers={**auth(token), **api_args(type="file", if_exists="overwrite")},
        data=archive.getvalue(),
    ).raise_for_status()
    unzipped = as_json(
        requests.post(
            drives_url(host, f"{root}/models/unzip"),
            headers={**auth(token), **api_args(type="folder")},
            data=json.dumps({"zip_file": "m.zip", "destination": f"{root}/unpacked"}),
        )
    )
    assert unzipped["status"] == "OK" and unzipped["job_id"]
    polled = as_json(
        requests.get(f"{host}/api/v1/jobs/status?job_id={unzipped['job_id']}", headers=auth(token))
    )
    assert polled["state"] != "PENDING" and polled["results"][0]["status"] == "OK"
    config = requests.get(
        drives_url(host, f"{root}/unpacked/model/config.json"),
        headers={**auth(token), **api_args(type="file", get_content=True)},
    )
    assert config.status_code == 200 and config.text == "{}"
    removed = requests.delete(
        drives_url(host, f"{root}/unpacked"), headers=auth(token), data=json.dumps({"force": True})
    )
    assert as_json(removed)["status"] == "OK"


def test_a_stranger_cannot_reach_the_team_space_through_any_face(stack, host, token):
    with session_scope(stack.settings.sql_url) as session:
        create_user(session, "ic_stranger")
        stranger = create_token(session, "ic_stranger")
    path = f"{SOLUTION}/Path to flow/flow.ibflow"
    upload_file(host, token, path, THREE_STEP_FLOW)
    for response in (
        requests.get(os.path.join(files_root(host), path), headers=auth(stranger)),
        requests.head(os.path.join(files_root(host), path), headers=auth(stranger)),
        requests.get(
            drives_url(host, path),
            headers={**auth(stranger), **api_args(type="file", get_content=True)},
        ),
        requests.post(
            os.path.join(host, "api/v1/flow_binary", "compile", quote(SOLUTION)),
            headers=auth(stranger),
            data=json.dumps({"binary_type": "Single Flow", "settings": {"flow_file": "x.ibflow"}}),
        ),
        requests.post(
            f"{host}/api/v1/flow/run_flow_async",
            headers=auth(stranger),
            data=json.dumps({"ibflow_path": path, "input_dir": f"{SOLUTION}/in"}),
        ),
    ):
        assert response.status_code == 404, (response.request.method, response.url, response.text)
