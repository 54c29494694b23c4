"""Completion webhooks: the seed's body, the configuration a run may ask for, signing, and one
attempt over HTTP.

Headers of every attempt (besides the run's own ``webhook_config.headers``):

- ``X-Flowbin-Delivery``: the delivery id; the same for every attempt of one delivery, so a
  receiver can drop duplicates (delivery is at least once).
- ``X-Flowbin-Attempt``: 1 for the first attempt, up to 8.
- ``X-Flowbin-Timestamp``: Unix seconds when the attempt was sent.
- ``X-Flowbin-Signature``: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`` keyed with the
  job owner's webhook secret; only when the owner has set one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping

import requests

from shared.config import Settings
from shared.delivery.store import AttemptResult, Claim
from shared.errors import InvalidRequest
from shared.states import FAILED_OR_CANCELLED, JobStatus
from shared.url_guard import (
    SETTING,
    WEBHOOK_SETTING,
    BlockedUrl,
    Resolver,
    UrlGuard,
    parse_networks,
    resolve,
)

SIGNATURE_HEADER = "X-Flowbin-Signature"
TIMESTAMP_HEADER = "X-Flowbin-Timestamp"
DELIVERY_HEADER = "X-Flowbin-Delivery"
ATTEMPT_HEADER = "X-Flowbin-Attempt"
USER_AGENT = "Flowbin-Webhook/1"
# Headers Flowbin sets itself: a run's webhook_config cannot override them.
RESERVED = {
    name.lower()
    for name in (
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        DELIVERY_HEADER,
        ATTEMPT_HEADER,
        "Content-Type",
        "Content-Length",
        "Host",
        "Transfer-Encoding",
        "Connection",
    )
}
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")

FIELD = "settings.webhook_config"


def payload(
    job_id: str, status: JobStatus, message: str, binary_path: str, input_dir: str, output: str
) -> dict:
    """Seed 001's body: ``msg`` only when ``status`` is ERROR (a failed or cancelled job)."""
    body: dict = {"status": "ERROR" if status in FAILED_OR_CANCELLED else "OK"}
    if status in FAILED_OR_CANCELLED:
        body["msg"] = message
    body.update(job_id=job_id, binary_path=binary_path, input_dir=input_dir, output=output)
    return body


def encode(body: Mapping) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, now: float, tolerance: float = 300
) -> bool:
    """What a receiver does (documented in the README): recompute, compare in constant time,
    and refuse a timestamp too far from its own clock, which stops replays of old requests."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature or "")


def normalize_headers(raw) -> dict[str, str]:
    """``webhook_config.headers`` as a dict of strings. The seed types it as a string, so a JSON
    object in a string and ``Name: value`` lines are accepted too."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("{"):
            try:
                raw = json.loads(text)
            except ValueError as error:
                raise InvalidRequest(
                    f"{FIELD}.headers: not a valid JSON object ({error})"
                ) from error
        else:
            raw = {}
            for line in filter(None, (part.strip() for part in text.splitlines())):
                name, colon, value = line.partition(":")
                if not colon:
                    raise InvalidRequest(
                        f"{FIELD}.headers: {line!r} is not a 'Name: value' header line"
                    )
                raw[name.strip()] = value.strip()
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{FIELD}.headers: give an object of header names to values")
    headers = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not HEADER_NAME.match(name):
            raise InvalidRequest(f"{FIELD}.headers: {name!r} is not a valid header name")
        if name.lower() in RESERVED:
            raise InvalidRequest(f"{FIELD}.headers: {name!r} is set by Flowbin and cannot be given")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise InvalidRequest(f"{FIELD}.headers.{name}: header values must be strings")
        value = str(value)
        if any(ch in value for ch in "\r\n\0") or len(value) > 4096:
            raise InvalidRequest(
                f"{FIELD}.headers.{name}: a header value must be one line of at most 4096 "
                "characters"
            )
        headers[name] = value
    return headers


def guard(settings: Settings, resolver: Resolver = resolve) -> UrlGuard:
    """The URL guard for webhooks: the networks of FLOWBIN_ALLOWED_NETWORKS and, for webhooks
    only, those of the older FLOWBIN_WEBHOOK_ALLOWED_NETWORKS. A bad entry is a ValueError."""
    return UrlGuard(
        parse_networks(settings.allowed_networks)
        + parse_networks(settings.webhook_allowed_networks, WEBHOOK_SETTING),
        resolver,
        setting=f"{SETTING} (or {WEBHOOK_SETTING})",
    )


def checked_config(settings: Settings, config: Mapping | None) -> dict | None:
    """A run's ``webhook_config`` as stored with the job, or InvalidRequest (a 400) saying what is
    wrong: the URL must pass the guard (shared/url_guard.py) and the headers must be headers."""
    # Without a URL there is nothing to call: Instabase's toolkits send {"headers": {}}.
    if not config or config.get("url") is None:
        return None
    url = guard(settings).check_url(config.get("url"), field=f"{FIELD}.url")
    return {"url": url, "headers": normalize_headers(config.get("headers"))}


def attempt(settings: Settings, claim: Claim, *, resolver: Resolver = resolve) -> AttemptResult:
    """POST the delivery once, through the URL guard (``resolver`` is the lookup it uses). Any
    2xx acknowledges it; every other answer, a refused address, a timeout or an unreachable
    receiver is a failed attempt. Never raises: every failure is in the result."""
    started = time.monotonic()

    def result(delivered: bool, status_code: int | None = None, error: str = "") -> AttemptResult:
        elapsed = int((time.monotonic() - started) * 1000)
        return AttemptResult(delivered, elapsed, status_code, error[:2000])

    try:
        webhook_guard = guard(settings, resolver)
    except ValueError as error:  # a bad FLOWBIN_ALLOWED_NETWORKS or FLOWBIN_WEBHOOK_...
        return result(False, error=str(error))
    body = encode(claim.payload)
    timestamp = int(time.time())
    headers = {
        "User-Agent": USER_AGENT,  # a run's headers may replace this one, not the others
        **claim.headers,
        "Content-Type": "application/json",
        DELIVERY_HEADER: str(claim.delivery_id),
        ATTEMPT_HEADER: str(claim.number),
        TIMESTAMP_HEADER: str(timestamp),
    }
    if claim.secret:
        headers[SIGNATURE_HEADER] = sign(claim.secret, timestamp, body)
    try:
        # The guard checks the address when the connection opens, so a host that resolves
        # elsewhere than when the run was submitted is judged on where it points now. No
        # redirects: a 3xx is not an acknowledgement (seed 001).
        with (
            webhook_guard.session() as http,
            http.post(
                claim.target,
                data=body,
                headers=headers,
                timeout=(settings.delivery_timeout, settings.delivery_timeout),
                allow_redirects=False,
                stream=True,
            ) as response,
        ):
            code = response.status_code
    except BlockedUrl as error:
        return result(False, error=f"not sent: webhook URL: {error.reason}")
    except requests.Timeout as error:
        phase = (
            "connecting" if isinstance(error, requests.ConnectTimeout) else "waiting for an answer"
        )
        return result(False, error=f"timed out after {settings.delivery_timeout:g} s {phase}")
    except requests.ConnectionError as error:
        return result(False, error=f"could not connect: {_root_cause(error)}")
    except requests.RequestException as error:
        return result(False, error=f"{type(error).__name__}: {error}")
    if 200 <= code < 300:
        return result(True, code)
    return result(False, code, f"the receiver answered HTTP {code}; only a 2xx acknowledges")


def _root_cause(error: BaseException) -> str:
    """The OS's reason under requests' and urllib3's wrappers ("[Errno 111] Connection
    refused"), else the whole message."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and type(current).__module__ == "builtins":
            return f"{type(current).__name__}: {current}"
        first = current.args[0] if current.args else None
        current = (
            current.__cause__
            or current.__context__
            or getattr(current, "reason", None)
            or (first if isinstance(first, BaseException) else None)
        )
    return str(error)
