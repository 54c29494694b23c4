"""Metaflow and Flows binaries: compiling, loading, and running their flat steps."""

import io
import json
import zipfile

import pytest
import yaml

from shared.errors import CompileError, InvalidRequest
from shared.flow import runtime
from shared.flow.binary import load_binary
from shared.flow.compiler import compile_project

CLASSIFIER = {
    "rules": [
        {"label": "invoice", "regex": "invoice\\s*#"},
        {"label": "receipt", "formula": "contains(lower(text), 'receipt')"},
    ],
    "default": "other",
}
METAFLOW = {
    "routes": {"invoice": "invoices.ibflow", "receipt": "receipts.ibflow"},
    "default": "generic.ibflow",
}
FLOWS = {
    "invoices.ibflow": {
        "name": "invoices",
        "steps": [
            {"id": "read", "type": "extract_text"},
            {
                "id": "fields",
                "type": "refine",
                "params": {"fields": {"number": "regex(text, 'Invoice # (\\S+)')"}},
            },
        ],
    },
    "receipts.ibflow": {
        "name": "receipts",
        "steps": [
            {"id": "fields", "type": "refine", "params": {"fields": {"kind": "echo('receipt')"}}},
            {"id": "tag", "type": "udf", "params": {"function": "udfs/tag.py:tag"}},
        ],
    },
    "generic.ibflow": {
        "name": "generic",
        "steps": [
            {"id": "fields", "type": "refine", "params": {"fields": {"size": "len(text)"}}},
        ],
    },
}
UDF = "def tag(record, context):\n    record['fields']['tagged'] = True\n    return record\n"


def write(path, document):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    )


def metaflow_project(root, classifier=CLASSIFIER, metaflow=METAFLOW, flows=FLOWS):
    write(root / "config/docs.ibclassifier", classifier)
    write(root / "config/route.ibmetaflow", metaflow)
    for name, flow in flows.items():
        write(root / "flows" / name, flow)
    write(root / "udfs/tag.py", UDF)
    return {
        "flows_dir": "flows",
        "metaflow_file": "config/route.ibmetaflow",
        "classifier_file": "config/docs.ibclassifier",
    }


def run_files(binary, tmp_path, files):
    records = []
    for index, (name, text) in enumerate(files.items()):
        (tmp_path / name).write_text(text)
        records.append(runtime.new_record(name, index, tmp_path / name))
    return runtime.run_steps(binary, records, runtime.StepContext("job")).records


def fields(record):
    return record["fields"]


def test_metaflow_compiles_to_read_classify_and_routed_flow_steps(tmp_path):
    settings = metaflow_project(tmp_path / "p")
    artifact = compile_project(tmp_path / "p", "Metaflow", settings, "alice")
    assert artifact.file_name == "route.ibflowbin"
    binary = load_binary(artifact.data)
    assert binary.binary_type == "Metaflow" and binary.flow_type == "metaflow"
    assert [(step.id, step.type, step.flow) for step in binary.steps] == [
        ("read", "extract_text", None),
        ("classify", "route", None),
        ("generic.fields", "refine", "generic"),
        ("invoices.fields", "refine", "invoices"),  # its own extract_text is read's work
        ("receipts.fields", "refine", "receipts"),
        ("receipts.tag", "udf", "receipts"),
    ]
    with zipfile.ZipFile(io.BytesIO(artifact.data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["composition"]["routes"] == {"invoice": "invoices", "receipt": "receipts"}
    assert manifest["composition"]["default_flow"] == "generic"
    assert manifest["composition"]["flow_keys"] == ["generic", "invoices", "receipts"]
    again = compile_project(tmp_path / "p", "Metaflow", settings, "bob")
    assert again.content_hash == artifact.content_hash


def test_each_record_runs_the_flow_of_its_label(tmp_path):
    binary = load_binary(
        compile_project(tmp_path / "p", "Metaflow", metaflow_project(tmp_path / "p"), "alice").data
    )
    invoice, receipt, other = run_files(
        binary, tmp_path, {"a.txt": "Invoice # A-1", "b.txt": "Your RECEIPT", "c.txt": "hello"}
    )
    assert (invoice["class_label"], invoice["flow"], fields(invoice)) == (
        "invoice",
        "invoices",
        {"number": "A-1"},
    )
    assert (receipt["class_label"], fields(receipt)) == (
        "receipt",
        {"kind": "receipt", "tagged": True},
    )
    assert (other["class_label"], other["flow"], fields(other)) == ("other", "generic", {"size": 5})
    assert all(record["error"] is None for record in (invoice, receipt, other))


def test_a_label_without_a_flow_is_a_record_error(tmp_path):
    classifier = {"rules": CLASSIFIER["rules"]}  # no default label: unmatched records get None
    metaflow = {"routes": METAFLOW["routes"]}
    settings = metaflow_project(tmp_path / "p", classifier, metaflow)
    binary = load_binary(compile_project(tmp_path / "p", "Metaflow", settings, "a").data)
    invoice, other = run_files(binary, tmp_path, {"a.txt": "Invoice # A-1", "c.txt": "hello"})
    assert fields(invoice) == {"number": "A-1"}
    assert other["error"].startswith("Error <no flow for class label None")
    assert other["error"].endswith("in step classify")


def test_flows_chain_in_file_name_order(tmp_path):
    root = tmp_path / "p"
    write(
        root / "chain/02_fields.ibflow",
        {
            "name": "fields",
            "steps": [
                {"id": "read", "type": "extract_text"},  # left out: 01 already read the file
                {"id": "refine", "type": "refine", "params": {"fields": {"line": "strip(text)"}}},
            ],
        },
    )
    write(
        root / "chain/01_split.ibflow",
        {
            "name": "split",
            "steps": [
                {"id": "read", "type": "extract_text"},
                {"id": "lines", "type": "split", "params": {"by": "line"}},
            ],
        },
    )
    write(root / "chain/notes.txt", "not a flow")
    artifact = compile_project(root, "Flows", {"flows_dir": "chain"}, "alice")
    assert artifact.file_name == "chain.ibflowbin"
    binary = load_binary(artifact.data)
    assert binary.flow_type == "flows"
    assert [step.id for step in binary.steps] == [
        "01_split.read",
        "01_split.lines",
        "02_fields.refine",
    ]
    records = run_files(binary, tmp_path, {"a.txt": "one\ntwo \n"})
    assert [(r["record_index"], fields(r)) for r in records] == [
        (0, {"line": "one"}),
        (1, {"line": "two"}),
    ]


@pytest.mark.parametrize(
    ("change", "file", "fragment"),
    [
        (lambda s, r: s.pop("classifier_file"), "settings.classifier_file", "is required"),
        (lambda s, r: s.update(flows_dir="nope"), "settings.flows_dir", "is not a folder"),
        (
            lambda s, r: write(r / "config/route.ibmetaflow", {"routes": {"invoce": "x.ibflow"}}),
            "config/route.ibmetaflow",
            "the classifier gives no such label",
        ),
        (
            lambda s, r: write(r / "config/route.ibmetaflow", {"routes": {"invoice": "x.ibflow"}}),
            "config/route.ibmetaflow",
            "has no flow",
        ),
        (
            lambda s, r: write(r / "config/route.ibmetaflow", {"default": "missing.ibflow"}),
            "config/route.ibmetaflow",
            "flow missing.ibflow does not exist",
        ),
        (
            lambda s, r: write(r / "config/route.ibmetaflow", {"default": "../x.ibflow"}),
            "config/route.ibmetaflow",
            "inside the project",
        ),
        (
            lambda s, r: write(r / "config/route.ibmetaflow", {"routes": ["a"]}),
            "config/route.ibmetaflow",
            "routes must map",
        ),
        (
            lambda s, r: write(r / "config/route.ibmetaflow", {"default": "generic.yaml"}),
            "config/route.ibmetaflow",
            "must be a flow file",
        ),
        (
            lambda s, r: write(r / "config/route.ibmetaflow", {"flows": {}}),
            "config/route.ibmetaflow",
            "unknown key 'flows'",
        ),
        (
            lambda s, r: write(r / "config/docs.ibclassifier", {"rules": [{"label": "x"}]}),
            "config/docs.ibclassifier",
            "exactly one of formula or regex",
        ),
        (
            lambda s, r: write(r / "config/docs.ibclassifier", "rules: [unclosed"),
            "config/docs.ibclassifier",
            "YAML does not parse",
        ),
        (
            lambda s, r: write(
                r / "flows/generic.ibflow",
                {"name": "g", "steps": [{"id": "x", "type": "teleport"}]},
            ),
            "flows/generic.ibflow",
            "unknown step type",
        ),
    ],
)
def test_metaflow_compile_errors_name_the_file(tmp_path, change, file, fragment):
    root = tmp_path / "p"
    settings = metaflow_project(root)
    change(settings, root)
    with pytest.raises(CompileError) as info:
        compile_project(root, "Metaflow", settings, "alice")
    assert info.value.file == file, info.value.msg
    assert fragment in info.value.msg


def test_flows_compile_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CompileError, match="holds no \\*.ibflow files"):
        compile_project(tmp_path, "Flows", {"flows_dir": "empty"}, "a")
    write(tmp_path / "two/a b.ibflow", FLOWS["generic.ibflow"])
    write(tmp_path / "two/a_b.ibflow", FLOWS["generic.ibflow"])
    with pytest.raises(CompileError, match="would share the step id prefix 'a_b'"):
        compile_project(tmp_path, "Flows", {"flows_dir": "two"}, "a")


def test_an_edited_composition_does_not_load(tmp_path):
    artifact = compile_project(tmp_path / "p", "Metaflow", metaflow_project(tmp_path / "p"), "a")
    with zipfile.ZipFile(io.BytesIO(artifact.data)) as source:
        manifest = json.loads(source.read("manifest.json"))
    manifest["composition"]["routes"]["invoice"] = "generic"
    with pytest.raises(InvalidRequest, match="content_hash does not match"):
        load_binary(rewritten(artifact.data, manifest))
    manifest["composition"]["routes"]["invoice"] = "nowhere"
    with pytest.raises(InvalidRequest, match="every route must lead"):
        load_binary(rewritten(artifact.data, manifest))


def rewritten(data, manifest):
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            body = source.read(info)
            if info.filename == "manifest.json":
                body = json.dumps(manifest).encode()
            target.writestr(info, body)
    return out.getvalue()
