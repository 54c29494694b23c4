"""Checkpoint review: list the records a checkpoint stopped, correct them, assign a reviewer,
close the review. Then `jobs/retry?type=checkpoint_failure` re-validates the corrected records
and continues them after the checkpoint."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, principal
from api.context import settings, store
from api.permissions import needs
from api.review_schemas import (
    AssignArgs,
    CloseArgs,
    CorrectArgs,
    CorrectResponse,
    RecordsResponse,
    ReviewJobArgs,
    ReviewStateResponse,
)
from shared.jobs.summary import run_summaries
from shared.review import access, metrics, records
from shared.states import Permission

blp = Blueprint(
    "review",
    __name__,
    url_prefix="/api/v1/review",
    description="Review of records stopped at a checkpoint (owner, admin or the "
    "assigned reviewer; anyone else gets a 404)",
)


def _review_state(job) -> dict:
    return {
        "status": "OK",
        "job_id": job.id,
        "reviewer": job.reviewer,
        "review_state": job.review_state,
    }


@blp.route("/records")
class RecordsForReview(MethodView):
    @needs(Permission.REVIEW_JOBS)
    @blp.arguments(ReviewJobArgs, location="query")
    @blp.response(200, RecordsResponse)
    def get(self, args):
        """Records awaiting review

        For each file stopped at a checkpoint, the records that checkpoint stopped: their
        fields, the messages of the rules they failed, the checkpoint's step id, and the review
        each got since the job stopped. The job's owner, an admin or its assigned reviewer
        only; anyone else gets a 404.
        """
        with store() as session:
            job, grant = access.get_job_for_review(session, principal(), args["job_id"])
            awaiting = records.records_awaiting_review(session, settings(), job, grant)
            counts = metrics.review_metrics(session, [job], run_summaries(session, [job]))
            return {
                **_review_state(job),
                "flow_review_metrics": counts[job.id],
                "records": awaiting,
            }


@blp.route("/correct")
class CorrectRecord(MethodView):
    @needs(Permission.REVIEW_JOBS)
    @blp.arguments(CorrectArgs)
    @blp.response(200, CorrectResponse)
    def post(self, args):
        """Correct a record awaiting review

        Sets `fields` on the record where its checkpoint reads it again (the previous step's
        output); `{}` marks it reviewed without change. Then `jobs/retry` with
        `type=checkpoint_failure` re-validates it and continues it after the checkpoint.
        404: no such job (or not yours to review), file or record. 409: the job is not stopped
        at a checkpoint, the record is not awaiting review, or the checkpoint is the flow's
        first step (there is no persisted input to correct).
        """
        with store() as session:
            record = records.correct_record(
                session,
                settings(),
                principal(),
                args["job_id"],
                args["file_index"],
                args["record_index"],
                args["fields"],
            )
        return {"status": "OK", "record": record}


@blp.route("/assign")
class AssignReviewer(MethodView):
    @needs(Permission.REVIEW_JOBS)
    @blp.arguments(AssignArgs)
    @blp.response(200, ReviewStateResponse)
    def post(self, args):
        """Assign the job's reviewer

        The job's owner or an admin only (403 for the assigned reviewer). `reviewer` must be an
        existing user's username (else 400); `review_state` becomes IN REVIEW.
        """
        with store() as session:
            job = access.assign_reviewer(session, principal(), args["job_id"], args["reviewer"])
            return _review_state(job)


@blp.route("/complete")
class CloseReview(MethodView):
    @needs(Permission.REVIEW_JOBS)
    @blp.arguments(CloseArgs)
    @blp.response(200, ReviewStateResponse)
    def post(self, args):
        """Close the review

        Sets `review_state` to `state`: COMPLETED (the default) or NOT_COMPLETED. The job's
        owner, an admin or its assigned reviewer.
        """
        with store() as session:
            job = access.close_review(session, principal(), args["job_id"], args["state"])
            return _review_state(job)
