"""record reviews: corrections of records that a checkpoint stopped, and who made them

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "record_reviews",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("job_id", sa.String(length=50), nullable=False),
        sa.Column("file_index", sa.Integer(), nullable=False),
        sa.Column("record_index", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("corrected_fields", sa.JSON(), nullable=False),
        sa.Column("job_stopped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "job_id", "file_index", "record_index", name="uq_record_reviews_record"
        ),
    )


def downgrade() -> None:
    op.drop_table("record_reviews")
