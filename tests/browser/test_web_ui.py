"""The web UI in a real browser (Debian's chromium through Playwright) against a live stack
with a real worker: sign in and out, the jobs table (another user's job not in it), compile
and run from the Run page, a job's grid, results and log, pause and resume a running job,
review and correct a record then retry it to COMPLETE, upload files to the drive, a
CSRF-less state change refused, and /docs rendering Swagger UI with no network."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from shared.accounts.credentials import create_token
from shared.accounts.users import create_user
from shared.states import AttemptOutcome, DeliveryStatus, JobKind, JobStatus
from shared.store.db import session_scope
from shared.store.models import Delivery, DeliveryAttempt, Job, User
from tests.integration.control_udfs import CONTROL_UDFS, GATED_FLOW
from tests.integration.flows import (
    CHECKED_FLOW,
    compile_flow,
    invoice,
    put_project,
    run_async,
    status,
    wait_done,
)
from tests.support import wait_for

pytestmark = pytest.mark.integration

PROJECT = "alice/ui"
GATED = "alice/ui-gated"
BOBS = "bob/ui"


def add_failed_delivery(stack, job_id: str) -> None:
    """A webhook delivery of the job that failed once (nothing listens on port 9)."""
    moment = datetime.now(UTC)
    with session_scope(stack.settings.sql_url) as session:
        delivery = Delivery(
            job_id=job_id,
            channel="webhook",
            target="http://127.0.0.1:9/ui-hook",
            headers={},
            payload={"job_id": job_id, "status": "OK"},
            status=DeliveryStatus.FAILED,
            attempts=1,
            last_error="refused by the test",
            created_at=moment,
        )
        session.add(delivery)
        session.flush()
        session.add(
            DeliveryAttempt(
                delivery_id=delivery.id,
                number=1,
                outcome=AttemptOutcome.FAILED,
                started_at=moment,
                error="refused by the test",
            )
        )


def tags_of(stack, job_id: str) -> list[str]:
    listed = stack.client.get(
        f"/api/v1/jobs/list?job_ids={job_id}&from_timestamp=0", headers=stack.headers()
    )
    return sorted(listed.get_json()["jobs"][0]["tags"])


def job_id_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def ui(stack, tmp_path_factory):
    """alice's projects (compiled) and inputs; bob's job; a gate to hold a running step."""
    put_project(stack, PROJECT, CHECKED_FLOW)
    for name, total in (("a.txt", "100.00"), ("b.txt", "50.00")):
        stack.upload(f"{PROJECT}/data/good/{name}", invoice(name[0].upper(), total))
    # A record the UDF fails on: the job completes, its cell at `enrich` is failed.
    stack.upload(f"{PROJECT}/data/good/d.txt", invoice("D", "70.00") + b"boom\n")
    stack.upload(f"{PROJECT}/data/low/c.txt", invoice("C", "5"))
    checked = compile_flow(stack, PROJECT)
    assert checked["cur_status"]["status"] == "COMPLETE", checked
    stack.upload(f"{GATED}/flows/main.ibflow", GATED_FLOW.encode())
    stack.upload(f"{GATED}/udfs/control.py", CONTROL_UDFS.encode())
    stack.upload(f"{GATED}/data/input/g.txt", invoice("G", "20"))
    gated = compile_flow(stack, GATED)
    assert gated["cur_status"]["status"] == "COMPLETE", gated

    put_project(stack, BOBS, CHECKED_FLOW, user="bob")
    stack.upload(f"{BOBS}/data/in/x.txt", invoice("X", "99"), "bob")
    bobs = compile_flow(stack, BOBS, user="bob")
    bob_job = f"ui-bob-{uuid4().hex[:6]}"
    answer = run_async(
        stack,
        {
            "binary_path": bobs["results"][0]["binary_path"],
            "input_dir": f"{BOBS}/data/in",
            "job_id": bob_job,
        },
        user="bob",
    )
    assert answer.status_code == 200, answer.get_json()
    gate = tmp_path_factory.mktemp("ui-gate")
    return {
        "binary": checked["results"][0]["binary_path"],
        "gated_binary": gated["results"][0]["binary_path"],
        "bob_job": bob_job,
        "gate": gate,
    }


def test_sign_in_rejects_a_bad_token_and_sign_out_ends_the_session(stack, tab):
    tab.expected.append("401")  # the pages answered while signed out
    tab.go("/")
    tab.shoot("sign-in")
    tab.page.get_by_label("Token").fill("fb_not-a-token")
    tab.page.get_by_role("button", name="Sign in").click()
    alert = tab.page.get_by_role("alert")
    alert.wait_for()
    assert "not valid" in alert.inner_text()
    tab.sign_in(stack.tokens["alice"])
    cookie = next(c for c in tab.page.context.cookies() if c["name"] == "flowbin_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["expires"] > 0
    assert "alice" in tab.page.locator(".who").inner_text()
    tab.page.get_by_role("button", name="Sign out").click()
    tab.page.wait_for_url(f"{tab.base}/")
    tab.go("/jobs")
    assert tab.page.get_by_label("Token").is_visible(), "a signed-out browser sees the sign-in"
    # Signing in there, with the keyboard only, comes back to the page asked for.
    assert tab.page.evaluate("document.activeElement.id") == "token"
    tab.page.keyboard.type(stack.tokens["alice"])
    with tab.page.expect_navigation(url=f"{tab.base}/jobs"):
        tab.page.keyboard.press("Enter")
    tab.page.locator("h1", has_text="Jobs").wait_for()
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_compile_and_run_from_the_run_page_then_see_the_job_and_its_results(stack, ui, tab):
    tab.sign_in(stack.tokens["alice"])
    tab.go("/run")
    page = tab.page
    flow = f"{PROJECT}/flows/main.ibflow"
    page.locator(f'#compile-flow option[value="{flow}"]').wait_for(state="attached")
    tab.shoot("run")
    page.get_by_label("Flow file (.ibflow)").select_option(flow)
    page.get_by_role("button", name="Compile").click()
    page.wait_for_url(re.compile(r"/jobs/[^/]+$"))
    page.locator("#job-state", has_text="complete").wait_for()

    tab.go("/run")
    page.locator(f'#run-binary option[value="{ui["binary"]}"]').wait_for(state="attached")
    page.get_by_label("Binary (.ibflowbin)").select_option(ui["binary"])
    page.get_by_label("Input folder").select_option(f"{PROJECT}/data/good")
    page.get_by_label("Priority (0-9, 9 first)").fill("7")
    page.get_by_label("Tags").fill("ui-run, browser")
    page.get_by_role("button", name="Run").click()
    page.wait_for_url(re.compile(r"/jobs/[^/]+$"))
    job_id = job_id_of(page.url)
    page.locator("#job-state", has_text="complete").wait_for(timeout=60_000)

    # The grid: three files by four steps, d.txt failed at enrich with its error. Each poll reads
    # the state before the grid, so the grid may show the job one poll before it ended: wait for
    # its cells to catch up rather than count them once.
    page.locator("#grid tbody tr").nth(2).wait_for()
    assert page.locator("#grid thead th").all_text_contents() == [
        "File", "read", "fields", "check", "enrich"
    ]  # fmt: skip
    expect(page.locator("#grid td.done")).to_have_count(11)
    failed = page.locator("#grid td.failed")
    expect(failed).to_have_count(1)
    assert "cannot enrich a boom" in failed.inner_text()
    # Results: a row per record, with the refined fields; a CSV to download.
    page.locator("#results tbody tr").nth(2).wait_for()
    headings = page.locator("#results thead th").all_text_contents()
    assert headings[:4] == ["file_name", "record_index", "invoice_number", "total"]
    assert "total_with_tax" in headings
    assert "a.txt\t0\tA\t100\t110" in page.locator("#results tbody").inner_text()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    csv = Path(download.value.path()).read_text()
    assert csv.splitlines()[0].startswith("file_name,record_index,invoice_number,total")
    assert len(csv.strip().splitlines()) == 4
    # The log tails the job's lines; the level filter keeps the errors only.
    page.locator("#log", has_text="INFO").wait_for()
    page.get_by_label("Level").select_option("ERROR")
    assert "INFO" not in page.locator("#log").inner_text()
    page.get_by_label("Level").select_option("")
    assert page.locator("#tags-input").input_value() == "browser, ui-run"
    page.get_by_label("Tags").fill("browser, ui-run, edited")
    page.get_by_role("button", name="Save tags").click()
    page.get_by_role("status").get_by_text("Tags saved.").wait_for()
    assert tags_of(stack, job_id) == ["browser", "edited", "ui-run"]
    assert page.get_by_role("button", name="Retry").is_visible()
    assert not page.get_by_role("button", name="Pause").is_visible()
    # A failed webhook delivery, with its attempt; "Redeliver" sends a copy.
    add_failed_delivery(stack, job_id)
    deliveries = page.locator("#deliveries tbody tr")
    deliveries.first.wait_for()
    assert "refused by the test" in deliveries.first.inner_text()
    page.get_by_role("button", name="Redeliver").click()
    page.get_by_role("status").get_by_text("Delivery sent again.").wait_for()
    deliveries.nth(1).wait_for()
    tab.shoot("job")

    # The jobs table lists it (newest first), not bob's job.
    tab.go("/jobs")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    row.wait_for()
    assert "complete" in row.inner_text() and "100%" in row.inner_text()
    assert page.locator(f'tr[data-job-id="{ui["bob_job"]}"]').count() == 0
    page.get_by_label("Job id").fill(ui["bob_job"])
    page.get_by_role("button", name="Apply").click()
    page.locator("#jobs-empty").wait_for()
    page.get_by_label("Job id").fill("")
    page.get_by_label("Tags").fill("ui-run")
    page.get_by_role("button", name="Apply").click()
    page.locator(f'tr[data-job-id="{job_id}"]').wait_for()
    tab.shoot("jobs")
    # bob's job page shows that there is no such job for alice.
    tab.expected.append("404")
    tab.go(f"/jobs/{ui['bob_job']}")
    page.locator(".empty", has_text="no job").wait_for()


def test_pause_and_resume_a_running_job(stack, ui, tab):
    job_id = f"ui-gated-{uuid4().hex[:6]}"
    body = {
        "binary_path": ui["gated_binary"],
        "input_dir": f"{GATED}/data/input",
        "job_id": job_id,
        "settings": {"runtime_config": {"control_dir": str(ui["gate"])}, "output_has_run_id": True},
    }
    assert run_async(stack, body).status_code == 200
    gate = ui["gate"]
    try:
        wait_for(lambda: (gate / "started").exists(), message="the step held at the gate")
        tab.sign_in(stack.tokens["alice"])
        tab.go(f"/jobs/{job_id}")
        page = tab.page
        page.locator("#job-state", has_text="running").wait_for()
        page.locator("#grid td.running").wait_for()
        page.get_by_role("button", name="Pause").click()
        notice = page.get_by_role("status")
        notice.get_by_text("Pause requested.").wait_for()
        # Paused once the running step finishes: the gate opens.
        (gate / "open").touch()
        page.locator("#job-state", has_text="paused").wait_for(timeout=30_000)
        assert status(stack, job_id)["state"] == "DONE"
        assert page.get_by_role("button", name="Resume").is_visible()
        assert not page.get_by_role("button", name="Pause").is_visible()
        tab.shoot("job-paused")
        page.get_by_role("button", name="Resume").click()
        page.locator("#job-state", has_text="complete").wait_for(timeout=60_000)
    finally:
        (gate / "open").touch()
    assert wait_done(stack, job_id)["cur_status"]["status"] == "COMPLETE"


def test_review_and_correct_a_record_then_retry_it_to_complete(stack, ui, tab):
    job_id = f"ui-review-{uuid4().hex[:6]}"
    body = {"binary_path": ui["binary"], "input_dir": f"{PROJECT}/data/low", "job_id": job_id}
    assert run_async(stack, body).status_code == 200
    stopped = wait_done(stack, job_id)
    assert stopped["cur_status"]["status"] == "STOPPED_AT_CHECKPOINT", stopped

    tab.sign_in(stack.tokens["alice"])
    tab.go("/review")
    page = tab.page
    link = page.get_by_role("link", name=job_id)
    link.wait_for()
    tab.shoot("review-queue")
    tab.go(f"/jobs/{job_id}")
    page.locator("#grid td.stopped_at_checkpoint").wait_for()
    page.locator("#controls").get_by_role("link", name="Review").click()
    page.wait_for_url(f"{tab.base}/review/{job_id}")
    record = page.locator("article.record")
    record.wait_for()
    assert "total must be over 10" in record.inner_text()
    assert "Total: $5" in record.locator("pre").inner_text()
    total = page.get_by_label("total", exact=True)
    assert total.input_value() == "5"
    page.get_by_label("Reviewer", exact=True).fill("alice")
    page.get_by_role("button", name="Assign").click()
    page.locator("#rv-review-state", has_text="IN REVIEW").wait_for()
    total.fill("50")
    page.get_by_role("button", name="Save").click()
    record.get_by_text("reviewed by alice").wait_for()
    tab.shoot("review")
    page.get_by_role("button", name="Mark review complete").click()
    page.locator("#rv-review-state", has_text="COMPLETED").wait_for()
    page.get_by_role("button", name="Retry").click()
    page.wait_for_url(f"{tab.base}/jobs/{job_id}")
    page.locator("#job-state", has_text="complete").wait_for(timeout=60_000)
    # The results of the earlier stop may show until the page reads the new ones.
    expect(page.locator("#results tbody")).to_contain_text("55")  # total_with_tax of the 50


def test_upload_files_by_input_and_by_drag_and_drop(stack, tab, tmp_path):
    tab.sign_in(stack.tokens["alice"])
    folder = f"alice/ui-uploads-{uuid4().hex[:6]}"
    stack.upload(f"{folder}/keep.txt", b"kept")
    tab.go(f"/drive#{folder}")
    page = tab.page
    listing = page.locator("#listing")
    listing.get_by_text("keep.txt", exact=True).wait_for()
    chosen = tmp_path / "chosen.txt"
    chosen.write_text("picked with the file input")
    page.locator("#upload-input").set_input_files(str(chosen))
    listing.get_by_text("chosen.txt", exact=True).wait_for()
    # A drop event carrying a file, as a drag from the desktop delivers it.
    page.evaluate(
        """() => {
          const data = new DataTransfer();
          data.items.add(new File(["dropped bytes"], "dropped.txt", {type: "text/plain"}));
          const zone = document.getElementById("dropzone");
          zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true}));
        }"""
    )
    listing.get_by_text("dropped.txt", exact=True).wait_for()
    drive = stack.settings.drive_root / folder
    assert (drive / "chosen.txt").read_text() == "picked with the file input"
    assert (drive / "dropped.txt").read_text() == "dropped bytes"
    with page.expect_download() as download:
        page.get_by_role("button", name="Download keep.txt").click()
    assert Path(download.value.path()).read_bytes() == b"kept"
    tab.shoot("drive")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete keep.txt").click()
    listing.get_by_text("keep.txt", exact=True).wait_for(state="detached")
    assert not (drive / "keep.txt").exists()


def test_a_state_change_without_the_csrf_header_is_refused(stack, ui, tab):
    tab.expected.append("403")
    tab.sign_in(stack.tokens["alice"])
    refused = tab.page.evaluate(
        """async () => {
          const answer = await fetch("/api/v1/jobs/tags", {
            method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({job_id: "x", names: ["y"]})});
          return [answer.status, (await answer.json()).msg];
        }"""
    )
    assert refused[0] == 403 and "X-CSRF-Token" in refused[1]
    # The seed's job control calls are GETs: they need the header too.
    paused = tab.page.evaluate(
        f"""async () => (await fetch("/api/v1/jobs/pause?job_id={ui["bob_job"]}")).status"""
    )
    assert paused == 403


def test_docs_render_swagger_ui_with_no_network(tab):
    outside = []

    def only_this_server(route):
        if route.request.url.startswith(tab.base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    tab.page.route("**/*", only_this_server)
    tab.go("/docs")
    tab.page.locator(".swagger-ui .info .title", has_text="Flowbin").wait_for()
    tab.page.locator(".opblock-summary-path", has_text="/api/v1/jobs/status").first.wait_for()
    assert not outside, outside
    tab.shoot("docs")


def test_the_jobs_table_pages_newest_first_and_says_when_it_is_empty(stack, tab):
    name = f"pager{uuid4().hex[:6]}"
    now = datetime.now(UTC)
    with session_scope(stack.settings.sql_url) as session:
        owner = create_user(session, name).id
        token = create_token(session, name)
        for n in range(30):
            created = now - timedelta(minutes=n)
            session.add(
                Job(
                    id=f"{name}-{n:02d}",
                    owner_id=owner,
                    kind=JobKind.FLOW,
                    status=JobStatus.COMPLETE,
                    trace_id="0" * 32,
                    created_at=created,
                    started_at=created,
                    finished_at=created,
                )
            )
    tab.sign_in(token)
    page = tab.page
    rows = page.locator("#jobs-body tr[data-job-id]")
    rows.nth(24).wait_for()
    assert rows.count() == 25 and rows.first.get_attribute("data-job-id") == f"{name}-00"
    page.get_by_role("button", name="Older").click()
    page.locator(f'tr[data-job-id="{name}-29"]').wait_for()
    assert rows.count() == 5 and page.get_by_role("button", name="Older").is_disabled()
    page.get_by_role("button", name="Newer").click()
    page.locator(f'tr[data-job-id="{name}-00"]').wait_for()
    page.get_by_label("State", exact=True).select_option("FAILED")
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("No jobs match.").wait_for()
    assert not page.locator("#jobs-table").is_visible()


def test_cancel_asks_first_then_cancels(stack, tab):
    job_id = f"ui-cancel-{uuid4().hex[:6]}"
    with session_scope(stack.settings.sql_url) as session:
        # A queued job with nothing to run: cancelling it touches no worker.
        owner = session.scalar(select(User.id).where(User.username == "alice"))
        session.add(
            Job(
                id=job_id,
                owner_id=owner,
                kind=JobKind.FLOW,
                status=JobStatus.QUEUED,
                trace_id="0" * 32,
            )
        )
    tab.sign_in(stack.tokens["alice"])
    tab.go(f"/jobs/{job_id}")
    page = tab.page
    page.locator("#job-state", has_text="queued").wait_for()
    assert page.get_by_role("button", name="Pause").is_visible()
    page.get_by_role("button", name="Cancel").click()
    dialog = page.get_by_role("dialog")
    assert "never runs again" in dialog.inner_text()
    tab.shoot("job-cancel-dialog")
    dialog.get_by_role("button", name="Keep it running").click()
    assert status(stack, job_id)["state"] == "PENDING"
    page.get_by_role("button", name="Cancel").click()
    dialog.get_by_role("button", name="Cancel job").click()
    page.locator("#job-state", has_text="cancelled").wait_for()
    assert not page.get_by_role("button", name="Cancel").is_visible()
    assert not page.get_by_role("button", name="Retry").is_visible()
