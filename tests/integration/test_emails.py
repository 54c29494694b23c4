"""Notification emails end to end: a real run, worker and beat, and an SMTP server (aiosmtpd)
in this process."""

from __future__ import annotations

from email import message_from_string

import pytest

pytestmark = pytest.mark.integration


def test_an_email_reaches_each_address_when_the_run_ends(notify):
    inbox = notify.inbox
    before = len(inbox.messages)
    addresses = [f"ops-{notify.backend}@example.com", f"dev-{notify.backend}@example.com"]
    job_id = notify.run(f"mail-{notify.backend}", notification_emails=addresses)
    found = notify.wait_deliveries(
        job_id,
        lambda found: len(found) == 2 and all(d["status"] == "delivered" for d in found),
        message="both emails",
    )
    assert [(d["channel"], d["target"], d["attempts"]) for d in found] == [
        ("email", address, 1) for address in addresses
    ]

    received = {tuple(m["to"]): m for m in inbox.messages[before:]}
    assert set(received) == {(address,) for address in addresses}  # one message per address
    for address in addresses:
        message = message_from_string(received[(address,)]["content"])
        assert received[(address,)]["from"] == "flowbin@test.local"
        assert message["To"] == address
        assert message["Subject"] == f"Flowbin job {job_id}: COMPLETE"
        text = message.get_payload()
        assert f"Flowbin job {job_id} finished: COMPLETE." in text
        assert "Output folder: alice/notify/data/out/" in text


def test_an_address_the_server_refuses_is_retried_like_a_webhook(notify):
    address = f"busy-{notify.backend}@example.com"
    notify.inbox.refuse_once.add(address)
    job_id = notify.run(f"mail-retry-{notify.backend}", notification_emails=[address])
    [delivery] = notify.wait_deliveries(
        job_id,
        lambda found: found[0]["status"] == "delivered",
        message="the email's second attempt",
    )
    first, second = delivery["attempt_log"]
    assert first["outcome"] == "failed" and "450" in first["error"]
    assert second["outcome"] == "delivered"
    assert sum(m["to"] == [address] for m in notify.inbox.messages) == 1
