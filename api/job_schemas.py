"""Request and response schemas of the seed's job control endpoints."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate
from webargs.fields import DelimitedList

from api.fields import MAX_OFFSET, MAX_UNIX_SECONDS, Text
from api.lenient import LenientSchema, V1Response
from shared.jobs.listing import REVIEW_STATES
from shared.runs.control import RETRY_TYPES
from shared.states import LIST_STATE_FILTER


class CommaList(DelimitedList):
    """The seed's comma-separated lists (``state=COMPLETE,FAILED``), loaded as a tuple; blanks
    around a value and empty values are ignored. A DelimitedList, so the spec shows an array
    sent comma-separated (``style: form``, ``explode: false``)."""

    def __init__(self, choices=None, **kwargs):
        # Each value one of ``choices`` (an enum in the spec), if given; else any string.
        item = Text()
        if choices:
            one_of = validate.OneOf(sorted(choices), error="{input!r} is not one of {choices}")
            item = fields.String(validate=one_of)
        # Empty when left out; the spec says so as an array (webargs would show "").
        kwargs.setdefault("load_default", ())
        kwargs["metadata"] = {"default": [], **kwargs.get("metadata", {})}
        super().__init__(item, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ma.ValidationError("must be a comma-separated list")
        parts = [part.strip() for part in value.split(",") if part.strip()]
        return tuple(fields.List._deserialize(self, parts, attr, data, **kwargs))


class Query(LenientSchema):
    """A v1 query: unknown parameters are ignored and reported."""


class JobIdArgs(Query):
    job_id = Text(required=True, validate=validate.Length(min=1, max=50))


class RetryArgs(JobIdArgs):
    type = fields.String(load_default="all", validate=validate.OneOf(RETRY_TYPES))


class TimeWindowArgs(Query):
    from_timestamp = fields.Float(
        load_default=None, validate=validate.Range(min=0, max=MAX_UNIX_SECONDS)
    )
    to_timestamp = fields.Float(
        load_default=None, validate=validate.Range(min=0, max=MAX_UNIX_SECONDS)
    )


class BulkArgs(TimeWindowArgs):
    user = Text(load_default=None)
    tags = CommaList()


class ListArgs(TimeWindowArgs):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
    after = Text(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "continue after this job: the cursor of `next_page`"},
    )
    state = CommaList(LIST_STATE_FILTER)
    user = Text(load_default=None)
    priority = fields.Integer(load_default=None, validate=validate.Range(min=0, max=9))
    tags = CommaList()
    pipeline_ids = CommaList()
    review_state = CommaList(REVIEW_STATES)
    job_id = Text(load_default=None)
    job_ids = CommaList()
    reviewer = Text(load_default=None)


class TagsArgs(LenientSchema):
    job_id = Text(required=True, validate=validate.Length(min=1, max=50))
    names = fields.List(
        Text(validate=validate.Length(min=1, max=100)), load_default=None, allow_none=True
    )


class OkResponse(V1Response):
    status = fields.String()


class BulkResponse(V1Response):
    status = fields.String()
    affected_jobs = fields.Integer(metadata={"description": "how many jobs the call changed"})


class TagsResponse(V1Response):
    status = fields.String()
    updated_tags = fields.List(fields.String())


class RunSummarySchema(ma.Schema):
    numFiles = fields.Integer()
    numRecords = fields.Integer()
    numRuntimeErrors = fields.Integer()
    numCheckpointFailed = fields.Integer()
    recordsWithMsg = fields.Dict(keys=fields.String(), values=fields.Integer())


class ListedJob(ma.Schema):
    curMsg = fields.String()
    curProgress = fields.Float(metadata={"description": "0 to 1: the share of steps that ran"})
    state = fields.String()
    tags = fields.List(fields.String())
    job_id = fields.String()
    input_folder = fields.String()
    output_folder = fields.String()
    flow_path = fields.String()
    source_path = fields.String()
    flow_type = fields.String()
    is_flow_v3 = fields.Boolean()
    start_timestamp = fields.Float()
    finish_timestamp = fields.Float(allow_none=True)
    runtime_sec = fields.Float(allow_none=True)
    username = fields.String()
    priority = fields.Integer()
    run_summary = fields.Nested(RunSummarySchema)
    reviewer = fields.String()
    review_state = fields.String()
    flow_pipeline_infos = fields.List(fields.Dict())
    flow_job_metrics = fields.Raw(allow_none=True)
    flow_review_metrics = fields.Raw(allow_none=True)


class ListResponse(V1Response):
    jobs = fields.List(fields.Nested(ListedJob))
    next_page = fields.String(allow_none=True)
