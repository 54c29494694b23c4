"""The job window: jobs.inputs_pending (a big input folder still being listed into job_files by
a worker) and the index of the files still waiting for a place in their job's window

Jobs already in the store were listed when they were submitted, and every pending file of theirs
holds a token (never ''), a claim or an advance: none of them waits for a place.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 17:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The files of a job still waiting for a place in its window, in order (shared/engine/window.py:
# their token is ''); the same predicate, word for word, as the statements that use it.
WAITING = "status = 'pending' AND next_task_id = ''"


def upgrade() -> None:
    # A plain ALTER TABLE ... ADD COLUMN with a constant default, on SQLite too: a batch
    # operation would rebuild jobs, and the rebuild's DROP cascades to every job's files.
    op.add_column(
        "jobs",
        sa.Column("inputs_pending", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.create_index(
        "ix_job_files_waiting",
        "job_files",
        ["job_id", "file_index"],
        sqlite_where=sa.text(WAITING),
        postgresql_where=sa.text(WAITING),
    )


def downgrade() -> None:
    op.drop_index("ix_job_files_waiting", table_name="job_files")
    op.execute(sa.text("ALTER TABLE jobs DROP COLUMN inputs_pending"))
