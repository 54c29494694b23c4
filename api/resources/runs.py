"""POST /api/v1/flow/run_binary_async: run a flow binary over an input folder."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, principal
from api.context import settings
from api.permissions import needs
from api.resources.enqueue import publish_or_fail
from api.schemas import RunAsyncArgs, RunAsyncResponse
from shared.runs.submit import RunRequest, RunSettings, create_run
from shared.states import Permission

blp = Blueprint("flow", __name__, url_prefix="/api/v1/flow", description="Run flow binaries")


def _run_request(args: dict) -> RunRequest:
    run = args["settings"]
    return RunRequest(
        binary_path=args["binary_path"],
        input_dir=args["input_dir"],
        output_dir=args.get("output_dir"),
        job_id=args.get("job_id"),
        settings=RunSettings(
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
        ),
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
