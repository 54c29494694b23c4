"""Request and response schemas of the checkpoint review endpoints (api/resources/review.py)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from api.fields import MAX_INT32, Text
from api.lenient import LenientSchema, V1Response
from shared.accounts.users import USERNAME
from shared.states import REVIEW_CLOSING

JOB_ID = validate.Length(min=1, max=50)


class ReviewJobArgs(LenientSchema):
    job_id = Text(required=True, validate=JOB_ID)


class Body(LenientSchema):
    """A v1 body: unknown keys are ignored and reported."""


class CorrectArgs(Body):
    job_id = Text(required=True, validate=JOB_ID)
    file_index = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=0, max=MAX_INT32)
    )
    record_index = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=0, max=MAX_INT32)
    )
    # Last in the class: below this line `fields` in the class body is this field, not the
    # marshmallow module.
    fields = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=200)),
        values=fields.Raw(allow_none=True),
        required=True,
        metadata={
            "description": "field name -> corrected value; {} marks the record reviewed "
            "without change"
        },
    )


class AssignArgs(Body):
    job_id = Text(required=True, validate=JOB_ID)
    reviewer = Text(
        required=True,
        validate=validate.Length(min=1, max=64),
        # Shown, not checked here: the store's "no user" says more than a pattern's refusal.
        metadata={"description": "username of an existing user", "pattern": USERNAME.pattern},
    )


class CloseArgs(Body):
    job_id = Text(required=True, validate=JOB_ID)
    state = fields.String(load_default="COMPLETED", validate=validate.OneOf(REVIEW_CLOSING))


class ReviewMetrics(ma.Schema):
    reviewed = fields.Integer(metadata={"description": "records reviewed so far"})
    pending = fields.Integer(
        metadata={"description": "records stopped at a checkpoint and not reviewed since"}
    )


class RecordForReview(ma.Schema):
    file_name = fields.String()
    file_index = fields.Integer()
    record_index = fields.Integer()
    text = fields.String(metadata={"description": "the record's text, to check its fields by"})
    checkpoint_failed = fields.List(
        fields.String(), metadata={"description": "messages of the failed rules"}
    )
    checkpoint_step = fields.String(metadata={"description": "id of the checkpoint step"})
    reviewed = fields.Boolean(metadata={"description": "reviewed since the job stopped"})
    reviewer = fields.String(allow_none=True)
    reviewed_at = fields.Float(allow_none=True, metadata={"description": "Unix seconds"})
    corrected_fields = fields.Dict(allow_none=True)
    # Last in the class, as in CorrectArgs.
    fields = fields.Dict(metadata={"description": "the record's fields as the checkpoint saw them"})


class RecordsResponse(V1Response):
    status = fields.String()
    job_id = fields.String()
    reviewer = fields.String()
    review_state = fields.String()
    flow_review_metrics = fields.Nested(ReviewMetrics)
    records = fields.List(fields.Nested(RecordForReview))


class CorrectResponse(V1Response):
    status = fields.String()
    record = fields.Nested(RecordForReview)


class ReviewStateResponse(V1Response):
    status = fields.String()
    job_id = fields.String()
    reviewer = fields.String()
    review_state = fields.String()
