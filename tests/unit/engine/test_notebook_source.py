"""Plan text in notebook source is inert: one escaping function, whatever the strings hold.

The check for "no injected statement": a notebook compiled from a plan full
of hostile strings must have the same syntax tree as one compiled from the
same plan with every string replaced by a harmless one, once the values of
string constants are set aside. A string that escaped its literal (or a
comment) would add or change statements and fail the comparison.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from marimo_engine import PlanValidationError, plan_to_notebook
from marimo_engine.engine.compiler import compile_plan, python_string
from marimo_engine.plans.document import has_lone_surrogate
from tests.processes import run_process

from . import notebook_tools

REPO = Path(__file__).resolve().parents[3]
TOOLS = {"record": notebook_tools.record}
BOUNDED = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

HOSTILE = [
    "x\nimport os; os.system('id')\n#",
    "\r__import__('os').system('id')\r",
    "'''\n\"\"\"\nraise SystemExit(3)\n\"\"\"'''",
    "\\",
    '"',
    "a\x00b",
    "\u2028print('pwned')\u2029",
    "\x0cimport os",
    "\ufeff",
    "`" * 50,
    "$$ {} % \\N{BULLET} \\x41",
    "é — 😀",
    "</script><script>alert(1)</script>",
]
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
printable_text = st.text(max_size=40)  # no lone surrogates: a plan could carry it


def hostile_plan(text: str, journal: str = "journal.txt") -> dict[str, Any]:
    """A plan with `text` in every string field a person or model may fill freely."""
    return {
        "id": text or "p",
        "name": text,
        "steps": [
            {
                "id": "s1",
                "tool": "record",
                "description": text,
                "args": {"journal": journal, "label": text.replace("$", "$$")},
            },
            {
                "id": "s2",
                "tool": "record",
                "description": text + "\n" + text,
                "args": {"journal": journal, "label": "after $s1.label"},
                "run_if": "$s1.level >= 0 or " + python_string(text.replace("$", "")),
                "depends_on": ["s1"],
            },
        ],
    }


def shape(source: str) -> str:
    """The syntax tree with the values of string constants set aside."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)


BASELINE = shape(plan_to_notebook(hostile_plan("plain"), TOOLS))


def expression_is_valid(text: str) -> bool:
    from marimo_engine.errors import InvalidExpressionError
    from marimo_engine.plans.expressions import parse_expression

    try:
        parse_expression("$s1.level >= 0 or " + python_string(text.replace("$", "")))
    except InvalidExpressionError:
        return False
    return True


# --- the escaping function ---------------------------------------------------------


@BOUNDED
@given(any_text, st.booleans())
@example("x\nimport os\n#", False)
@example('ends with a quote"', True)
@example("ends with a backslash\\", True)
@example('has """ inside', True)
@example("\r\n", True)
@example("\ud800", True)
def test_python_string_round_trips_any_text(text: str, block: bool) -> None:
    literal = python_string(text, block=block)
    tree = ast.parse(literal, mode="eval")
    assert isinstance(tree.body, ast.Constant)
    value = ast.literal_eval(literal)
    assert value == (f"\n{text}\n" if literal.startswith('r"""') else text)
    literal.encode("utf-8")  # a lone surrogate is written as an escape
    if not block:
        assert "\n" not in literal and "\r" not in literal  # may stand in a comment


def test_python_string_reads_a_str_subclass_as_plain_text() -> None:
    class Sneaky(str):
        def __repr__(self) -> str:
            return "__import__('os')"

    assert python_string(Sneaky("x")) == "'x'"


# --- whole notebooks -----------------------------------------------------------------


def test_the_repro_cannot_be_compiled() -> None:
    with pytest.raises(PlanValidationError, match=r"'tool' must be a tool name"):
        plan_to_notebook({"steps": [{"id": "s1", "tool": "x\nimport os; os.system('id')\n#"}]})


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_stay_data(text: str) -> None:
    if not expression_is_valid(text):
        pytest.skip("not a valid expression literal")
    source = plan_to_notebook(hostile_plan(text), TOOLS)
    assert shape(source) == BASELINE
    source.encode("utf-8")
    ir = compile_plan(hostile_plan(text), TOOLS)
    assert ir.plan.name == text


@BOUNDED
@given(any_text)
def test_any_text_compiles_to_the_same_statements_or_is_rejected(text: str) -> None:
    plan = hostile_plan(text)
    if has_lone_surrogate(text):
        with pytest.raises(PlanValidationError, match="lone surrogate"):
            plan_to_notebook(plan, TOOLS)
        return
    if not expression_is_valid(text):
        plan["steps"][1].pop("run_if")
        baseline_plan = hostile_plan("plain")
        baseline_plan["steps"][1].pop("run_if")
        baseline = shape(plan_to_notebook(baseline_plan, TOOLS))
    else:
        baseline = BASELINE
    source = plan_to_notebook(plan, TOOLS)
    assert shape(source) == baseline
    source.encode("utf-8")


@pytest.mark.integration
def test_a_hostile_notebook_runs_with_python_and_runs_only_the_plan(tmp_path: Path) -> None:
    text = "".join(t for t in HOSTILE if expression_is_valid(t))
    marker = tmp_path / "pwned"
    text += f"\nopen({str(marker)!r}, 'w')\n#\r__import__('pathlib').Path({str(marker)!r}).touch()"
    path = tmp_path / "nb.py"
    path.write_text(plan_to_notebook(hostile_plan(text, str(tmp_path / "j.txt")), TOOLS), "utf-8")
    ast.parse(path.read_text("utf-8"))
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    proc = run_process([sys.executable, str(path)], timeout_s=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    labels = (tmp_path / "j.txt").read_text("utf-8").split("\n")
    assert labels[0] == text.replace("\r", "\n").split("\n")[0]  # the label, as data


def test_markdown_of_a_huge_backtick_run_compiles_in_linear_time() -> None:
    """400,000 backticks took about 2 minutes (a quadratic search for the code span's
    fence); now well under a second. The bound is generous for a loaded machine."""
    import time

    text = "`" * 400_000
    started = time.monotonic()
    source = plan_to_notebook({"steps": [{"id": "s1", "tool": "t", "args": {"a": text}}]})
    assert time.monotonic() - started < 30.0
    assert "`" * 400_001 in source  # the fence is one longer than the longest run
    assert "`" * 400_002 not in source
