"""The flow file (``*.ibflow``, YAML): parsing it and normalizing it into the manifest's form."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from shared.errors import CompileError
from shared.flow import udfs
from shared.flow.step_types import registry

STEP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_NAME = 100
MAX_TIMEOUT = 86_400
_FLOW_KEYS = {"name", "steps", "description"}
_STEP_KEYS = {"id", "type", "params", "timeout", "description"}


@dataclass(frozen=True)
class StepDefinition:
    """One normalized step. ``params`` is a plain dict, read-only by convention (so that the
    definition pickles and compares); ``timeout`` is seconds, None for the run's default.
    ``flow`` is set in a Metaflow binary: the step runs only on the records that the classifier
    routed to that flow (``record["flow"]``) and passes the others on untouched."""

    id: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    timeout: int | None = None
    flow: str | None = None

    def to_dict(self) -> dict[str, Any]:
        step = {"id": self.id, "type": self.type, "params": self.params, "timeout": self.timeout}
        if self.flow is not None:
            step["flow"] = self.flow
        return step


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice instead of keeping the last."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_flow_source(source: str, file: str) -> Any:
    """The YAML document in ``source``; CompileError naming ``file`` if it does not parse."""
    try:
        return yaml.load(source, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CompileError(file, f"YAML does not parse: {problem}{where}") from None


def _timeout(value: Any, file: str, step_id: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_TIMEOUT:
        raise CompileError(
            file, f"timeout must be a whole number of seconds from 1 to {MAX_TIMEOUT}", step_id
        )
    return value


def _step(raw: Any, number: int, file: str, seen: set[str]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise CompileError(file, f"step #{number} must be a mapping with id and type")
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not STEP_ID.fullmatch(step_id):
        raise CompileError(
            file, f"step #{number} id {step_id!r} must be 1-64 characters of A-Za-z0-9_-"
        )
    if step_id in seen:
        raise CompileError(file, f"duplicate step id '{step_id}'; step ids must be unique", step_id)
    seen.add(step_id)
    unknown = sorted(set(raw) - _STEP_KEYS)
    if unknown:
        raise CompileError(
            file,
            f"unknown key {', '.join(map(repr, unknown))}; "
            f"a step has {', '.join(sorted(_STEP_KEYS))}",
            step_id,
        )
    step_type = raw.get("type")
    try:
        check_params = registry.step_type(step_type).check_params
    except KeyError:
        raise CompileError(
            file,
            f"unknown step type {step_type!r}; valid types: {', '.join(registry.STEP_TYPES)}",
            step_id,
        ) from None
    raw_params = raw.get("params")
    if raw_params is None:
        raw_params = {}
    if not isinstance(raw_params, Mapping):
        raise CompileError(file, "params must be a mapping", step_id)
    try:
        checked = check_params(raw_params)
    except ValueError as exc:
        raise CompileError(file, f"bad params for {step_type}: {exc}", step_id) from None
    return {
        "id": step_id,
        "type": step_type,
        "params": checked,
        "timeout": _timeout(raw.get("timeout"), file, step_id),
    }


def normalize_flow(raw: Any, file: str) -> dict[str, Any]:
    """The normalized definition ``{"name", "steps": [{id, type, params, timeout}]}`` of a parsed
    flow file, or CompileError naming ``file``, the step id and the reason."""
    if not isinstance(raw, Mapping):
        raise CompileError(file, "a flow file must be a mapping with name and steps")
    unknown = sorted(set(raw) - _FLOW_KEYS)
    if unknown:
        raise CompileError(
            file,
            f"unknown key {', '.join(map(repr, unknown))}; "
            f"a flow has {', '.join(sorted(_FLOW_KEYS))}",
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise CompileError(file, f"name is missing; give the flow a name of 1-{MAX_NAME} chars")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise CompileError(file, "steps is missing or empty; a flow needs at least one step")
    seen: set[str] = set()
    return {
        "name": name.strip(),
        "steps": [_step(step, number, file, seen) for number, step in enumerate(steps, 1)],
    }


def step_definitions(flow: Mapping[str, Any]) -> tuple[StepDefinition, ...]:
    return tuple(
        StepDefinition(id=s["id"], type=s["type"], params=s["params"], timeout=s["timeout"])
        for s in flow["steps"]
    )


def udf_references(flow: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(step id, module path, function name) of every udf step, in step order."""
    return [
        (step["id"], *udfs.parse_function_ref(step["params"]["function"]))
        for step in flow["steps"]
        if step["type"] == "udf"
    ]
