from shared.states import (
    ALL_TRANSITIONS,
    CANCEL,
    ENDED,
    FILE_FINISHED,
    FILE_TRANSITIONS,
    LIST_STATE_FILTER,
    PAUSE,
    REPORTED_DONE,
    RESUME,
    RETRY,
    RUNNABLE,
    SEED_STATE,
    SEED_STATUS,
    TRANSITIONS,
    FileStatus,
    JobStatus,
    allowed_sources,
    can_transition,
)

Q, R, P, S = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.STOPPED_AT_CHECKPOINT
C, F, X = JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED


def test_the_actions_make_exactly_this_table():
    # The table as it was written out before it was derived from the actions: the actions
    # must neither add nor lose a move.
    assert {
        Q: {R, P, X, F},
        R: {P, S, C, F, X},
        P: {Q, X, C, F, S},
        S: {Q, C, X},
        C: {Q},
        F: {Q},
        X: set(),
    } == TRANSITIONS


def test_cancelled_is_final():
    assert TRANSITIONS[JobStatus.CANCELLED] == frozenset()
    assert not any(can_transition(JobStatus.CANCELLED, target) for target in JobStatus)


def test_every_state_has_a_row_and_a_seed_name():
    assert set(TRANSITIONS) == set(JobStatus)
    assert set(SEED_STATUS) == set(JobStatus)


def test_seed_state_is_done_exactly_for_the_reported_done_states():
    assert {s for s, state in SEED_STATE.items() if state == "DONE"} == REPORTED_DONE
    assert SEED_STATE[JobStatus.QUEUED] == SEED_STATE[JobStatus.RUNNING] == "PENDING"
    assert set(JobStatus) - RUNNABLE == REPORTED_DONE


def test_finished_jobs_only_go_back_to_queued_and_not_from_cancelled():
    for status in (JobStatus.COMPLETE, JobStatus.FAILED):
        assert TRANSITIONS[status] == frozenset({JobStatus.QUEUED})


def test_allowed_sources_inverts_the_table():
    assert allowed_sources(JobStatus.RUNNING) == frozenset({JobStatus.QUEUED})
    assert JobStatus.CANCELLED not in allowed_sources(JobStatus.QUEUED)
    assert allowed_sources(JobStatus.CANCELLED) == frozenset(
        {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.STOPPED_AT_CHECKPOINT}
    )


def test_user_actions_are_the_preconditions_of_job_control():
    assert PAUSE.sources == {Q, R} and PAUSE.target == P
    assert RESUME.sources == {P} and RESUME.target == Q
    assert CANCEL.sources == {Q, R, P, S} and CANCEL.target == X
    assert RETRY.sources == {C, F, S} and RETRY.target == Q
    assert len({t.name for t in ALL_TRANSITIONS}) == len(ALL_TRANSITIONS)


def test_ended_states_are_the_ones_no_action_leaves_but_a_user():
    # Only a user (retry, cancel) moves a job out of a state it ended in.
    user_actions = {RETRY, CANCEL}
    for status in ENDED:
        movers = {t for t in ALL_TRANSITIONS if status in t.sources and t.target != C}
        assert movers <= user_actions, status


def test_list_filter_names_every_state():
    assert set().union(*LIST_STATE_FILTER.values()) == set(JobStatus)


def test_file_table_ends_pending_files_and_retry_restarts_them():
    assert set(FILE_TRANSITIONS) == set(FileStatus)
    assert FILE_TRANSITIONS[FileStatus.PENDING] == FILE_FINISHED
    assert FILE_TRANSITIONS[FileStatus.CANCELLED] == frozenset()
    for status in FILE_FINISHED - {FileStatus.CANCELLED}:
        assert FILE_TRANSITIONS[status] == {FileStatus.PENDING}
