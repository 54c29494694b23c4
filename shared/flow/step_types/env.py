"""What a step type's run is given (the record and its ``StepEnv``), and evaluating a formula
so that a failure becomes the record's error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.flow import formulas
from shared.flow.records import RecordError
from shared.flow.udfs import UdfContext
from shared.url_guard import UrlGuard

if TYPE_CHECKING:
    # Type hints only: binary and definition import the registry, so importing them here
    # at run time would be a cycle.
    from shared.flow.binary import CompiledBinary
    from shared.flow.definition import StepDefinition

Record = dict[str, Any]


@dataclass(frozen=True)
class StepEnv:
    """What a run needs besides the record. ``input_data`` is the record's input file content
    when the run holds it in memory (a sync run); ``url_guard`` is what the URLs a step calls
    must pass (the http step), with the networks the operator allowed."""

    binary: CompiledBinary
    step: StepDefinition
    udf_context: UdfContext
    input_data: bytes | None = None
    url_guard: UrlGuard = field(default_factory=UrlGuard)


def evaluate(formula: str, names: dict[str, Any], what: str) -> Any:
    """``formula``'s value over ``names``; a formula that fails is the record's error, named
    ``what``."""
    try:
        return formulas.evaluate(formula, names)
    except formulas.FormulaError as exc:
        raise RecordError(f"{what}: {exc}") from None
