"""Where a flow run's files are: its inputs in the drive, and its output folder's layout
(``steps/NN_<step id>/<file>.json``, ``results/<file>.json``, ``results.json``, and
``batch.ibflowresults``, the results as Instabase clients read them)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from shared.config import Settings
from shared.flow.binary import CompiledBinary


class RunFolders(Protocol):
    """What the layout needs of a job: a stored Job or a worker's JobSnapshot."""

    input_dir: str
    output_dir: str


def input_path(settings: Settings, job: RunFolders, file_name: str) -> Path:
    return settings.drive_root / job.input_dir / file_name


def output_path(settings: Settings, job: RunFolders) -> Path:
    return settings.drive_root / job.output_dir


def step_output_file(
    settings: Settings, job: RunFolders, binary: CompiledBinary, step_index: int, file_name: str
) -> Path:
    """A step's output records for one input file, written atomically once the step ran."""
    folder = f"{step_index:02d}_{binary.steps[step_index].id}"
    return output_path(settings, job) / "steps" / folder / f"{file_name}.json"


def results_file(settings: Settings, job: RunFolders, file_name: str) -> Path:
    """The final results of one input file."""
    return output_path(settings, job) / "results" / f"{file_name}.json"


def combined_results_file(settings: Settings, job: RunFolders) -> Path:
    """Every result of the run, in input order, written when the job ends."""
    return output_path(settings, job) / "results.json"


IBFLOWRESULTS = "batch.ibflowresults"


def ibflowresults_file(settings: Settings, job: RunFolders) -> Path:
    """Every result of the run as ``flow_binary/results`` answers them, written at the end."""
    return output_path(settings, job) / IBFLOWRESULTS


def ibflowresults(job: RunFolders, combined: list[dict]) -> dict:
    """``batch.ibflowresults``: each record as Instabase's results API shows it."""
    return {
        "records": [
            {
                "file_name": result.get("file_name"),
                "record_index": result.get("record_index"),
                "results": result.get("results") or [],
                "classification_label": result.get("class_label"),
                "output_file_path": f"{job.output_dir}/results/{result.get('file_name')}.json",
                "error": result.get("error"),
                "checkpoint_failed": result.get("checkpoint_failed") or [],
            }
            for result in combined
        ]
    }
