"""The one exception hierarchy. Every error that reaches a user says what to do about it."""

from __future__ import annotations


class FlowbinError(Exception):
    """Base class; ``http_status`` is what the API answers with."""

    http_status = 400

    def __init__(self, msg: str):
        super().__init__(msg)
        self.msg = msg


class InvalidRequest(FlowbinError):
    http_status = 400


class Unauthorized(FlowbinError):
    http_status = 401


class Forbidden(FlowbinError):
    http_status = 403


class NotFound(FlowbinError):
    http_status = 404


class Conflict(FlowbinError):
    http_status = 409


class TooLarge(FlowbinError):
    http_status = 413


class Unprocessable(FlowbinError):
    http_status = 422


class Unavailable(FlowbinError):
    http_status = 503


class InvalidTransition(Conflict):
    """A job state change that the state machine does not allow from the job's current state."""


class CompileError(Unprocessable):
    """A flow project that cannot be compiled; the message names the file, step id and reason."""

    def __init__(self, file: str, reason: str, step_id: str | None = None):
        where = f"{file}, step '{step_id}'" if step_id else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.step_id = step_id
        self.reason = reason
