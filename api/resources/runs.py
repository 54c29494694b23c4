"""POST /api/v1/flow/run_binary_async: run a flow binary over an input folder; and
run_flow_async: compile a flow file (in a worker, cached by its sources) and run it."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, principal
from api.context import settings
from api.permissions import needs
from api.resources.enqueue import publish_or_fail
from api.schemas import RunAsyncArgs, RunAsyncResponse, RunFlowAsyncArgs
from shared.errors import InvalidRequest
from shared.runs import flow_run
from shared.runs.submit import RunRequest, RunSettings, create_run
from shared.states import Permission

blp = Blueprint("flow", __name__, url_prefix="/api/v1/flow", description="Run flow binaries")


def _run_request(args: dict) -> RunRequest:
    return RunRequest(
        binary_path=args["binary_path"],
        input_dir=args["input_dir"],
        output_dir=args.get("output_dir"),
        job_id=args.get("job_id"),
        settings=_run_settings(args["settings"]),
    )


def _run_settings(run: dict) -> RunSettings:
    return RunSettings(
        output_has_run_id=run["output_has_run_id"],
        delete_out_dir=run["delete_out_dir"],
        log_to_timeline=run["log_to_timeline"],
        tags=tuple(run["tags"]),
        step_timeout=run["step_timeout"],
        priority=run["priority"],
        save_binary_to_output=run["save_binary_to_output"],
        runtime_config=dict(run["runtime_config"]),
        webhook_config=run["webhook_config"],
        notification_emails=tuple(run["notification_emails"]),
        pipeline_ids=tuple(run["pipeline_ids"]),
        collaboration=run["collaboration"],
        max_parse_exceptions=run["max_parse_exceptions"],
    )


@blp.route("/run_binary_async")
class RunBinaryAsync(MethodView):
    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(RunAsyncArgs)
    @blp.response(200, RunAsyncResponse)
    def post(self, args):
        """Start a run; poll jobs/status with the returned job_id"""
        job, work = create_run(settings(), principal(), _run_request(args))
        publish_or_fail(job.id, work)
        return {"status": "OK", "data": {"job_id": job.id, "output_folder": job.output_dir}}


@blp.route("/run_flow_async")
class RunFlowAsync(MethodView):
    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(RunFlowAsyncArgs)
    @blp.response(200, RunAsyncResponse)
    def post(self, args):
        """Compile a flow file and run it; poll jobs/status with the returned job_id

        The flow is compiled by a worker (as `flow_binary/compile` would, into the project's
        `build/bin`) unless its project's sources are unchanged since the last compile; the
        answer waits for the compile. The project is the flow file's folder, or its parent when
        that folder is `flows/`. The run settings are at the top level of the body."""
        input_dir = args["input_dir"] or args["input_folder"]
        if not input_dir:
            raise InvalidRequest("input_dir (or input_folder) is required: the folder to run on")
        if args["disable_step_timeout"]:
            args["step_timeout"] = -1
        project = flow_run.project_of(settings(), principal(), args["ibflow_path"])
        binary = flow_run.compiled_binary(settings(), principal(), project, publish_or_fail)
        request = RunRequest(
            binary_path=binary,
            input_dir=input_dir,
            output_dir=args["output_dir"],
            job_id=args["job_id"],
            settings=_run_settings(args),
        )
        job, work = create_run(settings(), principal(), request)
        publish_or_fail(job.id, work)
        return {"status": "OK", "data": {"job_id": job.id, "output_folder": job.output_dir}}
