"""POST /api/v1/flow_binary/compile: compile a flow project into a binary, as a job."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, principal
from api.context import settings, store
from api.permissions import needs
from api.resources.enqueue import publish_or_fail
from api.schemas import CompileArgs, JobIdResponse
from shared.runs.compile import CompileRequest, start_compile
from shared.states import Permission

blp = Blueprint(
    "flow_binary",
    __name__,
    url_prefix="/api/v1/flow_binary",
    description="Compile flow projects into flow binaries",
)


@blp.route("/compile")
class Compile(MethodView):
    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(CompileArgs)
    @blp.response(200, JobIdResponse)
    def post(self, args):
        """Compile a flow project; read the outcome with jobs/status"""
        with store() as session:
            job, work = start_compile(session, settings(), principal(), CompileRequest(**args))
        publish_or_fail(job.id, work)
        return {"status": "OK", "job_id": job.id}
