"""Instabase's Filesystem API v1 (``/api/v1/drives/<path>``): what to do is said by the JSON
of an ``Instabase-API-Args`` header, as old Instabase clients send it. GET reads a file, lists a
folder a page at a time or tells a node's metadata; POST writes a file (the raw body, whole or
at a cursor) or makes a folder; ``POST <folder>/unzip`` with a JSON body (and the header's type
"folder", or none) extracts a zip file of that folder; DELETE removes. The same drive and rules
as ``/api/v2/files`` (api/resources/files.py), whose streaming and listing these share.

As everywhere in v1, keys of the header Flowbin does not know (``mime_type``...) are ignored
and named in a JSON answer's ``warnings``.
"""

from __future__ import annotations

import contextlib
import json

import marshmallow as ma
from flask import request
from flask.views import MethodView
from marshmallow import fields, validate

from api.blueprint import Blueprint, principal
from api.context import guarded_drive, settings
from api.errors import describe_messages
from api.fields import DRIVE_PATH, DrivePath
from api.lenient import LenientSchema
from api.permissions import needs
from api.resources.files import (
    BYTES,
    OCTETS,
    body_chunks,
    download,
    entry_parameter,
)
from shared import drive_ops
from shared.drive import DrivePath as CheckedPath
from shared.errors import Conflict, InvalidRequest, TooLarge
from shared.runs.file_jobs import run_file_job
from shared.states import JobKind, Permission

blp = Blueprint(
    "drives",
    __name__,
    url_prefix="/api/v1/drives",
    description="Instabase Filesystem API v1: files and folders, driven by Instabase-API-Args",
)

HEADER = "Instabase-API-Args"
UNZIP = "unzip"
UNZIP_BODY_BYTES = 64 * 1024
KINDS = [drive_ops.FILE, drive_ops.FOLDER]


class DrivesApiArgs(LenientSchema):
    type = fields.String(load_default=None, validate=validate.OneOf(KINDS))
    get_content = fields.Boolean(load_default=True)
    get_metadata = fields.Boolean(load_default=False)
    start_page_token = fields.String(load_default=None, allow_none=True)
    page_size = fields.Integer(
        load_default=drive_ops.DEFAULT_PAGE_SIZE,
        validate=validate.Range(1, drive_ops.MAX_PAGE_SIZE),
    )
    if_exists = fields.String(
        load_default="overwrite", validate=validate.OneOf(["overwrite", "fail"])
    )
    cursor = fields.Integer(load_default=0, allow_none=True, validate=validate.Range(min=-1))


ARGS_EXAMPLE = '{"type": "file", "get_content": true}'
HEADER_PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": (
        'what to do, as JSON. GET: {"type": "file"|"folder", "get_content": true, '
        '"start_page_token": T, "page_size": N} reads a file or lists a folder; '
        '{"get_metadata": true, "get_content": false} tells the metadata; absent, whichever '
        'the path is. POST: {"type": "file", "if_exists": "overwrite"|"fail", '
        '"cursor": N} writes the body (cursor 0: the whole file; N: at byte N, which must be '
        'its size) and {"type": "folder"} makes a folder; absent, the body is written as '
        'the whole file. On a path ending in /unzip, a POST with a body and no "type": "file" '
        'is an unzip: the body is {"zip_file": name in that folder, "destination": path}'
    ),
    "schema": {"type": "string", "example": ARGS_EXAMPLE},
}


def _api_args() -> dict:
    raw = request.headers.get(HEADER)
    if raw is None or not raw.strip():
        data = {}
    else:
        with contextlib.suppress(UnicodeError):  # WSGI decodes headers as latin-1
            raw = raw.encode("latin-1").decode("utf-8")
        try:
            data = json.loads(raw)
        except ValueError as error:
            raise InvalidRequest(f"the {HEADER} header is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise InvalidRequest(f"the {HEADER} header must be a JSON object")
    return _load(DrivesApiArgs(), data, f"the {HEADER} header")


def _load(schema: LenientSchema, data: dict, what: str) -> dict:
    schema.reports_unknown = True
    try:
        return schema.load(data)
    except ma.ValidationError as error:
        lines = describe_messages(error.messages, top=False)
        raise InvalidRequest(f"{what}: {'; '.join(lines)}") from None


# -- schemas of the answers -----------------------------------------------------------------
class DrivesDone(ma.Schema):
    status = fields.String()
    warnings = fields.List(
        fields.String(), metadata={"description": "keys of the header that were ignored"}
    )


class DrivesNodeMetadata(ma.Schema):
    modified_timestamp = fields.Integer(metadata={"description": "Unix seconds"})
    size = fields.Integer(metadata={"description": "bytes; 0 for a folder"})


class DrivesNodeSchema(ma.Schema):
    name = fields.String()
    type = fields.String(metadata={"enum": KINDS})
    path = fields.String(metadata={"description": "the drive path"})
    full_path = fields.String(metadata={"description": "the drive path"})
    metadata = fields.Nested(DrivesNodeMetadata)


class DrivesListingSchema(DrivesDone):
    nodes = fields.List(fields.Nested(DrivesNodeSchema))
    has_more = fields.Boolean()
    next_page_token = fields.String(
        allow_none=True,
        metadata={"description": "start_page_token of the next page; null: no more"},
    )


class DrivesMetadataSchema(ma.Schema):
    type = fields.String(metadata={"enum": KINDS})
    size = fields.Integer()
    modified_timestamp = fields.Integer(metadata={"description": "Unix seconds"})


class DrivesReadSchema(DrivesListingSchema):
    """A listing or, with get_content false, the metadata: one schema, as both are JSON."""

    metadata = fields.Nested(DrivesMetadataSchema)


class DrivesWrittenSchema(DrivesDone):
    cursor = fields.Integer(metadata={"description": "-1: the write is complete"})
    job_id = fields.String(metadata={"description": "an unzip: its finished job"})


class DrivesUnzipArgs(LenientSchema):
    zip_file = fields.String(required=True, validate=validate.Length(min=1))
    destination = DrivePath(required=True)


UNZIP_BODY = {
    "type": "object",
    "required": ["zip_file", "destination"],
    "properties": {
        "zip_file": {"type": "string", "description": "the zip file's name in the folder"},
        "destination": {"type": "string", "pattern": DRIVE_PATH},
    },
}


def _node_view(node: drive_ops.Node) -> dict:
    return {
        "name": node.name,
        "type": node.type,
        "path": node.path,
        "full_path": node.path,
        "metadata": {"modified_timestamp": node.modified, "size": node.size},
    }


def _listing(target: CheckedPath, args: dict) -> dict:
    page = drive_ops.list_page(target, args["start_page_token"] or None, args["page_size"])
    return {
        "status": "OK",
        "nodes": [_node_view(node) for node in page.nodes],
        "has_more": page.next_token is not None,
        "next_page_token": page.next_token,
    }


# Instabase clients write paths with a leading '/' (the drive's root): ".../files//alice/x" is
# that path, not a redirect, which a streamed body could not follow.
@blp.route("/<drive_path:path>", merge_slashes=False)
class DriveNode(MethodView):
    @needs(Permission.MANAGE_FILES)
    @blp.doc(parameters=[HEADER_PARAMETER])
    @blp.response(
        200, DrivesReadSchema, description="a listing, or the metadata (JSON); a file's bytes"
    )
    @blp.alt_response(200, schema=BYTES, content_type=OCTETS, description="a file's bytes")
    def get(self, path: str):
        """Read a file, list a folder a page at a time, or tell a node's metadata"""
        args = _api_args()
        target = guarded_drive().resolve(principal(), path)
        node = drive_ops.require_node(target)
        if not args["get_content"]:
            return {
                "status": "OK",
                "metadata": {
                    "type": node.type,
                    "size": node.size,
                    "modified_timestamp": node.modified,
                },
            }
        wanted = args["type"] or node.type
        if wanted == drive_ops.FOLDER:
            return _listing(target, args)
        if node.type == drive_ops.FOLDER:
            raise InvalidRequest(f'{target.relative!r} is a folder: list it with "type": "folder"')
        return download(target)

    @needs(Permission.MANAGE_FILES)
    @blp.doc(
        parameters=[
            HEADER_PARAMETER,
            entry_parameter("the file or folder to write or make, or <folder>/unzip"),
        ],
        requestBody={
            "content": {
                OCTETS: {"schema": BYTES},
                "text/plain": {"schema": {"type": "string"}},
                "application/json": {"schema": UNZIP_BODY},
            }
        },
    )
    @blp.response(200, DrivesWrittenSchema)
    def post(self, path: str):
        """Write a file (the raw body), make a folder, or unzip a zip file of a folder"""
        args = _api_args()
        folder, _, last = path.rstrip("/").rpartition("/")
        # Instabase clients send an unzip as {"type": "folder"} with the request in the body; a
        # folder called "unzip" is made with no body.
        if last == UNZIP and args["type"] != drive_ops.FILE and request.content_length:
            return _unzip(folder)
        target = guarded_drive().resolve(principal(), path, write=True)
        if args["type"] == drive_ops.FOLDER:
            drive_ops.make_folder(target)
            return {"status": "OK"}
        if args["if_exists"] == "fail" and drive_ops.node_of(target) is not None:
            raise Conflict(f'{target.relative!r} exists, and "if_exists" is "fail"')
        cursor = args["cursor"] or 0
        chunks = body_chunks('send it in parts, each with "cursor" at the size written so far')
        if cursor == 0:
            drive_ops.write_stream(target, chunks)
        else:
            drive_ops.append_stream(target, chunks, expected_size=cursor if cursor > 0 else None)
        return {"status": "OK", "cursor": -1}

    @needs(Permission.MANAGE_FILES)
    @blp.doc(
        parameters=[entry_parameter("a file or a folder, with all it holds")],
        requestBody={
            "required": False,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": {"force": {"type": "boolean"}}}
                }
            },
        },
    )
    @blp.response(200, DrivesDone)
    def delete(self, path: str):
        """Delete a file, or a folder with everything in it"""
        drive = guarded_drive()
        drive.delete(drive.resolve(principal(), path, write=True))
        return {"status": "OK"}


def _unzip(folder: str) -> dict:
    if (request.content_length or 0) > UNZIP_BODY_BYTES:
        raise TooLarge(f"an unzip request's body is at most {UNZIP_BODY_BYTES} bytes of JSON")
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError as error:
        raise InvalidRequest(f"the unzip request's body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the unzip request's body must be a JSON object")
    args = _load(DrivesUnzipArgs(), body, "the unzip request")
    drive = guarded_drive()
    archive = drive.resolve(principal(), f"{folder}/{args['zip_file']}")
    target = drive.resolve(principal(), args["destination"], write=True)
    work = drive_ops.Extract(archive, target)
    job_id = run_file_job(
        settings(), principal(), JobKind.EXTRACT, archive.relative, target.relative, work.run
    )
    return {"status": "OK", "job_id": job_id}
