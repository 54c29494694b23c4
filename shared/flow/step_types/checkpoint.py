"""``checkpoint``: stop the records that fail a rule for review, with each failed rule's message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.flow import formulas
from shared.flow.records import child_record
from shared.flow.step_types import param_checks as check
from shared.flow.step_types.env import Record, StepEnv
from shared.flow.step_types.step_type import StepType


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    check.keys(params, {"rules"}, {"rules"})
    rules = []
    for number, rule in enumerate(check.rules(params["rules"], "rules"), 1):
        what = f"rule #{number}"
        check.keys(rule, {"formula", "message"}, {"formula"})
        formula = check.formula(rule["formula"], what)
        message = rule.get("message", f"rule failed: {formula}")
        rules.append({"formula": formula, "message": check.text(message, f"{what} message")})
    return {"rules": rules}


def run(env: StepEnv, record: Record) -> list[Record]:
    """A rule that cannot be evaluated (a field is missing) fails too: the record needs review."""
    names = formulas.record_names(record)
    failed = []
    for rule in env.step.params["rules"]:
        try:
            passed = formulas.evaluate(rule["formula"], names)
        except formulas.FormulaError as exc:
            failed.append(f"{rule['message']} (could not check: {exc})")
            continue
        if not passed:
            failed.append(rule["message"])
    return [child_record(record, checkpoint_failed=failed)]


STEP_TYPE = StepType(
    name="checkpoint",
    summary="stops the record for review when a rule's formula is false or cannot be evaluated",
    check_params=check_params,
    run=run,
)
