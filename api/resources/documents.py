"""Documents (``/api/v2/documents``, seed 002): a file uploaded to run flows on, kept in the
uploader's own space (shared/contents/documents.py), answered with the id a flow run names it
by (``POST /api/v2/jobs {"type": "flow-run", "documents": [id, ...]}``).

The body is the document, raw (its name from the ``name`` parameter, else the Content-Disposition
filename, else ``document``), or a multipart/form-data form with one file part, ``file`` (its
name from ``name``, else the part's filename). Either is streamed to the drive as it arrives,
at most the app's MAX_CONTENT_LENGTH bytes."""

from __future__ import annotations

import marshmallow as ma
from flask import request
from flask.views import MethodView
from marshmallow import fields, validate
from werkzeug.http import parse_options_header

from api.blueprint import Blueprint, principal
from api.context import guarded_drive
from api.fields import Text
from api.multipart import MULTIPART, FilePart, boundary_of
from api.permissions import needs
from api.resources.files import BYTES, OCTETS, body_chunks
from shared.contents import documents
from shared.drive import MAX_NAME_BYTES
from shared.errors import InvalidRequest, NotFound
from shared.states import Permission

blp = Blueprint(
    "documents",
    __name__,
    url_prefix="/api/v2",
    description="Documents: files uploaded to run flows on (seed 002)",
)

# A name a document's file may have: no '/', '\' or control character, no leading '.'.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
NAME_PATTERN = rf"^[^./\\{_CONTROL}][^/\\{_CONTROL}]{{0,{MAX_NAME_BYTES - 1}}}$"
ONE_REQUEST = (
    "a document is sent in one request: put a bigger file in the drive in PATCH chunks "
    "(/api/v2/files) and run on its folder with input_dir"
)


def _name(value: str) -> None:
    try:
        documents.checked_name(value, "name")
    except InvalidRequest as error:
        raise ma.ValidationError(error.msg.removeprefix("name: ")) from None


class UploadArgs(ma.Schema):
    name = Text(
        load_default=None,
        validate=[validate.Regexp(NAME_PATTERN), _name],
        metadata={
            "description": "the document's name (else the Content-Disposition's or the file "
            "part's filename, else `document`)"
        },
    )


class DocumentSchema(ma.Schema):
    id = fields.String(metadata={"description": "a UUID: name it in a flow run's documents"})
    name = fields.String()
    size = fields.Integer(metadata={"description": "bytes"})
    uri = fields.String(metadata={"description": "its drive path, in your own space"})


UPLOAD_BODY = {
    "required": True,
    "content": {
        OCTETS: {"schema": BYTES},
        MULTIPART: {
            "schema": {
                "type": "object",
                "properties": {"file": BYTES},
                "required": ["file"],
            }
        },
    },
}
DOCUMENT = "/documents/<string(minlength=1, maxlength=50):document_id>"


def _disposition_filename() -> str | None:
    header = request.headers.get("Content-Disposition")
    return parse_options_header(header)[1].get("filename") if header else None


@blp.route("/documents")
class Documents(MethodView):
    @needs(Permission.MANAGE_FILES)
    @blp.arguments(UploadArgs, location="query")
    @blp.doc(requestBody=UPLOAD_BODY)
    @blp.response(201, DocumentSchema)
    def post(self, args):
        """Upload a document, raw or as a form's `file` part; answers its id

        Kept in your own space (`<username>/documents/<id>/<name>`); only you can run on it."""
        drive, caller = guarded_drive(), principal()
        document_id = documents.new_document_id()
        chunks = body_chunks(ONE_REQUEST)
        boundary = boundary_of(request.headers.get("Content-Type"))
        try:
            if boundary is None:
                name = args["name"] or documents.name_sent(
                    _disposition_filename(), "Content-Disposition filename"
                )
                document = documents.write_document(drive, caller, document_id, name, chunks)
            else:
                part = FilePart(chunks, boundary)
                filename = part.open()
                name = args["name"] or documents.name_sent(filename, "the file part's filename")
                document = documents.write_document(drive, caller, document_id, name, part.data())
                part.finish()
        except BaseException:
            documents.discard_document(drive, caller, document_id)
            raise
        return document.view()


@blp.route(DOCUMENT)
class DocumentView(MethodView):
    @needs(Permission.MANAGE_FILES)
    @blp.response(200, DocumentSchema)
    def get(self, document_id: str):
        """One of your documents: its name, size and drive path"""
        document = documents.find_document(guarded_drive(), principal(), document_id)
        if document is None:
            raise NotFound(
                f"you have no document with id {document_id!r}: POST /api/v2/documents "
                "answers the id of each you upload"
            )
        return document.view()
