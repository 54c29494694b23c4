"""teams, API keys and job sharing: user uuids and emails, teams and their members, keys as
credentials with permissions, and a job's collaborators

Users already in the store get a fresh UUID each and no email; their tokens stay valid (a row
without ``key_id`` is a bearer token, as every row was before).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 14:30:00
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("uuid", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("uuid", sa.String))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(users.c.id)).all():
        connection.execute(
            users.update().where(users.c.id == user_id).values(uuid=str(uuid.uuid4()))
        )
    # Unique indexes rather than constraints: SQLite adds those without rebuilding the users
    # table, which every other table refers to (a rebuild would fail their foreign keys).
    op.create_index("ix_users_uuid", "users", ["uuid"], unique=True)
    op.create_index("ix_users_email", "users", ["email"], unique=True)

    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("permissions", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_api_tokens_key_id", "api_tokens", ["key_id"], unique=True)

    op.create_table(
        "teams",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_teams_name"),
    )
    op.create_table(
        "team_members",
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("team_id", "user_id"),
    )
    op.create_index("ix_team_members_user_id", "team_members", ["user_id"])
    op.create_table(
        "job_shares",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=50), nullable=False),
        sa.Column("team_id", sa.String(length=36), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("controls", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "team_id", name="uq_job_shares_team"),
        sa.UniqueConstraint("job_id", "user_id", name="uq_job_shares_user"),
    )
    op.create_index("ix_job_shares_job_id", "job_shares", ["job_id"])
    op.create_index("ix_job_shares_team_id", "job_shares", ["team_id"])
    op.create_index("ix_job_shares_user_id", "job_shares", ["user_id"])


def downgrade() -> None:
    op.drop_table("job_shares")
    op.drop_table("team_members")
    op.drop_table("teams")
    # Before 0007 every credential had every right: an API key kept past the downgrade would
    # gain its owner's full rights, so the keys go (bearer tokens stay).
    op.execute(sa.text("DELETE FROM api_tokens WHERE key_id IS NOT NULL"))
    op.drop_index("ix_api_tokens_key_id", "api_tokens")
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("permissions")
        batch_op.drop_column("key_id")
    op.drop_index("ix_users_email", "users")
    op.drop_index("ix_users_uuid", "users")
    # ALTER TABLE ... DROP COLUMN on both backends (SQLite 3.35+): a batch rebuild of users
    # would drop the table, which the other tables' foreign keys refuse, or cascade into them.
    op.execute(sa.text("ALTER TABLE users DROP COLUMN email"))
    op.execute(sa.text("ALTER TABLE users DROP COLUMN uuid"))
