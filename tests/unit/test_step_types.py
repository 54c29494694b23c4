"""The step type registry: the one table that the compiler, the runtime and the README agree on."""

import re
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest
import yaml

from shared.errors import CompileError
from shared.flow import runtime
from shared.flow.binary import load_binary
from shared.flow.compiler import compile_project
from shared.flow.step_types import registry
from shared.flow.step_types.registry import STEP_TYPES

README = Path(__file__).resolve().parents[2] / "README.md"
STEP_TABLE_HEADER = "| type | does |"
STEP_TABLE_RULE = "| --- | --- |"
UDF = "def same(record, context):\n    return record\n"

# Params that compile, one entry per type: a type added to the registry needs one here.
VALID_PARAMS = {
    "extract_text": {},
    "split": {"by": "line"},
    "classify": {"rules": [{"label": "invoice", "regex": "invoice"}]},
    "refine": {"fields": {"size": "len(text)"}},
    "filter": {"keep_if": "len(text) > 0"},
    "checkpoint": {"rules": [{"formula": "len(text) > 0"}]},
    "udf": {"function": "udfs/same.py:same"},
    "http": {"url": "http://localhost:9/never-called"},
}


def compile_one_step(root, step_type, params):
    (root / "udfs").mkdir(exist_ok=True)
    (root / "udfs/same.py").write_text(UDF)
    flow = {"name": "one", "steps": [{"id": "only", "type": step_type, "params": params}]}
    (root / "one.ibflow").write_text(yaml.safe_dump(flow, sort_keys=False))
    return compile_project(root, "Single Flow", {"flow_file": "one.ibflow"}, "tester")


def readme_step_types(markdown: str) -> list[str]:
    """The backticked type in the first cell of each row of the ``| type | does |`` table."""
    lines = [line.strip() for line in markdown.splitlines()]
    if STEP_TABLE_HEADER not in lines:
        raise AssertionError(
            f"README.md has no step type table: no line is exactly {STEP_TABLE_HEADER!r}"
        )
    start = lines.index(STEP_TABLE_HEADER)
    if lines[start + 1 : start + 2] != [STEP_TABLE_RULE]:
        raise AssertionError(f"the step type table's header must be followed by {STEP_TABLE_RULE}")
    names = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cell = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if cell is None:
            raise AssertionError(f"step type table row {line!r} does not start with `type`")
        names.append(cell.group(1))
    return names


def test_every_step_type_has_its_name_a_summary_a_check_and_a_run():
    assert list(VALID_PARAMS) == list(STEP_TYPES)
    for name, step_type in STEP_TYPES.items():
        assert step_type.name == name
        assert step_type.summary.strip() and "\n" not in step_type.summary
        assert callable(step_type.check_params) and callable(step_type.run)
        with pytest.raises(FrozenInstanceError):
            step_type.name = "renamed"


def test_the_compiler_offers_exactly_the_registry_types(tmp_path):
    with pytest.raises(CompileError) as raised:
        compile_one_step(tmp_path, "no_such_type", {})
    offered = str(raised.value).partition("valid types: ")[2].split(", ")
    assert offered == list(STEP_TYPES)


@pytest.mark.parametrize("name", list(STEP_TYPES))
def test_compiler_and_runtime_resolve_through_the_same_table(tmp_path, monkeypatch, name):
    """Swap one entry of the table: the compiler checks with it and the runtime runs it."""
    calls = []
    original = STEP_TYPES[name]

    def check_params(params):
        calls.append("check")
        return original.check_params(params)

    def run(env, record):
        calls.append("run")
        return [record]

    monkeypatch.setitem(STEP_TYPES, name, replace(original, check_params=check_params, run=run))
    binary = load_binary(compile_one_step(tmp_path, name, VALID_PARAMS[name]).data)
    assert calls and set(calls) == {"check"}
    record = {**runtime.new_record("a.txt", 0, "/nowhere/a.txt"), "text": "invoice"}
    outcome = runtime.run_step(binary, 0, [record], runtime.StepContext("job"))
    assert calls[-1] == "run" and outcome.records == [record]


def test_route_runs_in_composed_binaries_but_no_flow_file_may_name_it(tmp_path):
    assert registry.step_type("route", composed=True).name == "route"
    assert "route" not in STEP_TYPES
    with pytest.raises(KeyError):
        registry.step_type("route")
    with pytest.raises(CompileError, match="unknown step type 'route'"):
        compile_one_step(tmp_path, "route", {})


def test_the_readme_table_reader_reads_rows_and_says_when_the_table_is_missing():
    markdown = (
        "Intro\n\n| type | does |\n| --- | --- |\n"
        "| `split` | one record per line |\n| `http` | posts it |\n\nAfter the table | x |\n"
    )
    assert readme_step_types(markdown) == ["split", "http"]
    with pytest.raises(AssertionError, match="no step type table"):
        readme_step_types("| kind | does |\n| --- | --- |\n| `split` | x |\n")
    with pytest.raises(AssertionError, match="does not start with `type`"):
        readme_step_types("| type | does |\n| --- | --- |\n| split | x |\n")


def test_the_readme_step_table_lists_the_registry_types_in_order():
    assert README.is_file(), f"{README} is missing"
    assert readme_step_types(README.read_text(encoding="utf-8")) == list(STEP_TYPES)
