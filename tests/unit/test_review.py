"""The pure parts of checkpoint review: finding a stopped record, correcting its input, and
counting what is pending."""

from __future__ import annotations

import pytest

from shared.errors import Conflict, NotFound
from shared.jobs.summary import flow_review_metrics
from shared.review.records import corrected_input, stopped_position, stopped_records


def record(index: int, failed: list[str] | None = None, **fields) -> dict:
    return {
        "file_name": "f.txt",
        "file_index": 0,
        "record_index": index,
        "fields": fields,
        "error": None,
        "checkpoint_failed": failed or [],
    }


def test_stopped_records_are_those_with_failed_rules_in_order():
    output = [record(0), record(1, ["total must be positive"]), record(2, ["x", "y"])]
    assert [position for position, _ in stopped_records(output)] == [1, 2]


def test_a_record_that_passed_is_not_awaiting_review_and_a_missing_one_is_not_found():
    output = [record(0), record(1, ["total must be positive"])]
    assert stopped_position(output, 1, "f.txt") == 1
    with pytest.raises(Conflict, match="passed the checkpoint"):
        stopped_position(output, 0, "f.txt")
    with pytest.raises(NotFound, match="no record 7"):
        stopped_position(output, 7, "f.txt")


def test_a_correction_changes_only_the_named_fields_of_that_record():
    inputs = [record(0, total=5), record(1, total=0, number="B-2")]
    corrected = corrected_input(inputs, 1, 1, {"total": 42, "added": "yes"})
    assert corrected[1]["fields"] == {"total": 42, "number": "B-2", "added": "yes"}
    assert corrected[0] is inputs[0]
    assert inputs[1]["fields"] == {"total": 0, "number": "B-2"}  # the input is not mutated


def test_an_input_that_no_longer_matches_the_output_is_refused():
    with pytest.raises(Conflict, match="no longer matches"):
        corrected_input([record(0)], 1, 1, {"total": 1})
    with pytest.raises(Conflict, match="no longer matches"):
        corrected_input([record(3)], 0, 0, {"total": 1})


@pytest.mark.parametrize(
    ("stopped", "reviewed", "current", "expected"),
    [
        (0, 0, 0, {"reviewed": 0, "pending": 0}),
        (3, 1, 1, {"reviewed": 1, "pending": 2}),
        (1, 1, 0, {"reviewed": 1, "pending": 1}),  # reviewed before a retry, stopped again
        (0, 2, 0, {"reviewed": 2, "pending": 0}),  # corrected and passed on retry
    ],
)
def test_metrics_count_as_pending_what_was_not_reviewed_since_the_job_stopped(
    stopped, reviewed, current, expected
):
    assert flow_review_metrics(stopped, reviewed, current) == expected
