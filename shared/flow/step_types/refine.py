"""``refine``: set fields from formulas, in order, each seeing the fields set before it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.flow import formulas
from shared.flow.records import child_record, to_json_value
from shared.flow.step_types import param_checks as check
from shared.flow.step_types.env import Record, StepEnv, evaluate
from shared.flow.step_types.step_type import StepType

MAX_FIELD_NAME = 200


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    check.keys(params, {"fields"}, {"fields"})
    fields = params["fields"]
    if not isinstance(fields, Mapping) or not fields:
        raise ValueError("fields must be a non-empty mapping of field name to formula")
    checked = {}
    for name, formula in fields.items():
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_FIELD_NAME:
            raise ValueError(f"field name {name!r} must be a string of 1-{MAX_FIELD_NAME} chars")
        if name in formulas.RESERVED_NAMES:
            raise ValueError(f"field name '{name}' is reserved; choose another name")
        checked[name] = check.formula(formula, f"field '{name}'")
    return {"fields": checked}


def run(env: StepEnv, record: Record) -> list[Record]:
    names = formulas.record_names(record)
    fields = dict(record.get("fields") or {})
    for name, formula in env.step.params["fields"].items():
        value = to_json_value(evaluate(formula, names, f"field '{name}'"))
        fields[name] = value
        names[name] = value
    return [child_record(record, fields=fields)]


STEP_TYPE = StepType(
    name="refine",
    summary="sets fields from formulas, in order; a later formula sees the fields set before it",
    check_params=check_params,
    run=run,
)
