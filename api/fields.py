"""Field types and bounds the request schemas share: what the store, the drive and Python can
hold, stated in the schemas so that the spec shows it and a value past it is a 400 naming the
field, never an error from the driver or the file system."""

from __future__ import annotations

from marshmallow import fields, validate

from shared.drive import MAX_NAME_BYTES, MAX_PATH_BYTES

MAX_UNIX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime holds
MAX_INT32 = 2**31 - 1  # the store's INTEGER columns (step_timeout, file_index, ...)
MAX_INT64 = 2**63 - 1  # its BIGINT ids (deliveries)
MAX_OFFSET = 2**53 - 1  # a page offset: the largest integer every JSON client reads exactly

# Drive paths as shared/drive.py takes them: a space (a username or a team's name), then names
# that are not '.' or '..' and hold no '/', '\' or NUL. Its byte limits are counted in
# characters here, which is exact for ASCII; shared/drive.py counts UTF-8 bytes.
_CHAR = r"[^/\\\x00]"
_NOT_DOT = r"[^/\\\x00.]"
# A name starts with no dot, with one and then no dot, or with two and goes on: never '.', '..'.
_NAME_FORMS = (
    rf"{_NOT_DOT}{_CHAR}{{0,{MAX_NAME_BYTES - 1}}}",
    rf"\.{_NOT_DOT}{_CHAR}{{0,{MAX_NAME_BYTES - 2}}}",
    rf"\.\.{_CHAR}{{1,{MAX_NAME_BYTES - 2}}}",
)
_NAME = f"(?:{'|'.join(_NAME_FORMS)})"
# A leading '/' is the drive's root, as Instabase clients write it (shared/drive.py drops it).
DRIVE_PATH = rf"^/*{_NAME}(?:/{_NAME})*$"
# Something inside a space, not the space itself: what can be written or deleted.
DRIVE_ENTRY = rf"^/*{_NAME}(?:/{_NAME})+$"
# One name: a file or folder made inside a given folder.
DRIVE_NAME = rf"^{_NAME}$"
# A flow file: inside a folder of a space, its name ending in .ibflow.
DRIVE_FLOW_FILE = rf"^/*{_NAME}(?:/{_NAME})*/[^/\\\x00]*\.ibflow$"
DRIVE_PATH_DOC = (
    f"a drive path: a space (your username, or a team's name), then names separated by '/' "
    f"(at most {MAX_NAME_BYTES} bytes each and {MAX_PATH_BYTES} in all)"
)
NO_NUL = r"^[^\x00]*$"


class Text(fields.String):
    """A string the store keeps or looks up as text. PostgreSQL's text cannot hold a NUL
    character and UTF-8 no unpaired surrogate, so either is a 400 here; the spec says so with a
    pattern, unless the field has a pattern of its own (which must then exclude NUL)."""

    default_error_messages = {
        "unstorable": "must not contain NUL characters or unpaired surrogates",
    }

    def __init__(self, **kwargs):
        validators = kwargs.get("validate") or []
        validators = validators if isinstance(validators, list | tuple) else [validators]
        if not any(isinstance(check, validate.Regexp) for check in validators):
            kwargs["metadata"] = {"pattern": NO_NUL, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode()
        except UnicodeEncodeError:
            raise self.make_error("unstorable") from None
        if "\x00" in text:
            raise self.make_error("unstorable")
        return text


class DrivePath(fields.String):
    """A path in the drive. shared/drive.py checks it and says what is wrong with it; this field
    only shows the spec its shape (``pattern``)."""

    def __init__(self, **kwargs):
        # No maxLength: with this pattern it leaves too few strings for schemathesis to draw
        # from; the description says the limit instead.
        shape = {"pattern": DRIVE_PATH, "description": DRIVE_PATH_DOC}
        kwargs["metadata"] = {**shape, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)
