"""Compile a plan into a marimo notebook: Plan -> `NotebookIR` -> `.py` source.

One cell per step, named after the step, whose variable holds the step's
output (a markdown step's cell hides its code and shows its text, filled
in); each step cell passes its dependencies' variables to the runner, so
marimo's own dataflow graph (defs and refs of cells) is the plan's graph.
What the engine runs and what the file holds come from the same `NotebookIR`
("what we run is what we write"). The layout of a compiled notebook::

    # header comment
    import marimo
    __generated_with = "0.25.2"
    app = marimo.App(app_title="Hull and air diagnostics")

    with app.setup:
        import json

        import marimo as mo
        from marimo_engine.engine.runtime import StepRunner
        from marimo_engine.tools.examples import analyze_atmosphere, check_oxygen, scan_hull

        PLAN = json.loads(r"...")  # the plan itself, as its JSON, one step per line
        plan_run = StepRunner(PLAN, tools={"scan_hull": scan_hull, ...})

    @app.cell(hide_code=True)
    def _():
        mo.md("### s3 · `analyze_atmosphere` ...")  # the step's description
        return

    @app.cell
    async def s3(s1, s2):
        s3 = await plan_run.step("s3", s1, s2)
        return (s3,)

Step ids that are not Python identifiers, or that would clash with Python
keywords, builtins, names of the setup cell or each other, are mapped to safe
variable names deterministically (`safe_variable_names`).

Every string that comes from the plan (its id, title, step ids, tool names,
descriptions, expressions, arguments, the plan's JSON) is written into the
source by one function, `python_string`, as a string literal that evaluates
to exactly that text: never into a comment, never by an f-string. Whatever
a string holds (newlines, `\r`, NUL, quotes, backslashes, lone surrogates),
it stays data. Names written as code (variables, imports) are Python
identifiers by construction.
"""

from __future__ import annotations

import builtins
import functools
import html
import json
import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from marimo_engine.plans.schema import Plan
    from marimo_engine.tools.registry import ToolRegistry

__all__ = [
    "RUNNER_NAME",
    "CellIR",
    "NotebookIR",
    "compile_plan",
    "plan_to_notebook",
    "python_string",
    "render_notebook",
    "safe_variable_names",
]

RUNNER_NAME = "plan_run"
"""The setup cell's name for the `StepRunner` that step cells call."""

INPUTS_NAME = "plan_inputs"
"""The variable of a plan's input values (plan language 2): defined by its inputs
cell, passed to the steps that read `$input`; a parent's `app.embed(defs=...)` replaces it."""

_SETUP_NAMES = frozenset(
    {"json", "mo", "marimo", "app", "StepRunner", "PLAN", "SUBPLANS", RUNNER_NAME, INPUTS_NAME}
)
_NOT_IDENTIFIER = re.compile(r"[^0-9A-Za-z_]")


@dataclass(frozen=True)
class CellIR:
    """One cell of a compiled notebook.

    Attributes:
        name: The cell's function name: the step's variable for a step cell,
            `"_"` for a markdown cell.
        code: The cell's code (no function wrapper), as marimo stores it.
        kind: `"step"` runs a step; `"markdown"` shows its description;
            `"inputs"` defines `plan_inputs` (a plan with `inputs`).
        step_id: The step the cell belongs to.
        defs: Names the cell defines (the step's variable for a step cell).
        refs: Names of other cells' variables the cell reads, in order.
        is_async: Whether the code awaits (the function is `async def`).
        hide_code: Whether marimo hides the code by default.
    """

    name: str
    code: str
    kind: Literal["step", "markdown", "inputs"]
    step_id: str
    defs: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()
    is_async: bool = False
    hide_code: bool = False


@dataclass(frozen=True)
class NotebookIR:
    """A plan compiled to notebook form.

    A run needs only the step cells; the rest of the notebook (the setup
    cell with the plan's JSON and its sub-plans' notebooks, the inputs and
    markdown cells) is built the first time it is read (`setup_code`,
    `cells`), which is when the notebook is written (`render_notebook`),
    never during a run.

    Attributes:
        plan: The plan compiled.
        title: The notebook's title (the plan's name, else its id).
        variables: Step id to the variable holding its output.
        dependencies: Step id to the ids of the steps it depends on, in the
            order its cell passes them to `plan_run.step`.
        unimportable_tools: Tool names that could not be imported by module
            path; a standalone run of the notebook fails those steps.
        step_cells: Step id to its step cell, in plan order.
        runner: The name step cells call the runner by.
        embedded: Whether this is a sub-plan's notebook (its runner records
            events for the parent).
        setup_code: The setup cell's code: imports, the plan literal, the
            sub-plans' notebooks (`SUBPLANS`) and the `plan_run` runner
            (built on first read).
        cells: The inputs cell (a plan with `inputs`), then markdown and step
            cells, in plan order (markdown first; a markdown step has its step
            cell only; built on first read).
    """

    plan: Plan
    title: str
    variables: Mapping[str, str]
    dependencies: Mapping[str, tuple[str, ...]]
    unimportable_tools: tuple[str, ...] = ()
    step_cells: Mapping[str, CellIR] = field(default_factory=dict)
    runner: str = RUNNER_NAME
    embedded: bool = False
    import_lines: tuple[str, ...] = field(default=(), repr=False)
    tool_expressions: Mapping[str, str] = field(default_factory=dict, repr=False)
    # What the sub-plans' notebooks are compiled with (only for a plan with sub-plan steps).
    registry: Any = field(default=None, repr=False, compare=False)
    plans: Any = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def setup_code(self) -> str:
        """The setup cell's code: imports, the plan literal, `SUBPLANS` and the runner."""
        plan = self.plan
        plan_literal = _plan_literal(
            _plan_json(plan.model_dump(mode="json", exclude_defaults=True))
        )
        tools_literal = (
            "{"
            + ", ".join(
                f"{python_string(name)}: {self.tool_expressions[name]}"
                for name in plan.tool_names
                if name in self.tool_expressions
            )
            + "}"
        )
        subplan_lines = _subplan_sources(plan, self.registry, self.plans)
        runner_args = f"PLAN, tools={tools_literal}"
        if subplan_lines:
            runner_args += ", subplans=SUBPLANS"
        if self.embedded:
            runner_args += ", embedded=True"
        unimportable = self.unimportable_tools
        setup_lines = [
            "import json",
            "",
            "import marimo as mo",
            "from marimo_engine.engine.runtime import StepRunner",
            *self.import_lines,
            "",
            *(
                [
                    "# Not importable by module path, so not callable here: "
                    + ", ".join(python_string(name) for name in unimportable)
                ]
                if unimportable
                else []
            ),
            f"PLAN = {plan_literal}",
            *subplan_lines,
            f"{RUNNER_NAME} = StepRunner({runner_args})",
        ]
        return "\n".join(setup_lines)

    @functools.cached_property
    def cells(self) -> tuple[CellIR, ...]:
        """The inputs cell, then markdown and step cells, in plan order (markdown first)."""
        cells: list[CellIR] = []
        if self.plan.inputs:
            cells.append(
                CellIR(
                    name=INPUTS_NAME,
                    code=f"{INPUTS_NAME} = {self.runner}.default_inputs()",
                    kind="inputs",
                    step_id="",
                    defs=(INPUTS_NAME,),
                    hide_code=True,
                )
            )
        for step in self.plan.steps:
            if step.markdown is None:  # a markdown step's own cell is the markdown a person reads
                variable = self.variables[step.id]
                md = f"mo.md({python_string(_markdown_text(step, variable), block=True)})"
                cells.append(
                    CellIR(name="_", code=md, kind="markdown", step_id=step.id, hide_code=True)
                )
            cells.append(self.step_cells[step.id])
        return tuple(cells)


def safe_variable_names(
    step_ids: list[str], reserved: frozenset[str] | set[str] = frozenset()
) -> dict[str, str]:
    """Map step ids to Python variable names, deterministically.

    Rules, in order: characters other than letters, digits and `_` become
    `_`; a name that does not start with a letter gets the prefix `step_`
    (marimo treats `_`-names as cell-private); a Python keyword or soft
    keyword, a builtin, or a `reserved` name gets the suffix `_step`; a name
    already taken by an earlier step (in list order) gets `_2`, `_3`, …

    Args:
        step_ids: The plan's step ids, in list order.
        reserved: Names that step variables must not take (the setup cell's
            names, such as imported tool functions).

    Returns:
        Step id to variable name. An id that is already a safe name maps to
        itself unless an earlier step took that name (`a-b` then `a_b` gives
        `a_b` and `a_b_2`).
    """
    taken: set[str] = set()
    names: dict[str, str] = {}
    for step_id in step_ids:
        name = _NOT_IDENTIFIER.sub("_", step_id)
        if not name[:1].isalpha():
            name = "step_" + name
        if (
            keyword.iskeyword(name)
            or keyword.issoftkeyword(name)
            or hasattr(builtins, name)
            or name in reserved
            or name in _SETUP_NAMES
        ):
            name += "_step"
        base, n = name, 1
        while name in taken or name in reserved:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        names[step_id] = name
    return names


def python_string(text: str, *, block: bool = False) -> str:
    """Return a Python string literal whose value is exactly `text`; plan text enters source so.

    Whatever `text` holds (newlines, `\\r`, NUL, quotes, backslashes, lone
    surrogates, U+2028), the literal is one inert expression: it cannot end
    early, and it is valid UTF-8 source.

    Args:
        text: Any string (a `str` subclass is read as its plain `str` value).
        block: Allow the readable multi-line form `r\"\"\"...\"\"\"`, used when
            every line is printable and the text has no `\"\"\"`, and does not
            end with `\"` or a backslash. Its value has a newline added at
            each end, so use it only where surrounding whitespace does not
            matter (Markdown, JSON). Without `block`, or when the text does
            not qualify, the literal is `repr`'s: one line, with every
            character that is not printable escaped (`\\n`, `\\x00`, `\\ud800`).

    Returns:
        The literal's source text. With `block=False` it never holds a line
        break, so it may also stand in a comment.
    """
    text = str.__str__(text)
    if block and _is_plain_block(text):
        return 'r"""\n' + text + '\n"""'
    return str.__repr__(text)


def _is_plain_block(text: str) -> bool:
    if '"""' in text or text.endswith(('"', "\\")):
        return False
    return all(line.isprintable() for line in text.split("\n"))


_NOT_PLAIN = re.compile(r"[^\x20-\x7e\n]")


def _printable_json(text: str) -> str:
    """JSON text with each character that is not printable written as its `\\u` escape.

    Same JSON value; such characters only occur inside JSON strings, where
    `\\uXXXX` (a pair for characters past U+FFFF) means the same character.
    """

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return char if char.isprintable() else json.dumps(char)[1:-1]

    return _NOT_PLAIN.sub(escape, text)


def _plan_json(data: Mapping[str, Any]) -> str:
    """Return the plan as JSON text with one line per step.

    Readable in the notebook, and written by `json`'s C encoder: an indented
    dump goes through its pure-Python encoder, ~10x slower on long plans.
    """

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = ["{"]
    lines += [f"  {dump(key)}: {dump(value)}," for key, value in data.items() if key != "steps"]
    steps = [f"    {dump(step)}" for step in data.get("steps", [])]
    lines += ['  "steps": [', ",\n".join(steps), "  ]", "}"]
    return _printable_json("\n".join(lines))


def _plan_literal(plan_json: str) -> str:
    """Return Python source that evaluates to the plan's dict: `json.loads(r\"\"\"...\"\"\")`.

    The plan stays readable as the JSON a person or model wrote: JSON text
    never holds three quotes in a row (every quote inside a string is
    escaped and structural quotes are kept apart by `:` and `,`) and never
    ends in a backslash, so `python_string` writes it as a raw triple-quoted
    block unless it holds characters that are not printable.
    """
    return f"json.loads({python_string(plan_json, block=True)})"


def _import_lines(
    registry: ToolRegistry, tool_names: list[str]
) -> tuple[list[str], dict[str, str], list[str], set[str]]:
    """Plan the setup cell's tool imports.

    Returns:
        `(import lines, tool name -> expression, unimportable tool names,
        names the imports define)`.
    """
    by_module: dict[str, dict[str, str]] = {}
    expressions: dict[str, str] = {}
    unimportable: list[str] = []
    bound: dict[str, tuple[str, str]] = {}  # local name -> (module, top-level name)
    for tool_name in tool_names:
        spec = registry.get(tool_name)
        if spec.import_path is None or not _is_dotted_name(".".join(spec.import_path)):
            unimportable.append(tool_name)
            continue
        module, qualname = spec.import_path
        top, _, rest = qualname.partition(".")
        local = top
        n = 1
        while (local in bound and bound[local] != (module, top)) or local in _SETUP_NAMES:
            n += 1
            local = f"{top}_{n}"
        bound[local] = (module, top)
        by_module.setdefault(module, {})[top] = local
        expressions[tool_name] = local + ("." + rest if rest else "")
    lines = []
    for module in sorted(by_module):
        names = sorted(
            (top if top == local else f"{top} as {local}")
            for top, local in by_module[module].items()
        )
        lines.append(f"from {module} import {', '.join(names)}")
    return lines, expressions, unimportable, set(bound)


_BACKTICK_RUN = re.compile(r"`+")


def _is_dotted_name(text: str) -> bool:
    """Whether `text` is `a.b.c` of identifiers: safe to write as code in an import line."""
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in text.split("."))


def _code_span(text: str) -> str:
    """Return `text` as a Markdown code span (shown literally, HTML included).

    The fence is one backtick longer than the longest run of backticks in
    the text (CommonMark, "Code spans"), found in one pass: linear in the
    text's length.
    """
    text = " ".join(text.split())
    longest = max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _markdown_text(step: Any, variable: str) -> str:
    what = _code_span(step.tool) if step.tool is not None else "plan " + _code_span(step.plan)
    lines = [f"### {_code_span(step.id)} · {what}"]
    if step.description:
        lines += ["", html.escape(" ".join(step.description.split()), quote=False)]
    details = []
    if step.args:
        details.append(
            "args: " + _code_span(json.dumps(step.args, ensure_ascii=False, default=str))
        )
    if step.map is not None:
        details.append(f"once per item of {_code_span(step.map)}")
    if step.run_if:
        details.append(f"runs if {_code_span(step.run_if)}")
    if step.intervention_if:
        details.append(f"stops for a person if {_code_span(step.intervention_if)}")
    details += [f"expects {_code_span(text)}" for text in step.expect]
    if step.output_schema is not None:
        details.append("output checked against a JSON schema")
    if step.depends_on:
        details.append("after " + ", ".join(_code_span(d) for d in step.depends_on))
    if step.key_finding:
        details.append("**key finding**")
    if step.timeout_s is not None:
        details.append(f"timeout {step.timeout_s:g} s")
    if step.retries:
        details.append(f"retries {step.retries}")
    if variable != step.id:
        details.append(f"variable {_code_span(variable)}")
    if details:
        lines += ["", " · ".join(details)]
    return "\n".join(lines)


def compile_plan(
    plan: Plan | Mapping[str, Any] | str, tools: Any = None, *, plans: Any = None
) -> NotebookIR:
    """Compile a valid plan into its notebook IR.

    Args:
        plan: A `Plan`, a dict or a JSON string.
        tools: A `ToolRegistry` or a mapping of names to callables; used to
            import tools by module path in the setup cell.
        plans: As for `plan_to_notebook`.

    Returns:
        The `NotebookIR`.

    Raises:
        PlanValidationError: The plan has problems (every one is listed).
            With `tools=None`, tool names and arguments are not checked and
            no tool is imported (the notebook names them as not importable).
    """
    from marimo_engine.plans.validation import check_plan
    from marimo_engine.tools.registry import as_registry

    registry = None if tools is None else as_registry(tools)
    checked = check_plan(plan, registry, plans=plans)
    return compile_checked_plan(checked, registry, plans=plans)


def compile_checked_plan(
    plan: Plan,
    registry: ToolRegistry | None,
    *,
    runner: str = RUNNER_NAME,
    reserved: frozenset[str] | set[str] = frozenset(),
    plans: Any = None,
    embedded: bool = False,
    inputs_cell: bool = True,
) -> NotebookIR:
    """Compile a plan that `check_plan` has already accepted (no second validation).

    Args:
        plan: The checked plan.
        registry: The tools it was checked against, or `None` (no imports).
        runner: The name step cells call the runner by (a live run's is
            per plan, `live_run.runner_name`).
        reserved: Names step variables must not take (a live notebook's
            other cells' names).
        plans: Where its sub-plan steps' plans are found (`PlanLibrary`);
            each is compiled to its own notebook, held in the setup cell's
            `SUBPLANS` and embedded with `app.embed()` when its step runs.
        embedded: Compile the notebook of a sub-plan: its runner records
            events for the parent instead of printing them.
        inputs_cell: Whether the steps that read `$input` take the values
            from the inputs cell (`plan_inputs=plan_inputs`). A live run's
            cells do not: its runner holds the run's values (`live_run`).

    Returns:
        The `NotebookIR`.
    """
    from marimo_engine.plans.dependencies import step_dependencies

    tool_names = plan.tool_names
    if registry is None:
        import_lines, tool_exprs, unimportable, imported = [], {}, list(tool_names), set()
    else:
        import_lines, tool_exprs, unimportable, imported = _import_lines(registry, tool_names)
    variables = safe_variable_names(plan.step_ids, reserved=set(imported) | set(reserved))
    deps = step_dependencies(plan)
    step_cells: dict[str, CellIR] = {}
    subplans = False
    for step in plan.steps:
        variable = variables[step.id]
        refs = tuple(variables[d] for d in deps[step.id])
        inputs = inputs_cell and bool(plan.inputs) and _reads_inputs(step)
        subplans = subplans or step.plan is not None
        step_cells[step.id] = CellIR(
            name=variable,
            code=step_cell_code(runner, variable, python_string(step.id), refs, inputs=inputs),
            kind="step",
            step_id=step.id,
            defs=(variable,),
            refs=(*refs, INPUTS_NAME) if inputs else refs,
            is_async=True,
            hide_code=step.markdown is not None,
        )
    return NotebookIR(
        plan=plan,
        title=plan.name or plan.id,
        variables=variables,
        dependencies=deps,
        unimportable_tools=tuple(unimportable),
        step_cells=step_cells,
        runner=runner,
        embedded=embedded,
        import_lines=tuple(import_lines),
        tool_expressions=tool_exprs,
        # kept for the setup cell's SUBPLANS only; a plan without sub-plans holds neither
        registry=registry if subplans else None,
        plans=plans if subplans else None,
    )


def step_cell_code(
    runner: str, variable: str, step_literal: str, refs: Sequence[str], *, inputs: bool = False
) -> str:
    """A step cell's code: `s3 = await plan_run.step("s3", s1, s2)`.

    Args:
        runner: The name the cell calls the runner by.
        variable: The step's variable.
        step_literal: The step id's string literal (`python_string(step_id)`).
        refs: The variables of its dependencies, in `step_dependencies` order.
        inputs: Whether the step reads `$input` (then the call ends with
            `plan_inputs=plan_inputs`).
    """
    args = ", ".join([step_literal, *refs])
    if inputs:
        args += f", {INPUTS_NAME}={INPUTS_NAME}"
    return f"{variable} = await {runner}.step({args})"


def _reads_inputs(step: Any) -> bool:
    """Whether a step names `$input` (in `map`, `args`, `markdown`, `run_if`,
    `intervention_if` or `expect`)."""
    from marimo_engine.plans.dependencies import expression_step_ids
    from marimo_engine.plans.references import find_references

    texts = [step.map or "", step.args, step.markdown or ""]
    named = [ref.step_id for ref in find_references(texts)]
    named += expression_step_ids(step.run_if) + expression_step_ids(step.intervention_if)
    for text in step.expect:
        named += expression_step_ids(text)
    return "input" in named


def subplan_notebooks(plan: Plan, registry: Any, plans: Any) -> dict[str, str]:
    """Each sub-plan step's own notebook source, compiled to run embedded (`app.embed()`).

    Args:
        plan: The plan.
        registry: Its tools (the sub-plans' notebooks import theirs too).
        plans: Where its sub-plan steps find their plans (`as_library`).

    Returns:
        Step id of each sub-plan step to its plan's notebook (`render_notebook`
        of `compile_checked_plan(..., embedded=True)`); empty without any.
    """
    steps = [step for step in plan.steps if step.plan is not None]
    if not steps:
        return {}
    from marimo_engine.plans.subplans import as_library

    library = as_library(plans)
    sources = {}
    for step in steps:
        resolved = library.resolve(step.plan)
        inner = type(library)(library.given, base_dir=resolved.base_dir)
        sources[step.id] = render_notebook(
            compile_checked_plan(resolved.plan, registry, plans=inner, embedded=True)
        )
    return sources


def _subplan_sources(plan: Plan, registry: Any, plans: Any) -> list[str]:
    """The setup lines holding each sub-plan step's notebook source (`SUBPLANS`).

    Returns:
        The lines; none when the plan has no sub-plan step.
    """
    sources = subplan_notebooks(plan, registry, plans)
    if not sources:
        return []
    return [
        "SUBPLANS = {  # each sub-plan step's own notebook, run with app.embed()",
        *(f"    {python_string(sid)}: {_source_literal(src)}," for sid, src in sources.items()),
        "}",
    ]


def _source_literal(source: str) -> str:
    """A literal of a notebook's source: a raw `'''` block when it can be, else `repr`.

    Inside the setup cell every line gets four more spaces; the runner
    removes them (`textwrap.dedent`) before it runs the source.
    """
    if (
        "'''" in source
        or source.endswith(("'", "\\"))
        or not all(line.isprintable() for line in source.split("\n"))
    ):
        return python_string(source)
    return "r'''\n" + source + "\n'''"


def _indent(code: str) -> str:
    # split("\n"), not splitlines(): the plan's JSON may hold U+2028 and the like,
    # which splitlines() would break inside a string.
    return "\n".join(("    " + line) if line else "" for line in code.split("\n"))


def render_notebook(ir: NotebookIR, inputs: Mapping[str, Any] | None = None) -> str:
    """Render the IR as a marimo notebook file (`.py`).

    Args:
        ir: A compiled notebook.
        inputs: The plan input values of the run the notebook is of: its
            inputs cell gives them (as JSON) to `default_inputs`, so the
            notebook runs with what the run read. Values that are not JSON
            (a DataFrame) are left out, with a comment naming them: those
            inputs take their defaults there.

    Returns:
        Source that marimo's loader accepts, `marimo edit` opens, `python
        file.py` runs and `marimo export html` exports (given importable tools).
    """
    from marimo_engine import __version__

    marimo_version = _marimo_version()
    parts = [
        f"# Plan {python_string(ir.plan.id)} compiled by marimo-engine {__version__}: "
        "one cell per step.",
        "# Open with `marimo edit THIS_FILE`, re-run the plan with `python THIS_FILE`,",
        "# export with `marimo export html THIS_FILE -o report.html`.",
        "",
        "import marimo",
        "",
        f'__generated_with = "{marimo_version}"',
        f'app = marimo.App(width="medium", app_title={python_string(ir.title)})',
        "",
        "with app.setup:",
        _indent(ir.setup_code),
        "",
    ]
    for cell in ir.cells:
        code = cell.code
        if cell.kind == "inputs" and inputs:
            code = _inputs_code(ir.runner, inputs)
        parts.append("")
        parts.append("@app.cell(hide_code=True)" if cell.hide_code else "@app.cell")
        prefix = "async def" if cell.is_async else "def"
        parts.append(f"{prefix} {cell.name}({', '.join(cell.refs)}):")
        parts.append(_indent(code))
        returns = f"return ({', '.join(cell.defs)},)" if cell.defs else "return"
        parts.append(f"    {returns}")
        parts.append("")
    parts += ["", 'if __name__ == "__main__":', "    app.run()", ""]
    return "\n".join(parts)


def _inputs_code(runner: str, inputs: Mapping[str, Any]) -> str:
    """The inputs cell of a run's notebook: the run's JSON input values, else the defaults."""
    kept: dict[str, Any] = {}
    left: list[str] = []
    for name, value in inputs.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            left.append(name)
        else:
            kept[name] = value
    lines = []
    if left:
        lines.append(
            "# The run's values of "
            + ", ".join(python_string(name) for name in left)
            + " are not JSON: they take their defaults here."
        )
    given = python_string(json.dumps(kept, ensure_ascii=False, sort_keys=True))
    lines.append(f"{INPUTS_NAME} = {runner}.default_inputs(json.loads({given}))")
    return "\n".join(lines)


@functools.cache
def _marimo_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("marimo")
    except PackageNotFoundError:  # pragma: no cover - marimo is a dependency
        return "unknown"


def plan_to_notebook(
    plan: Plan | Mapping[str, Any] | str,
    tools: Any = None,
    *,
    plans: Any = None,
    inputs: Mapping[str, Any] | None = None,
) -> str:
    """Compile a plan into marimo notebook source.

    Args:
        plan: A `Plan`, a dict or a JSON string.
        tools: A `ToolRegistry` or a mapping of names to callables. Tools
            importable by module path are imported in the setup cell. With
            `None`, tool names and arguments are not checked and no tool is
            imported (the notebook runs only where its steps' tools are
            given some other way).
        plans: Where sub-plan steps find their plans (`PlanLibrary` or a
            mapping of names to plans); `None`: examples and files next to
            the current directory.
        inputs: Plan input values the notebook runs with (JSON values; see
            `render_notebook`); inputs not given take their defaults.

    Returns:
        The notebook's `.py` source (see the module docstring for its layout).

    Raises:
        PlanValidationError: The plan has problems (every one is listed).
    """
    return render_notebook(compile_plan(plan, tools, plans=plans), inputs)
