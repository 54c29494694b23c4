"""The sample project in examples/invoices compiles and runs through every step."""

import json
from pathlib import Path

from shared.flow import runtime
from shared.flow.binary import load_binary
from shared.flow.compiler import compile_project

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "invoices"


def compile_example():
    return compile_project(PROJECT, "Single Flow", {"flow_file": "flows/invoices.ibflow"}, "demo")


def test_sample_project_compiles_to_a_stable_binary():
    first, second = compile_example(), compile_example()
    assert first.file_name == "invoices.ibflowbin"
    assert first.content_hash == second.content_hash
    binary = load_binary(first.data)
    assert [(s.id, s.type) for s in binary.steps] == [
        ("read", "extract_text"),
        ("fields", "refine"),
        ("check", "checkpoint"),
        ("enrich", "udf"),
    ]
    assert binary.steps[3].timeout == 30
    assert list(binary.udf_sources) == ["udfs/enrich.py"]


def test_sample_invoices_run_through_every_step():
    binary = load_binary(compile_example().data)
    inputs = sorted((PROJECT / "data" / "input").iterdir())
    assert [p.name for p in inputs] == ["acme.txt", "globex.txt", "initech.html"]
    records = [runtime.new_record(p.name, i, p) for i, p in enumerate(inputs)]
    logs = []
    context = runtime.StepContext(
        job_id="demo",
        runtime_config={"tax_rate": 0.1},
        log=lambda level, message: logs.append(message),
        log_to_timeline=True,
    )
    for index in range(len(binary.steps)):
        # What a worker does between steps: persist as JSON, read back.
        records = json.loads(json.dumps(runtime.run_step(binary, index, records, context).records))
    fields = {r["file_name"]: r["fields"] for r in records}
    assert all(r["error"] is None and r["checkpoint_failed"] == [] for r in records)
    assert fields["acme.txt"] == {
        "invoice_number": "INV-1001",
        "vendor": "Acme Supplies",
        "invoice_date": "2024-03-05",
        "total": 100.0,
        "vendor_upper": "ACME SUPPLIES",
        "total_with_tax": 110.0,
    }
    assert fields["globex.txt"] == {
        "invoice_number": "GX-77",
        "vendor": "Globex Corporation",
        "invoice_date": "2024-03-12",
        "total": 1234.5,
        "vendor_upper": "GLOBEX CORPORATION",
        "total_with_tax": 1357.95,
    }
    assert fields["initech.html"] == {
        "invoice_number": "IT-3003",
        "vendor": "Initech & Sons",
        "invoice_date": "2024-04-01",
        "total": 250.0,
        "vendor_upper": "INITECH & SONS",
        "total_with_tax": 275.0,
    }
    assert logs == [
        "[enrich] enriched invoice INV-1001",
        "[enrich] enriched invoice GX-77",
        "[enrich] enriched invoice IT-3003",
    ]


def test_sample_checkpoint_holds_an_invoice_without_a_total(tmp_path):
    binary = load_binary(compile_example().data)
    source = tmp_path / "no_total.txt"
    source.write_text("Invoice No. X-1\nVendor: Nobody\n")
    outcome = runtime.run_steps(
        binary, [runtime.new_record(source.name, 0, source)], runtime.StepContext(job_id="demo")
    )
    [held] = outcome.records
    assert outcome.checkpoint_failed == 1
    assert held["checkpoint_failed"] == ["total must be positive"]
    assert "total_with_tax" not in held["fields"]
