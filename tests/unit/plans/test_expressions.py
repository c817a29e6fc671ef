"""Expressions: every form of the spec ("Expressions") allowed and rejected, and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from marimo_engine.errors import (
    EngineError,
    ExpressionError,
    InvalidExpressionError,
    UnknownReferenceError,
)
from marimo_engine.plans.expressions import (
    ALLOWED,
    MAX_EXPRESSION_CHARS,
    MAX_EXPRESSION_DEPTH,
    Expression,
    parse_expression,
)
from marimo_engine.plans.references import Reference

OUTPUTS: dict[str, object] = {
    "s1": {"breach_detected": False, "tags": ["hull", "air"], "name": "bow", "none": None},
    "s2": {"level": 17.5, "zero": 0, "big": 10**400},
    "s3": True,
    "a-1": 3,
    "df": [1, 2],
}


class NoTruth:
    def __bool__(self) -> bool:
        raise ValueError("The truth value of a DataFrame is ambiguous.")


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    expected: Any


ALLOWED_CASES = [
    # literals
    Case("int", "42", 42),
    Case("float", "19.5", 19.5),
    Case("exponent", "1e3", 1000.0),
    Case("underscore-int", "1_000", 1000),
    Case("single-quoted", "'text'", "text"),
    Case("double-quoted", '"text"', "text"),
    Case("triple-quoted", "'''it's'''", "it's"),
    Case("dollar-in-string-is-text", "'$s1 costs $$5'", "$s1 costs $$5"),
    Case("hash-in-string-is-text", "'#1'", "#1"),
    Case("true", "true", True),
    Case("false", "false", False),
    Case("null", "null", None),
    Case("True", "True", True),
    Case("False", "False", False),
    Case("None", "None", None),
    Case("list", "[1, 'a', true, null, -2]", [1, "a", True, None, -2]),
    Case("nested-list", "[[1], []]", [[1], []]),
    # references
    Case("whole-reference", "$s3", True),
    Case("reference-path", "$s2.level", 17.5),
    Case("reference-index", "$s1.tags.1", "air"),
    Case("hyphen-step-id", "$a-1 - 1", 2),
    # comparisons
    Case("lt", "$s2.level < 19.5", True),
    Case("le", "$s2.level <= 17.5", True),
    Case("gt", "$s2.level > 19.5", False),
    Case("ge", "$s2.level >= 17.5", True),
    Case("eq", "$s1.name == 'bow'", True),
    Case("ne", "$s1.name != 'bow'", False),
    Case("in-list", "$s1.name in ['bow', 'stern']", True),
    Case("in-reference", "'air' in $s1.tags", True),
    Case("not-in", "'deck' not in $s1.tags", True),
    Case("substring", "'ow' in $s1.name", True),
    Case("chain", "15 < $s2.level < 19.5", True),
    Case("chain-false-first", "20 < $s2.level < 30", False),
    Case("eq-null", "$s1.none == null", True),
    # boolean
    Case("seed-run-if", "$s1.breach_detected or $s2.level < 19.5", True),
    Case("seed-intervention", "$s2.level < 15", False),
    Case("and", "$s3 and $s2.level > 1", True),
    Case("or-returns-operand", "$s1.none or 'fallback'", "fallback"),
    Case("and-returns-operand", "$s3 and $s1.name", "bow"),
    Case("not", "not $s1.breach_detected", True),
    Case("parentheses", "not ($s3 and ($s2.level > 20 or false))", True),
    Case("precedence", "true or false and false", True),
    # arithmetic
    Case("add", "$s2.level + 2", 19.5),
    Case("sub", "$s2.level - 7.5", 10.0),
    Case("mul", "$s2.level * 2", 35.0),
    Case("div", "$s2.level / 2", 8.75),
    Case("mod", "7 % 4", 3),
    Case("unary-minus", "-$s2.level", -17.5),
    Case("unary-minus-literal", "--1", 1),
    Case("arith-in-comparison", "$s2.level * 2 > 30", True),
    Case("whitespace", "  \t$s2.level  ", 17.5),
    Case("newline-in-parens", "(1 <\n 2)", True),
    Case("max-depth", "-" * (MAX_EXPRESSION_DEPTH - 1) + "1", -1),
    Case("many-parentheses", "(" * 90 + "1" + ")" * 90, 1),
    Case("flat-and-chain", " and ".join(["true"] * 100), True),
    Case("max-length", "1" + " " * (MAX_EXPRESSION_CHARS - 1), 1),
]


@pytest.mark.parametrize("case", ALLOWED_CASES, ids=[c.id for c in ALLOWED_CASES])
def test_allowed_expressions_evaluate(case: Case) -> None:
    expression = parse_expression(case.text)
    value = expression.evaluate(OUTPUTS)
    assert value == case.expected
    assert type(value) is type(case.expected)
    assert expression.is_true(OUTPUTS) is bool(case.expected)
    assert expression.text == case.text


@dataclass(frozen=True)
class Rejected:
    id: str
    text: Any
    match: str


REJECTED = [
    Rejected("power", "2 ** 3", r"'\*\*' \(power\) is not allowed; multiply instead"),
    Rejected("conditional", "1 if $s3 else 2", r"conditional expressions .* are not allowed"),
    Rejected("call", "len($s1.tags)", r"calls are not allowed"),
    Rejected("method-call-on-reference", "$s1.name.upper()", r"calls are not allowed"),
    Rejected("attribute", "'abc'.upper", r"attribute access is not allowed outside a reference"),
    Rejected("attribute-on-literal", "True.real", r"attribute access is not allowed"),
    Rejected("subscript", "$s1.tags[0]", r"subscripts are not allowed; .* \$s1\.items\.0"),
    Rejected("slice", "[1, 2][0:1]", r"subscripts are not allowed"),
    Rejected("list-comprehension", "[x for x in [1]]", r"comprehensions are not allowed"),
    Rejected("set-comprehension", "{x for x in [1]}", r"comprehensions are not allowed"),
    Rejected("dict-comprehension", "{x: 1 for x in [1]}", r"comprehensions are not allowed"),
    Rejected("generator", "(x for x in [1])", r"generator expressions are not allowed"),
    Rejected("lambda", "lambda: 1", r"lambdas are not allowed"),
    Rejected("f-string", "f'{$s1.name}'", r"f-strings are not allowed"),
    Rejected("f-string-plain", "f'x' == 'x'", r"f-strings are not allowed"),
    Rejected("rf-string", "$s1.name == rf'x'", r"f-strings are not allowed"),
    Rejected("walrus", "(x := 1)", r"the walrus operator ':=' is not allowed"),
    Rejected(
        "bare-name",
        "level < 15",
        r"the name 'level' is not allowed; names are only true, false, null .* "
        r"For a step's output write \$level, for text write 'level'",
    ),
    Rejected("dunder-name", "__import__", r"the name '__import__' is not allowed"),
    Rejected("placeholder-lookalike", "_ref0", r"the name '_ref0' is not allowed"),
    Rejected("is", "$s1.none is None", r"'is' is not allowed; use '=='"),
    Rejected("is-not", "$s1.none is not None", r"'is not' is not allowed; use '!='"),
    Rejected("floor-div", "7 // 2", r"'//' is not allowed; use '/'"),
    Rejected("bit-and", "true & false", r"'&' is not allowed; use 'and'"),
    Rejected("bit-or", "true | false", r"'\|' is not allowed; use 'or'"),
    Rejected("xor", "1 ^ 2", r"'\^' is not allowed"),
    Rejected("shift", "1 << 2", r"'<<' is not allowed"),
    Rejected("matmul", "1 @ 2", r"'@' is not allowed"),
    Rejected("invert", "~1", r"'~' in '~1' is not allowed; use 'not'"),
    Rejected("unary-plus", "+1", r"unary '\+' in '\+1' is not allowed"),
    Rejected("tuple", "(1, 2)", r"tuples are not allowed; write a list"),
    Rejected("bare-tuple", "1, 2", r"tuples are not allowed"),
    Rejected("dict", "{'a': 1}", r"objects \(dicts\) are not allowed"),
    Rejected("set", "{1}", r"sets are not allowed"),
    Rejected("starred", "[*[1]]", r"lists hold only literals"),
    Rejected("await", "await 1", r"'await' is not allowed|not valid syntax"),
    Rejected("bytes", "b'x'", r"a bytes literal is not allowed"),
    Rejected("complex", "1j", r"a complex number is not allowed"),
    Rejected("ellipsis", "...", r"'\.\.\.' \(Ellipsis\) is not allowed"),
    Rejected("reference-in-list", "[$s1.name]", r"lists hold only literals"),
    Rejected("text-arithmetic", "'a' + 'b'", r"'\+' works on numbers only, but \"'a'\" is text"),
    Rejected("bool-arithmetic", "-true", r"'-' works on numbers only, but 'true' is a boolean"),
    Rejected("null-arithmetic", "1 * null", r"'\*' works on numbers only, but 'null' is null"),
    Rejected("list-arithmetic", "[1] * 3", r"'\*' works on numbers only, but '\[1\]' is a list"),
    Rejected("comment", "true # and false", r"'#' at position 5 starts a comment"),
    Rejected("dollar-dollar", "$$ == 1", r"'\$\$' at position 0 is outside quotes"),
    Rejected("lone-dollar", "$ < 1", r"'\$' at position 0 does not start a reference"),
    Rejected("dollar-brace", "${s1} < 1", r"does not start a reference"),
    Rejected("underscore-path", "$s1._x", r"names that start with '_' are never followed"),
    Rejected("empty-segment", "$s1..x", r"empty path segment"),
    Rejected("empty", "", r"it is empty; write a condition such as \$s2\.level < 15"),
    Rejected("blank", "   ", r"it is empty"),
    Rejected("syntax", "1 +", r"it is not valid syntax \(invalid syntax"),
    Rejected("two-references", "$s1.x $s2", r"not valid syntax .*at position 7, near 's2'"),
    Rejected("unterminated", "'abc", r"unterminated string literal"),
    Rejected("statement", "x = 1", r"not valid syntax"),
    Rejected("null-byte", "1\x00", r"null bytes"),
    Rejected("too-long", "1" * (MAX_EXPRESSION_CHARS + 1), r"1001 characters long; the limit"),
    Rejected(
        "too-deep-unary",
        "-" * MAX_EXPRESSION_DEPTH + "1",
        r"nested deeper than 32 levels",
    ),
    Rejected("too-deep-not", "not " * 40 + "true", r"nested deeper than 32 levels"),
    Rejected("too-deep-sum", "+".join(["1"] * 40), r"nested deeper than 32 levels"),
    Rejected("too-deep-lists", "[" * 40 + "]" * 40, r"nested deeper than 32 levels"),
    Rejected("very-deep", "-" * 999 + "1", r"nested deeper than 32 levels"),
    Rejected("not-a-string", 15, r"An expression must be a string; got int"),
]


@pytest.mark.parametrize("case", REJECTED, ids=[c.id for c in REJECTED])
def test_rejected_expressions_say_what_is_allowed(case: Rejected) -> None:
    with pytest.raises(InvalidExpressionError, match=case.match) as raised:
        parse_expression(case.text)
    assert str(raised.value).endswith(ALLOWED)
    assert raised.value.expression in (case.text, repr(case.text))


@dataclass(frozen=True)
class Failing:
    id: str
    text: str
    match: str
    outputs: Any = None


FAILING = [
    Failing(
        "none-lt-number",
        "$s1.none < 15",
        r"Expression '\$s1\.none < 15' failed: cannot apply '<' to '\$s1\.none' = None "
        r"\(NoneType\) and 15 \(int\)",
    ),
    Failing("text-gt-number", "$s1.name > 1", r"cannot apply '>' to '\$s1\.name' = 'bow' \(str\)"),
    Failing("in-number", "1 in $s2.level", r"cannot apply 'in' to 1 \(int\) and '\$s2\.level'"),
    Failing(
        "divide-by-zero",
        "$s2.level / $s2.zero",
        r"division by zero in '\$s2\.level / \$s2\.zero' \('\$s2\.level' = 17\.5 \(float\) "
        r"and '\$s2\.zero' = 0 \(int\)\)",
    ),
    Failing("modulo-zero", "5 % $s2.zero", r"division by zero"),
    Failing(
        "text-plus-number",
        "$s1.name + 1",
        r"'\+' works on numbers only, but got '\$s1\.name' = 'bow' \(str\) and 1 \(int\)",
    ),
    Failing("list-times", "$s1.tags * 2", r"'\*' works on numbers only"),
    Failing("bool-arithmetic", "$s3 + 1", r"'\+' works on numbers only.*\(bool\)"),
    Failing("unary-minus-text", "-$s1.name", r"'-' works on numbers only"),
    Failing("overflow", "$s2.big / 3", r"'/' failed on .*OverflowError"),
    Failing(
        "no-truth-value",
        "not $s1",
        r"'\$s1' gave <.*… \(NoTruth\), which is neither true nor false "
        r"\(ValueError: The truth value",
        {"s1": NoTruth()},
    ),
    Failing("no-truth-in-or", "$s1 or true", r"neither true nor false", {"s1": NoTruth()}),
]


@pytest.mark.parametrize("case", FAILING, ids=[c.id for c in FAILING])
def test_evaluation_errors_name_expression_and_operand_types(case: Failing) -> None:
    expression = parse_expression(case.text)
    with pytest.raises(ExpressionError, match=case.match) as raised:
        expression.evaluate(case.outputs or OUTPUTS)
    assert raised.value.expression == case.text


def test_is_true_reports_values_without_truth() -> None:
    expression = parse_expression("$s1")
    with pytest.raises(ExpressionError, match=r"neither true nor false"):
        expression.is_true({"s1": NoTruth()})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("$s9.level < 15", r"names step 's9', which has no output"),
        ("$s2.lvl < 15", r"has no key 'lvl'\. Did you mean 'level'\?"),
        ("$s2.level-5 < 15", r"put spaces around '-' to subtract"),
    ],
    ids=["missing-step", "missing-key", "minus-without-spaces"],
)
def test_missing_references_raise_unknown_reference(text: str, match: str) -> None:
    with pytest.raises(UnknownReferenceError, match=match):
        parse_expression(text).evaluate(OUTPUTS)


def test_short_circuit_does_not_resolve_the_other_side() -> None:
    assert parse_expression("$s3 or $missing.x").evaluate(OUTPUTS) is True
    assert parse_expression("false and $missing.x").evaluate(OUTPUTS) is False
    assert parse_expression("3 < 2 < $missing.x").evaluate(OUTPUTS) is False


def test_references_are_listed_in_order() -> None:
    expression = parse_expression("$s1.breach_detected or $s2.level < 19.5 and $s1.x")
    assert expression.references == (
        Reference("s1", ("breach_detected",), "$s1.breach_detected"),
        Reference("s2", ("level",), "$s2.level"),
        Reference("s1", ("x",), "$s1.x"),
    )
    assert parse_expression("'$s1' == 'x'").references == ()


def test_parsing_is_cached_and_expressions_are_reusable() -> None:
    text = "$s2.level < 19.5"
    first = parse_expression(text)
    assert first is parse_expression(text)
    assert isinstance(first, Expression)
    assert first.evaluate(OUTPUTS) is True
    assert first.evaluate({"s2": {"level": 25}}) is False


def test_placeholder_prefix_cannot_collide_with_user_text() -> None:
    expression = parse_expression("$s1.name == '_ref0'")
    assert expression.evaluate(OUTPUTS) is False
    assert expression.evaluate({"s1": {"name": "_ref0"}}) is True


def test_errors_are_engine_errors() -> None:
    assert issubclass(InvalidExpressionError, EngineError)
    assert not issubclass(InvalidExpressionError, ExpressionError)
