"""A notification stack for the webhook and email tests: the `stack` fixture's store and users,
plus a worker and a real `celery beat` of their own with short retry delays, loopback webhooks
allowed and an SMTP server (aiosmtpd) in the test process. They use their own Redis database,
so the `stack` worker (started without these settings) never runs their tasks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import ApiUser, start_celery, start_worker, stop_worker, wait_worker_ready
from tests.integration.flows import compile_flow, invoice, put_project
from tests.support import free_port, wait_for

NOTIFY_REDIS_DB = {"sqlite": 3, "postgresql": 4}
PROJECT = "alice/notify"
BINARY = f"{PROJECT}/build/bin/three_steps.ibflowbin"
GOOD_INPUT = f"{PROJECT}/data/input"
BAD_INPUT = f"{PROJECT}/data/bad"  # its only file fails the UDF: the job ends FAILED


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it receives; it refuses each address in
    ``refuse_once`` the first time it is offered (a 4xx-style try-again)."""

    messages: list[dict] = field(default_factory=list)
    refuse_once: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse_once:
            self.refuse_once.discard(address)
            return "450 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "content": envelope.content.decode("utf-8", "replace"),
            }
        )
        return "250 Message accepted for delivery"


@pytest.fixture(scope="session")
def smtp_inbox():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def start_beat(settings, schedule: Path, log_path: Path) -> subprocess.Popen:
    return start_celery(
        settings, ["beat", "--loglevel", "INFO", "--schedule", str(schedule)], log_path
    )


@dataclass
class Notify(ApiUser):
    """Like tests.conftest.Stack, for tests/integration/flows.py helpers."""

    backend: str
    settings: object
    client: object
    tokens: dict[str, str]
    inbox: Inbox
    worker: subprocess.Popen
    worker_log: Path
    celery_app: object
    restarts: int = 0

    def run(self, job_id: str, input_dir: str = GOOD_INPUT, user: str = "alice", **wanted) -> str:
        body = {
            "binary_path": BINARY,
            "input_dir": input_dir,
            "job_id": job_id,
            "settings": {"output_has_run_id": True, **wanted},
        }
        response = self.client.post(
            "/api/v1/flow/run_binary_async", data=json.dumps(body), headers=self.headers(user)
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()["data"]["job_id"]

    def kill_worker_and_start_another(self) -> None:
        """SIGKILL the worker and its pool processes (whatever they were doing is cut off),
        then start a fresh worker."""
        children = Path(f"/proc/{self.worker.pid}/task/{self.worker.pid}/children")
        pool = [int(pid) for pid in children.read_text().split()]
        self.worker.kill()
        for pid in pool:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.worker.wait(timeout=10)
        self.restarts += 1
        name = f"notify-{self.backend}-{self.restarts}"
        self.worker = start_worker(self.settings, name, self.worker_log, concurrency=3)
        wait_worker_ready(self.celery_app, name)

    def deliveries(self, job_id: str, user: str = "alice") -> list[dict]:
        response = self.client.get(
            f"/api/v1/deliveries?job_id={job_id}", headers=self.headers(user)
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()["deliveries"]

    def wait_deliveries(self, job_id: str, done, timeout: float = 30, message: str = "") -> list:
        """Poll the job's deliveries until ``done(deliveries)`` holds."""

        def check():
            found = self.deliveries(job_id)
            return found if found and done(found) else None

        return wait_for(
            check, timeout=timeout, interval=0.1, message=message or f"deliveries of {job_id}"
        )


@pytest.fixture(scope="session")
def notify(request, stack, redis_server_url, smtp_inbox, tmp_path_factory):
    inbox, smtp_port = smtp_inbox
    tmp = tmp_path_factory.mktemp(f"notify-{stack.backend}")
    settings = replace(
        stack.settings,
        redis_url=f"{redis_server_url}/{NOTIFY_REDIS_DB[stack.backend]}",
        webhook_allowed_networks="127.0.0.0/8",
        delivery_retry_base=0.1,
        delivery_retry_cap=0.5,
        delivery_timeout=1.0,
        delivery_interval=0.25,
        delivery_lease=5.0,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_from="flowbin@test.local",
    )
    from api.app import create_app

    app = create_app(settings)
    celery_app = app.extensions["flowbin.celery"]
    with celery_app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()
    worker_log, beat_log = tmp / "worker.log", tmp / "beat.log"
    name = f"notify-{stack.backend}"
    worker = start_worker(settings, name, worker_log, concurrency=3)
    beat = start_beat(settings, tmp / "celerybeat-schedule", beat_log)
    try:
        wait_worker_ready(celery_app, name)
        found = Notify(
            stack.backend,
            settings,
            app.test_client(),
            stack.tokens,
            inbox,
            worker,
            worker_log,
            celery_app,
        )
        put_project(found, PROJECT)
        found.upload(f"{GOOD_INPUT}/a.txt", invoice("A-1", "100.00"))
        found.upload(f"{BAD_INPUT}/c.txt", invoice("C-3", "10") + b"boom\n")
        compiled = compile_flow(found, PROJECT)
        assert compiled["cur_status"]["status"] == "COMPLETE", compiled
        yield found
        worker = found.worker
    finally:
        stop_worker(beat)
        stop_worker(worker)
        if request.session.testsfailed:
            for label, path in (("worker", worker_log), ("beat", beat_log)):
                if path.exists():
                    sys.stderr.write(f"\n--- notify {label} log ({stack.backend}) ---\n")
                    sys.stderr.write(path.read_text(errors="replace")[-6000:])
