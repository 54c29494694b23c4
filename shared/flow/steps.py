"""What each step type does to one record. A handler returns the record's output records (none
when it is dropped) or raises; ``runtime`` turns a raise into that record's error."""

from __future__ import annotations

import copy
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.flow import extract, formulas, http_step, udfs
from shared.flow.binary import CompiledBinary
from shared.flow.definition import StepDefinition
from shared.flow.records import RecordError, adopt_record, child_record, to_json_value

Record = dict[str, Any]


@dataclass(frozen=True)
class StepEnv:
    """What a handler needs besides the record. ``input_data`` is the record's input file
    content when the run holds it in memory (a sync run)."""

    binary: CompiledBinary
    step: StepDefinition
    udf_context: udfs.UdfContext
    input_data: bytes | None = None


def _evaluate(formula: str, names: dict[str, Any], what: str) -> Any:
    try:
        return formulas.evaluate(formula, names)
    except formulas.FormulaError as exc:
        raise RecordError(f"{what}: {exc}") from None


def extract_text(env: StepEnv, record: Record) -> list[Record]:
    source = record.get("source_path")
    if env.input_data is None and not source:
        raise RecordError(
            "the record has no source file; extract_text reads input files, "
            "so make it the first step"
        )
    try:
        if env.input_data is not None:
            extracted = extract.extract_bytes(record.get("file_name") or "", env.input_data)
        else:
            extracted = extract.extract_file(Path(source))
    except extract.ExtractError as exc:
        raise RecordError(str(exc)) from None
    warnings = list(record.get("warnings") or []) + extracted.warnings
    return [child_record(record, text=extracted.text, pages=extracted.pages, warnings=warnings)]


def _csv_rows(text: str) -> list[tuple[str, dict[str, Any], list[str]]]:
    rows = []
    reader = csv.DictReader(io.StringIO(text), restkey="\0extra")
    for row in reader:
        extra = row.pop("\0extra", None)
        columns = {(key or "").strip(): value for key, value in row.items()}
        line = io.StringIO()
        csv.writer(line).writerow([value or "" for value in row.values()])
        warnings = (
            [f"row {reader.line_num} has {len(extra)} values beyond the header"] if extra else []
        )
        rows.append((line.getvalue().rstrip("\r\n"), columns, warnings))
    return rows


def _regex_pieces(text: str, pattern: str) -> list[str]:
    """Each match starts a new piece; text before the first match is a piece of its own."""
    starts = sorted({0, *(match.start() for match in re.finditer(pattern, text))})
    pieces = (text[start:end] for start, end in zip(starts, [*starts[1:], len(text)], strict=True))
    return [piece.strip() for piece in pieces if piece.strip()]


def split(env: StepEnv, record: Record) -> list[Record]:
    by, text = env.step.params["by"], record.get("text") or ""
    children: list[Record] = []
    if by == "page":
        pages = record.get("pages") or [text]
        children = [child_record(record, text=page, pages=[page]) for page in pages]
    elif by == "line":
        lines = [line for line in text.splitlines() if line.strip()]
        children = [child_record(record, text=line, pages=[line]) for line in lines]
    elif by == "regex":
        pieces = _regex_pieces(text, env.step.params["pattern"])
        children = [child_record(record, text=piece, pages=[piece]) for piece in pieces]
    else:
        for line, columns, warnings in _csv_rows(text):
            child = child_record(record, text=line, pages=[line])
            child["fields"].update(columns)
            child["warnings"].extend(warnings)
            children.append(child)
    if not children:
        warning = f"split by {by} in step {env.step.id} found nothing to split; record kept whole"
        return [child_record(record, warnings=[*(record.get("warnings") or []), warning])]
    return children


def classify(env: StepEnv, record: Record) -> list[Record]:
    names = formulas.record_names(record)
    label = env.step.params.get("default")
    for rule in env.step.params["rules"]:
        if "formula" in rule:
            matched = _evaluate(rule["formula"], names, f"rule for label '{rule['label']}'")
        else:
            matched = re.search(rule["regex"], record.get("text") or "", re.IGNORECASE)
        if matched:
            label = rule["label"]
            break
    return [child_record(record, class_label=label)]


def route(env: StepEnv, record: Record) -> list[Record]:
    """A Metaflow's classifier: set ``class_label`` as classify does, then ``flow``, the key of
    the flow whose steps the record runs (the label's route, else the default flow)."""
    [classified] = classify(env, record)
    label = classified.get("class_label")
    flow = env.step.params["routes"].get(label) if isinstance(label, str) else None
    flow = flow or env.step.params.get("default_flow")
    if flow is None:
        raise RecordError(
            f"no flow for class label {label!r}: route that label to a flow in "
            "the metaflow file, or give it a default flow"
        )
    classified["flow"] = flow
    return [classified]


def refine(env: StepEnv, record: Record) -> list[Record]:
    names = formulas.record_names(record)
    fields = dict(record.get("fields") or {})
    for name, formula in env.step.params["fields"].items():
        value = to_json_value(_evaluate(formula, names, f"field '{name}'"))
        fields[name] = value
        names[name] = value
    return [child_record(record, fields=fields)]


def filter_(env: StepEnv, record: Record) -> list[Record]:
    keep = _evaluate(env.step.params["keep_if"], formulas.record_names(record), "keep_if")
    return [child_record(record)] if keep else []


def checkpoint(env: StepEnv, record: Record) -> list[Record]:
    """A rule that cannot be evaluated (a field is missing) fails too: the record needs review."""
    names = formulas.record_names(record)
    failed = []
    for rule in env.step.params["rules"]:
        try:
            passed = formulas.evaluate(rule["formula"], names)
        except formulas.FormulaError as exc:
            failed.append(f"{rule['message']} (could not check: {exc})")
            continue
        if not passed:
            failed.append(rule["message"])
    return [child_record(record, checkpoint_failed=failed)]


def udf(env: StepEnv, record: Record) -> list[Record]:
    path, name = udfs.parse_function_ref(env.step.params["function"])
    source = env.binary.udf_sources[path]
    try:
        module = udfs.cached_module(env.binary.content_hash, path, source)
    except SyntaxError as exc:
        raise RecordError(f"UDF module {path} does not import: {exc}") from None
    function = udfs.function_in(module, path, name)
    result = function(copy.deepcopy(record), env.udf_context)
    if result is None:
        return []
    results = result if isinstance(result, list) else [result]
    if not all(isinstance(item, dict) for item in results):
        raise RecordError(
            f"{name}() returned {type(result).__name__}; expected a record dict, "
            "a list of records or None"
        )
    return [adopt_record(item, record) for item in results]


def http(env: StepEnv, record: Record) -> list[Record]:
    return [http_step.post_record(env.step.params, record)]


HANDLERS: dict[str, Callable[[StepEnv, Record], list[Record]]] = {
    "extract_text": extract_text,
    "split": split,
    "classify": classify,
    "refine": refine,
    "filter": filter_,
    "checkpoint": checkpoint,
    "udf": udf,
    "http": http,
    # Not a flow file step type: the compiler puts it into Metaflow binaries only.
    "route": route,
}
