import json

import pytest

from shared.flow import runtime
from shared.flow.output_schema import from_runtime_config, parse_output_schema

# Seed 001's example, typographic quotes included, as JSON.stringify sends it.
SEED_EXAMPLE = json.dumps(
    {
        "add_fields": [{"name": "my_field_name", "formula": "echo(\u2018hello world\u2019)"}],
        "remove_fields": ["field_1", "field_2"],
        "rename_fields": {"old_name_1": "new_name_1", "old_name_2": "new_name_2"},
    },
    ensure_ascii=False,
)


def record(fields, **changes):
    base = runtime.new_record("a.txt", 0, None)
    return {**base, "text": "Invoice # A-1", "fields": fields, **changes}


def results(records, text):
    schema = from_runtime_config({"modify_output_schema": text})
    return runtime.final_results(records, schema)


def as_pairs(result):
    return [(pair["key"], pair["value"]) for pair in result["results"]]


def test_the_seed_example_adds_removes_and_renames():
    [out] = results(
        [record({"field_1": 1, "old_name_1": "a", "keep": True, "field_2": 2, "old_name_2": "b"})],
        SEED_EXAMPLE,
    )
    assert as_pairs(out) == [
        ("new_name_1", "a"),
        ("keep", True),
        ("new_name_2", "b"),
        ("my_field_name", "hello world"),
    ]
    assert out["error"] is None


def test_added_formulas_see_fields_text_and_earlier_added_fields():
    text = json.dumps(
        {
            "add_fields": [
                {"name": "double", "formula": "total * 2"},
                {"name": "number", "formula": "regex(text, 'Invoice # (\\S+)')"},
                {"name": "label", "formula": "concat(number, \u201c/\u201d, double)"},
            ],
            "remove_fields": ["total"],
        }
    )
    [out] = results([record({"total": 21})], text)
    assert as_pairs(out) == [("double", 42), ("number", "A-1"), ("label", "A-1/42")]


def test_a_failing_formula_gives_none_and_the_records_error():
    text = json.dumps(
        {
            "add_fields": [
                {"name": "x", "formula": "missing + 1"},
                {"name": "y", "formula": "echo(1)"},
            ]
        }
    )
    [out] = results([record({"a": 1})], text)
    assert as_pairs(out) == [("a", 1), ("x", None), ("y", 1)]
    assert out["error"].startswith("Error <field 'x': name 'missing' is not defined")
    assert out["error"].endswith("> in step modify_output_schema")


def test_failed_records_keep_their_error_and_get_no_added_fields():
    text = json.dumps(
        {"add_fields": [{"name": "x", "formula": "echo(1)"}], "rename_fields": {"a": "b"}}
    )
    [out] = results([record({"a": 1}, error="Error <boom> in step s")], text)
    assert as_pairs(out) == [("b", 1)]
    assert out["error"] == "Error <boom> in step s"


def test_renames_swap_and_replace_fields_of_the_new_name():
    text = json.dumps({"rename_fields": {"a": "b", "b": "a", "c": "d"}})
    [out] = results([record({"a": 1, "b": 2, "c": 3, "d": 4})], text)
    assert as_pairs(out) == [("b", 1), ("a", 2), ("d", 3)]


def test_no_schema_leaves_results_alone():
    plain = runtime.final_results([record({"a": 1})])
    assert results([record({"a": 1})], "") == plain
    assert results([record({"a": 1})], "{}") == plain
    assert from_runtime_config({}) is None and from_runtime_config(None) is None


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"add_field": []}', "unknown key 'add_field'"),
        ('{"add_fields": {"name": "x"}}', "add_fields must be a list"),
        ('{"add_fields": [{"name": "x"}]}', "add_fields #1 must be"),
        ('{"add_fields": [{"name": "", "formula": "1"}]}', "add_fields #1 name"),
        ('{"add_fields": [{"name": "x", "formula": "open(1)"}]}', "unknown function 'open'"),
        ('{"add_fields": [{"name": "x", "formula": "(("}]}', "does not parse"),
        (
            '{"add_fields": [{"name": "x", "formula": "1"}, {"name": "x", "formula": "2"}]}',
            "a second time",
        ),
        ('{"remove_fields": "a"}', "remove_fields must be a list"),
        ('{"remove_fields": [1]}', "remove_fields #1"),
        ('{"rename_fields": ["a"]}', "rename_fields must be an object"),
        ('{"rename_fields": {"a": "c", "b": "c"}}', "several fields the name c"),
        (12, "must be a string"),
    ],
)
def test_bad_schemas_say_what_is_wrong(value, fragment):
    with pytest.raises(ValueError) as info:
        from_runtime_config({"modify_output_schema": value})
    assert str(info.value).startswith("modify_output_schema: ")
    assert fragment in str(info.value)


def test_parsing_is_cached():
    assert parse_output_schema(SEED_EXAMPLE) is parse_output_schema(SEED_EXAMPLE)
