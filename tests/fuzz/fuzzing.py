"""One schemathesis run over the app's own OpenAPI spec, in process, and what it found.

The run is `schemathesis run`'s engine with its phases (probing, examples, coverage, fuzzing,
stateful), configured below as a schemathesis.toml would be; each failure comes with the curl
command that reproduces it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import schemathesis
from schemathesis.engine import Status, events, from_schema
from schemathesis.generation import GenerationMode

from tests.fuzz.conftest import ADMIN, USER, FuzzData

# 400 and 422 say "this input is invalid"; 404 and 409 may only mean "not here", "not now".
INVALID_INPUT = (400, 422)


@dataclass(frozen=True)
class Budget:
    seed: int
    examples: int  # cases per operation in the fuzzing phase
    scenarios: int  # stateful scenarios, each a chain of calls along the spec's links
    steps: int  # calls per scenario at most


@dataclass
class Findings:
    failures: list[str] = field(default_factory=list)  # a failed check, with a curl to rerun it
    errors: list[str] = field(default_factory=list)  # what schemathesis itself could not do
    cases: Counter = field(default_factory=Counter)  # cases sent, by phase
    fuzzed: set[str] = field(default_factory=set)  # operations the fuzzing phase called
    linked: Counter = field(default_factory=Counter)  # 2xx answers to calls a link fed, by link
    # Per operation, the answers to input the spec calls valid, and the reasons of refusals.
    valid: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    refusals: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def rejecting_valid_input(self) -> dict[str, list[str]]:
        """Operations that accepted no input the spec calls valid and refused it as invalid
        (400/422) at least once: schemathesis's "validation mismatch" warning. For each, the
        most common reasons given."""
        return {
            operation: [reason for reason, _ in self.refusals[operation].most_common(3)]
            for operation, answers in sorted(self.valid.items())
            if not any(200 <= code < 300 for code in answers)
            and any(code in INVALID_INPUT for code in answers)
        }


def configuration(token: str, data: FuzzData, budget: Budget) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": budget.seed,
            # One worker thread: the order of calls, and so the run, is the same every time.
            "workers": 1,
            # Hypothesis's timing check measures the machine's load, not the API.
            "suppress-health-check": ["too_slow"],
            "auth": {"openapi": {"bearerAuth": {"bearer": token}}},
            "generation": {
                "max-examples": budget.examples,
                "deterministic": True,
                "database": "none",
            },
            # No server error; and every answer is one the spec describes: its status code,
            # content type and body.
            "checks": {
                "enabled": False,
                **{
                    check: {"enabled": True}
                    for check in (
                        "not_a_server_error",
                        "status_code_conformance",
                        "content_type_conformance",
                        "response_schema_conformance",
                    )
                },
            },
            "phases": {
                "stateful": {
                    "max-steps": budget.steps,
                    "generation": {"max-examples": budget.scenarios},
                },
            },
            # Paths that exist, drawn instead of a made-up value in a share of the valid
            # cases: a made-up binary or folder is a 404 before anything else is looked at.
            "dictionaries": {
                "projects": {"values": [data.project]},
                "binaries": {"values": [data.binary]},
                "inputs": {"values": [data.input_dir]},
                "outputs": {"values": [data.output_dir]},
                "entries": {"values": [data.scratch_file, data.scratch_folder]},
                # Never another test's user: a job they review shows in their listings.
                "users": {"values": [USER, ADMIN]},
                "jobs": {"values": [data.stopped_job]},
                "stopped_file": {"values": [1]},
            },
            "parameters": {
                "body.flow_project_root": {"dictionary": "projects", "probability": 0.8},
                "body.binary_path": {"dictionary": "binaries", "probability": 0.8},
                "body.input_dir": {"dictionary": "inputs", "probability": 0.8},
                "body.output_dir": {"dictionary": "outputs", "probability": 0.5},
                "path.path": {"dictionary": "entries", "probability": 0.5},
                "body.reviewer": {"dictionary": "users", "probability": 0.8},
                # The job stopped at its checkpoint, and the file of it that stopped; links
                # bring the ids of the jobs the run itself creates.
                "query.job_id": {"dictionary": "jobs", "probability": 0.3},
                "body.job_id": {"dictionary": "jobs", "probability": 0.3},
                "body.file_index": {"dictionary": "stopped_file", "probability": 0.5},
            },
        }
    )


def fuzz(app, token: str, data: FuzzData, budget: Budget) -> Findings:
    """Run schemathesis over ``app``'s spec, calling it through its WSGI interface."""
    schema = schemathesis.openapi.from_wsgi(
        "/openapi.json", app, config=configuration(token, data, budget)
    )
    found = Findings()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(found, event)
        elif isinstance(event, events.NonFatalError):
            found.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            found.errors.append(f"fatal: {event.exception!r}")
    return found


def _record(found: Findings, event: events.ScenarioFinished) -> None:
    recorder = event.recorder
    for case_id, node in recorder.cases.items():
        case = node.value
        found.cases[event.phase.value] += 1
        for check in recorder.checks.get(case_id, []):
            if check.status == Status.FAILURE and check.failure_info is not None:
                failure = check.failure_info.failure
                seen = f"{case.operation.label} ({event.phase.value}): {failure.title}"
                # Hypothesis replays a failing case while it shrinks it: report each once.
                if not any(line.startswith(seen) for line in found.failures):
                    found.failures.append(
                        f"{seen}\n  {failure.message}\n  {check.failure_info.code_sample}"
                    )
        interaction = recorder.interactions.get(case_id)
        if interaction is None or interaction.response is None:
            continue
        code = interaction.response.status_code
        if event.phase.value == "fuzzing":
            found.fuzzed.add(case.operation.label)
        if node.transition is not None and 200 <= code < 300:
            found.linked[node.transition.id] += 1
        meta = case.meta
        # Valid cases only, and only those sent with the operation's own method (coverage also
        # tries others, which answer 405).
        if (
            meta is not None
            and meta.generation.mode == GenerationMode.POSITIVE
            and case.method.upper() == case.operation.method.upper()
        ):
            found.valid[case.operation.label][code] += 1
            if code in INVALID_INPUT:
                found.refusals[case.operation.label][_reason(interaction.response)] += 1


def _reason(response) -> str:
    try:
        return str(json.loads(response.content)["msg"])[:160]
    except (ValueError, KeyError, TypeError):
        return repr(response.content[:160])
