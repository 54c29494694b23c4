"""Documents: files a user uploads (``POST /api/v2/documents``) to run flows on, each kept in the
uploader's own space as ``<username>/documents/<id>/<name>``. The id, a UUID, is the folder's
name, so the drive is the only record: a document is looked for in its uploader's folder only,
and another user's id is as unknown as one never made (admins included).

A flow run on documents gets a fresh folder, ``<username>/documents/runs/<run>/``, whose
``input`` holds a hard link to each document (a copy where the file system cannot link), so
that its default output folder is that run's own ``out`` beside it. The drive replaces a file
it writes rather than writing into it, so a link keeps the bytes the run was given."""

from __future__ import annotations

import contextlib
import os
import shutil
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from shared import drive_ops
from shared.accounts.access import drive_for
from shared.accounts.principal import Principal
from shared.config import Settings
from shared.drive import MAX_NAME_BYTES, Drive, DrivePath
from shared.engine.broker_work import BrokerWork
from shared.errors import InvalidRequest
from shared.jobs.ids import new_job_id
from shared.runs.submit import RunRequest, create_run
from shared.storage import backend
from shared.storage.backend import FILE, StoredFile
from shared.store.models import Job

FOLDER = "documents"
RUNS = "runs"  # never a UUID, so never a document's folder
DEFAULT_NAME = "document"
MAX_DOCUMENTS = 1000  # per run


@dataclass(frozen=True)
class Document:
    id: str
    name: str
    size: int
    uri: str  # its drive path
    file: StoredFile

    def view(self) -> dict:
        return {"id": self.id, "name": self.name, "size": self.size, "uri": self.uri}


# -- names ------------------------------------------------------------------------------------
def checked_name(name: str, what: str = "name") -> str:
    """``name`` as a document's file name (one drive name, no control character, not starting
    with '.', which a run's input folder would skip), or a 400 naming ``what``."""
    if not name or name in (".", ".."):
        raise InvalidRequest(f"{what}: a document's name cannot be empty, '.' or '..'")
    if name.startswith("."):
        raise InvalidRequest(f"{what}: a document's name cannot start with '.' ({name!r})")
    if any(char in "/\\" or unicodedata.category(char) == "Cc" for char in name):
        raise InvalidRequest(
            f"{what}: a document's name holds no '/', '\\' or control character ({name!r})"
        )
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        raise InvalidRequest(f"{what}: a document's name cannot hold unpaired surrogates") from None
    if size > MAX_NAME_BYTES:
        raise InvalidRequest(f"{what}: a document's name is at most {MAX_NAME_BYTES} bytes (UTF-8)")
    return name


def name_sent(filename: str | None, what: str) -> str:
    """The name of a file a client sent (a Content-Disposition or a multipart part's filename,
    which may be a path: its last segment), or ``document`` if it sent none."""
    if filename is None or not filename.strip():
        return DEFAULT_NAME
    return checked_name(filename.replace("\\", "/").rsplit("/", 1)[-1].strip(), what)


# -- storing and finding ----------------------------------------------------------------------
def new_document_id() -> str:
    return str(uuid.uuid4())


def _folder(drive: Drive, principal: Principal, document_id: str, write: bool) -> DrivePath:
    return drive.resolve(principal, f"{principal.username}/{FOLDER}/{document_id}", write=write)


def write_document(
    drive: Drive, principal: Principal, document_id: str, name: str, chunks: Iterable[bytes]
) -> Document:
    """Stream ``chunks`` into the new document's file; a failure leaves no folder behind."""
    folder = _folder(drive, principal, document_id, write=True)
    target = drive.resolve(principal, f"{folder.relative}/{name}", write=True)
    try:
        size = drive_ops.write_stream(target, chunks)
    except BaseException:
        discard_document(drive, principal, document_id)
        raise
    return Document(document_id, name, size, target.relative, target.file)


def discard_document(drive: Drive, principal: Principal, document_id: str) -> None:
    """Remove what an upload that failed wrote."""
    _discard(_folder(drive, principal, document_id, write=True))


def canonical_id(document_id: str) -> str | None:
    """A document id in the form ids are made (lowercase, hyphenated), or None if it is none."""
    try:
        return str(uuid.UUID(document_id))
    except (ValueError, TypeError, AttributeError):
        return None


def find_document(drive: Drive, principal: Principal, document_id: str) -> Document | None:
    """The caller's document ``document_id``: the one file of its folder (the first by name, if
    someone put more there), or None."""
    canonical = canonical_id(document_id)
    if canonical is None:
        return None
    folder = _folder(drive, principal, canonical, write=False)
    storage = folder.storage
    found = next(
        (
            node
            for node in storage.children(folder.relative)
            # Not a write in progress (a dot file), and no link: the drive follows none.
            if not node.name.startswith(".")
            and node.type == FILE
            and (folder.real is None or storage.kind_of(node.path) == FILE)
        ),
        None,
    )
    if found is None:
        return None
    return Document(canonical, found.name, found.size, found.path, storage.file(found.path))


def documents_named(drive: Drive, principal: Principal, ids: list[str]) -> list[Document]:
    """The caller's documents ``ids``, in order; a 400 names the unknown and repeated ones."""
    if not ids:
        raise InvalidRequest("documents: give at least one document id")
    if len(ids) > MAX_DOCUMENTS:
        raise InvalidRequest(f"documents: at most {MAX_DOCUMENTS} documents a run")
    found, unknown, seen, repeated = [], [], set(), []
    for document_id in ids:
        document = find_document(drive, principal, document_id)
        if document is None:
            unknown.append(document_id)
        elif document.id in seen:
            repeated.append(document_id)
        else:
            seen.add(document.id)
            found.append(document)
    if unknown:
        raise InvalidRequest(
            f"documents: you have no document with id {', '.join(map(repr, unknown))}: upload "
            "each with POST /api/v2/documents and give the id it answers"
        )
    if repeated:
        raise InvalidRequest(f"documents: {', '.join(map(repr, repeated))} listed twice")
    return found


# -- a run's input ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInput:
    folder: DrivePath  # documents/runs/<run>: removed if the run is not recorded
    input_dir: str  # its input folder's drive path
    documents: list[dict]  # each document, with the name of its file in the input folder


def _file_names(documents: list[Document]) -> list[str]:
    """A name in the input folder for each document: its own, unless an earlier one has it."""
    used: set[str] = set()
    names = []
    for document in documents:
        name = document.name
        if name in used:
            path = PurePosixPath(name)
            name = f"{path.stem}-{document.id[:8]}{path.suffix}"
            if name in used or len(name.encode()) > MAX_NAME_BYTES:
                name = f"{document.id}{path.suffix}"[:MAX_NAME_BYTES]
        used.add(name)
        names.append(name)
    return names


def _link_or_copy(source: StoredFile, target: StoredFile) -> None:
    """A hard link on a local drive (no bytes copied); else a copy inside the storage."""
    local_source, local_target = source.local_path(), target.local_path()
    if local_source is None or local_target is None:
        target.storage.copy_file(source.key, target.key)
        return
    try:
        os.link(local_source, local_target)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(local_source, local_target)


def _discard(folder: DrivePath) -> None:
    # Cleaning up after a failure: what cannot be removed stays, the failure is what matters.
    with contextlib.suppress(Exception):
        folder.storage.delete(folder.relative)


def stage_run_input(
    drive: Drive, principal: Principal, run: str, documents: list[Document]
) -> RunInput:
    """A new folder ``documents/runs/<run>/input`` (or ``<a new UUID>`` if ``run`` is taken)
    holding ``documents``."""
    base = f"{principal.username}/{FOLDER}/{RUNS}"
    folder = drive.resolve(principal, f"{base}/{run}", write=True)
    storage = folder.storage
    if storage.kind_of(base) not in (None, backend.FOLDER):
        raise InvalidRequest(f"cannot make {folder.relative!r}: {base!r} is a file")
    if storage.stat(folder.relative) is not None:  # taken
        folder = drive.resolve(principal, f"{base}/{uuid.uuid4()}", write=True)
    try:
        storage.make_folder(folder.relative)
    except (FileExistsError, NotADirectoryError):
        raise InvalidRequest(
            f"cannot make {folder.relative!r}: a folder on its way is a file"
        ) from None
    try:
        storage.make_folder(f"{folder.relative}/input")
        listed = []
        for document, file_name in zip(documents, _file_names(documents), strict=True):
            _link_or_copy(document.file, folder.file / "input" / file_name)
            listed.append({**document.view(), "file_name": file_name})
    except BaseException:
        discard_run_input(folder)
        raise
    return RunInput(folder, f"{folder.relative}/input", listed)


def discard_run_input(folder: DrivePath) -> None:
    _discard(folder)


def create_run_on_documents(
    settings: Settings, principal: Principal, request: RunRequest, document_ids: list[str]
) -> tuple[Job, BrokerWork]:
    """``create_run`` with the caller's documents as its input, in a new input folder that
    goes again if the run is refused."""
    drive = drive_for(settings)
    job_id = new_job_id(request.job_id)
    named = documents_named(drive, principal, document_ids)
    staged = stage_run_input(drive, principal, job_id, named)
    on_documents = replace(
        request,
        input_dir=staged.input_dir,
        job_id=job_id,
        settings=replace(request.settings, documents=tuple(staged.documents)),
    )
    try:
        return create_run(settings, principal, on_documents)
    except BaseException:
        discard_run_input(staged.folder)
        raise
