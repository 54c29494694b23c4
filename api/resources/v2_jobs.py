"""The resource API's jobs (``/api/v2/jobs``, seeds 002 and 003) and their types
(``/api/v2/job-types``): the same jobs as v1's, each in one shape (api/resource_presenters.py),
created, listed with filters and keyset pages, changed, steered by a desired execution status,
measured and removed. Who may do what is shared/accounts/access.py's, as in v1."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import jsonify, request
from flask.views import MethodView

from api.blueprint import Blueprint, principal
from api.context import publisher, settings, store, store_statements
from api.permissions import needs
from api.resource_presenters import job_view, metrics_view, status_view
from api.resource_schemas import (
    CREATE_JOB_BODY,
    FLOW_RUN,
    CreateJobArgs,
    DesiredArgs,
    JobResource,
    JobsPage,
    JobStatusSchema,
    ListJobsArgs,
    LogPageArgs,
    LogsPage,
    MetricsResponse,
    UpdateJobArgs,
)
from api.resources import v2_job_types
from api.resources.enqueue import publish_or_fail
from shared.accounts.access import JobNeed, checked_grant, get_job_for
from shared.contents.documents import create_run_on_documents
from shared.errors import NotFound
from shared.jobs.counters import counters_of, job_with_counters
from shared.jobs.health import Health
from shared.jobs.ids import JOB_ID
from shared.jobs.log import read_logs
from shared.jobs.resource_facts import facts_of
from shared.jobs.resource_listing import Cursor, ResourceFilter, list_resources, states_named
from shared.jobs.summary import jobs_with_running_steps
from shared.runs import job_edits
from shared.runs.compile import CompileRequest, start_compile
from shared.runs.desired_state import set_desired
from shared.runs.submit import RunRequest, RunSettings, create_run
from shared.states import (
    EXECUTION_STATUS,
    RESOURCE_STATUS,
    RESOURCE_TYPE,
    DesiredExecution,
    Permission,
)
from shared.store.db import custom_plans
from shared.store.models import Job

blp = Blueprint(
    "v2_jobs",
    __name__,
    url_prefix="/api/v2",
    description="Jobs as resources (seeds 002 and 003): the same jobs as /api/v1/jobs",
)
JOB = "/jobs/<string(minlength=1, maxlength=50):job_id>"
KIND_OF_TYPE = {name: kind for kind, name in RESOURCE_TYPE.items()}


def _checked(job_id: str) -> str:
    # An id no job can have is missing like any other (and never reaches the store).
    if not JOB_ID.fullmatch(job_id):
        raise NotFound(f"no job with id {job_id!r}")
    return job_id


def _job(session, job_id: str, need: JobNeed = JobNeed.VIEW) -> Job:
    return get_job_for(session, principal(), _checked(job_id), need)


def _shown(job_id: str) -> dict:
    # Outside a transaction: the job's row and its totals are one statement, and its owner,
    # tags and collaboration need no snapshot of their own with it.
    with store_statements() as session:
        job, counters = job_with_counters(session, _checked(job_id))
        job, _ = checked_grant(session, principal(), job_id, job, JobNeed.VIEW)
        return job_view(job, facts_of(session, [job], {job.id: counters})[job.id])


def _submit_run(args: dict) -> str:
    run = RunSettings(
        output_has_run_id=args["output_has_run_id"],
        tags=tuple(args["tags"]),
        step_timeout=args["step_timeout"],
        priority=args["priority"],
        runtime_config=dict(args["runtime_config"]),
        webhook_config=args["webhook_config"],
        collaboration=args["collaboration"],
        metadata=args["metadata"],
        max_parse_exceptions=args["maxParseExceptions"],
    )
    request_ = RunRequest(
        binary_path=args["binary_path"],
        input_dir=args["input_dir"],
        output_dir=args["output_dir"],
        job_id=args["id"],
        settings=run,
    )
    if args["documents"] is None:
        job, work = create_run(settings(), principal(), request_)
    else:
        ids = [str(document_id) for document_id in args["documents"]]
        job, work = create_run_on_documents(settings(), principal(), request_, ids)
    publish_or_fail(job.id, work)
    return job.id


def _submit_compile(args: dict) -> str:
    request_ = CompileRequest(
        flow_project_root=args["flow_project_root"],
        binary_type=args["binary_type"],
        settings=dict(args["settings"]),
        predefined_binary_path=args["predefined_binary_path"],
    )
    with store() as session:
        job, work = start_compile(session, settings(), principal(), request_)
        job_edits.annotate_new_job(session, job, args["metadata"], args["tags"])
    publish_or_fail(job.id, work)
    return job.id


def _filter(args: dict) -> ResourceFilter:
    # Both vocabularies name states: a job must be in one that each filter given names.
    statuses = None
    for vocabulary, names in (
        (RESOURCE_STATUS, args["status"]),
        (EXECUTION_STATUS, args["executionStatus"]),
    ):
        if names:
            named = states_named(vocabulary, names)
            statuses = named if statuses is None else statuses & named
    return ResourceFilter(
        statuses=statuses,
        kinds=frozenset(KIND_OF_TYPE[name] for name in args["type"]),
        health=frozenset(Health(name) for name in args["healthStatus"]),
        desired=frozenset(DesiredExecution(name) for name in args["desiredExecutionStatus"]),
        tags=tuple(args["tag"] + args["tags"]),
        owners=tuple(args["owner"]),
        priorities=frozenset(args["priority"]),
        ids=tuple(args["id"]),
        created_after=args["createdAfter"],
        created_before=args["createdBefore"],
    )


@blp.route("/jobs")
class Jobs(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.arguments(ListJobsArgs, location="query")
    @blp.response(200, JobsPage)
    def get(self, args):
        """The jobs you see, newest first, filtered by any of their attributes

        A repeated parameter matches any of its values; different parameters must all match.
        `next` links the following page (a cursor: pages do not shift as jobs arrive)."""
        after = Cursor.decode(args["cursor"]) if args["cursor"] else None
        with store(read_only=True) as session:
            custom_plans(session)
            jobs, following = list_resources(
                session, principal(), _filter(args), args["limit"], after
            )
            facts = facts_of(session, jobs)
        next_page = None
        if following is not None:
            kept = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
            next_page = f"{request.path}?{urlencode([*kept, ('cursor', following.encode())])}"
        return {"values": [job_view(job, facts[job.id]) for job in jobs], "next": next_page}

    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(CreateJobArgs)
    @blp.doc(requestBody=CREATE_JOB_BODY)
    @blp.response(201, JobResource)
    def post(self, args):
        """Create a job: a flow run, or a flow project's compile

        Its `type` says which, and which fields it takes (`GET /api/v2/job-types`); any other
        top-level field is kept in the job's `metadata`."""
        job_id = _submit_run(args) if args["type"] == FLOW_RUN else _submit_compile(args)
        return _shown(job_id)


@blp.route(JOB)
class JobView(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.response(200, JobResource)
    def get(self, job_id: str):
        """A job: poll it until its status is completed, cancelled or failed"""
        return _shown(job_id)

    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(UpdateJobArgs)
    @blp.response(200, JobResource)
    def put(self, args, job_id: str):
        """Change a job: replace its metadata, tags or collaboration, set its desired status

        Collaboration is its owner's or an admin's to change; the rest a controller's."""
        desired = args.get("desiredExecutionStatus")
        changes = job_edits.JobChanges(
            metadata=args.get("metadata"),
            tags=args.get("tags"),
            collaboration=args.get("collaboration"),
            desired=DesiredExecution(desired) if desired else None,
        )
        with store() as session:
            _, work = job_edits.change_job(
                session, settings(), principal(), _checked(job_id), changes
            )
        publisher().apply(work)
        return _shown(job_id)

    @needs(Permission.MANAGE_JOBS)
    @blp.response(204)
    def delete(self, job_id: str):
        """Remove a job's record, cancelling it first if it has not ended (its output stays)"""
        with store() as session:
            work = job_edits.remove_job(session, principal(), _checked(job_id))
        publisher().apply(work)


@blp.route(f"{JOB}/status")
class JobStatusView(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.response(200, JobStatusSchema)
    def get(self, job_id: str):
        """A job's execution status, desired execution status and status"""
        with store(read_only=True) as session:
            job = _job(session, job_id)
            return status_view(job, bool(jobs_with_running_steps(session, [job.id])))

    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(DesiredArgs)
    @blp.response(200, JobResource)
    def post(self, args, job_id: str):
        """Set what a job should do: running, suspended or canceled

        Recorded at once; the job follows at its next step boundary (a suspended job's running
        steps finish, and no new one starts). A wish the job cannot reach is a 409."""
        with store() as session:
            job = _job(session, job_id, JobNeed.CONTROL)
            desired = DesiredExecution(args["desiredExecutionStatus"])
            work = set_desired(session, settings(), principal(), job, desired)
        publisher().apply(work)
        return _shown(job_id)

    put = post


@blp.route(f"{JOB}/metrics")
class JobMetrics(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.response(200, MetricsResponse)
    def get(self, job_id: str):
        """A job's record totals (seed 003's rows are Flowbin's records)"""
        with store(read_only=True) as session:
            job = _job(session, job_id)
            return metrics_view(counters_of(session, [job.id])[job.id])


@blp.route(f"{JOB}/logs")
class JobLogs(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.arguments(LogPageArgs, location="query")
    @blp.response(200, LogsPage)
    def get(self, args, job_id: str):
        """A page of a job's log lines, oldest first; `next` links the following page"""
        with store(read_only=True) as session:
            job = _job(session, job_id)
            lines = read_logs(session, job.id, args["offset"], args["limit"], args["after"])
        values = [
            {
                # The seed's "2022-12-07 23:27:54,636" (UTC) in ISO 8601.
                "timestamp": line["ts"].replace(" ", "T").replace(",", ".") + "Z",
                "level": line["level"],
                "message": line["log"],
                "taskId": line["task_id"],
                "traceId": line["trace_id"],
                "spanId": line["span_id"],
            }
            for line in lines
        ]
        next_page = None
        if len(lines) == args["limit"]:
            # A keyset position: the next page is read from the index, however deep.
            query = {"after": lines[-1]["id"], "limit": args["limit"]}
            next_page = f"{request.path}?{urlencode(query)}"
        # In LogsPage's shape already (tests/integration/test_resource_api.py checks it): a
        # dump of a thousand lines again would cost more than building them.
        return jsonify({"values": values, "next": next_page})


v2_job_types.add_routes(blp)
