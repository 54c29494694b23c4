"""The resource API's job types (``/api/v2/job-types``, seed 002): what each type of job does,
whether ``POST /api/v2/jobs`` creates it, the fields of the body that creates it as JSON Schema
(converted by the OpenAPI spec's own marshmallow converter from the schema that validates that
body, so the two cannot disagree), and the contents a job of it has."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView

from api.openapi import schema_extras
from api.permissions import needs
from api.resource_schemas import CREATABLE, FLOW_COMPILE, FLOW_RUN, FLOW_SYNC, JobType, JobTypes
from api.sync_schemas import RunSyncArgs
from shared.errors import NotFound
from shared.states import Permission

TYPES = {
    FLOW_RUN: {
        "description": "runs a flow binary over the files of an input folder, or over documents "
        "from POST /api/v2/documents, step by step in workers; pause, resume, cancel and retry "
        "it",
        "creatable": True,
        "schema": CREATABLE[FLOW_RUN],
        # GET /api/v2/jobs/<id>/contents (shared/contents/job_contents.py).
        "contents": [
            {"type": "input-file", "description": "input: each file it runs on"},
            {"type": "flow-results", "description": "output: results.json in the output folder"},
            {"type": "ibflowresults", "description": "the results as batch.ibflowresults"},
            {"type": "file-results", "description": "one input file's results"},
            {"type": "step-output", "description": "a step's records of one file"},
            {"type": "review-records", "description": "records stopped at a checkpoint"},
        ],
    },
    FLOW_COMPILE: {
        "description": "compiles a flow project into a flow binary (.ibflowbin), in a worker",
        "creatable": True,
        "schema": CREATABLE[FLOW_COMPILE],
        "contents": [
            {"type": "flow-project", "description": "input: the project folder"},
            {"type": "flow-binary", "description": "output: the binary written (a content)"},
        ],
    },
    FLOW_SYNC: {
        "description": "a synchronous run (POST /api/v1/flow/run_binary_sync), recorded once it "
        "has finished; it cannot be created here",
        "creatable": False,
        "schema": RunSyncArgs(),
        "contents": [
            {"type": "files", "description": "input: the files sent in the request"},
            {"type": "records", "description": "output: the records, in the sync answer"},
        ],
    },
}


def _inlined(node, components: dict):
    """``node`` with every ``$ref`` to a component schema replaced by that schema."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            return _inlined(components[ref.rsplit("/", 1)[-1]], components)
        return {key: _inlined(value, components) for key, value in node.items()}
    if isinstance(node, list):
        return [_inlined(item, components) for item in node]
    return node


def _shown(type_id: str) -> dict:
    known = TYPES[type_id]
    api = current_app.extensions["flowbin.api"]
    fields = {
        **api.ma_plugin.converter.schema2jsonschema(known["schema"]),
        **schema_extras(known["schema"]),
    }
    return {
        "id": type_id,
        "description": known["description"],
        "creatable": known["creatable"],
        "fields_": _inlined(fields, api.spec.components.schemas),
        "contents": known["contents"],
    }


def add_routes(blp) -> None:
    @blp.route("/job-types")
    class JobTypesView(MethodView):
        @needs(Permission.VIEW_JOBS)
        @blp.response(200, JobTypes)
        def get(self):
            """Every type of job, with the fields that create one as JSON Schema"""
            return {"values": [_shown(type_id) for type_id in TYPES]}

    @blp.route("/job-types/<string(minlength=1, maxlength=50):type_id>")
    class JobTypeView(MethodView):
        @needs(Permission.VIEW_JOBS)
        @blp.response(200, JobType)
        def get(self, type_id: str):
            """One type of job, with the fields that create one as JSON Schema"""
            if type_id not in TYPES:
                raise NotFound(f"no job type {type_id!r}: the types are {', '.join(TYPES)}")
            return _shown(type_id)
