"""Plan language 2, part A: `expect`, `schema` and `markdown`, field by field, good and bad."""

from __future__ import annotations

from typing import Any

import pytest
from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

from marimo_engine.plans.dependencies import step_dependencies
from marimo_engine.plans.schema import Step, load_plan
from marimo_engine.plans.validation import validate_plan
from marimo_engine.tools.examples import example_registry

from .test_validation import Case, _o2, _parse_error, _steps, _tuples


class Row(TypedDict):
    """A tool's declared output (module level: type hints must resolve)."""

    rows: int
    name: str


CONTRACT_CASES = [
    # expect
    Case("expect-good", _steps(_o2("s2", expect=["$self.level > 0", "$s2.level < 100"])), []),
    Case("expect-one-string-is-a-list-of-one", _steps(_o2("s2", expect="$self.level > 0")), []),
    Case("expect-null-is-none", _steps(_o2("s2", expect=None)), []),
    Case(
        "expect-other-step-good",
        _steps(
            {"id": "s1", "tool": "scan_hull"},
            _o2("s2", expect=["$self.level > $s1.integrity_percent"]),
        ),
        [],
    ),
    Case(
        "expect-not-a-list",
        _steps(_o2("s2", expect=3)),
        [
            (
                "s2",
                "expect",
                "invalid_plan",
                "Step 's2': 'expect' must be a list of expressions, each in a string; got 3 "
                "(an integer).",
            )
        ],
    ),
    Case(
        "expect-invalid-expression",
        _steps(_o2("s2", expect=["$self.level > 0", "len($self) > 0"])),
        [
            (
                "s2",
                "expect.1",
                "invalid_expression",
                f"Step 's2', expect.1: {_parse_error('len($self) > 0')}",
            )
        ],
    ),
    Case(
        "expect-unknown-step",
        _steps(_o2("s2", expect=["$s9.level > 0"])),
        [
            (
                "s2",
                "expect.0",
                "unknown_reference",
                "Step 's2' refers to '$s9.level', but there is no step 's9'. Known steps: 's2'.",
            )
        ],
    ),
    Case(
        "self-outside-expect-is-a-self-reference",
        _steps(_o2("s2", run_if="$self.level > 0")),
        [
            (
                "s2",
                "run_if",
                "self_reference",
                "Step 's2' refers to its own output ('$self.level') in run_if, which does not "
                "exist before the step runs. Refer to another step, or move the test to expect "
                "or intervention_if, which run after the step.",
            )
        ],
    ),
    Case("self-in-intervention-if-good", _steps(_o2("s2", intervention_if="$self.level < 15")), []),
    Case(
        "self-is-a-reserved-id",
        _steps(_o2("self")),
        [
            (
                "self",
                "id",
                "invalid_id",
                "Step id 'self' is reserved: '$self' means something else in references "
                "(index, input, item, self are reserved). Rename the step, such as to "
                "'self_step'.",
            )
        ],
    ),
    # schema
    Case(
        "schema-good",
        _steps(_o2("s2", schema={"type": "object", "required": ["level"]})),
        [],
    ),
    Case(
        "schema-not-an-object",
        _steps(_o2("s2", schema="object")),
        [
            (
                "s2",
                "schema",
                "invalid_plan",
                "Step 's2': 'schema' must be a JSON schema (an object); got 'object' (a string).",
            )
        ],
    ),
    Case(
        "schema-invalid",
        _steps(_o2("s2", schema={"type": "objekt"})),
        [
            (
                "s2",
                "schema",
                "invalid_schema",
                "Step 's2': 'schema' is not a valid JSON schema: 'objekt' is not valid under "
                "any of the given schemas (at type). Write a JSON schema (draft 2020-12), such "
                'as {"type": "object", "required": ["rows"]}.',
            )
        ],
    ),
    Case(
        "schema-invalid-nested",
        _steps(_o2("s2", schema={"properties": {"level": {"minimum": "zero"}}})),
        [
            (
                "s2",
                "schema",
                "invalid_schema",
                "Step 's2': 'schema' is not a valid JSON schema: 'zero' is not of type 'number' "
                "(at properties/level/minimum). Write a JSON schema (draft 2020-12), such as "
                '{"type": "object", "required": ["rows"]}.',
            )
        ],
    ),
    # markdown
    Case(
        "markdown-good",
        _steps(
            _o2("s2"),
            {"id": "md", "markdown": "O2 is $s2.level %; costs $$5.", "run_if": "$s2.level > 0"},
        ),
        [],
    ),
    Case(
        "markdown-and-tool",
        _steps({"id": "md", "tool": "check_oxygen", "markdown": "text"}),
        [
            (
                "md",
                "markdown",
                "invalid_plan",
                "Step 'md' has both 'tool' and 'markdown'; a step calls a tool, runs a sub-plan "
                "or shows a markdown text: keep one.",
            )
        ],
    ),
    Case(
        "neither-tool-nor-markdown",
        _steps({"id": "s1", "description": "what?"}),
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
        "markdown-with-args",
        _steps({"id": "md", "markdown": "text", "args": {"x": 1}, "retries": 2}),
        [
            (
                "md",
                "args",
                "invalid_plan",
                "Step 'md' is a markdown step, which calls no tool, so it takes no 'args'; "
                "remove it (references go in the text itself).",
            ),
            (
                "md",
                "retries",
                "invalid_plan",
                "Step 'md' is a markdown step, which calls no tool, so it takes no 'retries'; "
                "remove it (references go in the text itself).",
            ),
        ],
    ),
    Case(
        "markdown-not-a-string",
        _steps({"id": "md", "markdown": ["a"]}),
        [
            (
                "md",
                "markdown",
                "invalid_plan",
                "Step 'md': 'markdown' must be a string of markdown text; got a list.",
            )
        ],
    ),
    Case(
        "markdown-unknown-step",
        _steps({"id": "md", "markdown": "Level $s9.level"}),
        [
            (
                "md",
                "markdown",
                "unknown_reference",
                "Step 'md' refers to '$s9.level', but there is no step 's9'. Known steps: 'md'.",
            )
        ],
    ),
    Case(
        "markdown-malformed-reference",
        _steps({"id": "md", "markdown": "costs 5 $"}),
        [
            (
                "md",
                "markdown",
                "unknown_reference",
                "Step 'md': The '$' at position 8 of 'costs 5 $' ends the text; a reference is "
                "'$step_id' or '$step_id.path' (write '$$' for a literal '$').",
            )
        ],
    ),
    Case(
        "markdown-self",
        _steps({"id": "md", "markdown": "I am $self"}),
        [
            (
                "md",
                "markdown",
                "self_reference",
                "Step 'md' refers to its own output ('$self') in markdown, which does not exist "
                "before the step runs. Refer to another step, or move the test to expect or "
                "intervention_if, which run after the step.",
            )
        ],
    ),
    Case(
        "markdown-cycle",
        _steps(
            {"id": "a", "markdown": "$b"},
            {"id": "b", "tool": "check_oxygen", "expect": ["$self.level > 0", "$a != ''"]},
        ),
        [
            (
                "a",
                "markdown",
                "cycle",
                "The steps a -> b -> a form a cycle: 'a' needs 'b' (markdown); 'b' needs 'a' "
                "(expect.1). Remove one of these dependencies so that the steps can run in order.",
            )
        ],
    ),
    # typed references (the example tools return dataclasses)
    Case(
        "typed-good",
        _steps(
            {"id": "s1", "tool": "scan_hull"},
            _o2("s2", run_if="$s1.sections.0.breach or $s1.integrity_percent < 50"),
            {
                "id": "s3",
                "tool": "analyze_atmosphere",
                "args": {"o2_level": "$s2.level"},
                "expect": ["'O2' in $self.composition", "$self.composition.O2 > 0"],
            },
            {"id": "md", "markdown": "$s3.status: $s3.recommendations.0"},
        ),
        [],
    ),
    Case(
        "unknown-field-did-you-mean",
        _steps(
            _o2("s2"), {"id": "s3", "tool": "analyze_atmosphere", "args": {"o2_level": "$s2.levl"}}
        ),
        [
            (
                "s3",
                "args.o2_level",
                "unknown_field",
                "Step 's3' refers to '$s2.levl', but the output of step 's2' (tool "
                "'check_oxygen') has no field 'levl'. Did you mean 'level'? Its fields: 'level', "
                "'pressure_kpa', 'sensor_id', 'status'.",
            )
        ],
    ),
    Case(
        "unknown-field-nested-in-an-expression",
        _steps({"id": "s1", "tool": "scan_hull"}, _o2("s2", run_if="$s1.sections.0.breech")),
        [
            (
                "s2",
                "run_if",
                "unknown_field",
                "Step 's2' refers to '$s1.sections.0.breech', but '$s1.sections.0' has no field "
                "'breech'. Did you mean 'breach'? Its fields: 'section', 'integrity_percent', "
                "'breach', 'pressure_kpa'.",
            )
        ],
    ),
    Case(
        "unknown-field-a-list-by-name",
        _steps({"id": "s1", "tool": "scan_hull"}, {"id": "md", "markdown": "$s1.sections.first"}),
        [
            (
                "md",
                "markdown",
                "unknown_field",
                "Step 'md' refers to '$s1.sections.first', but '$s1.sections' is a list, indexed "
                "by number ('.0', '.1', ...), so it has no field 'first'.",
            )
        ],
    ),
    Case(
        "unknown-field-of-self-in-expect",
        _steps(_o2("s2", expect=["$self.level > 0", "$self.lvl > 0"])),
        [
            (
                "s2",
                "expect.1",
                "unknown_field",
                "Step 's2' refers to '$self.lvl', but the output of step 's2' (tool "
                "'check_oxygen') has no field 'lvl'. Did you mean 'level'? Its fields: 'level', "
                "'pressure_kpa', 'sensor_id', 'status'.",
            )
        ],
    ),
    Case(
        "unknown-field-into-a-markdown-text",
        _steps({"id": "md", "markdown": "hi"}, _o2("s2", run_if="$md.length > 0")),
        [
            (
                "s2",
                "run_if",
                "unknown_field",
                "Step 's2' refers to '$md.length', but the output of step 'md' (a markdown "
                "step) is a text, which has no fields.",
            )
        ],
    ),
    Case(
        "open-mapping-any-key",
        _steps(
            {"id": "s3", "tool": "analyze_atmosphere", "args": {"o2_level": 20.9}},
            {"id": "s4", "tool": "analyze_atmosphere", "args": {"o2_level": "$s3.composition.Xe"}},
        ),
        [],
    ),
    Case(
        "type-mismatch",
        _steps(
            _o2("s2"),
            {"id": "s3", "tool": "analyze_atmosphere", "args": {"o2_level": "$s2.status"}},
        ),
        [
            (
                "s3",
                "args.o2_level",
                "type_mismatch",
                "Step 's3' passes '$s2.status' (a string) to argument 'o2_level' of tool "
                "'analyze_atmosphere', which expects a number. Refer to a field of that type, or "
                "pass a literal.",
            )
        ],
    ),
    Case(
        "type-mismatch-whole-output",
        _steps(
            {"id": "md", "markdown": "20"},
            {"id": "s3", "tool": "analyze_atmosphere", "args": {"o2_level": "$md"}},
        ),
        [
            (
                "s3",
                "args.o2_level",
                "type_mismatch",
                "Step 's3' passes '$md' (a string) to argument 'o2_level' of tool "
                "'analyze_atmosphere', which expects a number. Refer to a field of that type, or "
                "pass a literal.",
            )
        ],
    ),
    Case(
        "interpolated-text-is-a-string-and-fits-a-string",
        _steps(
            _o2("s2"),
            {
                "id": "s3",
                "tool": "analyze_atmosphere",
                "args": {"o2_level": "$s2.level", "context": "level $s2.level"},
            },
        ),
        [],
    ),
    Case(
        "without-tools-nothing-is-typed",
        _steps(
            _o2("s2"), {"id": "s3", "tool": "analyze_atmosphere", "args": {"o2_level": "$s2.levl"}}
        ),
        [],
        with_tools=False,
    ),
]


@pytest.mark.parametrize("case", CONTRACT_CASES, ids=[c.id for c in CONTRACT_CASES])
def test_validate_plan_language_2(case: Case) -> None:
    tools = example_registry() if case.with_tools else None
    assert _tuples(validate_plan(case.plan, tools)) == case.expected


def test_expect_and_markdown_references_are_dependencies() -> None:
    plan = load_plan(
        _steps(
            {"id": "s1", "tool": "scan_hull"},
            _o2("s2", expect=["$self.level > $s1.integrity_percent", "$s2.level > 0"]),
            {"id": "md", "markdown": "$s2.level and $s1"},
        )
    )
    assert step_dependencies(plan) == {"s1": (), "s2": ("s1",), "md": ("s1", "s2")}


def test_schema_is_spelt_schema_in_json_and_output_schema_in_python() -> None:
    step = Step.model_validate({"id": "s1", "tool": "t", "schema": {"type": "object"}})
    assert step.output_schema == {"type": "object"}
    assert step.model_dump(exclude_defaults=True) == {
        "id": "s1",
        "tool": "t",
        "schema": {"type": "object"},
    }
    assert Step(id="s1", tool="t", output_schema={"type": "array"}).output_schema == {
        "type": "array"
    }


@pytest.mark.parametrize(
    ("data", "kind", "tool"),
    [
        ({"id": "a", "tool": "t"}, "tool", "t"),
        ({"id": "a", "markdown": "text"}, "markdown", None),
    ],
)
def test_a_step_has_one_kind(data: dict[str, Any], kind: str, tool: str | None) -> None:
    step = Step.model_validate(data)
    assert (step.kind, step.tool) == (kind, tool)


def test_undeclared_outputs_stay_unchecked_and_declared_schemas_count() -> None:
    from marimo_engine.errors import UsageError
    from marimo_engine.tools.registry import ToolRegistry

    def loose(n: int = 1):  # type: ignore[no-untyped-def]
        return {"rows": n}

    def typed(n: int = 1) -> Row:
        return {"rows": n, "name": "x"}

    def count(n: int) -> int:
        return n

    registry = ToolRegistry()
    registry.register(loose)
    registry.register(typed)
    registry.register(count)
    registry.register(
        loose,
        name="declared",
        returns_schema={"type": "object", "properties": {"rows": {"type": "integer"}},
                        "additionalProperties": False},
    )  # fmt: skip
    plan = _steps(
        {"id": "a", "tool": "loose"},
        {"id": "b", "tool": "typed"},
        {"id": "c", "tool": "declared"},
        {"id": "d", "tool": "count", "args": {"n": "$a.anything"}},
        {"id": "e", "tool": "count", "args": {"n": "$b.rowz"}},
        {"id": "f", "tool": "count", "args": {"n": "$c.rows"}},
        {"id": "g", "tool": "count", "args": {"n": "$c.name"}},
        {"id": "h", "tool": "count", "args": {"n": "$b.name"}},
    )
    problems = [(p.step_id, p.code.value) for p in validate_plan(plan, registry)]
    assert problems == [("e", "unknown_field"), ("g", "unknown_field"), ("h", "type_mismatch")]
    assert registry.schemas()[1]["returns"]["properties"]["rows"] == {
        "title": "Rows",
        "type": "integer",
    }
    assert "returns" not in registry.schemas()[0]
    with pytest.raises(UsageError, match="returns_schema is not a valid JSON schema"):
        registry.register(count, name="bad", returns_schema={"type": "integr"})
