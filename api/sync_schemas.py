"""Request and response schemas of flow/run_binary_sync (seed 001)."""

from __future__ import annotations

import base64
import binascii
import re

import marshmallow as ma
from marshmallow import fields, validate

from api.fields import DrivePath
from api.lenient import V1Response
from api.schemas import Body, RuntimeConfig
from shared.runs.sync import MAX_FILES, RESULT_FORMATS

_WHITESPACE = re.compile(r"\s+")


class Base64Bytes(fields.Field):
    """Base64 text in the request, bytes once loaded; line breaks (as `base64` wraps) are
    ignored. The spec shows it as a string of format ``byte`` (base64)."""

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"type": "string", "format": "byte", **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> bytes:
        if not isinstance(value, str):
            raise ma.ValidationError("must be the file's content as a base64 string")
        try:
            return base64.b64decode(_WHITESPACE.sub("", value), validate=True)
        except (binascii.Error, ValueError):
            raise ma.ValidationError(
                "is not valid base64: encode the file with base64.b64encode(...).decode()"
            ) from None


class SyncFileArgs(Body):
    file_name = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=255),
            validate.Regexp(r"^[^/\\\x00]+$", error="must be a file name without '/' or '\\'"),
        ],
    )
    file_content = Base64Bytes(required=True, metadata={"description": "base64 of the file"})


class SyncOptions(Body):
    result_format = fields.String(load_default="json", validate=validate.OneOf(RESULT_FORMATS))
    runtime_config = fields.Nested(RuntimeConfig, load_default=dict)


class RunSyncArgs(Body):
    binary_path = DrivePath(required=True, validate=validate.Length(min=1))
    options = fields.Nested(SyncOptions, load_default=lambda: SyncOptions().load({}))
    files = fields.List(
        fields.Nested(SyncFileArgs),
        required=True,
        validate=validate.Length(
            min=1,
            max=MAX_FILES,
            error=(f"send 1 to {MAX_FILES} files; run_binary_async takes a folder of any size"),
        ),
    )


class SyncResult(ma.Schema):
    key = fields.String()
    value = fields.Raw(allow_none=True)


class SyncRecord(ma.Schema):
    results = fields.List(fields.Nested(SyncResult))
    file_name = fields.String()
    file_index = fields.Integer()
    record_index = fields.Integer()
    class_label = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    checkpoint_failed = fields.List(fields.String())


class RunSyncResponse(V1Response):
    records = fields.List(fields.Nested(SyncRecord))
    binary_path = fields.String()
    job_id = fields.String()
    csv = fields.String(metadata={"description": "result_format csv: one row per record"})
