"""Request and response schemas of the resource API's jobs (``/api/v2/jobs``, seeds 002 and
003): one job shape for every kind of job, the bodies that create each creatable type, the
list's filters, and the status, metrics and log answers.

Bodies are strict about the fields they know (a wrong type or value is a 400 naming the field)
and keep the ones they do not: seed 002 puts every unknown top-level field of a new job into its
``metadata``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC

import marshmallow as ma
from marshmallow import fields, validate

from api.account_schemas import Collaboration, CollaborationArgs, StrictSchema
from api.fields import MAX_INT32, MAX_OFFSET, DrivePath, Text
from api.schemas import RuntimeConfig, WebhookConfig, new_job_id_field
from shared.contents.documents import MAX_DOCUMENTS
from shared.errors import InvalidRequest
from shared.jobs.health import Health
from shared.runs.compile import BINARY_TYPES
from shared.states import (
    EXECUTION_STATUS,
    RESOURCE_STATUS,
    RESOURCE_TYPE,
    DesiredExecution,
    JobKind,
)

FLOW_RUN = RESOURCE_TYPE[JobKind.FLOW]
FLOW_COMPILE = RESOURCE_TYPE[JobKind.COMPILE]
FLOW_SYNC = RESOURCE_TYPE[JobKind.SYNC]
MAX_METADATA_BYTES = 64 * 1024
MAX_PAGE = 1000

STATUSES = list(dict.fromkeys(RESOURCE_STATUS.values()))
EXECUTION_STATUSES = list(dict.fromkeys(EXECUTION_STATUS.values()))
DESIRED = [desired.value for desired in DesiredExecution]
TYPES = list(RESOURCE_TYPE.values())
HEALTH = [health.value for health in Health]


# -- the job ----------------------------------------------------------------------------------
class Timestamp(fields.DateTime):
    """ISO 8601 in UTC, with a ``Z``: ``2026-12-08T10:00:00.123456Z``."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Owner(ma.Schema):
    id = fields.String(metadata={"description": "the user's id"})
    username = fields.String()
    email = fields.String(allow_none=True)


class Stamp(ma.Schema):
    username = fields.String()
    userId = fields.String()


class JobHealth(ma.Schema):
    status = fields.String(metadata={"enum": HEALTH})
    message = fields.String()


class Progress(ma.Schema):
    current = fields.Integer(metadata={"description": "steps finished, summed over the files"})
    total = fields.Integer(metadata={"description": "the job's files times its steps"})


class DocumentInput(ma.Schema):
    id = fields.String()
    name = fields.String()
    size = fields.Integer()
    uri = fields.String(metadata={"description": "the document's drive path"})
    file_name = fields.String(metadata={"description": "its file's name in the input folder"})


class Content(ma.Schema):
    type = fields.String()
    uri = fields.String(allow_none=True, metadata={"description": "a drive path"})
    url = fields.String(
        metadata={"description": "a completed flow run's output: GET it for its results content"}
    )
    binary_path = fields.String(metadata={"description": "flow runs: the binary they run"})
    documents = fields.List(
        fields.Nested(DocumentInput),
        metadata={"description": "a flow run on documents: the documents it runs on"},
    )


class JobResource(ma.Schema):
    id = fields.String()
    type = fields.String(metadata={"enum": TYPES})
    owner = fields.Nested(Owner)
    status = fields.String(metadata={"enum": STATUSES, "description": "seed 002's status"})
    executionStatus = fields.String(metadata={"enum": EXECUTION_STATUSES})
    desiredExecutionStatus = fields.String(metadata={"enum": DESIRED})
    message = fields.String(metadata={"description": "what the job is doing, or why it ended"})
    health = fields.Nested(JobHealth)
    progress = fields.Nested(Progress)
    metadata = fields.Dict(keys=fields.String())
    collaboration = fields.Nested(Collaboration)
    input_content = fields.Nested(Content)
    output_content = fields.Nested(Content, allow_none=True)
    tags = fields.List(fields.String())
    priority = fields.Integer()
    maxParseExceptions = fields.Integer(allow_none=True)
    createdBy = fields.Nested(Stamp)
    lastModifiedBy = fields.Nested(Stamp)
    createdTimestamp = Timestamp()
    startedTimestamp = Timestamp(allow_none=True)
    completedTimestamp = Timestamp(allow_none=True)
    lastUpdatedTimestamp = Timestamp()


class JobsPage(ma.Schema):
    values = fields.List(fields.Nested(JobResource))
    next = fields.String(allow_none=True, metadata={"description": "the next page, or null"})


# -- creating a job ---------------------------------------------------------------------------
class StrictWebhookConfig(WebhookConfig):
    class Meta:
        unknown = ma.RAISE


def _metadata_fits(value: dict) -> None:
    if len(json.dumps(value, default=str)) > MAX_METADATA_BYTES:
        raise ma.ValidationError(f"must be at most {MAX_METADATA_BYTES} bytes as JSON")


def _metadata_field() -> fields.Dict:
    return fields.Dict(
        keys=fields.String(),
        load_default=dict,
        validate=_metadata_fits,
        metadata={"description": "the client's own key/values, any JSON"},
    )


def _tags_field(**kwargs) -> fields.List:
    return fields.List(Text(validate=validate.Length(min=1, max=100)), **kwargs)


class NewJob(ma.Schema):
    """A creatable type's body; a field it does not know lands in ``metadata`` (an explicit
    ``metadata`` key wins over a top-level field of the same name)."""

    class Meta:
        unknown = ma.INCLUDE

    metadata = _metadata_field()
    tags = _tags_field(load_default=list)

    @ma.post_load
    def _unknown_into_metadata(self, data: dict, **kwargs) -> dict:
        known = {field.attribute or name for name, field in self.fields.items()}
        extra = {key: data.pop(key) for key in list(data) if key not in known}
        data["metadata"] = {**extra, **data["metadata"]}
        _metadata_fits(data["metadata"])
        return data


class FlowRunArgs(NewJob):
    type = fields.String(required=True, validate=validate.OneOf([FLOW_RUN]))
    id = new_job_id_field()
    binary_path = DrivePath(required=True, validate=validate.Length(min=1))
    input_dir = DrivePath(
        load_default=None,
        allow_none=False,
        validate=validate.Length(min=1),
        metadata={"description": "the folder whose files it runs on (or give documents)"},
    )
    documents = fields.List(
        fields.UUID(),
        load_default=None,
        allow_none=False,
        validate=validate.Length(min=1, max=MAX_DOCUMENTS),
        metadata={"description": "ids from POST /api/v2/documents: the input, not input_dir"},
    )
    output_dir = DrivePath(
        load_default=None,
        allow_none=True,
        metadata={"description": "left out: the input folder's sibling `out`"},
    )
    output_has_run_id = fields.Boolean(
        load_default=False, metadata={"description": "write into a new subfolder of output_dir"}
    )
    priority = fields.Integer(load_default=0, validate=validate.Range(min=0, max=9))
    step_timeout = fields.Integer(load_default=0, validate=validate.Range(min=-1, max=MAX_INT32))
    maxParseExceptions = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_INT32),
        metadata={
            "description": "once more records than this have failed a step, the job fails and "
            "its other files stop; left out or null: no limit"
        },
    )
    collaboration = fields.Nested(CollaborationArgs, load_default=None, allow_none=True)
    webhook_config = fields.Nested(StrictWebhookConfig, load_default=None, allow_none=True)
    runtime_config = fields.Nested(RuntimeConfig, load_default=dict)

    # The spec's (api/openapi.py SchemaExtras): one input, input_dir or documents.
    OPENAPI_EXTRA = {"oneOf": [{"required": ["input_dir"]}, {"required": ["documents"]}]}

    @ma.validates_schema
    def _one_input(self, data: dict, **kwargs) -> None:
        given = [name for name in ("input_dir", "documents") if data.get(name) is not None]
        if len(given) == 2:
            raise ma.ValidationError("give input_dir or documents, not both", "documents")
        if not given:
            raise ma.ValidationError(
                "input_dir (a folder) or documents (ids from POST /api/v2/documents) is required",
                "input_dir",
            )


class FlowCompileArgs(NewJob):
    type = fields.String(required=True, validate=validate.OneOf([FLOW_COMPILE]))
    flow_project_root = DrivePath(required=True, validate=validate.Length(min=1))
    binary_type = fields.String(required=True, validate=validate.OneOf(BINARY_TYPES))
    settings = fields.Dict(
        keys=fields.String(), load_default=dict, metadata={"description": "e.g. flow_file"}
    )
    predefined_binary_path = DrivePath(load_default=None, allow_none=True)


CREATABLE = {FLOW_RUN: FlowRunArgs(), FLOW_COMPILE: FlowCompileArgs()}


class CreateJobArgs(ma.Schema):
    """Loads a new job's body with the schema of its ``type``; the spec shows their oneOf."""

    def load(self, data, *, many=None, partial=None, unknown=None):
        if not isinstance(data, Mapping):
            raise InvalidRequest('the body must be a JSON object: {"type": ..., ...}')
        kind = data.get("type")
        if kind == FLOW_SYNC:
            raise ma.ValidationError(
                {
                    "type": [
                        f"{FLOW_SYNC} jobs cannot be created here: run a binary synchronously "
                        "with POST /api/v1/flow/run_binary_sync (its runs are listed here)"
                    ]
                }
            )
        if not isinstance(kind, str) or kind not in CREATABLE:
            shown = "missing" if kind is None else repr(kind)
            raise ma.ValidationError(
                {"type": [f"is {shown}: create one of {', '.join(CREATABLE)}"]}
            )
        return CREATABLE[kind].load(data, partial=partial)


CREATE_JOB_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"oneOf": [FlowRunArgs, FlowCompileArgs]}},
    },
}


# -- changing a job ---------------------------------------------------------------------------
class DesiredArgs(StrictSchema):
    desiredExecutionStatus = fields.String(required=True, validate=validate.OneOf(DESIRED))


class UpdateJobArgs(StrictSchema):
    metadata = fields.Dict(
        keys=fields.String(),
        validate=_metadata_fits,
        metadata={"description": "replaces the job's metadata"},
    )
    tags = _tags_field(metadata={"description": "replaces the job's tags"})
    collaboration = fields.Nested(
        CollaborationArgs, metadata={"description": "replaces it (the job's owner or admins)"}
    )
    desiredExecutionStatus = fields.String(validate=validate.OneOf(DESIRED))


class JobStatusSchema(ma.Schema):
    executionStatus = fields.String(metadata={"enum": EXECUTION_STATUSES})
    desiredExecutionStatus = fields.String(metadata={"enum": DESIRED})
    status = fields.String(metadata={"enum": STATUSES})


# -- listing ----------------------------------------------------------------------------------
def _many(field: fields.Field, description: str) -> fields.List:
    return fields.List(field, load_default=list, metadata={"description": description})


class ListJobsArgs(ma.Schema):
    """Every filter takes one or more values (repeat the parameter): a job matches any of
    them; a job is listed if it matches every filter given."""

    status = _many(fields.String(validate=validate.OneOf(STATUSES)), "seed 002's status")
    executionStatus = _many(
        fields.String(validate=validate.OneOf(EXECUTION_STATUSES)), "seed 003's status"
    )
    desiredExecutionStatus = _many(fields.String(validate=validate.OneOf(DESIRED)), "")
    healthStatus = _many(fields.String(validate=validate.OneOf(HEALTH)), "health.status")
    type = _many(fields.String(validate=validate.OneOf(TYPES)), "the job's type")
    tag = _many(Text(validate=validate.Length(min=1, max=100)), "carries this tag")
    tags = _many(Text(validate=validate.Length(min=1, max=100)), "another name of tag")
    owner = _many(Text(validate=validate.Length(min=1, max=254)), "a username or user id")
    priority = _many(fields.Integer(validate=validate.Range(min=0, max=9)), "")
    id = _many(Text(validate=validate.Length(min=1, max=50)), "the job's id")
    createdAfter = fields.AwareDateTime(
        load_default=None,
        default_timezone=UTC,
        metadata={"description": "created at or after (ISO 8601; UTC unless it says)"},
    )
    createdBefore = fields.AwareDateTime(
        load_default=None,
        default_timezone=UTC,
        metadata={"description": "created before (ISO 8601; UTC unless it says)"},
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE))
    cursor = Text(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "where the page starts: from the previous page's `next`"},
    )

    @ma.pre_load
    def _known_filters_only(self, data, **kwargs):
        known = set(self.fields)
        unknown = sorted(key for key in data if key not in known)
        if unknown:
            raise InvalidRequest(
                f"unknown filter {', '.join(map(repr, unknown))}: filter by "
                f"{', '.join(sorted(known - {'limit', 'cursor'}))} (and page with limit, cursor)"
            )
        return data


# -- metrics and logs -------------------------------------------------------------------------
class Totals(ma.Schema):
    numRowsProcessed = fields.Integer()
    numRowsProcessedWithWarning = fields.Integer()
    numRowsSkippedByFilter = fields.Integer()
    numRowsSkippedByError = fields.Integer()


class MetricsResponse(ma.Schema):
    totals = fields.Nested(Totals)


class LogPageArgs(ma.Schema):
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=10000))
    after = fields.Integer(
        load_default=None,
        validate=validate.Range(min=0, max=MAX_OFFSET),
        metadata={"description": "continue after this line: set by the `next` link"},
    )


class LogEntry(ma.Schema):
    timestamp = fields.String(metadata={"description": "ISO 8601, UTC"})
    level = fields.String()
    message = fields.String()
    taskId = fields.String()
    traceId = fields.String()
    spanId = fields.String()


class LogsPage(ma.Schema):
    values = fields.List(fields.Nested(LogEntry))
    next = fields.String(allow_none=True)


# -- job types --------------------------------------------------------------------------------
class JobTypeContent(ma.Schema):
    type = fields.String()
    description = fields.String()


class JobType(ma.Schema):
    id = fields.String(metadata={"enum": TYPES})
    description = fields.String()
    creatable = fields.Boolean()
    fields_ = fields.Dict(
        data_key="fields",
        metadata={"description": "JSON Schema (OpenAPI 3.0) of the body that creates one"},
    )
    contents = fields.List(fields.Nested(JobTypeContent))


class JobTypes(ma.Schema):
    values = fields.List(fields.Nested(JobType))
