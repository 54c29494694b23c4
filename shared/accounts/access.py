"""The one place that decides who may do what: to a drive path (by its space) and to a job (by
owner, collaboration and review). Every endpoint, v1 and v2, asks here; no view decides alone.

The rules (docs/teams-and-sharing.md):
- A path's first segment is its space. A user writes their own space and the spaces of teams
  they are a member or admin of, reads the spaces of teams they view, and sees any other space
  as missing (404), exactly like a path that does not exist. Admins may do anything.
- A job is seen and controlled by its owner and admins. Its collaborators (users, and the
  members of teams, named in its collaboration) see it; with a step id they may also read that
  step's outputs and review the records stopped at it; with ``"*"`` every step, the whole
  output folder, and control (pause, resume, cancel, retry, tags). Its assigned reviewer sees
  it and reviews every step. Only the owner and admins change who it is shared with.
- Anyone else gets a 404 for the job: a job they may not see does not exist for them. One they
  see but may not act on as asked is a 403 that says who may.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sqlalchemy import Connection, func, literal, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from shared.accounts.principal import Principal
from shared.config import Settings
from shared.drive import Drive
from shared.errors import Forbidden, InvalidRequest, NotFound
from shared.states import TeamRole
from shared.storage.locate import drive_storage
from shared.store.db import connection_of, statement_scope
from shared.store.models import Job, JobShare, Team, TeamMember

ALL_STEPS = "*"


# -- spaces -----------------------------------------------------------------------------------
class SpaceRight(enum.IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2


def space_right(store: Session | Connection, principal: Principal, space: str) -> SpaceRight:
    if principal.is_admin or space == principal.username:
        return SpaceRight.WRITE
    role = connection_of(store).scalar(
        select(TeamMember.role)
        .join(Team, Team.id == TeamMember.team_id)
        .where(Team.name == space, TeamMember.user_id == principal.user_id)
    )
    if role is None:
        return SpaceRight.NONE
    return SpaceRight.READ if role == TeamRole.VIEWER else SpaceRight.WRITE


def missing_path(relative: str, principal: Principal) -> NotFound:
    return NotFound(
        f"no such drive path {relative!r}: your paths start with '{principal.username}/' "
        "or the name of a team you belong to"
    )


class StoreGuard:
    """The drive's guard (shared/drive.py ``SpaceGuard``), deciding from the store."""

    def __init__(self, sql_url: str):
        self.sql_url = sql_url

    def check(self, principal: Principal, relative: str, *, write: bool) -> None:
        space = relative.split("/", 1)[0]
        if principal.is_admin or space == principal.username:
            return  # no query for the common case
        with statement_scope(self.sql_url, read_only=True) as conn:
            right = space_right(conn, principal, space)
            if right == SpaceRight.NONE and not write and shared_output(conn, principal, relative):
                return
        if right == SpaceRight.NONE:
            raise missing_path(relative, principal)
        if write and right == SpaceRight.READ:
            raise Forbidden(
                f"you are a viewer of team {space!r}: viewers read the team's space but "
                "cannot change it; ask a team admin to make you a member"
            )


def drive_for(settings: Settings) -> Drive:
    """The drive as callers see it: every path they give is checked here."""
    return Drive(drive_storage(settings), StoreGuard(settings.sql_url))


_STEP_FOLDER = re.compile(r"^\d+_(.+)$")


def shared_output(conn: Connection, principal: Principal, relative: str) -> bool:
    """Whether ``relative`` lies in the output of a job shared with the caller, in a part it may
    read: a step's folder (``steps/NN_<step id>``) for a step it has, anything with ``"*"``."""
    jobs = Job.__table__
    shares = JobShare.__table__
    prefix_length = func.length(jobs.c.output_dir)
    rows = conn.execute(
        select(jobs.c.output_dir, shares.c.steps)
        .join(shares, shares.c.job_id == jobs.c.id)
        .where(
            _shared_with(principal, shares),
            jobs.c.output_dir != "",
            func.substr(literal(relative + "/"), 1, prefix_length + 1) == jobs.c.output_dir + "/",
        )
    )
    for output_dir, steps in rows:
        if ALL_STEPS in steps:
            return True
        rest = relative[len(output_dir) + 1 :].split("/")
        if len(rest) >= 2 and rest[0] == "steps":
            match = _STEP_FOLDER.match(rest[1])
            if match and match.group(1) in steps:
                return True
    return False


# -- jobs -------------------------------------------------------------------------------------
class JobNeed(enum.Enum):
    VIEW = "view"  # status, logs, lists, deliveries
    CONTROL = "control"  # pause, resume, cancel, retry, tags, redeliver
    SHARE = "share"  # change the collaboration
    REVIEW = "review"  # records stopped at checkpoints (per step: JobGrant.covers)


@dataclass(frozen=True)
class JobGrant:
    """What a principal may do to one job."""

    steps: frozenset[str] | None  # the steps it works on; None: every step
    controls: bool
    shares: bool  # owner or admin

    def covers(self, step_id: str) -> bool:
        return self.steps is None or step_id in self.steps


OWNER = JobGrant(steps=None, controls=True, shares=True)
REVIEWER = JobGrant(steps=None, controls=False, shares=False)


def _my_teams(principal: Principal):
    return select(TeamMember.team_id).where(TeamMember.user_id == principal.user_id)


def _shared_with(principal: Principal, shares=None) -> ColumnElement[bool]:
    shares = shares if shares is not None else JobShare.__table__
    return or_(shares.c.user_id == principal.user_id, shares.c.team_id.in_(_my_teams(principal)))


def grant_on(session: Session, principal: Principal, job: Job) -> JobGrant | None:
    if principal.is_admin or job.owner_id == principal.user_id:
        return OWNER
    steps: set[str] = set()
    controls = False
    shares = JobShare.__table__
    for row in session.execute(
        select(shares.c.steps, shares.c.controls).where(
            shares.c.job_id == job.id, _shared_with(principal, shares)
        )
    ):
        steps.update(row.steps)
        controls = controls or row.controls
    if controls:
        return JobGrant(steps=None, controls=True, shares=False)
    if job.reviewer and job.reviewer == principal.username:
        return REVIEWER
    if steps:
        return JobGrant(steps=frozenset(steps), controls=False, shares=False)
    return None


def get_job_for(
    session: Session, principal: Principal, job_id: str | None, need: JobNeed = JobNeed.VIEW
) -> Job:
    """The job, if the caller may do ``need`` to it; a job it may not see is missing (404),
    one it sees but may not act on so is a 403."""
    job, _ = job_and_grant(session, principal, job_id, need)
    return job


def job_and_grant(
    session: Session, principal: Principal, job_id: str | None, need: JobNeed = JobNeed.VIEW
) -> tuple[Job, JobGrant]:
    if not job_id:
        raise InvalidRequest("job_id is required")
    return checked_grant(session, principal, job_id, session.get(Job, job_id), need)


def checked_grant(
    session: Session, principal: Principal, job_id: str, job: Job | None, need: JobNeed
) -> tuple[Job, JobGrant]:
    """``job_and_grant`` for a job the caller read itself (None: it does not exist)."""
    grant = grant_on(session, principal, job) if job is not None else None
    if grant is None:
        raise NotFound(f"no job with id {job_id!r}")
    if need == JobNeed.CONTROL and not grant.controls:
        why = (
            "you are its reviewer"
            if grant is REVIEWER
            else "it is shared with you for some steps only"
        )
        raise Forbidden(
            f"you may see job {job_id!r}, but not control it ({why}): its owner, an admin or "
            "a collaborator on every step ('*') can"
        )
    if need == JobNeed.SHARE and not grant.shares:
        raise Forbidden(f"only the owner of job {job_id!r} or an admin can change who shares it")
    return job, grant


def visible_jobs(principal: Principal) -> ColumnElement[bool] | None:
    """The condition on Job for the jobs the caller sees (None: every job)."""
    if principal.is_admin:
        return None
    shared = select(JobShare.job_id).where(_shared_with(principal))
    return or_(
        Job.owner_id == principal.user_id,
        Job.reviewer == principal.username,
        Job.id.in_(shared),
    )


def controlled_jobs(principal: Principal) -> ColumnElement[bool] | None:
    """The condition on Job for the jobs the caller controls (None: every job)."""
    if principal.is_admin:
        return None
    shared = select(JobShare.job_id).where(JobShare.controls, _shared_with(principal))
    return or_(Job.owner_id == principal.user_id, Job.id.in_(shared))
