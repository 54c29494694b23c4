"""Jobs shown in the seeds' vocabulary (DESIGN section 4).

Timestamps are Unix seconds everywhere (the seeds' tables say 10-digit; one example shows 19
digits): ``finish_timestamp`` is an integer, list timestamps keep their fraction as in seed 000's
list example.
"""

from __future__ import annotations

import json

from shared.jobs import RunSummary
from shared.models import Job
from shared.states import SEED_STATE, SEED_STATUS, TERMINAL, JobStatus


def unix_seconds(moment) -> int | None:
    return int(moment.timestamp()) if moment else None


def seed_status(job: Job, summary: RunSummary) -> dict:
    status = JobStatus(job.status)
    cur_status = {
        "job_id": job.id,
        "flow_index": 0,
        "status": SEED_STATUS[status],
        "finish_timestamp": unix_seconds(job.finished_at),
        "curProgress": summary.progress,
        "curMsg": job.message,
        "reviewer": job.reviewer,
        "review_state": job.review_state,
        "flow_job_metrics": None,
        "flow_review_metrics": None,
        "run_summary": summary.to_seed(),
    }
    if job.kind == "compile":
        cur_status["binary_path"] = job.output_dir or None
    payload = {
        "status": "OK",
        "msg": job.message,
        "state": SEED_STATE[status],
        "is_waiting_for_resources": status == JobStatus.QUEUED,
        "job_id": job.id,
        "cur_status": json.dumps(cur_status),
        "finish_timestamp": unix_seconds(job.finished_at),
        "binary_mode": job.kind == "flow",
    }
    if status in TERMINAL:
        payload["results"] = [_result(job, status)]
    return payload


def _result(job: Job, status: JobStatus) -> dict:
    if status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return {"status": "ERROR", "msg": job.message}
    if job.kind == "compile":
        folder = job.output_dir.rsplit("/", 1)[0] if "/" in job.output_dir else job.output_dir
        return {"status": "OK", "output_folder": folder, "binary_path": job.output_dir}
    return {"status": "OK", "output_folder": job.output_dir}
