"""Migration 0007 (teams, API keys and job sharing) on a store with data in it, on SQLite and
PostgreSQL: users keep their ids, names and admin flag and each gets its own UUID and no email;
their jobs, files, tags and logs stay theirs; their old tokens authenticate as bearer tokens
with every permission; the new tables start empty; and a downgrade to 0006 and a second upgrade
keep all of it."""

import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from shared.accounts.credentials import authenticate, create_key, hash_token
from shared.accounts.principal import Principal
from shared.accounts.users import create_user
from shared.errors import Conflict
from shared.states import ALL_PERMISSIONS, Permission, TeamRole
from shared.store.db import engine_for, session_scope
from shared.store.migrate import alembic_config, upgrade
from shared.store.models import JobShare, Team, TeamMember
from tests.conftest import BACKENDS, fresh_database

# Ids well past 1: a user created after the migration (PostgreSQL's sequence never saw these
# explicit ids) must not collide with them.
USERS = {"alice": (11, False), "root": (12, True)}
TOKENS = {"alice": "fb_alice-old-bearer-token", "root": "fb_root-old-bearer-token"}
JOBS = {"alice": "job-of-alice", "root": "job-of-root"}
NEW_TABLES = ("teams", "team_members", "job_shares")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def tables_of(conn) -> dict:
    metadata = MetaData()
    metadata.reflect(conn)
    return metadata.tables


def seed(url: str) -> None:
    """Two users (one admin), a bearer token, and a job with a file, a tag and a log line each,
    written with the 0006 schema's own tables (reflected, not the current models)."""
    with engine_for(url).begin() as conn:
        tables = tables_of(conn)
        assert "uuid" not in tables["users"].c and "key_id" not in tables["api_tokens"].c
        for username, (user_id, admin) in USERS.items():
            job_id = JOBS[username]
            conn.execute(
                tables["users"].insert(),
                {"id": user_id, "username": username, "is_admin": admin, "created_at": NOW},
            )
            conn.execute(
                tables["api_tokens"].insert(),
                {
                    "user_id": user_id,
                    "token_hash": hash_token(TOKENS[username]),
                    "name": f"{username}'s token",
                    "created_at": NOW,
                },
            )
            conn.execute(
                tables["jobs"].insert(),
                {
                    "id": job_id,
                    "owner_id": user_id,
                    "kind": "flow",
                    "status": "succeeded",
                    "message": "Done",
                    "flow_type": "single_flow",
                    "binary_path": f"{username}/flow.bin",
                    "binary_hash": "h" * 64,
                    "input_dir": f"{username}/in",
                    "output_dir": f"{username}/out",
                    "settings": {"owner": username},
                    "priority": 3,
                    "step_timeout": 60,
                    "log_prefix": "",
                    "log_to_timeline": False,
                    "trace_id": "t" * 32,
                    "num_files": 1,
                    "num_steps": 1,
                    "files_done": 1,
                    "reviewer": "",
                    "review_state": "NONE",
                    "created_at": NOW,
                    "started_at": NOW,
                    "finished_at": NOW,
                },
            )
            conn.execute(
                tables["job_files"].insert(),
                {
                    "job_id": job_id,
                    "file_index": 0,
                    "file_name": f"{username}.txt",
                    "status": "succeeded",
                    "next_step": 1,
                    "attempts": 1,
                    "num_records": 5,
                    "num_errors": 0,
                    "num_checkpoint_failed": 0,
                    "num_filtered": 0,
                    "error_counts": {},
                    "updated_at": NOW,
                },
            )
            conn.execute(tables["job_tags"].insert(), {"job_id": job_id, "tag": f"tag-{username}"})
            conn.execute(
                tables["job_logs"].insert(),
                {
                    "job_id": job_id,
                    "task_id": "task-1",
                    "level": "INFO",
                    "ts": NOW,
                    "trace_id": "t" * 32,
                    "span_id": "s" * 16,
                    "message": f"hello from {username}",
                },
            )


@pytest.fixture(params=BACKENDS)
def old_store(request, tmp_path) -> str:
    """A store at 0006 with the users, tokens and jobs of ``seed`` in it."""
    url = fresh_database(request.param, tmp_path, schema="migration_accounts")
    upgrade(url, "0006")
    seed(url)
    return url


def head_revision(url: str) -> str:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def revision_of(url: str) -> str:
    with engine_for(url).connect() as conn:
        return conn.scalar(text("SELECT version_num FROM alembic_version"))


def assert_data_intact(url: str) -> None:
    """The seeded users, jobs, files, tags, logs and tokens, each still its owner's."""
    with engine_for(url).connect() as conn:
        t = tables_of(conn)
        users = t["users"]
        found = {
            row.username: (row.id, bool(row.is_admin))
            for row in conn.execute(select(users.c.username, users.c.id, users.c.is_admin))
        }
        assert {name: found[name] for name in USERS} == USERS
        jobs = conn.execute(
            select(
                t["jobs"].c.id,
                t["users"].c.username,
                t["jobs"].c.status,
                t["jobs"].c.settings,
                t["jobs"].c.priority,
                t["jobs"].c.binary_path,
            ).join(t["users"], t["users"].c.id == t["jobs"].c.owner_id)
        ).all()
        assert sorted(tuple(row) for row in jobs) == sorted(
            (JOBS[name], name, "succeeded", {"owner": name}, 3, f"{name}/flow.bin")
            for name in USERS
        )
        files = conn.execute(
            select(
                t["job_files"].c.job_id,
                t["job_files"].c.file_name,
                t["job_files"].c.status,
                t["job_files"].c.num_records,
                t["job_files"].c.error_counts,
            )
        ).all()
        assert sorted(tuple(row) for row in files) == sorted(
            (JOBS[name], f"{name}.txt", "succeeded", 5, {}) for name in USERS
        )
        tags = conn.execute(select(t["job_tags"].c.job_id, t["job_tags"].c.tag)).all()
        assert sorted(tuple(row) for row in tags) == sorted(
            (JOBS[name], f"tag-{name}") for name in USERS
        )
        logs = conn.execute(select(t["job_logs"].c.job_id, t["job_logs"].c.message)).all()
        assert sorted(tuple(row) for row in logs) == sorted(
            (JOBS[name], f"hello from {name}") for name in USERS
        )
        tokens = conn.execute(select(t["api_tokens"].c.user_id, t["api_tokens"].c.token_hash)).all()
        assert sorted(tuple(row) for row in tokens) == sorted(
            (USERS[name][0], hash_token(TOKENS[name])) for name in USERS
        )


def uuids_of(url: str) -> dict[str, str]:
    with engine_for(url).connect() as conn:
        rows = conn.execute(text("SELECT username, uuid, email FROM users")).all()
    assert all(row.email is None for row in rows if row.username in USERS)
    return {row.username: row.uuid for row in rows if row.username in USERS}


def assert_upgraded(url: str) -> dict[str, str]:
    """The checks of a store just brought to head; the users' uuids."""
    assert revision_of(url) == head_revision(url)
    assert_data_intact(url)
    uuids = uuids_of(url)
    assert set(uuids) == set(USERS)
    parsed = {name: uuid.UUID(value) for name, value in uuids.items()}
    assert all(str(value) == uuids[name] for name, value in parsed.items())
    assert len(set(parsed.values())) == len(USERS)
    with engine_for(url).connect() as conn:
        t = tables_of(conn)
        credentials = conn.execute(
            select(
                t["api_tokens"].c.key_id,
                t["api_tokens"].c.permissions,
                t["api_tokens"].c.expires_at,
                t["api_tokens"].c.last_used_at,
            )
        ).all()
        assert [tuple(row) for row in credentials] == [(None, None, None, None)] * len(USERS)
        for table in NEW_TABLES:
            assert table in t
            assert conn.scalar(select(func.count()).select_from(t[table])) == 0
    with session_scope(url, read_only=True) as session:
        for name, (user_id, admin) in USERS.items():
            principal = authenticate(session, TOKENS[name])
            assert isinstance(principal, Principal)
            assert (principal.user_id, principal.username, principal.is_admin) == (
                user_id,
                name,
                admin,
            )
            assert principal.permissions == ALL_PERMISSIONS
            assert principal.key_id is None
    return uuids


def test_the_migration_keeps_users_jobs_and_tokens_and_gives_each_user_a_uuid(old_store):
    upgrade(old_store)
    assert_upgraded(old_store)

    with session_scope(old_store) as session:
        carol = create_user(session, "carol", email="carol@example.com")
        carol_uuid = carol.uuid
    assert str(uuid.UUID(carol_uuid)) == carol_uuid
    assert carol_uuid not in uuids_of(old_store).values()

    with pytest.raises(Conflict), session_scope(old_store) as session:
        create_user(session, "dave", email="carol@example.com")
    # The unique index refuses it too, whatever code writes it.
    with pytest.raises(IntegrityError), engine_for(old_store).begin() as conn:
        conn.execute(text("UPDATE users SET email = 'carol@example.com' WHERE username = 'alice'"))
    with engine_for(old_store).connect() as conn:
        emails = dict(conn.execute(text("SELECT username, email FROM users")).all())
    assert emails == {"alice": None, "root": None, "carol": "carol@example.com"}


def test_a_downgrade_to_0006_and_a_second_upgrade_keep_the_data(old_store):
    upgrade(old_store)
    first = assert_upgraded(old_store)
    # The new tables with rows in them: the downgrade drops them anyway.
    with session_scope(old_store) as session:
        team = Team(name="editors")
        session.add(team)
        session.flush()
        session.add(TeamMember(team_id=team.id, user_id=USERS["alice"][0], role=TeamRole.ADMIN))
        session.add(JobShare(job_id=JOBS["root"], team_id=team.id, steps=["*"], controls=True))
        # A read-only key: kept past the downgrade, it would become a token with every right.
        create_key(session, USERS["alice"][0], "read-only", frozenset({Permission.VIEW_JOBS}))

    command.downgrade(alembic_config(old_store), "0006")
    assert revision_of(old_store) == "0006"
    assert_data_intact(old_store)
    with engine_for(old_store).connect() as conn:
        inspector = inspect(conn)
        assert not set(NEW_TABLES) & set(inspector.get_table_names())
        assert {c["name"] for c in inspector.get_columns("users")} == {
            "id",
            "username",
            "is_admin",
            "created_at",
        }
        assert {c["name"] for c in inspector.get_columns("api_tokens")} == {
            "id",
            "user_id",
            "token_hash",
            "name",
            "created_at",
        }

    upgrade(old_store)
    second = assert_upgraded(old_store)
    assert not set(first.values()) & set(second.values())
