"""Request and response schemas of the seed-compatible v1 API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

JOB_TYPES = ("flow", "refiner", "job", "async", "group")


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class CompileArgs(StrictSchema):
    flow_project_root = fields.String(required=True, validate=validate.Length(min=1))
    binary_type = fields.String(
        required=True, validate=validate.OneOf(("Single Flow", "Metaflow", "Flows"))
    )
    predefined_binary_path = fields.String(load_default=None, allow_none=True)
    settings = fields.Dict(keys=fields.String(), load_default=dict)


class JobIdResponse(ma.Schema):
    status = fields.String()
    job_id = fields.String()


class WebhookConfig(StrictSchema):
    url = fields.String(required=True)
    headers = fields.Raw(load_default=None)


class RuntimeConfig(ma.Schema):
    class Meta:
        # The runtime config also carries the flow's own arguments.
        unknown = ma.INCLUDE

    log_prefix = fields.String(load_default="")
    modify_output_schema = fields.String()


class RunSettingsArgs(StrictSchema):
    output_has_run_id = fields.Boolean(load_default=False)
    delete_out_dir = fields.Boolean(load_default=False)
    log_to_timeline = fields.Boolean(load_default=False)
    notification_emails = fields.List(fields.Email(), load_default=list)
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list)
    step_timeout = fields.Integer(load_default=0, validate=validate.Range(min=-1))
    pipeline_ids = fields.List(fields.String(), load_default=list)
    save_binary_to_output = fields.Boolean(load_default=True)
    webhook_config = fields.Nested(WebhookConfig, load_default=None, allow_none=True)
    runtime_config = fields.Nested(RuntimeConfig, load_default=dict)
    priority = fields.Integer(load_default=0, validate=validate.Range(min=0, max=9))


# Loaded once: a request without settings gets these defaults (each field's load_default).
_DEFAULT_RUN_SETTINGS = RunSettingsArgs().load({})


class RunAsyncArgs(StrictSchema):
    binary_path = fields.String(required=True, validate=validate.Length(min=1))
    input_dir = fields.String(required=True, validate=validate.Length(min=1))
    output_dir = fields.String(load_default=None, allow_none=True)
    job_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))
    settings = fields.Nested(RunSettingsArgs, load_default=lambda: dict(_DEFAULT_RUN_SETTINGS))


class RunAsyncData(ma.Schema):
    job_id = fields.String()
    output_folder = fields.String()


class RunAsyncResponse(ma.Schema):
    status = fields.String()
    data = fields.Nested(RunAsyncData)


class StatusArgs(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    job_id = fields.String(required=True, validate=validate.Length(min=1))
    type = fields.String(load_default="flow", validate=validate.OneOf(JOB_TYPES))


class StatusResult(ma.Schema):
    status = fields.String()
    output_folder = fields.String()
    msg = fields.String()
    binary_path = fields.String(metadata={"description": "compile jobs: the binary written"})


class StatusResponse(ma.Schema):
    status = fields.String()
    msg = fields.String()
    state = fields.String(metadata={"description": "PENDING or DONE"})
    is_waiting_for_resources = fields.Boolean()
    job_id = fields.String()
    results = fields.List(fields.Nested(StatusResult))
    cur_status = fields.String(metadata={"description": "JSON-encoded current status"})
    finish_timestamp = fields.Integer(allow_none=True)
    binary_mode = fields.Boolean()


class LogsArgs(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    job_id = fields.String(required=True, validate=validate.Length(min=1))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=10000))


class LogLine(ma.Schema):
    job_id = fields.String(data_key="job-id")
    task_id = fields.String(data_key="task-id")
    level = fields.String()
    ts = fields.String()
    trace_id = fields.String()
    span_id = fields.String()
    log = fields.String()


class LogsResponse(ma.Schema):
    logs = fields.List(fields.Nested(LogLine))
    next_offset = fields.Integer()
