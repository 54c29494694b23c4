"""v1 request schemas ignore keys they do not know and name them (api/lenient.py), at every level
of nesting, while a known key with a bad value is still refused."""

import marshmallow as ma
import pytest
from flask import Flask, g

from api.lenient import WARNINGS, add_warnings
from api.schemas import CompileArgs, RunAsyncArgs


@pytest.fixture
def request_context():
    app = Flask("lenient-test")
    with app.test_request_context("/api/v1/flow/run_binary_async", method="POST") as context:
        yield context


def loaded(schema_class, body):
    schema = schema_class()
    schema.reports_unknown = True  # as api/blueprint.py marks the schema a view loads with
    return schema.load(body), g.get(WARNINGS, [])


def test_unknown_keys_are_dropped_and_named_with_their_path(request_context):
    body = {
        "binary_path": "alice/a.ibflowbin",
        "input_dir": "alice/in",
        "post_flow_fn": "fn",
        "compile_and_run_as_binary": True,
        "settings": {
            "enable_ibdoc": True,
            "tags": ["x"],
            "webhook_config": {"url": "https://example.com/hook", "retries": 3},
            "runtime_config": {"flow_argument": 1},
            "collaboration": {"users": [{"username": "bob", "steps": ["*"], "note": "hi"}]},
        },
    }
    args, warnings = loaded(RunAsyncArgs, body)
    assert warnings == [
        "post_flow_fn is not supported and was ignored",
        "compile_and_run_as_binary is not supported and was ignored",
        "settings.enable_ibdoc is not supported and was ignored",
        "settings.webhook_config.retries is not supported and was ignored",
        "settings.collaboration.users[0].note is not supported and was ignored",
    ]
    assert args["settings"]["tags"] == ["x"]
    # The runtime config carries the flow's own arguments: nothing in it is unknown.
    assert args["settings"]["runtime_config"]["flow_argument"] == 1


def test_known_keys_with_bad_values_are_still_refused(request_context):
    with pytest.raises(ma.ValidationError) as refused:
        loaded(
            RunAsyncArgs, {"binary_path": "a/b", "input_dir": "a/c", "settings": {"priority": 12}}
        )
    assert "priority" in refused.value.messages["settings"]
    with pytest.raises(ma.ValidationError):
        loaded(CompileArgs, {"flow_project_root": "a/p", "binary_type": "Nope", "extra": 1})


def test_warnings_go_into_a_v1_json_answer_only(request_context):
    app = request_context.app
    g.setdefault(WARNINGS, []).append("x is not supported and was ignored")
    answer = add_warnings(app.response_class('{"status": "OK"}', mimetype="application/json"))
    assert answer.get_json() == {"status": "OK", "warnings": ["x is not supported and was ignored"]}
    g.setdefault(WARNINGS, []).append("y is not supported and was ignored")
    error = app.response_class('{"status": "ERROR"}', status=400, mimetype="application/json")
    assert add_warnings(error).get_json() == {"status": "ERROR"}
