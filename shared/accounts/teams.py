"""Teams: a unique name, which is also the team's drive space, and members with a role. A team
admin (or an admin) manages the members; whoever creates a team becomes its first admin."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.accounts.principal import Principal
from shared.accounts.users import user_by_reference
from shared.drive import check_segment
from shared.errors import Conflict, Forbidden, InvalidRequest, NotFound
from shared.states import TeamRole
from shared.store.models import Team, TeamMember, User


def check_team_name(name: str) -> str:
    if not isinstance(name, str) or name != name.strip():
        raise InvalidRequest("a team name cannot start or end with spaces")
    check_segment(name, what="a team name")
    if name.startswith("."):
        raise InvalidRequest("a team name cannot start with '.'")
    return name


def parse_role(role: str) -> TeamRole:
    try:
        return TeamRole(role)
    except ValueError:
        raise InvalidRequest(f"role {role!r} is not one of {', '.join(TeamRole)}") from None


def _check_name_free(session: Session, name: str, team_id: str | None = None) -> None:
    taken = session.scalar(select(Team.id).where(Team.name == name))
    if taken is not None and taken != team_id:
        raise Conflict(f"a team named {name!r} already exists")
    # A team's name is a drive space, so it cannot be a username too.
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise Conflict(f"{name!r} is a username: choose another team name")


def create_team(
    session: Session,
    principal: Principal,
    name: str,
    members: list[tuple[str, TeamRole]] = (),
) -> Team:
    """A new team with its creator as admin and ``members`` (user references and roles)."""
    check_team_name(name)
    _check_name_free(session, name)
    team = Team(name=name)
    session.add(team)
    session.flush()
    roles = {principal.user_id: TeamRole.ADMIN}
    for reference, role in members:
        roles[user_by_reference(session, reference).id] = role
    session.add_all(
        TeamMember(team_id=team.id, user_id=user_id, role=role) for user_id, role in roles.items()
    )
    session.flush()
    return team


def role_in(session: Session, team_id: str, user_id: int) -> TeamRole | None:
    return session.scalar(
        select(TeamMember.role).where(TeamMember.team_id == team_id, TeamMember.user_id == user_id)
    )


def get_team_for(session: Session, principal: Principal, team_id: str) -> Team:
    """The team, if the caller is a member or an admin; any other team is missing."""
    team = session.get(Team, team_id)
    if team is None or (
        not principal.is_admin and role_in(session, team_id, principal.user_id) is None
    ):
        raise NotFound(f"no team with id {team_id!r}")
    return team


def managed_team(session: Session, principal: Principal, team_id: str) -> Team:
    """The team, if the caller may manage it (its admin or an admin): 403 for its members."""
    team = get_team_for(session, principal, team_id)
    if not principal.is_admin and role_in(session, team_id, principal.user_id) != TeamRole.ADMIN:
        raise Forbidden(f"only an admin of team {team.name!r} can change it")
    return team


def teams_for(session: Session, principal: Principal) -> list[Team]:
    query = select(Team).order_by(Team.name)
    if not principal.is_admin:
        query = query.join(TeamMember, TeamMember.team_id == Team.id).where(
            TeamMember.user_id == principal.user_id
        )
    return list(session.scalars(query))


def members_of(session: Session, team_ids: list[str]) -> dict[str, list[tuple[User, TeamRole]]]:
    found: dict[str, list[tuple[User, TeamRole]]] = {team_id: [] for team_id in team_ids}
    rows = session.execute(
        select(TeamMember.team_id, User, TeamMember.role)
        .join(User, User.id == TeamMember.user_id)
        .where(TeamMember.team_id.in_(team_ids))
        .order_by(User.username)
    )
    for team_id, user, role in rows:
        found[team_id].append((user, role))
    return found


def rename_team(session: Session, team: Team, name: str) -> str:
    """Rename ``team``; the old name, whose drive space the caller moves."""
    check_team_name(name)
    _check_name_free(session, name, team.id)
    old, team.name = team.name, name
    session.flush()
    return old


def set_member(session: Session, team: Team, reference: str, role: TeamRole) -> tuple[User, bool]:
    """Add the user or change their role; the user, and whether they are new to the team."""
    user = user_by_reference(session, reference)
    member = session.get(TeamMember, (team.id, user.id))
    if member is None:
        session.add(TeamMember(team_id=team.id, user_id=user.id, role=role))
        session.flush()
        return user, True
    if member.role == TeamRole.ADMIN and role != TeamRole.ADMIN:
        _keep_an_admin(session, team, user)
    member.role = role
    session.flush()
    return user, False


def remove_member(session: Session, team: Team, reference: str) -> None:
    user = user_by_reference(session, reference)
    member = session.get(TeamMember, (team.id, user.id))
    if member is None:
        raise NotFound(f"{user.username!r} is not a member of team {team.name!r}")
    if member.role == TeamRole.ADMIN:
        _keep_an_admin(session, team, user)
    session.delete(member)
    session.flush()


def _keep_an_admin(session: Session, team: Team, leaving: User) -> None:
    admins = session.scalar(
        select(func.count())
        .select_from(TeamMember)
        .where(TeamMember.team_id == team.id, TeamMember.role == TeamRole.ADMIN)
    )
    if admins <= 1:
        raise Conflict(
            f"{leaving.username!r} is the last admin of team {team.name!r}: "
            "make another member admin first"
        )
