"""Flowbin on several hosts: Redis and PostgreSQL on one, the API and beat on another, workers
on two more, each host a network namespace with addresses of its own (tests/multihost/netns.py).
Jobs run across both worker hosts; one worker host cut off mid-step loses nothing and runs
nothing twice, and works again once it is back.

Skipped where namespaces cannot be made (not root, no iproute2), except under CI, where it
must run."""

from __future__ import annotations

import os
import time

import pytest

from tests.chaos.flows import CHAOS_UDFS, WORK_FLOW
from tests.chaos.support import runs_in
from tests.integration.flows import invoice
from tests.multihost import services
from tests.multihost.deployment import USER, Deployment, deploy
from tests.multihost.netns import Lab, LabUnavailable
from tests.support import wait_for

pytestmark = pytest.mark.integration

PROJECT = f"{USER}/lab"
STEPS = ("read", "first", "second")
WORKERS = ("w1", "w2")
# A cut-off worker's claim lapses after the run's step timeout plus the claim's fixed grace
# (60 s); recovery then restarts its steps elsewhere. Short steps and timeouts keep that bound.
STEP_TIMEOUT = 5


class Hosts:
    """The deployment, the compiled work flow, and the folder its UDFs note each run in (the
    hosts share this machine's file system; the notes are the test's, not Flowbin's)."""

    def __init__(self, deployment: Deployment, binary: str, control):
        self.deployment = deployment
        self.binary = binary
        self.control = control

    def submit(self, label: str, count: int, work_seconds: float) -> tuple[str, str]:
        folder = f"{PROJECT}/{label}"
        for number in range(count):
            self.deployment.put(f"{folder}/in/f{number:02d}.txt", invoice(f"{label}{number}", "1"))
        answer = self.deployment.post(
            "flow/run_binary_async",
            {
                "binary_path": self.binary,
                "input_dir": f"{folder}/in",
                "output_dir": f"{folder}/out",
                "settings": {
                    "step_timeout": STEP_TIMEOUT,
                    "runtime_config": {
                        "control_dir": str(self.control),
                        "work_seconds": work_seconds,
                    },
                },
            },
        )
        return answer["data"]["job_id"], f"{folder}/out"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    try:
        lab = Lab.create()
    except LabUnavailable as reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the multi-host test: {reason}")
        pytest.skip(f"network namespaces cannot be made here: {reason}")
    try:
        if services.postgres_bin_dir() is None:
            pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
        tmp = tmp_path_factory.mktemp("hosts")
        # Recovery looks every 2 s; an unacked message held by a cut-off host comes back after
        # 70 s (the visibility timeout must exceed the longest step by 60 s).
        with deploy(lab, tmp, recovery_interval=2.0, visibility_timeout=70) as deployment:
            for name in WORKERS:
                lab.add_host(name)
                deployment.start_worker(name, name)
            for name in WORKERS:
                deployment.wait_ready(name)
            binary = deployment.compile(PROJECT, WORK_FLOW, {"chaos.py": CHAOS_UDFS})
            control = tmp / "control"
            control.mkdir()
            yield Hosts(deployment, binary, control)
    finally:
        lab.close()


def test_jobs_run_across_both_worker_hosts(hosts):
    deployment = hosts.deployment
    jobs = [hosts.submit(f"spread{n}", 6, work_seconds=0.2) for n in range(3)]
    deployment.wait_done([job_id for job_id, _ in jobs], timeout=120)
    for job_id, output_dir in jobs:
        deployment.assert_complete_once(job_id, output_dir, STEPS)
    pools = {name: deployment.pool(name) for name in WORKERS}
    ran_on = {name for run in runs_in(hosts.control) for name in WORKERS if run.pid in pools[name]}
    assert ran_on == set(WORKERS)
    # Inputs, binaries, step outputs and results all went through the object store: the
    # local drive and binary folders stayed empty.
    data_dir = deployment.settings.data_dir
    local = [p for f in ("drive", "binaries") for p in (data_dir / f).rglob("*") if p.is_file()]
    assert local == []


def test_a_worker_host_cut_off_mid_step_loses_and_duplicates_nothing(hosts):
    deployment = hosts.deployment
    w1 = deployment.lab.hosts["w1"]
    jobs = [hosts.submit(f"cut{n}", 8, work_seconds=0.5) for n in range(3)]
    w1_pool = deployment.pool("w1")

    def w1_mid_step():
        return any(run.ended is None and run.pid in w1_pool for run in runs_in(hosts.control))

    wait_for(w1_mid_step, timeout=60, interval=0.02, message="a step running on w1")
    deployment.lab.cut(w1)
    cut_at = time.time()
    try:
        deployment.wait_done([job_id for job_id, _ in jobs], timeout=240)
        print(f"\nmulti-host: every job DONE {time.time() - cut_at:.1f} s after w1 was cut off")
    finally:
        deployment.lab.restore(w1)
    for job_id, output_dir in jobs:
        deployment.assert_complete_once(job_id, output_dir, STEPS)
    # The steps running on w1 when it went dark ran again elsewhere, after w1's run ended; no
    # two runs of one step on one file overlapped.
    by_step: dict[tuple, list] = {}
    for run in runs_in(hosts.control):
        by_step.setdefault((run.job_id, run.step, run.file), []).append(run)
    rerun_after_cut = 0
    for found in by_step.values():
        found.sort(key=lambda run: run.started)
        for earlier, later in zip(found, found[1:], strict=False):
            assert earlier.ended is not None and earlier.ended <= later.started, (earlier, later)
            rerun_after_cut += earlier.pid in w1_pool and later.started > cut_at
    assert rerun_after_cut >= 1

    # Back on the network, w1 takes work again: with w2 stopped, a new job completes on it.
    deployment.wait_ready("w1", timeout=120)
    deployment.processes.stop("w2")
    job_id, output_dir = hosts.submit("after", 2, work_seconds=0.05)
    deployment.wait_done([job_id], timeout=120)
    deployment.assert_complete_once(job_id, output_dir, STEPS)
    after = [run for run in runs_in(hosts.control) if run.job_id == job_id]
    assert after and all(run.pid in deployment.pool("w1") for run in after)
