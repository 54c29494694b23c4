"""``runtime_config.modify_output_schema``: a run's change to the fields its results report.

The value is a JSON string (seed 001) with ``add_fields`` ([{name, formula}], evaluated in order
like a refine step, so a later formula sees an earlier added field), ``remove_fields`` ([name])
and ``rename_fields`` ({old: new}), applied in that order to each record's fields when its
results are built. Formulas see the record as refine formulas do: its fields, ``text``,
``file_name``, ``class_label`` and ``record``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.flow import formulas
from shared.flow.records import step_error, to_json_value

STEP_NAME = "modify_output_schema"
_KEYS = ("add_fields", "remove_fields", "rename_fields")
MAX_FIELD_NAME = 200


@dataclass(frozen=True)
class OutputSchema:
    add_fields: tuple[tuple[str, str], ...] = ()
    remove_fields: tuple[str, ...] = ()
    rename_fields: tuple[tuple[str, str], ...] = ()

    def apply(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The record's fields as the run reports them, and the error of an added field whose
        formula failed (its value is then None). A record that already failed gets no added
        fields: its fields are whatever the failing step left."""
        fields = dict(record.get("fields") or {})
        error = None
        if not record.get("error"):
            names = formulas.record_names(record)
            for name, formula in self.add_fields:
                try:
                    value = to_json_value(formulas.evaluate(formula, names))
                except (formulas.FormulaError, TypeError) as exc:
                    value = None
                    error = error or step_error(STEP_NAME, f"field '{name}': {exc}")
                fields[name] = value
                names[name] = value
        for name in self.remove_fields:
            fields.pop(name, None)
        renames = dict(self.rename_fields)
        targets = {new for old, new in self.rename_fields if old in fields}
        renamed = {}
        for key, value in fields.items():
            if key in renames:
                renamed[renames[key]] = value
            elif key not in targets:  # a renamed field takes the place of one of its new name
                renamed[key] = value
        return renamed, error


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_FIELD_NAME:
        raise ValueError(
            f"{what} must be a field name of 1-{MAX_FIELD_NAME} characters, got {value!r}"
        )
    return value


def _add_fields(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        raise ValueError('add_fields must be a list of {"name": ..., "formula": ...}')
    added: dict[str, str] = {}
    for number, item in enumerate(value, 1):
        what = f"add_fields #{number}"
        if not isinstance(item, Mapping) or set(item) != {"name", "formula"}:
            raise ValueError(f'{what} must be {{"name": ..., "formula": ...}}, got {item!r}')
        name = _name(item["name"], f"{what} name")
        if name in added:
            raise ValueError(f"{what} adds '{name}' a second time")
        try:
            formulas.check_formula(item["formula"])
        except ValueError as exc:
            raise ValueError(f"{what} ('{name}'): {exc}") from None
        added[name] = item["formula"]
    return tuple(added.items())


def _remove_fields(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("remove_fields must be a list of field names")
    return tuple(_name(item, f"remove_fields #{n}") for n, item in enumerate(value, 1))


def _rename_fields(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise ValueError('rename_fields must be an object such as {"old_name": "new_name"}')
    renames = tuple(
        (_name(old, "rename_fields key"), _name(new, f"rename_fields['{old}']"))
        for old, new in value.items()
    )
    news = [new for _, new in renames]
    twice = sorted({new for new in news if news.count(new) > 1})
    if twice:
        raise ValueError(f"rename_fields gives several fields the name {', '.join(twice)}")
    return renames


@functools.lru_cache(maxsize=256)
def parse_output_schema(text: str) -> OutputSchema | None:
    """The schema in ``text`` (None for an empty string or object); ValueError with the reason
    if it is not one."""
    if not text.strip():
        return None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f"not valid JSON ({exc}); pass JSON.stringify of an object with {', '.join(_KEYS)}"
        ) from None
    if not isinstance(raw, Mapping):
        raise ValueError(f"must be a JSON object with {', '.join(_KEYS)}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise ValueError(
            f"unknown key {', '.join(map(repr, unknown))}; valid keys: {', '.join(_KEYS)}"
        )
    schema = OutputSchema(
        add_fields=_add_fields(raw.get("add_fields", [])),
        remove_fields=_remove_fields(raw.get("remove_fields", [])),
        rename_fields=_rename_fields(raw.get("rename_fields", {})),
    )
    return schema if schema != OutputSchema() else None


def from_runtime_config(runtime_config: Mapping[str, Any] | None) -> OutputSchema | None:
    """The run's schema, from its ``runtime_config``; ValueError starting with the setting's
    name if it is not valid (runs check this when they are submitted)."""
    text = (runtime_config or {}).get(STEP_NAME)
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{STEP_NAME}: must be a string, JSON.stringify of the object")
    try:
        return parse_output_schema(text)
    except ValueError as exc:
        raise ValueError(f"{STEP_NAME}: {exc}") from None
