import pytest

from shared.flow import formula_functions
from shared.flow.formula_source import normalize_source
from shared.flow.formulas import (
    FormulaError,
    check_formula,
    evaluate,
    record_names,
)

TEXT = "Invoice No. INV-7\nDate: 2024-03-05\nTotal: $1,234.50\nItems: $10 $20 $30"


def ev(expr, **names):
    return evaluate(expr, {"text": TEXT, **names})


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("echo('hello')", "hello"),
        ("echo(None)", None),
        (r"regex(text, 'Invoice No\.\s*(\S+)')", "INV-7"),
        (r"regex(text, 'INV-\d+')", "INV-7"),
        ("regex(text, 'nope(.*)')", None),
        ("regex(None, 'x')", None),
        (r"regex_all(text, '\$(\d+)(?:\s|$)')", ["10", "20", "30"]),
        ("regex_all(None, 'x')", []),
        (r"regex_replace('a1b22', '(\d+)', '<\1>')", "a<1>b<22>"),
        (r"regex_replace('a  b', '\s+', '_')", "a_b"),
        ("regex_replace(None, 'a', 'b')", None),
        ("upper('abc')", "ABC"),
        ("upper(None)", None),
        ("lower('ABC')", "abc"),
        ("lower(None)", None),
        ("strip('  a b  ')", "a b"),
        ("strip('xxaxx', 'x')", "a"),
        ("strip(None)", None),
        ("replace('a-b-c', '-', '+')", "a+b+c"),
        ("replace(None, 'a', 'b')", None),
        ("concat('a', None, 1, 'b')", "a1b"),
        ("len('abcd')", 4),
        ("len(None)", 0),
        ("len(regex_all(text, 'Total'))", 1),
        ("to_number('1,234.50')", 1234.5),
        ("to_number('$12')", 12),
        ("to_number('(3.00)')", -3.0),
        ("to_number('1.234,50')", 1234.5),
        ("to_number('EUR 7,5')", 7.5),
        ("to_number('-4')", -4),
        ("to_number(5)", 5),
        ("to_number('abc')", None),
        ("to_number('')", None),
        ("to_number(None)", None),
        ("to_date('2024-03-05')", "2024-03-05"),
        ("to_date('March 5th, 2024')", "2024-03-05"),
        ("to_date('5 Mar 2024')", "2024-03-05"),
        ("to_date('03/05/2024')", "2024-03-05"),
        ("to_date('25/03/2024')", "2024-03-25"),
        ("to_date('2024-03-05T10:30:00')", "2024-03-05"),
        ("to_date('05.03.2024')", "2024-03-05"),
        ("to_date('03/05/2024', '%d/%m/%Y')", "2024-05-03"),
        ("to_date('not a date')", None),
        ("to_date(None)", None),
        ("contains(text, 'Total')", True),
        ("contains(text, 'total')", False),
        ("contains(text, 'total', True)", True),
        ("contains(None, 'x')", False),
        ("contains(['a', 'b'], 'b')", True),
        ("coalesce(None, '', 'x', 'y')", "x"),
        ("coalesce(None, None)", None),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("round('3.14159', 3)", 3.142),
        ("round(None)", None),
        ("min(3, None, 1, 2)", 1),
        ("min([4, 5])", 4),
        ("min()", None),
        ("max(3, None, 7)", 7),
        ("max([])", None),
        ("sum(1, 2, None, 3.5)", 6.5),
        (r"sum(regex_all(text, '\$(\d+)(?:\s|$)'))", 60),
        ("sum([])", 0),
        ("split('a,b', ',')", ["a", "b"]),
        ("join(['a', None, 'b'], '-')", "a-b"),
        ("to_number(regex(text, 'Total:\\s*\\$?([0-9.,]+)')) > 1000", True),
        ("'big' if to_number('12') > 10 else 'small'", "big"),
        ("[x for x in [1, 2, 3] if x > 1]", [2, 3]),
        ("f'{upper(\"a\")}-{1 + 1}'", "A-2"),
    ],
)
def test_functions(expr, expected):
    assert ev(expr) == expected


def test_typographic_quotes_are_string_quotes():
    assert evaluate("echo(‘hello world’)", {}) == "hello world"
    assert evaluate("echo(“hello world”)", {}) == "hello world"
    assert evaluate("concat(‘a’, “b”)", {}) == "ab"
    assert evaluate("echo(’mis-paired’)", {}) == "mis-paired"


def test_typographic_quotes_keep_apostrophes_and_ascii_strings_intact():
    assert evaluate("echo(‘it’s fine’)", {}) == "it’s fine"
    assert evaluate("echo('it’s “quoted”')", {}) == "it’s “quoted”"
    assert evaluate("echo(‘say 'hi'’)", {}) == "say 'hi'"
    assert evaluate(r"regex(‘Total: 12’, ‘Total:\s*(\d+)’)", {}) == "12"
    assert normalize_source("upper(x)") == "upper(x)"


def test_string_literals_are_raw_so_regexes_need_no_doubling():
    assert evaluate(r"regex(text, '\bINV-(\d+)\b')", {"text": "see INV-42."}) == "42"
    assert evaluate(r"len('\n')", {}) == 2
    assert evaluate(r"regex_replace(text, '\n', ' ')", {"text": "x\ny"}) == "x y"
    assert evaluate(r"f'{1}\d'", {}) == "1\\d"
    assert evaluate(r"'a' if True else'b'", {}) == "a"
    assert normalize_source("f‘{x}’") == "fr'{x}'"


def test_fields_are_names_and_later_reserved_names_win():
    record = {
        "text": "T",
        "file_name": "a.txt",
        "class_label": "inv",
        "fields": {"total": 5, "text": "shadow"},
    }
    names = record_names(record)
    assert evaluate("total * 2", names) == 10
    assert evaluate("text", names) == "T"
    assert evaluate("concat(file_name, ':', class_label)", names) == "a.txt:inv"
    assert evaluate("record.fields.text", names) == "shadow"
    assert evaluate("record['fields']['total']", names) == 5


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("__import__('os')", "unknown function '__import__'"),
        ("eval('1')", "unknown function 'eval'"),
        ("upper(", "does not parse"),
        ("1 +", "does not parse"),
        ("a = 1", "does not parse"),
        ("", "empty"),
        ("text.upper()", "only plain function calls"),
        ("text.__class__", "'_'"),
        ("record._private", "'_'"),
        ("__builtins__", "'_'"),
        ("(lambda: 1)()", "only plain function calls"),
        ("lambda: 1", "Lambda is not allowed"),
        ("(x := 1)", "NamedExpr is not allowed"),
        ("regex(text, '(')", "bad regular expression"),
        ("regex(text)", "wrong arguments to regex()"),
        ("f'{text:>999999999}'", "format specifications"),
        ("upper(**record)", "'**'"),
        ("1 @ 2", "not supported"),
        ("x" * 5000, "longer than"),
        ("-" * 150 + "1", "nested"),
    ],
)
def test_check_formula_rejects_with_reason(expr, reason):
    with pytest.raises(ValueError) as info:
        check_formula(expr)
    assert reason in str(info.value)


def test_check_formula_rejects_non_strings_and_accepts_valid():
    with pytest.raises(ValueError, match="must be a string"):
        check_formula(5)
    assert check_formula("to_number(regex(text, 'x(\\d+)')) > 0") is None


@pytest.mark.parametrize(
    ("expr", "names", "reason"),
    [
        ("missing + 1", {}, "name 'missing' is not defined"),
        ("1 / 0", {}, "ZeroDivisionError"),
        ("total > 0", {"total": None}, "TypeError"),
        ("record.__class__", {"record": {}}, "'_'"),
        ("record.nokey", {"record": {"a": 1}}, "no key 'nokey'"),
        ("text.real", {"text": 5}, "records and dicts only"),
        ("'%s' % text", {"text": "x"}, "use concat()"),
        ("'a' * 10000000", {}, "IterableTooLong"),
        ("10 ** 10000000", {}, "NumberTooHigh"),
        ("replace(text, 'a', text)", {"text": "a" * 5000}, "more than"),
        ("sum(['1', 'x'])", {}, "not a number"),
    ],
)
def test_evaluate_failures_are_formula_errors(expr, names, reason):
    with pytest.raises(FormulaError) as info:
        evaluate(expr, names)
    assert reason in str(info.value)


def test_no_way_to_reach_dunders_through_values():
    for expr in ("record['__class__']", "upper.__globals__", "[].__class__"):
        with pytest.raises(FormulaError):
            evaluate(expr, {"record": {}})


def test_exceptions_of_other_types_propagate_untouched(monkeypatch):
    class Deadline(Exception):
        """Stands in for Celery's SoftTimeLimitExceeded, raised while a formula runs."""

    def boom(value):
        raise Deadline("time is up")

    monkeypatch.setitem(formula_functions.FUNCTIONS, "echo", boom)
    with pytest.raises(Deadline):
        evaluate("echo(1)", {})
