"""Request and response schemas of the seed-compatible v1 API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from api.account_schemas import CollaborationArgs
from api.fields import DRIVE_FLOW_FILE, MAX_INT32, MAX_OFFSET, DrivePath, Text
from api.lenient import LenientSchema, V1Response
from shared.jobs.ids import JOB_ID

JOB_TYPES = ("flow", "refiner", "job", "async", "group")


class Body(LenientSchema):
    """A v1 body: unknown keys are ignored and reported (api/lenient.py), never a 400."""


class CompileArgs(Body):
    flow_project_root = DrivePath(
        load_default=None,
        validate=validate.Length(min=1),
        metadata={"description": "required, unless the URL names the project"},
    )
    binary_type = fields.String(
        required=True, validate=validate.OneOf(("Single Flow", "Metaflow", "Flows"))
    )
    predefined_binary_path = DrivePath(load_default=None, allow_none=True)
    settings = fields.Dict(keys=fields.String(), load_default=dict)


class JobIdResponse(V1Response):
    status = fields.String()
    job_id = fields.String()


class WebhookConfig(Body):
    url = fields.String(
        load_default=None,
        allow_none=True,
        # What shared/url_guard.py checks first, as a pattern: a scheme (any case) and a host.
        validate=validate.Regexp(
            r"^\s*[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]",
            error="only http and https URLs with a host can be called (http://host/...)",
        ),
        metadata={
            "description": "public addresses only, unless the operator allows more; "
            "left out, no webhook is sent"
        },
    )
    headers = fields.Raw(load_default=None)


class RuntimeConfig(ma.Schema):
    class Meta:
        # The runtime config also carries the flow's own arguments.
        unknown = ma.INCLUDE

    log_prefix = Text(load_default="", validate=validate.Length(max=200))
    # JSON text, which OpenAPI 3.0 cannot describe further (3.1 has contentSchema).
    modify_output_schema = fields.String(
        metadata={"description": "JSON.stringify of the output schema (docs/flows.md)"}
    )


class RunSettingsArgs(Body):
    output_has_run_id = fields.Boolean(load_default=False)
    delete_out_dir = fields.Boolean(load_default=False)
    log_to_timeline = fields.Boolean(load_default=False)
    notification_emails = fields.List(fields.Email(), load_default=list)
    tags = fields.List(Text(validate=validate.Length(min=1, max=100)), load_default=list)
    step_timeout = fields.Integer(load_default=0, validate=validate.Range(min=-1, max=MAX_INT32))
    pipeline_ids = fields.List(Text(validate=validate.Length(min=1, max=100)), load_default=list)
    save_binary_to_output = fields.Boolean(load_default=True)
    webhook_config = fields.Nested(WebhookConfig, load_default=None, allow_none=True)
    runtime_config = fields.Nested(RuntimeConfig, load_default=dict)
    priority = fields.Integer(load_default=0, validate=validate.Range(min=0, max=9))
    collaboration = fields.Nested(
        CollaborationArgs,
        load_default=None,
        allow_none=True,
        metadata={"description": "who else sees and works on the job (seed 002)"},
    )
    max_parse_exceptions = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_INT32),
        metadata={
            "description": "once more records than this have failed a step, the job fails and "
            "its other files stop; left out or null: no limit (the resource API's "
            "maxParseExceptions)"
        },
    )


# Loaded once: a request without settings gets these defaults (each field's load_default).
_DEFAULT_RUN_SETTINGS = RunSettingsArgs().load({})


def new_job_id_field() -> Text:
    return Text(
        load_default=None,
        allow_none=True,
        # shared/jobs/ids.py's pattern, or empty (like null: a new id is made up).
        validate=validate.Regexp(
            rf"^(?:{JOB_ID.pattern[1:-1]})?$",
            error="must be 1-50 characters of letters, digits, '.', '_' or '-'",
        ),
        metadata={"description": "the new job's id; left out, one is made up"},
    )


class RunAsyncArgs(Body):
    binary_path = DrivePath(required=True, validate=validate.Length(min=1))
    input_dir = DrivePath(required=True, validate=validate.Length(min=1))
    output_dir = DrivePath(load_default=None, allow_none=True)
    job_id = new_job_id_field()
    settings = fields.Nested(RunSettingsArgs, load_default=lambda: dict(_DEFAULT_RUN_SETTINGS))


class RunFlowAsyncArgs(RunSettingsArgs):
    """run_flow_async: the flow file, the folders, and the run settings at the top level."""

    ibflow_path = DrivePath(
        required=True,
        validate=validate.Length(min=1),
        metadata={"pattern": DRIVE_FLOW_FILE, "description": "the *.ibflow file to run"},
    )
    input_dir = DrivePath(load_default=None, validate=validate.Length(min=1))
    input_folder = DrivePath(
        load_default=None,
        validate=validate.Length(min=1),
        metadata={"description": "another name of input_dir"},
    )
    output_dir = DrivePath(load_default=None, allow_none=True)
    job_id = new_job_id_field()
    disable_step_timeout = fields.Boolean(
        load_default=False, metadata={"description": "true: no step timeout (step_timeout -1)"}
    )


class RunAsyncData(ma.Schema):
    job_id = fields.String()
    output_folder = fields.String()


class RunAsyncResponse(V1Response):
    status = fields.String()
    data = fields.Nested(RunAsyncData)


class StatusArgs(LenientSchema):
    job_id = Text(required=True, validate=validate.Length(min=1))
    type = fields.String(load_default="flow", validate=validate.OneOf(JOB_TYPES))


class StatusResult(ma.Schema):
    status = fields.String()
    output_folder = fields.String()
    msg = fields.String()
    binary_path = fields.String(metadata={"description": "compile jobs: the binary written"})


class StatusResponse(V1Response):
    status = fields.String()
    msg = fields.String()
    state = fields.String(metadata={"description": "PENDING or DONE"})
    is_waiting_for_resources = fields.Boolean()
    job_id = fields.String()
    results = fields.List(fields.Nested(StatusResult))
    cur_status = fields.String(metadata={"description": "JSON-encoded current status"})
    finish_timestamp = fields.Integer(allow_none=True)
    binary_mode = fields.Boolean()


class LogsArgs(LenientSchema):
    job_id = Text(required=True, validate=validate.Length(min=1))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=10000))
    after_id = fields.Integer(
        load_default=None,
        validate=validate.Range(min=0, max=MAX_OFFSET),
        metadata={
            "description": "continue after this line (the `next_after_id` of the page before); "
            "offset then counts from it"
        },
    )


class LogLine(ma.Schema):
    job_id = fields.String(data_key="job-id")
    task_id = fields.String(data_key="task-id")
    level = fields.String()
    ts = fields.String()
    trace_id = fields.String()
    span_id = fields.String()
    log = fields.String()


class LogsResponse(V1Response):
    logs = fields.List(fields.Nested(LogLine))
    next_offset = fields.Integer()
    next_after_id = fields.Integer(
        allow_none=True,
        metadata={"description": "the last line's position: pass as after_id to read on fast"},
    )


class ResultsArgs(Body):
    ibresults_path = DrivePath(
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "a run's <output folder>/batch.ibflowresults, or the folder"},
    )
    options = fields.Dict(keys=fields.String(), load_default=dict)


class ResultPair(ma.Schema):
    key = fields.String()
    value = fields.Raw(allow_none=True)


class ResultRecord(ma.Schema):
    file_name = fields.String()
    record_index = fields.Integer(allow_none=True)
    results = fields.List(fields.Nested(ResultPair))
    classification_label = fields.String(allow_none=True)
    output_file_path = fields.String()
    error = fields.String(allow_none=True)
    checkpoint_failed = fields.List(fields.String())


class ResultsResponse(V1Response):
    status = fields.String()
    records = fields.List(fields.Nested(ResultRecord))
