"""What the OpenAPI spec says beyond each view's schemas: an ``operationId`` for every operation,
and links that carry a new job's id from the call that created it to every call that takes one,
so that a client (or schemathesis's stateful tests) can follow them.

The operations that take a job id are found in the spec itself (a ``job_id`` query parameter or
body property), so a new one is linked without a change here; the calls that create a job, and
where their answer holds its id, are listed below.
"""

from __future__ import annotations

import re

from apispec import APISpec, BasePlugin

# operationId of a call that creates a job -> JSON pointer to the new job's id in its 200 answer.
CREATES_JOB = {
    "post_flow_binary_compile": "/job_id",
    "post_flow_binary_compile_path": "/job_id",
    "post_flow_run_binary_async": "/data/job_id",
    "post_flow_run_flow_async": "/data/job_id",
    "post_flow_run_binary_sync": "/job_id",
}
# Other ids an answer hands on: (source, target, target parameter, pointer in the 200 answer).
HANDS_ON = [
    ("get_deliveries", "post_deliveries_delivery_id_redeliver", "delivery_id", "/deliveries/0/id"),
]
JOB_ID = "job_id"


def operation_id(method: str, path: str) -> str:
    """``get`` ``/api/v1/jobs/status`` -> ``get_jobs_status``, ``/api/v2/users`` ->
    ``get_v2_users``: unique, since a path has one operation per method, and stable as long as
    the URL is."""
    words = re.sub(r"^/api/(v1/)?", "", path)
    return f"{method}_" + "_".join(re.findall(r"[A-Za-z0-9]+", words))


class OperationLinks(BasePlugin):
    """Names every operation as it is registered; ``add_links`` runs once all are."""

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec
        self.operations: dict[str, dict] = {}

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        for method, operation in (operations or {}).items():
            operation.setdefault("operationId", operation_id(method, path))
            self.operations[operation["operationId"]] = operation

    def add_links(self) -> None:
        for producer, pointer in CREATES_JOB.items():
            links = _links_of(self._operation(producer))
            for target, operation in self.operations.items():
                if target in CREATES_JOB:
                    # Their job_id names the job they are about to create, not an existing one.
                    continue
                link = self._job_id_link(operation, f"$response.body#{pointer}")
                if link is not None:
                    links[target] = {"operationId": target, **link}
        for source, target, parameter, pointer in HANDS_ON:
            self._operation(target)
            _links_of(self._operation(source))[target] = {
                "operationId": target,
                "parameters": {parameter: f"$response.body#{pointer}"},
            }

    def _operation(self, name: str) -> dict:
        if name not in self.operations:
            raise LookupError(f"api/openapi.py links operation {name!r}, which the API lacks")
        return self.operations[name]

    def _job_id_link(self, operation: dict, expression: str) -> dict | None:
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "query" and parameter.get("name") == JOB_ID:
                return {"parameters": {JOB_ID: expression}}
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        if JOB_ID in self._schema(body.get("schema", {})).get("properties", {}):
            # Merged into the generated body by schemathesis; the other fields stay as given.
            return {"requestBody": {JOB_ID: expression}}
        return None

    def _schema(self, schema: dict) -> dict:
        ref = schema.get("$ref", "")
        return self.spec.components.schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else schema


def _links_of(operation: dict) -> dict:
    return operation["responses"]["200"].setdefault("links", {})


def null_or_nested(self, field, ret, **kwargs) -> dict:
    """An attribute function for apispec's marshmallow converter. apispec documents a nullable
    Nested field as ``anyOf: [{$ref}, {type: object, nullable: true}]``, whose second branch
    allows any object at all; ``enum: [null]`` narrows it to null, as OpenAPI 3.0.3 says to."""
    branches = ret.get("anyOf")
    if not field.allow_none or not branches:
        return {}
    return {
        "anyOf": [
            {**branch, "enum": [None]} if branch == {"type": "object", "nullable": True} else branch
            for branch in branches
        ]
    }


class SchemaExtras(BasePlugin):
    """What a request schema states beyond its fields, as its ``OPENAPI_EXTRA`` (e.g. a
    ``oneOf`` of required fields: one of two inputs), added to its component."""

    def schema_helper(self, name, definition, **kwargs) -> dict:
        return schema_extras(kwargs.get("schema"))


def schema_extras(schema) -> dict:
    return dict(getattr(schema, "OPENAPI_EXTRA", None) or {})
