import io
import json
import sys
import zipfile

import pytest
import yaml

from shared.errors import CompileError
from shared.flow.compiler import compile_project

FLOW_FILE = "flows/f.ibflow"
UDF_OK = "def enrich(record, context):\n    return record\n"


def write_project(root, flow, udfs=None):
    path = root / FLOW_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(flow if isinstance(flow, str) else yaml.safe_dump(flow, sort_keys=False))
    for name, source in (udfs or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source)
    return root


def compile_(root, binary_type="Single Flow", settings=None, **kwargs):
    settings = {"flow_file": FLOW_FILE} if settings is None else settings
    return compile_project(root, binary_type, settings, "tester", **kwargs)


def flow(*steps, name="f"):
    return {"name": name, "steps": list(steps)}


def step(step_id, step_type, params=None, **extra):
    raw = {"id": step_id, "type": step_type, **extra}
    if params is not None:
        raw["params"] = params
    return raw


FULL_FLOW = flow(
    step("read", "extract_text"),
    step("rows", "split", {"by": "line"}),
    step("kind", "classify", {"rules": [{"label": "inv", "regex": "invoice"}], "default": "x"}),
    step("fields", "refine", {"fields": {"b": "upper(text)", "a": "len(b)"}}),
    step("keep", "filter", {"keep_if": "a > 0"}),
    step("check", "checkpoint", {"rules": [{"formula": "a > 1"}]}),
    step("enrich", "udf", {"function": "udfs/enrich.py:enrich"}, timeout=30),
    step("post", "http", {"url": "http://127.0.0.1:9/x"}),
)


def manifest_of(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read("manifest.json")), archive.namelist()


def test_compiles_every_step_type_into_a_zip_with_manifest_and_udf_sources(tmp_path):
    write_project(tmp_path, FULL_FLOW, {"udfs/enrich.py": UDF_OK})
    artifact = compile_(tmp_path)
    assert artifact.file_name == "f.ibflowbin"
    assert len(artifact.content_hash) == 64
    manifest, names = manifest_of(artifact.data)
    assert names == ["manifest.json", "udfs/udfs/enrich.py"]
    with zipfile.ZipFile(io.BytesIO(artifact.data)) as archive:
        assert archive.read("udfs/udfs/enrich.py").decode() == UDF_OK
    assert manifest["format_version"] == 1
    assert manifest["binary_type"] == "Single Flow"
    assert manifest["flow_type"] == "single_flow"
    assert manifest["content_hash"] == artifact.content_hash
    assert manifest["compiled_by"] == "tester"
    assert manifest["compiled_at"].endswith("Z")
    assert manifest["udfs"] == ["udfs/enrich.py"]
    steps = manifest["flows"][0]["steps"]
    assert manifest["flows"][0]["name"] == "f"
    assert [s["id"] for s in steps] == [s["id"] for s in FULL_FLOW["steps"]]
    assert all(set(s) == {"id", "type", "params", "timeout"} for s in steps)
    assert steps[0] == {"id": "read", "type": "extract_text", "params": {}, "timeout": None}
    assert steps[6]["timeout"] == 30
    # Defaults are filled in, and refine keeps its field order (evaluation order).
    assert steps[7]["params"] == {
        "url": "http://127.0.0.1:9/x",
        "timeout": 10,
        "retries": 2,
        "headers": {},
        "result_field": "http_response",
    }
    assert list(steps[3]["params"]["fields"]) == ["b", "a"]
    assert steps[5]["params"]["rules"][0]["message"] == "rule failed: a > 1"


def test_same_sources_give_the_same_hash_and_entries(tmp_path):
    write_project(tmp_path, FULL_FLOW, {"udfs/enrich.py": UDF_OK})
    first = compile_(tmp_path)
    second = compile_project(tmp_path, "Single Flow", {"flow_file": FLOW_FILE}, "someone else")
    assert first.content_hash == second.content_hash
    with (
        zipfile.ZipFile(io.BytesIO(first.data)) as one,
        zipfile.ZipFile(io.BytesIO(second.data)) as two,
    ):
        assert [i.date_time for i in one.infolist()] == [(1980, 1, 1, 0, 0, 0)] * 2
        assert one.read("udfs/udfs/enrich.py") == two.read("udfs/udfs/enrich.py")
    strip = lambda m: {k: v for k, v in m.items() if k not in ("compiled_at", "compiled_by")}  # noqa: E731
    assert strip(manifest_of(first.data)[0]) == strip(manifest_of(second.data)[0])


def test_changed_sources_change_the_hash(tmp_path):
    write_project(tmp_path, FULL_FLOW, {"udfs/enrich.py": UDF_OK})
    before = compile_(tmp_path).content_hash
    (tmp_path / "udfs/enrich.py").write_text(UDF_OK + "# changed\n")
    after_udf = compile_(tmp_path).content_hash
    reordered = json.loads(json.dumps(FULL_FLOW))
    reordered["steps"][3]["params"]["fields"] = {"a": "1", "b": "upper(text)"}
    write_project(tmp_path, reordered)
    after_order = compile_(tmp_path).content_hash
    assert len({before, after_udf, after_order}) == 3


def test_file_name_falls_back_to_the_flow_file_stem(tmp_path):
    write_project(tmp_path, flow(step("read", "extract_text"), name="My Invoices/2024"))
    assert compile_(tmp_path).file_name == "f.ibflowbin"


def test_udf_modules_are_not_left_in_sys_modules_and_may_use_dataclasses(tmp_path):
    source = (
        "from __future__ import annotations\nfrom dataclasses import dataclass\n\n"
        "@dataclass\nclass Total:\n    value: float\n\n" + UDF_OK
    )
    write_project(
        tmp_path,
        flow(step("u", "udf", {"function": "udfs/enrich.py:enrich"})),
        {"udfs/enrich.py": source},
    )
    before = set(sys.modules)
    compile_(tmp_path)
    assert not {name for name in set(sys.modules) - before if "enrich" in name}


BAD_FLOWS = [
    # (flow, udfs, file, step id, reason)
    (flow(step("a", "ocr")), None, FLOW_FILE, "a", "unknown step type 'ocr'"),
    (flow(step("a", "split")), None, FLOW_FILE, "a", "missing required param 'by'"),
    (flow(step("a", "split", {"by": "word"})), None, FLOW_FILE, "a", "by must be one of"),
    (flow(step("a", "split", {"by": "regex"})), None, FLOW_FILE, "a", "needs a pattern"),
    (
        flow(step("a", "split", {"by": "regex", "pattern": "("})),
        None,
        FLOW_FILE,
        "a",
        "not a valid regular expression",
    ),
    (
        flow(step("a", "split", {"by": "line", "patern": "x"})),
        None,
        FLOW_FILE,
        "a",
        "unknown param 'patern'",
    ),
    (flow(step("a", "split", ["by"])), None, FLOW_FILE, "a", "params must be a mapping"),
    (
        flow(step("a", "refine", {"fields": {"x": "upper("}})),
        None,
        FLOW_FILE,
        "a",
        "field 'x': formula does not parse",
    ),
    (
        flow(step("a", "refine", {"fields": {"x": "shout(text)"}})),
        None,
        FLOW_FILE,
        "a",
        "unknown function 'shout'",
    ),
    (flow(step("a", "refine", {"fields": ["x"]})), None, FLOW_FILE, "a", "non-empty mapping"),
    (
        flow(step("a", "refine", {"fields": {"x": 5}})),
        None,
        FLOW_FILE,
        "a",
        "formula must be a string",
    ),
    (flow(step("a", "refine", {"fields": {"text": "1"}})), None, FLOW_FILE, "a", "reserved"),
    (
        flow(step("a", "classify", {"rules": [{"label": "x", "regex": "a", "formula": "1"}]})),
        None,
        FLOW_FILE,
        "a",
        "exactly one of formula or regex",
    ),
    (
        flow(step("a", "classify", {"rules": [{"label": "x", "regex": "[a"}]})),
        None,
        FLOW_FILE,
        "a",
        "not a valid regular expression",
    ),
    (flow(step("a", "filter", {})), None, FLOW_FILE, "a", "missing required param 'keep_if'"),
    (flow(step("a", "checkpoint", {"rules": []})), None, FLOW_FILE, "a", "non-empty list"),
    (flow(step("a", "http", {"url": "ftp://x/y"})), None, FLOW_FILE, "a", "http:// or https://"),
    (
        flow(step("a", "http", {"url": "http://x", "retries": "3"})),
        None,
        FLOW_FILE,
        "a",
        "retries must be an integer",
    ),
    (flow(step("a", "extract_text", timeout=0)), None, FLOW_FILE, "a", "timeout must be"),
    (flow(step("a", "extract_text", timeout="10")), None, FLOW_FILE, "a", "timeout must be"),
    (flow(step("a", "extract_text", timeout=True)), None, FLOW_FILE, "a", "timeout must be"),
    (flow(step("a", "extract_text", kind="x")), None, FLOW_FILE, "a", "unknown key 'kind'"),
    (
        flow(step("a", "extract_text"), step("a", "extract_text")),
        None,
        FLOW_FILE,
        "a",
        "duplicate step id 'a'",
    ),
    (flow(step("has space", "extract_text")), None, FLOW_FILE, None, "id 'has space' must be"),
    (flow(step("x" * 65, "extract_text")), None, FLOW_FILE, None, "must be 1-64 characters"),
    (flow(step(None, "extract_text")), None, FLOW_FILE, None, "id None must be"),
    ({"name": "f"}, None, FLOW_FILE, None, "steps is missing or empty"),
    ({"name": "f", "steps": []}, None, FLOW_FILE, None, "steps is missing or empty"),
    ({"steps": [step("a", "extract_text")]}, None, FLOW_FILE, None, "name is missing"),
    ("name: [unclosed\n", None, FLOW_FILE, None, "YAML does not parse"),
    ("name: a\nname: b\nsteps: []\n", None, FLOW_FILE, None, "duplicate key 'name'"),
    ("- just a list\n", None, FLOW_FILE, None, "must be a mapping"),
    (
        flow(step("u", "udf", {"function": "udfs/missing.py:enrich"})),
        None,
        FLOW_FILE,
        "u",
        "udfs/missing.py does not exist",
    ),
    (
        flow(step("u", "udf", {"function": "/etc/passwd.py:enrich"})),
        None,
        FLOW_FILE,
        "u",
        "must be relative",
    ),
    (
        flow(step("u", "udf", {"function": "../outside.py:enrich"})),
        None,
        FLOW_FILE,
        "u",
        "must be relative",
    ),
    (
        flow(step("u", "udf", {"function": "udfs/enrich.py"})),
        None,
        FLOW_FILE,
        "u",
        "must look like",
    ),
    (
        flow(step("u", "udf", {"function": "udfs/enrich.py:enrich"})),
        {"udfs/enrich.py": "def enrich(:\n"},
        "udfs/enrich.py",
        "u",
        "SyntaxError",
    ),
    (
        flow(step("u", "udf", {"function": "udfs/enrich.py:enrich"})),
        {"udfs/enrich.py": "raise RuntimeError('no config')\n"},
        "udfs/enrich.py",
        "u",
        "does not import: RuntimeError: no config",
    ),
    (
        flow(step("u", "udf", {"function": "udfs/enrich.py:enrich"})),
        {"udfs/enrich.py": "import sys\nsys.exit(3)\n"},
        "udfs/enrich.py",
        "u",
        "does not import: SystemExit",
    ),
    (
        flow(step("u", "udf", {"function": "udfs/enrich.py:enrich"})),
        {"udfs/enrich.py": "import no_such_module_xyz\n"},
        "udfs/enrich.py",
        "u",
        "ModuleNotFoundError",
    ),
    (
        flow(step("u", "udf", {"function": "udfs/enrich.py:other"})),
        {"udfs/enrich.py": UDF_OK},
        "udfs/enrich.py",
        "u",
        "has no function 'other'",
    ),
    (
        flow(step("u", "udf", {"function": "udfs/enrich.py:VALUE"})),
        {"udfs/enrich.py": "VALUE = 3\n"},
        "udfs/enrich.py",
        "u",
        "is not callable",
    ),
]


@pytest.mark.parametrize(("raw", "udfs", "file", "step_id", "reason"), BAD_FLOWS)
def test_rejections_name_file_step_and_reason(tmp_path, raw, udfs, file, step_id, reason):
    write_project(tmp_path, raw, udfs)
    with pytest.raises(CompileError) as info:
        compile_(tmp_path)
    error = info.value
    assert error.file == file
    assert error.step_id == step_id
    assert reason in error.reason
    assert error.msg.startswith(file)
    if step_id:
        assert f"step '{step_id}'" in error.msg
    assert error.http_status == 422


@pytest.mark.parametrize(
    ("binary_type", "settings", "file", "reason"),
    [
        ("Metaflow", None, "settings.flows_dir", "is required for a 'Metaflow'"),
        ("Flows", None, "settings.flows_dir", "is required for a 'Flows'"),
        ("Nope", None, "binary_type", "'Single Flow', 'Metaflow', 'Flows'"),
        ("Single Flow", {}, "settings.flow_file", "is required"),
        ("Single Flow", {"flow_file": "../f.ibflow"}, "settings.flow_file", "inside the project"),
        ("Single Flow", {"flow_file": "/etc/f.ibflow"}, "settings.flow_file", "inside the proj"),
        ("Single Flow", {"flow_file": 3}, "settings.flow_file", "non-empty path"),
        ("Single Flow", {"flow_file": "flows/none.ibflow"}, "flows/none.ibflow", "does not exist"),
    ],
)
def test_binary_type_and_settings_are_checked(tmp_path, binary_type, settings, file, reason):
    write_project(tmp_path, flow(step("read", "extract_text")))
    with pytest.raises(CompileError) as info:
        compile_(tmp_path, binary_type, settings)
    assert info.value.file == file
    assert reason in info.value.reason


def test_udf_symlink_leaving_the_project_is_rejected(tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text(UDF_OK)
    project = write_project(
        tmp_path / "project", flow(step("u", "udf", {"function": "udfs/enrich.py:enrich"}))
    )
    (project / "udfs").mkdir()
    (project / "udfs/enrich.py").symlink_to(outside)
    with pytest.raises(CompileError, match="leads outside the project"):
        compile_(project)


def test_passthrough_exceptions_from_udf_import_propagate(tmp_path):
    class Deadline(Exception):
        pass

    source = "import builtins\nraise builtins.DEADLINE('time is up')\n"
    write_project(
        tmp_path,
        flow(step("u", "udf", {"function": "udfs/enrich.py:enrich"})),
        {"udfs/enrich.py": source},
    )
    import builtins

    builtins.DEADLINE = Deadline
    try:
        with pytest.raises(Deadline):
            compile_(tmp_path, passthrough=(Deadline,))
        with pytest.raises(CompileError, match="Deadline: time is up"):
            compile_(tmp_path)
    finally:
        del builtins.DEADLINE
