"""maxParseExceptions as an error budget, on real workers, through v1's
``settings.max_parse_exceptions`` and v2's ``maxParseExceptions``: within its budget a job with
failed records completes (health warn); past it the job fails with a message that says the
budget and the count, its other files start no further step, and a step running at that moment
finishes and its file goes no further.

Each file's middle step waits at a gate for the test to open it (and fails if told to), so
which step passes the budget, and which one is running then, is decided by the test, not by
timing. The worker has two slots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.store.db import session_scope
from shared.store.models import Delivery, Job, JobFile
from tests.integration.flows import compile_flow, invoice, run_async, status, wait_done
from tests.support import wait_for

pytestmark = pytest.mark.integration

BUDGET_FLOW = """
name: budget
steps:
  - {id: read, type: extract_text}
  - {id: hold, type: udf, params: {function: "udfs/budget.py:hold"}}
  - {id: after, type: udf, params: {function: "udfs/budget.py:after"}}
"""

BUDGET_UDFS = """
import os
import time


def _path(context, name):
    return os.path.join(context.runtime_config["control_dir"], name)


def _note(context, name, text):
    with open(_path(context, name), "a") as handle:
        handle.write(text + "\\n")


def hold(record, context):
    name = record["file_name"]
    _note(context, "started", name)
    deadline = time.monotonic() + 120
    while not any(os.path.exists(_path(context, f)) for f in ("open-" + name, "open-all")):
        if time.monotonic() > deadline:
            raise TimeoutError("the gate never opened")
        time.sleep(0.02)
    if "bad" in name or os.path.exists(_path(context, "fail-" + name)):
        _note(context, "failed", name)
        raise ValueError("bad input")
    _note(context, "passed", name)
    return record


def after(record, context):
    _note(context, "after", record["file_name"])
    return record
"""

HOOK = "http://127.0.0.1:9/hook"  # never answers: the delivery only has to be created


class Gates:
    """The folder the UDFs note into, and the gates the test opens (or makes fail)."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def lines(self, name: str) -> list[str]:
        file = self.path / name
        return file.read_text().splitlines() if file.exists() else []

    def open(self, name: str) -> None:
        (self.path / f"open-{name}").touch()

    def fail(self, name: str) -> None:
        (self.path / f"fail-{name}").touch()  # before it is opened: the UDF reads it after
        self.open(name)

    def open_all(self) -> None:
        (self.path / "open-all").touch()


@pytest.fixture
def gates(tmp_path):
    held = Gates(tmp_path / "gates")
    yield held
    held.open_all()  # never leave a worker slot held by a failed test


@pytest.fixture(scope="module")
def binary(stack) -> str:
    root = f"alice/budget-{stack.backend}"
    stack.upload(f"{root}/flows/main.ibflow", BUDGET_FLOW.encode())
    stack.upload(f"{root}/udfs/budget.py", BUDGET_UDFS.encode())
    compiled = compile_flow(stack, root)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    return compiled["results"][0]["binary_path"]


def submit(stack, binary: str, gates: Gates, api: str, files: list[str], budget: int) -> str:
    """A run over ``files`` with maxParseExceptions ``budget``, through v1 or v2."""
    folder = f"alice/budget-{stack.backend}/in-{gates.path.parent.name}-{gates.path.name}"
    for name in files:
        stack.upload(f"{folder}/{name}", invoice(name, "10"))
    runtime_config = {"control_dir": str(gates.path)}
    webhook = {"url": HOOK}
    if api == "v1":
        response = run_async(
            stack,
            {
                "binary_path": binary,
                "input_dir": folder,
                "settings": {
                    "runtime_config": runtime_config,
                    "webhook_config": webhook,
                    "max_parse_exceptions": budget,
                },
            },
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()["data"]["job_id"]
    response = stack.client.post(
        "/api/v2/jobs",
        headers=stack.headers(),
        data=json.dumps(
            {
                "type": "flow-run",
                "binary_path": binary,
                "input_dir": folder,
                "runtime_config": runtime_config,
                "webhook_config": webhook,
                "maxParseExceptions": budget,
            }
        ),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def v2_job(stack, job_id: str) -> dict:
    response = stack.client.get(f"/api/v2/jobs/{job_id}", headers=stack.headers())
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def files_of(stack, job_id: str) -> dict[str, tuple[str, int]]:
    """Each file's state and next step, by name."""
    with session_scope(stack.settings.sql_url, read_only=True) as session:
        rows = session.execute(
            select(JobFile.file_name, JobFile.status, JobFile.next_step).where(
                JobFile.job_id == job_id
            )
        )
        return {name: (str(state), step) for name, state, step in rows}


def job_row(stack, job_id: str) -> Job:
    with session_scope(stack.settings.sql_url, read_only=True) as session:
        job = session.get(Job, job_id)
        session.expunge(job)
        return job


def deliveries_of(stack, job_id: str) -> list[dict]:
    with session_scope(stack.settings.sql_url, read_only=True) as session:
        return list(session.scalars(select(Delivery.payload).where(Delivery.job_id == job_id)))


def seed_status(stack, job_id: str) -> str:
    return json.loads(status(stack, job_id)["cur_status"])["status"]


def distinct_started(gates: Gates) -> set[str]:
    return set(gates.lines("started"))


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_within_its_budget_a_job_completes_with_a_warning(stack, binary, gates, api):
    gates.open_all()
    files = ["bad1.txt", "good1.txt", "bad2.txt", "good2.txt"]
    job_id = submit(stack, binary, gates, api, files, budget=2)
    done = wait_done(stack, job_id)
    assert done["cur_status"]["status"] == "COMPLETE", done
    assert done["cur_status"]["run_summary"]["numRuntimeErrors"] == 2
    shown = v2_job(stack, job_id)
    assert shown["maxParseExceptions"] == 2
    assert shown["health"] == {"status": "warn", "message": "2 of 4 records failed"}
    assert sorted(gates.lines("after")) == ["good1.txt", "good2.txt"]
    assert job_row(stack, job_id).num_record_errors == 2


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_past_its_budget_a_job_fails_and_stops_its_other_files_at_the_boundary(
    stack, binary, gates, api
):
    files = ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]
    job_id = submit(stack, binary, gates, api, files, budget=1)
    # Both slots hold a file at the gate; which two is the broker's business.
    held = wait_for(lambda: len(distinct_started(gates)) == 2 and distinct_started(gates))
    first, running = sorted(held)

    # One record failed: within the budget, the job goes on, and the freed slot takes the
    # next file to the gate.
    gates.fail(first)
    third = wait_for(
        lambda: len(distinct_started(gates)) == 3 and (distinct_started(gates) - held),
        message="a third file at the gate",
    ).pop()
    assert seed_status(stack, job_id) == "RUNNING"

    # A second one: more than maxParseExceptions 1. The job fails while ``running`` is still
    # in its step.
    gates.fail(third)
    message = "Failed: 2 records failed, more than maxParseExceptions 1"
    failed = wait_for(lambda: seed_status(stack, job_id) == "FAILED" and status(stack, job_id))
    assert failed["msg"] == message and failed["results"] == [{"status": "ERROR", "msg": message}]
    # Files that had not reached the gate are ended and start no step there.
    never = set(files) - held - {third}
    wait_for(
        lambda: all(files_of(stack, job_id)[name][0] == "cancelled" for name in never),
        message="the files that had not started to be stopped",
    )
    assert files_of(stack, job_id)[running] == ("pending", 1)

    # The running step finishes, its outcome is recorded, and its file goes no further.
    gates.open(running)
    wait_for(
        lambda: files_of(stack, job_id)[running] == ("cancelled", 2),
        message="the running step to finish and its file to stop",
    )
    assert gates.lines("passed") == [running]
    assert sorted(gates.lines("failed")) == sorted([first, third])

    # Give the worker every chance to (wrongly) run more: a probe run behind every queued
    # message of the job.
    probe = submit(stack, binary, Gates(gates.path.parent / "probe"), api, ["z.txt"], budget=0)
    (gates.path.parent / "probe" / "open-all").touch()
    wait_done(stack, probe)
    assert distinct_started(gates) == held | {third}
    assert gates.lines("after") == []
    assert {name: state for name, (state, _) in files_of(stack, job_id).items()} == {
        first: "failed",
        third: "failed",
        running: "cancelled",
        **dict.fromkeys(never, "cancelled"),
    }

    shown = v2_job(stack, job_id)
    assert shown["status"] == "failed" and shown["maxParseExceptions"] == 1
    assert shown["health"] == {"status": "error", "message": message}
    assert shown["progress"] == {"current": 15, "total": 15}  # every file has ended
    row = job_row(stack, job_id)
    assert row.num_record_errors == 2 and row.files_done == row.num_files == 5
    # The failure was told as any failed job's is: its webhook was created with the change.
    assert deliveries_of(stack, job_id) == [
        {
            "status": "ERROR",
            "msg": message,
            "job_id": job_id,
            "binary_path": row.binary_path,
            "input_dir": row.input_dir,
            "output": row.output_dir,
        }
    ]


@pytest.mark.parametrize("value", [-1, "many"])
def test_v1_refuses_a_budget_that_is_not_a_count(stack, binary, value):
    response = run_async(
        stack,
        {
            "binary_path": binary,
            "input_dir": f"alice/budget-{stack.backend}/nowhere",
            "settings": {"max_parse_exceptions": value},
        },
    )
    assert response.status_code == 400, response.get_json()
    assert "max_parse_exceptions" in response.get_json()["msg"]
