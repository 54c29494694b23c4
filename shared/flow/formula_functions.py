"""The functions a formula may call. Each one tolerates None where that makes sense, so that a
field that did not match (``regex`` gives None) flows through ``upper`` or ``to_number`` as None
instead of failing the record."""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

# Longest string a formula function may build; guards replace/concat against blowing up memory.
MAX_TEXT_LENGTH = 10_000_000
# Most matches regex_all returns; more means the pattern is almost certainly wrong.
MAX_MATCHES = 10_000

_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%Y%m%d",
    "%m/%d/%Y",
    "%m-%d-%Y",
    "%m/%d/%y",
    "%d/%m/%Y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%d.%m.%y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%B %d %Y",
    "%b %d %Y",
    "%b. %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%d %B, %Y",
    "%d-%b-%Y",
    "%d-%B-%Y",
    "%d-%b-%y",
)
_ORDINAL = re.compile(r"(?<=\d)(st|nd|rd|th)\b", re.IGNORECASE)
_SYMBOLS = re.compile(r"[\s$€£¥₹%]")
_CURRENCY_CODE = re.compile(r"^[A-Za-z]{3}|[A-Za-z]{3}$")
_NUMBER = re.compile(r"\d+(\.\d*)?|\.\d+")
_THOUSANDS = re.compile(r"\d{1,3}(,\d{3})+")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _check_length(length: int) -> None:
    if length > MAX_TEXT_LENGTH:
        raise ValueError(f"result would be {length} characters, more than {MAX_TEXT_LENGTH}")


def echo(value: Any) -> Any:
    return value


def regex(value: Any, pattern: str) -> str | None:
    """First capture group of the first match (the whole match without groups), None if none."""
    if value is None:
        return None
    match = re.search(pattern, _text(value))
    if match is None:
        return None
    return match.group(1) if match.re.groups else match.group(0)


def regex_all(value: Any, pattern: str) -> list[str | None]:
    if value is None:
        return []
    found = []
    for match in re.finditer(pattern, _text(value)):
        if len(found) == MAX_MATCHES:
            raise ValueError(f"regex_all found more than {MAX_MATCHES} matches")
        found.append(match.group(1) if match.re.groups else match.group(0))
    return found


def regex_replace(value: Any, pattern: str, replacement: str) -> str | None:
    """Replace every match; ``replacement`` may refer to groups as \\1 or \\g<name>."""
    if value is None:
        return None
    text = _text(value)
    size = len(text)

    def expand(match: re.Match) -> str:
        nonlocal size
        piece = match.expand(_text(replacement))
        size += len(piece) - len(match.group(0))
        _check_length(size)
        return piece

    return re.sub(pattern, expand, text)


def upper(value: Any) -> str | None:
    return None if value is None else _text(value).upper()


def lower(value: Any) -> str | None:
    return None if value is None else _text(value).lower()


def strip(value: Any, chars: str | None = None) -> str | None:
    return None if value is None else _text(value).strip(chars)


def replace(value: Any, old: str, new: str) -> str | None:
    if value is None:
        return None
    value, old, new = _text(value), _text(old), _text(new)
    growth = max(0, len(new) - len(old))
    if growth:
        _check_length(len(value) + value.count(old) * growth)
    return value.replace(old, new)


def concat(*values: Any) -> str:
    parts = [_text(value) for value in values if value is not None]
    _check_length(builtins.sum(builtins.len(part) for part in parts))
    return "".join(parts)


def length(value: Any) -> int:
    return 0 if value is None else builtins.len(value)


def to_number(value: Any) -> int | float | None:
    """'1,234.50' -> 1234.5, '$12' -> 12, '(3.00)' -> -3.0, '1.234,5' -> 1234.5; None if not a
    number. The rightmost of ',' and '.' is the decimal separator when both appear."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    text = _text(value).strip()
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    text = _CURRENCY_CODE.sub("", _SYMBOLS.sub("", text))
    if text and text[0] in "+-":
        negative, text = negative != (text[0] == "-"), text[1:]
    if "," in text and "." in text:
        if text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
    elif "," in text:
        if _THOUSANDS.fullmatch(text):
            text = text.replace(",", "")
        elif text.count(",") == 1:
            text = text.replace(",", ".")
        else:
            return None
    if not _NUMBER.fullmatch(text):
        return None
    number = float(text) if "." in text else int(text)
    return -number if negative else number


def to_date(value: Any, fmt: str | None = None) -> str | None:
    """An ISO date 'YYYY-MM-DD', None if unparseable. Ambiguous '03/05/2024' reads US-style
    (March 5); pass ``fmt`` (a strptime format) to say otherwise."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = " ".join(_text(value).split())
    formats = (fmt,) if fmt else _DATE_FORMATS
    if not fmt:
        text = _ORDINAL.sub("", text)
        try:
            return datetime.fromisoformat(text).date().isoformat()
        except ValueError:
            pass
    for candidate in formats:
        try:
            return datetime.strptime(text, candidate).date().isoformat()
        except ValueError:
            continue
    return None


def contains(haystack: Any, needle: Any, ignore_case: bool = False) -> bool:
    if haystack is None or needle is None:
        return False
    if isinstance(haystack, str):
        needle = _text(needle)
        if ignore_case:
            return needle.casefold() in haystack.casefold()
        return needle in haystack
    return needle in haystack


def coalesce(*values: Any) -> Any:
    """The first value that is neither None nor an empty string."""
    return next((value for value in values if value is not None and value != ""), None)


def round_number(value: Any, ndigits: int | None = None) -> int | float | None:
    number = to_number(value)
    if number is None:
        return None
    return builtins.round(number) if ndigits is None else builtins.round(number, ndigits)


def _values(args: tuple[Any, ...]) -> list[Any]:
    if builtins.len(args) == 1 and isinstance(args[0], Iterable) and not isinstance(args[0], str):
        args = tuple(args[0])
    return [value for value in args if value is not None]


def minimum(*args: Any) -> Any:
    values = _values(args)
    return builtins.min(values) if values else None


def maximum(*args: Any) -> Any:
    values = _values(args)
    return builtins.max(values) if values else None


def total(*args: Any) -> int | float:
    """Sum of numbers; numeric strings such as '$1,200.00' count as their value."""
    numbers = []
    for value in _values(args):
        number = to_number(value)
        if number is None:
            raise ValueError(f"sum() got {value!r}, which is not a number")
        numbers.append(number)
    return builtins.sum(numbers)


def split(value: Any, separator: str | None = None) -> list[str]:
    return [] if value is None else _text(value).split(separator)


def join(values: Any, separator: str = "") -> str:
    parts = [_text(value) for value in _values((values,))]
    _check_length(builtins.sum(builtins.len(part) for part in parts))
    return _text(separator).join(parts)


FUNCTIONS: dict[str, Any] = {
    "echo": echo,
    "regex": regex,
    "regex_all": regex_all,
    "regex_replace": regex_replace,
    "upper": upper,
    "lower": lower,
    "strip": strip,
    "replace": replace,
    "concat": concat,
    "len": length,
    "to_number": to_number,
    "to_date": to_date,
    "contains": contains,
    "coalesce": coalesce,
    "round": round_number,
    "min": minimum,
    "max": maximum,
    "sum": total,
    "split": split,
    "join": join,
    "abs": abs,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
}
# Functions whose second argument is a regular expression, checked when a formula is compiled.
REGEX_FUNCTIONS = frozenset({"regex", "regex_all", "regex_replace"})
