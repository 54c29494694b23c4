"""The step types by name: the one table that the compiler checks a flow file's steps against
and that the runtime runs compiled steps from."""

from __future__ import annotations

from shared.flow.step_types.checkpoint import STEP_TYPE as CHECKPOINT
from shared.flow.step_types.classify import STEP_TYPE as CLASSIFY
from shared.flow.step_types.extract_text import STEP_TYPE as EXTRACT_TEXT
from shared.flow.step_types.filter import STEP_TYPE as FILTER
from shared.flow.step_types.http import STEP_TYPE as HTTP
from shared.flow.step_types.refine import STEP_TYPE as REFINE
from shared.flow.step_types.route import STEP_TYPE as ROUTE
from shared.flow.step_types.split import STEP_TYPE as SPLIT
from shared.flow.step_types.step_type import StepType
from shared.flow.step_types.udf import STEP_TYPE as UDF

# The types a flow file may use, in the order the compiler's error and the docs list them.
STEP_TYPES: dict[str, StepType] = {
    step_type.name: step_type
    for step_type in (EXTRACT_TEXT, SPLIT, CLASSIFY, REFINE, FILTER, CHECKPOINT, UDF, HTTP)
}

# Types that only composition puts into a binary (a Metaflow's classifier), never a flow file.
COMPOSED_ONLY: dict[str, StepType] = {ROUTE.name: ROUTE}


def step_type(name: str, *, composed: bool = False) -> StepType:
    """The flow file step type ``name``; KeyError if there is none. A compiled step may also be
    of a type that composition adds: the runtime passes ``composed=True`` to find those too."""
    if composed and name in COMPOSED_ONLY:
        return COMPOSED_ONLY[name]
    return STEP_TYPES[name]
