"""Where a flow run's files are: its inputs in the drive, and its output folder's layout
(``steps/NN_<step id>/<file>.json``, ``results/<file>.json``, ``results.json``, and
``batch.ibflowresults``, the results as Instabase clients read them)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from shared.config import Settings
from shared.flow.binary import CompiledBinary
from shared.storage.backend import StoredFile
from shared.storage.locate import drive_storage


class RunFolders(Protocol):
    """What the layout needs of a job: a stored Job or a worker's JobSnapshot."""

    input_dir: str
    output_dir: str


# Every file here is a StoredFile of the drive's storage (a local folder or an object store),
# so that a worker reads and writes them with no shared folder.
def input_path(settings: Settings, job: RunFolders, file_name: str) -> StoredFile:
    return drive_storage(settings).file(f"{job.input_dir}/{file_name}")


class StoredInput(Mapping[int, bytes]):
    """One input file's content by its file_index, read from the drive's storage only when a
    step asks for it (``extract_text``): how a step reads its input where the drive has no
    local path (an object store)."""

    def __init__(self, source: StoredFile, file_index: int):
        self.source, self.file_index = source, file_index

    def __getitem__(self, index: int) -> bytes:
        if index != self.file_index:
            raise KeyError(index)
        return self.source.read_bytes()

    def __iter__(self) -> Iterator[int]:
        return iter([self.file_index])

    def __len__(self) -> int:
        return 1


def input_contents(
    settings: Settings, job: RunFolders, file_index: int, file_name: str
) -> tuple[str | None, Mapping[int, bytes]]:
    """What a first step reads its input file from: its local path (the record's
    ``source_path``) or, on an object store, its content (the step context's ``inputs``)."""
    source = input_path(settings, job, file_name)
    local = source.local_path()
    if local is not None:
        return str(local), {}
    return None, StoredInput(source, file_index)


def output_path(settings: Settings, job: RunFolders) -> StoredFile:
    return drive_storage(settings).file(job.output_dir)


def step_output_file(
    settings: Settings, job: RunFolders, binary: CompiledBinary, step_index: int, file_name: str
) -> StoredFile:
    """A step's output records for one input file, written atomically once the step ran."""
    folder = f"{step_index:02d}_{binary.steps[step_index].id}"
    return output_path(settings, job) / "steps" / folder / f"{file_name}.json"


def results_file(settings: Settings, job: RunFolders, file_name: str) -> StoredFile:
    """The final results of one input file."""
    return output_path(settings, job) / "results" / f"{file_name}.json"


def combined_results_file(settings: Settings, job: RunFolders) -> StoredFile:
    """Every result of the run, in input order, written when the job ends."""
    return output_path(settings, job) / "results.json"


IBFLOWRESULTS = "batch.ibflowresults"


def ibflowresults_file(settings: Settings, job: RunFolders) -> StoredFile:
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
