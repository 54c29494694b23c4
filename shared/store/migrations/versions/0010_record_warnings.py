"""job_files.num_warnings: the records of a file that came through with warnings, counted when
the file ends (the resource API's numRowsProcessedWithWarning)

Files already in the store count 0: their records were not counted when they ended.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 16:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ALTER TABLE ... ADD COLUMN on SQLite too (a constant server default), never a rebuild.
    with op.batch_alter_table("job_files") as batch_op:
        batch_op.add_column(
            sa.Column("num_warnings", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    op.execute(sa.text("ALTER TABLE job_files DROP COLUMN num_warnings"))
