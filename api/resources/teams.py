"""Teams (``/api/v2/teams``): a team's name is its drive space; its admins (and admins) manage
its members. Anyone may create a team and becomes its admin."""

from __future__ import annotations

from flask.views import MethodView

from api.account_presenters import team_view, user_ref
from api.account_schemas import (
    CreateTeamArgs,
    MemberArgs,
    MemberSchema,
    TeamSchema,
    TeamsResponse,
    UpdateTeamArgs,
)
from api.blueprint import Blueprint, principal
from api.context import guarded_drive, store
from api.permissions import SIGNED_IN, needs
from shared.accounts import teams
from shared.accounts.users import user_by_reference
from shared.errors import Conflict
from shared.states import Permission

blp = Blueprint(
    "teams",
    __name__,
    url_prefix="/api/v2/teams",
    description="Teams, their members and roles; a team's name is its drive space",
)
TEAM_ID = "<string(length=36):team_id>"


def _shown(session, team) -> dict:
    return team_view(team, teams.members_of(session, [team.id])[team.id])


@blp.route("")
class Teams(MethodView):
    @needs(SIGNED_IN)
    @blp.response(200, TeamsResponse)
    def get(self):
        """The teams you belong to (admins: every team)"""
        with store(read_only=True) as session:
            found = teams.teams_for(session, principal())
            members = teams.members_of(session, [team.id for team in found])
            return {"values": [team_view(team, members[team.id]) for team in found]}

    @needs(Permission.ADMIN)
    @blp.arguments(CreateTeamArgs)
    @blp.response(201, TeamSchema)
    def post(self, args):
        """Create a team; you become its admin, and its space is ready to use"""
        wanted = [(member["user"], teams.parse_role(member["role"])) for member in args["members"]]
        with store() as session:
            team = teams.create_team(session, principal(), args["name"], wanted)
            shown = _shown(session, team)
        guarded_drive().space_home(shown["name"])
        return shown


@blp.route(f"/{TEAM_ID}")
class TeamView(MethodView):
    @needs(SIGNED_IN)
    @blp.response(200, TeamSchema)
    def get(self, team_id: str):
        """A team you belong to, with its members"""
        with store(read_only=True) as session:
            return _shown(session, teams.get_team_for(session, principal(), team_id))

    @needs(Permission.ADMIN)
    @blp.arguments(UpdateTeamArgs)
    @blp.response(200, TeamSchema)
    def put(self, args, team_id: str):
        """Rename a team (team admins); its space moves with it"""
        with store() as session:
            team = teams.managed_team(session, principal(), team_id)
            old = teams.rename_team(session, team, args["name"])
            if old != team.name:
                # Inside the transaction: if the move fails, the name stays as it was.
                guarded_drive().move_space(old, team.name)
            return _shown(session, team)

    @needs(Permission.ADMIN)
    @blp.response(204)
    def delete(self, team_id: str):
        """Delete a team (team admins) whose space is empty"""
        drive = guarded_drive()
        with store() as session:
            team = teams.managed_team(session, principal(), team_id)
            if not drive.space_is_empty(team.name):
                raise Conflict(
                    f"the space of team {team.name!r} still holds files: move or delete them "
                    "first, so that nothing is lost with the team"
                )
            session.delete(team)


@blp.route(f"/{TEAM_ID}/members")
class Members(MethodView):
    @needs(Permission.ADMIN)
    @blp.arguments(MemberArgs)
    @blp.response(201, MemberSchema)
    @blp.alt_response(200, schema=MemberSchema, description="an existing member's new role")
    def post(self, args, team_id: str):
        """Add a member, or change a member's role (team admins)"""
        with store() as session:
            team = teams.managed_team(session, principal(), team_id)
            role = teams.parse_role(args["role"])
            user, added = teams.set_member(session, team, args["user"], role)
            shown = {"user": user_ref(user), "role": role}
        return shown, 201 if added else 200


@blp.route(f"/{TEAM_ID}/members/<string(maxlength=254):user>")
class Member(MethodView):
    @needs(Permission.ADMIN)
    @blp.response(204)
    def delete(self, team_id: str, user: str):
        """Remove a member (team admins; members may remove themselves)"""
        with store() as session:
            team = teams.get_team_for(session, principal(), team_id)
            leaving = user_by_reference(session, user)
            if leaving.id != principal().user_id:
                team = teams.managed_team(session, principal(), team_id)
            teams.remove_member(session, team, user)
