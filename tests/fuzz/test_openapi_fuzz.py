"""Property-based tests of the API against its own OpenAPI spec: schemathesis generates requests
from /openapi.json, valid and invalid, for every operation the spec lists, as an admin and as a
normal user, and follows the spec's links so that the job a call creates is then looked at,
paused, cancelled, retried, tagged and reviewed. No answer may be a server error (DESIGN section
5: "A 500 is a bug"), and input the spec calls valid must not be refused as invalid.

The app is called through its WSGI interface, in this process, on the session's stack (real
workers, Redis and store): the same app gunicorn serves, without a port or a server thread to
wait for, and schemathesis's calls cost a fraction of what they do over HTTP. The seed and the
budget are fixed, so a run makes the same cases every time; FLOWBIN_FUZZ_* raise the budget or
change the seed for a longer search (docs/configuration.md).
"""

from __future__ import annotations

import os

import pytest

from tests.fuzz.conftest import ADMIN, USER
from tests.fuzz.fuzzing import Budget, fuzz

pytestmark = pytest.mark.fuzz

BUDGET = Budget(
    seed=int(os.environ.get("FLOWBIN_FUZZ_SEED", "20251101")),
    examples=int(os.environ.get("FLOWBIN_FUZZ_EXAMPLES", "25")),
    scenarios=int(os.environ.get("FLOWBIN_FUZZ_SCENARIOS", "40")),
    steps=int(os.environ.get("FLOWBIN_FUZZ_STEPS", "8")),
)
# Operations that accept no input the spec calls valid, and why the spec cannot say more.
REJECTS_VALID_INPUT = {
    "POST /api/v1/review/correct": "the names in `fields` are 1-200 characters, and OpenAPI "
    "3.0 cannot constrain an object's keys (propertyNames came with 3.1)",
    "POST /api/v1/flow/run_flow_async": "one of input_dir and input_folder is required, two "
    "names of one field; the spec shows both as optional",
    "POST /api/v1/flow_binary/results": "ibresults_path is a *.ibflowresults file or a run's "
    "output folder; which paths are folders is the drive's to say, not the spec's",
}


@pytest.mark.parametrize("user", [ADMIN, USER], ids=["admin", "user"])
def test_no_generated_request_gets_a_server_error(stack, fuzz_users, fuzz_data, offline, user):
    app = stack.client.application
    found = fuzz(app, fuzz_users.tokens[user], fuzz_data, BUDGET)
    print(f"\n{stack.backend} as {user}: cases by phase {dict(found.cases)}")

    assert not found.errors, "\n".join(found.errors)
    if found.failures:
        pytest.fail("\n\n".join(found.failures), pytrace=False)
    spec = app.test_client().get("/openapi.json").get_json()
    operations = {
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "head", "put", "post", "delete", "patch")
    }
    assert found.fuzzed == operations, "every operation of the spec is fuzzed"
    assert any(
        # Every call that creates a job: any of them handing its id on proves the links work.
        link.startswith(
            (
                "POST /api/v1/flow/run_binary_async",
                "POST /api/v1/flow/run_binary_sync",
                "POST /api/v1/flow_binary",
                "POST /api/v2/jobs ",
            )
        )
        for link in found.linked
    ), f"no job id from a submit reached another call through the links: {found.linked}"
    rejecting = found.rejecting_valid_input()
    unexplained = {
        op: reasons for op, reasons in rejecting.items() if op not in REJECTS_VALID_INPUT
    }
    assert not unexplained, (
        "these operations refuse input the spec calls valid: state the constraint in the "
        f"schema, or say here why it cannot be: {unexplained}"
    )
