"""The flow binary (``*.ibflowbin``): a zip of ``manifest.json`` and the UDF sources it needs.

Writing is deterministic: entries in a fixed order with a fixed date, so the same sources give
the same bytes apart from the manifest's compiled_at and compiled_by. ``content_hash`` covers the
normalized flows and UDF sources only, and loading checks it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import CompileError, InvalidRequest
from shared.flow import composition, definition
from shared.flow.definition import StepDefinition

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
UDF_PREFIX = "udfs/"
BINARY_SUFFIX = ".ibflowbin"
FLOW_TYPES = {"Single Flow": "single_flow", "Metaflow": "metaflow", "Flows": "flows"}
SUPPORTED_BINARY_TYPES = tuple(FLOW_TYPES)
# Larger entries are not something the compiler writes; refusing them stops zip bombs.
MAX_ENTRY_BYTES = 20 * 1024 * 1024
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class CompiledBinary:
    """A loaded binary. ``steps`` are the steps a run executes, one task each per file (the
    flow's steps, or the flat steps of a Metaflow or Flows binary, see ``composition``);
    ``udf_sources`` maps a UDF path ('udfs/enrich.py') to its source; dicts here are read-only
    by convention."""

    binary_type: str
    flow_type: str
    content_hash: str
    steps: tuple[StepDefinition, ...]
    udf_sources: Mapping[str, str]
    manifest: dict[str, Any]
    name: str = ""


def content_hash_of(
    flows: list[dict[str, Any]],
    udf_sources: Mapping[str, str],
    composition: Mapping[str, Any] | None = None,
) -> str:
    # Keys are not sorted: the order of a refine step's fields is part of what the flow does.
    content: dict[str, Any] = {
        "flows": flows,
        "udfs": {path: udf_sources[path] for path in sorted(udf_sources)},
    }
    if composition is not None:  # absent for Single Flow, whose hashes stay what they were
        content["composition"] = composition
    canonical = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def write_binary(manifest: Mapping[str, Any], udf_sources: Mapping[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(_entry(MANIFEST_NAME), json.dumps(manifest, indent=2, ensure_ascii=False))
        for path in sorted(udf_sources):
            archive.writestr(_entry(UDF_PREFIX + path), udf_sources[path])
    return buffer.getvalue()


def _invalid(reason: str) -> InvalidRequest:
    return InvalidRequest(
        f"not a valid Flowbin binary (*{BINARY_SUFFIX}): {reason}; "
        "compile the flow project again to get one"
    )


def _read(archive: zipfile.ZipFile, name: str) -> str:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise _invalid(f"{name} is missing") from None
    if info.file_size > MAX_ENTRY_BYTES:
        raise _invalid(f"{name} is larger than {MAX_ENTRY_BYTES} bytes")
    try:
        return archive.read(info).decode("utf-8")
    except (zipfile.BadZipFile, UnicodeDecodeError, EOFError, OSError) as exc:
        raise _invalid(f"{name} cannot be read ({exc})") from None


def _manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(_read(archive, MANIFEST_NAME))
    except ValueError as exc:
        raise _invalid(f"{MANIFEST_NAME} is not JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise _invalid(f"{MANIFEST_NAME} is not a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _invalid(
            f"format_version {manifest.get('format_version')!r} is not supported "
            f"(this Flowbin reads {FORMAT_VERSION})"
        )
    binary_type = manifest.get("binary_type")
    if binary_type not in SUPPORTED_BINARY_TYPES:
        raise _invalid(
            f"binary_type {binary_type!r} is not supported yet; "
            f"supported: {', '.join(SUPPORTED_BINARY_TYPES)}"
        )
    if manifest.get("flow_type") != FLOW_TYPES[binary_type]:
        raise _invalid(f"flow_type {manifest.get('flow_type')!r} does not match {binary_type}")
    return manifest


def load_binary(data: bytes) -> CompiledBinary:
    """Read and check a binary; InvalidRequest saying what is wrong if it is not one."""
    if not isinstance(data, bytes | bytearray):
        raise _invalid("expected the binary's bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        raise _invalid("it is not a zip file") from None
    with archive:
        manifest = _manifest(archive)
        binary_type = manifest["binary_type"]
        raw_flows, udf_paths = manifest.get("flows"), manifest.get("udfs")
        if not isinstance(raw_flows, list) or not raw_flows:
            raise _invalid("flows must be a non-empty list")
        if binary_type == "Single Flow" and len(raw_flows) != 1:
            raise _invalid("a Single Flow binary holds exactly one flow")
        if not isinstance(udf_paths, list) or not all(isinstance(p, str) for p in udf_paths):
            raise _invalid("udfs must be a list of paths")
        try:
            flows = [definition.normalize_flow(flow, MANIFEST_NAME) for flow in raw_flows]
        except CompileError as exc:
            raise _invalid(exc.msg) from None
        composed = manifest.get("composition")
        if binary_type == "Single Flow":
            if composed is not None:
                raise _invalid("a Single Flow binary has no composition")
        else:
            try:
                composition.check_composition(binary_type, composed, flows)
            except ValueError as exc:
                raise _invalid(str(exc)) from None
        udf_sources = {path: _read(archive, UDF_PREFIX + path) for path in udf_paths}
    for flow in flows:
        for step_id, path, _ in definition.udf_references(flow):
            if path not in udf_sources:
                raise _invalid(f"step '{step_id}' calls {path}, which the binary does not hold")
    digest = content_hash_of(flows, udf_sources, composed)
    if manifest.get("content_hash") != digest:
        raise _invalid("content_hash does not match its contents (corrupt or edited)")
    return CompiledBinary(
        binary_type=binary_type,
        flow_type=manifest["flow_type"],
        content_hash=digest,
        steps=composition.flat_steps(binary_type, flows, composed),
        udf_sources=udf_sources,
        manifest=manifest,
        name=flows[0]["name"] if binary_type == "Single Flow" else binary_type.lower(),
    )


_LOADED_CACHE_SIZE = 32
_loaded: OrderedDict[str, CompiledBinary] = OrderedDict()


def load_binary_cached(digest: str, data: bytes) -> CompiledBinary:
    """The binary whose bytes ``data`` have SHA-256 ``digest``, parsed once per process."""
    binary = _loaded.get(digest)
    if binary is None:
        binary = _loaded[digest] = load_binary(data)
        while len(_loaded) > _LOADED_CACHE_SIZE:
            _loaded.popitem(last=False)
    return binary
