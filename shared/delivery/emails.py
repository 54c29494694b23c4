"""Notification emails: one message per address when a run ends, sent through the configured
SMTP server (FLOWBIN_SMTP_*), one attempt at a time like webhooks."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate

from shared.config import Settings
from shared.delivery.store import AttemptResult, Claim
from shared.states import SEED_STATUS, JobStatus

TLS_MODES = ("none", "starttls", "ssl")


def content(job_id: str, status: JobStatus, message: str, webhook_body: dict) -> dict:
    """Subject and text of a job's notification email, kept with the delivery."""
    word = SEED_STATUS[status]
    lines = [f"Flowbin job {job_id} finished: {word}.", ""]
    if message:
        lines.append(f"Message: {message}")
    lines += [
        f"Binary: {webhook_body.get('binary_path', '')}",
        f"Input folder: {webhook_body.get('input_dir', '')}",
        f"Output folder: {webhook_body.get('output', '')}",
        "",
        f"Poll /api/v1/jobs/status?job_id={job_id} for the run summary.",
    ]
    return {
        "subject": f"Flowbin job {job_id}: {word}",
        "text": "\n".join(lines) + "\n",
    }


def build_message(settings: Settings, claim: Claim) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = claim.target
    message["Subject"] = claim.payload.get("subject", f"Flowbin job {claim.job_id}")
    message["Date"] = formatdate(usegmt=True)
    # The same Message-ID on every attempt lets mail systems drop a duplicate.
    domain = settings.smtp_from.rpartition("@")[2] or "flowbin.local"
    message["Message-ID"] = f"<flowbin-delivery-{claim.delivery_id}@{domain}>"
    message["X-Flowbin-Delivery"] = str(claim.delivery_id)
    message.set_content(claim.payload.get("text", ""))
    return message


def attempt(settings: Settings, claim: Claim) -> AttemptResult:
    """Hand the message to the SMTP server once; accepted is delivered, anything else (refused
    recipient, unreachable server, timeout, bad credentials) a failed attempt. Never raises."""
    started = time.monotonic()

    def result(delivered: bool, error: str = "") -> AttemptResult:
        return AttemptResult(
            delivered, int((time.monotonic() - started) * 1000), None, error[:2000]
        )

    if not settings.smtp_host:
        return result(False, "no SMTP server is configured: set FLOWBIN_SMTP_HOST")
    mode = settings.smtp_tls.strip().lower()
    if mode not in TLS_MODES:
        return result(
            False, f"FLOWBIN_SMTP_TLS is {settings.smtp_tls!r}: use one of {', '.join(TLS_MODES)}"
        )
    timeout = settings.delivery_timeout
    try:
        if mode == "ssl":
            client = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with client:
            if mode == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                client.login(settings.smtp_user, settings.smtp_password)
            refused = client.send_message(build_message(settings, claim))
    except (smtplib.SMTPException, OSError) as error:
        return result(False, f"{type(error).__name__}: {error}")
    if refused:
        return result(False, f"the server refused {claim.target}: {refused}")
    return result(True)
