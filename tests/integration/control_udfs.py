"""UDFs that let tests hold, count and break steps from outside the worker process.

Each reads the folder to talk through from ``runtime_config["control_dir"]``: it notes what it
does in files there, and a gate step waits until the test creates an ``open`` file.
"""

GATED_FLOW = """
name: gated
steps:
  - {id: read, type: extract_text}
  - {id: hold, type: udf, params: {function: "udfs/control.py:gate"}}
  - {id: after, type: udf, params: {function: "udfs/control.py:count"}}
"""

FLAKY_FLOW = """
name: flaky
steps:
  - {id: read, type: extract_text}
  - {id: before, type: udf, params: {function: "udfs/control.py:count"}}
  - {id: fragile, type: udf, params: {function: "udfs/control.py:flaky"}}
  - {id: after, type: udf, params: {function: "udfs/control.py:count"}}
"""

ORDER_FLOW = """
name: order
steps:
  - {id: note, type: udf, params: {function: "udfs/control.py:note_order"}}
"""

HOLD_FLOW = """
name: hold
steps:
  - {id: hold, type: udf, params: {function: "udfs/control.py:gate"}}
"""

CONTROL_UDFS = """
import os
import time


def _note(context, name, text):
    with open(os.path.join(context.runtime_config["control_dir"], name), "a") as handle:
        handle.write(text + "\\n")


def _exists(context, name):
    return os.path.exists(os.path.join(context.runtime_config["control_dir"], name))


def gate(record, context):
    _note(context, "started", f"{record['file_name']} {os.getpid()}")
    deadline = time.monotonic() + 120
    while not _exists(context, "open"):
        if time.monotonic() > deadline:
            raise TimeoutError("the gate never opened")
        time.sleep(0.02)
    _note(context, "passed", record["file_name"])
    return record


def count(record, context):
    _note(context, "count", f"{context.step_id} {record['file_name']}")
    return record


def flaky(record, context):
    _note(context, "count", f"{context.step_id} {record['file_name']}")
    if "bad" in record["file_name"] and not _exists(context, "fixed"):
        raise ValueError("bad input")
    return record


def note_order(record, context):
    _note(context, "order", context.job_id)
    return record
"""
