"""``udf``: call a Python function of the project (``udfs/x.py:name``) on a copy of the record."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from shared.flow import udfs
from shared.flow.records import RecordError, adopt_record
from shared.flow.step_types import param_checks as check
from shared.flow.step_types.env import Record, StepEnv
from shared.flow.step_types.step_type import StepType


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    check.keys(params, {"function"}, {"function"})
    path, name = udfs.parse_function_ref(params["function"])
    return {"function": f"{path}:{name}"}


def run(env: StepEnv, record: Record) -> list[Record]:
    path, name = udfs.parse_function_ref(env.step.params["function"])
    source = env.binary.udf_sources[path]
    try:
        module = udfs.cached_module(env.binary.content_hash, path, source)
    except SyntaxError as exc:
        raise RecordError(f"UDF module {path} does not import: {exc}") from None
    function = udfs.function_in(module, path, name)
    result = function(copy.deepcopy(record), env.udf_context)
    if result is None:
        return []
    results = result if isinstance(result, list) else [result]
    if not all(isinstance(item, dict) for item in results):
        raise RecordError(
            f"{name}() returned {type(result).__name__}; expected a record dict, "
            "a list of records or None"
        )
    return [adopt_record(item, record) for item in results]


STEP_TYPE = StepType(
    name="udf",
    summary="calls `module.py:function` of the project on a copy of the record; None drops it",
    check_params=check_params,
    run=run,
)
