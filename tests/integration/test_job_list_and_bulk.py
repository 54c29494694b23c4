"""jobs/list filters and paging, and the bulk operations' reach, on real workers."""

from __future__ import annotations

import json
import time

import pytest

from api.job_schemas import ListResponse
from tests.integration.control_udfs import CONTROL_UDFS, HOLD_FLOW
from tests.integration.flows import invoice, run_async, wait_done
from tests.integration.test_job_control import Control

pytestmark = pytest.mark.integration


@pytest.fixture
def held(stack, tmp_path):
    """Submit runs of a one-step flow that holds its step until the gate opens."""
    control = Control(tmp_path / "control")
    binaries = {}
    # Compile before anything holds the worker's slots: a compile is a job too.
    for user in ("alice", "bob"):
        root = f"{user}/held-{stack.backend}-{tmp_path.name}"
        stack.upload(f"{root}/flows/main.ibflow", HOLD_FLOW.encode(), user)
        stack.upload(f"{root}/udfs/control.py", CONTROL_UDFS.encode(), user)
        stack.upload(f"{root}/input/a.txt", invoice("1", "1"), user)
        response = stack.client.post(
            "/api/v1/flow_binary/compile",
            headers=stack.headers(user),
            data=json.dumps(
                {
                    "binary_type": "Single Flow",
                    "flow_project_root": root,
                    "settings": {"flow_file": "flows/main.ibflow"},
                }
            ),
        )
        done = wait_done(stack, response.get_json()["job_id"], user)
        binaries[user] = (root, done["results"][0]["binary_path"])

    def submit(user: str, tags: list[str] = (), priority: int = 0) -> str:
        root, binary = binaries[user]
        response = run_async(
            stack,
            {
                "binary_path": binary,
                "input_dir": f"{root}/input",
                "settings": {
                    "tags": list(tags),
                    "priority": priority,
                    "runtime_config": {"control_dir": str(control.path)},
                },
            },
            user,
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()["data"]["job_id"]

    submit.control = control
    yield submit
    control.open_gate()


def listing(stack, query: str, user: str = "alice") -> dict:
    response = stack.client.get(f"/api/v1/jobs/list?{query}", headers=stack.headers(user))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_list_filters_pages_and_ownership(stack, held):
    tag = f"list-{stack.backend}"
    mine = [held("alice", tags=[tag], priority=3) for _ in range(3)]
    theirs = held("bob", tags=[tag])
    held.control.open_gate()
    for job_id in mine:
        wait_done(stack, job_id)
    wait_done(stack, theirs, "bob")

    page = listing(stack, f"tags={tag}&limit=2")
    assert [j["job_id"] for j in page["jobs"]] == [mine[2], mine[1]]  # newest first, own only
    # The next page continues after the last job shown (a keyset cursor, not an offset).
    assert page["next_page"].startswith("/api/v1/jobs/list?") and "after=" in page["next_page"]
    assert "offset=" not in page["next_page"]
    rest = stack.client.get(page["next_page"], headers=stack.headers()).get_json()
    assert [j["job_id"] for j in rest["jobs"]] == [mine[0]] and rest["next_page"] is None
    # An explicit offset still answers, the same page.
    skipped = listing(stack, f"tags={tag}&limit=2&offset=2")
    assert [j["job_id"] for j in skipped["jobs"]] == [mine[0]] and skipped["next_page"] is None

    job = page["jobs"][0]
    assert set(job) >= {
        "curMsg",
        "state",
        "tags",
        "job_id",
        "input_folder",
        "output_folder",
        "source_path",
        "flow_type",
        "is_flow_v3",
        "start_timestamp",
        "finish_timestamp",
        "runtime_sec",
        "username",
        "priority",
        "run_summary",
        "reviewer",
        "review_state",
        "flow_pipeline_infos",
        "flow_job_metrics",
        "flow_review_metrics",
    }
    assert job["state"] == "COMPLETE" and job["username"] == "alice" and job["priority"] == 3
    assert job["flow_type"] == "single_flow" and job["run_summary"]["numFiles"] == 1
    assert job["finish_timestamp"] >= job["start_timestamp"] > time.time() - 3600

    admin = listing(stack, f"tags={tag}", user="root")
    assert {j["job_id"] for j in admin["jobs"]} == {*mine, theirs}
    # The body goes out as the presenter shaped it, without a dump through the schema the
    # spec documents: it must be what that dump would give, no field more or less.
    for body in (page, rest, admin):
        assert ListResponse().dump(body) == body
    # A key the API does not know is still reported, as on every v1 answer.
    assert listing(stack, f"tags={tag}&colour=red")["warnings"] == [
        "colour is not supported and was ignored"
    ]
    assert [j["job_id"] for j in listing(stack, f"tags={tag}&user=bob", "root")["jobs"]] == [theirs]
    assert listing(stack, f"tags={tag}&state=FAILED,CANCELLED")["jobs"] == []
    assert len(listing(stack, f"tags={tag}&state=COMPLETE&priority=3")["jobs"]) == 3
    assert listing(stack, f"tags={tag}&priority=4")["jobs"] == []
    partial = listing(stack, f"job_id={mine[1][4:20]}")["jobs"]
    assert [j["job_id"] for j in partial] == [mine[1]]
    both = listing(stack, f"job_ids={mine[0]},{theirs}")["jobs"]
    assert [j["job_id"] for j in both] == [mine[0]]  # bob's job is not alice's to see
    old = listing(stack, f"tags={tag}&to_timestamp={int(time.time()) - 3600}")["jobs"]
    assert old == []
    bad = stack.client.get("/api/v1/jobs/list?state=SLEEPING", headers=stack.headers())
    assert bad.status_code == 400 and "SLEEPING" in bad.get_json()["msg"]


def test_bulk_operations_reach_only_what_the_caller_may_touch(stack, held):
    tag = f"bulk-{stack.backend}"
    alice_jobs = [held("alice", tags=[tag]) for _ in range(2)]
    bob_job = held("bob", tags=[tag])

    paused = stack.client.get(
        f"/api/v1/jobs/pause_all?tags={tag}&user=bob", headers=stack.headers("alice")
    )
    # A non-admin's bulk call acts on their own jobs only, whatever `user` says.
    assert paused.get_json() == {"status": "OK", "affected_jobs": 2}
    states = {j["job_id"]: j["state"] for j in listing(stack, f"tags={tag}", "root")["jobs"]}
    assert states[bob_job] == "RUNNING"
    assert all(states[job_id] in ("PAUSED", "RUNNING") for job_id in alice_jobs)

    resumed = stack.client.get(
        f"/api/v1/jobs/resume_all?tags={tag}", headers=stack.headers("alice")
    ).get_json()
    assert resumed == {"status": "OK", "affected_jobs": 2}

    cancelled = stack.client.get(
        f"/api/v1/jobs/cancel_all?tags={tag}&user=bob", headers=stack.headers("root")
    ).get_json()
    assert cancelled == {"status": "OK", "affected_jobs": 1}
    own = stack.client.get(
        f"/api/v1/jobs/cancel_all?tags={tag}", headers=stack.headers("alice")
    ).get_json()
    assert own == {"status": "OK", "affected_jobs": 2}
    states = {j["job_id"]: j["state"] for j in listing(stack, f"tags={tag}", "root")["jobs"]}
    assert set(states.values()) == {"CANCELLED"}
    none_left = stack.client.get(
        f"/api/v1/jobs/cancel_all?tags={tag}", headers=stack.headers("alice")
    ).get_json()
    assert none_left["affected_jobs"] == 0
