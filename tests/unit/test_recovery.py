"""Stalled-step recovery on both stores: which pending files of a runnable job it restarts (a
lapsed claim; no claim and no token) and which it leaves alone (a queued message, a live claim,
a paused job)."""

from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sqlalchemy import select

from shared.config import Settings
from shared.engine.recovery import recover_stalled_steps
from shared.flow.compiler import compile_project
from shared.runs.submit import snapshot_binary
from shared.states import FileStatus, JobKind, JobStatus
from shared.store.db import session_scope
from shared.store.models import Job, JobFile
from shared.users import create_user

FLOW = {"name": "demo", "steps": [{"id": "read", "type": "extract_text"}]}
NOW = datetime.now(UTC)
# Each file's claim and token: the ones recovery must restart, and the ones it must not.
FILES = {
    "lapsed.txt": {"claimed_by": "dead", "claimed_until": NOW - timedelta(seconds=5)},
    "orphaned.txt": {},
    "queued.txt": {"next_task_id": "queued"},
    "running.txt": {"claimed_by": "alive", "claimed_until": NOW + timedelta(minutes=5)},
}
FILES_BY_INDEX = dict(enumerate(FILES))


@pytest.fixture
def settings(store_url, tmp_path) -> Settings:
    settings = Settings(data_dir=tmp_path / "var", database_url=store_url)
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows/demo.ibflow").write_text(yaml.safe_dump(FLOW))
    artifact = compile_project(project, "Single Flow", {"flow_file": "flows/demo.ibflow"}, "t")
    snapshot_binary(settings, artifact.data, artifact.content_hash)
    with session_scope(store_url) as session:
        owner = create_user(session, "carol")
        for job_id, status in (
            ("running-job", JobStatus.RUNNING),
            ("paused-job", JobStatus.PAUSED),
        ):
            session.add(
                Job(
                    id=job_id,
                    owner_id=owner.id,
                    kind=JobKind.FLOW,
                    status=status,
                    trace_id="trace",
                    binary_hash=artifact.content_hash,
                    priority=7,
                    num_files=len(FILES),
                    num_steps=1,
                )
            )
            session.flush()
            for index, (name, claim) in enumerate(FILES.items()):
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


def test_lapsed_claims_and_files_nothing_will_move_are_restarted(settings, store_url):
    steps = recover_stalled_steps(settings)
    after = tokens(store_url, "running-job")
    restarted = {FILES_BY_INDEX[step.call.file_index] for step in steps}
    assert restarted == {"lapsed.txt", "orphaned.txt"}
    for step in steps:
        assert step.call.job_id == "running-job" and step.priority == 7
        # Published with the token now stored for its file.
        assert after[FILES_BY_INDEX[step.call.file_index]] == step.call.task_id
    assert after["queued.txt"] == "queued" and after["running.txt"] is None


def test_a_paused_job_is_left_to_resume(settings, store_url):
    before = tokens(store_url, "paused-job")
    recover_stalled_steps(settings)
    assert tokens(store_url, "paused-job") == before
