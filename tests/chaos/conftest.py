"""The chaos tier: real worker processes, a real Redis and a real SQL store, killed and
restarted under running jobs.

Each backend gets a store of its own (SQLite in a temporary folder; on PostgreSQL the schema
``chaos`` of the test database, every connection named ``CHAOS_APPLICATION`` so a test that
terminates backends terminates only this tier's). Jobs are sent through the API's test client;
workers are started per test, on Redis databases that no other tier uses. Each scenario reports
its figures (kills, jobs, files, seconds) with ``support.report``: printed as it goes (``-s``)
and again at the end of the session.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import redis
from sqlalchemy import make_url, select
from sqlalchemy.exc import OperationalError

from shared.accounts.credentials import create_token
from shared.accounts.users import create_user
from shared.config import Settings
from shared.drive import Drive
from shared.engine.layout import combined_results_file, results_file
from shared.flow.compiler import compile_project
from shared.states import ENDED
from shared.store.db import engine_for, session_scope
from shared.store.migrate import upgrade
from shared.store.models import Job, JobFile, JobLog
from tests.chaos.flows import CHAOS_UDFS, SYNC_FLOW, WORK_FLOW
from tests.chaos.support import CHAOS_APPLICATION, FIGURES, Run
from tests.conftest import (
    BACKENDS,
    ApiUser,
    fresh_database,
    start_worker,
    stop_worker,
    wait_worker_ready,
)
from tests.integration.control_udfs import CONTROL_UDFS, GATED_FLOW
from tests.integration.flows import invoice
from tests.support import wait_for

# Redis databases of this tier (the other tiers use 1 to 6 and 15): one for the tier's API and
# the workers that share it, one that a test flushes and has to itself.
SHARED_DB = {"sqlite": 12, "postgresql": 13}
PRIVATE_DB = {"sqlite": 10, "postgresql": 11}
PROJECT = "alice/chaos"
FLOWS = {"work": WORK_FLOW, "gated": GATED_FLOW, "sync": SYNC_FLOW}


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("chaos figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@dataclass
class Lane(ApiUser):
    """The API and the Celery app on one Redis URL: what a test submits through, and what its
    workers listen on."""

    settings: Settings
    client: object
    tokens: dict[str, str]
    celery_app: object

    def submit(self, binary: str, input_dir: str, output_dir: str, **run) -> str:
        response = self.post_run(binary, input_dir, output_dir, **run)
        assert response.status_code == 200, response.get_json()
        return response.get_json()["data"]["job_id"]

    def post_run(self, binary: str, input_dir: str, output_dir: str, job_id=None, **run):
        body = {
            "binary_path": binary,
            "input_dir": input_dir,
            "output_dir": output_dir,
            "settings": run,
        }
        if job_id:
            body["job_id"] = job_id
        return self.client.post(
            "/api/v1/flow/run_binary_async", data=json.dumps(body), headers=self.headers()
        )

    def flush(self) -> None:
        with self.celery_app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()

    def redis(self):
        """A client of this lane's Redis database (kombu's keys: the priority lists,
        ``unacked`` and ``unacked_index``)."""
        return redis.Redis.from_url(self.settings.redis_url)


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: Path

    @property
    def hostname(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    def pool(self) -> list[int]:
        """The pids of the worker's pool processes."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []


@dataclass
class Chaos:
    """One backend's store, drive and users, the compiled flows, and the workers a test
    started (stopped when it ends)."""

    backend: str
    settings: Settings
    tokens: dict[str, str]
    tmp: Path
    binaries: dict[str, str]
    lane: Lane
    workers: list[Worker] = field(default_factory=list)
    test_name: str = ""

    @property
    def url(self) -> str:
        return self.settings.sql_url

    @property
    def drive(self) -> Path:
        return self.settings.drive_root

    def lane_on(self, redis_url: str, **overrides) -> Lane:
        """An API and Celery app on another Redis (database or server)."""
        from api.app import create_app

        settings = replace(self.settings, redis_url=redis_url, **overrides)
        app = create_app(settings)
        return Lane(settings, app.test_client(), self.tokens, app.extensions["flowbin.celery"])

    def private_lane(self, redis_base: str, **overrides) -> Lane:
        lane = self.lane_on(f"{redis_base}/{PRIVATE_DB[self.backend]}", **overrides)
        lane.flush()
        return lane

    def start_worker(self, lane: Lane, label: str, concurrency: int = 3, **overrides) -> Worker:
        """A real `celery worker` (prefork) with the lane's settings and ``overrides``."""
        name = f"chaos-{self.backend}-{label}-{len(self.workers)}"
        log = self.tmp / f"{name}.log"
        settings = replace(lane.settings, **overrides)
        process = start_worker(settings, name, log, concurrency=concurrency)
        worker = Worker(name, process, log)
        self.workers.append(worker)
        wait_worker_ready(lane.celery_app, name, timeout=90)
        return worker

    def inputs(self, label: str, count: int) -> tuple[str, str]:
        """A new input folder of ``count`` invoices, and an output folder beside it."""
        folder = f"{PROJECT}/{self.test_name}/{label}"
        real = self.drive / folder / "in"
        real.mkdir(parents=True)
        for number in range(count):
            (real / f"f{number:02d}.txt").write_bytes(invoice(f"{label}-{number}", "10"))
        return f"{folder}/in", f"{folder}/out"

    def control(self, label: str) -> Path:
        path = self.tmp / self.test_name / label
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- the store, read the way a test must after a database outage ----------------------

    def read(self, query):
        """Run ``query(session)`` in a read-only transaction; a connection that an outage
        dropped is replaced."""
        for _ in range(5):
            try:
                with session_scope(self.url, read_only=True) as session:
                    return query(session)
            except OperationalError:
                engine_for(self.url).dispose()
        raise AssertionError("the store stayed unreachable")

    def jobs(self, job_ids: list[str]) -> dict[str, Job]:
        return self.read(
            lambda s: {job.id: job for job in s.scalars(select(Job).where(Job.id.in_(job_ids)))}
        )

    def files(self, job_id: str) -> list[JobFile]:
        return self.read(
            lambda s: list(
                s.scalars(
                    select(JobFile).where(JobFile.job_id == job_id).order_by(JobFile.file_index)
                )
            )
        )

    def wait_ended(self, job_ids: list[str], timeout: float = 120) -> dict[str, Job]:
        def ended():
            found = self.jobs(job_ids)
            return found if all(found[j].status in ENDED for j in job_ids) else None

        return wait_for(ended, timeout=timeout, interval=0.2, message=f"jobs {job_ids} to end")

    def finished_steps(self, job_id: str) -> Counter:
        """How many times each (step, file) of the job committed: one "Finished step" line is
        written with each advance, in its transaction."""
        lines = self.read(
            lambda s: list(
                s.scalars(
                    select(JobLog.message).where(
                        JobLog.job_id == job_id, JobLog.message.startswith("Finished step")
                    )
                )
            )
        )
        # "Finished step 'first' on file f03.txt: 1 records, ..."
        return Counter(
            (line.split("'")[1], line.split(" on file ")[1].split(":")[0]) for line in lines
        )

    def assert_complete_once(self, job_id: str, steps: list[str]) -> int:
        """The job completed, every file once: each step of each file committed exactly once,
        each file's results are there, and the job's results hold each file's record once.
        Returns the number of files."""
        [job] = self.jobs([job_id]).values()
        assert job.status == "complete", (job.status, job.message)
        files = self.files(job_id)
        assert job.files_done == job.num_files == len(files)
        names = [row.file_name for row in files]
        for row in files:
            assert (row.status, row.num_records, row.num_errors) == ("complete", 1, 0), (
                row.file_name,
                row.error_counts,
            )
            assert row.claimed_by is None and row.next_task_id is None
        committed = self.finished_steps(job_id)
        assert committed == Counter({(step, name): 1 for step in steps for name in names})
        for name in names:
            assert results_file(self.settings, job, name).is_file(), name
        combined = json.loads(combined_results_file(self.settings, job).read_text())
        assert Counter(record["file_name"] for record in combined) == Counter(names)
        return len(files)

    def assert_results_come_from_the_last_runs(self, job_id: str, runs: list[Run]) -> None:
        """Each work step writes the pid of its process into its record: the job's results
        hold, for every file, the pids of the last run of each step that ran to its end (the
        one whose advance committed; an earlier one that ended was cut off before it did)."""
        [job] = self.jobs([job_id]).values()
        last: dict[tuple[str, str], Run] = {}
        for run in sorted(runs, key=lambda run: run.started):
            if run.job_id == job_id and run.ended is not None:
                last[(run.file, run.step)] = run
        combined = json.loads(combined_results_file(self.settings, job).read_text())
        for record in combined:
            fields = {pair["key"]: pair["value"] for pair in record["results"]}
            for step in ("first", "second"):
                assert fields[step] == last[(record["file_name"], step)].pid, (record, step)


def chaos_database(backend: str, tmp: Path) -> str:
    url = fresh_database(backend, tmp, schema="chaos")
    if backend == "postgresql":
        url = (
            make_url(url)
            .update_query_dict({"application_name": CHAOS_APPLICATION})
            .render_as_string(hide_password=False)
        )
    return url


@pytest.fixture(scope="session", params=BACKENDS)
def chaos_store(request, redis_server_url, tmp_path_factory):
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"chaos-{backend}")
    url = chaos_database(backend, tmp)
    upgrade(url)
    settings = Settings(
        data_dir=tmp / "var",
        database_url=url,
        redis_url=f"{redis_server_url}/{SHARED_DB[backend]}",
        default_step_timeout=30,
        visibility_timeout=300,
        # One runner: the run after a runner was killed needs the replacement.
        sync_runners=1,
        sync_timeout=30,
    )
    settings.data_dir.mkdir(parents=True)
    tokens = {}
    with session_scope(url) as session:
        create_user(session, "alice")
        tokens["alice"] = create_token(session, "alice")
    Drive(settings.drive_root).space_home("alice")
    binaries = compile_flows(settings, tmp / "project")
    from api.app import create_app

    app = create_app(settings)
    lane = Lane(settings, app.test_client(), tokens, app.extensions["flowbin.celery"])
    lane.flush()
    yield Chaos(backend, settings, tokens, tmp, binaries, lane)
    engine_for(url).dispose()


def compile_flows(settings: Settings, project: Path) -> dict[str, str]:
    """The chaos flows compiled in this process (compiling is not what this tier tests), their
    binaries put in alice's drive; drive paths by flow name."""
    (project / "flows").mkdir(parents=True)
    (project / "udfs").mkdir()
    (project / "udfs/control.py").write_text(CONTROL_UDFS)
    (project / "udfs/chaos.py").write_text(CHAOS_UDFS)
    binaries = {}
    for name, flow in FLOWS.items():
        (project / f"flows/{name}.ibflow").write_text(flow)
        artifact = compile_project(
            project, "Single Flow", {"flow_file": f"flows/{name}.ibflow"}, "t"
        )
        path = f"{PROJECT}/build/{name}.ibflowbin"
        target = settings.drive_root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(artifact.data)
        binaries[name] = path
    return binaries


@pytest.fixture
def chaos(request, chaos_store):
    """The backend's chaos store for one test; the workers it starts are stopped after it,
    and their logs shown if it failed."""
    chaos_store.test_name = request.node.name.split("[")[0]
    chaos_store.workers = []
    try:
        yield chaos_store
    finally:
        for worker in chaos_store.workers:
            stop_worker(worker.process)
        failed = getattr(request.node, "chaos_failed", False)
        for worker in chaos_store.workers if failed else []:
            if worker.log.exists():
                sys.stderr.write(f"\n--- {worker.name} log ---\n")
                sys.stderr.write(worker.log.read_text(errors="replace")[-5000:])
        if not failed:  # a failed run's outputs are kept to look at
            shutil.rmtree(chaos_store.drive / PROJECT / chaos_store.test_name, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if outcome.get_result().failed:
        item.chaos_failed = True
