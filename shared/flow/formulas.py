"""Formulas: single safe expressions over a record, evaluated with simpleeval (never ``eval``).

A formula is parsed once (cached) and checked against a whitelist of syntax and functions, so a
flow that compiles cannot call anything but ``formula_functions.FUNCTIONS``. Attribute access
is dictionary lookup only (``record.fields``); names starting with ``_`` are refused.

String literals are raw and typographic quotes are string quotes (see ``formula_source``).
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from collections.abc import Mapping
from typing import Any

import simpleeval

from shared.flow.formula_functions import FUNCTIONS, REGEX_FUNCTIONS
from shared.flow.formula_source import normalize_source

MAX_FORMULA_LENGTH = 4000
# Deeper trees would exhaust the evaluator's recursion; no real formula comes close.
MAX_DEPTH = 100
# Names a formula always sees; fields with these names are reachable as record.fields.NAME.
RESERVED_NAMES = frozenset({"text", "file_name", "class_label", "record"})
# EvalWithCompoundTypes adds these constructors to the functions it is given.
FUNCTION_NAMES = frozenset(FUNCTIONS) | {"list", "tuple", "dict", "set"}


class FormulaError(ValueError):
    """A formula that does not compile, or failed on one record; the message is the reason."""


def _safe_mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise FormulaError("'%' string formatting is not supported; use concat()")
    return left % right


_OPERATORS = {**simpleeval.DEFAULT_OPERATORS, ast.Mod: _safe_mod}
_ALLOWED_NODES = (
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.keyword,
    ast.Subscript,
    ast.Slice,
    ast.Attribute,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Set,
    ast.JoinedStr,
    ast.FormattedValue,
    ast.ListComp,
    ast.GeneratorExp,
    ast.DictComp,
    ast.comprehension,
    ast.boolop,
)
_RUNTIME_ERRORS = (
    simpleeval.InvalidExpression,
    ArithmeticError,
    LookupError,
    TypeError,
    ValueError,
    AttributeError,
    RecursionError,
    re.error,
)


def _check_call(node: ast.Call) -> None:
    if not isinstance(node.func, ast.Name):
        raise FormulaError("only plain function calls are allowed (write upper(x), not x.upper())")
    name = node.func.id
    if name not in FUNCTION_NAMES:
        raise FormulaError(
            f"unknown function '{name}'; available: {', '.join(sorted(FUNCTION_NAMES))}"
        )
    plain_args = not any(isinstance(arg, ast.Starred) for arg in node.args)
    if name in FUNCTIONS and plain_args and all(kw.arg for kw in node.keywords):
        try:
            inspect.signature(FUNCTIONS[name]).bind(*node.args, **{k.arg: k for k in node.keywords})
        except TypeError as exc:
            raise FormulaError(f"wrong arguments to {name}(): {exc}") from None
        except ValueError:
            pass  # a builtin without an introspectable signature
    if name in REGEX_FUNCTIONS and len(node.args) >= 2:
        pattern = node.args[1]
        if isinstance(pattern, ast.Constant) and isinstance(pattern.value, str):
            try:
                re.compile(pattern.value)
            except re.error as exc:
                raise FormulaError(
                    f"bad regular expression {pattern.value!r} in {name}(): {exc}"
                ) from None


def _check_node(node: ast.AST, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise FormulaError(f"formula is nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, ast.operator | ast.unaryop | ast.cmpop):
        if type(node) not in _OPERATORS:
            raise FormulaError(f"operator {type(node).__name__} is not supported")
    elif not isinstance(node, _ALLOWED_NODES):
        raise FormulaError(f"{type(node).__name__} is not allowed in a formula")
    elif isinstance(node, ast.Call):
        _check_call(node)
    elif isinstance(node, ast.Attribute | ast.Name):
        name = node.attr if isinstance(node, ast.Attribute) else node.id
        if name.startswith("_"):
            raise FormulaError(f"names starting with '_' are not allowed ({name})")
    elif isinstance(node, ast.FormattedValue) and node.format_spec is not None:
        raise FormulaError("format specifications in f-strings are not supported")
    elif isinstance(node, ast.keyword) and node.arg is None:
        raise FormulaError("'**' arguments are not supported")
    elif isinstance(node, ast.comprehension) and node.is_async:
        raise FormulaError("async comprehensions are not supported")
    for child in ast.iter_child_nodes(node):
        _check_node(child, depth + 1)


@functools.lru_cache(maxsize=4096)
def _parse(expr: str) -> ast.expr:
    source = normalize_source(expr).strip()
    if not source:
        raise FormulaError("formula is empty")
    if len(source) > MAX_FORMULA_LENGTH:
        raise FormulaError(f"formula is longer than {MAX_FORMULA_LENGTH} characters")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        where = f"at column {exc.offset}" if exc.offset else "at the end"
        raise FormulaError(f"formula does not parse: {exc.msg} {where}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise FormulaError(f"formula does not parse: {exc}") from None
    _check_node(tree.body, 0)
    return tree.body


def check_formula(expr: Any) -> None:
    """Raise ValueError (FormulaError) with the reason if ``expr`` is not a valid formula."""
    if not isinstance(expr, str):
        raise FormulaError(f"a formula must be a string, got {type(expr).__name__}")
    _parse(expr)


class _Evaluator(simpleeval.EvalWithCompoundTypes):
    def _eval_attribute(self, node: ast.Attribute) -> Any:
        value = self._eval(node.value)
        if not isinstance(value, Mapping):
            raise FormulaError(
                f"'.{node.attr}' works on records and dicts only; use functions for the rest"
            )
        if node.attr not in value:
            raise FormulaError(f"no key '{node.attr}' (keys: {', '.join(map(str, value))})")
        return value[node.attr]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, simpleeval.NameNotDefined):
        return f"name '{exc.name}' is not defined (no field of that name so far)"
    if isinstance(exc, FormulaError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def evaluate(expr: str, names: Mapping[str, Any]) -> Any:
    """Evaluate ``expr`` with ``names``; failures raise FormulaError with the reason. Exceptions
    of other types (a worker's time limit) propagate untouched."""
    check_formula(expr)
    tree = _parse(expr)  # cached by check_formula
    evaluator = _Evaluator(operators=_OPERATORS, functions=dict(FUNCTIONS), names=dict(names))
    try:
        return evaluator.eval(expr, previously_parsed=tree)
    except _RUNTIME_ERRORS as exc:
        raise FormulaError(_reason(exc)) from exc


def record_names(record: Mapping[str, Any]) -> dict[str, Any]:
    """The names a formula sees for ``record``: its fields, then the reserved names."""
    names = {
        key: value for key, value in (record.get("fields") or {}).items() if isinstance(key, str)
    }
    names.update(
        text=record.get("text"),
        file_name=record.get("file_name"),
        class_label=record.get("class_label"),
        record=record,
    )
    return names
