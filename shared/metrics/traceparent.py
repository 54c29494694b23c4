"""W3C trace context (https://www.w3.org/TR/trace-context/): a caller's ``traceparent`` header
gives the trace id of the jobs its request creates, so that the caller's trace goes on in every
log line of those jobs; without a valid one a new trace id is generated.

The API opens a request's trace context (``begin``) and closes it after the answer (``end``);
whatever records a job in between asks ``trace_id_for_new_job``, and the answer's own
``traceparent`` (``response_header``) names the trace id its jobs were given."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass

# version 00: "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", lowercase hex only.
_HEADER = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# A later version may add fields after these four; its first four are read the same way.
_LATER = re.compile(r"^(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
SAMPLED = "01"


@dataclass(frozen=True)
class Incoming:
    trace_id: str
    parent_id: str
    flags: str


def parse(header: str | None) -> Incoming | None:
    """The header's trace context, or None if it is missing or invalid (all-zero ids are
    invalid, and so is version ff)."""
    if not header:
        return None
    value = header.strip()
    match = _HEADER.match(value) or (_LATER.match(value) if not value.startswith("00-") else None)
    if match is None:
        return None
    trace_id, parent_id, flags = match.group(1), match.group(2), match.group(3)
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return Incoming(trace_id, parent_id, flags)


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


class _RequestTrace:
    """One request's trace: the caller's, and the trace id given to its jobs once chosen."""

    def __init__(self, incoming: Incoming | None):
        self.incoming = incoming
        self.chosen: str | None = None


_current: ContextVar[_RequestTrace | None] = ContextVar("flowbin_request_trace", default=None)


def begin(header: str | None) -> None:
    _current.set(_RequestTrace(parse(header)))


def end() -> None:
    _current.set(None)


def trace_id_for_new_job() -> str:
    """The caller's trace id inside a request that sent a valid ``traceparent``; else a new one
    (the same for every job of one request, which is one trace)."""
    trace = _current.get()
    if trace is None:
        return new_trace_id()
    if trace.chosen is None:
        trace.chosen = trace.incoming.trace_id if trace.incoming else new_trace_id()
    return trace.chosen


def response_header() -> str | None:
    """The ``traceparent`` that answers a request that created a job: the job's trace id, this
    request's own span as the parent, and the caller's flags (sampled when it sent none)."""
    trace = _current.get()
    if trace is None or trace.chosen is None:
        return None
    flags = trace.incoming.flags if trace.incoming else SAMPLED
    return f"00-{trace.chosen}-{new_span_id()}-{flags}"
