"""``http``: post the record to an external service and keep its JSON reply in a field.

The URL goes through the URL guard (shared/url_guard.py) given in the step's env: public
addresses only unless the operator allowed the network, judged on the address connected to, and
each redirect hop (at most ``MAX_REDIRECTS``) judged the same way before anything is sent there.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import requests

from shared.flow.records import RecordError, child_record, to_json_value
from shared.flow.step_types import param_checks as check
from shared.flow.step_types.env import Record, StepEnv
from shared.flow.step_types.step_type import StepType
from shared.url_guard import BlockedUrl, UrlGuard, split_url

# Keys that stay on this side: a worker's file path means nothing to the service.
_PRIVATE_KEYS = frozenset({"source_path"})
# Enough for an http-to-https move and a load balancer's hop; more is a loop or a misconfiguration.
MAX_REDIRECTS = 5


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    check.keys(params, {"url", "timeout", "retries", "headers", "result_field"}, {"url"})
    url = check.text(params["url"], "url")
    try:
        # What can be refused without a lookup is refused at compile time; the addresses are
        # judged when the step runs, against the networks the operator allows then.
        split_url(url)
    except BlockedUrl as error:
        raise ValueError(f"url: {error.reason}") from None
    headers = params.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
    ):
        raise ValueError("headers must be a mapping of header name to string value")
    return {
        "url": url,
        "timeout": check.number(params.get("timeout", 10), "timeout", 0.1, 600),
        "retries": check.number(params.get("retries", 2), "retries", 0, 10, integer=True),
        "headers": dict(headers),
        "result_field": check.text(params.get("result_field", "http_response"), "result_field"),
    }


def retry_delay(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, ...): 0.5, 1, 2, 4, capped at 5."""
    return min(0.5 * 2 ** (attempt - 1), 5.0)


def _attempt(
    guard: UrlGuard, params: Mapping[str, Any], payload: dict[str, Any]
) -> tuple[Any, str | None]:
    """(reply, None) on success, (None, problem) for a failure worth retrying; raises
    RecordError for one that is not (a refused address, a 4xx, a reply that is not JSON)."""
    url = params["url"]
    try:
        with guard.session(max_redirects=MAX_REDIRECTS) as http:
            response = http.post(
                url, json=payload, headers=params["headers"], timeout=params["timeout"]
            )
    except BlockedUrl as exc:
        raise RecordError(f"refused to call {url}: {exc.reason}") from None
    except requests.TooManyRedirects:
        raise RecordError(f"{url} redirected more than {MAX_REDIRECTS} times") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        return None, f"{type(exc).__name__} from {url}"
    except requests.RequestException as exc:
        raise RecordError(f"request to {url} failed: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 500:
        return None, f"HTTP {response.status_code} from {url}"
    if response.status_code >= 400:
        raise RecordError(f"HTTP {response.status_code} from {url}: {response.text[:200]}")
    try:
        return response.json(), None
    except ValueError:
        raise RecordError(f"the reply from {url} is not JSON") from None


def run(env: StepEnv, record: Record) -> list[Record]:
    params = env.step.params
    payload = {key: value for key, value in record.items() if key not in _PRIVATE_KEYS}
    attempts = params["retries"] + 1
    problem = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(retry_delay(attempt))
        reply, problem = _attempt(env.url_guard, params, payload)
        if problem is None:
            fields = {**(record.get("fields") or {}), params["result_field"]: to_json_value(reply)}
            return [child_record(record, fields=fields)]
    raise RecordError(f"{problem} after {attempts} attempts")


STEP_TYPE = StepType(
    name="http",
    summary="posts the record to `url` as JSON, retrying 5xx and network errors; keeps the reply",
    check_params=check_params,
    run=run,
)
