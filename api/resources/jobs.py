"""The seed's Job API: status and logs."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, principal
from api.context import store
from api.presenters import seed_status
from api.schemas import LogsArgs, LogsResponse, StatusArgs, StatusResponse
from shared.joblog import read_logs
from shared.jobs import get_job_for, run_summaries

blp = Blueprint(
    "jobs", __name__, url_prefix="/api/v1/jobs", description="Status, logs and control of jobs"
)


@blp.route("/status")
class JobStatusView(MethodView):
    @blp.arguments(StatusArgs, location="query")
    @blp.response(200, StatusResponse)
    def get(self, args):
        """Current status of a job; results once it is done"""
        with store() as session:
            job = get_job_for(session, principal(), args["job_id"])
            summary = run_summaries(session, [job])[job.id]
        return seed_status(job, summary)


@blp.route("/get_logs")
class JobLogs(MethodView):
    @blp.arguments(LogsArgs, location="query")
    @blp.response(200, LogsResponse)
    def get(self, args):
        """A page of the job's log lines, oldest first; pass next_offset to read on"""
        with store() as session:
            job = get_job_for(session, principal(), args["job_id"])
            logs = read_logs(session, job.id, args["offset"], args["limit"])
        return {"logs": logs, "next_offset": args["offset"] + len(logs)}
