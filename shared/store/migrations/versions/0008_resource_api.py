"""the resource API's job columns: a job's metadata, its desired execution status, its limit of
record errors, and who last changed it when

Jobs already in the store get empty metadata (the column's server default, which stays), no
desired status (shown as "running"), no error limit and no last change.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each an ALTER TABLE ... ADD COLUMN on SQLite too, never a rebuild of jobs: every job table
    # refers to it, and dropping it would cascade into them. A NOT NULL column needs a default
    # there, so metadata keeps its server default: a constant (an expression would make alembic
    # rebuild the table).
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("metadata", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(
            sa.Column("desired_execution_status", sa.String(length=16), nullable=True)
        )
        batch_op.add_column(sa.Column("max_parse_exceptions", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with a REFERENCES clause in place; alembic's batch would rebuild
        # the table to add the constraint. No ON DELETE, as for owner_id: users are not deleted,
        # and SQLite's reflection cannot see one written inline.
        op.execute(
            sa.text("ALTER TABLE jobs ADD COLUMN last_modified_by INTEGER REFERENCES users (id)")
        )
    else:
        op.add_column(
            "jobs",
            sa.Column(
                "last_modified_by",
                sa.Integer(),
                sa.ForeignKey("users.id"),
                nullable=True,
            ),
        )


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN on both backends (SQLite 3.35+), for the reason above.
    for column in (
        "last_modified_by",
        "updated_at",
        "max_parse_exceptions",
        "desired_execution_status",
        "metadata",
    ):
        op.execute(sa.text(f"ALTER TABLE jobs DROP COLUMN {column}"))
