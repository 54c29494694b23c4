"""Records: the JSON dicts that flow through the steps, and what a run reports about them."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any


class RecordError(Exception):
    """One record failed a step; the message is the reason shown in the record's error."""


def new_record(file_name: str, file_index: int, source_path: str | Path | None) -> dict[str, Any]:
    """The first record of an input file; ``extract_text`` reads ``source_path``, or, when it
    is None (a sync run), the file's content that the run holds in memory."""
    return {
        "file_name": file_name,
        "file_index": file_index,
        "record_index": 0,
        "source_path": None if source_path is None else str(source_path),
        "text": "",
        "pages": [],
        "class_label": None,
        "fields": {},
        "warnings": [],
        "error": None,
        "checkpoint_failed": [],
    }


def is_stopped(record: dict[str, Any]) -> bool:
    """A record that failed a step or a checkpoint goes through later steps untouched."""
    return bool(record.get("error")) or bool(record.get("checkpoint_failed"))


def step_error(step_id: str, reason: str) -> str:
    return f"Error <{reason}> in step {step_id}"


def to_json_value(value: Any) -> Any:
    """What a formula or UDF produced, as something ``json.dumps`` takes: tuples and sets become
    lists, dates ISO strings; TypeError for anything else that JSON cannot hold."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((to_json_value(item) for item in value), key=repr)
    raise TypeError(
        f"a value of type {type(value).__name__} cannot be stored in a record; "
        "use text, numbers, true/false, None, lists or dicts"
    )


def child_record(parent: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``parent`` that does not share its mutable parts, with ``changes`` applied."""
    child = {
        **parent,
        "pages": list(parent.get("pages") or []),
        "fields": dict(parent.get("fields") or {}),
        "warnings": list(parent.get("warnings") or []),
        "checkpoint_failed": list(parent.get("checkpoint_failed") or []),
    }
    child.update(changes)
    return child


def adopt_record(returned: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    """A record a UDF returned: missing keys come from ``parent``, values become JSON values."""
    merged = {**parent, **to_json_value(returned)}
    if not isinstance(merged.get("fields"), dict):
        raise ValueError("a returned record's 'fields' must be a dict")
    if not isinstance(merged.get("warnings"), list):
        raise ValueError("a returned record's 'warnings' must be a list")
    merged.setdefault("checkpoint_failed", [])
    return merged


def renumber(records: list[dict[str, Any]], file_indexes: set[Any]) -> list[dict[str, Any]]:
    """Number the records of the files in ``file_indexes`` 0..n-1 in order (after a step turned
    one of their records into many); other files keep their numbers."""
    next_index: Counter[Any] = Counter()
    numbered = []
    for record in records:
        file_index = record.get("file_index")
        if file_index in file_indexes:
            record = {**record, "record_index": next_index[file_index]}
            next_index[file_index] += 1
        numbered.append(record)
    return numbered


def final_results(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per record, what a run reports: the fields as seed-style key/value pairs."""
    return [
        {
            "file_name": record.get("file_name"),
            "file_index": record.get("file_index"),
            "record_index": record.get("record_index"),
            "results": [
                {"key": key, "value": value} for key, value in (record.get("fields") or {}).items()
            ],
            "class_label": record.get("class_label"),
            "error": record.get("error"),
            "checkpoint_failed": list(record.get("checkpoint_failed") or []),
        }
        for record in records
    ]


def record_error_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """Error message -> number of records that failed with it (the seed's recordsWithMsg)."""
    return dict(Counter(record["error"] for record in records if record.get("error")))
