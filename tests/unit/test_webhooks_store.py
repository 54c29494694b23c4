"""Deliveries in the store, on SQLite and PostgreSQL: created with the job's final state change,
claimed by one worker at a time, retried with backoff, lost attempts recovered after the lease."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared.accounts.principal import Principal
from shared.accounts.users import create_user, find_user
from shared.config import Settings
from shared.delivery import store as delivery_store
from shared.delivery.policy import MAX_ATTEMPTS, lease_seconds
from shared.delivery.store import AttemptResult, DeliveryStatus
from shared.errors import NotFound
from shared.jobs.store import transition_job
from shared.states import JobStatus
from shared.store.db import session_scope
from shared.store.models import Delivery, DeliveryAttempt, Job

SETTINGS = Settings(
    delivery_retry_base=10, delivery_retry_cap=60, delivery_timeout=5, delivery_lease=30
)
T0 = datetime(2030, 1, 1, tzinfo=UTC)
FAILED = AttemptResult(False, 12, 503, "the receiver answered HTTP 503")
OK = AttemptResult(True, 7, 204)


def make_job(url, job_id="job-1", status=JobStatus.RUNNING, owner="carol", **wanted):
    with session_scope(url) as session:
        user = find_user(session, owner) or create_user(session, owner)
        session.add(
            Job(
                id=job_id,
                owner_id=user.id,
                kind="flow",
                status=status.value,
                trace_id="t",
                message="Running",
                binary_path="carol/b.ibflowbin",
                input_dir="carol/in",
                output_dir="carol/out",
                settings={
                    "webhook_config": wanted.get("webhook"),
                    "notification_emails": wanted.get("emails", []),
                },
            )
        )
        return user.id


def add_deliveries(url, count, job_id="job-1"):
    with session_scope(url) as session:
        session.add_all(
            Delivery(
                job_id=job_id,
                channel="webhook",
                target=f"http://h/{n}",
                headers={},
                payload={"n": n},
                status="pending",
                attempts=0,
                next_attempt_at=T0,
                last_error="",
            )
            for n in range(count)
        )


def rows(url):
    with session_scope(url) as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def attempts_of(url, delivery_id):
    with session_scope(url) as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.number)
            )
        )


def claim(url, now, limit=1):
    with session_scope(url) as session:
        return delivery_store.claim_due(session, SETTINGS, now, limit)


def record(url, found, result, now):
    with session_scope(url) as session:
        return delivery_store.record_attempt(session, SETTINGS, found, result, now, rng=lambda: 1.0)


def test_final_state_change_creates_the_deliveries_in_its_transaction(store_url):
    make_job(
        store_url,
        webhook={"url": "http://h/x", "headers": {"X-A": "1"}},
        emails=["a@example.com", "b@example.com", "a@example.com"],
    )
    with pytest.raises(RuntimeError), session_scope(store_url) as session:
        assert transition_job(session, "job-1", JobStatus.COMPLETE, message="Completed x")
        raise RuntimeError("roll back")
    assert rows(store_url) == []
    with session_scope(store_url) as session:
        transition_job(session, "job-1", JobStatus.PAUSED)  # not final: nothing to tell
    assert rows(store_url) == []
    with session_scope(store_url) as session:
        transition_job(session, "job-1", JobStatus.CANCELLED, message="Cancelled by carol")
        assert not transition_job(session, "job-1", JobStatus.CANCELLED, strict=False)
    found = rows(store_url)
    assert [(r.channel, r.target) for r in found] == [
        ("webhook", "http://h/x"),
        ("email", "a@example.com"),
        ("email", "b@example.com"),
    ]
    hook = found[0]
    assert hook.headers == {"X-A": "1"} and hook.status == "pending" and hook.attempts == 0
    assert hook.payload == {
        "status": "ERROR",
        "msg": "Cancelled by carol",
        "job_id": "job-1",
        "binary_path": "carol/b.ibflowbin",
        "input_dir": "carol/in",
        "output": "carol/out",
    }
    assert found[1].payload["subject"] == "Flowbin job job-1: CANCELLED"


def test_a_job_without_receivers_gets_no_deliveries(store_url):
    make_job(store_url)
    with session_scope(store_url) as session:
        transition_job(session, "job-1", JobStatus.COMPLETE)
    assert rows(store_url) == []


def test_each_due_delivery_is_claimed_by_exactly_one_of_many_workers(store_url):
    make_job(store_url)
    add_deliveries(store_url, 40)

    def worker(_):
        mine = []
        while batch := claim(store_url, T0, limit=3):
            mine.extend(c.delivery_id for c in batch)
        return mine

    with ThreadPoolExecutor(max_workers=6) as pool:
        claimed = [d for part in pool.map(worker, range(6)) for d in part]
    assert sorted(claimed) == [r.id for r in rows(store_url)]  # every one, none twice
    assert all(r.attempts == 1 for r in rows(store_url))
    assert claim(store_url, T0 + timedelta(seconds=5)) == []  # all held by their claims


def test_failed_attempts_back_off_then_the_eighth_failure_is_final(store_url):
    make_job(store_url)
    add_deliveries(store_url, 1)
    now = T0
    for number in range(1, MAX_ATTEMPTS + 1):
        [found] = claim(store_url, now)
        assert found.number == number
        assert claim(store_url, now) == []  # never attempted twice at once
        status = record(store_url, found, FAILED, now)
        [row] = rows(store_url)
        if number < MAX_ATTEMPTS:
            assert status == DeliveryStatus.PENDING
            delay = min(10 * 2 ** (number - 1), 60)
            due = row.next_attempt_at.replace(tzinfo=UTC)
            assert due == now + timedelta(seconds=delay)
            assert claim(store_url, due - timedelta(seconds=1)) == []  # not due yet
            now = due
    assert status == DeliveryStatus.FAILED
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 8, None)
    assert (row.last_status_code, row.last_error) == (503, "the receiver answered HTTP 503")
    logged = attempts_of(store_url, row.id)
    assert [(a.number, a.outcome, a.status_code) for a in logged] == [
        (n, "failed", 503) for n in range(1, 9)
    ]
    assert claim(store_url, now + timedelta(days=1)) == []


def test_a_2xx_ends_it(store_url):
    make_job(store_url)
    add_deliveries(store_url, 1)
    [found] = claim(store_url, T0)
    record(store_url, found, FAILED, T0)
    [found] = claim(store_url, T0 + timedelta(seconds=10))
    assert record(store_url, found, OK, T0 + timedelta(seconds=11)) == DeliveryStatus.DELIVERED
    [row] = rows(store_url)
    assert (row.status, row.attempts, row.last_status_code, row.next_attempt_at) == (
        "delivered",
        2,
        204,
        None,
    )
    assert [a.outcome for a in attempts_of(store_url, row.id)] == ["failed", "delivered"]


def test_a_worker_that_dies_mid_attempt_loses_the_delivery_only_until_its_lease_ends(store_url):
    make_job(store_url)
    add_deliveries(store_url, 1)
    [dead] = claim(store_url, T0)  # this worker never records anything
    lease = lease_seconds(SETTINGS)
    assert claim(store_url, T0 + timedelta(seconds=lease - 1)) == []
    [again] = claim(store_url, T0 + timedelta(seconds=lease))
    assert again.number == 2 and again.token != dead.token
    # The dead worker's late outcome cannot touch the delivery its successor holds.
    assert record(store_url, dead, OK, T0 + timedelta(seconds=lease)) is None
    assert record(store_url, again, OK, T0 + timedelta(seconds=lease + 1)) == "delivered"
    [row] = rows(store_url)
    assert [a.outcome for a in attempts_of(store_url, row.id)] == ["delivered", "delivered"]


def test_lost_attempts_count_so_a_delivery_that_keeps_killing_workers_ends(store_url):
    make_job(store_url)
    add_deliveries(store_url, 1)
    lease = timedelta(seconds=lease_seconds(SETTINGS))
    now = T0
    for _ in range(MAX_ATTEMPTS):
        assert claim(store_url, now)
        now += lease
    assert claim(store_url, now) == []
    [row] = rows(store_url)
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    assert "worker stopped" in row.last_error
    assert {a.outcome for a in attempts_of(store_url, row.id)} == {"lost"}


def test_redeliver_moves_a_pending_one_forward_and_copies_a_finished_one(store_url):
    carol = make_job(store_url)
    add_deliveries(store_url, 1)
    owner = Principal(carol, "carol", False)
    [found] = claim(store_url, T0)
    record(store_url, found, FAILED, T0)  # next attempt in 10 s
    with session_scope(store_url) as session:
        moved = delivery_store.redeliver(
            session, owner, found.delivery_id, T0 + timedelta(seconds=1)
        )
        assert moved.id == found.delivery_id
    assert [c.delivery_id for c in claim(store_url, T0 + timedelta(seconds=1))] == [moved.id]
    with session_scope(store_url) as session:
        session.get(Delivery, moved.id).status = "delivered"
        copy = delivery_store.redeliver(session, owner, moved.id, T0 + timedelta(seconds=2))
        assert (copy.redelivery_of, copy.attempts, copy.status) == (moved.id, 0, "pending")
    dave = Principal(make_job(store_url, "job-2", owner="dave"), "dave", False)
    with pytest.raises(NotFound), session_scope(store_url) as session:
        delivery_store.redeliver(session, dave, moved.id, T0)
    with session_scope(store_url) as session:
        delivery_store.redeliver(session, Principal(0, "root", True), moved.id, T0)  # admins may
