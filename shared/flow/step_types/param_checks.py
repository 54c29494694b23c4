"""Checks that the step types' params checks are built from. Each returns the value it was given
or raises ValueError naming ``what``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.flow import formulas


def keys(params: Mapping[str, Any], allowed: set[str], required: set[str] = frozenset()) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        valid = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"unknown param {', '.join(map(repr, unknown))}; valid params: {valid}")
    missing = sorted(required - set(params))
    if missing:
        raise ValueError(f"missing required param {', '.join(map(repr, missing))}")


def text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    return value


def formula(value: Any, what: str) -> str:
    try:
        formulas.check_formula(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return value


def regex(value: Any, what: str, flags: int = 0) -> str:
    text(value, what)
    try:
        re.compile(value, flags)
    except re.error as exc:
        raise ValueError(f"{what} is not a valid regular expression: {exc}") from None
    return value


def rules(value: Any, what: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{what} must be a non-empty list")
    for number, rule in enumerate(value, 1):
        if not isinstance(rule, Mapping):
            raise ValueError(f"{what} #{number} must be a mapping")
    return value


def number(value: Any, what: str, low: float, high: float, integer: bool = False):
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{what} must be {kind} from {low} to {high}, got {value!r}")
    return value
