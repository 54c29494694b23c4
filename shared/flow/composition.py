"""Binaries of several flows: Metaflow (classify each record, then run the flow for its label)
and Flows (every flow of a folder in name order, each one's output records feeding the next).

Both run as one flat tuple of steps, like a Single Flow, so a worker still runs one task per
step per file and persists every step's output. A step of a composed binary has the id
``<flow key>.<step id>``, the flow key being the flow file's path in ``flows_dir`` without
``.ibflow`` (characters other than ``A-Za-z0-9_-`` become ``_``).

- Flows: the flows' steps in file name order. Files are read once: a later flow's leading
  ``extract_text`` step is left out when an earlier flow already extracted the text (it would
  throw away what the earlier flows did to the records).
- Metaflow: a ``read`` step (extract_text), a ``classify`` step (type ``route``: the classifier's
  rules set ``class_label``, then the metaflow file's route for that label, or its default flow,
  sets ``record["flow"]``), then the steps of every routed flow, each of which runs only on the
  records routed to its flow. A routed flow's leading ``extract_text`` is left out (``read`` did
  it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from shared.errors import CompileError
from shared.flow import definition
from shared.flow.definition import StepDefinition
from shared.flow.step_types import classify

READ_STEP = "read"
CLASSIFY_STEP = "classify"
FLOW_SUFFIX = ".ibflow"
_CLASSIFIER_KEYS = {"name", "description", "rules", "default"}
_METAFLOW_KEYS = {"name", "description", "routes", "default"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def flow_key(flow_file: str) -> str:
    """The prefix of a flow's step ids: 'sub/invoices.ibflow' -> 'sub_invoices'."""
    return _UNSAFE.sub("_", PurePosixPath(flow_file).as_posix().removesuffix(FLOW_SUFFIX))


def _mapping(raw: Any, file: str, allowed: set[str], what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise CompileError(file, f"{what} must be a YAML mapping with {', '.join(sorted(allowed))}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise CompileError(
            file,
            f"unknown key {', '.join(map(repr, unknown))}; {what} has {', '.join(sorted(allowed))}",
        )
    return raw


def parse_classifier(raw: Any, file: str) -> dict[str, Any]:
    """An ``*.ibclassifier`` document: ``rules`` (ordered; each a ``label`` and one of
    ``formula`` or ``regex``) and an optional ``default`` label, as a classify step's params."""
    raw = _mapping(raw, file, _CLASSIFIER_KEYS, "a classifier file")
    try:
        return classify.check_params({key: raw[key] for key in ("rules", "default") if key in raw})
    except ValueError as exc:
        raise CompileError(file, str(exc)) from None


def classifier_labels(classifier: Mapping[str, Any]) -> list[str]:
    labels = [rule["label"] for rule in classifier["rules"]]
    if classifier.get("default") is not None:
        labels.append(classifier["default"])
    return list(dict.fromkeys(labels))


def _flow_file(value: Any, file: str, what: str) -> str:
    if not isinstance(value, str) or not value.endswith(FLOW_SUFFIX):
        raise CompileError(
            file,
            f"{what} must be a flow file in flows_dir such as "
            f"'invoices{FLOW_SUFFIX}', got {value!r}",
        )
    return value


def parse_metaflow(raw: Any, file: str) -> dict[str, Any]:
    """An ``*.ibmetaflow`` document: ``routes`` (class label -> flow file in flows_dir) and an
    optional ``default`` flow file for the labels without a route."""
    raw = _mapping(raw, file, _METAFLOW_KEYS, "a metaflow file")
    routes = raw.get("routes") or {}
    if not isinstance(routes, Mapping):
        raise CompileError(file, "routes must map class labels to flow files")
    checked = {}
    for label, flow_file in routes.items():
        if not isinstance(label, str) or not label.strip():
            raise CompileError(file, f"route label {label!r} must be a non-empty string")
        checked[label] = _flow_file(flow_file, file, f"the route for '{label}'")
    default = raw.get("default")
    if default is not None:
        default = _flow_file(default, file, "default")
    if not checked and default is None:
        raise CompileError(file, "give at least one route (label: flow file) or a default flow")
    return {"routes": checked, "default": default}


def check_routes(classifier: Mapping[str, Any], metaflow: Mapping[str, Any], file: str) -> None:
    """Every route is for a label the classifier gives, and every such label has a flow."""
    labels = classifier_labels(classifier)
    for label in metaflow["routes"]:
        if label not in labels:
            raise CompileError(
                file,
                f"route for '{label}': the classifier gives no such label "
                f"(its labels: {', '.join(labels)})",
            )
    unrouted = [label for label in labels if label not in metaflow["routes"]]
    if unrouted and metaflow["default"] is None:
        raise CompileError(
            file,
            f"label {', '.join(map(repr, unrouted))} has no flow: add a "
            "route for it or a default flow",
        )


def metaflow_composition(
    classifier: Mapping[str, Any], metaflow: Mapping[str, Any], keys: list[str]
) -> dict[str, Any]:
    """The manifest's ``composition`` of a Metaflow binary whose flows have ``keys``."""
    return {
        "flow_keys": keys,
        "classifier": dict(classifier),
        "routes": {label: flow_key(flow) for label, flow in metaflow["routes"].items()},
        "default_flow": flow_key(metaflow["default"]) if metaflow["default"] else None,
    }


def check_composition(binary_type: str, composition: Any, flows: list[dict[str, Any]]) -> None:
    """ValueError if a loaded binary's composition does not fit its type and flows."""
    if not isinstance(composition, Mapping):
        raise ValueError(f"a {binary_type} binary needs a composition")
    keys = composition.get("flow_keys")
    if (
        not isinstance(keys, list)
        or len(keys) != len(flows)
        or len(set(keys)) != len(keys)
        or not all(isinstance(key, str) and key and not _UNSAFE.search(key) for key in keys)
    ):
        raise ValueError("composition.flow_keys must name each flow once")
    if binary_type == "Flows":
        if set(composition) != {"flow_keys"}:
            raise ValueError("a Flows composition holds flow_keys only")
        return
    if set(composition) != {"flow_keys", "classifier", "routes", "default_flow"}:
        raise ValueError(
            "a Metaflow composition holds flow_keys, classifier, routes and default_flow"
        )
    if classify.check_params(composition["classifier"]) != composition["classifier"]:
        raise ValueError("the classifier is not normalized")
    routes = composition["routes"]
    targets = (
        [*routes.values(), composition["default_flow"]] if isinstance(routes, Mapping) else None
    )
    if targets is None or not all(target in keys for target in targets if target is not None):
        raise ValueError("every route must lead to one of the binary's flows")


def _prefixed(key: str, step: StepDefinition, flow: str | None) -> StepDefinition:
    return StepDefinition(
        id=f"{key}.{step.id}", type=step.type, params=step.params, timeout=step.timeout, flow=flow
    )


def _without_leading_read(steps: tuple[StepDefinition, ...]) -> tuple[StepDefinition, ...]:
    return steps[1:] if steps and steps[0].type == "extract_text" else steps


def flat_steps(
    binary_type: str, flows: list[dict[str, Any]], composition: Mapping[str, Any] | None
) -> tuple[StepDefinition, ...]:
    """The steps a worker runs, one task each per file, for a binary of ``binary_type``."""
    if binary_type == "Single Flow":
        return definition.step_definitions(flows[0])
    keys = composition["flow_keys"]
    steps: list[StepDefinition] = []
    if binary_type == "Flows":
        for key, flow in zip(keys, flows, strict=True):
            own = definition.step_definitions(flow)
            if any(step.type == "extract_text" for step in steps):
                own = _without_leading_read(own)
            steps.extend(_prefixed(key, step, None) for step in own)
        return tuple(steps)
    classifier = composition["classifier"]
    steps.append(StepDefinition(id=READ_STEP, type="extract_text", params={}))
    steps.append(
        StepDefinition(
            id=CLASSIFY_STEP,
            type="route",
            params={
                "rules": classifier["rules"],
                "default": classifier.get("default"),
                "routes": composition["routes"],
                "default_flow": composition["default_flow"],
            },
        )
    )
    for key, flow in zip(keys, flows, strict=True):
        own = _without_leading_read(definition.step_definitions(flow))
        steps.extend(_prefixed(key, step, key) for step in own)
    return tuple(steps)
