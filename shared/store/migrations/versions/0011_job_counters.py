"""A job's file totals kept on its row, the index of claimed files, and the index that serves a
search for part of a job id (issue 17)

- ``jobs.steps_done`` and ``jobs.total_*`` (records, errors, checkpoint stops, filtered,
  warnings) and ``jobs.error_counts``: what the job's file rows add up to, kept current by the
  statements that move its files (shared/jobs/counters.py), so that a status read does not sum
  every file row. Jobs already in the store are backfilled from their files. On PostgreSQL the
  steps a file advances are counted in ``job_step_counts``, a few rows (shards) per job, so
  that concurrent workers do not queue on the job's row.
- ``ix_job_files_claimed``: a partial index of the pending files a step has claimed (a few per
  worker slot, whatever the store holds), which stalled-step recovery and "is a step running"
  read instead of the table; ``ix_job_files_unsent``: the pending files with neither a claim
  nor a token, recovery's other kind.
- ``ix_jobs_created_id`` and ``ix_jobs_status_created_id`` in place of ``ix_jobs_created`` and
  ``ix_jobs_status_created``: the same orders with the id and the kind, for keyset pages and deep
  offsets read from the index alone.
- PostgreSQL only: ``ix_jobs_id_trgm``, a trigram GIN index on jobs.id for ``job_id=<part>``
  (a LIKE '%part%'); SQLite scans, as it did.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 17:00:00
"""

import json
from collections import Counter

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TOTALS = ("records", "errors", "checkpoint_failed", "filtered", "warnings")
CLAIMED = "status = 'pending' AND claimed_by IS NOT NULL"
LISTING_INDEXES = {
    "ix_jobs_created_id": ["created_at", "id", "kind"],
    "ix_jobs_status_created_id": ["status", "created_at", "id", "kind"],
}
UNSENT = "status = 'pending' AND claimed_by IS NULL AND next_task_id IS NULL"


def _backfill(bind) -> None:
    # One UPDATE for the sums: a finished file has done every step, a pending one those
    # before its next (as shared/jobs/counters.py counts them).
    sums = ", ".join(
        f"total_{name} = (SELECT COALESCE(SUM(f.num_{name}), 0) FROM job_files f "
        "WHERE f.job_id = jobs.id)"
        for name in TOTALS
    )
    op.execute(
        sa.text(
            "UPDATE jobs SET steps_done = (SELECT COALESCE(SUM(CASE "
            "WHEN f.status != 'pending' THEN jobs.num_steps "
            "WHEN f.next_step < jobs.num_steps THEN f.next_step ELSE jobs.num_steps END), 0) "
            f"FROM job_files f WHERE f.job_id = jobs.id), {sums} "
            "WHERE EXISTS (SELECT 1 FROM job_files f WHERE f.job_id = jobs.id)"
        )
    )
    # Error messages merged in Python: JSON objects do not add up in portable SQL.
    merged: dict[str, Counter] = {}
    rows = bind.execute(sa.text("SELECT job_id, error_counts FROM job_files WHERE num_errors > 0"))
    for job_id, counts in rows:
        if isinstance(counts, str):
            counts = json.loads(counts)
        merged.setdefault(job_id, Counter()).update(counts or {})
    jobs = sa.table("jobs", sa.column("id"), sa.column("error_counts", sa.JSON()))
    for job_id, counts in merged.items():
        bind.execute(jobs.update().where(jobs.c.id == job_id).values(error_counts=dict(counts)))


def upgrade() -> None:
    bind = op.get_bind()
    # ALTER TABLE ... ADD COLUMN on SQLite too (constant server defaults), never a rebuild.
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(
            sa.Column("steps_done", sa.Integer(), nullable=False, server_default="0")
        )
        for name in TOTALS:
            batch_op.add_column(
                sa.Column(f"total_{name}", sa.Integer(), nullable=False, server_default="0")
            )
        batch_op.add_column(
            sa.Column("error_counts", sa.JSON(), nullable=False, server_default="{}")
        )
    _backfill(bind)
    op.create_table(
        "job_step_counts",
        sa.Column(
            "job_id", sa.String(50), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("shard", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("steps_done", sa.Integer(), nullable=False),
        sa.Column("filtered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "shard"),
    )
    op.create_index(
        "ix_job_files_claimed",
        "job_files",
        ["claimed_until"],
        postgresql_where=sa.text(CLAIMED),
        sqlite_where=sa.text(CLAIMED),
    )
    op.create_index(
        "ix_job_files_unsent",
        "job_files",
        ["job_id"],
        postgresql_where=sa.text(UNSENT),
        sqlite_where=sa.text(UNSENT),
    )
    # The listing's orders with the id (its keyset cursor's tie-break, and what a deep offset
    # walks over) and the kind (which it filters on): read without the table's rows.
    for name, columns in LISTING_INDEXES.items():
        op.create_index(name, "jobs", columns)
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("ix_jobs_status_created", table_name="jobs")
    if bind.dialect.name == "postgresql":
        # In public whatever the search_path, so that the operator class is found by name.
        op.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public"))
        op.execute(
            sa.text("CREATE INDEX ix_jobs_id_trgm ON jobs USING gin (id public.gin_trgm_ops)")
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(sa.text("DROP INDEX ix_jobs_id_trgm"))
    op.create_index("ix_jobs_created", "jobs", ["created_at"])
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at"])
    for name in LISTING_INDEXES:
        op.drop_index(name, table_name="jobs")
    op.drop_table("job_step_counts")
    op.drop_index("ix_job_files_unsent", table_name="job_files")
    op.drop_index("ix_job_files_claimed", table_name="job_files")
    # ALTER TABLE ... DROP COLUMN on both backends (SQLite 3.35+), for the reason above.
    for column in ("error_counts", *(f"total_{name}" for name in TOTALS), "steps_done"):
        op.execute(sa.text(f"ALTER TABLE jobs DROP COLUMN {column}"))
