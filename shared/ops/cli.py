"""`flowbin`, the operator's command line.

Commands that create a secret print it alone on stdout, so scripts can capture it with
`TOKEN=$(flowbin users create alice)`; everything meant for a person goes to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from shared import users
from shared.config import Settings
from shared.drive import Drive
from shared.errors import FlowbinError
from shared.ops import stack
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
def create_user_command(username: str, admin: bool) -> None:
    """Create USERNAME with a drive folder and a first token (printed on stdout)."""
    settings = _migrated_settings()
    with db.session_scope(settings.sql_url) as session:
        users.create_user(session, username, is_admin=admin)
        token = users.create_token(session, username, name="first token")
    Drive(settings.drive_root).user_home(username)
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
        token = users.create_token(session, username, name=label)
    click.echo(f"New token for {username!r} (shown only once) follows.", err=True)
    click.echo(token)


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
