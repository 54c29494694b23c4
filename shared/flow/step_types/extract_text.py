"""``extract_text``: read the record's input file into ``text`` and ``pages``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.flow import extract
from shared.flow.records import RecordError, child_record
from shared.flow.step_types import param_checks as check
from shared.flow.step_types.env import Record, StepEnv
from shared.flow.step_types.step_type import StepType


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    check.keys(params, set())
    return {}


def run(env: StepEnv, record: Record) -> list[Record]:
    source = record.get("source_path")
    if env.input_data is None and not source:
        raise RecordError(
            "the record has no source file; extract_text reads input files, "
            "so make it the first step"
        )
    try:
        if env.input_data is not None:
            extracted = extract.extract_bytes(record.get("file_name") or "", env.input_data)
        else:
            extracted = extract.extract_file(Path(source))
    except extract.ExtractError as exc:
        raise RecordError(str(exc)) from None
    warnings = list(record.get("warnings") or []) + extracted.warnings
    return [child_record(record, text=extracted.text, pages=extracted.pages, warnings=warnings)]


STEP_TYPE = StepType(
    name="extract_text",
    summary="reads the input file (PDF, text, Markdown, CSV, JSON, HTML) into `text` and `pages`",
    check_params=check_params,
    run=run,
)
