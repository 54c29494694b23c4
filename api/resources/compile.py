"""The Flow Binary API: ``compile`` a flow project into a binary, as a job (also at
``/compile/<url-quoted path>``, as Instabase's CI/CD toolkits call it), and read a run's
``results`` from its ``batch.ibflowresults``."""

from __future__ import annotations

import json

from flask.views import MethodView

from api.blueprint import Blueprint, principal
from api.context import guarded_drive, settings, store
from api.permissions import needs
from api.resources.enqueue import publish_or_fail
from api.schemas import CompileArgs, JobIdResponse, ResultsArgs, ResultsResponse
from shared.engine.layout import IBFLOWRESULTS
from shared.errors import InvalidRequest, NotFound
from shared.runs.compile import compile_request, start_compile
from shared.states import Permission

RESULTS_SUFFIX = ".ibflowresults"

blp = Blueprint(
    "flow_binary",
    __name__,
    url_prefix="/api/v1/flow_binary",
    description="Compile flow projects into flow binaries",
)


def _compile(args: dict, path: str | None = None) -> dict:
    request = compile_request(args, path)
    with store() as session:
        job, work = start_compile(session, settings(), principal(), request)
    publish_or_fail(job.id, work)
    return {"status": "OK", "job_id": job.id}


@blp.route("/compile")
class Compile(MethodView):
    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(CompileArgs)
    @blp.response(200, JobIdResponse)
    def post(self, args):
        """Compile a flow project; read the outcome with jobs/status"""
        return _compile(args)


@blp.route("/compile/<drive_path:path>")
class CompileAtPath(MethodView):
    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(CompileArgs)
    @blp.response(200, JobIdResponse)
    def post(self, args, path: str):
        """Compile the project at a path (Instabase's form)

        The path is the project folder, or its flow file (`.ibflow`), when the body does not
        give `flow_project_root` (and `settings.flow_file`); the body's values win."""
        return _compile(args, path)


@blp.route("/results")
class Results(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.arguments(ResultsArgs)
    @blp.response(200, ResultsResponse)
    def post(self, args):
        """The records of a finished run, from its `batch.ibflowresults`

        `ibresults_path` is the file every async run writes in its output folder when it ends
        (or that folder); `options` are accepted and ignored."""
        drive = guarded_drive()
        target = drive.resolve(principal(), args["ibresults_path"])
        if target.file.is_dir():
            target = drive.resolve(principal(), f"{target.relative}/{IBFLOWRESULTS}")
        # A results read, not a file read (that needs ManageFiles): results files only.
        if not target.relative.endswith(RESULTS_SUFFIX):
            raise InvalidRequest(
                f"ibresults_path must be a *{RESULTS_SUFFIX} file or a run's output folder"
            )
        try:
            stored = json.loads(drive.read(target))
        except NotFound:
            raise NotFound(
                f"no results at {target.relative!r}: a run writes {IBFLOWRESULTS} in its output "
                "folder when it ends"
            ) from None
        except ValueError:
            raise InvalidRequest(f"{target.relative!r} is not a results file") from None
        if not isinstance(stored, dict) or not isinstance(stored.get("records"), list):
            raise InvalidRequest(f"{target.relative!r} is not a results file")
        return {"status": "OK", "records": stored["records"]}
