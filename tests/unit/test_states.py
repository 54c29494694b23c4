from shared.states import (
    FINISHED,
    SEED_STATE,
    SEED_STATUS,
    TERMINAL,
    TRANSITIONS,
    JobStatus,
    allowed_sources,
    can_transition,
)


def test_cancelled_is_final():
    assert TRANSITIONS[JobStatus.CANCELLED] == frozenset()
    assert not any(can_transition(JobStatus.CANCELLED, target) for target in JobStatus)


def test_every_state_has_a_row_and_a_seed_name():
    assert set(TRANSITIONS) == set(JobStatus)
    assert set(SEED_STATUS) == set(JobStatus)


def test_seed_state_is_done_exactly_for_terminal_states():
    assert {s for s, state in SEED_STATE.items() if state == "DONE"} == TERMINAL
    assert SEED_STATE[JobStatus.QUEUED] == SEED_STATE[JobStatus.RUNNING] == "PENDING"


def test_finished_jobs_only_go_back_to_queued_and_not_from_cancelled():
    for status in FINISHED - {JobStatus.CANCELLED}:
        assert TRANSITIONS[status] == frozenset({JobStatus.QUEUED})


def test_allowed_sources_inverts_the_table():
    assert allowed_sources(JobStatus.RUNNING) == frozenset({JobStatus.QUEUED})
    assert JobStatus.CANCELLED not in allowed_sources(JobStatus.QUEUED)
    assert allowed_sources(JobStatus.CANCELLED) == frozenset(
        {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.STOPPED_AT_CHECKPOINT}
    )
