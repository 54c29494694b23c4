"""Jobs as the resource API shows them (api/resource_schemas.py ``JobResource``): one shape for
every kind of job, carrying seed 002's fields and seed 003's, each with its own names.

- ``status`` is DESIGN section 4's resource vocabulary (queued, running, paused, blocked,
  completed, failed, cancelled; seed 002 names running, blocked, completed, cancelled and
  failed, and blocked is a job stopped at a checkpoint for review); ``executionStatus`` is seed
  003's (pending, running, suspended, completed, failed, canceled). A paused job whose last
  steps are still finishing shows as running in both until nothing of it runs, as v1 shows it.
- ``desiredExecutionStatus`` is what a user last asked the job to do, through either API
  (running unless someone paused or cancelled it).
- ``health`` follows shared/jobs/health.py; ``progress`` counts steps: ``total`` is the job's
  files times its steps, ``current`` the steps its files have finished (a compile, sync or
  file job: 1 step, done once it has ended).
- ``output_content`` appears once the job has completed: a flow run's ``results.json``, a
  compile's binary, a copy's or extract's destination.
- ``lastModifiedBy`` and ``lastUpdatedTimestamp`` are the last change through the resource API
  (its owner and its latest state change until then).
"""

from __future__ import annotations

from shared.jobs.counters import JobCounters
from shared.jobs.health import health_of
from shared.jobs.resource_facts import JobFacts, Person
from shared.states import (
    EXECUTION_STATUS,
    RESOURCE_STATUS,
    RESOURCE_TYPE,
    DesiredExecution,
    JobKind,
    JobStatus,
)
from shared.store.models import Job


def shown_status(job: Job, steps_running: bool) -> JobStatus:
    """A paused job that still runs steps is shown as running (pausing)."""
    if job.status == JobStatus.PAUSED and steps_running:
        return JobStatus.RUNNING
    return job.status


def stamp(user: Person) -> dict:
    return {"username": user.username, "userId": user.uuid}


def progress(job: Job, counters: JobCounters) -> dict:
    if job.kind in (JobKind.FLOW, JobKind.SYNC) and job.num_files and job.num_steps:
        return {"current": counters.steps_done, "total": job.num_files * job.num_steps}
    return {"current": 1 if job.finished_at else 0, "total": 1}


def input_content(job: Job) -> dict:
    if job.kind == JobKind.FLOW:
        on_documents = (job.settings or {}).get("documents")
        if on_documents:
            # Its input folder holds the documents it was given (shared/contents/documents.py).
            return {
                "type": "documents",
                "uri": job.input_dir,
                "binary_path": job.binary_path,
                "documents": on_documents,
            }
        return {"type": "folder", "uri": job.input_dir, "binary_path": job.binary_path}
    if job.kind == JobKind.SYNC:
        # Its files came in the request and are not kept.
        return {"type": "files", "uri": None, "binary_path": job.binary_path}
    if job.kind == JobKind.COMPILE:
        return {"type": "flow-project", "uri": job.input_dir}
    return {"type": "drive-path", "uri": job.input_dir}


def output_content(job: Job) -> dict | None:
    if job.status != JobStatus.COMPLETE or not job.output_dir:
        return None
    if job.kind == JobKind.FLOW:
        # The job's `results` content (api/resources/v2_contents.py), and its drive path.
        return {
            "type": "flow-results",
            "uri": f"{job.output_dir}/results.json",
            "url": f"/api/v2/jobs/{job.id}/contents/results",
        }
    if job.kind == JobKind.COMPILE:
        return {"type": "flow-binary", "uri": job.output_dir}
    return {"type": "drive-path", "uri": job.output_dir}


def status_view(job: Job, steps_running: bool) -> dict:
    shown = shown_status(job, steps_running)
    return {
        "executionStatus": EXECUTION_STATUS[shown],
        "desiredExecutionStatus": job.desired_execution_status or DesiredExecution.RUNNING,
        "status": RESOURCE_STATUS[shown],
    }


def job_view(job: Job, facts: JobFacts) -> dict:
    health, message = health_of(job, facts.counters, steps_running=facts.steps_running)
    moments = [job.created_at, job.started_at, job.finished_at, job.updated_at]
    return {
        "id": job.id,
        "type": RESOURCE_TYPE[job.kind],
        "owner": {
            "id": facts.owner.uuid,
            "username": facts.owner.username,
            "email": facts.owner.email,
        },
        **status_view(job, facts.steps_running),
        "message": job.message,
        "health": {"status": health, "message": message},
        "progress": progress(job, facts.counters),
        "metadata": job.job_metadata or {},
        "collaboration": facts.collaboration,
        "input_content": input_content(job),
        "output_content": output_content(job),
        "tags": facts.tags,
        "priority": job.priority,
        "maxParseExceptions": job.max_parse_exceptions,
        "createdBy": stamp(facts.owner),
        "lastModifiedBy": stamp(facts.modifier),
        "createdTimestamp": job.created_at,
        "startedTimestamp": job.started_at,
        "completedTimestamp": job.finished_at,
        "lastUpdatedTimestamp": max(moment for moment in moments if moment is not None),
    }


def metrics_view(counters: JobCounters) -> dict:
    """Seed 003's totals, rows being records: processed are the records that came through
    (those stopped at a checkpoint too: they await review), skipped by error those that failed
    a step, skipped by filter those a filter step dropped; processed with warning those that
    came through carrying ``warnings`` (counted when their file ends)."""
    return {
        "totals": {
            "numRowsProcessed": counters.records - counters.errors,
            "numRowsProcessedWithWarning": counters.warnings,
            "numRowsSkippedByFilter": counters.filtered,
            "numRowsSkippedByError": counters.errors,
        }
    }
