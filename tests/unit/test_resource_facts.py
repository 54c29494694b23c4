"""The resource API's job shape reads a page's people, tags and collaborators in one statement
(shared/jobs/resource_facts.py), and says of each job what the per-part reads say."""

from datetime import UTC, datetime

from sqlalchemy import event, text

from shared.accounts.collaboration import collaboration_of
from shared.jobs.counters import counters_of
from shared.jobs.resource_facts import PEOPLE_AND_LABELS, Person, facts_of
from shared.jobs.store import set_tags, tags_of
from shared.store.db import connection_scope, engine_for, session_scope
from shared.store.models import Job, JobShare, Team, User
from shared.store.prepared import Prepared
from tests.unit.test_job_status_read import stopped_job
from tests.unit.test_page_facts import more_jobs
from tests.unit.test_statement_plans import scans

IDS = ["job-1", "job-2", "job-3"]


def shared_jobs(url: str) -> None:
    """``stopped_job``'s and ``more_jobs``' jobs with tags, collaborators (a team, a user and
    another team, in that order) and a modifier who is not the owner."""
    stopped_job(url, datetime.now(UTC))
    more_jobs(url)
    with session_scope(url) as session:
        stranger = session.query(User).filter_by(username="stranger").one()
        crew, band = Team(name="crew"), Team(name="band")
        session.add_all([crew, band])
        session.flush()
        set_tags(session, "job-1", ["zeta", "Alpha", "mid"])
        set_tags(session, "job-3", ["only"])
        session.add(JobShare(job_id="job-1", team_id=crew.id, steps=["*"]))
        session.flush()
        session.add(JobShare(job_id="job-1", user_id=stranger.id, steps=["fields"]))
        session.flush()
        session.add(JobShare(job_id="job-1", team_id=band.id, steps=["read", "fields"]))
        session.get(Job, "job-2").last_modified_by = stranger.id


def counted(url: str, read):
    """What ``read()`` returns, and the statements it ran."""
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine_for(url), "before_cursor_execute", count)
    try:
        return read(), statements
    finally:
        event.remove(engine_for(url), "before_cursor_execute", count)


def test_it_says_of_each_job_what_the_per_part_reads_say(store_url):
    shared_jobs(store_url)
    with session_scope(store_url, read_only=True) as session:
        jobs = [session.get(Job, job_id) for job_id in IDS]
        facts = facts_of(session, jobs)
        tags, shares = tags_of(session, IDS), collaboration_of(session, IDS)
        counters = counters_of(session, IDS)
        people = {user.username: user for user in session.query(User)}
    for job_id in IDS:
        assert facts[job_id].tags == tags[job_id]
        assert facts[job_id].collaboration == shares[job_id]
        assert facts[job_id].counters == counters[job_id]
    assert sorted(facts["job-1"].tags) == ["Alpha", "mid", "zeta"] and facts["job-2"].tags == []
    collaborators = facts["job-1"].collaboration
    assert [team["name"] for team in collaborators["teams"]] == ["crew", "band"]
    assert collaborators["users"] == [
        {"id": people["stranger"].uuid, "username": "stranger", "email": None, "steps": ["fields"]}
    ]
    assert facts["job-3"].collaboration == {"teams": [], "users": []}
    olive, stranger = (Person(people[n].uuid, n, people[n].email) for n in ("olive", "stranger"))
    assert [(facts[j].owner, facts[j].modifier) for j in IDS] == [
        (olive, olive),
        (olive, stranger),
        (stranger, stranger),
    ]


def test_a_job_read_is_one_statement_and_a_page_two(store_url):
    shared_jobs(store_url)
    with session_scope(store_url, read_only=True) as session:
        jobs = [session.get(Job, job_id) for job_id in IDS]
        totals = counters_of(session, IDS)
        # A read of one job has its totals from its own statement (job_with_counters).
        _, one = counted(store_url, lambda: facts_of(session, jobs[:1], {"job-1": totals["job-1"]}))
        _, page = counted(store_url, lambda: facts_of(session, jobs))
        assert facts_of(session, []) == {}
    assert len(one) == 1, one
    assert len(page) == 2, page  # and the page's totals


def test_its_statement_reads_rows_by_index_on_postgresql(postgresql_store):
    # On PostgreSQL the page's ids go as one array (shared/store/sets.py), a statement the
    # plan check can prepare; SQLite's expanding IN cannot be.
    with connection_scope(postgresql_store) as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        statement = Prepared(PEOPLE_AND_LABELS["postgresql"])
        plan = statement.plan(conn, {"job_ids": ["job-1", "job-2"], "user_ids": [1, 2]})
    assert plan and scans(plan) == [], "\n".join(plan)
