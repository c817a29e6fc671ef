"""Kernel code templates: values go in as JSON literals, never as code; replies parse back."""

from __future__ import annotations

import ast
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marimo_engine.errors import UsageError
from marimo_engine.live.templates import (
    MARKER_PREFIX,
    TEMPLATE_NAMES,
    new_marker,
    parse_reply,
    render,
    strip_reply,
)

HOSTILE = [
    '"); import os; os.system("echo pwned") #',
    "'''\n\"\"\"\nraise SystemExit",
    "\\x00\\n\\\\",
    "__ME_ARGS__ __ME_MARKER__",
    "{}{0}%s",
    "line\nbreak\r\n\u2028",
]


def _args_literal(code: str) -> str:
    """Return the string constant passed to `_me_json.loads(...)` in rendered code."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "loads"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "_me_json"
        ):
            (arg,) = node.args
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            return arg.value
    raise AssertionError("no _me_json.loads(...) call")


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_template_compiles_with_top_level_await(name: str) -> None:
    code = render(name, {"anything": 1}, marker=new_marker())
    compile(code, f"<{name}>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_values_stay_data(text: str) -> None:
    args = {"ops": [{"op": "create", "code": text, "name": text}], "force": False}
    code = render("batch", args, marker=new_marker())
    assert json.loads(_args_literal(code)) == args
    calls = {
        node.func.attr
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert "system" not in calls


@settings(max_examples=100, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=12,
))  # fmt: skip
def test_any_json_round_trips_through_the_literal(value: object) -> None:
    code = render("describe", {"name": value}, marker=new_marker())
    assert json.loads(_args_literal(code)) == {"name": value}


def test_render_refuses_bad_input() -> None:
    with pytest.raises(UsageError, match=r"Unknown template 'nope'\. Known: batch, cells"):
        render("nope", {}, marker=new_marker())
    with pytest.raises(UsageError, match="Bad reply marker"):
        render("cells", {}, marker="print('x')")
    with pytest.raises(UsageError, match="are not JSON"):
        render("cells", {"value": float("nan")}, marker=new_marker())
    with pytest.raises(UsageError, match="are not JSON"):
        render("cells", {"value": object()}, marker=new_marker())


def test_markers_are_fresh() -> None:
    first, second = new_marker(), new_marker()
    assert first != second
    assert first.startswith(MARKER_PREFIX) and first.endswith(":")


def test_parse_and_strip_reply() -> None:
    marker = new_marker()
    reply = {"ok": True, "result": [1, "two"]}
    stdout = f"cell output\n{marker}{json.dumps(reply)}\nafter\n"
    assert parse_reply(stdout, marker) == reply
    assert strip_reply(stdout, marker) == "cell output\nafter\n"
    assert parse_reply(stdout, new_marker()) is None  # another call's marker
    assert parse_reply("no reply at all", marker) is None
    assert parse_reply(f"{marker}{{broken", marker) is None
    assert parse_reply(f"{marker}[1, 2]", marker) is None  # not an object
    assert strip_reply("untouched", marker) == "untouched"
