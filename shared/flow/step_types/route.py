"""``route``: a Metaflow's classifier step. Not a flow file step type: composition builds it,
from the classifier file and the metaflow file's routes, into Metaflow binaries only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.flow.records import RecordError
from shared.flow.step_types import classify
from shared.flow.step_types.env import Record, StepEnv
from shared.flow.step_types.step_type import StepType


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    # Composition builds a route step's params from files it has already checked, and the
    # compiler never looks route up for a flow file; reaching this is a bug, so say so.
    raise ValueError("route steps are built by composition; a flow file cannot have one")


def run(env: StepEnv, record: Record) -> list[Record]:
    """Set ``class_label`` as classify does, then ``flow``, the key of the flow whose steps the
    record runs (the label's route, else the default flow)."""
    [classified] = classify.run(env, record)
    label = classified.get("class_label")
    flow = env.step.params["routes"].get(label) if isinstance(label, str) else None
    flow = flow or env.step.params.get("default_flow")
    if flow is None:
        raise RecordError(
            f"no flow for class label {label!r}: route that label to a flow in "
            "the metaflow file, or give it a default flow"
        )
    classified["flow"] = flow
    return [classified]


STEP_TYPE = StepType(
    name="route",
    summary="classifies the record, then sets `flow` to the flow its label is routed to",
    check_params=check_params,
    run=run,
)
