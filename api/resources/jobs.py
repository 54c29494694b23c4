"""The seed's Job API: status, logs, list, pause, resume, cancel, retry, bulk forms, tags."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from flask import jsonify, request
from flask.views import MethodView

from api.account_schemas import (
    CollaborationQuery,
    CollaborationResponse,
    SetCollaborationArgs,
)
from api.blueprint import Blueprint, principal
from api.context import publisher, settings, store, store_statements
from api.job_schemas import (
    BulkArgs,
    BulkResponse,
    JobIdArgs,
    ListArgs,
    ListResponse,
    OkResponse,
    RetryArgs,
    TagsArgs,
    TagsResponse,
)
from api.permissions import needs
from api.presenters import seed_list_item, seed_log_lines, seed_status
from api.schemas import LogsArgs, LogsResponse, StatusArgs, StatusResponse
from shared.accounts.access import JobNeed, get_job_for
from shared.engine.broker_work import BrokerWork
from shared.jobs.job_status import job_status
from shared.jobs.listing import Cursor, JobFilter, list_jobs, tags_and_pipelines_of
from shared.jobs.log import read_logs
from shared.jobs.page_facts import page_facts
from shared.runs import bulk, control, sharing
from shared.states import CANCEL, PAUSE, RESUME, JobStatus, Permission, Transition
from shared.store.db import custom_plans

blp = Blueprint(
    "jobs", __name__, url_prefix="/api/v1/jobs", description="Status, logs and control of jobs"
)

WEEK = timedelta(days=7)


def _window(args: dict) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    to = (
        datetime.fromtimestamp(args["to_timestamp"], UTC)
        if args.get("to_timestamp") is not None
        else now
    )
    since = (
        datetime.fromtimestamp(args["from_timestamp"], UTC)
        if args.get("from_timestamp") is not None
        else to - WEEK
    )
    return since, to


@blp.route("/status")
class JobStatusView(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.arguments(StatusArgs, location="query")
    @blp.response(200, StatusResponse)
    def get(self, args):
        """Current status of a job; results once it is done"""
        with store_statements() as session:
            read = job_status(session, principal(), args["job_id"])
        return seed_status(read.job, read.summary, read.steps_running, read.review_metrics)


@blp.route("/get_logs")
class JobLogs(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.arguments(LogsArgs, location="query")
    @blp.response(200, LogsResponse)
    def get(self, args):
        """A page of the job's log lines, oldest first; pass next_offset to read on"""
        with store(read_only=True) as session:
            job = get_job_for(session, principal(), args["job_id"])
            logs = read_logs(session, job.id, args["offset"], args["limit"], args["after_id"])
        # Shaped as LogsResponse dumps it (tests/integration/test_compile_and_run.py checks
        # it) and sent as it is: a dump of a thousand lines again took a third of the request.
        return jsonify(
            {
                "logs": seed_log_lines(logs),
                "next_offset": args["offset"] + len(logs),
                "next_after_id": logs[-1]["id"] if logs else args["after_id"],
            }
        )


@blp.route("/list")
class JobList(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, ListResponse)
    def get(self, args):
        """Flow jobs, newest first, filtered as the seed describes"""
        since, until = _window(args)
        wanted = JobFilter(
            from_timestamp=since,
            to_timestamp=until,
            limit=args["limit"],
            offset=args["offset"],
            states=args["state"],
            user=args["user"],
            priority=args["priority"],
            tags=args["tags"],
            pipeline_ids=args["pipeline_ids"],
            review_states=args["review_state"],
            job_id=args["job_id"],
            job_ids=args["job_ids"],
            reviewer=args["reviewer"],
            after=Cursor.decode(args["after"]) if args["after"] else None,
        )
        with store(read_only=True) as session:
            custom_plans(session)
            jobs, more = list_jobs(session, principal(), wanted)
            ids = [job.id for job in jobs]
            facts = page_facts(session, jobs)
            tags, pipelines = tags_and_pipelines_of(session, ids)
        items = [
            seed_list_item(
                job,
                facts[job.id].status.summary,
                facts[job.id].owner,
                tags[job.id],
                pipelines[job.id],
                # A paused job still finishing a step is shown as pausing.
                job.status == JobStatus.PAUSED and facts[job.id].status.steps_running,
                facts[job.id].status.review_metrics,
            )
            for job in jobs
        ]
        next_page = None
        if more:
            # A keyset cursor, not offset + limit: a deep page costs what the first does.
            query = {k: v for k, v in request.args.items() if k not in ("offset", "after")}
            query["after"] = Cursor(jobs[-1].created_at, jobs[-1].id).encode()
            next_page = f"{request.path}?{urlencode(query)}"
        # The presenter's items are in ListResponse's shape already (tests/integration/
        # test_job_list_and_bulk.py checks it), and a dump of them again took a third of a
        # limit=1000 request: the body goes as it is, the schema stays its documentation.
        return jsonify({"jobs": items, "next_page": next_page})


def _control_view(operation: Callable, args_schema=JobIdArgs):
    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(args_schema, location="query")
    @blp.response(200, OkResponse)
    def get(self, args):
        with store() as session:
            job = get_job_for(session, principal(), args["job_id"], JobNeed.CONTROL)
            work = operation(session, job, args)
        publisher().apply(work)
        return {"status": "OK"}

    return get


@blp.route("/pause")
class PauseJob(MethodView):
    get = _control_view(lambda session, job, args: control.pause_job(session, job))
    get.__doc__ = "Pause a queued or running job: running steps finish, no new step starts"


@blp.route("/resume")
class ResumeJob(MethodView):
    get = _control_view(lambda session, job, args: control.resume_job(session, settings(), job))
    get.__doc__ = "Resume a paused job: every file continues from its next step"


@blp.route("/cancel")
class CancelJob(MethodView):
    get = _control_view(lambda session, job, args: control.cancel_job(session, job))
    get.__doc__ = "Cancel a job for good: queued steps are dropped, running ones stopped"


@blp.route("/retry")
class RetryJob(MethodView):
    get = _control_view(
        lambda session, job, args: control.retry_job(session, settings(), job, args["type"]),
        RetryArgs,
    )
    get.__doc__ = "Rerun the failed files of a finished job from the step where they failed"


def _bulk_view(transition: Transition, operation: Callable):
    """A bulk form: ``operation`` on every job of the window that ``transition`` may move."""

    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(BulkArgs, location="query")
    @blp.response(200, BulkResponse)
    def get(self, args):
        since, until = _window(args)
        wanted = bulk.BulkFilter(since, until, args["user"], args["tags"])
        total = BrokerWork()
        with store() as session:
            for job in bulk.select_jobs_for_bulk(session, principal(), wanted, transition.sources):
                total.add(operation(session, job))
        publisher().apply(total)
        return {"status": "OK", "affected_jobs": total.affected}

    return get


@blp.route("/pause_all")
class PauseAll(MethodView):
    get = _bulk_view(PAUSE, control.pause_job)
    get.__doc__ = "Pause every queued or running job in the window (admins: any user's)"


@blp.route("/resume_all")
class ResumeAll(MethodView):
    get = _bulk_view(RESUME, lambda session, job: control.resume_job(session, settings(), job))
    get.__doc__ = "Resume every paused job in the window (admins: any user's)"


@blp.route("/cancel_all")
class CancelAll(MethodView):
    get = _bulk_view(CANCEL, control.cancel_job)
    get.__doc__ = "Cancel every unfinished job in the window; non-admins only their own"


@blp.route("/tags")
class JobTags(MethodView):
    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(TagsArgs)
    @blp.response(200, TagsResponse)
    def post(self, args):
        """Replace a job's tags; without `names` the tags are cleared"""
        with store() as session:
            tags = control.set_job_tags(session, principal(), args["job_id"], args["names"])
        return {"status": "OK", "updated_tags": tags}


@blp.route("/collaboration")
class JobCollaboration(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.arguments(CollaborationQuery, location="query")
    @blp.response(200, CollaborationResponse)
    def get(self, args):
        """Who a job is shared with, and for which steps"""
        with store(read_only=True) as session:
            shown = sharing.collaboration_for(session, principal(), args["job_id"])
        return {"status": "OK", "job_id": args["job_id"], "collaboration": shown}

    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(SetCollaborationArgs)
    @blp.response(200, CollaborationResponse)
    def post(self, args):
        """Replace who a job is shared with (its owner or an admin)

        Seed 002's collaboration: `teams` by `id` or `name`, `users` by `id`, `email` or
        `username`, each with `steps`: step ids of the job's flow (they see the job, read those
        steps' outputs and review the records stopped at them) or `"*"` (every step, and
        control of the job). An unknown team, user or step id is a 400 naming it."""
        with store() as session:
            shown = sharing.set_collaboration(
                session, settings(), principal(), args["job_id"], args["collaboration"]
            )
        return {"status": "OK", "job_id": args["job_id"], "collaboration": shown}
