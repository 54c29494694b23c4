"""SQLAlchemy models of the store. Schema changes go through Alembic (shared/migrations)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    false,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import ColumnElement

from shared.states import (
    AttemptOutcome,
    DeliveryStatus,
    DesiredExecution,
    FileStatus,
    JobKind,
    JobStatus,
    ReviewState,
    TeamRole,
)
from shared.store.types import StrEnumType, UTCDateTime, new_uuid, utcnow

# The predicates of job_files' partial indexes; a query must state them to be served by one.
CLAIMED_FILES = "status = 'pending' AND claimed_by IS NOT NULL"
UNSENT_FILES = "status = 'pending' AND claimed_by IS NULL AND next_task_id IS NULL"
# Files waiting for a place in their job's window (shared/engine/window.py: their token is '').
# Made by migrations on PostgreSQL only, not declared here (migration 0011: a trigram index on
# jobs.id that serves a search for part of a job id).
POSTGRESQL_ONLY_INDEXES = frozenset({"ix_jobs_id_trgm"})
WAITING_FILES = "status = 'pending' AND next_task_id = ''"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    # The store's own key, which every other table refers to; ``uuid`` is the id the API shows.
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Always set (its default, and migration 0007 for older users), but nullable in the schema:
    # SQLite cannot add NOT NULL to a table other tables refer to without rebuilding it.
    uuid: Mapped[str] = mapped_column(
        String(36), nullable=True, unique=True, index=True, default=new_uuid
    )
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True, index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    """A credential: a bearer token (every right of its user) or an API key (``permissions``,
    an optional expiry, its last use). Both authenticate with one indexed lookup of the hash."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # SHA-256 of the token: tokens are long random strings, so a fast hash is enough and lets
    # the lookup be an indexed equality match.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set for API keys only: their id in the API, what they may do, when they stop working.
    key_id: Mapped[str | None] = mapped_column(String(36), unique=True, index=True)
    permissions: Mapped[list | None] = mapped_column(JSON)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Team(Base):
    """A named group of users; its name is also its drive space (the first path segment)."""

    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[TeamRole] = mapped_column(StrEnumType(TeamRole, 16))


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    # Indexed by ix_jobs_owner_created and ix_jobs_status_created_id (its leading columns).
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[JobKind] = mapped_column(StrEnumType(JobKind, 16))
    status: Mapped[JobStatus] = mapped_column(StrEnumType(JobStatus, 32))
    message: Mapped[str] = mapped_column(Text, default="")
    flow_type: Mapped[str] = mapped_column(String(16), default="single_flow")
    binary_path: Mapped[str] = mapped_column(Text, default="")
    binary_hash: Mapped[str] = mapped_column(String(64), default="")
    input_dir: Mapped[str] = mapped_column(Text, default="")
    output_dir: Mapped[str] = mapped_column(Text, default="")
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    step_timeout: Mapped[int] = mapped_column(Integer, default=0)
    log_prefix: Mapped[str] = mapped_column(String(200), default="")
    log_to_timeline: Mapped[bool] = mapped_column(Boolean, default=False)
    trace_id: Mapped[str] = mapped_column(String(32))
    num_files: Mapped[int] = mapped_column(Integer, default=0)
    num_steps: Mapped[int] = mapped_column(Integer, default=0)
    # Finished files, counted with a compare-and-set per file instead of a Celery chord.
    files_done: Mapped[int] = mapped_column(Integer, default=0)
    reviewer: Mapped[str] = mapped_column(String(64), default="")
    review_state: Mapped[ReviewState] = mapped_column(
        StrEnumType(ReviewState, 16), default=ReviewState.NONE
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when the API or recovery stores step tokens whose messages it has yet to send, and
    # cleared by whoever set it once they are sent: a mark older than a grace period means the
    # sender died in between, and recovery sends those steps (shared/engine/publication.py).
    unpublished_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # True while a worker lists a big input folder into job_files (shared/runs/input_listing.py):
    # num_files grows as it goes, and the job cannot end before the listing has.
    inputs_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The resource API's (/api/v2/jobs): the client's own key/values (seed 002's metadata; the
    # attribute is not ``metadata``, which SQLAlchemy's models reserve), what a user last asked
    # the job to do (None: run) and since when, its maxParseExceptions (past it, the job fails;
    # None: no limit), and who last changed it through the API, when.
    job_metadata: Mapped[dict] = mapped_column(
        "metadata", JSON, key="job_metadata", default=dict, server_default="{}"
    )
    desired_execution_status: Mapped[DesiredExecution | None] = mapped_column(
        StrEnumType(DesiredExecution, 16)
    )
    desired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    max_parse_exceptions: Mapped[int | None] = mapped_column(Integer)
    # The records that have failed a step so far, counted as steps commit, only for a job with
    # a maxParseExceptions (shared/engine/budget.py): JobFile.num_errors is set when a file ends.
    num_record_errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_modified_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the job's file rows add up to, kept current by the statements that move its files
    # (shared/jobs/counters.py), so that a status read costs one row, not one per file: the
    # steps its files have done (a finished file has done every step) and their totals.
    steps_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_records: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_checkpoint_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_filtered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_warnings: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Error message -> records of the job that failed with it (the seed's recordsWithMsg).
    error_counts: Mapped[dict] = mapped_column(JSON, default=dict, server_default="{}")

    __table_args__ = (
        Index("ix_jobs_owner_created", "owner_id", "created_at"),
        # With the id and the kind (migration 0011): a listing's keyset page or deep offset
        # is read from the index alone (shared/jobs/listing.py).
        Index("ix_jobs_created_id", "created_at", "id", "kind"),
        Index("ix_jobs_status_created_id", "status", "created_at", "id", "kind"),
    )


class JobTag(Base):
    __tablename__ = "job_tags"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)

    __table_args__ = (Index("ix_job_tags_tag", "tag"),)


class JobPipeline(Base):
    __tablename__ = "job_pipelines"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(String(100), primary_key=True)

    __table_args__ = (Index("ix_job_pipelines_pipeline_id", "pipeline_id"),)


class JobShare(Base):
    """One collaborator of a job (seed 002's collaboration): a team or a user, and the step ids
    of the job's flow it may work on (``["*"]``: every step, and control of the job)."""

    __tablename__ = "job_shares"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[str | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    steps: Mapped[list] = mapped_column(JSON, default=list)
    # steps == ["*"]: the collaborator also controls the job. A column, so that the bulk forms
    # can select the jobs a user controls in SQL.
    controls: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("job_id", "team_id", name="uq_job_shares_team"),
        UniqueConstraint("job_id", "user_id", name="uq_job_shares_user"),
    )


class JobFile(Base):
    """One input file of a flow job and how far its records have come through the steps."""

    __tablename__ = "job_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    file_index: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(Text)
    status: Mapped[FileStatus] = mapped_column(
        StrEnumType(FileStatus, 32), default=FileStatus.PENDING
    )
    # Index of the next step to run; equal to the step count once every step has run.
    next_step: Mapped[int] = mapped_column(Integer, default=0)
    # Starts of the current step, capped by max_step_attempts so a crashing step cannot loop.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The task id that may run the next step: a fencing token, so a stale or duplicated
    # message (a resume or retry published a fresh one) does nothing.
    next_task_id: Mapped[str | None] = mapped_column(String(64))
    # The task running the current step and until when its claim holds (its time limit):
    # pause waits for it, cancel terminates it, a dead worker's claim lapses.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The task that committed the last step: its redelivery republishes the next step, which
    # repairs a worker that died between committing and publishing.
    advanced_by: Mapped[str | None] = mapped_column(String(64))
    # First step at which a record of the file failed, and first checkpoint a record stopped
    # at: where a retry of step failures or checkpoint failures starts the file again.
    failed_step: Mapped[int | None] = mapped_column(Integer)
    checkpoint_step: Mapped[int | None] = mapped_column(Integer)
    num_records: Mapped[int] = mapped_column(Integer, default=0)
    num_errors: Mapped[int] = mapped_column(Integer, default=0)
    num_checkpoint_failed: Mapped[int] = mapped_column(Integer, default=0)
    # Records that came through with warnings (seed 003's numRowsProcessedWithWarning).
    num_warnings: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    num_filtered: Mapped[int] = mapped_column(Integer, default=0)
    # Error message -> number of records that failed with it (seed's recordsWithMsg).
    error_counts: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("job_id", "file_index", name="uq_job_files_job_index"),
        # Partial indexes (migration 0011), a few rows each whatever the store holds: the
        # claimed files (stalled-step recovery, "is a step of the job running"), and the
        # pending files with neither a claim nor a token (recovery's other kind).
        Index(
            "ix_job_files_claimed",
            "claimed_until",
            postgresql_where=text(CLAIMED_FILES),
            sqlite_where=text(CLAIMED_FILES),
        ),
        Index(
            "ix_job_files_unsent",
            "job_id",
            postgresql_where=text(UNSENT_FILES),
            sqlite_where=text(UNSENT_FILES),
        ),
        # Migration 0012: the next files of a job to give a place in its window, in order.
        Index(
            "ix_job_files_waiting",
            "job_id",
            "file_index",
            postgresql_where=text(WAITING_FILES),
            sqlite_where=text(WAITING_FILES),
        ),
    )


class JobStepCount(Base):
    """Steps a job's files have done, and records its filters dropped, counted by the advances
    of its files on PostgreSQL in one of a few shards (rows) per job, each advance in the shard
    of its thread: one row per job would make every worker's advance wait for the others'
    commits on it (bench/counter_contention.py). Added to the totals on the job's row
    (shared/jobs/counters.py)."""

    __tablename__ = "job_step_counts"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    filtered: Mapped[int] = mapped_column(Integer, default=0)


def claimed_file() -> ColumnElement[bool]:
    """On JobFile: ``CLAIMED_FILES``, written so that both stores see that the query implies
    the partial index's predicate (a bound parameter for 'pending' would hide it)."""
    return and_(JobFile.status == literal_column("'pending'"), JobFile.claimed_by.is_not(None))


def unsent_file() -> ColumnElement[bool]:
    """On JobFile: ``UNSENT_FILES``, as ``claimed_file``."""
    return and_(
        JobFile.status == literal_column("'pending'"),
        JobFile.claimed_by.is_(None),
        JobFile.next_task_id.is_(None),
    )


class JobLog(Base):
    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(String(100), default="")
    level: Mapped[str] = mapped_column(String(10), default="INFO")
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    trace_id: Mapped[str] = mapped_column(String(32), default="")
    span_id: Mapped[str] = mapped_column(String(32), default="")
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_job_logs_job_id_id", "job_id", "id"),)


class WebhookSecret(Base):
    """A user's webhook signing secret. Kept in the clear: signing needs the secret itself."""

    __tablename__ = "webhook_secrets"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Delivery(Base):
    """One notification of a finished job to one receiver (a webhook URL or an email address),
    attempted until a receiver acknowledges it or the attempts run out (shared/delivery/)."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # "webhook" or "email"
    target: Mapped[str] = mapped_column(Text)  # the URL or the email address
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[DeliveryStatus] = mapped_column(StrEnumType(DeliveryStatus, 16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the next attempt is due; None once delivered or failed for good.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A worker's claim: until then no other worker attempts it; a dead worker's claim lapses.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    redelivery_of: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("deliveries.id", ondelete="SET NULL"),
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_deliveries_status_next_attempt", "status", "next_attempt_at"),)


class DeliveryAttempt(Base):
    """One try of a delivery, recorded when it starts and completed when it ends."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("deliveries.id", ondelete="CASCADE"),
    )
    number: Mapped[int] = mapped_column(Integer)  # 1 for the first attempt
    outcome: Mapped[AttemptOutcome] = mapped_column(StrEnumType(AttemptOutcome, 16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        UniqueConstraint("delivery_id", "number", name="uq_delivery_attempts_number"),
    )


class RecordReview(Base):
    """A reviewer's decision on one record that a checkpoint stopped (shared/review/records.py): the
    fields they corrected (none: reviewed without change). One row per record, updated when
    the record is corrected again."""

    __tablename__ = "record_reviews"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    file_index: Mapped[int] = mapped_column(Integer)
    record_index: Mapped[int] = mapped_column(Integer)
    reviewer: Mapped[str] = mapped_column(String(64))  # the username who reviewed it last
    # Every field corrected on this record so far, with its latest value.
    corrected_fields: Mapped[dict] = mapped_column(JSON, default=dict)
    # The job's finished_at when it stopped at the checkpoint this review was made in: a review
    # settles the record for that stop only, so a record that fails again after a retry is
    # pending again.
    job_stopped_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("job_id", "file_index", "record_index", name="uq_record_reviews_record"),
    )


def with_defaults(model: type[Base], rows: list[dict]) -> list[dict]:
    """``rows`` of ``model``'s table with the Python-side default of every column they leave
    out, for an INSERT that fills no defaults itself (a prepared statement, prepared.py)."""
    defaults = [
        (column.key, column.default)
        for column in model.__table__.columns
        if column.default is not None
    ]
    return [
        {
            **{
                key: default.arg(None) if default.is_callable else default.arg
                for key, default in defaults
                if key not in row
            },
            **row,
        }
        for row in rows
    ]
