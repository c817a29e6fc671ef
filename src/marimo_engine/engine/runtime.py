"""What a compiled notebook's cells call: the notebook and live-kernel hosts of a step.

A compiled notebook's setup cell builds a `StepRunner` named `plan_run` from
the plan and the tools, and each step cell is one line::

    s3 = await plan_run.step("s3", s1, s2)

The same cells run in three places, each a thin host of `step.run_step`
(the step semantics, written once):

- **Under the engine** (`execute_plan`): the run puts its own host in the
  cells' globals (`engine._run`), which streams events and fails fast.
- **Standalone** (`marimo edit`, `python notebook.py`, `marimo export html`):
  `StepRunner`. A skipped step and a step that needs a person stop their
  cell with `mo.stop`, so marimo itself does not run the cells that depend
  on them: marimo's reactivity is the plan's skip propagation. After a step
  failed or needed a person, other steps do not start (their cells stop with
  a note) until that step runs again and succeeds, as the engine stops.
  Run as a script, it prints each step's outcome and, at the end, the steps
  that never ran and the verdict (`engine._script_report`). Events are
  appended as JSON lines to the file named by the environment variable
  `MARIMO_ENGINE_EVENTS` when it is set.
- **In a live kernel** (`run_plan_live`): `KernelStepRunner`, which records
  each step's events for the engine to read back; the engine's scheduler
  decides which cell runs next.

This module imports nothing heavy at module level: it is imported by every
compiled notebook.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from marimo_engine.engine.step import StepOutcome, prepare_steps, run_step
from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.engine._threads import WorkerPool
    from marimo_engine.engine.events import Event
    from marimo_engine.plans.schema import Plan

__all__ = ["EVENTS_FILE_VARIABLE", "KernelStepRunner", "StepRunner"]

EVENTS_FILE_VARIABLE = "MARIMO_ENGINE_EVENTS"
"""Environment variable: a file a standalone notebook run appends its events to (JSON lines)."""

_NOT_IMPORTABLE = (
    "it was not importable by module path when this notebook was written; define it in an "
    "importable module and export again"
)


class StepRunner:
    """Runs a compiled notebook's steps standalone (`marimo edit`, `python file.py`).

    Args:
        plan: The plan, as a `Plan`, a dict or a JSON string.
        tools: Tool name to callable. A tool missing here (not importable
            by module path when the notebook was written) fails its step
            with `UnknownToolError` saying so.

    Attributes:
        plan: The parsed plan.
        plan_id: Its id.
        events: Every event of the steps run so far, in order.

    Raises:
        PlanValidationError: The plan does not parse.
    """

    _missing_reason = _NOT_IMPORTABLE
    # Standalone, the runner is the run: after a failure or an intervention
    # other steps do not start, and in a script run the steps a skip blocked
    # (marimo does not run their cells at all) are reported as skipped.
    _standalone = True

    def __init__(
        self,
        plan: Plan | Mapping[str, Any] | str,
        tools: Mapping[str, Callable[..., Any] | None],
        *,
        missing: Mapping[str, str] | None = None,
        subplans: Mapping[str, str] | None = None,
        embedded: bool = False,
    ) -> None:
        from marimo_engine.plans.schema import load_plan
        from marimo_engine.tools.registry import build_tool_spec

        self.plan = load_plan(plan)
        self.plan_id = self.plan.id
        self.embedded = embedded
        self.plan_inputs: dict[str, Any] | None = None
        specs = {
            name: None if function is None else build_tool_spec(function, name=name)
            for name, function in tools.items()
        }
        why = {s.tool: self._missing_reason for s in self.plan.steps if s.tool is not None}
        why.update(missing or {})
        notebooks = {sid: _SubNotebook(sid, source) for sid, source in (subplans or {}).items()}
        self._steps = prepare_steps(self.plan, specs, missing=why, subplans=notebooks)
        self._pool: WorkerPool | None = None
        self._stopped_by: str | None = None
        from marimo_engine.engine._script_report import ScriptReport
        from marimo_engine.engine.events import EventFold
        from marimo_engine.engine.graph import StepGraph

        self.fold = EventFold()
        graph = StepGraph.from_dependencies(
            self.plan.step_ids, {sid: p.dependencies for sid, p in self._steps.items()}
        )
        self._report = ScriptReport(self.plan, graph, self.fold, self.record)

    @property
    def pool(self) -> WorkerPool:
        """The worker threads of plain-function tools (made on first use)."""
        if self._pool is None:
            from marimo_engine.engine._threads import WorkerPool

            self._pool = WorkerPool()
        return self._pool

    @property
    def events(self) -> list[Event]:
        """Every event of the steps run so far, in order."""
        return self.fold.events

    async def emit(self, event: Event) -> None:
        """The host's `emit`: see `record`."""
        self.record(event)

    def record(self, event: Event) -> None:
        """Fold the event in; append it to `$MARIMO_ENGINE_EVENTS`; print it in a script run.

        A sub-plan's notebook (`embedded`) only folds: its parent records its
        events, with `parent_step_id`, once the step ran.
        """
        self.fold.add(event)
        if self.embedded:
            return
        path = os.environ.get(EVENTS_FILE_VARIABLE)
        if path:
            with open(path, "a", encoding="utf-8") as sink:
                sink.write(event.to_json_line() + "\n")
        self._report.show(event)

    async def sleep(self, seconds: float) -> None:
        """The retry backoff."""
        import asyncio

        await asyncio.sleep(seconds)

    def default_inputs(self, given: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The plan's input values: those `given`, else the defaults (the inputs cell's value).

        Args:
            given: Input name to value: the values of the run whose notebook
                this is (`render_notebook(..., inputs=)`), or `None`.

        Raises:
            UsageError: A required input has no value: run the notebook as
                a sub-plan (its parent gives the inputs) or give a default.
        """
        from marimo_engine.engine._subplan import input_values

        return input_values(self.plan, given)

    async def run_subplan(self, prepared: Any, values: Mapping[str, Any]) -> Any:
        """`run_step`'s hook for a sub-plan step: its notebook, run with marimo's `app.embed()`.

        The sub-plan's events of this run are recorded here with
        `parent_step_id`. When marimo answers from its cache (the same
        inputs again in `marimo edit`), no cell runs and the last result is
        the answer again.

        Returns:
            The sub-plan's `ExecutionResult` (its verdict from its events).
        """
        from marimo_engine.engine.compiler import INPUTS_NAME
        from marimo_engine.engine.events import ErrorInfo, EventFold, ExecutionResult, Verdict

        notebook: _SubNotebook = prepared.subplan
        child = notebook.last_runner or notebook.runner
        child._stopped_by = child._report.held_back_by = None  # a new run of the sub-plan
        defs = {INPUTS_NAME: dict(values)} if notebook.plan.inputs else None
        raised: Exception | None = None
        try:
            embedded = await notebook.app.embed(defs=defs)
        except Exception as exc:  # as a script, marimo re-raises a cell's error
            raised = exc
        else:
            # In a kernel, the embedded app has its own globals (its own runner).
            child = embedded.defs.get("plan_run", child)
        notebook.last_runner = child
        start = notebook.marks.get(id(child), 0)
        new = child.fold.events[start:]
        notebook.marks[id(child)] = len(child.fold.events)
        if not new and raised is None and notebook.last_result is not None:
            return notebook.last_result
        fold = EventFold()
        for event in new:
            fold.add(event)
        error = fold.error
        if error is None and raised is not None:
            cause = raised.__cause__ or raised
            error = ErrorInfo.from_exception(cause)
        for event in new:
            nested = event.model_copy()
            if nested.parent_step_id is None:
                nested.parent_step_id = prepared.id
            self.record(nested)
        result = ExecutionResult(
            plan_id=child.plan_id,
            verdict=Verdict.FAILURE if error is not None else fold.verdict(),
            outputs=dict(fold.outputs),
            skipped=list(fold.skipped),
            error=error,
            intervention=fold.intervention,
            events=list(new),
        )
        notebook.last_result = result
        return result

    async def step(self, step_id: str, *inputs: Any, plan_inputs: Any = None) -> Any:
        """Run one step in a marimo cell and return its output.

        Args:
            step_id: The step's id in the plan.
            *inputs: The outputs of the step's dependencies, in the order of
                `step_dependencies(plan)[step_id]` (the cell passes them so
                that marimo's graph holds the plan's edges).
            plan_inputs: The plan's input values, passed by the cells of
                steps that read `$input` (the inputs cell's `plan_inputs`).

        Returns:
            The tool's output, which the cell assigns to the step's variable
            and shows as its output.

        Raises:
            MarimoStopError: Through `mo.stop`, when `run_if` is false (the
                step is skipped), `intervention_if` is true (a person must
                decide), or another step's failure stopped the run; marimo
                then does not run the dependent cells.
            UsageError: An unknown step id, or the wrong number of inputs.
            BaseException: What failed the step (the tool's exception once
                no retry was left, `TimeoutError`, `UnknownToolError` …).
        """
        import marimo as mo

        prepared = self._steps.get(step_id)
        if prepared is None:
            known = ", ".join(repr(k) for k in self._steps)
            raise UsageError(
                f"Plan {self.plan.id!r} has no step {step_id!r}. Known steps: {known}."
            )
        if len(inputs) != len(prepared.dependencies):
            raise UsageError(
                f"Step {step_id!r} got {len(inputs)} inputs but depends on "
                f"{len(prepared.dependencies)} steps ({', '.join(prepared.dependencies)})."
            )
        if self._standalone and self._stopped_by not in (None, step_id):
            note = f"**Not started** `{step_id}`: the run stopped at step `{self._stopped_by}`."
            mo.stop(True, mo.md(note))
        inputs_by_id = dict(zip(prepared.dependencies, inputs, strict=True))
        if plan_inputs is not None:
            self.plan_inputs = plan_inputs
        result = await run_step(prepared, inputs_by_id, self)
        outcome = result.outcome
        if outcome in (StepOutcome.FAILED, StepOutcome.INTERVENTION):
            self._stopped_by = self._report.held_back_by = step_id
        elif self._stopped_by == step_id:
            self._stopped_by = self._report.held_back_by = None
        if outcome is StepOutcome.SKIPPED:
            stop_skipped(step_id, prepared.step.run_if)
        if outcome is StepOutcome.FAILED:
            assert result.error is not None
            raise result.error
        if outcome is StepOutcome.INTERVENTION:
            stop_for_person(step_id, prepared.step.intervention_if, result.output)
        shown = result.output
        if prepared.step.markdown is not None:  # a markdown step shows as markdown
            shown = mo.md(result.output)
        mo.output.replace(shown)
        return result.output


class _SubNotebook:
    """A sub-plan step's own notebook (compiled source), loaded as a marimo `App`.

    The source is run as a module (its `with app.setup:` block runs then and
    builds the sub-plan's runner); `linecache` holds it so that marimo can
    read each cell's code back, as it does from a file.

    Attributes:
        app: The sub-plan's `marimo.App`, embedded with `app.embed()`.
        plan: The sub-plan.
        runner: Its `StepRunner` (embedded: records events, prints nothing).
    """

    def __init__(self, step_id: str, source: str) -> None:
        import linecache
        import textwrap

        text = textwrap.dedent(source).strip("\n") + "\n"
        filename = f"<marimo-engine sub-plan of step {step_id}>"
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        namespace: dict[str, Any] = {"__name__": f"marimo_engine_subplan_{id(self):x}"}
        namespace["__file__"] = filename
        exec(compile(text, filename, "exec"), namespace)
        self.app = namespace["app"]
        self.runner: StepRunner = namespace["plan_run"]
        self.plan = self.runner.plan
        self.last_runner: StepRunner | None = None
        self.last_result: Any = None
        self.marks: dict[int, int] = {}  # id of a runner -> its events already reported


def _import_tool(module: str, qualname: str, source: str = "") -> Any:
    """Import a tool by module path, else from its source file (a tools file).

    Raises:
        ImportError: Neither works; the message names the file when there is one.
    """
    import sys

    try:
        value: Any = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if not source or exc.name != module.split(".")[0]:
            raise
        if not os.path.isfile(source):
            raise ImportError(
                f"module {module!r} is not importable here and its file {source} is not on "
                "this machine; install the tools as a package in the notebook's environment"
            ) from exc
        from importlib.util import module_from_spec, spec_from_file_location

        spec = spec_from_file_location(module, source)
        if spec is None or spec.loader is None:
            raise
        value = module_from_spec(spec)
        sys.modules[module] = value
        try:
            spec.loader.exec_module(value)
        except BaseException:
            sys.modules.pop(module, None)
            raise
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


class KernelStepRunner(StepRunner):
    """Runs a live plan run's steps in a person's kernel, recording each step's events.

    `run_plan_live` adds a setup cell that builds one under a fresh name, and
    one cell per step in the compiler's form
    (`s3 = await plan_run_1a2b3c.step("s3", s1, s2)`); after running a step's
    cell it reads `records[step_id]` back. The engine's scheduler decides
    which step runs next, so this runner does not stop steps itself.

    Args:
        spec_json: JSON text of `{"plan": <plan as JSON>, "tools": {name:
            [module, qualname, file]}, "inputs": {name: value}, "subplans":
            {step_id: notebook source}}`; each tool is imported by module
            path, else from `file` (its module's source file, `""` if none);
            `inputs` (absent for a plan without inputs) are the run's plan
            input values, read as `$input.NAME`; `subplans` (absent without
            sub-plan steps) each sub-plan step's notebook, run embedded.

    Attributes:
        records: Step id to that step's events (of its last run), as JSON
            objects (`Event` fields).
        import_errors: Tool name to why its import failed.
    """

    _standalone = False  # the engine's scheduler decides

    def __init__(self, spec_json: str) -> None:
        spec = json.loads(spec_json)
        tools: dict[str, Callable[..., Any] | None] = {}
        self.import_errors: dict[str, str] = {}
        for name, path in spec["tools"].items():
            try:
                tools[name] = _import_tool(*path) if path else None
                if not path:
                    self.import_errors[name] = (
                        "it was not importable by module path where the plan was sent from"
                    )
            except Exception as exc:  # reported on the step that needs it
                tools[name] = None
                self.import_errors[name] = f"{type(exc).__name__}: {exc}"
        missing = {
            name: f"it cannot be imported in this kernel ({why}); install its package in the "
            "notebook's environment"
            for name, why in self.import_errors.items()
        }
        super().__init__(spec["plan"], tools, missing=missing, subplans=spec.get("subplans"))
        self.plan_inputs = spec.get("inputs")  # the cells pass none: the run's values
        self.records: dict[str, list[dict[str, Any]]] = {}

    def record(self, event: Event) -> None:
        """Record the event under its step, as JSON (nothing is printed in a kernel).

        A sub-plan's events (`parent_step_id` set) go under the sub-plan
        step, after its `STEP_START`: its cell's run reads them back with it.
        """
        from marimo_engine.engine.events import EventType

        step_id = event.parent_step_id or event.step_id or ""
        if event.type is EventType.STEP_START and event.parent_step_id is None:
            self.records[step_id] = []
        self.records.setdefault(step_id, []).append(event.model_dump(mode="json"))


def stop_skipped(step_id: str, run_if: str | None) -> None:
    """Stop the calling marimo cell as skipped (`mo.stop`), so marimo skips its dependents.

    Raises:
        MarimoStopError: Always (that is how `mo.stop` stops a cell).
    """
    import marimo as mo

    mo.stop(True, mo.md(f"**Skipped** `{step_id}`: `run_if` is false: `{run_if}`"))


def stop_for_person(step_id: str, expression: str | None, output: Any) -> None:
    """Stop the calling marimo cell with a callout and the step's output (`mo.stop`).

    Raises:
        MarimoStopError: Always; marimo then does not run the dependent cells.
    """
    import marimo as mo

    callout = mo.callout(
        mo.md(
            f"**Intervention needed** after `{step_id}`: `{expression}` is true. "
            "A person must decide before the dependent steps run."
        ),
        kind="warn",
    )
    mo.stop(True, mo.vstack([callout, output]))
