"""W3C traceparent: which headers are taken, and the trace id a request's jobs get."""

import re

import pytest

from shared.jobs.ids import new_trace_id
from shared.metrics import traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_a_valid_header_gives_its_trace_id_parent_and_flags():
    found = traceparent.parse(f"00-{TRACE}-{PARENT}-01")
    assert found == traceparent.Incoming(TRACE, PARENT, "01")


def test_a_later_version_is_read_by_its_first_four_fields():
    assert traceparent.parse(f"cc-{TRACE}-{PARENT}-00-more").trace_id == TRACE


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{PARENT}-01",  # hex must be lowercase
        f"00-{TRACE[:-1]}-{PARENT}-01",  # 31 digits
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{TRACE}-{PARENT}-1",
    ],
)
def test_an_invalid_header_is_ignored(header):
    assert traceparent.parse(header) is None


def test_outside_a_request_every_job_gets_a_fresh_32_digit_trace_id():
    first, second = new_trace_id(), new_trace_id()
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second
    assert traceparent.response_header() is None


def test_a_request_with_a_traceparent_gives_its_trace_id_to_its_jobs_and_answer():
    traceparent.begin(f"00-{TRACE}-{PARENT}-00")
    try:
        assert traceparent.response_header() is None  # no job yet: nothing to name
        assert new_trace_id() == TRACE and new_trace_id() == TRACE
        answer = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-00", traceparent.response_header())
        assert answer and answer.group(1) == TRACE and answer.group(2) != PARENT
    finally:
        traceparent.end()
    assert new_trace_id() != TRACE


def test_a_request_with_an_invalid_header_gets_one_new_trace_for_its_jobs():
    traceparent.begin(f"00-{'0' * 32}-{PARENT}-01")
    try:
        chosen = new_trace_id()
        assert chosen != "0" * 32 and new_trace_id() == chosen
        assert traceparent.response_header().startswith(f"00-{chosen}-")
        assert traceparent.response_header().endswith("-01")
    finally:
        traceparent.end()
