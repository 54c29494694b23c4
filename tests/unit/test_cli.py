"""The `flowbin` CLI and the parts of `flowbin up` that run before honcho takes over.

The whole stack (`flowbin up` with the real Procfile) is tested end to end in tests/e2e.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from shared.accounts.credentials import authenticate, hash_token, identify
from shared.config import Settings
from shared.errors import InvalidRequest
from shared.ops import stack
from shared.ops.cli import main
from shared.states import Permission, TeamRole
from shared.store.db import session_scope
from shared.store.models import ApiToken, Team, TeamMember, User

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token-0123456789"


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A fresh SQLite store under a temp data folder, whatever the caller's environment says."""
    return {
        "FLOWBIN_DATA_DIR": str(tmp_path / "var"),
        "FLOWBIN_DATABASE_URL": "",
        "FLOWBIN_DRIVE_DIR": "",
        "FLOWBIN_REDIS_URL": "",
        "FLOWBIN_ADMIN_TOKEN": "",
        "FLOWBIN_FLOWER_PASSWORD": "",
    }


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, list(args), env=env)


def principal(env: dict[str, str], token: str):
    with session_scope(Settings.from_env(env).sql_url) as session:
        return authenticate(session, token)


def stored_hashes(env: dict[str, str]) -> list[tuple[str, str]]:
    with session_scope(Settings.from_env(env).sql_url) as session:
        return [(row.token_hash, row.name) for row in session.scalars(select(ApiToken))]


def test_users_create_prints_a_working_token_alone_on_stdout(env):
    result = run(env, "users", "create", "alice")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    assert "alice" in result.stderr
    found = principal(env, token)
    assert (found.username, found.is_admin) == ("alice", False)
    assert stored_hashes(env) == [(hash_token(token), "first token")]
    assert token not in stored_hashes(env)[0][0]
    assert (Settings.from_env(env).drive_root / "alice").is_dir()


def test_users_create_admin(env):
    result = run(env, "users", "create", "root", "--admin")
    assert result.exit_code == 0, result.output
    assert principal(env, result.stdout.strip()).is_admin is True


def test_tokens_create_adds_a_labelled_token_for_an_existing_user(env):
    first = run(env, "users", "create", "alice").stdout.strip()
    result = run(env, "tokens", "create", "alice", "--name", "ci")
    assert result.exit_code == 0, result.output
    second = result.stdout.strip()
    assert second != first
    assert principal(env, second).username == "alice"
    assert principal(env, first).username == "alice"
    assert (hash_token(second), "ci") in stored_hashes(env)


@pytest.mark.parametrize(
    "args, message",
    [
        (("tokens", "create", "nobody"), "no user 'nobody'"),
        (("users", "create", "bad name"), "is not valid"),
    ],
)
def test_errors_are_one_line_on_stderr_without_traceback(env, args, message):
    result = run(env, *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_duplicate_user_is_an_error(env):
    assert run(env, "users", "create", "alice").exit_code == 0
    result = run(env, "users", "create", "alice")
    assert result.exit_code == 1
    assert "already exists" in result.stderr


def test_bad_setting_is_an_error_not_a_traceback(env):
    result = run({**env, "FLOWBIN_API_PORT": "eighty"}, "migrate")
    assert result.exit_code == 1
    assert "FLOWBIN_API_PORT must be an integer" in result.stderr


def test_migrate_creates_the_store_and_the_env_admin(env):
    result = run({**env, "FLOWBIN_ADMIN_TOKEN": ADMIN_TOKEN}, "migrate")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    found = principal(env, ADMIN_TOKEN)
    assert (found.username, found.is_admin) == ("admin", True)


def test_users_create_stores_the_email(env):
    result = run(env, "users", "create", "alice", "--email", "alice@example.com")
    assert result.exit_code == 0, result.output
    assert principal(env, result.stdout.strip()).username == "alice"
    with session_scope(Settings.from_env(env).sql_url) as session:
        rows = session.execute(select(User.username, User.email)).all()
    assert [tuple(row) for row in rows] == [("alice", "alice@example.com")]


@pytest.mark.parametrize(
    "email, message",
    [
        ("not-an-email", "is not an email address"),
        ("alice@example.com", "already has the email 'alice@example.com'"),
    ],
)
def test_users_create_refuses_a_bad_or_taken_email(env, email, message):
    assert run(env, "users", "create", "alice", "--email", "alice@example.com").exit_code == 0
    result = run(env, "users", "create", "bob", "--email", email)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""
    with session_scope(Settings.from_env(env).sql_url) as session:
        assert session.scalars(select(User.username)).all() == ["alice"]


# --- flowbin teams -----------------------------------------------------------------------------


def make_users(env: dict[str, str], *names: str) -> None:
    for name in names:
        result = run(env, "users", "create", name, "--email", f"{name}@example.com")
        assert result.exit_code == 0, result.output


def user_uuid(env: dict[str, str], username: str) -> str:
    with session_scope(Settings.from_env(env).sql_url) as session:
        return session.scalar(select(User.uuid).where(User.username == username))


def teams_and_roles(env: dict[str, str]) -> dict[tuple[str, str], dict[str, TeamRole]]:
    """{(team id, team name): {username: role}} for every team in the store."""
    found: dict[tuple[str, str], dict[str, TeamRole]] = {}
    with session_scope(Settings.from_env(env).sql_url) as session:
        for team in session.scalars(select(Team)):
            found[(team.id, team.name)] = {}
        rows = session.execute(
            select(Team.id, Team.name, User.username, TeamMember.role)
            .join(TeamMember, TeamMember.team_id == Team.id)
            .join(User, User.id == TeamMember.user_id)
        )
        for team_id, name, username, role in rows:
            found[(team_id, name)][username] = role
    return found


def test_teams_create_with_members_by_username_email_and_id(env):
    make_users(env, "alice", "bob", "carol", "dave")
    result = run(
        env,
        "teams",
        "create",
        "Test Space",
        "--member",
        "bob",
        "--member",
        "carol@example.com:viewer",
        "--member",
        f"{user_uuid(env, 'alice')}:admin",
        "--member",
        "dave:member",
    )
    assert result.exit_code == 0, result.output
    team_id = result.stdout.strip()
    assert result.stdout == team_id + "\n"
    assert team_id
    assert "Test Space" in result.stderr
    assert teams_and_roles(env) == {
        (team_id, "Test Space"): {
            "alice": TeamRole.ADMIN,
            "bob": TeamRole.MEMBER,
            "carol": TeamRole.VIEWER,
            "dave": TeamRole.MEMBER,
        }
    }
    assert (Settings.from_env(env).drive_root / "Test Space").is_dir()


def test_teams_create_with_several_admins(env):
    make_users(env, "alice", "bob")
    result = run(env, "teams", "create", "ops", "--member", "bob:admin", "--member", "alice:admin")
    assert result.exit_code == 0, result.output
    assert teams_and_roles(env) == {
        (result.stdout.strip(), "ops"): {"alice": TeamRole.ADMIN, "bob": TeamRole.ADMIN}
    }


@pytest.mark.parametrize(
    "members, message",
    [
        (("alice:admin", "nobody"), "no user 'nobody'"),
        (("alice:admin", "bob:boss"), "role 'boss' is not one of admin, member, viewer"),
        (("alice", "bob:viewer"), "give one `--member USER:admin`"),
        ((), "give one `--member USER:admin`"),
        (("alice:admin", "alice@example.com"), "'alice' is given twice"),
    ],
)
def test_teams_create_refuses_bad_members(env, members, message):
    make_users(env, "alice", "bob")
    args = [word for member in members for word in ("--member", member)]
    result = run(env, "teams", "create", "Test Space", *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert teams_and_roles(env) == {}
    assert not (Settings.from_env(env).drive_root / "Test Space").exists()


def test_teams_create_refuses_a_taken_name(env):
    make_users(env, "alice", "bob")
    first = run(env, "teams", "create", "Test Space", "--member", "alice:admin")
    assert first.exit_code == 0, first.output
    result = run(env, "teams", "create", "Test Space", "--member", "bob:admin")
    assert result.exit_code == 1
    assert "a team named 'Test Space' already exists" in result.stderr
    assert result.stdout == ""
    assert teams_and_roles(env) == {(first.stdout.strip(), "Test Space"): {"alice": TeamRole.ADMIN}}


def test_teams_create_refuses_a_username_as_name(env):
    make_users(env, "alice", "bob")
    result = run(env, "teams", "create", "bob", "--member", "alice:admin")
    assert result.exit_code == 1
    assert "'bob' is a username" in result.stderr
    assert teams_and_roles(env) == {}


# --- flowbin keys ------------------------------------------------------------------------------


def identify_key(env: dict[str, str], key: str):
    with session_scope(Settings.from_env(env).sql_url) as session:
        return identify(session, "basic", key)[0]


def stored_key(env: dict[str, str], key: str) -> ApiToken:
    with session_scope(Settings.from_env(env).sql_url) as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(key)))
        session.expunge(row)
        return row


def test_keys_create_prints_a_key_with_exactly_the_given_permissions(env):
    make_users(env, "alice")
    result = run(
        env,
        "keys",
        "create",
        "alice@example.com",
        "--name",
        "ci",
        "--permission",
        "ViewJobs",
        "--permission",
        "ManageFiles",
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert result.stdout == key + "\n"
    found = identify_key(env, key)
    assert found.username == "alice"
    assert found.permissions == frozenset({Permission.VIEW_JOBS, Permission.MANAGE_FILES})
    assert found.may(Permission.VIEW_JOBS) and not found.may(Permission.MANAGE_JOBS)
    row = stored_key(env, key)
    assert (row.name, row.expires_at) == ("ci", None)
    assert row.key_id == found.key_id and row.key_id in result.stderr
    assert "ManageFiles, ViewJobs" in result.stderr
    assert key not in result.stderr


def test_keys_create_of_an_admin_with_admin_permission_acts_as_admin(env):
    assert run(env, "users", "create", "root", "--admin").exit_code == 0
    admin_key = run(env, "keys", "create", "root", "--name", "a", "--permission", "Admin")
    plain_key = run(env, "keys", "create", "root", "--name", "p", "--permission", "ViewJobs")
    assert identify_key(env, admin_key.stdout.strip()).is_admin is True
    assert identify_key(env, plain_key.stdout.strip()).is_admin is False


@pytest.mark.parametrize(
    "given, expected",
    [
        ("2999-01-31T12:00:00", datetime(2999, 1, 31, 12, tzinfo=UTC)),
        ("2999-01-31T14:00:00+02:00", datetime(2999, 1, 31, 12, tzinfo=UTC)),
        ("2999-01-31T12:00:00Z", datetime(2999, 1, 31, 12, tzinfo=UTC)),
    ],
)
def test_keys_create_expiry_is_utc_when_no_zone_is_given(env, given, expected):
    make_users(env, "alice")
    result = run(
        env,
        "keys",
        "create",
        "alice",
        "--name",
        "ci",
        "--permission",
        "ViewJobs",
        "--expires-at",
        given,
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert stored_key(env, key).expires_at == expected
    assert identify_key(env, key).username == "alice"


@pytest.mark.parametrize(
    "args, message",
    [
        (("--permission", "ViewJobs", "--permission", "Root"), "unknown permission 'Root'"),
        ((), "a key needs at least one permission"),
        (("--permission", "ViewJobs", "--expires-at", "next week"), "is not an ISO 8601 time"),
        (("--permission", "ViewJobs", "--expires-at", "2001-01-01"), "is in the past"),
    ],
)
def test_keys_create_refuses_bad_permissions_and_expiry(env, args, message):
    make_users(env, "alice")
    result = run(env, "keys", "create", "alice", "--name", "ci", *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert [name for _, name in stored_hashes(env)] == ["first token"]


def test_keys_create_names_all_known_permissions_for_an_unknown_one(env):
    make_users(env, "alice")
    result = run(env, "keys", "create", "alice", "--name", "ci", "--permission", "root")
    assert result.exit_code == 1
    assert all(permission.value in result.stderr for permission in Permission)


def test_keys_create_for_an_unknown_user(env):
    result = run(env, "keys", "create", "nobody", "--name", "ci", "--permission", "ViewJobs")
    assert result.exit_code == 1
    assert "no user 'nobody'" in result.stderr
    assert stored_hashes(env) == []


# --- flowbin up, before honcho -------------------------------------------------------------


def test_bootstrap_uses_flowbin_admin_token(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", admin_token=ADMIN_TOKEN)
    assert stack.bootstrap(settings) == ADMIN_TOKEN
    with session_scope(settings.sql_url) as session:
        found = authenticate(session, ADMIN_TOKEN)
    assert (found.username, found.is_admin) == ("admin", True)
    assert not (settings.data_dir / stack.ADMIN_TOKEN_FILE).exists()
    assert (settings.drive_root / "admin").is_dir()
    # A restart with the same token changes nothing and does not fail.
    assert stack.bootstrap(settings) == ADMIN_TOKEN


def test_bootstrap_generates_a_private_token_once_and_reuses_it(tmp_path):
    settings = Settings(data_dir=tmp_path / "var")
    token = stack.bootstrap(settings)
    token_file = settings.data_dir / stack.ADMIN_TOKEN_FILE
    assert token_file.read_text().strip() == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stack.bootstrap(settings) == token
    with session_scope(settings.sql_url) as session:
        assert authenticate(session, token).is_admin is True


def test_bootstrap_rejects_a_short_admin_token(tmp_path):
    with pytest.raises(InvalidRequest, match="at least 16"):
        stack.bootstrap(Settings(data_dir=tmp_path / "var", admin_token="short"))


def test_child_environment(tmp_path):
    settings = Settings(data_dir=Path("relative-var"), worker_concurrency=5)
    env = stack.child_environment(settings, "redis://127.0.0.1:6391/0", ADMIN_TOKEN)
    assert env["FLOWBIN_REDIS_URL"] == "redis://127.0.0.1:6391/0"
    assert env["FLOWBIN_ADMIN_TOKEN"] == ADMIN_TOKEN
    assert env["FLOWBIN_FLOWER_PASSWORD"] == ADMIN_TOKEN
    assert env["FLOWBIN_WORKER_CONCURRENCY"] == "5"
    assert Path(env["FLOWBIN_DATA_DIR"]).is_absolute()
    assert Path(env["FLOWBIN_DRIVE_DIR"]) == Path("relative-var/drive").resolve()
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    # A child built from this environment sees the same settings.
    child = Settings.from_env(env)
    assert child.redis_url == "redis://127.0.0.1:6391/0"
    assert child.sql_url == settings.sql_url
    # An explicit Flower password is kept.
    kept = stack.child_environment(
        Settings(flower_password="flower-secret"), "redis://x/0", ADMIN_TOKEN
    )
    assert kept["FLOWBIN_FLOWER_PASSWORD"] == "flower-secret"


def test_banner_lines_are_easy_to_parse():
    settings = Settings(api_host="0.0.0.0", api_port=8123, flower_port=5556)
    text = stack.banner(settings, ADMIN_TOKEN, "redis://127.0.0.1:6390/0")
    lines = text.splitlines()
    assert lines[0] == "Flowbin API: http://127.0.0.1:8123/api/v1"
    assert lines[1] == f"Admin token: {ADMIN_TOKEN}"
    assert "API docs: http://127.0.0.1:8123/docs" in lines
    assert re.search(r"^Flower: http://127\.0\.0\.1:5556 \(user admin", text, re.M)


# --- the Procfile ------------------------------------------------------------------------------


def procfile() -> dict[str, str]:
    return stack.load_procfile(REPO / "Procfile")


def expand(command: str, env: dict[str, str]) -> list[str]:
    """The argument words the shell makes of ``command`` (honcho runs commands with sh -c)."""
    result = subprocess.run(
        ["sh", "-c", 'printf "%s\\n" ' + command],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_procfile_names_the_four_processes(tmp_path, monkeypatch):
    assert list(procfile()) == ["api", "worker", "beat", "flower"]
    # Outside the checkout, `flowbin up` still finds the checkout's Procfile.
    monkeypatch.chdir(tmp_path)
    assert stack.find_procfile() == (REPO / "Procfile").resolve()


def test_procfile_commands_take_settings_from_the_environment(tmp_path):
    data = tmp_path / "a folder"
    env = {
        "FLOWBIN_API_HOST": "0.0.0.0",
        "FLOWBIN_API_PORT": "8123",
        "FLOWBIN_FLOWER_PORT": "5556",
        "FLOWBIN_WORKER_CONCURRENCY": "7",
        "FLOWBIN_LOG_LEVEL": "DEBUG",
        "FLOWBIN_DATA_DIR": str(data),
        "FLOWBIN_FLOWER_PASSWORD": "flower-secret",
    }
    commands = procfile()
    api = expand(commands["api"], env)
    assert api[:3] == ["gunicorn", "--bind", "0.0.0.0:8123"] and api[-1] == "api.wsgi:app"
    worker = expand(commands["worker"], env)
    # exec: the shell becomes the worker, so `flowbin up`'s SIGTERM reaches Celery's main
    # process itself (a warm shutdown), not a shell that would leave it running.
    assert worker[:5] == ["exec", "celery", "-A", "workers", "worker"]
    assert worker[worker.index("--concurrency") + 1] == "7"
    assert worker[worker.index("--loglevel") + 1] == "DEBUG"
    beat = expand(commands["beat"], env)
    assert beat[beat.index("--schedule") + 1] == f"{data}/celerybeat-schedule"
    flower = expand(commands["flower"], env)
    # The password goes through Flower's environment, not its command line.
    assert flower[0] == "FLOWER_BASIC_AUTH=admin:flower-secret"
    assert "--port=5556" in flower and f"--db={data}/flower.db" in flower


def test_procfile_defaults_and_flower_refuses_to_run_without_a_password():
    commands = procfile()
    assert "127.0.0.1:8000" in expand(commands["api"], {})
    result = subprocess.run(
        ["sh", "-c", 'printf "%s\\n" ' + commands["flower"]],
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
    )
    assert result.returncode != 0
    assert b"set FLOWBIN_FLOWER_PASSWORD" in result.stderr


def test_compose_file_describes_the_production_shape():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "migrate", "api", "worker", "beat", "flower"} <= set(services)
    # `docker compose up --scale worker=N` needs a worker without a fixed name or host port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    for name in ("migrate", "api", "worker", "beat"):
        env = services[name]["environment"]
        assert env["FLOWBIN_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["FLOWBIN_REDIS_URL"].startswith("redis://")
        # The drive is in the object store (tests/unit/test_compose_file.py): no shared folder.
        assert env["FLOWBIN_DRIVE_URL"].endswith("s3://flowbin}")
        assert "drive:/srv/flowbin/drive" not in services[name].get("volumes", [])
    assert services["migrate"]["command"] == ["flowbin", "migrate"]
