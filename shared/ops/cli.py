"""`flowbin`, the operator's command line.

Commands that create a secret print it alone on stdout, so scripts can capture it with
`TOKEN=$(flowbin users create alice)`; everything meant for a person goes to stderr.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from shared.accounts import credentials, teams, users
from shared.accounts.principal import Principal
from shared.config import Settings
from shared.drive import Drive
from shared.errors import FlowbinError
from shared.ops import stack
from shared.states import Permission, TeamRole
from shared.storage.locate import drive_storage
from shared.store import db, migrate


class _FlowbinGroup(click.Group):
    """Turns FlowbinError (and bad settings) into a one-line message and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FlowbinError as exc:
            raise click.ClickException(exc.msg) from exc


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def _migrated_settings() -> Settings:
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.sql_url)
    return settings


@click.group(cls=_FlowbinGroup)
def main() -> None:
    """Flowbin: run document and data flows as jobs over HTTP."""


@main.command("migrate")
def migrate_command() -> None:
    """Bring the database to the newest schema (and the FLOWBIN_ADMIN_TOKEN admin, if set)."""
    settings = _migrated_settings()
    click.echo("The database is at the newest schema.", err=True)
    # Deployments without `flowbin up` (docker-compose.yml) bootstrap their admin here.
    if settings.admin_token:
        stack.ensure_admin_user(settings, settings.admin_token)
        click.echo(f"Admin user {users.ADMIN_USERNAME!r} accepts FLOWBIN_ADMIN_TOKEN.", err=True)


@main.group("users")
def users_group() -> None:
    """Manage users."""


@users_group.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Let this user see and act on every user's jobs.")
@click.option(
    "--email",
    default=None,
    metavar="EMAIL",
    help="The user's email (unique; another way to name them).",
)
def create_user_command(username: str, admin: bool, email: str | None) -> None:
    """Create USERNAME with a drive folder and a first token (printed on stdout)."""
    settings = _migrated_settings()
    with db.session_scope(settings.sql_url) as session:
        users.create_user(session, username, is_admin=admin, email=email)
        token = credentials.create_token(session, username, name="first token")
    Drive(drive_storage(settings)).space_home(username)
    kind = "admin user" if admin else "user"
    click.echo(f"Created {kind} {username!r}; its token (shown only once) follows.", err=True)
    click.echo(token)


@main.group("tokens")
def tokens_group() -> None:
    """Manage API tokens."""


@tokens_group.command("create")
@click.argument("username")
@click.option("--name", "label", default="", help="A label to tell this token apart later.")
def create_token_command(username: str, label: str) -> None:
    """Create a new token for the existing USERNAME (printed on stdout)."""
    settings = _migrated_settings()
    with db.session_scope(settings.sql_url) as session:
        token = credentials.create_token(session, username, name=label)
    click.echo(f"New token for {username!r} (shown only once) follows.", err=True)
    click.echo(token)


@main.group("teams")
def teams_group() -> None:
    """Manage teams."""


def _parse_member(value: str) -> tuple[str, TeamRole]:
    """``USER[:ROLE]`` (a username, email or user id; the role is member unless given)."""
    reference, colon, role = value.rpartition(":")
    if not colon:
        return value, TeamRole.MEMBER
    return reference, teams.parse_role(role)


@teams_group.command("create")
@click.argument("name")
@click.option(
    "--member",
    "members",
    multiple=True,
    metavar="USER[:ROLE]",
    help="A member: a username, email or user id, and admin, member (default) or viewer. "
    "Repeat it; at least one member must be an admin.",
)
def create_team_command(name: str, members: tuple[str, ...]) -> None:
    """Create the team NAME (also its drive space) with its members; print its id on stdout."""
    parsed = [_parse_member(value) for value in members]
    settings = _migrated_settings()
    with db.session_scope(settings.sql_url) as session:
        resolved = []
        seen: dict[int, str] = {}
        for (reference, role), value in zip(parsed, members, strict=True):
            user = users.user_by_reference(session, reference)
            if user.id in seen:
                raise click.ClickException(
                    f"{user.username!r} is given twice ({seen[user.id]!r} and {value!r}): "
                    "give each member once"
                )
            seen[user.id] = value
            resolved.append((user, role))
        admins = [user for user, role in resolved if role == TeamRole.ADMIN]
        if not admins:
            raise click.ClickException(
                f"team {name!r} needs an admin: give one `--member USER:admin`"
            )
        # No one calls the CLI as a user: the first admin member stands in as the creator.
        creator = Principal(admins[0].id, admins[0].username, False)
        team = teams.create_team(
            session, creator, name, [(user.uuid, role) for user, role in resolved]
        )
        team_id = team.id
    Drive(drive_storage(settings)).space_home(name)
    listed = ", ".join(f"{user.username} ({role})" for user, role in resolved)
    click.echo(f"Created team {name!r} with {listed}; its id follows.", err=True)
    click.echo(team_id)


@main.group("keys")
def keys_group() -> None:
    """Manage API keys."""


def _parse_expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        expires_at = datetime.fromisoformat(value)
    except ValueError:
        raise click.ClickException(
            f"--expires-at {value!r} is not an ISO 8601 time like '2030-01-31T12:00:00Z'"
        ) from None
    # A time without a zone is UTC, as everywhere in Flowbin.
    if expires_at.tzinfo is None:
        return expires_at.replace(tzinfo=UTC)
    return expires_at.astimezone(UTC)


@keys_group.command("create")
@click.argument("user")
@click.option("--name", "label", required=True, help="A name to tell this key apart later.")
@click.option(
    "--permission",
    "permission_names",
    multiple=True,
    metavar="PERMISSION",
    help="What the key may do: " + ", ".join(Permission) + ". Repeat it for more than one.",
)
@click.option(
    "--expires-at",
    default=None,
    metavar="ISO8601",
    help="When the key stops working (a time without a zone is UTC); default: never.",
)
def create_key_command(
    user: str, label: str, permission_names: tuple[str, ...], expires_at: str | None
) -> None:
    """Create an API key of USER (a username, email or user id); print it on stdout."""
    permissions = credentials.parse_permissions(list(permission_names))
    expiry = _parse_expiry(expires_at)
    settings = _migrated_settings()
    with db.session_scope(settings.sql_url) as session:
        owner = users.user_by_reference(session, user)
        row, key = credentials.create_key(session, owner.id, label, permissions, expiry)
        key_id, username, granted = row.key_id, owner.username, list(row.permissions)
    until = f", expiring {expiry.isoformat()}" if expiry else ""
    click.echo(
        f"Created API key {key_id} of {username!r} with {', '.join(granted)}{until}; "
        "the key (shown only once) follows.",
        err=True,
    )
    click.echo(key)


@main.command("up")
@click.option(
    "--workers",
    "concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Worker concurrency (default: FLOWBIN_WORKER_CONCURRENCY, else 2).",
)
@click.option(
    "--procfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The Procfile to run (default: ./Procfile, else the checkout's).",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Print every process's output on the console too, not only in <data dir>/logs.",
)
def up_command(concurrency: int | None, procfile: Path | None, verbose: bool) -> None:
    """Run the whole stack (API, workers, beat, Flower, embedded Redis) until Ctrl-C."""
    sys.exit(stack.up(_settings(), procfile=procfile, concurrency=concurrency, verbose=verbose))
