"""A job's collaboration (seed 002): the teams and users it is shared with, each with the step
ids of the job's flow they work on, or ``"*"`` for every step and control of the job.

Requests name teams by id or name and users by id, email or username; the store keeps one row
per collaborator (``JobShare``), and answers show each with all of its names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Select, delete, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from shared.accounts.access import ALL_STEPS
from shared.accounts.users import user_by_reference
from shared.errors import InvalidRequest, NotFound
from shared.store.models import JobShare, Team, User
from shared.store.sets import among

EMPTY = {"teams": [], "users": []}


@dataclass(frozen=True)
class Collaborator:
    steps: tuple[str, ...]
    team_id: str | None = None
    user_id: int | None = None


def resolve(session: Session, collaboration: dict, step_ids: Iterable[str]) -> list[Collaborator]:
    """The collaborators a request's ``collaboration`` names, checked against the job's
    ``step_ids``: an unknown team, user or step id is a 400 that names it."""
    known_steps = list(step_ids)
    found: dict[tuple[str, object], Collaborator] = {}
    for index, entry in enumerate(collaboration.get("teams") or ()):
        team = _team(session, entry, f"collaboration.teams[{index}]")
        steps = _steps(entry, known_steps, f"collaboration.teams[{index}]")
        found[("team", team.id)] = Collaborator(steps=steps, team_id=team.id)
    for index, entry in enumerate(collaboration.get("users") or ()):
        where = f"collaboration.users[{index}]"
        reference = entry.get("id") or entry.get("email") or entry.get("username")
        if not reference:
            raise InvalidRequest(f"{where} names no user: give its id, email or username")
        try:
            user = user_by_reference(session, reference)
        except NotFound as error:  # a 400 here: the request body names the user
            raise InvalidRequest(f"{where}: {error}") from None
        steps = _steps(entry, known_steps, where)
        found[("user", user.id)] = Collaborator(steps=steps, user_id=user.id)
    return list(found.values())


def _team(session: Session, entry: dict, where: str) -> Team:
    if entry.get("id"):
        team = session.get(Team, entry["id"])
        reference = entry["id"]
    elif entry.get("name"):
        team = session.scalar(select(Team).where(Team.name == entry["name"]))
        reference = entry["name"]
    else:
        raise InvalidRequest(f"{where} names no team: give its id or name")
    if team is None:
        raise InvalidRequest(f"{where}: no team {reference!r}")
    return team


def _steps(entry: dict, known: list[str], where: str) -> tuple[str, ...]:
    steps = list(dict.fromkeys(entry.get("steps") or ()))
    if not steps:
        raise InvalidRequest(f"{where}.steps is empty: list step ids of the flow, or '*'")
    if ALL_STEPS in steps:
        return (ALL_STEPS,)
    unknown = [step for step in steps if step not in known]
    if unknown:
        raise InvalidRequest(
            f"{where}.steps: unknown step id(s) {', '.join(map(repr, unknown))}; the job's "
            f"steps are {', '.join(map(repr, known)) or 'none'} (or '*' for all)"
        )
    return tuple(steps)


def share_rows(job_id: str, collaborators: list[Collaborator]) -> list[dict]:
    """The ``job_shares`` rows of ``collaborators``, for a Core insert."""
    return [
        {
            "job_id": job_id,
            "team_id": c.team_id,
            "user_id": c.user_id,
            "steps": list(c.steps),
            "controls": c.steps == (ALL_STEPS,),
        }
        for c in collaborators
    ]


def share(session: Session, job_id: str, collaborators: list[Collaborator]) -> None:
    """Replace the job's collaborators with ``collaborators``."""
    session.execute(delete(JobShare).where(JobShare.job_id == job_id))
    if collaborators:
        session.execute(insert(JobShare), share_rows(job_id, collaborators))


def collaboration_of(session: Session, job_ids: list[str]) -> dict[str, dict]:
    """Each job's collaboration as answers show it: teams with id and name, users with id,
    username and email, each with its steps."""
    shown: dict[str, dict] = {job_id: {"teams": [], "users": []} for job_id in job_ids}
    if not job_ids:
        return shown
    rows = session.execute(
        shares_shown(JobShare.job_id, JobShare.steps)
        .where(among(session, JobShare.job_id, job_ids))
        .order_by(JobShare.id)
    )
    for job_id, steps, team_id, team_name, user_id, username, email in rows:
        show_share(shown[job_id], steps, team_id, team_name, user_id, username, email)
    return shown


def shares_shown(*leading: ColumnElement) -> Select:
    """``leading``, then each share's team (id, name) and user (uuid, username, email), one
    of them NULL: the columns ``show_share`` takes after a share's steps."""
    return (
        select(*leading, Team.id, Team.name, User.uuid, User.username, User.email)
        .outerjoin(Team, Team.id == JobShare.team_id)
        .outerjoin(User, User.id == JobShare.user_id)
    )


def show_share(
    shown: dict,
    steps: list,
    team_id: str | None,
    team_name: str | None,
    user_id: str | None,
    username: str | None,
    email: str | None,
) -> None:
    """Add one share (a row of job_shares with its team's or its user's columns) to a job's
    collaboration as answers show it (``collaboration_of``)."""
    if team_id is not None:
        shown["teams"].append({"id": team_id, "name": team_name, "steps": steps})
    else:
        shown["users"].append({"id": user_id, "username": username, "email": email, "steps": steps})
