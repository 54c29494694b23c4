"""Celery tasks: each loads what it needs, calls the domain code in ``shared`` and records."""

from __future__ import annotations

import functools

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from shared.compiling import run_compile
from shared.config import Settings
from shared.execution import StepCall, StepRunner
from workers.dispatch import COMPILE, RUN_STEP, publish_step


@functools.cache
def current_settings() -> Settings:
    return Settings.from_env()


@shared_task(name=RUN_STEP, bind=True)
def run_step(self, job_id: str, file_index: int, step_index: int) -> None:
    runner = StepRunner(current_settings(), self.request.id, passthrough=(SoftTimeLimitExceeded,))
    following = runner.run(StepCall(job_id, file_index, step_index))
    if following is not None:
        # Published only after the step's outcome committed: a pause or cancel that landed
        # meanwhile is seen by the runner, and a crash here is repaired on redelivery.
        publish_step(self.app, following)


@shared_task(name=COMPILE, bind=True)
def compile_flow(self, job_id: str) -> None:
    run_compile(current_settings(), job_id, self.request.id)
