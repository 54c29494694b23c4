"""What a step type is: the check of its params and what it does to one record."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.flow.step_types.env import Record, StepEnv


@dataclass(frozen=True)
class StepType:
    """``check_params`` takes a step's raw params when its flow compiles and returns them
    normalized (defaults filled in), or raises ValueError whose message is the reason a user
    reads. ``run`` returns the record's output records (none when it is dropped) or raises;
    the runtime turns a raise into that record's error."""

    name: str
    summary: str  # one line, for the docs' step table
    check_params: Callable[[Mapping[str, Any]], dict[str, Any]]
    run: Callable[[StepEnv, Record], list[Record]]
