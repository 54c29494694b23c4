"""``filter``: keep the record only when its ``keep_if`` formula is true."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.flow import formulas
from shared.flow.records import child_record
from shared.flow.step_types import param_checks as check
from shared.flow.step_types.env import Record, StepEnv, evaluate
from shared.flow.step_types.step_type import StepType


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    check.keys(params, {"keep_if"}, {"keep_if"})
    return {"keep_if": check.formula(params["keep_if"], "keep_if")}


def run(env: StepEnv, record: Record) -> list[Record]:
    keep = evaluate(env.step.params["keep_if"], formulas.record_names(record), "keep_if")
    return [child_record(record)] if keep else []


STEP_TYPE = StepType(
    name="filter",
    summary="keeps the record only when its `keep_if` formula is true; drops the others",
    check_params=check_params,
    run=run,
)
