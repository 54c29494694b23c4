"""The drive: upload (PUT raw body), download or list (GET), delete."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields
from werkzeug.routing import PathConverter

from api.blueprint import Blueprint, principal
from api.context import guarded_drive
from api.downloads import send_drive_file
from api.fields import DRIVE_ENTRY, DRIVE_PATH, DRIVE_PATH_DOC
from api.lenient import V1Response
from api.permissions import needs
from api.resources.files import body_chunks
from shared import drive_ops
from shared.errors import NotFound
from shared.states import Permission

blp = Blueprint(
    "drive",
    __name__,
    url_prefix="/api/v1/drive",
    description="Files and folders; paths start with the owner's username",
)


class DrivePathConverter(PathConverter):
    """``<drive_path:...>``: matches what werkzeug's path converter does, so that a bad path
    reaches shared/drive.py and gets its 400 saying what is wrong; the spec shows the shape.
    Leading '/'s are matched too (shared/drive.py drops them): a client's '/alice/x' is that
    path, not a redirect to the URL with merged slashes."""

    regex = "/*[^/].*?"


# The example also tells schemathesis that a '/' in this parameter is meant: it would leave such
# values out of a path parameter otherwise.
EXAMPLE = "alice/invoices/input/acme.txt"


def path_parameter_schema(converter: DrivePathConverter) -> dict:
    return {
        "type": "string",
        "pattern": DRIVE_PATH,
        "example": EXAMPLE,
        "description": DRIVE_PATH_DOC,
    }


def _entry_parameter(description: str) -> dict:
    """PUT and DELETE act inside a user's folder, never on the folder itself: their own, stricter
    description of the path parameter (an operation's parameter overrides its path's)."""
    return {
        "in": "path",
        "name": "path",
        "required": True,
        "description": f"{description}; {DRIVE_PATH_DOC}",
        "schema": {"type": "string", "pattern": DRIVE_ENTRY, "example": EXAMPLE},
    }


BYTES = {"type": "string", "format": "binary"}
LISTING_OR_BYTES = "a folder: what it holds (JSON); a file: its bytes"


class DriveEntrySchema(ma.Schema):
    name = fields.String()
    path = fields.String()
    type = fields.String(metadata={"enum": ["file", "folder"]})
    size = fields.Integer(allow_none=True, metadata={"description": "bytes; null for a folder"})
    modified = fields.Integer(metadata={"description": "Unix seconds"})


class FolderListing(V1Response):
    status = fields.String()
    path = fields.String()
    entries = fields.List(fields.Nested(DriveEntrySchema))


class Written(V1Response):
    status = fields.String()
    path = fields.String()
    size = fields.Integer(metadata={"description": "bytes written"})


class Deleted(V1Response):
    status = fields.String()
    path = fields.String()


# The body is streamed to storage; a bigger one than a request may carry goes up in parts.
SPLIT = "send a bigger file in chunks: PATCH /api/v2/files/<path> with IB-Cursor 0, then -1"


@blp.route("/<drive_path:path>")
class DriveEntry(MethodView):
    @needs(Permission.MANAGE_FILES)
    @blp.response(200, FolderListing, description=LISTING_OR_BYTES)
    @blp.alt_response(
        200, schema=BYTES, content_type="application/octet-stream", description=LISTING_OR_BYTES
    )
    def get(self, path: str):
        """Download a file, or list a folder as JSON"""
        drive = guarded_drive()
        target = drive.resolve(principal(), path)
        node = drive_ops.node_of(target)
        if node is not None and node.type == drive_ops.FOLDER:
            return {"status": "OK", "path": target.relative, "entries": drive.listing(target)}
        if node is None:
            raise NotFound(f"no file at drive path {target.relative!r}")
        return send_drive_file(target.file, target.relative)

    @needs(Permission.MANAGE_FILES)
    @blp.doc(
        parameters=[_entry_parameter("a file inside your folder; its parents are created")],
        requestBody={"content": {"application/octet-stream": {"schema": BYTES}}},
    )
    @blp.response(200, Written)
    def put(self, path: str):
        """Upload the raw request body as a file (parent folders are created)"""
        drive = guarded_drive()
        target = drive.resolve(principal(), path, write=True)
        size = drive_ops.write_stream(target, body_chunks(SPLIT))
        return {"status": "OK", "path": target.relative, "size": size}

    @needs(Permission.MANAGE_FILES)
    @blp.doc(parameters=[_entry_parameter("a file or folder inside your folder")])
    @blp.response(200, Deleted)
    def delete(self, path: str):
        """Delete a file or a folder with everything in it"""
        drive = guarded_drive()
        target = drive.resolve(principal(), path, write=True)
        drive.delete(target)
        return {"status": "OK", "path": target.relative}
