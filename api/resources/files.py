"""Instabase's Filesystem API v2 (``/api/v2/files/<path>``) over the drive: read, list, probe
(HEAD), write whole (PUT) or in chunks (PATCH with ``IB-Cursor``), make folders, delete, and the
two tree operations, copy and extract, which answer once they are done with the id of a finished
job (shared/runs/file_jobs.py).

Paths are the drive's (``alice/my repo/fs/Instabase Drive/in put/a b.txt``), percent-decoded
once. Bodies are streamed to storage, never held whole: one request carries at most the app's
MAX_CONTENT_LENGTH, and a bigger file goes up in PATCH chunks.
"""

from __future__ import annotations

from collections.abc import Iterator

import marshmallow as ma
from flask import Response, current_app, request
from flask.views import MethodView
from marshmallow import fields, validate
from werkzeug.exceptions import RequestEntityTooLarge

from api.blueprint import Blueprint, principal
from api.context import guarded_drive, settings
from api.downloads import send_drive_file
from api.fields import DRIVE_ENTRY, DRIVE_NAME, DRIVE_PATH_DOC, DrivePath
from api.permissions import needs
from shared import drive_ops
from shared.drive import DrivePath as CheckedPath
from shared.errors import InvalidRequest, TooLarge
from shared.runs.file_jobs import run_file_job
from shared.states import JobKind, Permission

blp = Blueprint(
    "files",
    __name__,
    url_prefix="/api/v2/files",
    description="Instabase Filesystem API v2: files and folders of the drive",
)

# Not a test user's: the fuzz tier's admin writes where the examples say.
EXAMPLE = "jaydoe/my repo/fs/Instabase Drive/input/a.txt"
BYTES = {"type": "string", "format": "binary"}
OCTETS = "application/octet-stream"


# -- shared with /api/v1/drives ----------------------------------------------------------------
def body_chunks(how_to_split: str) -> Iterator[bytes]:
    """The request's body, a chunk at a time; one past the per-request cap is a 413 that says
    how to send it in parts (``how_to_split``)."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    refusal = (
        f"one request carries at most {limit} bytes; {how_to_split}" if limit is not None else ""
    )
    if limit is not None and (request.content_length or 0) > limit:
        raise TooLarge(refusal)
    try:
        stream = request.stream
        while chunk := stream.read(drive_ops.CHUNK_BYTES):
            yield chunk
    except RequestEntityTooLarge:
        raise TooLarge(refusal) from None


def download(target: CheckedPath) -> Response:
    """The file's bytes, streamed from storage (a ``Range`` header asks for part of them)."""
    return send_drive_file(target.file, target.relative)


def entry_parameter(description: str, pattern: str = DRIVE_ENTRY) -> dict:
    """The path parameter of an operation that acts inside a space, never on the space itself
    (an operation's parameter overrides its path's)."""
    return {
        "in": "path",
        "name": "path",
        "required": True,
        "description": f"{description}; {DRIVE_PATH_DOC}",
        "schema": {"type": "string", "pattern": pattern, "example": EXAMPLE},
    }


# -- schemas -------------------------------------------------------------------------------
class FilesNodeQuery(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    expect_node_type = fields.String(
        data_key="expect-node-type",
        load_default=None,
        validate=validate.OneOf([drive_ops.FILE, drive_ops.FOLDER]),
        metadata={
            "description": "file: answer the bytes (a folder is a 400); folder: answer a page "
            "of the listing (a file has no entries); absent: whichever the path is"
        },
    )
    start_token = fields.String(
        data_key="start-token",
        load_default=None,
        metadata={"description": "next_page_token of the page before; empty: the first page"},
    )
    page_size = fields.Integer(
        data_key="page-size",
        load_default=drive_ops.DEFAULT_PAGE_SIZE,
        validate=validate.Range(1, drive_ops.MAX_PAGE_SIZE),
        metadata={"description": "entries per page"},
    )


class FilesNodeSchema(ma.Schema):
    name = fields.String()
    full_path = fields.String(metadata={"description": "the drive path"})
    type = fields.String(metadata={"enum": [drive_ops.FILE, drive_ops.FOLDER]})
    size = fields.Integer(metadata={"description": "bytes; 0 for a folder"})
    modified_timestamp = fields.Integer(metadata={"description": "Unix seconds"})


class FilesListingSchema(ma.Schema):
    nodes = fields.List(fields.Nested(FilesNodeSchema))
    has_more = fields.Boolean()
    next_page_token = fields.String(
        allow_none=True, metadata={"description": "start-token of the next page; null: no more"}
    )


CURSOR = "IB-Cursor"
CURSOR_PARAMETER = {
    "in": "header",
    "name": CURSOR,
    "required": True,
    "description": "0: the body starts the file (made, or emptied); -1: the body is added at "
    "its end; N > 0: added at byte N, which must be the file's size (else 409)",
    "schema": {"type": "integer", "minimum": -1},
}


def _cursor() -> int:
    raw = request.headers.get(CURSOR)
    if raw is None:
        raise InvalidRequest(f"the {CURSOR} header is required: 0 to start a file, -1 to append")
    try:
        cursor = int(raw.strip())
    except ValueError:
        raise InvalidRequest(f"the {CURSOR} header must be an integer, not {raw!r}") from None
    if cursor < -1:
        raise InvalidRequest(f"the {CURSOR} header is 0, -1 or a byte offset, not {cursor}")
    return cursor


class FilesCreateArgs(ma.Schema):
    name = fields.String(
        required=True,
        validate=validate.Regexp(DRIVE_NAME),
        metadata={"description": "the new folder's or file's name, inside the path given"},
    )
    node_type = fields.String(
        load_default=drive_ops.FOLDER, validate=validate.OneOf([drive_ops.FILE, drive_ops.FOLDER])
    )


class FilesCreatedSchema(ma.Schema):
    status = fields.String()
    full_path = fields.String()
    node_type = fields.String(metadata={"enum": [drive_ops.FILE, drive_ops.FOLDER]})


class FilesDeletedSchema(ma.Schema):
    status = fields.String()
    full_path = fields.String()


class FilesTransferArgs(ma.Schema):
    src_path = DrivePath(required=True)
    dst_path = DrivePath(required=True)


class FilesJobSchema(ma.Schema):
    status = fields.String()
    job_id = fields.String(
        metadata={"description": "a finished job: GET /api/v1/jobs/status?job_id=... tells"}
    )


def node_view(node: drive_ops.Node) -> dict:
    return {
        "name": node.name,
        "full_path": node.path,
        "type": node.type,
        "size": node.size,
        "modified_timestamp": node.modified,
    }


def _listing(target: CheckedPath, token: str | None, size: int) -> dict:
    page = drive_ops.list_page(target, token or None, size)
    return {
        "nodes": [node_view(node) for node in page.nodes],
        "has_more": page.next_token is not None,
        "next_page_token": page.next_token,
    }


SPLIT = "send a bigger file in PATCH chunks: IB-Cursor 0 for the first, -1 for each next"
LISTING_OR_BYTES = "a folder: a page of what it holds (JSON); a file: its bytes"


# -- copy and extract: static rules, which win over the path rule below -----------------------
@blp.route("/copy")
class CopyNode(MethodView):
    @needs(Permission.MANAGE_FILES)
    @blp.arguments(FilesTransferArgs)
    @blp.response(202, FilesJobSchema, description="copied; the job records it")
    def post(self, args):
        """Copy a file to a file path, or a folder into a folder (merged, files overwritten)"""
        drive = guarded_drive()
        source = drive.resolve(principal(), args["src_path"])
        target = drive.resolve(principal(), args["dst_path"], write=True)
        work = drive_ops.Copy(source, target)
        job_id = run_file_job(
            settings(), principal(), JobKind.COPY, source.relative, target.relative, work.run
        )
        return {"status": "OK", "job_id": job_id}


@blp.route("/extract")
class ExtractArchive(MethodView):
    @needs(Permission.MANAGE_FILES)
    @blp.arguments(FilesTransferArgs)
    @blp.response(202, FilesJobSchema, description="extracted; the job records it")
    def post(self, args):
        """Extract a zip file into a folder (made, or merged into), keeping its paths; an
        entry that would land outside it is a 400 and nothing is written"""
        drive = guarded_drive()
        archive = drive.resolve(principal(), args["src_path"])
        target = drive.resolve(principal(), args["dst_path"], write=True)
        work = drive_ops.Extract(archive, target)
        job_id = run_file_job(
            settings(), principal(), JobKind.EXTRACT, archive.relative, target.relative, work.run
        )
        return {"status": "OK", "job_id": job_id}


# Instabase clients write paths with a leading '/' (the drive's root): ".../files//alice/x" is
# that path, not a redirect, which a streamed body could not follow.
@blp.route("/<drive_path:path>", merge_slashes=False)
class FileNode(MethodView):
    @needs(Permission.MANAGE_FILES)
    @blp.arguments(FilesNodeQuery, location="query")
    @blp.response(200, FilesListingSchema, description=LISTING_OR_BYTES)
    @blp.alt_response(200, schema=BYTES, content_type=OCTETS, description=LISTING_OR_BYTES)
    @blp.alt_response(206, schema=BYTES, content_type=OCTETS, description="the range asked for")
    def get(self, args, path: str):
        """Read a file, or list a folder a page at a time (sorted by name)

        A file's bytes are streamed; a `Range: bytes=start-end` header asks for part of them
        (206)."""
        target = guarded_drive().resolve(principal(), path)
        node = drive_ops.require_node(target)
        wanted = args["expect_node_type"]
        if wanted == drive_ops.FILE and node.type == drive_ops.FOLDER:
            raise InvalidRequest(
                f"{target.relative!r} is a folder: list it with expect-node-type=folder"
            )
        if wanted == drive_ops.FOLDER or node.type == drive_ops.FOLDER:
            return _listing(target, args["start_token"], args["page_size"])
        return download(target)

    @needs(Permission.MANAGE_FILES)
    @blp.response(
        200,
        description="it exists; for a file, Content-Length is its size",
        headers={"Content-Length": {"schema": {"type": "integer"}, "description": "bytes"}},
    )
    def head(self, path: str):
        """Whether a file or folder exists (404 if not), and a file's size; reads nothing"""
        node = drive_ops.require_node(guarded_drive().resolve(principal(), path))
        response = Response(status=200, mimetype=OCTETS)
        response.headers["Content-Length"] = str(node.size)
        return response

    @needs(Permission.MANAGE_FILES)
    @blp.doc(
        parameters=[entry_parameter("a file; its parent folders are made")],
        requestBody={"content": {OCTETS: {"schema": BYTES}}},
    )
    @blp.response(204, description="written")
    def put(self, path: str):
        """Write the raw body as the whole file (parents made); at most MAX_CONTENT_LENGTH
        bytes a request: send more in PATCH chunks"""
        target = guarded_drive().resolve(principal(), path, write=True)
        drive_ops.write_stream(target, body_chunks(SPLIT))
        return Response(status=204)

    @needs(Permission.MANAGE_FILES)
    @blp.doc(
        parameters=[entry_parameter("a file; its parent folders are made"), CURSOR_PARAMETER],
        requestBody={"content": {OCTETS: {"schema": BYTES}}},
    )
    @blp.response(204, description="written")
    def patch(self, path: str):
        """Write a chunk of a file at IB-Cursor: 0 starts it, -1 adds at its end"""
        cursor = _cursor()
        target = guarded_drive().resolve(principal(), path, write=True)
        chunks = body_chunks("send the file in smaller chunks")
        if cursor == 0:
            drive_ops.write_stream(target, chunks)
        else:
            drive_ops.append_stream(target, chunks, expected_size=cursor if cursor > 0 else None)
        return Response(status=204)

    @needs(Permission.MANAGE_FILES)
    @blp.arguments(FilesCreateArgs)
    @blp.response(201, FilesCreatedSchema, description="made")
    @blp.alt_response(200, schema=FilesCreatedSchema, description="it was there already")
    def post(self, args, path: str):
        """Make a folder (or an empty file) named `name` in the folder at the path; the
        folders on the way are made"""
        target = guarded_drive().resolve(principal(), f"{path}/{args['name']}", write=True)
        if args["node_type"] == drive_ops.FOLDER:
            made = drive_ops.make_folder(target)
        else:
            made = drive_ops.make_empty_file(target)
        shown = {"status": "OK", "full_path": target.relative, "node_type": args["node_type"]}
        return shown, 201 if made else 200

    @needs(Permission.MANAGE_FILES)
    @blp.doc(parameters=[entry_parameter("a file or a folder, with all it holds")])
    @blp.response(202, FilesDeletedSchema, description="deleted")
    def delete(self, path: str):
        """Delete a file, or a folder with everything in it"""
        drive = guarded_drive()
        target = drive.resolve(principal(), path, write=True)
        drive.delete(target)
        return {"status": "OK", "full_path": target.relative}
