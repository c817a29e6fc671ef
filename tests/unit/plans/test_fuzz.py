"""Property tests: the expression parser and the reference resolver never crash.

Whatever text comes in (random, mutated from valid expressions, deeply
nested, huge, odd unicode, `$` anywhere), they return a value or raise the
project's own errors (`EngineError` subclasses), never a Python error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from marimo_engine.errors import (
    EngineError,
    ExpressionError,
    InvalidExpressionError,
    UnknownReferenceError,
    UsageError,
)
from marimo_engine.plans.expressions import MAX_EXPRESSION_CHARS, parse_expression
from marimo_engine.plans.references import (
    Reference,
    find_reference_errors,
    find_references,
    parse_reference,
    parse_template,
    resolve_value,
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
"""Bounded work: 150 examples of bounded size (texts of at most a few hundred
characters, outputs of at most a dozen leaves), no per-example deadline, so
each test takes a few seconds even on a loaded 2-core machine."""

ID_CHARS = "abcs012_-"
step_ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=6)
segments = st.text(alphabet=ID_CHARS + "xyz", min_size=1, max_size=5)

SEEDS = [
    "$s1.breach_detected or $s2.level < 19.5",
    "$s2.level < 15",
    "not ($s1.tags.0 in ['a', 'b']) and -$s2.level * 2 % 3 >= 1.5",
    "15 < $s2.level <= 20 != false",
    "'$$ text' == $s1.name or null",
    "[1, [2, 'x'], true] == $s1.tags",
]

ODD = [
    "$",
    "$$",
    "'",
    '"',
    "(",
    ")",
    "[",
    "]",
    ".",
    "..",
    "_",
    "-",
    "#",
    "\\",
    "\n",
    "\x00",
    "é",
    "ß",
    "ﬁ",
    "𝟘",
    "\u200b",
    "\ud7ff",
    "🙂",
    "ᵗrue",
    "f'",
    "**",
    ":=",
    "lambda",
    " ",
]


class Point(NamedTuple):
    x: int
    items: list[Any]


@dataclass
class Box:
    value: Any
    _hidden: int = 0


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(alphabet=ID_CHARS + "xyz", max_size=4), children, max_size=4),
        st.builds(Point, x=st.integers(), items=st.lists(children, max_size=3)),
        st.builds(Box, value=children),
        st.tuples(children, children),
    ),
    max_leaves=12,
)
outputs_strategy = st.dictionaries(step_ids, json_values, max_size=5)

reference_texts = st.builds(
    lambda step_id, path: "$" + ".".join([step_id, *path]),
    step_ids,
    st.lists(segments, max_size=4),
)


@st.composite
def token_soup(draw: st.DrawFn) -> str:
    """Expressions assembled from the language's tokens, valid or not."""
    tokens = st.one_of(
        reference_texts,
        st.sampled_from(
            [
                "true",
                "false",
                "null",
                "True",
                "None",
                "and",
                "or",
                "not",
                "in",
                "not in",
                "<",
                "<=",
                ">",
                ">=",
                "==",
                "!=",
                "+",
                "-",
                "*",
                "/",
                "%",
                "(",
                ")",
                "[",
                "]",
                ",",
                "'a'",
                '"b"',
                "0",
                "1.5",
                "-2",
                "1e309",
                "x",
                "$",
                "**",
                "if",
                "else",
            ]
        ),
        st.integers(min_value=-(10**6), max_value=10**6).map(str),
    )
    parts = draw(st.lists(tokens, min_size=1, max_size=25))
    separators = draw(st.lists(st.sampled_from([" ", "", "  ", "\t"]), min_size=len(parts)))
    return "".join(p + s for p, s in zip(parts, separators, strict=False))


@st.composite
def mutated(draw: st.DrawFn, seeds: list[str]) -> str:
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        piece = draw(st.one_of(st.sampled_from(ODD), st.text(max_size=3)))
        if action == "insert":
            text = text[:position] + piece + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + 1 :]
        elif action == "replace":
            text = text[:position] + piece + text[position + 2 :]
        else:
            text = text[:position] + text[position:] * 2
    return text


@st.composite
def deep(draw: st.DrawFn) -> str:
    depth = draw(st.integers(min_value=1, max_value=700))
    kind = draw(st.sampled_from(["paren", "not", "minus", "list", "plus", "mixed"]))
    if kind == "paren":
        return "(" * depth + "$s1" + ")" * depth
    if kind == "not":
        return "not " * depth + "$s1"
    if kind == "minus":
        return "-" * depth + "1"
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "plus":
        return "+".join(["1"] * depth)
    return "(not -" * depth + "1" + ")" * depth


def check_expression(text: Any, outputs: dict[str, Any]) -> None:
    try:
        expression = parse_expression(text)
    except InvalidExpressionError as exc:
        assert str(exc)
        return
    assert expression.text == text
    assert isinstance(text, str) and len(text) <= MAX_EXPRESSION_CHARS
    for reference in expression.references:
        assert isinstance(reference, Reference)
    try:
        expression.evaluate(outputs)
        expression.is_true(outputs)
    except (ExpressionError, UnknownReferenceError):
        pass


@FUZZ
@given(st.text(max_size=200), outputs_strategy)
@example("$s1 < $s2", {"s1": None, "s2": 1})
@example("$s1 / $s2", {"s1": 1, "s2": 0})
@example("$s1 * $s1 * $s1", {"s1": 10**2000})
@example("$s1 % 1", {"s1": float("inf")})
def test_random_text_expressions(text: str, outputs: dict[str, Any]) -> None:
    check_expression(text, outputs)


@FUZZ
@given(token_soup(), outputs_strategy)
def test_token_soup_expressions(text: str, outputs: dict[str, Any]) -> None:
    check_expression(text, outputs)


@FUZZ
@given(mutated(SEEDS), outputs_strategy)
def test_mutated_expressions(text: str, outputs: dict[str, Any]) -> None:
    check_expression(text, outputs)


@settings(FUZZ, max_examples=150)
@given(deep(), outputs_strategy)
def test_deeply_nested_expressions(text: str, outputs: dict[str, Any]) -> None:
    check_expression(text, outputs)


@settings(FUZZ, max_examples=50)
@given(st.text(min_size=MAX_EXPRESSION_CHARS - 50, max_size=5_000))
def test_huge_expressions(text: str) -> None:
    check_expression(text, {})


@FUZZ
@given(st.one_of(st.none(), st.integers(), st.lists(st.text()), st.binary()))
def test_non_text_expressions(value: Any) -> None:
    check_expression(value, {})


# --- arithmetic and comparison agree with Python on what Python also allows ---

numbers = st.integers(min_value=-50, max_value=50).map(str)


@st.composite
def arithmetic(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 4 or draw(st.booleans()):
        return draw(numbers)
    op = draw(st.sampled_from(["+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!="]))
    left = draw(arithmetic(depth + 1))
    right = draw(arithmetic(depth + 1))
    if op in "<=>=!=" and ("<" in left + right or ">" in left + right or "=" in left + right):
        op = "+"  # keep comparisons to one chain so Python and we agree on the shape
    return f"({left} {op} {right})"


@FUZZ
@given(arithmetic())
def test_evaluation_agrees_with_python(text: str) -> None:
    expression = parse_expression(text)
    try:
        expected = eval(text, {"__builtins__": {}})  # trusted: built from digits and operators
    except ArithmeticError:
        try:
            expression.evaluate({})
        except ExpressionError:
            return
        raise AssertionError(f"{text!r} should have failed") from None
    except TypeError:
        # Python allows bool arithmetic such as (1 < 2) + 1; the plan language does not.
        return
    try:
        value = expression.evaluate({})
    except ExpressionError:
        assert isinstance(expected, bool) or "<" in text or ">" in text or "=" in text
        return
    if isinstance(expected, float) and math.isnan(expected):
        assert isinstance(value, float) and math.isnan(value)
    else:
        assert value == expected


# --- references ----------------------------------------------------------------


@FUZZ
@given(st.text(max_size=300))
@example("$")
@example("$$$")
@example("${s1}.$s1..x$s1._y")
@example("$s1." + "x" * 5_000)
def test_parse_template_never_raises(text: str) -> None:
    template = parse_template(text)
    for part in template.parts:
        assert isinstance(part, str | Reference)
    assert all(isinstance(e, str) and e for e in template.errors)


@FUZZ
@given(st.text(max_size=200))
def test_escaped_text_is_literal(text: str) -> None:
    escaped = text.replace("$", "$$")
    template = parse_template(escaped)
    assert template.errors == ()
    assert template.references == ()
    assert resolve_value(escaped, {}) == text


@FUZZ
@given(step_ids, st.lists(segments, max_size=5))
def test_whole_references_round_trip(step_id: str, path: list[str]) -> None:
    text = "$" + ".".join([step_id, *path])
    if any(segment.startswith("_") for segment in path):
        try:
            parse_reference(text)
        except UnknownReferenceError as exc:
            assert "never followed" in str(exc)
            return
        raise AssertionError(f"{text!r} should be rejected")
    reference = parse_reference(text)
    assert reference == Reference(step_id=step_id, path=tuple(path), text=text)


def text_with_references() -> st.SearchStrategy[str]:
    pieces = st.one_of(reference_texts, st.sampled_from(ODD), st.text(max_size=4))
    return st.lists(pieces, max_size=8).map("".join)


args_strategy = st.recursive(
    st.one_of(text_with_references(), json_leaves),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=4), children, max_size=4),
        st.tuples(children),
    ),
    max_leaves=15,
)


@FUZZ
@given(args_strategy, outputs_strategy)
def test_resolver_returns_a_value_or_our_errors(args: Any, outputs: dict[str, Any]) -> None:
    found = find_references(args)
    errors = find_reference_errors(args)
    assert all(isinstance(r, Reference) for r in found)
    try:
        resolve_value(args, outputs)
    except (UnknownReferenceError, UsageError) as exc:
        assert isinstance(exc, EngineError) and str(exc)
        return
    # resolving succeeded: every reference was well-formed and named an output
    assert errors == []
    assert all(r.step_id in outputs for r in found)


@FUZZ
@given(outputs_strategy, step_ids, st.lists(segments, max_size=4))
def test_references_into_generated_outputs(
    outputs: dict[str, Any], step_id: str, path: list[str]
) -> None:
    text = "$" + ".".join([step_id, *path])
    try:
        resolve_value(text, outputs)
        resolve_value(f"[{text}]", outputs)
    except UnknownReferenceError as exc:
        assert exc.reference
    outputs_with_step = {step_id: outputs.get(step_id, {"k": [1, 2]}), **outputs}
    try:
        resolve_value({"a": [text]}, outputs_with_step)
    except UnknownReferenceError as exc:
        assert exc.segment is None or exc.segment in path


@settings(FUZZ, max_examples=60)
@given(st.integers(min_value=1, max_value=3_000), st.sampled_from(["list", "dict", "tuple"]))
def test_deep_args_are_our_error(depth: int, kind: str) -> None:
    value: Any = "$s1"
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value} if kind == "dict" else (value,)
    find_references(value)
    find_reference_errors(value)
    try:
        resolve_value(value, {"s1": 1})
    except UsageError as exc:
        assert "nested deeper" in str(exc)
