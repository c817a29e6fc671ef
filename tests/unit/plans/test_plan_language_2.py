"""Plan language 2, validation: `map`, `$item`/`$index`, `inputs`/`$input`, sub-plans.

Table-driven: each case is a plan and every problem it has, in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from marimo_engine.errors import PlanValidationError
from marimo_engine.plans.dependencies import step_dependencies
from marimo_engine.plans.schema import load_plan
from marimo_engine.plans.subplans import PlanLibrary
from marimo_engine.plans.validation import check_plan, validate_plan
from marimo_engine.tools.registry import ToolRegistry


def files() -> list[str]:
    return ["a.csv", "b.csv"]


def size(path: str, position: int = 0) -> int:
    return len(path) + position


def total(values: list[int]) -> int:
    return sum(values)


TOOLS = ToolRegistry.from_mapping({"files": files, "size": size, "total": total})

CHILD = {
    "id": "child",
    "inputs": {"path": {"description": "a file"}, "extra": {"required": False, "default": 0}},
    "steps": [{"id": "c1", "tool": "size", "args": {"path": "$input.path"}, "output": True}],
}
LOOP_A = {"id": "A", "steps": [{"id": "a1", "plan": "B"}]}
LOOP_B = {"id": "B", "steps": [{"id": "b1", "plan": "A"}]}
SELF = {"id": "S", "steps": [{"id": "x", "plan": "S"}]}
BROKEN_CHILD = {"id": "bc", "steps": [{"id": "c1", "tool": "size", "args": {"path": "$c9"}}]}
LIBRARY = PlanLibrary({"child": CHILD, "A": LOOP_A, "B": LOOP_B, "S": SELF, "broken": BROKEN_CHILD})


def _plan(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"id": "p", **top, "steps": list(steps)}


FILES = {"id": "s1", "tool": "files"}


@dataclass(frozen=True)
class Case:
    id: str
    plan: Any
    expected: list[tuple[str | None, str | None, str, str]] = field(default_factory=list)
    """(step_id, field, code, message) of every problem, in order."""


CASES = [
    Case(
        "map-good",
        _plan(
            FILES,
            {
                "id": "s2",
                "tool": "size",
                "map": "$s1",
                "args": {"path": "$item", "position": "$index"},
                "run_if": "$item != 'skip.csv'",
                "intervention_if": "$s2 > 100",
                "map_concurrency": 4,
                "map_errors": "collect",
            },
        ),
    ),
    Case(
        "map-not-a-reference",
        _plan(FILES, {"id": "s2", "tool": "size", "map": "files of $s1", "args": {"path": "x"}}),
        [
            (
                "s2",
                "map",
                "invalid_map",
                "Step 's2': 'map' must be exactly one reference to a list, such as '$s1.files'; "
                "got 'files of $s1'.",
            )
        ],
    ),
    Case(
        "map-over-item",
        _plan({"id": "s2", "tool": "size", "map": "$item", "args": {"path": "x"}}),
        [
            (
                "s2",
                "map",
                "invalid_map",
                "Step 's2': 'map' cannot be '$item': $item and $index are the item being "
                "mapped; map over another step's output, such as '$s1.files'.",
            )
        ],
    ),
    Case(
        "map-fields-without-map",
        _plan(FILES, {"id": "s2", "tool": "total", "args": {"values": [1]}, "map_errors": "fail"}),
        [
            (
                "s2",
                "map_errors",
                "invalid_map",
                "Step 's2' has 'map_errors' but no 'map'; add 'map' (a reference to a list, such "
                "as '$s1.files') or remove 'map_errors'.",
            )
        ],
    ),
    Case(
        "map-over-a-sub-plan",
        _plan(FILES, {"id": "s2", "plan": "child", "map": "$s1", "args": {"path": "$item"}}),
        [
            (
                "s2",
                "map",
                "invalid_map",
                "Step 's2' maps a sub-plan; 'map' runs a tool once per item. Map a tool, or give "
                "the whole list to the sub-plan as an input.",
            )
        ],
    ),
    Case(
        "map-malformed-reference",
        _plan({"id": "s2", "tool": "size", "map": "${s1}", "args": {"path": "x"}}),
        [
            (
                "s2",
                "map",
                "unknown_reference",
                "Step 's2': The '$' at position 0 of '${s1}' is followed by '{'; a reference is "
                "'$step_id' or '$step_id.path' (write '$$' for a literal '$').",
            )
        ],
    ),
    Case(
        "map-names-itself",
        _plan({"id": "s2", "tool": "size", "map": "$s2", "args": {"path": "$item"}}),
        [
            (
                "s2",
                "map",
                "self_reference",
                "Step 's2' refers to its own output ('$s2') in map, which does not exist before "
                "the step runs. Refer to another step, or move the test to expect or "
                "intervention_if, which run after the step.",
            )
        ],
    ),
    Case(
        "map-names-an-unknown-step",
        _plan({"id": "s2", "tool": "size", "map": "$s9.files", "args": {"path": "$item"}}),
        [
            (
                "s2",
                "map",
                "unknown_reference",
                "Step 's2' refers to '$s9.files', but there is no step 's9'. Known steps: 's2'.",
            )
        ],
    ),
    Case(
        "item-outside-map",
        _plan(
            FILES,
            {"id": "s2", "tool": "size", "args": {"path": "$item"}, "run_if": "$index > 0"},
        ),
        [
            (
                "s2",
                "args.path",
                "item_outside_map",
                "Step 's2' uses '$item' in args.path, but it has no 'map'; $item and $index "
                "exist only in a step with 'map' (a reference to a list).",
            ),
            (
                "s2",
                "run_if",
                "item_outside_map",
                "Step 's2' uses '$index' in run_if, but it has no 'map'; $item and $index exist "
                "only in a step with 'map' (a reference to a list).",
            ),
        ],
    ),
    Case(
        "index-has-no-fields",
        _plan(FILES, {"id": "s2", "tool": "size", "map": "$s1", "args": {"path": "$index.x"}}),
        [
            (
                "s2",
                "args.path",
                "unknown_reference",
                "Step 's2': '$index.x' looks into $index, which is a number (the item's "
                "position, from 0); write '$index'.",
            )
        ],
    ),
    Case(
        "reserved-step-id",
        _plan({"id": "item", "tool": "files"}),
        [
            (
                "item",
                "id",
                "invalid_id",
                "Step id 'item' is reserved: '$item' means something else in references "
                "(index, input, item, self are reserved). Rename the step, such as to "
                "'item_step'.",
            )
        ],
    ),
    Case(
        "inputs-good",
        _plan(
            {"id": "s1", "tool": "size", "args": {"path": "$input.path"}},
            inputs={"path": {"description": "a CSV file"}},
        ),
    ),
    Case(
        "unknown-input",
        _plan(
            {"id": "s1", "tool": "size", "args": {"path": "$input.pth"}, "run_if": "$input"},
            inputs={"path": {}},
        ),
        [
            (
                "s1",
                "args.path",
                "unknown_input",
                "Step 's1' refers to '$input.pth', but the plan has no input 'pth'. Did you "
                "mean 'path'? The plan's inputs: 'path'; declare it in the plan's 'inputs'.",
            ),
            (
                "s1",
                "run_if",
                "unknown_input",
                "Step 's1' uses '$input' in run_if; name one input, such as '$input.NAME'. The "
                "plan's inputs: 'path'.",
            ),
        ],
    ),
    Case(
        "input-name-pattern",
        _plan({"id": "s1", "tool": "files"}, inputs={"a b": {}}),
        [
            (
                None,
                "inputs.a b",
                "invalid_plan",
                "The plan's input name 'a b' must be 1-64 characters of A-Z a-z 0-9 _ - (it is "
                "read as '$input.NAME').",
            )
        ],
    ),
    Case(
        "subplan-good",
        _plan(FILES, {"id": "s2", "plan": "child", "args": {"path": "$s1.0"}}),
    ),
    Case(
        "subplan-unknown",
        _plan({"id": "s2", "plan": "chlid"}),
        [
            (
                "s2",
                "plan",
                "unknown_plan",
                "Step 's2': There is no plan 'chlid'. Did you mean 'child'? Plans: 'child', "
                "'A', 'B', 'S', 'broken', 'air-report', 'breach-response', 'hull-check-7', "
                "'oxygen-watch', 'seattle-weather'; or name a plan file next to this plan, such "
                "as 'clean.json'.",
            )
        ],
    ),
    Case(
        "subplan-args-are-its-inputs",
        _plan({"id": "s2", "plan": "child", "args": {"pth": "x"}}),
        [
            (
                "s2",
                "args.pth",
                "invalid_args",
                "Step 's2': the sub-plan 'child' has no input 'pth'. Its inputs: 'path', 'extra'.",
            ),
            (
                "s2",
                "args",
                "invalid_args",
                "Step 's2': the sub-plan 'child' needs the input 'path'; add it to 'args'.",
            ),
        ],
    ),
    Case(
        "subplan-recursion",
        _plan({"id": "s1", "plan": "A"}),
        [
            (
                "s1",
                "plan",
                "recursive_plan",
                "In the sub-plan 'A': step 'a1', field 'plan': In the sub-plan 'B': step 'b1', "
                "field 'plan': Step 'b1' runs the plan 'A', which is already running above it "
                "(A -> B -> A); a plan cannot run itself. Remove this step or run another plan.",
            )
        ],
    ),
    Case(
        "subplan-own-problems",
        _plan({"id": "s1", "plan": "broken"}),
        [
            (
                "s1",
                "plan",
                "unknown_reference",
                "In the sub-plan 'broken': step 'c1', field 'args.path': Step 'c1' refers to "
                "'$c9', but there is no step 'c9'. Known steps: 'c1'.",
            )
        ],
    ),
    Case(
        "subplan-step-takes-no-tool-call-options",
        _plan({"id": "s2", "plan": "child", "args": {"path": "x"}, "retries": 2, "timeout_s": 5.0}),
        [
            (
                "s2",
                "timeout_s",
                "invalid_plan",
                "Step 's2' runs a sub-plan, which takes no 'timeout_s'; set it on the sub-plan's "
                "steps instead, or remove it.",
            ),
            (
                "s2",
                "retries",
                "invalid_plan",
                "Step 's2' runs a sub-plan, which takes no 'retries'; set it on the sub-plan's "
                "steps instead, or remove it.",
            ),
        ],
    ),
    Case(
        "neither-tool-nor-plan",
        _plan({"id": "s1"}),
        [
            (
                "s1",
                "tool",
                "invalid_plan",
                "Step 's1' has no 'tool'; add it: a tool name (or 'plan': a sub-plan to run, "
                "or 'markdown': a text to show).",
            )
        ],
    ),
    Case(
        "both-tool-and-plan",
        _plan({"id": "s1", "tool": "files", "plan": "child"}),
        [
            (
                "s1",
                "plan",
                "invalid_plan",
                "Step 's1' has both 'tool' and 'plan'; a step calls a tool, runs a sub-plan or "
                "shows a markdown text: keep one.",
            )
        ],
    ),
    Case(
        "map-field-types",
        _plan(
            FILES,
            {
                "id": "s2",
                "tool": "size",
                "map": "$s1",
                "args": {"path": "$item"},
                "map_concurrency": 0,
                "map_errors": "ignore",
            },
        ),
        [
            (
                "s2",
                "map_concurrency",
                "invalid_plan",
                "Step 's2': 'map_concurrency' must be an integer of at least 1; got 0 (an "
                "integer).",
            ),
            (
                "s2",
                "map_errors",
                "invalid_plan",
                "Step 's2': 'map_errors' must be 'fail' or 'collect'; got 'ignore' (a string).",
            ),
        ],
    ),
]

COVERED = {code for case in CASES for _, _, code, _ in case.expected}
"""The problem codes these cases cover (test_validation checks every code is covered)."""


def _tuples(problems: list[Any]) -> list[tuple[str | None, str | None, str, str]]:
    return [(p.step_id, p.field, p.code.value, p.message) for p in problems]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_plan(case: Case) -> None:
    assert _tuples(validate_plan(case.plan, TOOLS, plans=LIBRARY)) == case.expected


def test_the_new_codes_are_covered() -> None:
    assert {
        "invalid_map",
        "item_outside_map",
        "unknown_input",
        "unknown_plan",
        "recursive_plan",
    } <= COVERED


def test_map_is_a_dependency_and_item_input_are_not() -> None:
    plan = load_plan(
        _plan(
            FILES,
            {"id": "s2", "tool": "size", "map": "$s1", "args": {"path": "$item"}},
            {"id": "s3", "tool": "size", "args": {"path": "$input.path"}},
            inputs={"path": {}},
        )
    )
    assert step_dependencies(plan) == {"s1": (), "s2": ("s1",), "s3": ()}


def test_a_plan_file_next_to_the_parent_and_recursion_through_files(tmp_path: Path) -> None:
    (tmp_path / "child.json").write_text(json.dumps(CHILD))
    (tmp_path / "loop.json").write_text(
        json.dumps({"id": "loop", "steps": [{"id": "again", "plan": "./loop.json"}]})
    )
    library = PlanLibrary(base_dir=tmp_path)
    good = _plan(FILES, {"id": "s2", "plan": "child.json", "args": {"path": "$s1.0"}})
    assert check_plan(good, TOOLS, plans=library).step("s2").plan == "child.json"
    problems = validate_plan(_plan({"id": "s1", "plan": "loop.json"}), TOOLS, plans=library)
    assert [(p.step_id, p.field, p.code.value) for p in problems] == [
        ("s1", "plan", "recursive_plan")
    ]
    assert "(loop.json -> loop.json)" in problems[0].message
    missing = validate_plan(_plan({"id": "s1", "plan": "gone.json"}), TOOLS, plans=library)
    assert missing[0].code.value == "unknown_plan"
    assert str(tmp_path / "gone.json") in missing[0].message


def test_a_sub_plan_file_that_is_not_a_plan(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"steps": []}')
    problems = validate_plan(
        _plan({"id": "s1", "plan": "bad.json"}), TOOLS, plans=PlanLibrary(base_dir=tmp_path)
    )
    assert _tuples(problems) == [
        (
            "s1",
            "plan",
            "invalid_plan",
            "Step 's1': the sub-plan 'bad.json' is not a plan: field 'steps': The plan's "
            "'steps' list is empty; add at least one step.",
        )
    ]


def test_load_plan_reports_the_step_kind_and_input_fields() -> None:
    with pytest.raises(PlanValidationError, match=r"The plan's input 'x' has an unknown field"):
        load_plan(_plan({"id": "s1", "tool": "files"}, inputs={"x": {"defualt": 1}}))
    with pytest.raises(PlanValidationError, match=r"has no 'tool'"):
        load_plan(_plan({"id": "s1", "map": "$s0"}))
