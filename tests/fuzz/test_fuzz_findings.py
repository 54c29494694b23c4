"""The server errors schemathesis found, each as the one request that reproduced it: now a 4xx
with the seed's error body naming what to fix. The fuzz test finds them only with its seed and
budget; these keep them fixed whatever the fuzzer draws."""

from __future__ import annotations

import json

import pytest

from tests.fuzz.conftest import ADMIN, USER

pytestmark = pytest.mark.fuzz


def answer(users, method: str, path: str, user: str = USER, **kwargs):
    response = getattr(users.client, method)(path, headers=users.headers(user), **kwargs)
    body = response.get_json()
    assert body is not None and body["status"] == "ERROR", (response.status_code, response.data)
    return response.status_code, body["msg"]


@pytest.mark.parametrize("operation", ["list", "pause_all", "resume_all", "cancel_all"])
@pytest.mark.parametrize("parameter", ["from_timestamp", "to_timestamp"])
def test_a_timestamp_past_year_9999_is_a_400_naming_it(fuzz_users, operation, parameter):
    # datetime.fromtimestamp overflowed: Python's datetime ends in year 9999.
    code, msg = answer(fuzz_users, "get", f"/api/v1/jobs/{operation}?{parameter}=1.7e308", ADMIN)
    assert code == 400 and msg.startswith(f"{parameter}: ")


def test_to_timestamp_zero_is_the_epoch_not_now(fuzz_users):
    response = fuzz_users.client.get(
        "/api/v1/jobs/list?to_timestamp=0", headers=fuzz_users.headers(ADMIN)
    )
    assert response.status_code == 200 and response.get_json()["jobs"] == []


def test_a_delivery_id_beyond_64_bits_is_a_404(fuzz_users):
    # The store compared it with a 64-bit column: OverflowError (SQLite), bigint out of range
    # (PostgreSQL).
    code, _ = answer(fuzz_users, "post", f"/api/v1/deliveries/{2**64}/redeliver")
    assert code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs/status?job_id=a%00b",
        "/api/v1/jobs/list?tags=a%00b",
        "/api/v1/jobs/list?user=a%00b",
        "/api/v1/jobs/cancel_all?tags=a%00b",
    ],
)
def test_a_nul_character_in_text_is_a_400(fuzz_users, path):
    # PostgreSQL's text cannot hold NUL: psycopg refused the statement.
    code, msg = answer(fuzz_users, "get", path)
    assert code == 400 and "NUL" in msg


def test_a_nul_character_in_a_body_is_a_400(fuzz_users):
    body = json.dumps({"job_id": "x", "names": ["a\x00"]})
    code, msg = answer(fuzz_users, "post", "/api/v1/jobs/tags", data=body)
    assert code == 400 and msg.startswith("names.0: ") and "NUL" in msg


@pytest.mark.parametrize(
    "query",
    [
        f"/api/v1/jobs/get_logs?job_id=x&offset={2**63}",
        f"/api/v1/jobs/list?offset={2**63}",
    ],
)
def test_an_offset_past_what_the_store_counts_is_a_400(fuzz_users, query):
    # OFFSET beyond 64 bits: OverflowError (SQLite), bigint out of range (PostgreSQL).
    code, msg = answer(fuzz_users, "get", query)
    assert code == 400 and msg.startswith("offset: ")


def test_a_step_timeout_past_the_stores_integer_is_a_400(fuzz_users, fuzz_project):
    # The jobs row's INTEGER column: "integer out of range" on PostgreSQL.
    root, binary = fuzz_project
    body = {
        "binary_path": binary,
        "input_dir": f"{root}/data/input",
        "settings": {"step_timeout": 2**31},
    }
    code, msg = answer(fuzz_users, "post", "/api/v1/flow/run_binary_async", data=json.dumps(body))
    assert code == 400 and msg.startswith("settings.step_timeout: ")


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_a_drive_name_longer_than_the_file_system_takes_is_a_400(fuzz_users, method):
    # ENAMETOOLONG from the file system.
    code, msg = answer(fuzz_users, method, f"/api/v1/drive/{USER}/" + "é" * 150)
    assert code == 400 and "at most 200 bytes" in msg


def test_writing_inside_a_file_is_a_400(fuzz_users):
    # NotADirectoryError from the write.
    fuzz_users.upload(f"{USER}/plain.txt", b"text", USER)
    code, msg = answer(fuzz_users, "put", f"/api/v1/drive/{USER}/plain.txt/inner.txt")
    assert code == 400 and "is a file" in msg
