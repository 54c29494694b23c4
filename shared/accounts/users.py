"""Users: a username (which is also their drive space), a UUID the API shows, an optional
unique email, and whether they are an admin."""

from __future__ import annotations

import re

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.errors import Conflict, InvalidRequest, NotFound
from shared.store.models import Team, User

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Enough to catch a typo (a missing '@' or domain); the mail server is the real judge.
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MAX_EMAIL = 254
ADMIN_USERNAME = "admin"


def check_email(email: str) -> str:
    if len(email) > MAX_EMAIL or not EMAIL.match(email):
        raise InvalidRequest(f"email {email!r} is not an email address like 'alice@example.com'")
    return email


def create_user(
    session: Session, username: str, *, is_admin: bool = False, email: str | None = None
) -> User:
    if not USERNAME.match(username):
        raise InvalidRequest(
            f"username {username!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists")
    # A username is a drive space, so it cannot be a team's too.
    if session.scalar(select(Team.id).where(Team.name == username)) is not None:
        raise Conflict(f"{username!r} is the name of a team: choose another username")
    if email is not None:
        check_email(email)
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            raise Conflict(f"another user already has the email {email!r}")
    user = User(username=username, is_admin=is_admin, email=email)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def user_by_reference(session: Session, reference: str) -> User:
    """The user a request names by UUID, email or username, or NotFound."""
    user = session.scalar(
        select(User).where(
            or_(User.uuid == reference, User.email == reference, User.username == reference)
        )
    )
    if user is None:
        raise NotFound(f"no user {reference!r} (give a username, an email or a user id)")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))
