"""jobs.unpublished_since: step tokens stored whose messages the broker may not have yet

The API records a job with its files' tokens and publishes their first steps after the commit;
an API killed in between left a queued job that nothing would ever start. The mark tells
stalled-step recovery which jobs to look at (shared/engine/publication.py).

Jobs already in the store get no mark: they were published, or failed when they could not be.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("unpublished_since", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("unpublished_since")
