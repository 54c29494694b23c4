"""A formula's text as Python source: typographic quotes, as pasted from documents, become ASCII
quotes, and every string literal becomes raw.

String literals are raw because formulas are mostly regexes, and Python's '\\b' (a backspace)
would silently break them. So '\\n' is two characters to ``replace`` or ``split``, and a newline
to the regex functions, which read it as a pattern.
"""

from __future__ import annotations

_SINGLE_QUOTES = "\u2018\u2019"
_DOUBLE_QUOTES = "\u201c\u201d"
_STRING_PREFIXES = frozenset({"", "r", "u", "f", "b", "fr", "rf", "br", "rb"})


def _ascii_string_end(expr: str, start: int) -> int:
    """Index just past the ASCII-quoted string literal opening at ``start``."""
    delimiter = expr[start] * 3 if expr.startswith(expr[start] * 3, start) else expr[start]
    index = start + len(delimiter)
    while index < len(expr):
        if expr[index] == "\\":
            index += 2
        elif expr.startswith(delimiter, index):
            return index + len(delimiter)
        else:
            index += 1
    return len(expr)


def _raw_prefix(expr: str, start: int) -> str:
    """What to put before the quote at ``start`` to make the literal raw."""
    letters = start
    while letters > 0 and expr[letters - 1].isalpha():
        letters -= 1
    prefix = expr[letters:start].lower()
    if prefix not in _STRING_PREFIXES:
        return " r"  # a keyword such as 'if' right before the quote
    return "" if "r" in prefix or prefix == "u" else "r"


def _typographic_body(expr: str, index: int, family: str) -> tuple[str, int, bool]:
    """(content, index past the closing quote, closed) of the ‘…’ or “…” literal whose content
    starts at ``index``. Inside ‘…’, a ’ followed by a letter or digit is an apostrophe."""
    body: list[str] = []
    while index < len(expr):
        char = expr[index]
        if char == "\\":
            body.append(expr[index : index + 2])
            index += 2
            continue
        apostrophe = char == "\u2019" and expr[index + 1 : index + 2].isalnum()
        if char in family and not apostrophe:
            return "".join(body), index + 1, True
        body.append(char)
        index += 1
    return "".join(body), index, False


def normalize_source(expr: str) -> str:
    """The Python source of a formula: ‘…’ and “…” become ASCII-quoted literals, and every
    string literal becomes raw, so that regexes need no doubled backslashes ('\\b' is a word
    boundary, not a backspace). Typographic characters inside ASCII strings are content."""
    out: list[str] = []
    index = 0
    while index < len(expr):
        char = expr[index]
        if char in "'\"":
            end = _ascii_string_end(expr, index)
            out.append(_raw_prefix(expr, index) + expr[index:end])
            index = end
        elif char in _SINGLE_QUOTES or char in _DOUBLE_QUOTES:
            single = char in _SINGLE_QUOTES
            body, end, closed = _typographic_body(
                expr, index + 1, _SINGLE_QUOTES if single else _DOUBLE_QUOTES
            )
            candidates = ("'", '"', "'''", '"""') if single else ('"', "'", '"""', "'''")
            quote = next(
                (q for q in candidates if q not in body and not body.endswith(q[0])), candidates[0]
            )
            out.append(_raw_prefix(expr, index) + quote + body + (quote if closed else ""))
            index = end
        else:
            out.append(char)
            index += 1
    return "".join(out)
