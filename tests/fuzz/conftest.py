"""What the fuzz tier adds to the session's `stack`: two users of its own, a compiled flow
project and a job stopped at its checkpoint for schemathesis to find, no DNS while it runs, and
clean-up of the jobs it starts.

The fuzzer calls everything with made-up values, assigning reviewers and tagging jobs among
others: with users of its own, none of that shows in the listings of the tests that run after it
on the same stack (which count the jobs alice and bob see), and its admin is an admin like root.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import pytest

from shared.accounts.credentials import create_token
from shared.accounts.users import create_user
from shared.drive import Drive
from shared.store.db import session_scope
from tests.conftest import ApiUser
from tests.integration.flows import (
    CHECKED_FLOW,
    compile_flow,
    invoice,
    put_project,
    run_async,
    wait_done,
)

USER = "fuzzer"
ADMIN = "fuzzadmin"


@dataclass
class FuzzUsers(ApiUser):
    """The stack's test client, as the fuzz tier's users (tests/integration/flows.py helpers
    take it like a Stack)."""

    client: object
    tokens: dict[str, str]


@dataclass(frozen=True)
class FuzzData:
    """What exists for the fuzzer to find, in the normal user's folder (the admin may use it
    too): drive paths, and a job stopped at its checkpoint with one record to review."""

    project: str
    binary: str
    input_dir: str
    output_dir: str
    scratch_file: str
    scratch_folder: str
    stopped_job: str


@pytest.fixture(scope="session")
def fuzz_users(stack) -> FuzzUsers:
    tokens = {}
    with session_scope(stack.settings.sql_url) as session:
        for username, admin in ((USER, False), (ADMIN, True)):
            create_user(session, username, is_admin=admin)
            tokens[username] = create_token(session, username)
            Drive(stack.settings.drive_root).space_home(username)
    return FuzzUsers(stack.client, tokens)


@pytest.fixture(scope="session")
def fuzz_project(fuzz_users) -> tuple[str, str]:
    """A compiled project of the normal user's, with two invoices: the folder and the binary."""
    root = f"{USER}/invoices"
    put_project(fuzz_users, root, flow=CHECKED_FLOW, user=USER)
    fuzz_users.upload(f"{root}/data/input/a.txt", invoice("F-1", "12.50"), USER)
    fuzz_users.upload(f"{root}/data/input/b.txt", invoice("F-2", "8"), USER)
    compiled = compile_flow(fuzz_users, root, USER)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    return root, compiled["results"][0]["binary_path"]


@pytest.fixture
def fuzz_data(fuzz_users, fuzz_project, idle_after) -> FuzzData:
    """Fresh for each run: the run before may have cancelled or retried the stopped job, or
    deleted the scratch files."""
    root, binary = fuzz_project
    fuzz_users.upload(f"{root}/scratch/notes.txt", b"fuzz", USER)
    body = {"binary_path": binary, "input_dir": f"{root}/data/input"}
    submitted = run_async(fuzz_users, body, USER)
    assert submitted.status_code == 200, submitted.get_json()
    job_id = submitted.get_json()["data"]["job_id"]
    stopped = wait_done(fuzz_users, job_id, USER)["cur_status"]
    assert stopped["status"] == "STOPPED_AT_CHECKPOINT", stopped
    return FuzzData(
        project=root,
        binary=binary,
        input_dir=f"{root}/data/input",
        output_dir=f"{root}/data/out",
        scratch_file=f"{root}/scratch/notes.txt",
        scratch_folder=f"{root}/scratch",
        stopped_job=job_id,
    )


@pytest.fixture
def offline(monkeypatch):
    """Host names do not resolve while the fuzzer runs: a webhook URL it makes up must never
    send the stack's requests to whatever that name is on the internet, nor make the test's
    outcome depend on the network. Addresses and localhost (Redis) still work."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            if name != "localhost":
                # What fails before any lookup fails as it would (a name IDNA cannot encode).
                name.encode("idna")
                raise socket.gaierror(socket.EAI_NONAME, "no DNS in the fuzz tests") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def idle_after(fuzz_users):
    """Cancel whatever the fuzz users left queued, running or paused: the tests after these
    count on the stack's worker slots being free."""
    yield
    for user in (USER, ADMIN):
        cancelled = fuzz_users.client.get(
            f"/api/v1/jobs/cancel_all?user={user}", headers=fuzz_users.headers(ADMIN)
        )
        assert cancelled.status_code == 200, cancelled.get_json()
