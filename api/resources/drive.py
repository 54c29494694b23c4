"""The drive: upload (PUT raw body), download or list (GET), delete."""

from __future__ import annotations

from flask import Response, request
from flask.views import MethodView

from api.blueprint import Blueprint, principal
from api.context import settings
from shared.drive import Drive

blp = Blueprint(
    "drive",
    __name__,
    url_prefix="/api/v1/drive",
    description="Files and folders; paths start with the owner's username",
)


def _drive() -> Drive:
    return Drive(settings().drive_root)


@blp.route("/<path:path>")
class DriveEntry(MethodView):
    def get(self, path: str):
        """Download a file, or list a folder as JSON"""
        drive = _drive()
        target = drive.resolve(principal(), path)
        if target.real.is_dir():
            return {"status": "OK", "path": target.relative, "entries": drive.listing(target)}
        return Response(drive.read(target), mimetype="application/octet-stream")

    def put(self, path: str):
        """Upload the raw request body as a file (parent folders are created)"""
        drive = _drive()
        target = drive.resolve(principal(), path)
        drive.write(target, request.get_data())
        return {"status": "OK", "path": target.relative, "size": target.real.stat().st_size}

    def delete(self, path: str):
        """Delete a file or a folder with everything in it"""
        drive = _drive()
        target = drive.resolve(principal(), path)
        drive.delete(target)
        return {"status": "OK", "path": target.relative}
