"""`flowbin up` with stand-in processes (a Procfile of shell commands instead of the real
stack): how it stops, on SIGTERM and when it is killed, and what it shows on its console."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from honcho.printer import Message

from shared.ops import reaper
from shared.ops.process_logs import ProcessLogs
from tests.support import descendants, running, wait_for

pytestmark = pytest.mark.skipif(not reaper.available(), reason="needs /proc (Linux)")

PROCFILE = (
    'one: echo "redis=$FLOWBIN_REDIS_URL"; echo "one: ERROR something broke"; exec sleep 60\n'
    # Ignores SIGTERM: only a SIGKILL stops it.
    "stubborn: trap '' TERM; echo ready; while true; do sleep 1; done\n"
    # A stand-in for the Celery worker: a main process and a pool process running a step.
    'warm: exec "$WARM_PYTHON" "$WARM_SCRIPT"\n'
)
# As Celery's warm shutdown: the main process, told to stop, lets its pool process finish the
# running step, then exits. The pool process notes whether a SIGTERM reached it (which would
# cut the step short, as it did when the signal went to the whole process group).
WARM_WORKER = """
import os, signal, sys, time
notes = sys.argv[1] if len(sys.argv) > 1 else os.environ["WARM_DIR"]
def note(text):
    with open(os.path.join(notes, "steps.log"), "a") as out:
        out.write(text + "\\n")
child = os.fork()
if child == 0:
    signal.signal(signal.SIGTERM, lambda *_: (note("step got SIGTERM"), os._exit(1)))
    note("step started")
    while not os.path.exists(os.path.join(notes, "stop-asked")):
        time.sleep(0.05)
    time.sleep(0.5)  # the rest of the step's work, after the stop was asked
    note("step finished")
    os._exit(0)
def stop(*_):
    open(os.path.join(notes, "stop-asked"), "w").close()
    os.waitpid(child, 0)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("warm ready", flush=True)
while True:
    time.sleep(1)
"""
GRACE = 3.0  # FLOWBIN_SHUTDOWN_GRACE for these stand-ins


@dataclass
class Up:
    process: subprocess.Popen
    console: Path
    data_dir: Path

    def process_log(self, name: str) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def redis_port(self) -> int:
        found = re.search(r"^Redis: redis://127\.0\.0\.1:(\d+)/0$", self.console.read_text(), re.M)
        return int(found.group(1))


@pytest.fixture
def up(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text(PROCFILE)
    script = tmp_path / "warm_worker.py"
    script.write_text(WARM_WORKER)
    (tmp_path / "warm").mkdir()
    console = tmp_path / "up.log"
    env = {
        **os.environ,
        "FLOWBIN_DATA_DIR": str(tmp_path / "var"),
        "FLOWBIN_REDIS_URL": "",
        "FLOWBIN_DATABASE_URL": "",
        "FLOWBIN_ADMIN_TOKEN": "",
        "FLOWBIN_DRIVE_DIR": "",
        "FLOWBIN_SHUTDOWN_GRACE": str(GRACE),
        "WARM_PYTHON": sys.executable,
        "WARM_SCRIPT": str(script),
        "WARM_DIR": str(tmp_path / "warm"),
    }
    command = [sys.executable, "-c", "from shared.ops.cli import main; main()"]
    with console.open("wb") as out:
        process = subprocess.Popen(
            [*command, "up", "--procfile", str(procfile)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stand_in = Up(process, console, tmp_path / "var")
    started: set[int] = set()
    try:
        wait_for(
            lambda: (
                "redis=redis://" in stand_in.process_log("one")
                and "ready" in stand_in.process_log("stubborn")
                and "warm ready" in stand_in.process_log("warm")
            ),
            timeout=30,
            message="the stand-in processes to start",
        )
        started = descendants(process.pid)
        yield stand_in
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # Whatever a failed test left behind must not outlive it.
        for pid in [pid for pid in started if running(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_stops_every_process_and_the_embedded_redis(up):
    text = up.console.read_text()
    token = re.search(r"^Admin token: (\S+)$", text, re.M).group(1)
    assert token == (up.data_dir / "admin_token").read_text().strip()
    port = up.redis_port()
    started = descendants(up.process.pid)
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=30) == 0, up.console.read_text()
    # honcho SIGKILLs what ignores its SIGTERM; nothing is left to the reaper.
    wait_for(
        lambda: not [p for p in started if running(p)], timeout=30, message="the stack to stop"
    )
    assert not port_open(port), "the embedded Redis is still up"


def steps_log(up: Up) -> list[str]:
    path = up.data_dir.parent / "warm" / "steps.log"
    return path.read_text().splitlines() if path.exists() else []


def test_a_stop_lets_the_running_step_finish_then_kills_what_is_left(up):
    wait_for(lambda: "step started" in steps_log(up), message="the stand-in step to start")
    started = descendants(up.process.pid)
    begin = time.monotonic()
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=60) == 0, up.console.read_text()
    # The worker's SIGTERM reached its main process only: the step finished, not cut off.
    assert steps_log(up) == ["step started", "step finished"]
    console = up.console.read_text()
    assert re.search(r"warm stopped \(rc=0\)", console), console
    # The process that ignores SIGTERM was killed once the grace period was over.
    assert "sending SIGKILL to stubborn" in console, console
    assert time.monotonic() - begin >= GRACE
    wait_for(
        lambda: not [p for p in started if running(p)], timeout=30, message="the stack to stop"
    )


def test_a_killed_flowbin_up_leaves_nothing_running(up):
    port = up.redis_port()
    # The reaper, Redis, and each process with its honcho runner.
    started = {pid for pid in descendants(up.process.pid) if running(pid)}
    assert len(started) >= 6, started
    up.process.kill()  # no handler runs: only the reaper can stop the stack now
    up.process.wait()
    # The stubborn process goes only at the reaper's SIGKILL, after its grace period.
    wait_for(
        lambda: not [pid for pid in started if running(pid)],
        timeout=reaper.GRACE_SECONDS + 30,
        message="every process of the killed stack to stop",
    )
    assert not port_open(port), "the embedded Redis is still up"


def test_the_console_shows_a_line_per_process_and_errors_the_rest_goes_to_its_log(up):
    console = up.console.read_text()
    assert re.search(r"system\s*\| one started \(pid=\d+\)", console), console
    assert re.search(r"system\s*\| stubborn started \(pid=\d+\)", console), console
    assert "redis=redis://" not in console  # a process's ordinary output stays in its log
    log_path = up.data_dir / "logs" / "one.log"
    assert f"one: one: ERROR something broke (more in {log_path})" in console
    assert "redis=redis://" in up.process_log("one")
    assert "Process logs: " in console


def test_verbose_also_puts_every_process_line_on_the_console(tmp_path):
    console = io.StringIO()
    printer = ProcessLogs(tmp_path / "logs", output=console, verbose=True)
    printer.write(Message("line", b"an ordinary line\n", datetime.now(), "api", None))
    printer.close()
    assert "api | an ordinary line" in console.getvalue()
    assert (tmp_path / "logs" / "api.log").read_text() == "an ordinary line\n"
