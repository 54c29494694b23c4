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
from shared.flow import binary, composition, definition, udfs

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


def _check_udf(
    path: str,
    source: str,
    names: list[tuple[str, str]],
    passthrough: tuple[type[BaseException], ...],
) -> None:
    """Import the UDF module and look up every function a step calls in it."""
    first_step = names[0][0]
    try:
        module = udfs.load_module(path, source)
    except SyntaxError as exc:
        raise CompileError(
            path,
            f"UDF module does not import: SyntaxError: {exc.msg} (line {exc.lineno})",
            first_step,
        ) from None
    except (Exception, SystemExit) as exc:
        if isinstance(exc, passthrough):
            raise
        raise CompileError(
            path, f"UDF module does not import: {type(exc).__name__}: {exc}", first_step
        ) from None
    for step_id, name in names:
        try:
            udfs.function_in(module, path, name)
        except ValueError as exc:
            raise CompileError(path, str(exc), step_id) from None


def _udf_sources(
    root: Path, flow: dict[str, Any], flow_file: str, passthrough: tuple[type[BaseException], ...]
) -> dict[str, str]:
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
            raise CompileError(
                flow_file, f"UDF module {path} does not exist in the project", step_id
            )
        sources[path] = _read_text(real, path, step_id)
        _check_udf(path, sources[path], names, passthrough)
    return sources


def _file_name(name: str, fallback: str) -> str:
    stem = name if _SAFE_FILE_NAME.fullmatch(name) else fallback
    return stem + binary.BINARY_SUFFIX


@dataclass(frozen=True)
class _Flows:
    """What a binary type's settings select: normalized flows (each with the file it came from)
    and, for Metaflow and Flows, the manifest's composition."""

    flows: list[dict[str, Any]]
    files: list[str]
    file_name: str
    composition: dict[str, Any] | None = None


def _setting(settings: Mapping[str, Any], name: str, binary_type: str, what: str) -> Any:
    if not isinstance(settings, Mapping) or name not in settings:
        raise CompileError(f"settings.{name}", f"is required for a '{binary_type}' binary: {what}")
    return settings[name]


def _load_flow(root: Path, path: Path) -> tuple[dict[str, Any], str]:
    flow_file = path.relative_to(root.resolve()).as_posix()
    raw = definition.parse_flow_source(_read_text(path, flow_file), flow_file)
    return definition.normalize_flow(raw, flow_file), flow_file


def _read_yaml(root: Path, relative: Any, setting: str) -> tuple[Any, str]:
    path = _inside(root, relative, setting)
    file = path.relative_to(root.resolve()).as_posix()
    return definition.parse_flow_source(_read_text(path, file), file), file


def _flows_dir(root: Path, settings: Mapping[str, Any], binary_type: str) -> Path:
    relative = _setting(
        settings, "flows_dir", binary_type, "the folder of the flow files, inside the project"
    )
    folder = _inside(root, relative, "settings.flows_dir")
    if not folder.is_dir():
        raise CompileError("settings.flows_dir", f"{relative!r} is not a folder in the project")
    return folder


def _single_flow(root: Path, settings: Mapping[str, Any]) -> _Flows:
    relative = _setting(
        settings, "flow_file", "Single Flow", "the flow file's path inside the project"
    )
    flow, flow_file = _load_flow(root, _inside(root, relative, "settings.flow_file"))
    return _Flows([flow], [flow_file], _file_name(flow["name"], PurePosixPath(flow_file).stem))


def _chained_flows(root: Path, settings: Mapping[str, Any]) -> _Flows:
    folder = _flows_dir(root, settings, "Flows")
    paths = sorted(
        (
            path
            for path in folder.iterdir()
            if path.suffix == composition.FLOW_SUFFIX and path.is_file()
        ),
        key=lambda path: path.name,
    )
    if not paths:
        raise CompileError(
            "settings.flows_dir", f"{folder.name} holds no *{composition.FLOW_SUFFIX} files"
        )
    loaded = [_load_flow(root, path) for path in paths]
    keys = _keys([path.relative_to(folder).as_posix() for path in paths], "settings.flows_dir")
    return _Flows(
        [flow for flow, _ in loaded],
        [file for _, file in loaded],
        _file_name(folder.name, "flows"),
        {"flow_keys": keys},
    )


def _metaflow(root: Path, settings: Mapping[str, Any]) -> _Flows:
    folder = _flows_dir(root, settings, "Metaflow")
    _setting(settings, "metaflow_file", "Metaflow", "the *.ibmetaflow file inside the project")
    _setting(settings, "classifier_file", "Metaflow", "the *.ibclassifier file inside the project")
    raw, classifier_file = _read_yaml(root, settings["classifier_file"], "settings.classifier_file")
    classifier = composition.parse_classifier(raw, classifier_file)
    raw, metaflow_file = _read_yaml(root, settings["metaflow_file"], "settings.metaflow_file")
    metaflow = composition.parse_metaflow(raw, metaflow_file)
    composition.check_routes(classifier, metaflow, metaflow_file)
    names = sorted({*metaflow["routes"].values(), *filter(None, [metaflow["default"]])})
    keys = _keys(names, metaflow_file)
    loaded = []
    for name in names:
        try:
            path = _inside(folder, name, metaflow_file)
        except CompileError as exc:
            raise CompileError(metaflow_file, f"flow {exc.reason}") from None
        if not path.is_file():
            raise CompileError(
                metaflow_file,
                f"flow {name} does not exist in flows_dir "
                f"{folder.relative_to(root.resolve()).as_posix()}",
            )
        loaded.append(_load_flow(root, path))
    stem = PurePosixPath(metaflow_file).stem
    return _Flows(
        [flow for flow, _ in loaded],
        [file for _, file in loaded],
        _file_name(stem, "metaflow"),
        composition.metaflow_composition(classifier, metaflow, keys),
    )


def _keys(flow_files: list[str], file: str) -> list[str]:
    keys = [composition.flow_key(name) for name in flow_files]
    for key in keys:
        if keys.count(key) > 1:
            same = [name for name in flow_files if composition.flow_key(name) == key]
            raise CompileError(
                file,
                f"flows {', '.join(same)} would share the step id prefix "
                f"'{key}'; rename one of them",
            )
    return keys


_SELECTORS = {"Single Flow": _single_flow, "Flows": _chained_flows, "Metaflow": _metaflow}


def compile_project(
    project_root: Path,
    binary_type: str,
    settings: Mapping[str, Any],
    compiled_by: str,
    passthrough: tuple[type[BaseException], ...] = (),
) -> CompiledArtifact:
    """Compile the project at ``project_root``; CompileError naming file, step id and reason.
    ``passthrough`` exceptions raised by a UDF module on import propagate (time limits)."""
    if binary_type not in BINARY_TYPES:
        raise CompileError(
            "binary_type",
            f"{binary_type!r} is not a binary type; use one of "
            f"{', '.join(map(repr, BINARY_TYPES))}",
        )
    root = Path(project_root)
    if not root.is_dir():
        raise CompileError(root.name or str(root), "the project folder does not exist")
    selected = _SELECTORS[binary_type](root, settings)
    sources: dict[str, str] = {}
    for flow, flow_file in zip(selected.flows, selected.files, strict=True):
        sources.update(_udf_sources(root, flow, flow_file, passthrough))
    digest = binary.content_hash_of(selected.flows, sources, selected.composition)
    manifest = {
        "format_version": binary.FORMAT_VERSION,
        "binary_type": binary_type,
        "flow_type": binary.FLOW_TYPES[binary_type],
        "flows": selected.flows,
        "udfs": sorted(sources),
        "content_hash": digest,
        "compiled_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "compiled_by": compiled_by,
    }
    if selected.composition is not None:
        manifest["composition"] = selected.composition
    return CompiledArtifact(
        data=binary.write_binary(manifest, sources),
        file_name=selected.file_name,
        content_hash=digest,
    )
