"""A whole Flowbin deployment on lab hosts, reached over HTTP as a client would: Redis and
PostgreSQL on ``svc``, the API and beat on ``api``, workers on hosts of their own. Shared by the
multi-host test and the scaling benchmark (bench/scaling.py)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import requests
from sqlalchemy import select

from shared.accounts.credentials import create_token
from shared.accounts.users import create_user
from shared.config import Settings
from shared.drive import Drive
from shared.storage.locate import drive_storage
from shared.store.db import session_scope
from shared.store.migrate import upgrade
from shared.store.models import Job, JobFile, JobLog
from tests import seaweedfs
from tests.multihost import services
from tests.multihost.netns import Lab
from tests.support import wait_for
from workers.app import create_celery_app

USER = "alice"


@dataclass
class Deployment:
    lab: Lab
    processes: services.Processes
    settings: Settings
    api: str
    token: str
    celery: object

    # -- the API, over HTTP -----------------------------------------------------------------

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def put(self, path: str, data: bytes) -> None:
        response = requests.put(
            f"{self.api}/api/v1/drive/{path}", data=data, headers=self.headers(), timeout=30
        )
        assert response.ok, response.text

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.api}/api/v1/drive/{path}", headers=self.headers(), timeout=30)

    def post(self, path: str, body: dict) -> dict:
        response = requests.post(
            f"{self.api}/api/v1/{path}", data=json.dumps(body), headers=self.headers(), timeout=30
        )
        assert response.ok, response.text
        return response.json()

    def state(self, job_id: str) -> str:
        response = requests.get(
            f"{self.api}/api/v1/jobs/status",
            params={"job_id": job_id, "type": "flow"},
            headers=self.headers(),
            timeout=30,
        )
        assert response.ok, response.text
        return response.json()["state"]

    def wait_done(self, job_ids: list[str], timeout: float) -> None:
        wait_for(
            lambda: all(self.state(job_id) == "DONE" for job_id in job_ids),
            timeout=timeout,
            interval=0.5,
            message=f"jobs {job_ids} to be DONE",
        )

    def compile(self, project: str, flow: str, udfs: dict[str, str]) -> str:
        """Upload a flow project, compile it through the API; the binary's drive path."""
        self.put(f"{project}/flows/main.ibflow", flow.encode())
        for name, source in udfs.items():
            self.put(f"{project}/udfs/{name}", source.encode())
        compiled = self.post(
            "flow_binary/compile",
            {
                "binary_type": "Single Flow",
                "flow_project_root": project,
                "settings": {"flow_file": "flows/main.ibflow"},
            },
        )
        self.wait_done([compiled["job_id"]], timeout=60)
        name = next(line for line in flow.splitlines() if line.startswith("name:"))
        return f"{project}/build/bin/{name.split(':', 1)[1].strip()}.ibflowbin"

    # -- workers ----------------------------------------------------------------------------

    def start_worker(self, host: str, name: str, concurrency: int = 2) -> None:
        services.start_worker(
            self.processes, self.lab.hosts[host], self.settings, name, concurrency
        )

    def wait_ready(self, name: str, timeout: float = 90) -> None:
        def answered():
            replies = self.celery.control.ping(timeout=0.5) or []
            return any(name in "".join(reply) for reply in replies)

        wait_for(answered, timeout=timeout, message=f"worker {name} to answer ping")

    def pool(self, worker: str) -> set[int]:
        """The pids of a worker's pool processes."""
        pid = self.processes.running[worker].pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        return {int(child) for child in children.read_text().split()}

    # -- the store, read directly -----------------------------------------------------------

    def assert_complete_once(self, job_id: str, output_dir: str, steps: tuple[str, ...]):
        """Every file of the job completed, each step of each file committed exactly once (one
        "Finished step" line is written in each advance's transaction), and the job's results,
        read over HTTP, hold each file's record once. Returns the file names."""
        with session_scope(self.settings.sql_url, read_only=True) as session:
            job = session.get(Job, job_id)
            assert job.status == "complete", (job.status, job.message)
            files = list(session.scalars(select(JobFile).where(JobFile.job_id == job_id)))
            finished = list(
                session.scalars(
                    select(JobLog.message).where(
                        JobLog.job_id == job_id, JobLog.message.startswith("Finished step")
                    )
                )
            )
        names = sorted(row.file_name for row in files)
        assert all(row.status == "complete" and row.num_records == 1 for row in files)
        # "Finished step 'first' on file f03.txt: 1 records, ..."
        committed = sorted(
            (line.split("'")[1], line.split(" on file ")[1].split(":")[0]) for line in finished
        )
        assert committed == sorted((step, name) for step in steps for name in names)
        response = self.get(f"{output_dir}/results.json")
        assert response.ok, response.text
        assert sorted(record["file_name"] for record in response.json()) == names
        return names


@contextlib.contextmanager
def deploy(lab: Lab, folder: Path, **overrides) -> Iterator[Deployment]:
    """Redis, PostgreSQL and SeaweedFS's S3 gateway on host ``svc``, the API and beat on host
    ``api`` (both added to the lab); the drive and the binaries live in the object store, so
    no host shares a folder with another. Workers are started by the caller. ``overrides``
    are Settings fields."""
    processes = services.Processes(logs=folder)
    try:
        with contextlib.ExitStack() as stack:
            svc = lab.add_host("svc")
            api_host = lab.add_host("api")
            redis_url = services.start_redis(processes, svc, folder)
            database_url = services.start_postgres(processes, svc, str(lab.network))
            (folder / "s3").mkdir()
            store = stack.enter_context(
                contextlib.contextmanager(seaweedfs.serve)(folder / "s3", svc.address, svc.command)
            )
            upgrade(database_url)
            settings = replace(
                Settings(data_dir=folder / "var", database_url=database_url),
                redis_url=f"{redis_url}/0",
                **store.settings_overrides("lab"),
                **overrides,
            )
            settings.data_dir.mkdir()
            with session_scope(database_url) as session:
                create_user(session, USER)
                token = create_token(session, USER)
            Drive(drive_storage(settings)).space_home(USER)
            api = services.start_api(processes, api_host, settings)
            services.start_beat(processes, api_host, settings, folder)
            yield Deployment(lab, processes, settings, api, token, create_celery_app(settings))
    except BaseException:
        for name in list(processes.running):
            print(f"--- {name} (log tail) ---\n{processes.tail(name)}")
        raise
    finally:
        processes.stop_all()
