"""job control: step fencing tokens and claims, retry start points, pipelines, list indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 09:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_task_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("advanced_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("checkpoint_step", sa.Integer(), nullable=True))

    op.create_table(
        "job_pipelines",
        sa.Column("job_id", sa.String(length=50), nullable=False),
        sa.Column("pipeline_id", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "pipeline_id"),
    )
    with op.batch_alter_table("job_pipelines", schema=None) as batch_op:
        batch_op.create_index("ix_job_pipelines_pipeline_id", ["pipeline_id"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_created", ["created_at"], unique=False)
        batch_op.create_index("ix_jobs_status_created", ["status", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_status_created")
        batch_op.drop_index("ix_jobs_created")
    with op.batch_alter_table("job_pipelines", schema=None) as batch_op:
        batch_op.drop_index("ix_job_pipelines_pipeline_id")
    op.drop_table("job_pipelines")
    with op.batch_alter_table("job_files", schema=None) as batch_op:
        batch_op.drop_column("checkpoint_step")
        batch_op.drop_column("advanced_by")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("next_task_id")
