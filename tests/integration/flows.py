"""Small flow projects and API round trips used by the integration tests."""

from __future__ import annotations

import json

from tests.support import wait_for

THREE_STEP_FLOW = """
name: three_steps
steps:
  - id: read
    type: extract_text
  - id: fields
    type: refine
    params:
      fields:
        invoice_number: "regex(text, 'Invoice #\\\\s*(\\\\S+)')"
        total: "to_number(regex(text, 'Total:\\\\s*\\\\$?([0-9.,]+)'))"
  - id: enrich
    type: udf
    params: {function: "udfs/enrich.py:enrich"}
"""

# The invoice flow with a checkpoint before its UDF: a total of 10 or less stops the record
# there, for review.
CHECKED_FLOW = """
name: checked_invoices
steps:
  - {id: read, type: extract_text}
  - id: fields
    type: refine
    params:
      fields:
        invoice_number: "regex(text, 'Invoice #\\\\s*(\\\\S+)')"
        total: "to_number(regex(text, 'Total:\\\\s*\\\\$?([0-9.,]+)'))"
  - id: check
    type: checkpoint
    params:
      rules:
        - {formula: "total > 10", message: "total must be over 10"}
  - {id: enrich, type: udf, params: {function: "udfs/enrich.py:enrich"}}
"""
# One record per line of the file (a long step output to page through); a file without a line
# is kept whole, with a warning.
LINES_FLOW = """
name: lines
steps:
  - {id: read, type: extract_text}
  - {id: lines, type: split, params: {by: line}}
"""

ENRICH_UDF = """
def enrich(record, context):
    if "boom" in record["text"]:
        raise ValueError("cannot enrich a boom")
    record["fields"]["total_with_tax"] = round(record["fields"]["total"] * 1.1, 2)
    return record
"""


def invoice(number: str, total: str) -> bytes:
    return f"ACME Corp\nInvoice # {number}\nTotal: ${total}\n".encode()


def put_project(
    stack, root: str, flow: str = THREE_STEP_FLOW, udf: str = ENRICH_UDF, user: str = "alice"
) -> None:
    stack.upload(f"{root}/flows/main.ibflow", flow.encode(), user)
    stack.upload(f"{root}/udfs/enrich.py", udf.encode(), user)


def status(stack, job_id: str, user: str = "alice") -> dict:
    response = stack.client.get(
        f"/api/v1/jobs/status?job_id={job_id}&type=flow", headers=stack.headers(user)
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def wait_done(stack, job_id: str, user: str = "alice", timeout: float = 60) -> dict:
    """The seed's polling loop: until status is not OK or state is DONE."""

    def done():
        resp = status(stack, job_id, user)
        return resp if resp["status"] != "OK" or resp["state"] == "DONE" else None

    resp = wait_for(done, timeout=timeout, interval=0.1, message=f"job {job_id} to finish")
    resp["cur_status"] = json.loads(resp["cur_status"])
    return resp


def compile_flow(stack, root: str, user: str = "alice", **extra) -> dict:
    body = {
        "binary_type": "Single Flow",
        "flow_project_root": root,
        "settings": {"flow_file": "flows/main.ibflow"},
        **extra,
    }
    response = stack.client.post(
        "/api/v1/flow_binary/compile", data=json.dumps(body), headers=stack.headers(user)
    )
    assert response.status_code == 200, response.get_json()
    return wait_done(stack, response.get_json()["job_id"], user)


def run_async(stack, body: dict, user: str = "alice"):
    return stack.client.post(
        "/api/v1/flow/run_binary_async", data=json.dumps(body), headers=stack.headers(user)
    )
