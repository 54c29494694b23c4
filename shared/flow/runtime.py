"""Running a step of a binary over records. Each record is processed alone: one that raises gets
its ``error`` set and the others go on. A worker calls ``run_step`` once per step and file (or
batch of files), always with all the records of each file it is given.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.flow import output_schema, udfs
from shared.flow import records as records_
from shared.flow.binary import CompiledBinary
from shared.flow.output_schema import OutputSchema
from shared.flow.records import (
    RecordError,
    child_record,
    is_stopped,
    new_record,
    record_error_counts,
    renumber,
    step_error,
)
from shared.flow.step_types import registry
from shared.flow.step_types.env import StepEnv
from shared.url_guard import UrlGuard

__all__ = [
    "StepContext",
    "StepOutcome",
    "final_results",
    "new_record",
    "output_schema_of",
    "record_error_counts",
    "run_step",
    "run_steps",
]


def _no_log(level: str, message: str) -> None:
    return None


@dataclass(frozen=True)
class StepContext:
    """The job a step runs for. ``log(level, message)`` writes to the job's log; UDF log lines
    reach it only when ``log_to_timeline`` is true. ``inputs`` holds the input files' content by
    file_index when a run keeps them in memory (a sync run) instead of on the drive.
    ``url_guard`` carries the networks the operator allowed to the steps that call URLs (the
    caller reads the settings: the flow package reads none); by default public addresses only."""

    job_id: str
    runtime_config: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str, str], None] = _no_log
    log_to_timeline: bool = False
    inputs: Mapping[int, bytes] = field(default_factory=dict)
    url_guard: UrlGuard = field(default_factory=UrlGuard)


@dataclass(frozen=True)
class StepOutcome:
    """``records`` are the step's output (record_index renumbered for files a step expanded);
    ``filtered`` counts records dropped by a filter or a UDF returning None; ``failed`` and
    ``checkpoint_failed`` count the records this step stopped."""

    records: list[dict[str, Any]]
    filtered: int = 0
    failed: int = 0
    checkpoint_failed: int = 0


def _reason(exc: BaseException, binary: CompiledBinary) -> str:
    if isinstance(exc, RecordError):
        return str(exc)
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    # Point at the user's UDF line when the exception came from there.
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename in binary.udf_sources
    ]
    if frames:
        reason += f" (at {frames[-1].filename} line {frames[-1].lineno})"
    return reason


def _process(env: StepEnv, record: dict[str, Any]) -> list[dict[str, Any]]:
    outputs = registry.step_type(env.step.type, composed=True).run(env, record)
    # Output is persisted as JSON by the caller; a value that is not JSON fails this record here.
    json.dumps(outputs)
    return outputs


def run_step(
    binary: CompiledBinary,
    step_index: int,
    records: list[dict[str, Any]],
    context: StepContext,
    passthrough: tuple[type[BaseException], ...] = (),
) -> StepOutcome:
    """Run step ``step_index`` over ``records``. Exceptions of a ``passthrough`` type (the
    worker's soft time limit) are re-raised, never recorded as a record's error."""
    if not 0 <= step_index < len(binary.steps):
        raise ValueError(f"step index {step_index} is outside 0..{len(binary.steps) - 1}")
    step = binary.steps[step_index]
    output: list[dict[str, Any]] = []
    expanded: set[Any] = set()
    filtered = failed = stopped = 0
    for record in records:
        if is_stopped(record) or (step.flow is not None and record.get("flow") != step.flow):
            output.append(record)
            continue
        env = StepEnv(
            binary=binary,
            step=step,
            udf_context=udfs.UdfContext(
                job_id=context.job_id,
                runtime_config=dict(context.runtime_config or {}),
                step_id=step.id,
                file_name=record.get("file_name"),
                _log=context.log,
                _log_to_timeline=context.log_to_timeline,
            ),
            input_data=context.inputs.get(record.get("file_index")),
            url_guard=context.url_guard,
        )
        try:
            results = _process(env, record)
        except (Exception, SystemExit) as exc:
            if isinstance(exc, passthrough):
                raise
            message = step_error(step.id, _reason(exc, binary))
            context.log(
                "ERROR",
                f"{message} (file {record.get('file_name')}, record {record.get('record_index')})",
            )
            output.append(child_record(record, error=message))
            failed += 1
            continue
        if not results:
            filtered += 1
        elif len(results) > 1:
            expanded.add(record.get("file_index"))
        stopped += sum(1 for result in results if result.get("checkpoint_failed"))
        output.extend(results)
    return StepOutcome(
        records=renumber(output, expanded),
        filtered=filtered,
        failed=failed,
        checkpoint_failed=stopped,
    )


def output_schema_of(job_settings: Mapping[str, Any] | None) -> OutputSchema | None:
    """The modify_output_schema of a job whose settings hold its runtime_config (checked when
    the run was submitted)."""
    return output_schema.from_runtime_config((job_settings or {}).get("runtime_config"))


def final_results(
    records: list[dict[str, Any]], output_schema: OutputSchema | None = None
) -> list[dict[str, Any]]:
    """What a run reports per record, with the run's modify_output_schema applied."""
    results = records_.final_results(records)
    if output_schema is None:
        return results
    for record, result in zip(records, results, strict=True):
        fields, error = output_schema.apply(record)
        result["results"] = [{"key": key, "value": value} for key, value in fields.items()]
        result["error"] = result["error"] or error
    return results


def run_steps(
    binary: CompiledBinary,
    records: list[dict[str, Any]],
    context: StepContext,
    passthrough: tuple[type[BaseException], ...] = (),
) -> StepOutcome:
    """Every step of ``binary`` in order (a synchronous run, or a test)."""
    filtered = failed = stopped = 0
    for step_index in range(len(binary.steps)):
        outcome = run_step(binary, step_index, records, context, passthrough)
        records = outcome.records
        filtered += outcome.filtered
        failed += outcome.failed
        stopped += outcome.checkpoint_failed
    return StepOutcome(records=records, filtered=filtered, failed=failed, checkpoint_failed=stopped)
