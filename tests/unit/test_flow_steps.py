import json

import pytest
import yaml

from shared.flow import runtime
from shared.flow.binary import load_binary
from shared.flow.compiler import compile_project


def build(tmp_path, *steps, udfs=None):
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True, exist_ok=True)
    flow = {"name": "t", "steps": [{"id": f"s{i}", **s} for i, s in enumerate(steps)]}
    (project / "flows/t.ibflow").write_text(yaml.safe_dump(flow, sort_keys=False))
    for path, source in (udfs or {}).items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(source)
    artifact = compile_project(project, "Single Flow", {"flow_file": "flows/t.ibflow"}, "t")
    return load_binary(artifact.data)


def record(text="", file_index=0, **changes):
    base = runtime.new_record(f"f{file_index}.txt", file_index, f"/nowhere/f{file_index}.txt")
    return {**base, "text": text, "pages": [text], **changes}


def run(binary, records, step_index=0, **context):
    return runtime.run_step(binary, step_index, records, runtime.StepContext("job", **context))


def make_pdf(pages):
    count = len(pages)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        (
            "<< /Type /Pages /Kids ["
            + " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
            + f"] /Count {count} >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                f"<< /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
            ).encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


# extract_text


@pytest.mark.parametrize(
    ("name", "content", "text", "pages"),
    [
        ("a.txt", b"one\ftwo", "one\ftwo", ["one", "two"]),
        ("a.md", "# Title\n\u00e9t\u00e9".encode(), "# Title\n\u00e9t\u00e9", None),
        ("a.csv", b"a,b\n1,2\n", "a,b\n1,2\n", None),
        ("a.json", b'{"k": 1}', '{"k": 1}', None),
        ("a.TXT", "caf\u00e9".encode("latin-1"), "caf\u00e9", None),
        (
            "a.html",
            b"<html><head><title>T</title><style>p{}</style></head><body><h1>Head</h1>"
            b"<p>A &amp; B</p><script>var x = 1;</script><div>row  one</div></body>",
            "Head\nA & B\nrow one",
            None,
        ),
        ("a.htm", b"<p>x</p>", "x", None),
        (
            "a.pdf",
            make_pdf(["Page one", "Page two"]),
            "Page one\n\nPage two",
            ["Page one", "Page two"],
        ),
    ],
)
def test_extract_text_reads_supported_types(tmp_path, name, content, text, pages):
    binary = build(tmp_path, {"type": "extract_text"})
    (tmp_path / name).write_bytes(content)
    outcome = run(binary, [runtime.new_record(name, 0, tmp_path / name)])
    [out] = outcome.records
    assert out["error"] is None
    assert out["text"] == text
    assert out["pages"] == (pages or [text])


def test_extract_text_errors_are_record_errors(tmp_path):
    binary = build(tmp_path, {"type": "extract_text"})
    (tmp_path / "a.docx").write_bytes(b"PK")
    (tmp_path / "b.pdf").write_bytes(b"not a pdf")
    (tmp_path / "c.json").write_text("{broken")
    records = [
        runtime.new_record(n, i, tmp_path / n)
        for i, n in enumerate(["a.docx", "b.pdf", "c.json", "gone.txt"])
    ]
    docx, pdf, broken_json, gone = run(binary, records).records
    assert docx["error"].startswith("Error <unsupported file type '.docx'; supported: ")
    assert docx["error"].endswith("> in step s0")
    assert "cannot read PDF" in pdf["error"]
    assert broken_json["error"] is None
    assert "c.json is not valid JSON" in broken_json["warnings"][0]
    assert gone["error"] == "Error <input file gone.txt is missing> in step s0"


# split


def test_split_by_page_line_and_regex(tmp_path):
    binary = build(
        tmp_path,
        {"type": "split", "params": {"by": "page"}},
        {"type": "split", "params": {"by": "line"}},
        {"type": "split", "params": {"by": "regex", "pattern": "(?m)^Invoice"}},
    )
    paged = run(binary, [record("p1\fp2", pages=["p1", "p2"])], 0).records
    assert [(r["text"], r["pages"], r["record_index"]) for r in paged] == [
        ("p1", ["p1"], 0),
        ("p2", ["p2"], 1),
    ]
    lines = run(binary, [record("a\n\n  \nb\n")], 1).records
    assert [r["text"] for r in lines] == ["a", "b"]
    text = "Batch header\nInvoice 1\nTotal 1\nInvoice 2\nTotal 2"
    pieces = run(binary, [record(text)], 2).records
    assert [r["text"] for r in pieces] == [
        "Batch header",
        "Invoice 1\nTotal 1",
        "Invoice 2\nTotal 2",
    ]
    assert [r["record_index"] for r in pieces] == [0, 1, 2]


def test_split_by_csv_row_sets_fields_from_header(tmp_path):
    binary = build(tmp_path, {"type": "split", "params": {"by": "csv_row"}})
    text = 'name , total\nAcme,"1,200.00"\n\nGlobex,5,extra\n'
    rows = run(binary, [record(text, fields={"batch": "b1"})]).records
    assert [r["fields"] for r in rows] == [
        {"batch": "b1", "name": "Acme", "total": "1,200.00"},
        {"batch": "b1", "name": "Globex", "total": "5"},
    ]
    assert rows[0]["text"] == 'Acme,"1,200.00"'
    assert rows[0]["warnings"] == [] and "beyond the header" in rows[1]["warnings"][0]
    assert [r["record_index"] for r in rows] == [0, 1]


def test_split_renumbers_per_file_and_keeps_empty_records_whole(tmp_path):
    binary = build(tmp_path, {"type": "split", "params": {"by": "line"}})
    records = [record("a\nb", 0), record("", 1, record_index=4), record("c\nd\ne", 2)]
    out = run(binary, records).records
    assert [(r["file_index"], r["record_index"], r["text"]) for r in out] == [
        (0, 0, "a"),
        (0, 1, "b"),
        (1, 4, ""),
        (2, 0, "c"),
        (2, 1, "d"),
        (2, 2, "e"),
    ]
    assert "found nothing to split" in out[2]["warnings"][0]
    assert records[0]["text"] == "a\nb" and records[0]["record_index"] == 0


# classify


def test_classify_first_matching_rule_wins_else_default(tmp_path):
    binary = build(
        tmp_path,
        {
            "type": "classify",
            "params": {
                "rules": [
                    {"label": "big", "formula": "len(text) > 20"},
                    {"label": "invoice", "regex": "INVOICE"},
                    {"label": "receipt", "regex": "receipt"},
                ],
                "default": "other",
            },
        },
    )
    texts = ["an invoice and a receipt", "Invoice", "Receipt", "letter"]
    out = run(binary, [record(t, i) for i, t in enumerate(texts)]).records
    assert [r["class_label"] for r in out] == ["big", "invoice", "receipt", "other"]


def test_classify_formula_failure_is_a_record_error(tmp_path):
    binary = build(
        tmp_path,
        {"type": "classify", "params": {"rules": [{"label": "x", "formula": "amount > 1"}]}},
    )
    [out] = run(binary, [record("x")]).records
    assert out["error"] == (
        "Error <rule for label 'x': name 'amount' is not defined "
        "(no field of that name so far)> in step s0"
    )


# refine


def test_refine_evaluates_in_order_and_keeps_existing_fields(tmp_path):
    binary = build(
        tmp_path,
        {
            "type": "refine",
            "params": {
                "fields": {
                    "number": "regex(text, 'No\\. (\\S+)')",
                    "loud": "upper(number)",
                    "parts": "split(number, '-')",
                    "label": "concat(file_name, '#', class_label)",
                }
            },
        },
    )
    [out] = run(binary, [record("Invoice No. ab-1", fields={"kept": 1}, class_label="inv")]).records
    assert out["fields"] == {
        "kept": 1,
        "number": "ab-1",
        "loud": "AB-1",
        "parts": ["ab", "1"],
        "label": "f0.txt#inv",
    }
    json.dumps(out)


def test_refine_failure_names_field_and_step(tmp_path):
    binary = build(
        tmp_path,
        {
            "type": "refine",
            "params": {
                "fields": {
                    "total": "to_number(regex(text, 'Total: (\\S+)'))",
                    "double": "total * 2",
                }
            },
        },
    )
    good, bad = run(binary, [record("Total: 4"), record("no total", 1)]).records
    assert good["fields"] == {"total": 4, "double": 8}
    assert bad["error"].startswith("Error <field 'double': TypeError: unsupported operand")
    assert bad["error"].endswith("> in step s0")
    assert bad["fields"] == {}


# filter


def test_filter_drops_falsy_and_counts_them(tmp_path):
    binary = build(tmp_path, {"type": "filter", "params": {"keep_if": "contains(text, 'keep')"}})
    outcome = run(binary, [record("keep me"), record("drop me", 1), record("keep", 2)])
    assert [r["file_index"] for r in outcome.records] == [0, 2]
    assert outcome.filtered == 1


def test_filter_formula_error_fails_the_record_instead_of_dropping(tmp_path):
    binary = build(tmp_path, {"type": "filter", "params": {"keep_if": "missing > 1"}})
    outcome = run(binary, [record("x")])
    assert outcome.filtered == 0
    assert "name 'missing' is not defined" in outcome.records[0]["error"]


# checkpoint


def test_checkpoint_lists_failed_rules_and_later_steps_skip_the_record(tmp_path):
    binary = build(
        tmp_path,
        {
            "type": "checkpoint",
            "params": {
                "rules": [
                    {"formula": "total > 0", "message": "total must be positive"},
                    {"formula": "len(text) < 10", "message": "text too long"},
                    {"formula": "missing > 1", "message": "needs missing"},
                ]
            },
        },
        {"type": "refine", "params": {"fields": {"seen": "True"}}},
    )
    ok = record("short", fields={"total": 3, "missing": 2})
    bad = record("much too long text", 1, fields={"total": 0})
    outcome = run(binary, [ok, bad])
    passed, held = outcome.records
    assert passed["checkpoint_failed"] == []
    assert held["checkpoint_failed"] == [
        "total must be positive",
        "text too long",
        "needs missing (could not check: name 'missing' is not defined "
        "(no field of that name so far))",
    ]
    assert outcome.checkpoint_failed == 1
    after = run(binary, outcome.records, 1).records
    assert after[0]["fields"]["seen"] is True
    assert after[1] is held


# udf

UDF = """
import json

LOADS = []
LOADS.append(1)


def tag(record, context):
    record["fields"]["job"] = context.job_id
    record["fields"]["rate"] = context.runtime_config.get("rate")
    record["fields"]["loads"] = len(LOADS)
    context.log("tagged " + record["file_name"])
    context.log("careful", level="warning")
    return record


def fan_out(record, context):
    return [{"text": part} for part in record["text"].split()]


def drop(record, context):
    return None


def wrong(record, context):
    return "nope"


def not_json(record, context):
    record["fields"]["bad"] = object()
    return record


def mutate_then_fail(record, context):
    record["fields"]["touched"] = True
    raise KeyError("vendor")
"""


@pytest.fixture
def udf_binary(tmp_path):
    names = ["tag", "fan_out", "drop", "wrong", "not_json", "mutate_then_fail"]
    steps = [{"type": "udf", "params": {"function": f"udfs/u.py:{n}"}} for n in names]
    return build(tmp_path, *steps, udfs={"udfs/u.py": UDF})


def test_udf_gets_record_and_context_and_logs_only_to_timeline(udf_binary):
    logs = []
    outcome = run(
        udf_binary,
        [record("a"), record("b", 1)],
        0,
        runtime_config={"rate": 2},
        log=lambda level, message: logs.append((level, message)),
        log_to_timeline=True,
    )
    assert [r["fields"] for r in outcome.records] == [{"job": "job", "rate": 2, "loads": 1}] * 2
    assert logs[:2] == [("INFO", "[s0] tagged f0.txt"), ("WARNING", "[s0] careful")]
    quiet = []
    run(udf_binary, [record("a")], 0, log=lambda level, message: quiet.append(message))
    assert quiet == []


def test_udf_module_is_loaded_once_per_binary(udf_binary):
    run(udf_binary, [record("a")], 0)
    [out] = run(udf_binary, [record("a")], 0).records
    assert out["fields"]["loads"] == 1


def test_udf_may_return_many_records_or_none(udf_binary):
    many = run(udf_binary, [record("x y z", fields={"k": 1})], 1).records
    assert [(r["text"], r["record_index"], r["fields"]) for r in many] == [
        ("x", 0, {"k": 1}),
        ("y", 1, {"k": 1}),
        ("z", 2, {"k": 1}),
    ]
    dropped = run(udf_binary, [record("x")], 2)
    assert dropped.records == [] and dropped.filtered == 1


def test_udf_failures_are_record_errors(udf_binary):
    original = record("x")
    [wrong] = run(udf_binary, [original], 3).records
    assert wrong["error"] == (
        "Error <wrong() returned str; expected a record dict, a list of records or None> in step s3"
    )
    [not_json] = run(udf_binary, [original], 4).records
    assert "TypeError: a value of type object cannot be stored in a record" in not_json["error"]
    [failed] = run(udf_binary, [original], 5).records
    line = UDF.splitlines().index('    raise KeyError("vendor")') + 1
    assert failed["error"] == f"Error <KeyError: 'vendor' (at udfs/u.py line {line})> in step s5"
    assert failed["fields"] == {} and original["fields"] == {}
