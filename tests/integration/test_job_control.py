"""Pause, resume, cancel, retry, timeouts and bulk operations on real worker processes.

Steps are held by a gate UDF that waits for the test to open it, so pause and cancel land
mid-run deterministically; UDFs note every execution so the tests count them.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.store.db import session_scope
from shared.store.models import JobFile
from tests.integration.control_udfs import CONTROL_UDFS, FLAKY_FLOW, GATED_FLOW
from tests.integration.flows import (
    compile_flow,
    invoice,
    put_project,
    run_async,
    status,
    wait_done,
)
from tests.support import wait_for
from workers.names import RECOVER_STALLED, RECOVERY_PRIORITY

pytestmark = pytest.mark.integration


class Control:
    """The folder a run's UDFs note into, and the gate they wait on."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def lines(self, name: str) -> list[str]:
        file = self.path / name
        return file.read_text().splitlines() if file.exists() else []

    def open_gate(self) -> None:
        (self.path / "open").touch()

    def started_pids(self) -> list[int]:
        return [int(line.split()[-1]) for line in self.lines("started")]


@pytest.fixture
def control(tmp_path):
    ctl = Control(tmp_path / "control")
    yield ctl
    ctl.open_gate()  # never leave a worker slot held by a failed test


def compile_project(stack, root: str, flow: str) -> str:
    stack.upload(f"{root}/flows/main.ibflow", flow.encode())
    stack.upload(f"{root}/udfs/control.py", CONTROL_UDFS.encode())
    response = stack.client.post(
        "/api/v1/flow_binary/compile",
        headers=stack.headers(),
        data=json.dumps(
            {
                "binary_type": "Single Flow",
                "flow_project_root": root,
                "settings": {"flow_file": "flows/main.ibflow"},
            }
        ),
    )
    done = wait_done(stack, response.get_json()["job_id"])
    assert done["cur_status"]["status"] == "COMPLETE", done
    return done["results"][0]["binary_path"]


def start_run(stack, root: str, binary: str, control: Control, files: list[str], **settings) -> str:
    for name in files:
        stack.upload(f"{root}/input/{name}", invoice(name, "10"))
    response = run_async(
        stack,
        {
            "binary_path": binary,
            "input_dir": f"{root}/input",
            "settings": {"runtime_config": {"control_dir": str(control.path)}, **settings},
        },
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["job_id"]


def get(stack, path: str, user: str = "alice"):
    return stack.client.get(path, headers=stack.headers(user))


def seed_status(stack, job_id: str) -> str:
    return json.loads(status(stack, job_id)["cur_status"])["status"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_pause_holds_the_run_and_resume_finishes_it_without_rerunning_a_step(stack, control):
    root = f"alice/pause-{stack.backend}"
    binary = compile_project(stack, root, GATED_FLOW)
    job_id = start_run(stack, root, binary, control, ["a.txt", "b.txt", "c.txt"])
    wait_for(lambda: len(control.lines("started")) == 2, message="two files held at the gate")

    assert get(stack, f"/api/v1/jobs/pause?job_id={job_id}").get_json() == {"status": "OK"}
    # Its held steps still run, so it is not PAUSED yet.
    assert status(stack, job_id)["state"] == "PENDING"
    control.open_gate()
    wait_for(lambda: seed_status(stack, job_id) == "PAUSED", message="job PAUSED")
    held = sorted(line.split()[0] for line in control.lines("started"))
    assert sorted(control.lines("passed")) == held and len(held) == 2
    assert control.lines("count") == []  # no step started after the pause
    assert len(control.lines("started")) == 2

    again = get(stack, f"/api/v1/jobs/resume?job_id={job_id}")
    assert again.status_code == 200
    done = wait_done(stack, job_id)
    assert done["cur_status"]["status"] == "COMPLETE"
    assert done["cur_status"]["run_summary"]["numRecords"] == 3
    # Every step of every file ran exactly once.
    assert Counter(line.split()[0] for line in control.lines("started")) == {
        "a.txt": 1,
        "b.txt": 1,
        "c.txt": 1,
    }
    assert sorted(control.lines("count")) == ["after a.txt", "after b.txt", "after c.txt"]

    resumed_twice = get(stack, f"/api/v1/jobs/resume?job_id={job_id}")
    assert resumed_twice.status_code == 409 and "not paused" in resumed_twice.get_json()["msg"]
    paused_done = get(stack, f"/api/v1/jobs/pause?job_id={job_id}")
    assert paused_done.status_code == 409 and "complete" in paused_done.get_json()["msg"]


def file_states(stack, job_id: str) -> Counter:
    """How many of the job's files are in each (status, next step, has a token, has a claim)."""
    with session_scope(stack.settings.sql_url, read_only=True) as session:
        files = session.scalars(select(JobFile).where(JobFile.job_id == job_id)).all()
    return Counter(
        (f.status, f.next_step, f.next_task_id is not None, f.claimed_by is not None) for f in files
    )


def test_pauses_and_resumes_racing_a_running_job_lose_nothing_and_deadlock_nothing(stack):
    """A resume takes the job's row, then its idle files' rows; a file's ending takes its own
    row, then the job's, then a waiting file's (skipped if another transaction holds it).
    Pausing and resuming a job again and again while its files end must not deadlock (the
    store would abort one side: the request a 500, or the step sent again) nor lose a file: the
    job completes (with the stalled-step recovery beat would run, should a file be left behind)."""
    root = f"alice/races-{stack.backend}"
    put_project(stack, root)
    binary = compile_flow(stack, root)["results"][0]["binary_path"]
    files = 90  # past the job window (64): the files that end give their places on
    for number in range(files):
        stack.upload(f"{root}/input/{number:03d}.txt", invoice(str(number), "10"))
    log_start = stack.worker_log.stat().st_size
    response = run_async(stack, {"binary_path": binary, "input_dir": f"{root}/input"})
    job_id = response.get_json()["data"]["job_id"]
    answers: Counter = Counter()

    def progress() -> float | None:
        """The share of the job's steps done; None once it ended."""
        read = status(stack, job_id)
        return None if read["state"] == "DONE" else json.loads(read["cur_status"])["curProgress"]

    # A resume cannot see a file whose step is still advancing under the pause: that step
    # waits for the resume's commit and sends the file on (shared/engine/paused_files.py,
    # whose races tests/unit/test_paused_files.py plays out). Should anything else leave a
    # file behind, stalled-step recovery, which beat runs every minute, sends it on
    # (shared/engine/recovery.py). This stack has no beat: a job stuck for a few seconds after
    # a resume gets the round beat would send, then one every few seconds.
    celery_app = stack.client.application.extensions["flowbin.celery"]
    rounds = {"sent": 0, "next": 0.0}

    def went_on(last: float, resumed_at: float) -> bool:
        now = progress()
        if now is None or now >= last + 0.05:
            return True
        waited = time.monotonic() - resumed_at
        if waited > 5 and time.monotonic() >= rounds["next"]:
            celery_app.send_task(RECOVER_STALLED, priority=RECOVERY_PRIORITY, ignore_result=True)
            rounds["sent"] += 1
            rounds["next"] = time.monotonic() + 5
        return False

    # A pause and a resume each time a twentieth more of the job's steps ran: every resume
    # sends the window's steps again, so a tighter loop would only pile up stale messages.
    reached = progress()
    while reached is not None:
        for action in ("pause", "resume"):
            answers[get(stack, f"/api/v1/jobs/{action}?job_id={job_id}").status_code] += 1
        resumed_at = time.monotonic()
        try:
            # Longer than a claim lasts here (the stack's 60 s step timeout and its grace):
            # recovery also restarts a step whose claim lapsed.
            wait_for(lambda last=reached, at=resumed_at: went_on(last, at), timeout=120)
        except AssertionError:
            raise AssertionError(
                f"the job did not go on after a resume ({answers}, recovery rounds {rounds}); "
                f"its files: {file_states(stack, job_id)}"
            ) from None
        reached = progress()
    done = wait_done(stack, job_id)
    assert done["cur_status"]["status"] == "COMPLETE"
    assert done["cur_status"]["run_summary"]["numRecords"] == files
    # A pause or resume that came after the job ended is a 409; none failed.
    assert set(answers) <= {200, 409} and answers[200] >= 4, answers
    log = stack.worker_log.read_bytes()[log_start:].decode("utf-8", "replace")
    assert "deadlock detected" not in log


def test_cancel_stops_running_steps_and_the_job_never_runs_again(stack, control):
    root = f"alice/cancel-{stack.backend}"
    binary = compile_project(stack, root, GATED_FLOW)
    job_id = start_run(stack, root, binary, control, ["a.txt", "b.txt", "c.txt"])
    wait_for(lambda: len(control.started_pids()) == 2, message="two files held at the gate")
    pids = control.started_pids()
    # Which two of the three reached the gate first is the broker's business; the third one
    # must never start.
    held = {line.split()[0] for line in control.lines("started")}
    [never] = {"a.txt", "b.txt", "c.txt"} - held

    assert get(stack, f"/api/v1/jobs/cancel?job_id={job_id}").status_code == 200
    resp = status(stack, job_id)
    assert resp["state"] == "DONE" and json.loads(resp["cur_status"])["status"] == "CANCELLED"
    assert resp["results"][0]["status"] == "ERROR"
    # The held steps' processes are terminated within a few seconds.
    wait_for(
        lambda: not any(alive(pid) for pid in pids),
        timeout=10,
        message="running steps to be terminated",
    )

    for op in ("resume", "retry"):
        refused = get(stack, f"/api/v1/jobs/{op}?job_id={job_id}")
        assert refused.status_code == 409, refused.get_json()
    control.open_gate()
    # Give the worker every chance to (wrongly) run more, then check nothing ran.
    other = start_run(stack, f"{root}-probe", binary, control, ["z.txt"])
    wait_done(stack, other)
    assert control.lines("count") == ["after z.txt"]
    assert {line.split()[0] for line in control.lines("started")} == held | {"z.txt"}
    assert never not in " ".join(control.lines("started"))


def test_retry_reruns_only_the_failed_files_from_the_failed_step(stack, control):
    root = f"alice/retry-{stack.backend}"
    binary = compile_project(stack, root, FLAKY_FLOW)
    job_id = start_run(stack, root, binary, control, ["good1.txt", "bad.txt", "good2.txt"])
    first = wait_done(stack, job_id)
    assert first["cur_status"]["status"] == "COMPLETE"
    assert first["cur_status"]["run_summary"]["numRuntimeErrors"] == 1

    nothing = get(stack, f"/api/v1/jobs/retry?job_id={job_id}&type=checkpoint_failure")
    assert nothing.status_code == 409 and "no files" in nothing.get_json()["msg"]

    (control.path / "fixed").touch()
    assert get(stack, f"/api/v1/jobs/retry?job_id={job_id}&type=step_failure").status_code == 200
    done = wait_done(stack, job_id)
    summary = done["cur_status"]["run_summary"]
    assert done["cur_status"]["status"] == "COMPLETE"
    assert summary["numRuntimeErrors"] == 0 and summary["numRecords"] == 3
    assert summary["recordsWithMsg"] == {}
    runs = Counter(control.lines("count"))
    assert runs == {
        "before good1.txt": 1,
        "before good2.txt": 1,
        "before bad.txt": 1,
        "fragile good1.txt": 1,
        "fragile good2.txt": 1,
        "fragile bad.txt": 2,
        "after good1.txt": 1,
        "after good2.txt": 1,
        "after bad.txt": 1,
    }
    out = stack.settings.drive_root / done["results"][0]["output_folder"]
    results = json.loads((out / "results.json").read_text())
    assert [r["file_name"] for r in results] == ["bad.txt", "good1.txt", "good2.txt"]
    assert all(r["error"] is None for r in results)

    again = get(stack, f"/api/v1/jobs/retry?job_id={job_id}")
    assert again.status_code == 409


def test_a_step_past_its_timeout_fails_that_record_and_the_others_go_on(stack, control):
    root = f"alice/timeout-{stack.backend}"
    binary = compile_project(stack, root, GATED_FLOW)
    job_id = start_run(stack, root, binary, control, ["slow.txt"], step_timeout=1)
    done = wait_done(stack, job_id)
    assert done["cur_status"]["status"] == "FAILED"
    [(message, count)] = done["cur_status"]["run_summary"]["recordsWithMsg"].items()
    assert "hold" in message and "time limit of 1 s" in message and count == 1

    control.open_gate()
    quick = start_run(stack, f"{root}-quick", binary, control, ["a.txt", "b.txt"], step_timeout=30)
    assert wait_done(stack, quick)["cur_status"]["status"] == "COMPLETE"


def test_tags_can_be_replaced_and_cleared(stack, control):
    control.open_gate()
    root = f"alice/tags-{stack.backend}"
    binary = compile_project(stack, root, GATED_FLOW)
    job_id = start_run(stack, root, binary, control, ["a.txt"], tags=["x"])

    def post(body):
        return stack.client.post(
            "/api/v1/jobs/tags", data=json.dumps(body), headers=stack.headers()
        )

    assert post({"job_id": job_id, "names": ["t1", "t2", "t1"]}).get_json() == {
        "status": "OK",
        "updated_tags": ["t1", "t2"],
    }
    listed = get(stack, f"/api/v1/jobs/list?tags=t2&job_id={job_id}").get_json()["jobs"]
    assert [j["job_id"] for j in listed] == [job_id] and listed[0]["tags"] == ["t1", "t2"]
    assert post({"job_id": job_id}).get_json() == {"status": "OK", "updated_tags": []}
    assert post({"job_id": job_id, "names": ["z"]}).status_code == 200
    other = stack.client.post(
        "/api/v1/jobs/tags", data=json.dumps({"job_id": job_id}), headers=stack.headers("bob")
    )
    assert other.status_code == 404
    wait_done(stack, job_id)
