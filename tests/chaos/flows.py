"""The chaos suite's flow project: flows whose UDFs note every run of a step, with the process
that ran it and when, into ``runtime_config["control_dir"]``, so a test can tell which runs a
kill cut off and whether two runs of one step ever overlapped."""

from __future__ import annotations

# Two slow UDF steps after the read: a kill has room to land inside a step, and between them.
WORK_FLOW = """
name: work
steps:
  - {id: read, type: extract_text}
  - {id: first, type: udf, params: {function: "udfs/chaos.py:work"}}
  - {id: second, type: udf, params: {function: "udfs/chaos.py:work"}}
"""

SYNC_FLOW = """
name: sync_kill
steps:
  - {id: read, type: extract_text}
  - {id: act, type: udf, params: {function: "udfs/chaos.py:die_on_request"}}
"""

CHAOS_UDFS = """
import os
import signal
import time


def _note(context, text):
    # One short write in append mode: lines from concurrent processes do not interleave.
    with open(os.path.join(context.runtime_config["control_dir"], "runs"), "a") as handle:
        handle.write(text + "\\n")


def work(record, context):
    what = f"{context.job_id} {context.step_id} {record['file_name']} {os.getpid()}"
    _note(context, f"start {what} {time.time():.6f}")
    time.sleep(float(context.runtime_config.get("work_seconds", 0.3)))
    _note(context, f"end {what} {time.time():.6f}")
    record["fields"][context.step_id] = os.getpid()
    return record


def die_on_request(record, context):
    if "die" in record["text"]:
        os.kill(os.getpid(), signal.SIGKILL)
    record["fields"]["runner"] = os.getpid()
    return record
"""
