import pytest
import yaml

from shared.flow import formula_functions, runtime
from shared.flow.binary import load_binary
from shared.flow.compiler import compile_project

UDF = """
def check(record, context):
    if record["text"] == "boom":
        raise ValueError("cannot enrich " + record["file_name"])
    if record["text"] == "deadline":
        raise context.runtime_config["deadline"]("soft time limit")
    if record["text"] == "exit":
        raise SystemExit(1)
    record["fields"]["ok"] = True
    return record
"""


class Deadline(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded, which subclasses Exception."""


def build(tmp_path, *steps):
    (tmp_path / "udfs").mkdir()
    (tmp_path / "udfs/check.py").write_text(UDF)
    flow = {"name": "r", "steps": list(steps)}
    (tmp_path / "r.ibflow").write_text(yaml.safe_dump(flow, sort_keys=False))
    artifact = compile_project(tmp_path, "Single Flow", {"flow_file": "r.ibflow"}, "t")
    return load_binary(artifact.data)


@pytest.fixture
def binary(tmp_path):
    return build(
        tmp_path,
        {"id": "fields", "type": "refine", "params": {"fields": {"size": "len(text)"}}},
        {"id": "enrich", "type": "udf", "params": {"function": "udfs/check.py:check"}},
    )


def records(*texts):
    return [
        {**runtime.new_record(f"f{i}.txt", i, f"/in/f{i}.txt"), "text": text}
        for i, text in enumerate(texts)
    ]


def context(**changes):
    return runtime.StepContext(job_id="job-1", runtime_config={"deadline": Deadline}, **changes)


def test_a_failing_record_fails_alone(binary):
    logs = []
    outcome = runtime.run_step(
        binary,
        1,
        records("fine", "boom", "also fine", "exit"),
        context(log=lambda level, message: logs.append((level, message))),
    )
    fine, boom, also_fine, exited = outcome.records
    assert fine["fields"] == {"ok": True} and also_fine["fields"] == {"ok": True}
    assert boom["error"] == (
        "Error <ValueError: cannot enrich f1.txt (at udfs/check.py line 4)> in step enrich"
    )
    assert exited["error"].startswith("Error <SystemExit: 1")
    assert outcome.failed == 2 and outcome.filtered == 0
    assert [level for level, _ in logs] == ["ERROR", "ERROR"]
    assert "file f1.txt, record 0" in logs[0][1]


def test_passthrough_exceptions_are_re_raised_not_recorded(binary):
    with pytest.raises(Deadline):
        runtime.run_step(binary, 1, records("fine", "deadline"), context(), passthrough=(Deadline,))
    [out] = runtime.run_step(binary, 1, records("deadline"), context()).records
    assert out["error"] == (
        "Error <Deadline: soft time limit (at udfs/check.py line 6)> in step enrich"
    )


def test_passthrough_from_inside_a_formula_is_re_raised(binary, monkeypatch):
    def deadline(value):
        raise Deadline("soft time limit")

    monkeypatch.setitem(formula_functions.FUNCTIONS, "len", deadline)
    with pytest.raises(Deadline):
        runtime.run_step(binary, 0, records("x"), context(), passthrough=(Deadline,))


def test_stopped_records_pass_through_untouched(binary):
    failed, held, fresh = records("a", "b", "c")
    failed["error"] = "Error <earlier> in step x"
    held["checkpoint_failed"] = ["total must be positive"]
    outcome = runtime.run_step(binary, 0, [failed, held, fresh], context())
    assert outcome.records[0] is failed and outcome.records[1] is held
    assert failed["fields"] == {} and held["fields"] == {}
    assert outcome.records[2]["fields"] == {"size": 1}


def test_step_index_must_exist(binary):
    with pytest.raises(ValueError, match="outside 0..1"):
        runtime.run_step(binary, 2, records("a"), context())


def test_run_steps_totals_and_final_results(binary):
    outcome = runtime.run_steps(binary, records("ok", "boom"), context())
    assert outcome.failed == 1
    results = runtime.final_results(outcome.records)
    assert results[0] == {
        "file_name": "f0.txt",
        "file_index": 0,
        "record_index": 0,
        "results": [{"key": "size", "value": 2}, {"key": "ok", "value": True}],
        "class_label": None,
        "error": None,
        "checkpoint_failed": [],
    }
    assert results[1]["error"].startswith("Error <ValueError: cannot enrich f1.txt")
    assert results[1]["results"] == [{"key": "size", "value": 4}]


def test_record_error_counts_groups_messages():
    errors = [
        {"error": "Error <a> in step s"},
        {"error": None},
        {"error": "Error <a> in step s"},
        {"error": "Error <b> in step s"},
        {},
    ]
    assert runtime.record_error_counts(errors) == {
        "Error <a> in step s": 2,
        "Error <b> in step s": 1,
    }


def test_new_record_has_every_key():
    record = runtime.new_record("a.txt", 3, "/in/a.txt")
    assert record == {
        "file_name": "a.txt",
        "file_index": 3,
        "record_index": 0,
        "source_path": "/in/a.txt",
        "text": "",
        "pages": [],
        "class_label": None,
        "fields": {},
        "warnings": [],
        "error": None,
        "checkpoint_failed": [],
    }
