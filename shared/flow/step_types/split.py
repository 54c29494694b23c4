"""``split``: one record per page, line, CSV row or regex match of the record's ``text``."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from typing import Any

from shared.flow.records import child_record
from shared.flow.step_types import param_checks as check
from shared.flow.step_types.env import Record, StepEnv
from shared.flow.step_types.step_type import StepType

SPLIT_MODES = ("page", "line", "csv_row", "regex")


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    check.keys(params, {"by", "pattern"}, {"by"})
    by = params["by"]
    if by not in SPLIT_MODES:
        raise ValueError(f"by must be one of {', '.join(SPLIT_MODES)}, got {by!r}")
    if by != "regex":
        if "pattern" in params:
            raise ValueError("pattern is only used with by: regex")
        return {"by": by}
    if "pattern" not in params:
        raise ValueError("by: regex needs a pattern")
    return {"by": by, "pattern": check.regex(params["pattern"], "pattern")}


def _csv_rows(text: str) -> list[tuple[str, dict[str, Any], list[str]]]:
    rows = []
    reader = csv.DictReader(io.StringIO(text), restkey="\0extra")
    for row in reader:
        extra = row.pop("\0extra", None)
        columns = {(key or "").strip(): value for key, value in row.items()}
        line = io.StringIO()
        csv.writer(line).writerow([value or "" for value in row.values()])
        warnings = (
            [f"row {reader.line_num} has {len(extra)} values beyond the header"] if extra else []
        )
        rows.append((line.getvalue().rstrip("\r\n"), columns, warnings))
    return rows


def _regex_pieces(text: str, pattern: str) -> list[str]:
    """Each match starts a new piece; text before the first match is a piece of its own."""
    starts = sorted({0, *(match.start() for match in re.finditer(pattern, text))})
    pieces = (text[start:end] for start, end in zip(starts, [*starts[1:], len(text)], strict=True))
    return [piece.strip() for piece in pieces if piece.strip()]


def run(env: StepEnv, record: Record) -> list[Record]:
    by, text = env.step.params["by"], record.get("text") or ""
    children: list[Record] = []
    if by == "page":
        pages = record.get("pages") or [text]
        children = [child_record(record, text=page, pages=[page]) for page in pages]
    elif by == "line":
        lines = [line for line in text.splitlines() if line.strip()]
        children = [child_record(record, text=line, pages=[line]) for line in lines]
    elif by == "regex":
        pieces = _regex_pieces(text, env.step.params["pattern"])
        children = [child_record(record, text=piece, pages=[piece]) for piece in pieces]
    else:
        for line, columns, warnings in _csv_rows(text):
            child = child_record(record, text=line, pages=[line])
            child["fields"].update(columns)
            child["warnings"].extend(warnings)
            children.append(child)
    if not children:
        warning = f"split by {by} in step {env.step.id} found nothing to split; record kept whole"
        return [child_record(record, warnings=[*(record.get("warnings") or []), warning])]
    return children


STEP_TYPE = StepType(
    name="split",
    summary="makes one record per page, line, CSV row (columns become fields) or regex match",
    check_params=check_params,
    run=run,
)
