"""One file part of a ``multipart/form-data`` body, streamed: its bytes are handed on a chunk at
a time as the body arrives (werkzeug's sans-IO decoder), never spooled whole to memory or to a
temporary file, so that an upload goes straight to its place in the drive. Other fields are
read and dropped; a second file part, or a body that is not multipart, is a 400."""

from __future__ import annotations

from collections.abc import Iterator

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Event,
    File,
    MultipartDecoder,
    NeedData,
)

from shared.errors import InvalidRequest

MULTIPART = "multipart/form-data"
# What may sit in the decoder's buffer before a part's data starts (the preamble and a part's
# headers): more is not a form a client sends.
MAX_HEADER_BYTES = 64 * 1024


def boundary_of(content_type: str | None) -> bytes | None:
    """The boundary of a multipart/form-data body, or None if the body is not one."""
    mimetype, options = parse_options_header(content_type or "")
    if mimetype != MULTIPART:
        return None
    boundary = options.get("boundary")
    if not boundary:
        raise InvalidRequest("a multipart/form-data body needs a boundary in its Content-Type")
    try:
        return boundary.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidRequest("the multipart boundary must be ASCII") from None


class FilePart:
    """The part named ``field`` of a multipart body read from ``chunks``: ``open`` reads up to
    it and answers its filename, ``data`` streams its bytes, ``finish`` reads the rest."""

    def __init__(self, chunks: Iterator[bytes], boundary: bytes, field: str = "file"):
        self.field = field
        self._chunks = chunks
        self._decoder = MultipartDecoder(boundary)
        self._events = self._parsed()
        # werkzeug's decoder adds a stray b"\r" to a part whose body arrives cut between the
        # two dashes that close it: that last dash is held until the next chunk (or the end).
        self._cut = b"--" + boundary + b"-"
        self._held = b""

    def _receive(self, chunk: bytes | None) -> None:
        decoder = self._decoder
        if chunk is None:
            if self._held:
                decoder.receive_data(self._held)
                self._held = b""
            decoder.receive_data(None)
            return
        chunk, self._held = self._held + chunk, b""
        if (bytes(decoder.buffer[-len(self._cut) :]) + chunk).endswith(self._cut):
            chunk, self._held = chunk[:-1], chunk[-1:]
        decoder.receive_data(chunk)

    def _parsed(self) -> Iterator[Event]:
        decoder = self._decoder
        while True:
            try:
                event = decoder.next_event()
            except (ValueError, RequestEntityTooLarge) as error:
                raise InvalidRequest(f"the multipart body cannot be read: {error}") from None
            if isinstance(event, Epilogue):
                return
            if not isinstance(event, NeedData):
                yield event
                continue
            # Wanting more before a part's data starts: the boundary, or the end of a part's
            # headers, is not in what has come so far.
            if decoder.state.name in ("PREAMBLE", "PART") and (
                len(decoder.buffer) > MAX_HEADER_BYTES
            ):
                raise InvalidRequest(
                    "the multipart body has no part boundary, or a part's headers do not end, "
                    f"within {MAX_HEADER_BYTES} bytes"
                )
            self._receive(next(self._chunks, None))

    def open(self) -> str:
        # The preamble, and plain fields with their data, are not wanted.
        for event in self._events:
            if isinstance(event, File):
                if event.name != self.field:
                    raise InvalidRequest(
                        f"the multipart body's file part is named {event.name!r}: "
                        f"name it {self.field!r}"
                    )
                return event.filename
        raise InvalidRequest(f"the multipart body has no file part named {self.field!r}")

    def data(self) -> Iterator[bytes]:
        for event in self._events:
            if not isinstance(event, Data):  # the decoder sends a part's data before all else
                break
            if event.data:
                yield event.data
            if not event.more_data:
                return
        raise InvalidRequest("the multipart body ends inside its file part")

    def finish(self) -> None:
        for event in self._events:
            if isinstance(event, File):
                raise InvalidRequest(
                    "the multipart body holds more than one file: send one document a request"
                )
