"""The resource API's vocabularies and its list cursor: every job state has a name in seed 002's
and seed 003's vocabularies, every job kind a type, every desired execution status a way there
from the transition table; a cursor survives its round trip and a forged one is a 400."""

from datetime import UTC, datetime

import pytest

from shared.errors import InvalidRequest
from shared.jobs.resource_listing import Cursor, states_named
from shared.runs.desired_state import WISHES
from shared.states import (
    EXECUTION_STATUS,
    RESOURCE_STATUS,
    RESOURCE_TYPE,
    DesiredExecution,
    JobKind,
    JobStatus,
)


def test_every_state_and_kind_has_its_resource_names():
    assert set(RESOURCE_STATUS) == set(JobStatus) == set(EXECUTION_STATUS)
    assert set(RESOURCE_TYPE) == set(JobKind)
    assert len(set(RESOURCE_TYPE.values())) == len(JobKind)
    assert RESOURCE_STATUS[JobStatus.STOPPED_AT_CHECKPOINT] == "blocked"
    assert states_named(EXECUTION_STATUS, ["suspended"]) == {
        JobStatus.PAUSED,
        JobStatus.STOPPED_AT_CHECKPOINT,
    }


def test_each_wish_leaves_from_its_transition_and_holds_where_it_leads():
    assert set(WISHES) == set(DesiredExecution)
    for wish in WISHES.values():
        # Once the action is done the wish holds, and where it holds there is nothing to do.
        assert wish.transition.target in wish.holds_in
        assert not wish.holds_in & wish.transition.sources


def test_a_cursor_survives_its_round_trip():
    cursor = Cursor(datetime(2026, 12, 8, 10, 0, 0, 123456, tzinfo=UTC), "job-1.a_b")
    assert Cursor.decode(cursor.encode()) == cursor
    assert "=" not in cursor.encode()


@pytest.mark.parametrize(
    "text",
    [
        "!!",
        "bm90LWEtY3Vyc29y",  # "not-a-cursor"
        Cursor(datetime(2026, 1, 1, tzinfo=UTC), "a\x00b").encode(),
        Cursor(datetime(2026, 1, 1), "naive").encode(),
    ],
)
def test_a_cursor_the_api_did_not_make_is_a_400(text):
    with pytest.raises(InvalidRequest, match="cursor"):
        Cursor.decode(text)
