"""Sync runs' in-memory execution and the runner processes that enforce their time limit."""

import threading

import pytest
import yaml

from shared.errors import Unavailable
from shared.flow.compiler import compile_project
from shared.runs.sync_runners import RunnerLost, RunnerPool, SyncTimeout, SyncWork, run_in_memory
from tests.support import wait_for
from tests.unit.test_flow_steps import make_pdf

UDF = """
import os

def act(record, context):
    text = record["text"]
    if "loop" in text:
        while True:
            pass
    if "exit" in text:
        os._exit(3)
    if "boom" in text:
        raise ValueError("boom")
    record["fields"]["pid"] = os.getpid()
    return record
"""


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    root = tmp_path_factory.mktemp("sync")
    flow = {
        "name": "s",
        "steps": [
            {"id": "read", "type": "extract_text"},
            {"id": "fields", "type": "refine", "params": {"fields": {"first": "strip(text)"}}},
            {"id": "act", "type": "udf", "params": {"function": "udfs/act.py:act"}},
        ],
    }
    (root / "s.ibflow").write_text(yaml.safe_dump(flow, sort_keys=False))
    (root / "udfs").mkdir()
    (root / "udfs/act.py").write_text(UDF)
    return compile_project(root, "Single Flow", {"flow_file": "s.ibflow"}, "t")


def work(artifact, *files, runtime_config=None):
    return SyncWork(
        "job-1", artifact.content_hash, artifact.data, tuple(files), runtime_config or {}
    )


@pytest.fixture(scope="module")
def pool():
    pool = RunnerPool(2)
    yield pool
    pool.close()


def test_files_are_read_from_memory(artifact):
    outcome = run_in_memory(
        work(
            artifact,
            ("a.txt", b" hello "),
            ("b.pdf", make_pdf(["PDF"])),
            ("c.txt", b"boom"),
            ("d.docx", b"PK"),
        )
    )
    by_file = {result["file_name"]: result for result in outcome.results}
    assert by_file["a.txt"]["results"][0] == {"key": "first", "value": "hello"}
    assert by_file["b.pdf"]["results"][0] == {"key": "first", "value": "PDF"}
    assert "boom" in by_file["c.txt"]["error"]
    assert "unsupported file type '.docx'" in by_file["d.docx"]["error"]
    assert [(f.file_name, f.num_records, f.num_errors) for f in outcome.files] == [
        ("a.txt", 1, 0),
        ("b.pdf", 1, 0),
        ("c.txt", 1, 1),
        ("d.docx", 1, 1),
    ]
    assert sum(1 for level, _ in outcome.log if level == "ERROR") == 2


def test_the_output_schema_applies(artifact):
    schema = '{"rename_fields": {"first": "greeting"}, "remove_fields": ["pid"]}'
    outcome = run_in_memory(
        work(artifact, ("a.txt", b"hi"), runtime_config={"modify_output_schema": schema})
    )
    assert outcome.results[0]["results"] == [{"key": "greeting", "value": "hi"}]


def test_runs_happen_in_runner_processes(artifact, pool):
    import os

    outcome = pool.run(work(artifact, ("a.txt", b"hi")), limit=30)
    pid = outcome.results[0]["results"][1]["value"]
    assert pid != os.getpid()


def test_a_run_past_the_limit_is_stopped_and_its_runner_replaced(artifact, pool):
    with pytest.raises(SyncTimeout) as info:
        pool.run(work(artifact, ("a.txt", b"loop")), limit=0.5)
    assert info.value.http_status == 504 and "limit of 0.5 s" in info.value.msg
    for _ in range(3):  # whichever runner each run gets, it answers
        assert pool.run(work(artifact, ("a.txt", b"hi")), limit=30).results[0]["error"] is None


def test_a_runner_that_dies_is_a_clear_error_and_is_replaced(artifact, pool):
    with pytest.raises(RunnerLost) as info:
        pool.run(work(artifact, ("a.txt", b"exit")), limit=30)
    assert info.value.http_status == 422 and "exit code 3" in info.value.msg
    assert pool.run(work(artifact, ("a.txt", b"hi")), limit=30).results[0]["error"] is None


def test_a_busy_pool_answers_unavailable(artifact):
    single = RunnerPool(1)
    errors = []

    def loop():
        try:
            single.run(work(artifact, ("a.txt", b"loop")), limit=2)
        except SyncTimeout as exc:
            errors.append(exc)

    try:
        single.warm()
        looping = threading.Thread(target=loop)
        looping.start()
        wait_for(lambda: single.idle_runners() == 0, message="the looping run to take the runner")
        with pytest.raises(Unavailable, match="sync runners stayed busy"):
            single.run(work(artifact, ("a.txt", b"hi")), limit=0.5)
        looping.join()
        assert len(errors) == 1
    finally:
        single.close()
