"""a job's running count of record errors (its maxParseExceptions is enforced as steps commit)
and when its desired execution status was recorded

Jobs already in the store: a job with a maxParseExceptions starts from the errors its ended files
recorded (a file's errors are counted when it ends; a pending file's count is taken up by its
next steps); every other job from 0, where it stays. A job whose desired status was set through
the resource API takes the time of that change (its ``updated_at``) as the wish's time.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ALTER TABLE ... ADD COLUMN on SQLite too, never a rebuild of jobs (see 0008): the NOT NULL
    # column keeps a constant server default for it.
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(
            sa.Column("num_record_errors", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("desired_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        sa.text(
            "UPDATE jobs SET num_record_errors = (SELECT COALESCE(SUM(job_files.num_errors), 0) "
            "FROM job_files WHERE job_files.job_id = jobs.id) "
            "WHERE max_parse_exceptions IS NOT NULL"
        )
    )
    op.execute(
        sa.text(
            "UPDATE jobs SET desired_at = updated_at WHERE desired_execution_status IS NOT NULL"
        )
    )


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN on both backends (SQLite 3.35+), for the reason above.
    for column in ("desired_at", "num_record_errors"):
        op.execute(sa.text(f"ALTER TABLE jobs DROP COLUMN {column}"))
