"""``classify``: set ``class_label`` from the first rule (a formula or a regex) that matches."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.flow import formulas
from shared.flow.records import child_record
from shared.flow.step_types import param_checks as check
from shared.flow.step_types.env import Record, StepEnv, evaluate
from shared.flow.step_types.step_type import StepType


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    check.keys(params, {"rules", "default"}, {"rules"})
    rules = []
    for number, rule in enumerate(check.rules(params["rules"], "rules"), 1):
        what = f"rule #{number}"
        check.keys(rule, {"label", "formula", "regex"}, {"label"})
        label = check.text(rule["label"], f"{what} label")
        if ("formula" in rule) == ("regex" in rule):
            raise ValueError(f"{what} needs exactly one of formula or regex")
        if "formula" in rule:
            rules.append({"label": label, "formula": check.formula(rule["formula"], what)})
        else:
            rules.append({"label": label, "regex": check.regex(rule["regex"], what, re.IGNORECASE)})
    default = params.get("default")
    if default is not None:
        check.text(default, "default")
    return {"rules": rules, "default": default}


def run(env: StepEnv, record: Record) -> list[Record]:
    names = formulas.record_names(record)
    label = env.step.params.get("default")
    for rule in env.step.params["rules"]:
        if "formula" in rule:
            matched = evaluate(rule["formula"], names, f"rule for label '{rule['label']}'")
        else:
            matched = re.search(rule["regex"], record.get("text") or "", re.IGNORECASE)
        if matched:
            label = rule["label"]
            break
    return [child_record(record, class_label=label)]


STEP_TYPE = StepType(
    name="classify",
    summary="sets `class_label` from the first matching rule (formula or regex), else `default`",
    check_params=check_params,
    run=run,
)
