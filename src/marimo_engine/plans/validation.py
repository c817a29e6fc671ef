"""`validate_plan()` and `check_plan()`: every problem of a plan, at once.

The rules and codes are the plan language spec's ("Validation"):

- `invalid_plan`, `invalid_id`: the plan does not parse (`load_plan`),
  including a tool name outside `TOOL_NAME_PATTERN` and the document's
  limits (`marimo_engine.plans.document`: nesting, lone surrogates). The
  steps that do parse on their own are still checked (without the fields
  that have problems), so one answer lists as much as can be found.
- `duplicate_id`: a step id used twice (each repeat is reported).
- `unknown_tool`: a tool that is not in the registry (close names suggested).
- `unknown_reference`: a reference or `depends_on` entry naming no step (the
  known steps are listed), or a malformed reference (`"$"` alone, `"$s1._x"`).
- `self_reference`: a step that names itself in `args`, `run_if` or
  `depends_on` (`intervention_if` may: it is evaluated after the step ran).
- `cycle`: steps that depend on each other, named in order `a -> b -> a`.
- `invalid_expression`: a `run_if` / `intervention_if` outside the language.
- `invalid_args`: an argument the tool does not take, a missing required
  argument, or a literal of the wrong type (`ToolRegistry.check_args`); for a
  sub-plan step, an argument that is not an input of the sub-plan or a
  required input not given.
- plan language 2: `invalid_map` (a `map` that is not one reference, `map_*`
  fields without `map`), `item_outside_map` (`$item`/`$index` in a step
  without `map`), `unknown_input` (`$input.NAME` naming no input of the
  plan), `unknown_plan` (a sub-plan that cannot be found), `recursive_plan`
  (a plan that runs itself through sub-plans); a sub-plan's own problems are
  reported on the step that runs it (field `plan`), with their own codes.
- plan language 2, contracts and markdown steps: `expect` expressions are
  checked like `intervention_if` (`$self` and the step's own id allowed; a
  `$self` anywhere else is a `self_reference`), the references in a
  `markdown` text like those in `args`; `invalid_schema` (a step's `schema`
  that is not a valid JSON schema); a markdown step with `args`,
  `timeout_s`, `retries` or `requires_approval` is `invalid_plan`.
- plan language 2, typed references: `unknown_field` (a path the output's
  declared type does not have, `plans.typed_references`) and `type_mismatch`
  (a whole reference whose declared type cannot fit its argument).

Each problem's `message` says what to change; the list is JSON
(`Problem.model_dump(mode="json")`), ready to hand back to the model that
wrote the plan. Validation is linear in the size of the plan.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from marimo_engine.errors import EngineError, PlanValidationError, UnknownToolError, UsageError
from marimo_engine.plans.contracts import SELF, schema_problem
from marimo_engine.plans.dependencies import find_cycles
from marimo_engine.plans.document import document_problems, step_fields_with_problems
from marimo_engine.plans.expressions import parse_expression
from marimo_engine.plans.problems import Problem, ProblemCode
from marimo_engine.plans.references import (
    Reference,
    find_reference_errors,
    find_references,
    parse_template,
)
from marimo_engine.plans.schema import (
    RESERVED_NAMES,
    STEP_ID_PATTERN,
    Plan,
    Step,
    load_plan,
    step_kind_problems,
)
from marimo_engine.plans.subplans import PlanLibrary, as_library
from marimo_engine.plans.typed_references import json_types, walk_schema

__all__ = ["ToolCatalog", "check_plan", "validate_plan"]


@runtime_checkable
class ToolCatalog(Protocol):
    """What validation needs of the tools a plan will run with.

    `marimo_engine.tools.ToolRegistry` is one. `plans` never imports `tools`
    (the layering of docs/architecture.md): a mapping of callables becomes a
    registry one layer up, in `marimo_engine.tools.validation` (the public
    `marimo_engine.validate_plan`).
    """

    def __contains__(self, name: object) -> bool:
        """Whether a tool of that name exists."""
        ...

    def __iter__(self) -> Iterator[str]:
        """The tool names."""
        ...

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Up to `n` tool names close to `name`, best first."""
        ...

    def arg_problems(self, tool_name: str, args: Mapping[str, Any]) -> Sequence[Any]:
        """Problems of a step's `args` for the tool: each has `.argument` and `.message`."""
        ...

    # plan language 2: typed references
    def returns_schema(self, tool_name: str) -> Mapping[str, Any] | None:
        """The JSON schema of the tool's output, or `None` when it is not declared."""
        ...

    def parameters_schema(self, tool_name: str) -> Mapping[str, Any] | None:
        """The JSON schema (an object schema) of the tool's keyword arguments."""
        ...


_STEP_ID_RE = re.compile(STEP_ID_PATTERN)
_MAX_LISTED_STEPS = 20
"""Up to this many known steps are listed in an `unknown_reference` message."""
_MAX_CYCLE_SHOWN = 30
"""Longer cycles are shortened in the message (first and last steps kept)."""
_SUGGESTION_BUDGET = 200_000
"""Step ids compared (difflib) to find close names for unknown references, in
all: each lookup costs one comparison per step. Past the budget, messages
only list steps, so that validating a broken plan stays linear in its size
(a 30,000-step plan gets close names for its first 6 unknown references, a
100-step plan for its first 2,000)."""

PlanSource = Plan | Mapping[str, Any] | str | bytes


def validate_plan(
    plan: PlanSource,
    tools: ToolCatalog | None = None,
    *,
    plans: PlanLibrary | Mapping[str, Any] | None = None,
) -> list[Problem]:
    """Return every problem of a plan, or an empty list when it is valid.

    Args:
        plan: A `Plan`, a dict, or the plan's JSON text (`str` or UTF-8 `bytes`).
        tools: The tools the plan will run with: a `ToolCatalog` such as a
            `ToolRegistry` (to pass a mapping of names to callables, use the
            public `marimo_engine.validate_plan`, which makes a registry of
            it). With `None`, tool names and `args` are not checked (only the
            plan's own structure and references).
        plans: Where sub-plan steps find their plans (`PlanLibrary`, or a
            mapping of names to plans); `None`: the example plans and files
            relative to the current directory.

    Returns:
        The problems, each with `step_id`, `field`, `code` and `message`:
        first those of parsing (if the plan does not parse), then per step in
        plan order, then cycles. Never raises for a bad plan.

    Raises:
        UsageError: `tools` is not a tool catalog (a `ToolRegistry`).
    """
    return _Validator(tools, plans=as_library(plans)).run(plan)[1]


def check_plan(
    plan: PlanSource,
    tools: ToolCatalog | None = None,
    *,
    plans: PlanLibrary | Mapping[str, Any] | None = None,
) -> Plan:
    """Return the parsed plan when it has no problem.

    Args:
        plan: As for `validate_plan`.
        tools: As for `validate_plan`.
        plans: As for `validate_plan`.

    Returns:
        The `Plan` (the same object when `plan` is one).

    Raises:
        PlanValidationError: The plan has problems; `.problems` holds all of
            them, as `validate_plan` returns them.
        UsageError: `tools` is not a tool catalog (a `ToolRegistry`).
    """
    parsed, problems = _Validator(tools, plans=as_library(plans)).run(plan)
    if problems or parsed is None:
        raise PlanValidationError(problems)
    return parsed


@dataclass
class _Validator:
    tools: Any
    registry: ToolCatalog | None = None
    problems: list[Problem] = field(default_factory=list)
    suggestion_budget: int = _SUGGESTION_BUDGET
    known_ids: list[str] | None = None
    """The plan's step ids for hints, built on the first unknown reference (one plan per run)."""
    listing: str = ""
    # plan language 2: map and sub-plans
    plans: PlanLibrary | None = None
    base_dir: Any = None
    """The directory sub-plan files are read from (`None`: the library's)."""
    chain: tuple[str, ...] = ()
    """Keys of the plans being validated above this one (recursion is a key seen twice)."""
    inputs: Mapping[str, Any] | None = None
    """The plan's declared inputs (`$input.NAME`), read before the steps are checked."""
    # plan language 2: typed references
    by_id: dict[str, Step] = field(default_factory=dict)
    """The first step of each id, for typed references."""
    output_schemas: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    """Step id to the JSON schema of its output (`None`: not declared), worked out once."""

    def __post_init__(self) -> None:
        if self.tools is not None:
            if not isinstance(self.tools, ToolCatalog):
                raise UsageError(
                    f"tools must be a ToolRegistry or a mapping of names to callables, got "
                    f"{type(self.tools).__name__}; marimo_engine.validate_plan accepts both."
                )
            self.registry = self.tools

    def run(self, source: PlanSource) -> tuple[Plan | None, list[Problem]]:
        plan: Plan | None = None
        try:
            plan = load_plan(source)
            if isinstance(source, Plan):
                # A Plan built in Python skipped load_plan's document checks.
                problems = document_problems(source) + step_kind_problems(source)
                if problems:
                    raise PlanValidationError(problems)
        except PlanValidationError as exc:
            self.problems.extend(exc.problems)
            steps, ids = _steps_that_parse(source)
            plan = None
        else:
            steps = list(enumerate(plan.steps))
            ids = [(index, step.id) for index, step in steps]
        self.inputs = _declared_inputs(plan if plan is not None else source)
        for name in self.inputs:
            if not _STEP_ID_RE.fullmatch(name):
                self._add(
                    None,
                    f"inputs.{name}",
                    ProblemCode.INVALID_PLAN,
                    f"The plan's input name {name!r} must be 1-64 characters of "
                    "A-Z a-z 0-9 _ - (it is read as '$input.NAME').",
                )
        self._check_steps(steps, ids)
        return plan, _unique(self.problems)

    def _add(self, step_id: str | None, where: str | None, code: ProblemCode, msg: str) -> None:
        self.problems.append(Problem(step_id=step_id, field=where, code=code, message=msg))

    def _check_steps(self, steps: list[tuple[int, Step]], ids: list[tuple[int, str]]) -> None:
        """Check `steps` (index in the plan, step), given every readable id (index, id)."""
        known: dict[str, None] = dict.fromkeys(step_id for _, step_id in ids)  # ordered set
        first_index: dict[str, int] = {}
        for index, step_id in ids:
            if step_id in first_index:
                self._duplicate(step_id, first_index[step_id], index, known)
            else:
                first_index[step_id] = index
        edges: dict[str, dict[str, str]] = {}  # step id -> dependency id -> field
        for index, step in steps:
            if first_index[step.id] == index:
                self.by_id[step.id] = step
        for index, step in steps:
            # Only the first step of an id is part of the graph; repeats are
            # reported above and checked on their own.
            step_edges = edges.setdefault(step.id, {}) if first_index[step.id] == index else None
            self._check_step_kind(step)
            self._check_tool(step)
            self._check_map(step, known, step_edges)
            self._check_subplan(step)
            self._check_args_references(step, known, step_edges)
            self._check_expression(step, "run_if", known, step_edges, self_ok=False)
            self._check_expression(step, "intervention_if", known, step_edges, self_ok=True)
            self._check_depends_on(step, known, step_edges)
            self._check_contract(step, known, step_edges)
            self._check_markdown(step, known, step_edges)
        deps = {step_id: tuple(named) for step_id, named in edges.items()}
        for cycle in find_cycles(deps):
            self._cycle(cycle, edges)

    def _duplicate(self, step_id: str, first: int, index: int, known: Mapping[str, None]) -> None:
        suggestion = _free_id(step_id, known)
        self._add(
            step_id,
            "id",
            ProblemCode.DUPLICATE_ID,
            f"Step id {step_id!r} is used by the steps at index {first} and {index}; "
            f"ids must be unique: rename the second one, such as to {suggestion!r}.",
        )

    # plan language 2: map and sub-plans

    def _check_step_kind(self, step: Step) -> None:
        """A step's id is not a reserved name (`step_kind_problems`: one of `tool`, `plan`)."""
        if step.id in RESERVED_NAMES:
            self._add(
                step.id,
                "id",
                ProblemCode.INVALID_ID,
                f"Step id {step.id!r} is reserved: '${step.id}' means something else in "
                f"references ({', '.join(sorted(RESERVED_NAMES))} are reserved). Rename the "
                f"step, such as to {step.id + '_step'!r}.",
            )

    def _check_map(
        self, step: Step, known: Mapping[str, None], edges: dict[str, str] | None
    ) -> None:
        if step.map is None:
            for name in ("map_concurrency", "map_errors"):
                if getattr(step, name) is not None:
                    self._add(
                        step.id,
                        name,
                        ProblemCode.INVALID_MAP,
                        f"Step {step.id!r} has {name!r} but no 'map'; add 'map' (a reference "
                        f"to a list, such as '$s1.files') or remove {name!r}.",
                    )
            return
        if step.plan is not None:
            self._add(
                step.id,
                "map",
                ProblemCode.INVALID_MAP,
                f"Step {step.id!r} maps a sub-plan; 'map' runs a tool once per item. Map a "
                "tool, or give the whole list to the sub-plan as an input.",
            )
        from marimo_engine.plans.references import parse_template

        template = parse_template(step.map)
        for message in template.errors:
            self._add(step.id, "map", ProblemCode.UNKNOWN_REFERENCE, f"Step {step.id!r}: {message}")
        if template.errors:
            return
        reference = template.parts[0] if template.is_whole else None
        if not isinstance(reference, Reference):
            self._add(
                step.id,
                "map",
                ProblemCode.INVALID_MAP,
                f"Step {step.id!r}: 'map' must be exactly one reference to a list, such as "
                f"'$s1.files'; got {step.map!r}.",
            )
            return
        if reference.step_id in ("item", "index"):
            self._add(
                step.id,
                "map",
                ProblemCode.INVALID_MAP,
                f"Step {step.id!r}: 'map' cannot be {reference.text!r}: $item and $index are "
                "the item being mapped; map over another step's output, such as '$s1.files'.",
            )
            return
        self._check_reference(step, reference, "map", known, edges, self_ok=False)

    def _check_subplan(self, step: Step) -> None:
        if step.plan is None or step.tool is not None:  # both: reported by step_kind_problems
            return
        for name, unset in (("timeout_s", None), ("retries", 0), ("requires_approval", False)):
            if getattr(step, name) != unset:
                self._add(
                    step.id,
                    name,
                    ProblemCode.INVALID_PLAN,
                    f"Step {step.id!r} runs a sub-plan, which takes no {name!r}; set it on "
                    "the sub-plan's steps instead, or remove it.",
                )
        library = self.plans if self.plans is not None else PlanLibrary()
        try:
            resolved = library.resolve(step.plan, self.base_dir)
        except LookupError as exc:
            self._add(step.id, "plan", ProblemCode.UNKNOWN_PLAN, f"Step {step.id!r}: {exc}")
            return
        except PlanValidationError as exc:
            first = exc.problems[0].describe() if exc.problems else str(exc)
            self._add(
                step.id,
                "plan",
                ProblemCode.INVALID_PLAN,
                f"Step {step.id!r}: the sub-plan {step.plan!r} is not a plan: {first}",
            )
            return
        if resolved.key in self.chain:
            names = [*self.chain[self.chain.index(resolved.key) :], resolved.key]
            self._add(
                step.id,
                "plan",
                ProblemCode.RECURSIVE_PLAN,
                f"Step {step.id!r} runs the plan {step.plan!r}, which is already running "
                f"above it ({' -> '.join(_short_key(k) for k in names)}); a plan cannot run "
                "itself. Remove this step or run another plan.",
            )
            return
        declared = resolved.plan.inputs
        for name in step.args:
            if name not in declared:
                listed = ", ".join(repr(n) for n in declared) or "none"
                self._add(
                    step.id,
                    f"args.{name}",
                    ProblemCode.INVALID_ARGS,
                    f"Step {step.id!r}: the sub-plan {step.plan!r} has no input {name!r}. "
                    f"Its inputs: {listed}.",
                )
        for name, spec in declared.items():
            if spec.required and name not in step.args:
                self._add(
                    step.id,
                    "args",
                    ProblemCode.INVALID_ARGS,
                    f"Step {step.id!r}: the sub-plan {step.plan!r} needs the input {name!r}; "
                    f"add it to 'args'.",
                )
        inner = _Validator(
            self.tools,
            plans=library,
            base_dir=resolved.base_dir,
            chain=(*self.chain, resolved.key),
        )
        for problem in inner.run(resolved.plan)[1]:
            self._add(
                step.id,
                "plan",
                problem.code,
                f"In the sub-plan {step.plan!r}: {problem.describe()}",
            )

    def _check_pseudo_reference(self, step: Step, ref: Reference, where: str) -> None:
        """`$item`, `$index` (in a map step) and `$input.NAME` (a declared input)."""
        if ref.step_id in ("item", "index"):
            if step.map is None:
                self._add(
                    step.id,
                    where,
                    ProblemCode.ITEM_OUTSIDE_MAP,
                    f"Step {step.id!r} uses {ref.text!r} in {where}, but it has no 'map'; "
                    f"$item and $index exist only in a step with 'map' (a reference to a list).",
                )
            elif where == "map":
                pass  # reported by _check_map
            elif ref.step_id == "index" and ref.path:
                self._add(
                    step.id,
                    where,
                    ProblemCode.UNKNOWN_REFERENCE,
                    f"Step {step.id!r}: {ref.text!r} looks into $index, which is a number "
                    "(the item's position, from 0); write '$index'.",
                )
            return
        declared = self.inputs or {}
        listed = ", ".join(repr(n) for n in declared) or "none"
        if not ref.path:
            self._add(
                step.id,
                where,
                ProblemCode.UNKNOWN_INPUT,
                f"Step {step.id!r} uses '$input' in {where}; name one input, such as "
                f"'$input.NAME'. The plan's inputs: {listed}.",
            )
        elif ref.path[0] not in declared:
            import difflib

            close = difflib.get_close_matches(ref.path[0], list(declared), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            self._add(
                step.id,
                where,
                ProblemCode.UNKNOWN_INPUT,
                f"Step {step.id!r} refers to {ref.text!r}, but the plan has no input "
                f"{ref.path[0]!r}.{hint} The plan's inputs: {listed}; declare it in the "
                f"plan's 'inputs'.",
            )

    def _check_tool(self, step: Step) -> None:
        if self.registry is None or step.tool is None or step.tool in self.registry:
            return
        error = UnknownToolError(
            step.tool, self.registry.suggest(step.tool), known=list(self.registry)
        )
        self._add(step.id, "tool", ProblemCode.UNKNOWN_TOOL, str(error))
        return

    def _check_args_references(
        self, step: Step, known: Mapping[str, None], edges: dict[str, str] | None
    ) -> None:
        for key, value in step.args.items():
            where = f"args.{key}"
            for message in find_reference_errors(value):
                self._add(
                    step.id, where, ProblemCode.UNKNOWN_REFERENCE, f"Step {step.id!r}: {message}"
                )
            for ref in find_references(value):
                self._check_reference(step, ref, where, known, edges, self_ok=False)
            self._check_arg_type(step, key, value)
        if self.registry is not None and step.tool is not None and step.tool in self.registry:
            for problem in self.registry.arg_problems(step.tool, step.args):
                where = "args" if problem.argument is None else f"args.{problem.argument}"
                self._add(
                    step.id,
                    where,
                    ProblemCode.INVALID_ARGS,
                    f"Step {step.id!r}: {problem.message}",
                )

    def _check_expression(
        self,
        step: Step,
        name: str,
        known: Mapping[str, None],
        edges: dict[str, str] | None,
        *,
        self_ok: bool,
    ) -> None:
        self._check_expression_text(step, getattr(step, name), name, known, edges, self_ok=self_ok)

    def _check_expression_text(
        self,
        step: Step,
        text: str | None,
        name: str,
        known: Mapping[str, None],
        edges: dict[str, str] | None,
        *,
        self_ok: bool,
    ) -> None:
        if text is None:
            return
        try:
            expression = parse_expression(text)
        except EngineError as exc:
            self._add(
                step.id, name, ProblemCode.INVALID_EXPRESSION, f"Step {step.id!r}, {name}: {exc}"
            )
            return
        for ref in expression.references:
            self._check_reference(step, ref, name, known, edges, self_ok=self_ok)

    def _check_contract(
        self, step: Step, known: Mapping[str, None], edges: dict[str, str] | None
    ) -> None:
        for position, text in enumerate(step.expect):
            where = f"expect.{position}"
            self._check_expression_text(step, text, where, known, edges, self_ok=True)
        if step.output_schema is not None:
            problem = schema_problem(step.output_schema)
            if problem is not None:
                self._add(
                    step.id,
                    "schema",
                    ProblemCode.INVALID_SCHEMA,
                    f"Step {step.id!r}: 'schema' is not a valid JSON schema: {problem}. Write "
                    "a JSON schema (draft 2020-12), such as "
                    '{"type": "object", "required": ["rows"]}.',
                )

    def _check_markdown(
        self, step: Step, known: Mapping[str, None], edges: dict[str, str] | None
    ) -> None:
        if step.markdown is None:
            return
        if step.tool is None and step.plan is None:  # both: reported by step_kind_problems
            for name in ("args", "timeout_s", "retries", "requires_approval"):
                if getattr(step, name) != Step.model_fields[name].get_default(
                    call_default_factory=True
                ):
                    self._add(
                        step.id,
                        name,
                        ProblemCode.INVALID_PLAN,
                        f"Step {step.id!r} is a markdown step, which calls no tool, so it "
                        f"takes no {name!r}; remove it (references go in the text itself).",
                    )
        for message in find_reference_errors(step.markdown):
            self._add(
                step.id, "markdown", ProblemCode.UNKNOWN_REFERENCE, f"Step {step.id!r}: {message}"
            )
        for ref in find_references(step.markdown):
            self._check_reference(step, ref, "markdown", known, edges, self_ok=False)

    def _check_reference(
        self,
        step: Step,
        ref: Reference,
        where: str,
        known: Mapping[str, None],
        edges: dict[str, str] | None,
        *,
        self_ok: bool,
    ) -> None:
        if ref.step_id == step.id or ref.step_id == SELF:
            if not self_ok:
                self._add(
                    step.id,
                    where,
                    ProblemCode.SELF_REFERENCE,
                    f"Step {step.id!r} refers to its own output ({ref.text!r}) in {where}, "
                    "which does not exist before the step runs. Refer to another step, or "
                    "move the test to expect or intervention_if, which run after the step.",
                )
            else:
                self._check_path(step, ref, where)
            return
        if ref.step_id in RESERVED_NAMES:
            self._check_pseudo_reference(step, ref, where)
            return
        if ref.step_id not in known:
            self._add(
                step.id,
                where,
                ProblemCode.UNKNOWN_REFERENCE,
                f"Step {step.id!r} refers to {ref.text!r}, but there is no step "
                f"{ref.step_id!r}. {self._known_hint(ref.step_id, known)}",
            )
            return
        if edges is not None:
            edges.setdefault(ref.step_id, where)
        self._check_path(step, ref, where)

    # plan language 2: typed references

    def _output_schema(self, target: Step) -> Mapping[str, Any] | None:
        """The JSON schema of a step's output when it is declared (`plans.typed_references`)."""
        if target.id in self.output_schemas:
            return self.output_schemas[target.id]
        schema: Mapping[str, Any] | None = None
        if target.map is not None or target.plan is not None:
            schema = None  # a list of the tool's outputs, a sub-plan's outputs: not declared
        elif target.markdown is not None:
            schema = {"type": "string"}
        elif target.tool is not None and self.registry is not None and target.tool in self.registry:
            schema = self.registry.returns_schema(target.tool)
        self.output_schemas[target.id] = schema
        return schema

    def _target(self, step: Step, ref: Reference) -> Step | None:
        return step if ref.step_id in (step.id, SELF) else self.by_id.get(ref.step_id)

    def _check_path(self, step: Step, ref: Reference, where: str) -> None:
        """`unknown_field`: a path segment the output's declared type does not have."""
        target = self._target(step, ref)
        if target is None or not ref.path or any(not s or s[0] == "_" for s in ref.path):
            return  # a malformed path is reported as such
        root = self._output_schema(target)
        if root is None:
            return
        walk = walk_schema(root, ref.path)
        if walk.message is None or walk.position is None:
            return
        if walk.position == 0:
            kind = f"tool {target.tool!r}" if target.tool is not None else f"a {target.kind} step"
            what = f"the output of step {target.id!r} ({kind})"
        else:
            what = repr("$" + ".".join([ref.step_id, *ref.path[: walk.position]]))
        self._add(
            step.id,
            where,
            ProblemCode.UNKNOWN_FIELD,
            f"Step {step.id!r} refers to {ref.text!r}, but {what} {walk.message}.",
        )

    def _check_arg_type(self, step: Step, key: str, value: object) -> None:
        """`type_mismatch`: a whole reference whose declared type cannot fit the argument."""
        if not isinstance(value, str) or self.registry is None or step.tool not in self.registry:
            return
        template = parse_template(value)
        if not template.is_whole:
            return  # text with references in it is a string, whatever they name
        ref = template.references[0]
        target = self._target(step, ref)
        root = None if target is None else self._output_schema(target)
        params = self.registry.parameters_schema(step.tool)
        properties = (params or {}).get("properties")
        if root is None or not isinstance(properties, Mapping) or key not in properties:
            return
        walk = walk_schema(root, ref.path)
        given = json_types(root, walk.schema)
        expected = json_types(params or {}, properties[key])
        if given is None or expected is None or given & expected:
            return
        self._add(
            step.id,
            f"args.{key}",
            ProblemCode.TYPE_MISMATCH,
            f"Step {step.id!r} passes {ref.text!r} ({_types_text(given)}) to argument "
            f"{key!r} of tool {step.tool!r}, which expects {_types_text(expected)}. Refer to "
            "a field of that type, or pass a literal.",
        )

    def _check_depends_on(
        self, step: Step, known: Mapping[str, None], edges: dict[str, str] | None
    ) -> None:
        for position, step_id in enumerate(step.depends_on):
            where = f"depends_on.{position}"
            if step_id == step.id:
                self._add(
                    step.id,
                    where,
                    ProblemCode.SELF_REFERENCE,
                    f"Step {step.id!r} lists itself in depends_on; a step cannot wait for "
                    f"itself. Remove {step_id!r} from depends_on.",
                )
            elif step_id not in known:
                self._add(
                    step.id,
                    where,
                    ProblemCode.UNKNOWN_REFERENCE,
                    f"Step {step.id!r} depends on {step_id!r}, but there is no step "
                    f"{step_id!r}. {self._known_hint(step_id, known)}",
                )
            elif edges is not None:
                edges.setdefault(step_id, "depends_on")

    def _known_hint(self, step_id: str, known: Mapping[str, None]) -> str:
        """`Did you mean ...? Known steps: ...`; the listing is built once per validation."""
        if self.known_ids is None:
            self.known_ids = list(known)
            listed = self.known_ids[:_MAX_LISTED_STEPS]
            shown = ", ".join(repr(k) for k in listed)
            if len(known) > len(listed):
                shown += f", … ({len(known)} in all)"
            self.listing = f"Known steps: {shown}." if known else "The plan has no valid step ids."
        close: list[str] = []
        if self.known_ids and self.suggestion_budget >= len(self.known_ids):
            self.suggestion_budget -= len(self.known_ids)
            close = difflib.get_close_matches(step_id, self.known_ids, n=3, cutoff=0.6)
        if close:
            return "Did you mean " + " or ".join(repr(c) for c in close) + "? " + self.listing
        return self.listing

    def _cycle(self, cycle: list[str], edges: Mapping[str, Mapping[str, str]]) -> None:
        first_field = edges[cycle[0]][cycle[1 % len(cycle)]]
        if len(cycle) <= _MAX_CYCLE_SHOWN:
            chain = " -> ".join([*cycle, cycle[0]])
            links = []
            for position, step_id in enumerate(cycle):
                target = cycle[(position + 1) % len(cycle)]
                links.append(f"{step_id!r} needs {target!r} ({edges[step_id][target]})")
            detail = f": {'; '.join(links)}"
        else:
            head, tail = cycle[: _MAX_CYCLE_SHOWN - 5], cycle[-5:]
            hidden = len(cycle) - len(head) - len(tail)
            chain = " -> ".join([*head, f"… ({hidden} more steps)", *tail, cycle[0]])
            detail = f" of {len(cycle)} steps ({cycle[0]!r} needs {cycle[1]!r} in {first_field})"
        self._add(
            cycle[0],
            first_field,
            ProblemCode.CYCLE,
            f"The steps {chain} form a cycle{detail}. Remove one of these dependencies so "
            "that the steps can run in order.",
        )


def _steps_that_parse(source: object) -> tuple[list[tuple[int, Step]], list[tuple[int, str]]]:
    """Parse each step of a plan that failed to parse as a whole, on its own.

    A step with problems in some fields (already reported by `load_plan`) is
    parsed again without those fields, so that the rest of it is checked too;
    a step whose `id` or `tool` is unreadable is not checked.

    Returns:
        The steps that parse with their index in the plan, and every
        well-formed step id written in the plan with its index (also of steps
        that do not parse: a reference to them is not reported as unknown on
        top of their own problem).
    """
    data: object = source
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return [], []
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            return [], []
    if isinstance(data, Plan):
        data = {"steps": data.steps}
    if not isinstance(data, Mapping):
        return [], []
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list | tuple):
        return [], []
    steps: list[tuple[int, Step]] = []
    ids: list[tuple[int, str]] = []
    for index, raw in enumerate(raw_steps):
        if isinstance(raw, Step):
            ids.append((index, raw.id))
            broken = step_fields_with_problems(raw)
            if broken & {"id", "tool"}:
                continue
            if broken:
                raw = raw.model_copy(
                    update={
                        name: Step.model_fields[name].get_default(call_default_factory=True)
                        for name in broken
                    }
                )
            steps.append((index, raw))
            continue
        if not isinstance(raw, Mapping):
            continue
        step_id = raw.get("id")
        if isinstance(step_id, str) and _STEP_ID_RE.fullmatch(step_id):
            ids.append((index, step_id))
        step = _parse_step(raw)
        if step is not None:
            steps.append((index, step))
    return steps, ids


def _parse_step(raw: Mapping[Any, Any]) -> Step | None:
    """Parse a raw step without the fields whose problems are reported; `None` if unreadable."""
    broken: set[Any] = step_fields_with_problems(raw)
    for _ in range(2):
        if broken & {"id", "tool"}:
            return None
        try:
            return Step.model_validate({k: v for k, v in raw.items() if k not in broken})
        except ValidationError as exc:
            broken |= {error["loc"][0] for error in exc.errors() if error["loc"]}
    return None


def _declared_inputs(source: object) -> Mapping[str, Any]:
    """The plan's `inputs` by name, also from a plan that does not parse (as far as readable)."""
    if isinstance(source, Plan):
        return source.inputs
    data: object = source
    if isinstance(data, bytes | bytearray | str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            return {}
    raw = data.get("inputs") if isinstance(data, Mapping) else None
    return {str(k): v for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def _short_key(key: str) -> str:
    """A sub-plan key as people say it: the name, or the file's name."""
    head, _, rest = key.partition(":")
    if head in ("name", "example") and rest:
        return rest
    return key.rsplit("/", 1)[-1]


def _types_text(types: frozenset[str]) -> str:
    """`a number`, `a string or null`: JSON types as a message says them."""
    order = ("string", "number", "integer", "boolean", "object", "array", "null")
    shown = [
        name for name in order if name in types and not (name == "integer" and "number" in types)
    ]
    return "a " + " or ".join(shown) if shown else "nothing"


def _free_id(step_id: str, known: Mapping[str, None]) -> str:
    for number in range(2, len(known) + 3):
        suffix = f"_{number}"
        candidate = step_id[: 64 - len(suffix)] + suffix
        if candidate not in known:
            return candidate
    return step_id  # pragma: no cover - the range above always finds one


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[Any, ...]] = set()
    result = []
    for problem in problems:
        key = (problem.step_id, problem.field, problem.code, problem.message)
        if key not in seen:
            seen.add(key)
            result.append(problem)
    return result
