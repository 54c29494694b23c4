"""The totals kept on a job's row (shared/jobs/counters.py) equal what its file rows add up to,
on real worker processes: as files advance, end with records filtered or failed, are retried and
are cancelled. The file rows' sum is the reference; the status and metrics read the kept ones."""

from __future__ import annotations

import json

import pytest

from shared.jobs.counters import counters_of, totals_from_files
from shared.store.db import session_scope
from shared.store.models import Job
from tests.integration import test_resource_api as resource_api
from tests.integration.flows import status
from tests.integration.test_resource_api import create_gated, create_run, ok, v2, wait_ended
from tests.support import wait_for

pytestmark = pytest.mark.integration
# The resource API tests' compiled flows and gate, shared.
projects = resource_api.projects
gate = resource_api.gate


def kept_and_reference(stack, job_id: str):
    with session_scope(stack.settings.sql_url, read_only=True) as session:
        job = session.get(Job, job_id)
        kept = (counters_of(session, [job_id])[job_id], dict(job.error_counts))
        return kept, totals_from_files(session, [job_id])[job_id]


def test_kept_totals_equal_the_file_rows_through_a_run_a_retry_and_a_cancel(stack, projects, gate):
    job_id = create_run(stack, projects, "mixed")["id"]
    assert wait_ended(stack, job_id)["status"] == "completed"
    kept, reference = kept_and_reference(stack, job_id)
    assert kept == reference
    counters, messages = kept
    # a.txt came through and c.txt failed its enrich step (2 records); b.txt was filtered.
    assert (counters.records, counters.filtered, counters.errors) == (2, 1, 1)
    assert counters.steps_done == 3 * 4 and list(messages.values()) == [1]
    assert "cannot enrich a boom" in next(iter(messages))
    seed = json.loads(status(stack, job_id)["cur_status"])
    assert seed["run_summary"]["recordsWithMsg"] == messages

    # A retry starts c.txt again from its failed step: the totals drop it, then count it again.
    retried = stack.client.get(
        f"/api/v1/jobs/retry?job_id={job_id}&type=step_failure", headers=stack.headers()
    )
    assert retried.status_code == 200, retried.get_json()
    assert wait_ended(stack, job_id)["status"] == "completed"
    kept, reference = kept_and_reference(stack, job_id)
    assert kept == reference and kept[0].errors == 1 and list(kept[1].values()) == [1]

    # A step held at the gate: mid-run the kept totals are the file rows' too; a cancel counts
    # the cancelled file as every step done.
    held = create_gated(stack, projects, gate)["id"]
    wait_for(lambda: gate.lines("started"), message="the file held at the gate")
    kept, reference = kept_and_reference(stack, held)
    assert kept == reference
    ok(v2(stack, "POST", f"/jobs/{held}/status", {"desiredExecutionStatus": "canceled"}))
    kept, reference = kept_and_reference(stack, held)
    assert kept == reference
    with session_scope(stack.settings.sql_url, read_only=True) as session:
        job = session.get(Job, held)
        assert kept[0].steps_done == job.num_files * job.num_steps
