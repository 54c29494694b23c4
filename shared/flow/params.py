"""Each step type's params: checked and normalized (defaults filled in) when a flow compiles.

A checker takes the raw ``params`` mapping and returns the normalized dict, or raises
ValueError whose message is the reason a user reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.flow import formulas, udfs

SPLIT_MODES = ("page", "line", "csv_row", "regex")
MAX_FIELD_NAME = 200


def _keys(params: Mapping[str, Any], allowed: set[str], required: set[str] = frozenset()):
    unknown = sorted(set(params) - allowed)
    if unknown:
        valid = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"unknown param {', '.join(map(repr, unknown))}; valid params: {valid}")
    missing = sorted(required - set(params))
    if missing:
        raise ValueError(f"missing required param {', '.join(map(repr, missing))}")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    return value


def _formula(value: Any, what: str) -> str:
    try:
        formulas.check_formula(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return value


def _regex(value: Any, what: str, flags: int = 0) -> str:
    _text(value, what)
    try:
        re.compile(value, flags)
    except re.error as exc:
        raise ValueError(f"{what} is not a valid regular expression: {exc}") from None
    return value


def _rules(value: Any, what: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{what} must be a non-empty list")
    for number, rule in enumerate(value, 1):
        if not isinstance(rule, Mapping):
            raise ValueError(f"{what} #{number} must be a mapping")
    return value


def _number(value: Any, what: str, low: float, high: float, integer: bool = False):
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{what} must be {kind} from {low} to {high}, got {value!r}")
    return value


def extract_text(params: Mapping[str, Any]) -> dict[str, Any]:
    _keys(params, set())
    return {}


def split(params: Mapping[str, Any]) -> dict[str, Any]:
    _keys(params, {"by", "pattern"}, {"by"})
    by = params["by"]
    if by not in SPLIT_MODES:
        raise ValueError(f"by must be one of {', '.join(SPLIT_MODES)}, got {by!r}")
    if by != "regex":
        if "pattern" in params:
            raise ValueError("pattern is only used with by: regex")
        return {"by": by}
    if "pattern" not in params:
        raise ValueError("by: regex needs a pattern")
    return {"by": by, "pattern": _regex(params["pattern"], "pattern")}


def classify(params: Mapping[str, Any]) -> dict[str, Any]:
    _keys(params, {"rules", "default"}, {"rules"})
    rules = []
    for number, rule in enumerate(_rules(params["rules"], "rules"), 1):
        what = f"rule #{number}"
        _keys(rule, {"label", "formula", "regex"}, {"label"})
        label = _text(rule["label"], f"{what} label")
        if ("formula" in rule) == ("regex" in rule):
            raise ValueError(f"{what} needs exactly one of formula or regex")
        if "formula" in rule:
            rules.append({"label": label, "formula": _formula(rule["formula"], what)})
        else:
            rules.append({"label": label, "regex": _regex(rule["regex"], what, re.IGNORECASE)})
    default = params.get("default")
    if default is not None:
        _text(default, "default")
    return {"rules": rules, "default": default}


def refine(params: Mapping[str, Any]) -> dict[str, Any]:
    _keys(params, {"fields"}, {"fields"})
    fields = params["fields"]
    if not isinstance(fields, Mapping) or not fields:
        raise ValueError("fields must be a non-empty mapping of field name to formula")
    checked = {}
    for name, formula in fields.items():
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_FIELD_NAME:
            raise ValueError(f"field name {name!r} must be a string of 1-{MAX_FIELD_NAME} chars")
        if name in formulas.RESERVED_NAMES:
            raise ValueError(f"field name '{name}' is reserved; choose another name")
        checked[name] = _formula(formula, f"field '{name}'")
    return {"fields": checked}


def filter_(params: Mapping[str, Any]) -> dict[str, Any]:
    _keys(params, {"keep_if"}, {"keep_if"})
    return {"keep_if": _formula(params["keep_if"], "keep_if")}


def checkpoint(params: Mapping[str, Any]) -> dict[str, Any]:
    _keys(params, {"rules"}, {"rules"})
    rules = []
    for number, rule in enumerate(_rules(params["rules"], "rules"), 1):
        what = f"rule #{number}"
        _keys(rule, {"formula", "message"}, {"formula"})
        formula = _formula(rule["formula"], what)
        message = rule.get("message", f"rule failed: {formula}")
        rules.append({"formula": formula, "message": _text(message, f"{what} message")})
    return {"rules": rules}


def udf(params: Mapping[str, Any]) -> dict[str, Any]:
    _keys(params, {"function"}, {"function"})
    path, name = udfs.parse_function_ref(params["function"])
    return {"function": f"{path}:{name}"}


def http(params: Mapping[str, Any]) -> dict[str, Any]:
    _keys(params, {"url", "timeout", "retries", "headers", "result_field"}, {"url"})
    url = _text(params["url"], "url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
    headers = params.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
    ):
        raise ValueError("headers must be a mapping of header name to string value")
    return {
        "url": url,
        "timeout": _number(params.get("timeout", 10), "timeout", 0.1, 600),
        "retries": _number(params.get("retries", 2), "retries", 0, 10, integer=True),
        "headers": dict(headers),
        "result_field": _text(params.get("result_field", "http_response"), "result_field"),
    }


CHECKERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "extract_text": extract_text,
    "split": split,
    "classify": classify,
    "refine": refine,
    "filter": filter_,
    "checkpoint": checkpoint,
    "udf": udf,
    "http": http,
}
