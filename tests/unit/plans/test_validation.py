"""validate_plan / check_plan: every problem code, pinned messages, all at once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marimo_engine.errors import InvalidExpressionError, PlanValidationError, UsageError
from marimo_engine.examples import load_example
from marimo_engine.plans.expressions import parse_expression
from marimo_engine.plans.problems import Problem, ProblemCode
from marimo_engine.plans.schema import Plan, load_plan
from marimo_engine.plans.validation import check_plan, validate_plan
from marimo_engine.tools.examples import example_registry
from marimo_engine.tools.registry import ToolRegistry

HULL = "hull-check-7"


def _parse_error(text: str) -> str:
    """The expression parser's own message (pinned in its tests), which validation quotes."""
    with pytest.raises(InvalidExpressionError) as info:
        parse_expression(text)
    return str(info.value)


def _steps(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"id": "p", "steps": list(steps)}


def _o2(step_id: str = "s2", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": "check_oxygen", **extra}


@dataclass(frozen=True)
class Case:
    id: str
    plan: Any
    expected: list[tuple[str | None, str | None, str, str]]
    """(step_id, field, code, message) of every problem, in order."""
    with_tools: bool = True


CASES = [
    Case("spec-example-is-valid", load_example(HULL), []),
    Case(
        "invalid-plan-not-an-object",
        [1, 2],
        [
            (
                None,
                None,
                "invalid_plan",
                "A plan must be an object with a 'steps' list; got a list. "
                'Write {"steps": [{"id": "s1", "tool": "..."}]}.',
            )
        ],
    ),
    Case(
        "invalid-plan-bad-json",
        '{"steps": [',
        [
            (
                None,
                None,
                "invalid_plan",
                "The plan is not valid JSON: Expecting value at line 1, column 12. Fix the JSON "
                "there (quote keys and strings with double quotes, no trailing commas).",
            )
        ],
    ),
    Case(
        "invalid-plan-no-steps",
        {"id": "p", "steps": []},
        [
            (
                None,
                "steps",
                "invalid_plan",
                "The plan's 'steps' list is empty; add at least one step.",
            )
        ],
    ),
    Case(
        "invalid-plan-unknown-field-and-range-at-once",
        _steps(_o2("s1", tiemout_s=3), _o2("s2", retries=11, timeout_s=0)),
        [
            (
                "s1",
                "tiemout_s",
                "invalid_plan",
                "Step 's1' has an unknown field 'tiemout_s'. Did you mean 'timeout_s'? Allowed "
                "fields: 'id', 'tool', 'description', 'args', 'run_if', 'intervention_if', "
                "'key_finding', 'depends_on', 'timeout_s', 'retries', 'requires_approval', "
                "'map', 'map_concurrency', 'map_errors', 'plan', 'output', 'expect', 'schema', "
                "'markdown'.",
            ),
            (
                "s2",
                "timeout_s",
                "invalid_plan",
                "Step 's2': 'timeout_s' must be a number of seconds greater than 0; got 0 "
                "(an integer).",
            ),
            (
                "s2",
                "retries",
                "invalid_plan",
                "Step 's2': 'retries' must be an integer from 0 to 10; got 11 (an integer).",
            ),
        ],
    ),
    Case(
        "invalid-id",
        _steps(_o2("s 1")),
        [
            (
                None,
                "steps.0.id",
                "invalid_id",
                "The step at index 0 has the id 's 1' (a string); a step id must be 1-64 "
                "characters of A-Z a-z 0-9 _ -, such as 's_1'.",
            )
        ],
    ),
    Case(
        "duplicate-id",
        _steps(_o2("s1"), _o2("s2"), _o2("s1")),
        [
            (
                "s1",
                "id",
                "duplicate_id",
                "Step id 's1' is used by the steps at index 0 and 2; ids must be unique: "
                "rename the second one, such as to 's1_2'.",
            )
        ],
    ),
    Case(
        "unknown-tool-suggests-close-names",
        _steps({"id": "s1", "tool": "scan_hul"}),
        [
            (
                "s1",
                "tool",
                "unknown_tool",
                "Tool 'scan_hul' is not registered. Did you mean 'scan_hull'?",
            )
        ],
    ),
    Case(
        "unknown-tool-lists-registered-when-nothing-is-close",
        _steps({"id": "s1", "tool": "launch_probe"}),
        [
            (
                "s1",
                "tool",
                "unknown_tool",
                "Tool 'launch_probe' is not registered. Registered tools: "
                "'analyze_atmosphere', 'check_oxygen', 'scan_hull'.",
            )
        ],
    ),
    Case(
        "unknown-reference-in-args-lists-known-steps",
        _steps(
            {"id": "s1", "tool": "scan_hull"},
            _o2(),
            {"id": "s3", "tool": "analyze_atmosphere", "args": {"o2_level": "$s9.level"}},
        ),
        [
            (
                "s3",
                "args.o2_level",
                "unknown_reference",
                "Step 's3' refers to '$s9.level', but there is no step 's9'. "
                "Known steps: 's1', 's2', 's3'.",
            )
        ],
    ),
    Case(
        "unknown-reference-suggests-close-ids",
        _steps(
            _o2("oxygen"),
            {
                "id": "air",
                "tool": "analyze_atmosphere",
                "args": {"o2_level": "$oxygn.level"},
            },
        ),
        [
            (
                "air",
                "args.o2_level",
                "unknown_reference",
                "Step 'air' refers to '$oxygn.level', but there is no step 'oxygn'. "
                "Did you mean 'oxygen'? Known steps: 'oxygen', 'air'.",
            )
        ],
    ),
    Case(
        "unknown-reference-in-run-if-intervention-if-and-depends-on",
        _steps(_o2("s1", run_if="$x.level > 1", intervention_if="$y.level < 2", depends_on=["z"])),
        [
            (
                "s1",
                "run_if",
                "unknown_reference",
                "Step 's1' refers to '$x.level', but there is no step 'x'. Known steps: 's1'.",
            ),
            (
                "s1",
                "intervention_if",
                "unknown_reference",
                "Step 's1' refers to '$y.level', but there is no step 'y'. Known steps: 's1'.",
            ),
            (
                "s1",
                "depends_on.0",
                "unknown_reference",
                "Step 's1' depends on 'z', but there is no step 'z'. Known steps: 's1'.",
            ),
        ],
    ),
    Case(
        "malformed-reference-in-args",
        _steps(
            {"id": "s1", "tool": "scan_hull"},
            {"id": "s3", "tool": "analyze_atmosphere", "args": {"o2_level": "$s1._secret"}},
        ),
        [
            (
                "s3",
                "args.o2_level",
                "unknown_reference",
                "Step 's3': Reference '$s1._secret' follows '_secret'; names that start with "
                "'_' are never followed. Name a public key or field instead.",
            )
        ],
    ),
    Case(
        "self-reference-in-args",
        _steps({"id": "s3", "tool": "analyze_atmosphere", "args": {"o2_level": "$s3.o2_level"}}),
        [
            (
                "s3",
                "args.o2_level",
                "self_reference",
                "Step 's3' refers to its own output ('$s3.o2_level') in args.o2_level, which "
                "does not exist before the step runs. Refer to another step, or move the test "
                "to expect or intervention_if, which run after the step.",
            )
        ],
    ),
    Case(
        "self-reference-in-run-if",
        _steps(_o2("s2", run_if="$s2.level < 15")),
        [
            (
                "s2",
                "run_if",
                "self_reference",
                "Step 's2' refers to its own output ('$s2.level') in run_if, which does not "
                "exist before the step runs. Refer to another step, or move the test to "
                "expect or intervention_if, which run after the step.",
            )
        ],
    ),
    Case(
        "self-reference-in-intervention-if-is-allowed",
        _steps(_o2("s2", intervention_if="$s2.level < 15")),
        [],
    ),
    Case(
        "self-reference-in-depends-on",
        _steps(_o2("s2", depends_on=["s2"])),
        [
            (
                "s2",
                "depends_on.0",
                "self_reference",
                "Step 's2' lists itself in depends_on; a step cannot wait for itself. "
                "Remove 's2' from depends_on.",
            )
        ],
    ),
    Case(
        "cycle-names-the-steps-in-order",
        _steps(
            {"id": "a", "tool": "analyze_atmosphere", "args": {"o2_level": "$b.level"}},
            _o2("b", run_if="$c.level > 1"),
            _o2("c", depends_on=["a"]),
        ),
        [
            (
                "a",
                "args.o2_level",
                "cycle",
                "The steps a -> b -> c -> a form a cycle: 'a' needs 'b' (args.o2_level); "
                "'b' needs 'c' (run_if); 'c' needs 'a' (depends_on). Remove one of these "
                "dependencies so that the steps can run in order.",
            )
        ],
    ),
    Case(
        "cycle-through-intervention-if-of-another-step",
        _steps(_o2("a", intervention_if="$b.level < 1"), _o2("b", depends_on=["a"])),
        [
            (
                "a",
                "intervention_if",
                "cycle",
                "The steps a -> b -> a form a cycle: 'a' needs 'b' (intervention_if); "
                "'b' needs 'a' (depends_on). Remove one of these dependencies so that the "
                "steps can run in order.",
            )
        ],
    ),
    Case(
        "invalid-expression",
        _steps(_o2("s1"), _o2("s2", run_if="$s1.level ** 2 > 4")),
        [
            (
                "s2",
                "run_if",
                "invalid_expression",
                "Step 's2', run_if: " + _parse_error("$s1.level ** 2 > 4"),
            )
        ],
    ),
    Case(
        "invalid-args-unknown-argument",
        _steps(_o2("s1", args={"simulated_levl": 10})),
        [
            (
                "s1",
                "args.simulated_levl",
                "invalid_args",
                "Step 's1': Tool 'check_oxygen' has no argument 'simulated_levl'. "
                "Did you mean 'simulated_level'?",
            )
        ],
    ),
    Case(
        "invalid-args-missing-required",
        _steps({"id": "s3", "tool": "analyze_atmosphere"}),
        [
            (
                "s3",
                "args.o2_level",
                "invalid_args",
                "Step 's3': Tool 'analyze_atmosphere' requires argument 'o2_level' (float); "
                "add it to the step's args, as a literal or a reference such as "
                "'$step_id.field'.",
            )
        ],
    ),
    Case(
        "invalid-args-wrong-literal-type",
        _steps({"id": "s1", "tool": "scan_hull", "args": {"sections": "bow"}}),
        [
            (
                "s1",
                "args.sections",
                "invalid_args",
                "Step 's1': Argument 'sections' of tool 'scan_hull' expects list[str] | None, "
                "but got 'bow': Input should be a valid array. Change the literal or pass a "
                "reference.",
            )
        ],
    ),
    Case(
        "references-are-not-type-checked",
        _steps(
            _o2("s2"),
            {
                "id": "s3",
                "tool": "analyze_atmosphere",
                "args": {"o2_level": "$s2.level", "context": "O2 at $s2.level %, cost $$0"},
            },
        ),
        [],
    ),
    Case(
        "without-tools-names-and-args-are-not-checked",
        _steps({"id": "s1", "tool": "anything", "args": {"whatever": 1}}),
        [],
        with_tools=False,
    ),
    Case(
        "steps-that-parse-are-checked-when-the-plan-does-not",
        {
            "id": "p",
            "nmae": "typo",
            "steps": [
                {"id": "s1", "tool": "scan_hul"},
                {"id": "s2", "tool": "check_oxygen", "retries": "3", "run_if": "$s9 > 1"},
                {"id": "s1", "tool": "check_oxygen"},
                {"id": "bad id!", "tool": "check_oxygen"},
            ],
        },
        [
            (
                "s2",
                "retries",
                "invalid_plan",
                "Step 's2': 'retries' must be an integer from 0 to 10; got '3' (a string).",
            ),
            (
                None,
                "steps.3.id",
                "invalid_id",
                "The step at index 3 has the id 'bad id!' (a string); a step id must be 1-64 "
                "characters of A-Z a-z 0-9 _ -, such as 'bad_id'.",
            ),
            (
                None,
                "nmae",
                "invalid_plan",
                "The plan has an unknown field 'nmae'. Did you mean 'name'? Allowed fields: "
                "'id', 'name', 'steps', 'inputs'.",
            ),
            (
                "s1",
                "id",
                "duplicate_id",
                "Step id 's1' is used by the steps at index 0 and 2; ids must be unique: "
                "rename the second one, such as to 's1_2'.",
            ),
            (
                "s1",
                "tool",
                "unknown_tool",
                "Tool 'scan_hul' is not registered. Did you mean 'scan_hull'?",
            ),
            (
                "s2",
                "run_if",
                "unknown_reference",
                "Step 's2' refers to '$s9', but there is no step 's9'. Known steps: 's1', 's2'.",
            ),
        ],
    ),
]


def _tuples(problems: list[Problem]) -> list[tuple[str | None, str | None, str, str]]:
    return [(p.step_id, p.field, p.code.value, p.message) for p in problems]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_plan(case: Case) -> None:
    tools = example_registry() if case.with_tools else None
    assert _tuples(validate_plan(case.plan, tools)) == case.expected


def test_every_problem_code_is_covered_by_a_case() -> None:
    from tests.unit.plans.test_plan_language_2 import COVERED

    from .test_contracts_markdown import CONTRACT_CASES

    covered = {code for case in [*CASES, *CONTRACT_CASES] for _, _, code, _ in case.expected}
    covered |= COVERED
    assert covered == {code.value for code in ProblemCode}


def test_every_problem_at_once_from_a_model_written_plan() -> None:
    plan = _steps(
        {"id": "s1", "tool": "scan_hul", "args": {"sections": "$s1.sections"}},
        _o2("s2", run_if="len($s1) > 0", args={"simulated_level": "low"}),
        {"id": "s3", "tool": "analyze_atmosphere", "args": {"o2": "$s4.level"}},
    )
    codes = [p.code.value for p in validate_plan(plan, example_registry())]
    assert codes == [
        "unknown_tool",
        "self_reference",
        "invalid_args",
        "invalid_expression",
        "unknown_reference",
        "invalid_args",
        "invalid_args",
    ]


def test_problems_serialise_to_json_for_the_model_that_wrote_the_plan() -> None:
    problems = validate_plan(_steps({"id": "s1", "tool": "scan_hul"}), example_registry())
    assert json.loads(json.dumps([p.model_dump(mode="json") for p in problems])) == [
        {
            "step_id": "s1",
            "field": "tool",
            "code": "unknown_tool",
            "message": "Tool 'scan_hul' is not registered. Did you mean 'scan_hull'?",
        }
    ]


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(lambda: load_example(HULL), id="dict"),
        pytest.param(lambda: json.dumps(load_example(HULL)), id="json-str"),
        pytest.param(lambda: json.dumps(load_example(HULL)).encode(), id="json-bytes"),
        pytest.param(lambda: load_plan(load_example(HULL)), id="model"),
    ],
)
def test_check_plan_accepts_every_source_form(source: Any) -> None:
    plan = check_plan(source(), example_registry())
    assert isinstance(plan, Plan)
    assert plan.id == HULL
    assert plan.step_ids == ["s1", "s2", "s3"]


def test_check_plan_returns_the_same_model() -> None:
    plan = load_plan(load_example(HULL))
    assert check_plan(plan, example_registry()) is plan


def test_check_plan_raises_with_every_problem() -> None:
    plan = _steps({"id": "s1", "tool": "scan_hul"}, _o2("s2", run_if="$s2.level < 1"))
    with pytest.raises(
        PlanValidationError,
        match=r"^The plan has 2 problems: step 's1', field 'tool': Tool 'scan_hul' is not "
        r"registered\. Did you mean 'scan_hull'\?; step 's2', field 'run_if': Step 's2' refers",
    ) as info:
        check_plan(plan, example_registry())
    assert [p["code"] for p in info.value.problems_json()] == ["unknown_tool", "self_reference"]


def test_tools_may_be_a_mapping_of_callables() -> None:
    def scan_hull() -> dict[str, bool]:
        """A stand-in scanner with no arguments."""
        return {"breach_detected": False}

    from marimo_engine import validate_plan as public_validate_plan

    plan = _steps({"id": "s1", "tool": "scan_hull", "args": {"sections": ["bow"]}})
    assert _tuples(public_validate_plan(plan, {"scan_hull": scan_hull})) == [
        (
            "s1",
            "args.sections",
            "invalid_args",
            "Step 's1': Tool 'scan_hull' has no argument 'sections'. It takes no arguments; "
            "remove 'args'.",
        )
    ]
    with pytest.raises(UsageError, match=r"tools must be a ToolRegistry or a mapping"):
        public_validate_plan(plan, [scan_hull])  # type: ignore[arg-type]
    # plans.validation itself takes a catalog (a registry), never building one.
    with pytest.raises(UsageError, match=r"marimo_engine.validate_plan accepts both"):
        validate_plan(plan, {"scan_hull": scan_hull})  # type: ignore[arg-type]


def test_an_empty_registry_reports_every_tool() -> None:
    problems = validate_plan(load_example(HULL), ToolRegistry())
    assert [(p.step_id, p.code.value) for p in problems] == [
        ("s1", "unknown_tool"),
        ("s2", "unknown_tool"),
        ("s3", "unknown_tool"),
    ]
    assert problems[0].message == "Tool 'scan_hull' is not registered. No tools are registered."


@pytest.mark.parametrize("name", ["hull-check-7", "breach-response", "oxygen-watch"])
def test_example_plans_validate_cleanly_against_the_example_tools(name: str) -> None:
    assert validate_plan(load_example(name), example_registry()) == []


def test_hull_check_7_is_the_spec_example_verbatim() -> None:
    assert load_example(HULL) == {
        "id": "hull-check-7",
        "name": "Hull and air diagnostics",
        "steps": [
            {"id": "s1", "tool": "scan_hull", "description": "Scan the hull"},
            {
                "id": "s2",
                "tool": "check_oxygen",
                "key_finding": True,
                "intervention_if": "$s2.level < 15",
            },
            {
                "id": "s3",
                "tool": "analyze_atmosphere",
                "args": {"o2_level": "$s2.level"},
                "run_if": "$s1.breach_detected or $s2.level < 19.5",
            },
        ],
    }


def test_long_cycles_are_shortened_in_the_message() -> None:
    count = 40
    steps = [_o2(f"s{i}", depends_on=[f"s{(i + 1) % count}"]) for i in range(count)]
    (problem,) = validate_plan(_steps(*steps))
    assert problem.code is ProblemCode.CYCLE
    assert problem.step_id == "s0"
    assert problem.message == (
        "The steps s0 -> s1 -> s2 -> s3 -> s4 -> s5 -> s6 -> s7 -> s8 -> s9 -> s10 -> s11 -> "
        "s12 -> s13 -> s14 -> s15 -> s16 -> s17 -> s18 -> s19 -> s20 -> s21 -> s22 -> s23 -> "
        "s24 -> … (10 more steps) -> s35 -> s36 -> s37 -> s38 -> s39 -> s0 form a cycle of 40 "
        "steps ('s0' needs 's1' in depends_on). Remove one of these dependencies so that the "
        "steps can run in order."
    )


def _chain(count: int) -> dict[str, Any]:
    steps = [{"id": "s0", "tool": "analyze_atmosphere", "args": {"o2_level": 20.9}}] + [
        {
            "id": f"s{i}",
            "tool": "analyze_atmosphere",
            "args": {"o2_level": f"$s{i - 1}.o2_level", "context": f"after $s{i - 1}"},
            "run_if": f"$s{i - 1}.o2_level < 19.5",
            "intervention_if": f"$s{i}.status == 'critical'",
        }
        for i in range(1, count)
    ]
    return _steps(*steps)


def test_a_3000_step_plan_is_valid() -> None:
    assert validate_plan(_chain(3000), example_registry()) == []


def _broken_chain(count: int) -> dict[str, Any]:
    plan = _chain(count)
    for step in plan["steps"]:
        step.setdefault("args", {})["typo"] = "$nowhere"
    plan["steps"][0]["depends_on"] = [f"s{count - 1}"]
    return plan


def test_a_plan_with_a_problem_in_every_step_is_fully_reported() -> None:
    problems = validate_plan(_broken_chain(3000), example_registry())
    assert [p.code.value for p in problems].count("unknown_reference") == 3000
    assert [p.code.value for p in problems].count("invalid_args") == 3000
    assert problems[-1].code is ProblemCode.CYCLE


def test_a_broken_plan_builds_the_known_steps_hint_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validating a broken plan is linear: the listing of known steps is built once,
    and close names are looked up within a fixed budget of comparisons."""
    import builtins
    import difflib

    from marimo_engine.plans import validation

    counts = {"repr": 0, "compared": 0}
    real_matches = difflib.get_close_matches

    def counting_repr(value: object) -> str:
        counts["repr"] += 1
        return builtins.repr(value)

    def counting_matches(word: str, possibilities: list[str], *args: Any, **kw: Any) -> Any:
        if len(possibilities) == 6000:  # step ids, not a tool's parameter names
            counts["compared"] += len(possibilities)
        return real_matches(word, possibilities, *args, **kw)

    monkeypatch.setattr(validation, "repr", counting_repr, raising=False)
    monkeypatch.setattr(difflib, "get_close_matches", counting_matches)
    problems = validate_plan(_broken_chain(6000), example_registry())
    unknown = [p for p in problems if p.code is ProblemCode.UNKNOWN_REFERENCE]
    assert len(unknown) == 6000
    assert all("Known steps: 's0', 's1'," in p.message for p in unknown)
    assert all(p.message.endswith("… (6000 in all).") for p in unknown)
    lookups = validation._SUGGESTION_BUDGET // 6000
    # The 20 listed ids once, and up to 3 close names per lookup: nothing per problem.
    assert counts["repr"] <= validation._MAX_LISTED_STEPS + 3 * lookups, counts
    assert 0 < counts["compared"] <= validation._SUGGESTION_BUDGET


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["s1", "s2", "$s1", "$s2.level", "$s1.x.0", "$", "$$", "a $s2 b", "$s9", "_"])
    | st.sampled_from(["\ud800", "a\udfffb", "x\nimport os\n#", "\x00"])
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
_STEP_FIELDS = [
    "id",
    "tool",
    "description",
    "args",
    "run_if",
    "intervention_if",
    "key_finding",
    "depends_on",
    "timeout_s",
    "retries",
    "bogus",
]
_EXPRESSIONS = st.sampled_from(
    ["$s1.level < 15", "$s2 and not $s1", "f(1)", "$s1 **", "1 +", "$s1.level in [1, 2]", ""]
)


@st.composite
def _mutated_plans(draw: st.DrawFn) -> object:
    plan = load_example(HULL)
    for _ in range(draw(st.integers(0, 4))):
        steps = plan["steps"]
        index = draw(st.integers(0, len(steps) - 1)) if steps else 0
        action = draw(st.sampled_from(["set", "drop", "dup", "expr", "plan"]))
        if action == "set" and steps and isinstance(steps[index], dict):
            steps[index][draw(st.sampled_from(_STEP_FIELDS))] = draw(_JSON)
        elif action == "drop" and steps and isinstance(steps[index], dict):
            steps[index].pop(draw(st.sampled_from(_STEP_FIELDS)), None)
        elif action == "dup" and steps:
            steps.append(json.loads(json.dumps(steps[index])))
        elif action == "expr" and steps and isinstance(steps[index], dict):
            field = draw(st.sampled_from(["run_if", "intervention_if"]))
            steps[index][field] = draw(_EXPRESSIONS)
        elif action == "plan":
            plan[draw(st.sampled_from(["id", "name", "steps", "extra", "$schema"]))] = draw(_JSON)
            if not isinstance(plan.get("steps"), list):
                break
    return draw(st.sampled_from([plan, json.dumps(plan), draw(_JSON)]))


@given(_mutated_plans())
@settings(max_examples=150, deadline=None)
def test_validation_of_any_mutated_plan_returns_problems_and_never_raises(plan: object) -> None:
    problems = validate_plan(plan, example_registry())  # type: ignore[arg-type]
    assert all(isinstance(p, Problem) for p in problems)
    json.dumps([p.model_dump(mode="json") for p in problems], ensure_ascii=False).encode()
    if problems:
        with pytest.raises(PlanValidationError):
            check_plan(plan, example_registry())  # type: ignore[arg-type]
    else:
        assert isinstance(check_plan(plan, example_registry()), Plan)  # type: ignore[arg-type]


def test_null_args_and_depends_on_mean_none() -> None:
    plan = {"steps": [{"id": "a", "tool": "t", "args": None, "depends_on": None}]}
    assert validate_plan(plan) == []


def test_a_bytes_step_id_is_a_problem_not_a_crash() -> None:
    problems = validate_plan({"steps": [{"id": b"a", "tool": "t", "timeout_s": -1}]})
    assert [(p.code, p.field) for p in problems] == [
        ("invalid_id", "steps.0.id"),
        ("invalid_plan", "steps.0.timeout_s"),
    ]
