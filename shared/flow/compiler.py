"""Compiling a flow project folder into a binary. Runs in workers: importing a UDF module to
check it executes the user's code, in a fresh module that is thrown away afterwards."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from shared.errors import CompileError
from shared.flow import binary, definition, udfs

BINARY_TYPES = tuple(binary.FLOW_TYPES)
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class CompiledArtifact:
    data: bytes
    file_name: str
    content_hash: str


def _inside(root: Path, relative: Any, file: str) -> Path:
    """``root / relative`` if ``relative`` is a relative path that stays inside ``root``."""
    if not isinstance(relative, str) or not relative.strip() or "\0" in relative:
        raise CompileError(file, "must be a non-empty path relative to the project folder")
    if "\\" in relative or PurePosixPath(relative).is_absolute() or ".." in Path(relative).parts:
        raise CompileError(file, f"{relative!r} must be relative and stay inside the project")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise CompileError(file, f"{relative!r} leads outside the project folder")
    return path


def _read_text(path: Path, file: str, step_id: str | None = None) -> str:
    if not path.is_file():
        raise CompileError(file, f"{file} does not exist in the project", step_id)
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError:
        raise CompileError(file, "is not UTF-8 text", step_id) from None
    except OSError as exc:
        raise CompileError(file, f"cannot be read ({exc.strerror})", step_id) from None


def _check_udf(path: str, source: str, names: list[tuple[str, str]],
               passthrough: tuple[type[BaseException], ...]) -> None:
    """Import the UDF module and look up every function a step calls in it."""
    first_step = names[0][0]
    try:
        module = udfs.load_module(path, source)
    except SyntaxError as exc:
        raise CompileError(path, f"UDF module does not import: SyntaxError: {exc.msg} "
                                 f"(line {exc.lineno})", first_step) from None
    except (Exception, SystemExit) as exc:
        if isinstance(exc, passthrough):
            raise
        raise CompileError(path, f"UDF module does not import: {type(exc).__name__}: {exc}",
                           first_step) from None
    for step_id, name in names:
        try:
            udfs.function_in(module, path, name)
        except ValueError as exc:
            raise CompileError(path, str(exc), step_id) from None


def _udf_sources(root: Path, flow: dict[str, Any], flow_file: str,
                 passthrough: tuple[type[BaseException], ...]) -> dict[str, str]:
    calls: dict[str, list[tuple[str, str]]] = {}
    for step_id, path, name in definition.udf_references(flow):
        calls.setdefault(path, []).append((step_id, name))
    sources = {}
    for path, names in calls.items():
        step_id = names[0][0]
        try:
            real = _inside(root, path, flow_file)
        except CompileError as exc:
            raise CompileError(flow_file, f"UDF {exc.reason}", step_id) from None
        if not real.is_file():
            raise CompileError(flow_file, f"UDF module {path} does not exist in the project",
                               step_id)
        sources[path] = _read_text(real, path, step_id)
        _check_udf(path, sources[path], names, passthrough)
    return sources


def _file_name(flow_name: str, flow_file: str) -> str:
    stem = flow_name if _SAFE_FILE_NAME.fullmatch(flow_name) else PurePosixPath(flow_file).stem
    return stem + binary.BINARY_SUFFIX


def compile_project(project_root: Path, binary_type: str, settings: Mapping[str, Any],
                    compiled_by: str,
                    passthrough: tuple[type[BaseException], ...] = ()) -> CompiledArtifact:
    """Compile the project at ``project_root``; CompileError naming file, step id and reason.
    ``passthrough`` exceptions raised by a UDF module on import propagate (time limits)."""
    if binary_type not in BINARY_TYPES:
        raise CompileError("binary_type", f"{binary_type!r} is not a binary type; use one of "
                                          f"{', '.join(map(repr, BINARY_TYPES))}")
    if binary_type not in binary.SUPPORTED_BINARY_TYPES:
        raise CompileError("binary_type", f"{binary_type!r} binaries are not supported yet; "
                                          "compile a 'Single Flow'")
    root = Path(project_root)
    if not root.is_dir():
        raise CompileError(root.name or str(root), "the project folder does not exist")
    if not isinstance(settings, Mapping) or "flow_file" not in settings:
        raise CompileError("settings.flow_file", "is required for a 'Single Flow' binary: the "
                                                 "flow file's path inside the project")
    flow_path = _inside(root, settings["flow_file"], "settings.flow_file")
    flow_file = flow_path.relative_to(root.resolve()).as_posix()
    raw = definition.parse_flow_source(_read_text(flow_path, flow_file), flow_file)
    flow = definition.normalize_flow(raw, flow_file)
    sources = _udf_sources(root, flow, flow_file, passthrough)
    digest = binary.content_hash_of([flow], sources)
    manifest = {
        "format_version": binary.FORMAT_VERSION,
        "binary_type": binary_type,
        "flow_type": binary.FLOW_TYPES[binary_type],
        "flows": [flow],
        "udfs": sorted(sources),
        "content_hash": digest,
        "compiled_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "compiled_by": compiled_by,
    }
    return CompiledArtifact(
        data=binary.write_binary(manifest, sources),
        file_name=_file_name(flow["name"], flow_file),
        content_hash=digest,
    )
