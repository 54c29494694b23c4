"""A drive file as an HTTP answer, streamed from its storage: a local file through
``send_file`` (the OS sends it), an object through a seekable reader of ranged GETs, in chunks.
Either way a ``Range`` header gets a 206 with just those bytes, and nothing is held whole."""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, request, send_file
from werkzeug.wsgi import wrap_file

from shared.errors import NotFound
from shared.storage.backend import CHUNK_BYTES, FILE, StoredFile

OCTETS = "application/octet-stream"


def send_stored(file: StoredFile, download_name: str | None = None) -> Response:
    local = file.local_path()
    if local is not None:
        return send_file(
            local,
            mimetype=OCTETS,
            as_attachment=False,
            download_name=download_name,
            conditional=True,
            etag=False,
            max_age=None,
        )
    node = file.storage.stat(file.key)
    if node is None or node.type != FILE:
        raise FileNotFoundError(file.key)
    reader = file.storage.open_read(file.key)
    response = Response(
        wrap_file(request.environ, reader, buffer_size=CHUNK_BYTES),
        mimetype=OCTETS,
        direct_passthrough=True,
    )
    response.content_length = node.size
    response.last_modified = node.modified or None
    response.headers["Content-Disposition"] = _inline(download_name or file.name)
    return response.make_conditional(request.environ, accept_ranges=True, complete_length=node.size)


def send_drive_file(file: StoredFile, what: str) -> Response:
    """``send_stored``, with a 404 naming ``what`` if the file went meanwhile."""
    try:
        return send_stored(file)
    except FileNotFoundError:
        raise NotFound(f"no file at drive path {what!r}") from None


def _inline(name: str) -> str:
    """``Content-Disposition: inline`` naming the file as ``send_file`` does: an ASCII name
    for old clients and the exact one percent-encoded (RFC 6266)."""
    plain = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in name)
    return f"inline; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"
