import io
import json
import pickle
import zipfile

import pytest
import yaml

from shared.errors import InvalidRequest
from shared.flow.binary import CompiledBinary, load_binary
from shared.flow.compiler import compile_project
from shared.flow.definition import StepDefinition

UDF = "def enrich(record, context):\n    return record\n"
FLOW = {
    "name": "demo",
    "steps": [
        {"id": "read", "type": "extract_text"},
        {"id": "fields", "type": "refine", "params": {"fields": {"n": "len(text)"}}},
        {
            "id": "enrich",
            "type": "udf",
            "params": {"function": "udfs/enrich.py:enrich"},
            "timeout": 30,
        },
    ],
}


@pytest.fixture
def artifact(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows/demo.ibflow").write_text(yaml.safe_dump(FLOW, sort_keys=False))
    (tmp_path / "udfs").mkdir()
    (tmp_path / "udfs/enrich.py").write_text(UDF)
    return compile_project(tmp_path, "Single Flow", {"flow_file": "flows/demo.ibflow"}, "bob")


def rewrite(data, changes):
    """The zip ``data`` with entries replaced (bytes) or removed (None)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename not in changes:
                target.writestr(info, source.read(info))
        for name, content in changes.items():
            if content is not None:
                target.writestr(name, content)
    return out.getvalue()


def edited_manifest(data, **changes):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest.update(changes)
    return rewrite(data, {"manifest.json": json.dumps(manifest).encode()})


def test_load_binary_gives_steps_udfs_and_manifest(artifact):
    binary = load_binary(artifact.data)
    assert isinstance(binary, CompiledBinary)
    assert binary.binary_type == "Single Flow"
    assert binary.flow_type == "single_flow"
    assert binary.content_hash == artifact.content_hash
    assert binary.name == "demo"
    assert binary.steps == (
        StepDefinition("read", "extract_text", {}, None),
        StepDefinition("fields", "refine", {"fields": {"n": "len(text)"}}, None),
        StepDefinition("enrich", "udf", {"function": "udfs/enrich.py:enrich"}, 30),
    )
    assert dict(binary.udf_sources) == {"udfs/enrich.py": UDF}
    assert binary.manifest["compiled_by"] == "bob"
    # Crosses process boundaries.
    assert pickle.loads(pickle.dumps(binary)) == binary


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda data: b"not a zip", "not a zip file"),
        (lambda data: data[: len(data) // 2], "not a zip file"),
        (lambda data: rewrite(data, {"manifest.json": None}), "manifest.json is missing"),
        (lambda data: rewrite(data, {"manifest.json": b"{nope"}), "not JSON"),
        (lambda data: rewrite(data, {"manifest.json": b"[1]"}), "not a JSON object"),
        (lambda data: edited_manifest(data, format_version=2), "format_version 2"),
        (
            lambda data: edited_manifest(data, binary_type="Metaflow", flow_type="metaflow"),
            "needs a composition",
        ),
        (
            lambda data: edited_manifest(data, composition={"flow_keys": ["demo"]}),
            "Single Flow binary has no composition",
        ),
        (lambda data: edited_manifest(data, flow_type="flows"), "does not match"),
        (lambda data: edited_manifest(data, flows=[]), "non-empty list"),
        (lambda data: edited_manifest(data, flows=[FLOW, FLOW]), "exactly one flow"),
        (lambda data: edited_manifest(data, udfs="x"), "udfs must be a list"),
        (
            lambda data: edited_manifest(
                data, flows=[{"name": "x", "steps": [{"id": "a", "type": "ocr"}]}]
            ),
            "unknown step type 'ocr'",
        ),
        (lambda data: edited_manifest(data, udfs=[]), "does not hold"),
        (lambda data: rewrite(data, {"udfs/udfs/enrich.py": None}), "is missing"),
        (
            lambda data: rewrite(data, {"udfs/udfs/enrich.py": UDF.encode() + b"#x"}),
            "content_hash does not match",
        ),
        (lambda data: edited_manifest(data, content_hash="0" * 64), "content_hash does not"),
    ],
)
def test_load_binary_rejects_what_is_not_a_valid_binary(artifact, mangle, reason):
    with pytest.raises(InvalidRequest) as info:
        load_binary(mangle(artifact.data))
    assert reason in info.value.msg
    assert "compile the flow project again" in info.value.msg


def test_load_binary_refuses_oversized_entries(artifact, monkeypatch):
    from shared.flow import binary

    monkeypatch.setattr(binary, "MAX_ENTRY_BYTES", 10)
    with pytest.raises(InvalidRequest, match="larger than 10 bytes"):
        load_binary(artifact.data)
