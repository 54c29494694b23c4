"""Stalled-step recovery on both stores: which pending files of a runnable job it restarts (a
lapsed claim; no claim and no token; every unclaimed file of a job whose sender died before it
published) and which it leaves alone (a queued message, a live claim, a paused job, a job whose
messages were confirmed sent however long it waits, a job still within its publish grace); the
marks it sets and clears; and the migration that adds the mark to a store with jobs in it."""

from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sqlalchemy import select, text

from shared.accounts.users import create_user
from shared.config import Settings
from shared.engine.publication import PUBLISH_GRACE, confirm_published
from shared.engine.recovery import recover_stalled_steps
from shared.flow.compiler import compile_project
from shared.runs.submit import snapshot_binary
from shared.states import FileStatus, JobKind, JobStatus
from shared.store.db import engine_for, session_scope
from shared.store.migrate import upgrade
from shared.store.models import Job, JobFile
from tests.conftest import fresh_database

FLOW = {"name": "demo", "steps": [{"id": "read", "type": "extract_text"}]}


def files(now: datetime) -> dict[str, dict]:
    """Each file's claim and token: the ones recovery must restart, and the ones it must not."""
    return {
        "lapsed.txt": {"claimed_by": "dead", "claimed_until": now - timedelta(seconds=5)},
        "orphaned.txt": {},
        "queued.txt": {"next_task_id": "queued"},
        "running.txt": {"claimed_by": "alive", "claimed_until": now + timedelta(hours=1)},
    }


FILES_BY_INDEX = dict(enumerate(files(datetime.now(UTC))))


def jobs(now: datetime) -> dict[str, tuple[JobStatus, datetime | None]]:
    """Jobs by id: state, and when they were marked unpublished (None: their messages were
    sent)."""
    return {
        "running-job": (JobStatus.RUNNING, None),
        "paused-job": (JobStatus.PAUSED, None),
        # Its API died after recording it: past the grace, recovery sends it.
        "unsent-job": (JobStatus.QUEUED, now - PUBLISH_GRACE - timedelta(seconds=1)),
        # Its API is publishing it right now: left alone.
        "sending-job": (JobStatus.QUEUED, now - timedelta(seconds=1)),
    }


@pytest.fixture
def settings(store_url, tmp_path) -> Settings:
    settings = Settings(data_dir=tmp_path / "var", database_url=store_url)
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows/demo.ibflow").write_text(yaml.safe_dump(FLOW))
    artifact = compile_project(project, "Single Flow", {"flow_file": "flows/demo.ibflow"}, "t")
    snapshot_binary(settings, artifact.data, artifact.content_hash)
    # Taken when the test starts, not when the module is imported: the claims and marks are
    # relative to the recovery round the test runs.
    now = datetime.now(UTC)
    with session_scope(store_url) as session:
        owner = create_user(session, "carol")
        for job_id, (status, mark) in jobs(now).items():
            session.add(
                Job(
                    id=job_id,
                    owner_id=owner.id,
                    kind=JobKind.FLOW,
                    status=status,
                    trace_id="trace",
                    binary_hash=artifact.content_hash,
                    priority=7,
                    num_files=len(FILES_BY_INDEX),
                    num_steps=1,
                    # Long ago: how long a job has waited is no reason to restart it.
                    created_at=now - timedelta(hours=3),
                    unpublished_since=mark,
                )
            )
            session.flush()
            for index, (name, claim) in enumerate(files(now).items()):
                session.add(
                    JobFile(
                        job_id=job_id,
                        file_index=index,
                        file_name=name,
                        status=FileStatus.PENDING,
                        **claim,
                    )
                )
    return settings


def tokens(url: str, job_id: str) -> dict[str, str | None]:
    with session_scope(url, read_only=True) as session:
        rows = session.execute(
            select(JobFile.file_name, JobFile.next_task_id).where(JobFile.job_id == job_id)
        )
        return dict(rows.all())


def mark_of(url: str, job_id: str) -> datetime | None:
    with session_scope(url, read_only=True) as session:
        return session.get(Job, job_id).unpublished_since


def restarted(work, job_id: str) -> set[str]:
    return {FILES_BY_INDEX[s.call.file_index] for s in work.publish if s.call.job_id == job_id}


def test_lapsed_claims_and_files_nothing_will_move_are_restarted(settings, store_url):
    work = recover_stalled_steps(settings)
    after = tokens(store_url, "running-job")
    assert restarted(work, "running-job") == {"lapsed.txt", "orphaned.txt"}
    for step in work.publish:
        assert step.priority == 7
        # Published with the token now stored for its file.
        assert tokens(store_url, step.call.job_id)[FILES_BY_INDEX[step.call.file_index]] == (
            step.call.task_id
        )
    assert after["queued.txt"] == "queued" and after["running.txt"] is None


def test_a_paused_job_is_left_to_resume(settings, store_url):
    before = tokens(store_url, "paused-job")
    recover_stalled_steps(settings)
    assert tokens(store_url, "paused-job") == before


def test_a_job_whose_sender_died_gets_every_unclaimed_file_sent_with_a_fresh_token(
    settings, store_url
):
    before = tokens(store_url, "unsent-job")
    work = recover_stalled_steps(settings)
    # The queued token too: whether its message was ever sent is unknown. The live claim's
    # step is running, so its message arrived.
    assert restarted(work, "unsent-job") == {"lapsed.txt", "orphaned.txt", "queued.txt"}
    after = tokens(store_url, "unsent-job")
    assert after["queued.txt"] not in (None, before["queued.txt"])
    assert after["running.txt"] is None


def test_a_job_within_its_publish_grace_is_left_to_its_sender(settings, store_url):
    before = tokens(store_url, "sending-job")
    work = recover_stalled_steps(settings)
    assert restarted(work, "sending-job") == set()
    assert tokens(store_url, "sending-job") == before


def test_a_round_marks_what_it_restarts_until_it_confirms_them_sent(settings, store_url):
    work = recover_stalled_steps(settings)
    assert set(work.confirm) == {"running-job", "unsent-job"}
    marks = {job_id: mark_of(store_url, job_id) for job_id in work.confirm}
    assert marks == work.confirm
    # A round that died before publishing: the next rounds wait out the grace, then send the
    # same files again (their jobs are now marked unpublished).
    assert restarted(recover_stalled_steps(settings), "running-job") == set()
    confirm_published(store_url, work.confirm)
    assert [mark_of(store_url, job_id) for job_id in work.confirm] == [None, None]
    assert mark_of(store_url, "sending-job") is not None


def test_a_confirmation_does_not_clear_a_later_mark(settings, store_url):
    mark = mark_of(store_url, "sending-job")
    confirm_published(store_url, {"sending-job": mark - timedelta(seconds=30)})
    assert mark_of(store_url, "sending-job") == mark


def test_an_unpublished_job_whose_files_are_all_claimed_loses_its_mark(settings, store_url):
    with session_scope(store_url) as session:
        for row in session.scalars(select(JobFile).where(JobFile.job_id == "unsent-job")):
            row.claimed_by, row.claimed_until = "alive", datetime.now(UTC) + timedelta(hours=1)
    work = recover_stalled_steps(settings)
    assert restarted(work, "unsent-job") == set() and "unsent-job" not in work.confirm
    assert mark_of(store_url, "unsent-job") is None


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migration_keeps_the_jobs_in_a_store_and_counts_them_as_sent(backend, tmp_path):
    url = fresh_database(backend, tmp_path, schema="migration_tests")
    upgrade(url, "0005")
    with engine_for(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, is_admin, created_at) "
                "VALUES (1, 'carol', false, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO jobs (id, owner_id, kind, status, message, flow_type, binary_path,"
                " binary_hash, input_dir, output_dir, settings, priority, step_timeout,"
                " log_prefix, log_to_timeline, trace_id, num_files, num_steps, files_done,"
                " reviewer, review_state, created_at) VALUES ('old-job', 1, 'flow', 'queued',"
                " 'Queued', 'single_flow', 'b', 'h', 'in', 'out', '{}', 3, 0, '', false, 't',"
                " 1, 1, 0, '', 'NONE', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO job_files (job_id, file_index, file_name, status, next_step,"
                " attempts, next_task_id, num_records, num_errors, num_checkpoint_failed,"
                " num_filtered, error_counts, updated_at) VALUES ('old-job', 0, 'a.txt',"
                " 'pending', 0, 0, 'queued-token', 0, 0, 0, 0, '{}', CURRENT_TIMESTAMP)"
            )
        )
    upgrade(url)
    with session_scope(url, read_only=True) as session:
        job = session.get(Job, "old-job")
        assert (job.status, job.priority, job.unpublished_since) == (JobStatus.QUEUED, 3, None)
        assert session.scalars(select(JobFile.next_task_id)).all() == ["queued-token"]
    # A job recorded before the mark existed waits for its queued message, untouched.
    work = recover_stalled_steps(Settings(data_dir=tmp_path / "var", database_url=url))
    assert work.publish == [] and work.confirm == {}
