"""What every request adds to the API's metrics and trace context: its count and latency by
URL rule (shared/metrics/api_series.py), and the W3C ``traceparent`` it came with, which gives
the jobs it creates their trace id (shared/metrics/traceparent.py)."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from shared.metrics import api_series, traceparent

TRACEPARENT = "traceparent"
_STARTED = "flowbin_started"


def instrument(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_answer)
    app.teardown_request(_end)


def _begin() -> None:
    g.setdefault(_STARTED, time.perf_counter())
    traceparent.begin(request.headers.get(TRACEPARENT))


def _answer(response: Response) -> Response:
    header = traceparent.response_header()
    # A refused request may have chosen a trace id for a job it then did not create.
    if header is not None and response.status_code < 400:
        response.headers[TRACEPARENT] = header
    started = g.get(_STARTED)
    if started is not None:
        rule = request.url_rule.rule if request.url_rule is not None else None
        api_series.request_answered(
            rule, request.method, response.status_code, time.perf_counter() - started
        )
    return response


def _end(_error: BaseException | None) -> None:
    traceparent.end()
