"""`Plan` and `Step`: the plan language's models, and `load_plan()`.

The fields, their types and their ranges are the plan language spec's table
("A plan"). Unknown fields are an error, so that a typo such as `tiemout_s`
is reported instead of silently ignored. A `Plan` object is always
well-formed: step ids are checked in the model (assignment is validated too).
Rules that need the whole plan (duplicate ids, references, tools, cycles) are
checked by `marimo_engine.plans.validation.validate_plan`.
"""

from __future__ import annotations

import difflib
import json
import re
import secrets
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from marimo_engine.errors import PlanValidationError, UsageError
from marimo_engine.plans.problems import Problem, ProblemCode

__all__ = [
    "RESERVED_NAMES",
    "SCHEMA_KEY",
    "STEP_ID_PATTERN",
    "STEP_KINDS",
    "TOOL_NAME_PATTERN",
    "Plan",
    "PlanInput",
    "Step",
    "load_plan",
    "problems_from_validation_error",
    "readable_step_id",
]

STEP_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""A step id: 1 to 64 characters of `A-Z a-z 0-9 _ -` (spec, "A plan")."""

TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""A tool name: 1 to 64 characters of `A-Z a-z 0-9 _ -` (`docs/plan-language.md`, "A plan").

The same rule as `ToolRegistry` applies when a tool is registered, so every
registered tool can be named in a plan; a plan's tool name is checked even
when no registry is given, so that no text other than a name reaches the
places where tool names are written (notebook source, events, terminals)."""

RESERVED_NAMES = frozenset({"item", "index", "input", "self"})
"""Names that references give a meaning of their own (`$item`, `$index` in a `map` step,
`$input.NAME` in a plan with `inputs`, `$self` in `expect` and `intervention_if`), so no
step may take them as its id."""

SCHEMA_KEY = "$schema"
"""A top-level key that editors add to point at a JSON schema; accepted and ignored."""

_STEP_ID_RE = re.compile(STEP_ID_PATTERN)

StepId = Annotated[
    StrictStr,
    Field(
        pattern=STEP_ID_PATTERN,
        examples=["s1", "scan_hull", "check-oxygen"],
    ),
]


ToolName = Annotated[
    StrictStr,
    Field(
        pattern=TOOL_NAME_PATTERN,
        examples=["scan_hull", "load_csv"],
    ),
]


STEP_KINDS: tuple[str, ...] = ("tool", "plan", "markdown")
"""The fields that say what a step does: it calls a tool, runs a sub-plan or shows a
markdown text, exactly one (`docs/plan-language.md`, "Kinds of steps";
`step_kind_problems` is the rule)."""

_KIND_WORDS = {"tool": "a tool name", "plan": "a sub-plan to run", "markdown": "a text to show"}


def _step_kind_json_schema(schema: dict[str, Any]) -> None:
    """Say `STEP_KINDS`'s rule in the step's JSON schema: exactly one of them is present."""
    schema["oneOf"] = [{"required": [name]} for name in STEP_KINDS]


def _new_plan_id() -> str:
    return f"plan-{secrets.token_hex(4)}"


class Step(BaseModel):
    """One step of a plan: a tool call with its arguments and conditions, or a markdown text.

    A step is exactly one kind: it has a `tool` or a `markdown` text. Fields
    follow the plan language spec's table ("A plan"). Numbers and booleans are
    strict: `"5"` is not a number and `1` is not `true`.
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        use_attribute_docstrings=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        json_schema_extra=lambda schema: _step_kind_json_schema(schema),
    )

    id: StepId
    """The step's name: 1-64 characters of `A-Z a-z 0-9 _ -`, unique in the plan."""

    tool: ToolName | None = None
    """A name in the tool registry given to the run: 1-64 characters of `A-Z a-z 0-9 _ -`.
    Required unless the step is of another kind (`STEP_KINDS`): a sub-plan step (`plan`)
    or a `markdown` step has none."""

    description: StrictStr | None = None
    """Human text, shown in events and in the notebook; `None` for none."""

    args: dict[str, Any] = Field(
        default_factory=dict,
    )
    """Keyword arguments of the tool; values are JSON and may hold `$id.path`
    references, also inside nested lists and objects. Empty when absent."""

    run_if: StrictStr | None = None
    """An expression (spec, "Expressions"); the step runs only when it is true.
    `None` runs the step unconditionally."""

    intervention_if: StrictStr | None = None
    """An expression evaluated after the step ran (it may reference the step
    itself); when true the run stops for a person. `None` never stops."""

    key_finding: bool = Field(
        default=False,
        strict=True,
    )
    """Whether the output is a key finding: flagged on its `STEP_COMPLETE`
    event and collected in the result's `key_findings`."""

    depends_on: list[StrictStr] = Field(default_factory=list)
    """Ids of steps this step runs after without using their output. Empty
    when absent; unknown ids are reported by validation."""

    timeout_s: float | None = Field(
        default=None,
        gt=0,
        strict=True,
        allow_inf_nan=False,
    )
    """Seconds before the tool call is cancelled (an `ERROR` of type
    `TimeoutError`); must be > 0. `None` waits forever."""

    retries: int = Field(
        default=0,
        ge=0,
        le=10,
        strict=True,
    )
    """How many more times the tool is called after an exception or a
    timeout, 0 to 10; the waits between tries are 0.1 s, 0.2 s, 0.4 s, ..."""

    requires_approval: bool = Field(
        default=False,
        strict=True,
    )
    """Whether a person must approve the step (seeing its resolved
    arguments) before its tool is called: the run stops with
    `INTERVENTION_NEEDED` of kind `approval` (docs/runs.md)."""

    # plan language 2: map and sub-plans
    map: StrictStr | None = None
    """A whole reference to a list (`"$s1.files"`): the tool runs once per item,
    with `$item` and `$index` in `args`, `run_if` and `intervention_if`; the
    output is the list of results in item order. `None`: one call."""

    map_concurrency: int | None = Field(default=None, ge=1, strict=True)
    """`map` only: most items in flight at once (also bounded by the run's
    `max_workers`); `None` takes `max_workers`."""

    map_errors: Literal["fail", "collect"] | None = None
    """`map` only: `"fail"` (the default) fails the step at the first failing
    item; `"collect"` puts each failing item's error in its place of the output."""

    plan: StrictStr | None = Field(default=None, min_length=1)
    """A sub-plan to run as this step instead of a tool: the name of a plan given to
    the run, the name of an example plan, or a `.json` file next to the parent
    plan. `args` are its inputs; its output is its outputs."""

    output: bool = Field(default=False, strict=True)
    """In a plan run as a sub-plan: this step's output is part of the sub-plan's
    output. When no step says so, every completed step's output is."""

    # plan language 2: contracts and markdown steps
    expect: list[StrictStr] = Field(default_factory=list)
    """Expressions over the step's own output (`$self`, such as `"$self.rows > 0"`) that
    must all be true once the step has its output; a false one fails the step with
    `ContractError` (not retried). Empty when absent."""

    output_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    """A JSON schema (draft 2020-12) the step's output must match, written `"schema"` in
    the plan; a mismatch fails the step with `ContractError` (not retried). `None`
    checks nothing."""

    markdown: StrictStr | None = None
    """Markdown text a person reads, with `$id.path` references filled in (`str()` of
    each value): a step with no tool whose output is the text, shown as a markdown cell
    in the notebook. `None` for a tool step."""

    @field_validator("args", "depends_on", "expect", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object, info: ValidationInfo) -> object:
        """`null` for `args`, `depends_on` or `expect` means none (models often write it).

        A single expression written as a string for `expect` is a list of one.
        """
        if value is None:
            return {} if info.field_name == "args" else []
        if info.field_name == "expect" and isinstance(value, str):
            return [value]
        return value

    @property
    def kind(self) -> str:
        """What the step does: the first of `STEP_KINDS` it names (`"tool"`, `"markdown"`)."""
        return next((name for name in STEP_KINDS if getattr(self, name) is not None), "tool")


class PlanInput(BaseModel):
    """One input of a plan (`Plan.inputs`), read by its steps as `$input.NAME`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    description: StrictStr | None = None
    """Human text, shown to a model that writes a sub-plan step."""

    default: Any = None
    """The value when none is given; only used when `required` is false."""

    required: bool = Field(default=True, strict=True)
    """Whether a value must be given (a sub-plan step's `args`, or `inputs=` of the run)."""


class Plan(BaseModel):
    """A plan: an optional id and name, and at least one step.

    Fields follow the plan language spec's table ("A plan"). Build one with
    `load_plan()` from a dict or a JSON string to get the spec's problem
    codes on error, or construct it directly (pydantic's `ValidationError`).
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, use_attribute_docstrings=True
    )

    id: str = Field(
        default_factory=_new_plan_id,
        min_length=1,
    )
    """Carried on every event; generated as `"plan-"` + 8 hex digits when
    absent or `None`."""

    name: str | None = None
    """Human title; `None` for none."""

    steps: list[Step] = Field(min_length=1)
    """The steps, at least one. List order breaks ties between ready steps;
    it is not the schedule (dependencies are)."""

    inputs: dict[str, PlanInput] = Field(default_factory=dict)
    """Inputs of the plan, by name (1-64 characters of `A-Z a-z 0-9 _ -`): steps
    read them as `$input.NAME`; a parent plan's sub-plan step gives them as `args`."""

    @field_validator("id", mode="before")
    @classmethod
    def _generate_missing_id(cls, value: object) -> object:
        return _new_plan_id() if value is None else value

    @property
    def tool_names(self) -> list[str]:
        """The tools the steps call, each once, in step order (a markdown step calls none)."""
        return list(dict.fromkeys(step.tool for step in self.steps if step.tool is not None))

    @property
    def step_ids(self) -> list[str]:
        """The step ids in list order (duplicates kept, as written)."""
        return [step.id for step in self.steps]

    def step(self, step_id: str) -> Step:
        """Return the step with the id `step_id` (the first, if ids repeat).

        Args:
            step_id: A step id of this plan.

        Returns:
            The `Step` itself, not a copy.

        Raises:
            UsageError: No step has that id; the message lists close ids.
        """
        for step in self.steps:
            if step.id == step_id:
                return step
        ids = self.step_ids
        close = difflib.get_close_matches(str(step_id), ids, n=3, cutoff=0.5)
        hint = (
            "Did you mean " + " or ".join(repr(c) for c in close) + "?"
            if close
            else "Steps: " + ", ".join(repr(i) for i in ids) + "."
        )
        raise UsageError(f"Plan {self.id!r} has no step {step_id!r}. {hint}")


def load_plan(source: Plan | Mapping[str, Any] | str | bytes) -> Plan:
    """Read a plan from a model, a mapping, or JSON text.

    Args:
        source: A `Plan` (returned as is), a mapping such as the dict of a
            parsed JSON plan, or the JSON text of a plan (`str`, or `bytes`
            in UTF-8).

    Returns:
        The `Plan`. A missing plan id is generated (`"plan-"` + 8 hex).

    Raises:
        PlanValidationError: The source is not a plan. Its `problems` use the
            spec's codes: `invalid_id` for a step id that is missing, not a
            string or not 1-64 characters of `A-Z a-z 0-9 _ -`; `invalid_plan`
            for everything else (invalid JSON, not an object, no steps, an
            unknown field, a wrong type, a value out of range). A problem in
            a step whose id is readable carries that `step_id` and a `field`
            relative to the step (`"timeout_s"`, `"depends_on.1"`); otherwise
            `field` is dotted from the plan (`"steps"`, `"steps.3"`,
            `"steps.3.id"`). Duplicate ids are not checked here. Also
            `invalid_plan`: JSON nested too deeply to read, a value nested
            deeper than 100 levels, and a string holding a lone surrogate
            (`marimo_engine.plans.document`). A top-level `"$schema"` string
            is accepted and ignored.
    """
    if isinstance(source, Plan):
        return source
    data: object = source
    if isinstance(source, bytes | bytearray):
        try:
            data = bytes(source).decode("utf-8")
        except UnicodeDecodeError as exc:
            from marimo_engine.plans._schema_problems import plan_problem

            raise PlanValidationError(
                [plan_problem(f"The plan is not UTF-8 text ({exc.reason} at byte {exc.start}).")]
            ) from None
    if isinstance(data, str):
        data = _parse_json(data)
    if isinstance(data, Mapping) and not isinstance(data, dict):
        data = dict(data)
    problems: list[Problem] = []
    if isinstance(data, dict):
        from marimo_engine.plans.document import document_problems

        data, problems = _without_schema_key(data)
        problems += document_problems(data)
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        problems += problems_from_validation_error(exc, data)
    problems += step_kind_problems(data)
    if problems:
        raise PlanValidationError(problems)
    return plan


def _without_schema_key(data: dict[Any, Any]) -> tuple[dict[Any, Any], list[Problem]]:
    """Drop a top-level `$schema` key (editors add it); a non-string one is a problem."""
    if SCHEMA_KEY not in data:
        return data, []
    value = data[SCHEMA_KEY]
    data = {key: item for key, item in data.items() if key != SCHEMA_KEY}
    if isinstance(value, str):
        return data, []
    from marimo_engine.plans._schema_problems import plan_problem, show

    problem = plan_problem(
        f"The plan's {SCHEMA_KEY!r} must be a string (the URL or path of a JSON schema, "
        f"which is ignored); got {show(value)}.",
        field=SCHEMA_KEY,
    )
    return data, [problem]


def _parse_json(text: str) -> object:
    from marimo_engine.plans._schema_problems import plan_problem

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanValidationError(
            [
                plan_problem(
                    f"The plan is not valid JSON: {exc.msg} at line {exc.lineno}, column "
                    f"{exc.colno}. Fix the JSON there (quote keys and strings with double "
                    f"quotes, no trailing commas)."
                )
            ]
        ) from None
    except RecursionError:
        raise PlanValidationError([too_deep_to_read_problem()]) from None


def too_deep_to_read_problem() -> Problem:
    """The `invalid_plan` problem of JSON text nested too deeply for the parser to read.

    Python's JSON parser gives up (`RecursionError`) somewhere past about 900
    levels, far past the plan language's limit of 100 levels per value, so
    such a plan breaks the same rule.
    """
    from marimo_engine.plans._schema_problems import plan_problem

    return plan_problem(
        "The plan's JSON is nested too deeply to read (a value may nest lists and objects "
        "at most 100 levels deep); flatten it."
    )


def step_kind_problems(data: object) -> list[Problem]:
    """`invalid_plan` for each step that names none, or more than one, of `STEP_KINDS`.

    A step calls a tool (`tool`), runs a sub-plan (`plan`) or shows a markdown
    text (`markdown`), exactly one: the one place of the rule "`tool` is
    required unless the step is of another kind" (plan language 2). Checked
    on the raw document (or a `Plan`), so it is reported beside the
    document's other problems.

    Args:
        data: A plan as a mapping (its `steps` a list of mappings) or a `Plan`.

    Returns:
        The problems, in step order: field `tool` for a step with no kind, the
        second kind named for a step with several. Steps that are not objects
        are skipped (pydantic reports them).
    """
    steps = data.steps if isinstance(data, Plan) else None
    if steps is None:
        raw = data.get("steps") if isinstance(data, Mapping) else None
        steps = raw if isinstance(raw, list | tuple) else []
    problems = []
    for index, step in enumerate(steps):
        if isinstance(step, Mapping):
            named = [kind for kind in STEP_KINDS if step.get(kind) is not None]
        elif isinstance(step, Step):
            named = [kind for kind in STEP_KINDS if getattr(step, kind) is not None]
        else:
            continue
        if len(named) == 1:
            continue
        step_id = readable_step_id(step)
        where = f"Step {step_id!r}" if step_id is not None else f"The step at index {index}"
        if named:
            field = named[1]
            listed = " and ".join(repr(kind) for kind in named)
            message = (
                f"{where} has both {listed}; a step calls a tool, runs a sub-plan or shows a "
                "markdown text: keep one."
            )
        else:
            field = "tool"
            others = ", or ".join(f"{kind!r}: {_KIND_WORDS[kind]}" for kind in STEP_KINDS[1:])
            message = f"{where} has no 'tool'; add it: a tool name (or {others})."
        problems.append(
            Problem(
                step_id=step_id,
                field=field if step_id is not None else f"steps.{index}.{field}",
                code=ProblemCode.INVALID_PLAN,
                message=message,
            )
        )
    return problems


def readable_step_id(step: object) -> str | None:
    """Return the id of a step as written (a mapping or a `Step`) when it is well-formed.

    Args:
        step: A raw step: a mapping, a `Step`, or anything else.

    Returns:
        The id when it is a string matching `STEP_ID_PATTERN`, else `None`.
    """
    step_id = step.get("id") if isinstance(step, Mapping) else getattr(step, "id", None)
    return step_id if isinstance(step_id, str) and _STEP_ID_RE.fullmatch(step_id) else None


def problems_from_validation_error(exc: ValidationError, data: object) -> list[Problem]:
    """Translate pydantic's errors for a plan into the plan language's problems.

    Args:
        exc: The error raised by `Plan.model_validate(data)`.
        data: The input that was validated (used to read step ids).

    Returns:
        One `Problem` per pydantic error, in pydantic's order; see
        `load_plan` for the codes and fields.
    """
    from marimo_engine.plans._schema_problems import problems_from_validation_error as translate

    return translate(exc, data)
