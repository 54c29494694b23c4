"""drop the single-column indexes on jobs.owner_id and jobs.status

Both are the leading column of a composite index, (owner_id, created_at) and (status,
created_at), which serves every lookup they served. Every job insert and state change paid to
maintain them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 12:00:00
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_status")
        batch_op.drop_index("ix_jobs_owner_id")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.create_index("ix_jobs_owner_id", ["owner_id"], unique=False)
        batch_op.create_index("ix_jobs_status", ["status"], unique=False)
