"""Request and response schemas of users, teams, API keys (``/api/v2``) and job collaboration
(seed 002's shape, in v1 and v2)."""

from __future__ import annotations

from datetime import UTC

import marshmallow as ma
from marshmallow import fields, validate

from api.fields import Text
from api.lenient import V1Response
from shared.accounts.access import ALL_STEPS
from shared.accounts.credentials import MAX_KEY_NAME
from shared.accounts.users import MAX_EMAIL, USERNAME
from shared.drive import MAX_NAME_BYTES
from shared.states import Permission, TeamRole


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


# -- collaboration ----------------------------------------------------------------------------
STEPS_DOC = f"step ids of the job's flow this collaborator works on, or {ALL_STEPS!r} for all"
REFERENCE = validate.Length(min=1, max=254)


class Steps(fields.List):
    def __init__(self, **kwargs):
        super().__init__(
            Text(validate=validate.Length(min=1, max=100)),
            required=True,
            validate=validate.Length(min=1, max=1000),
            metadata={"description": STEPS_DOC},
            **kwargs,
        )


class TeamCollaborator(StrictSchema):
    id = Text(validate=REFERENCE, metadata={"description": "the team's id, or give its name"})
    name = Text(validate=REFERENCE)
    steps = Steps()


class UserCollaborator(StrictSchema):
    id = Text(validate=REFERENCE, metadata={"description": "the user's id, email or username"})
    email = Text(validate=REFERENCE)
    username = Text(validate=REFERENCE)
    steps = Steps()


class CollaborationArgs(StrictSchema):
    teams = fields.List(fields.Nested(TeamCollaborator), load_default=list)
    users = fields.List(fields.Nested(UserCollaborator), load_default=list)


class SharedTeam(ma.Schema):
    id = fields.String()
    name = fields.String()
    steps = fields.List(fields.String())


class SharedUser(ma.Schema):
    id = fields.String()
    username = fields.String()
    email = fields.String(allow_none=True)
    steps = fields.List(fields.String())


class Collaboration(ma.Schema):
    teams = fields.List(fields.Nested(SharedTeam))
    users = fields.List(fields.Nested(SharedUser))


class SetCollaborationArgs(StrictSchema):
    job_id = Text(required=True, validate=validate.Length(min=1, max=50))
    collaboration = fields.Nested(CollaborationArgs, required=True)


class CollaborationQuery(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    job_id = Text(required=True, validate=validate.Length(min=1, max=50))


class CollaborationResponse(V1Response):
    status = fields.String()
    job_id = fields.String()
    collaboration = fields.Nested(Collaboration)


# -- users ------------------------------------------------------------------------------------
class UserSchema(ma.Schema):
    id = fields.String()
    username = fields.String()
    email = fields.String(allow_none=True)
    is_admin = fields.Boolean()
    created_at = fields.DateTime()


class NewUserSchema(UserSchema):
    token = fields.String(metadata={"description": "the user's first token, shown only here"})


class UsersResponse(ma.Schema):
    values = fields.List(fields.Nested(UserSchema))


class CreateUserArgs(StrictSchema):
    username = fields.String(required=True, validate=validate.Regexp(USERNAME))
    email = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=3, max=MAX_EMAIL)
    )
    is_admin = fields.Boolean(load_default=False)


class UserRef(ma.Schema):
    id = fields.String()
    username = fields.String()
    email = fields.String(allow_none=True)


# -- teams ------------------------------------------------------------------------------------
TEAM_NAME = validate.Length(min=1, max=MAX_NAME_BYTES)
ROLE = validate.OneOf([role.value for role in TeamRole])


class MemberSchema(ma.Schema):
    user = fields.Nested(UserRef)
    role = fields.String(metadata={"enum": [role.value for role in TeamRole]})


class TeamSchema(ma.Schema):
    id = fields.String()
    name = fields.String()
    created_at = fields.DateTime()
    members = fields.List(fields.Nested(MemberSchema))


class TeamsResponse(ma.Schema):
    values = fields.List(fields.Nested(TeamSchema))


class MemberArgs(StrictSchema):
    user = Text(
        required=True,
        validate=REFERENCE,
        metadata={"description": "a username, email or user id"},
    )
    role = fields.String(load_default=TeamRole.MEMBER.value, validate=ROLE)


class CreateTeamArgs(StrictSchema):
    name = Text(
        required=True,
        validate=TEAM_NAME,
        metadata={"description": "unique; also the team's drive space, so one path segment"},
    )
    members = fields.List(fields.Nested(MemberArgs), load_default=list)


class UpdateTeamArgs(StrictSchema):
    name = Text(required=True, validate=TEAM_NAME)


# -- API keys ---------------------------------------------------------------------------------
PERMISSIONS = [permission.value for permission in Permission]


class KeySchema(ma.Schema):
    id = fields.String()
    name = fields.String()
    permissions = fields.List(fields.String(metadata={"enum": PERMISSIONS}))
    expires_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)


class NewKeySchema(KeySchema):
    key = fields.String(metadata={"description": "the secret, shown only in this answer"})


class KeysResponse(ma.Schema):
    values = fields.List(fields.Nested(KeySchema))


class CreateKeyArgs(StrictSchema):
    name = Text(required=True, validate=validate.Length(min=1, max=MAX_KEY_NAME))
    permissions = fields.List(
        fields.String(validate=validate.OneOf(PERMISSIONS)),
        required=True,
        validate=validate.Length(min=1, max=len(PERMISSIONS)),
    )
    expires_at = fields.AwareDateTime(
        load_default=None,
        allow_none=True,
        default_timezone=UTC,
        metadata={"description": "ISO 8601 (UTC unless it says); left out, it never expires"},
    )
