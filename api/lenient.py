"""v1 requests as old Instabase clients send them: keys Flowbin does not know (``post_flow_fn``,
``settings.enable_ibdoc``, ...) are ignored, not refused, and each one is named in a
``warnings`` list of the answer, so that a typo is still visible. Known keys with bad values stay
a 400. The resource API (``/api/v2``) stays strict.

A v1 request schema is a ``LenientSchema``; the blueprint marks the instance it loads with, and
that top-level load strips unknown keys at every level of nesting before marshmallow sees them,
noting their dotted names on the request (``flask.g``). ``add_warnings`` puts them in the
answer."""

from __future__ import annotations

import json
from collections.abc import Mapping

import marshmallow as ma
from flask import Response, g, request
from marshmallow import fields

WARNINGS = "flowbin_warnings"


class LenientSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    # Set on the instance a view loads its arguments with (api/blueprint.py); nested schemas
    # are stripped by it rather than reporting on their own.
    reports_unknown = False

    @ma.pre_load
    def _strip_unknown(self, data, **kwargs):
        if self.reports_unknown and isinstance(data, Mapping):
            found: list[str] = []
            if isinstance(data, dict):
                data = _stripped(self, data, "", found)
            else:  # a query string: flat, and EXCLUDE drops what is unknown
                found = [key for key in data if key not in _by_key(self)]
            if found:
                g.setdefault(WARNINGS, []).extend(
                    f"{name} is not supported and was ignored" for name in found
                )
        return data


def _stripped(schema: ma.Schema, data: dict, prefix: str, found: list[str]) -> dict:
    if schema.unknown == ma.INCLUDE:  # a schema that keeps what it does not know
        return data
    by_key = _by_key(schema)
    kept = {}
    for key, value in data.items():
        field = by_key.get(key)
        if field is None or field.dump_only:
            found.append(f"{prefix}{key}")
            continue
        kept[key] = _stripped_value(field, value, f"{prefix}{key}", found)
    return kept


def _by_key(schema: ma.Schema) -> dict[str, fields.Field]:
    return {field.data_key or name: field for name, field in schema.fields.items()}


def _stripped_value(field: fields.Field, value, name: str, found: list[str]):
    if isinstance(field, fields.Nested) and isinstance(value, dict) and not field.many:
        return _stripped(field.schema, value, f"{name}.", found)
    if isinstance(field, fields.List) and isinstance(value, list):
        inner = field.inner
        return [
            _stripped_value(inner, item, f"{name}[{index}]", found)
            for index, item in enumerate(value)
        ]
    return value


class V1Response(ma.Schema):
    """A v1 answer: it may carry the ``warnings`` of ``add_warnings``."""

    warnings = fields.List(
        fields.String(),
        metadata={"description": "keys of the request that were not known, and were ignored"},
    )


def add_warnings(response: Response) -> Response:
    """After a v1 request: the unknown keys it carried, in its JSON answer's ``warnings``."""
    noted = g.pop(WARNINGS, None)
    if not noted or response.status_code >= 400 or not response.is_json:
        return response
    if not request.path.startswith("/api/v1/"):
        return response
    body = response.get_json(silent=True)
    if isinstance(body, dict):
        body["warnings"] = list(dict.fromkeys([*body.get("warnings", []), *noted]))
        response.set_data(json.dumps(body, separators=(", ", ": ")))
    return response
