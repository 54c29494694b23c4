"""A job's contents (``/api/v2/jobs/<id>/contents``, seed 002): the list of what the caller may
read of a job's input and output, and each one served: a JSON content as a page of its records
(``offset``, ``limit``), a file's bytes streamed (input files, a compile's binary, any file
with ``raw=true``, and a JSON file too large to page). Which contents there are, and who reads
which, is shared/contents/job_contents.py's."""

from __future__ import annotations

import json
import unicodedata
from urllib.parse import quote, urlencode

import marshmallow as ma
from flask import request
from flask.views import MethodView
from marshmallow import fields, validate

from api.blueprint import Blueprint, principal
from api.context import settings, store
from api.downloads import send_stored
from api.fields import MAX_OFFSET
from api.permissions import needs
from api.resources.files import BYTES, OCTETS
from shared.accounts.access import JobNeed, job_and_grant
from shared.contents import job_contents
from shared.contents.job_contents import JobContent
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.jobs.ids import JOB_ID
from shared.states import Permission
from shared.store.models import Job

blp = Blueprint(
    "v2_contents",
    __name__,
    url_prefix="/api/v2",
    description="A job's contents: its input, results, step outputs and review records",
)
JOB = "/jobs/<string(minlength=1, maxlength=50):job_id>"
MAX_PAGE = 10_000
# A JSON file larger than this is streamed whole, not parsed into pages.
MAX_PAGED_BYTES = 16 * 1024 * 1024
TYPES = [
    job_contents.INPUT_FILE,
    job_contents.FLOW_RESULTS,
    job_contents.IBFLOWRESULTS,
    job_contents.FILE_RESULTS,
    job_contents.STEP_OUTPUT,
    job_contents.REVIEW_RECORDS,
    job_contents.FLOW_BINARY,
]


class PageArgs(ma.Schema):
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=MAX_PAGE))


class ContentArgs(PageArgs):
    raw = fields.Boolean(
        load_default=False,
        metadata={"description": "a file's bytes as they are, not a page of its records"},
    )


class JobContentSchema(ma.Schema):
    id = fields.String(metadata={"description": "stable: e.g. input:a.pdf, step:01:a.pdf"})
    type = fields.String(metadata={"enum": TYPES})
    uri = fields.String(allow_none=True, metadata={"description": "its drive path, if a file"})
    url = fields.String(metadata={"description": "GET it for the content"})
    name = fields.String()
    size = fields.Integer(metadata={"description": "bytes"})
    step_id = fields.String(metadata={"description": "a step's output: the step"})


class ContentsPage(ma.Schema):
    values = fields.List(fields.Nested(JobContentSchema))
    next = fields.String(allow_none=True, metadata={"description": "the next page, or null"})


class ContentPage(JobContentSchema):
    offset = fields.Integer()
    limit = fields.Integer()
    total = fields.Integer(metadata={"description": "records in the content"})
    values = fields.List(fields.Raw(), metadata={"description": "the page's records"})
    next = fields.String(allow_none=True, metadata={"description": "the next page, or null"})


def _job_and_grant(session, job_id: str):
    # An id no job can have is missing like any other (and never reaches the store).
    if not JOB_ID.fullmatch(job_id):
        raise NotFound(f"no job with id {job_id!r}")
    return job_and_grant(session, principal(), job_id, JobNeed.VIEW)


def _view(job: Job, content: JobContent) -> dict:
    shown = {
        "id": content.id,
        "type": content.type,
        "uri": content.uri,
        "url": f"/api/v2/jobs/{job.id}/contents/{quote(content.id, safe=':')}",
    }
    size = content.size()
    for key, value in (("name", content.name), ("size", size), ("step_id", content.step_id)):
        if value is not None:
            shown[key] = value
    return shown


def _next(args: dict, total: int, **kept) -> str | None:
    following = args["offset"] + args["limit"]
    if following >= total:
        return None
    return f"{request.path}?{urlencode({**kept, 'offset': following, 'limit': args['limit']})}"


def _records(content: JobContent) -> list:
    """A JSON content's records: the file's list (or its object's ``records_key`` list)."""
    what = f"{content.uri!r} ({content.id})"
    try:
        data = json.loads(content.file.read_bytes())
    except FileNotFoundError:
        raise NotFound(f"{what} was removed from the drive meanwhile") from None
    except ValueError as error:
        raise Conflict(
            f"{what} is not valid JSON ({error}): was the output folder changed? raw=true "
            "answers its bytes"
        ) from None
    if content.records_key is not None and isinstance(data, dict):
        data = data.get(content.records_key)
    if not isinstance(data, list):
        raise Conflict(
            f"{what} does not hold a list of records: was the output folder changed? raw=true "
            "answers its bytes"
        )
    return data


def _streamed(content: JobContent):
    # A header cannot carry a control character, which a name in the drive may hold.
    shown = "".join("_" if unicodedata.category(char) == "Cc" else char for char in content.name)
    try:
        return send_stored(content.file, download_name=shown)
    except FileNotFoundError:
        raise NotFound(
            f"{content.uri!r} ({content.id}) was removed from the drive meanwhile"
        ) from None


@blp.route(f"{JOB}/contents")
class JobContents(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ContentsPage)
    def get(self, args, job_id: str):
        """What you may read of a job: its input files, results, each step's outputs and the
        records awaiting review, each with an id to GET it by

        A collaborator on some steps reads those steps' outputs and review records only."""
        with store(read_only=True) as session:
            job, grant = _job_and_grant(session, job_id)
            listed = job_contents.contents_of(session, settings(), job, grant)
        page = listed[args["offset"] : args["offset"] + args["limit"]]
        return {
            "values": [_view(job, content) for content in page],
            "next": _next(args, len(listed)),
        }


@blp.route(f"{JOB}/contents/<string(minlength=1, maxlength=300):content_id>")
class JobContentView(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.arguments(ContentArgs, location="query")
    @blp.response(200, ContentPage, description="a JSON content: a page of its records")
    @blp.alt_response(200, schema=BYTES, content_type=OCTETS, description="a file's bytes")
    @blp.alt_response(206, schema=BYTES, content_type=OCTETS, description="the range asked for")
    def get(self, args, job_id: str, content_id: str):
        """One content of a job: a page of a JSON content's records, or a file's bytes

        Input files and binaries are streamed, as is any file with `raw=true` and a JSON file
        over 16 MiB; a `Range` header asks for part of a file."""
        with store(read_only=True) as session:
            job, grant = _job_and_grant(session, job_id)
            content = job_contents.content_of(session, settings(), job, grant, content_id)
            if content.file is None:
                if args["raw"]:
                    raise InvalidRequest(
                        f"{content.id!r} is not a file: page its records with offset and limit"
                    )
                records = job_contents.review_records(session, settings(), job, grant)
        if content.file is not None:
            size = content.size() or 0
            if args["raw"] or not content.paged or size > MAX_PAGED_BYTES:
                return _streamed(content)
            records = _records(content)
        return {
            **_view(job, content),
            "offset": args["offset"],
            "limit": args["limit"],
            "total": len(records),
            "values": records[args["offset"] : args["offset"] + args["limit"]],
            "next": _next(args, len(records)),
        }
