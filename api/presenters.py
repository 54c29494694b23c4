"""Jobs shown in the seeds' vocabulary (DESIGN section 4).

Timestamps are Unix seconds everywhere (the seeds' tables say 10-digit; one example shows 19
digits): ``finish_timestamp`` is an integer, list timestamps keep their fraction as in seed 000's
list example.
"""

from __future__ import annotations

import json

from shared.jobs.summary import RunSummary
from shared.states import (
    FAILED_OR_CANCELLED,
    REPORTED_DONE,
    SEED_STATE,
    SEED_STATUS,
    JobKind,
    JobStatus,
)
from shared.store.models import Job


def unix_seconds(moment) -> int | None:
    return int(moment.timestamp()) if moment else None


def shown_status(job: Job, steps_running: bool) -> JobStatus:
    """A paused job whose last steps are still finishing is shown as running (pausing): it
    shows PAUSED once nothing of it runs."""
    status = job.status
    if status == JobStatus.PAUSED and steps_running:
        return JobStatus.RUNNING
    return status


def seed_status(
    job: Job, summary: RunSummary, steps_running: bool = False, review_metrics: dict | None = None
) -> dict:
    status = shown_status(job, steps_running)
    cur_status = {
        "job_id": job.id,
        "flow_index": 0,
        "status": SEED_STATUS[status],
        "finish_timestamp": unix_seconds(job.finished_at),
        "curProgress": summary.progress,
        "curMsg": "Pausing" if status != job.status else job.message,
        "reviewer": job.reviewer,
        "review_state": job.review_state,
        "flow_job_metrics": None,
        "flow_review_metrics": review_metrics,
        "run_summary": summary.to_seed(),
    }
    if job.kind == JobKind.COMPILE:
        cur_status["binary_path"] = job.output_dir or None
    payload = {
        "status": "OK",
        "msg": job.message,
        "state": SEED_STATE[status],
        "is_waiting_for_resources": status == JobStatus.QUEUED,
        "job_id": job.id,
        "cur_status": json.dumps(cur_status),
        "finish_timestamp": unix_seconds(job.finished_at),
        "binary_mode": job.kind == JobKind.FLOW,
    }
    if status in REPORTED_DONE:
        payload["results"] = [_result(job, status)]
    return payload


def _result(job: Job, status: JobStatus) -> dict:
    if status in FAILED_OR_CANCELLED:
        return {"status": "ERROR", "msg": job.message}
    if job.kind == JobKind.COMPILE:
        folder = job.output_dir.rsplit("/", 1)[0] if "/" in job.output_dir else job.output_dir
        return {"status": "OK", "output_folder": folder, "binary_path": job.output_dir}
    return {"status": "OK", "output_folder": job.output_dir}


def seed_list_item(
    job: Job,
    summary: RunSummary,
    username: str,
    tags: list[str],
    pipeline_ids: list[str],
    steps_running: bool = False,
    review_metrics: dict | None = None,
) -> dict:
    started = job.created_at.timestamp()
    finished = job.finished_at.timestamp() if job.finished_at else None
    return {
        "curMsg": job.message,
        # As in jobs/status's cur_status: the fraction of the job's file steps that ran.
        "curProgress": summary.progress,
        "state": SEED_STATUS[shown_status(job, steps_running)],
        "tags": tags,
        "job_id": job.id,
        "input_folder": job.input_dir,
        "output_folder": job.output_dir,
        "flow_path": job.binary_path,
        "source_path": job.binary_path,
        "flow_type": job.flow_type,
        "is_flow_v3": True,
        "start_timestamp": started,
        "finish_timestamp": finished,
        "runtime_sec": (finished - (job.started_at or job.created_at).timestamp())
        if finished is not None
        else None,
        "username": username,
        "priority": job.priority,
        "run_summary": summary.to_seed(),
        "reviewer": job.reviewer,
        "review_state": job.review_state,
        "flow_pipeline_infos": [{"pipeline_id": p, "pipeline_name": p} for p in pipeline_ids],
        "flow_job_metrics": None,
        "flow_review_metrics": review_metrics,
    }


def seed_log_lines(lines: list[dict]) -> list[dict]:
    """Log lines (``read_logs``) as seed 000 shows them: ``job-id`` and ``task-id`` hyphenated,
    without the ``id`` a page is read on from (its last one is the page's ``next_after_id``)."""
    return [
        {
            "job-id": line["job_id"],
            "task-id": line["task_id"],
            "level": line["level"],
            "ts": line["ts"],
            "trace_id": line["trace_id"],
            "span_id": line["span_id"],
            "log": line["log"],
        }
        for line in lines
    ]
