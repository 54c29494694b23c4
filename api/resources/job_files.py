"""GET /api/v1/jobs/files: each file of a job at each step of its flow (the web UI's grid of
files by steps), and what the caller may do to the job."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields, validate

from api.blueprint import Blueprint, principal
from api.context import settings, store
from api.fields import MAX_OFFSET, Text
from api.lenient import LenientSchema, V1Response
from api.permissions import needs
from shared.accounts.access import JobNeed, job_and_grant
from shared.runs.file_steps import CELL_STATES, file_steps
from shared.states import Permission

blp = Blueprint(
    "job_files",
    __name__,
    url_prefix="/api/v1/jobs",
    description="Each file of a job at each step of its flow",
)


class FilesArgs(LenientSchema):
    job_id = Text(required=True, validate=validate.Length(min=1, max=50))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class Cell(ma.Schema):
    step_id = fields.String()
    state = fields.String(metadata={"enum": list(CELL_STATES)})
    errors = fields.List(
        fields.String(),
        metadata={"description": "a failed cell: the errors its records failed with"},
    )


class FileRow(ma.Schema):
    file_index = fields.Integer()
    file_name = fields.String()
    status = fields.String(metadata={"description": "the file's own state"})
    steps = fields.List(fields.Nested(Cell))


class CallerRights(ma.Schema):
    controls = fields.Boolean(metadata={"description": "may pause, resume, cancel, retry, tag"})
    reviews = fields.Boolean(metadata={"description": "may review its checkpoint records"})


class FilesResponse(V1Response):
    status = fields.String()
    job_id = fields.String()
    steps = fields.List(fields.String(), metadata={"description": "the flow's step ids"})
    total_files = fields.Integer()
    files = fields.List(fields.Nested(FileRow))
    caller = fields.Nested(CallerRights)


@blp.route("/files")
class JobFiles(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.arguments(FilesArgs, location="query")
    @blp.response(200, FilesResponse)
    def get(self, args):
        """A page of a job's files (by index), each with its state at every step of the flow

        States: done, running, failed (with the errors of its records there, at the steps
        the caller works on), stopped_at_checkpoint, cancelled, pending."""
        who = principal()
        with store(read_only=True) as session:
            job, grant = job_and_grant(session, who, args["job_id"], JobNeed.VIEW)
            steps, files, total = file_steps(
                session, settings(), job, grant, args["offset"], args["limit"]
            )
        return {
            "status": "OK",
            "job_id": job.id,
            "steps": steps,
            "total_files": total,
            "files": [row.to_dict() for row in files],
            "caller": {
                "controls": grant.controls and who.may(Permission.MANAGE_JOBS),
                "reviews": who.may(Permission.REVIEW_JOBS),
            },
        }
