"""Run a plan in a live notebook: one cell per step, the engine's run and events.

`run_plan_live(plan, tools, client)` is `execute_plan` with another target:
the same `_Run` validates and compiles the plan, the same scheduler
(`scheduler.schedule`) decides which step runs next, the same event fold
gives the verdict, and it returns the same `PlanRun`. What differs:

1. **The cells.** The compiler's notebook IR (`compiler.compile_checked_plan`,
   with this plan's runner name and the notebook's other names reserved)
   gives the step cells' code and names; they go into the person's notebook in one
   atomic batch: a setup cell that builds a `runtime.KernelStepRunner` under
   a name derived from the plan's id (`plan_run_` + 6 hex digits), and one
   cell per step (`s3 = await plan_run_1a2b3c.step("s3", s1, s2)`), each
   disabled so that nothing runs before its turn. Step variables avoid every
   name the rest of the notebook uses (`compiler.safe_variable_names`).
2. **A plan run owns its cells.** Each cell's first line marks it as the
   plan's (`# marimo-engine plan run plan_run_1a2b3c ...`). Running the same
   plan (same id) again updates those cells in place: the setup cell and
   every step cell are edited, cells of steps the plan no longer has are
   deleted, new steps get new cells; marimo re-runs what changed. If the
   setup cell fails in the kernel (say, a tool does not import), the cells
   this run created are deleted again and the run ends with `ERROR` and
   `FINISH` (`FAILURE`); cells it edited keep the new code.
3. **One step at a time**: each turn enables the step's cell and runs it in
   the kernel (`LiveClient.call_template("plan_step")`), where the
   `KernelStepRunner` applies the step semantics (`step.run_step`) and
   records the step's events; they are read back and emitted here. Outputs on
   events are the JSON form of the kernel's objects
   (`marimo_engine._json.to_jsonable`): the objects stay in the kernel, in
   the step cells' variables.

Tools are imported in the kernel by module path. A tool loaded from a file
(`--tools ./file.py`) is imported from that file when its module is not
importable in the kernel (the kernel must see the same file system, as a
local `marimo edit` does). A tool that is not importable at all (a lambda, a
function defined inside another) fails its steps with `UnknownToolError`
when their turn comes, as in a compiled notebook.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from marimo_engine.engine._run import _Run
from marimo_engine.engine.executor import DEFAULT_EVENT_BUFFER, PlanRun
from marimo_engine.engine.step import StepOutcome, blocked_events, error_event, taken_up_event
from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.engine.compiler import NotebookIR
    from marimo_engine.engine.graph import StepGraph
    from marimo_engine.live.client import LiveClient
    from marimo_engine.plans.schema import Plan
    from marimo_engine.tools.registry import ToolRegistry

__all__ = ["run_plan_live", "runner_name"]

_MARK = "# marimo-engine plan run "
_STEP_MARK = re.compile(r"^# marimo-engine plan run (\w+) step (.+)$")


def runner_name(plan_id: str) -> str:
    """The kernel variable of a plan's `KernelStepRunner`: the same for every run of one plan.

    Args:
        plan_id: The plan's id.

    Returns:
        `plan_run_` and the first 6 hex digits of the SHA-256 of the id.
    """
    return "plan_run_" + hashlib.sha256(plan_id.encode("utf-8")).hexdigest()[:6]


def _json_inputs(values: Mapping[str, Any]) -> dict[str, Any]:
    """The run's input values as they go into the kernel: JSON values only.

    Raises:
        UsageError: A value is not a JSON value (a DataFrame, an object).
    """
    for name, value in values.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise UsageError(
                f"Plan input {name!r} is a {type(value).__name__}, which a live run cannot send "
                f"into the kernel ({exc}); give a JSON value (text, number, list, dict), or run "
                "the plan with execute_plan."
            ) from None
    return dict(values)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_plan_live(
    plan: Plan | Mapping[str, Any] | str,
    tools: ToolRegistry | Mapping[str, Callable[..., Any]] | None,
    client: LiveClient,
    *,
    step_timeout_s: float | None = None,
    on_event: Callable[[Any], Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    plans: Any = None,
) -> PlanRun:
    """Put each step of `plan` into the live notebook as a cell and run it there.

    Args:
        plan: A `Plan`, a dict or a JSON string.
        tools: A `ToolRegistry` or a mapping of names to callables. Each tool
            must be importable in the kernel: a module-level function of a
            package installed there, or of a `.py` file the kernel can read.
        client: A `LiveClient` on the session to run in.
        step_timeout_s: Bound in seconds on each step's kernel run, on top of
            the step's own `timeout_s`; `None` waits as long as the step takes.
        on_event: As for `execute_plan`.
        inputs: The plan's input values by name, as for `execute_plan`; they
            go into the kernel with the setup cell, so they must be JSON
            values (text, numbers, booleans, `None`, lists, dicts).
        plans: Where sub-plan steps find their plans, as for `execute_plan`.
            Each sub-plan runs in the kernel as its own notebook, embedded
            with marimo's `app.embed()` (its tools must import there too);
            its events come with `parent_step_id`.

    Returns:
        A `PlanRun`, as `execute_plan` gives: iterate it for the events
        (`START`, per step `STEP_START` then `STEP_RETRY`/`STEP_COMPLETE`/
        `STEP_SKIPPED`/`ERROR`/`INTERVENTION_NEEDED`, `FINISH` last), then
        read its `result`. An invalid plan gives `START`, one `ERROR` with
        every problem, `FINISH`; a tool the kernel cannot import, or a setup
        cell that fails, gives `START`, `ERROR`, `FINISH`; so do a missing
    required input and an input that is not a JSON value.

    Transport failures of the session (`LiveError`) end the run with an
    `ERROR` of that type and `FINISH` (`FAILURE`).
    """
    target = _LiveTarget(client, step_timeout_s)
    run = _Run(
        plan,
        tools,
        max_workers=None,
        emit=None,
        on_event=on_event,
        target=target,
        inputs=inputs,
        plans=plans,
    )
    return PlanRun(run, DEFAULT_EVENT_BUFFER)


class _LiveTarget:
    """The live target of a `_Run`: the step cells run in a person's kernel."""

    concurrency = 1  # a kernel runs one cell at a time

    def __init__(self, client: LiveClient, step_timeout_s: float | None) -> None:
        self.client = client
        self.step_timeout_s = step_timeout_s
        self.run: _Run | None = None
        self.plan: Plan | None = None
        self.runner = ""
        self.cell_ids: dict[str, str] = {}

    async def prepare(self, run: _Run, plan: Plan, ir: NotebookIR) -> StepGraph:
        from marimo_engine.engine.graph import StepGraph
        from marimo_engine.errors import LiveError

        self.run = run
        self.plan = plan
        try:
            self.cell_ids = await self._place_cells(plan)
        except LiveError as exc:
            raise UsageError(f"The plan's cells could not be added to the notebook: {exc}") from exc
        return StepGraph.from_dependencies(plan.step_ids, ir.dependencies)

    async def _place_cells(self, plan: Plan) -> dict[str, str]:
        """Add the plan's cells, or update the ones an earlier run of this plan added.

        Returns:
            Step id to its cell's id.

        Raises:
            UsageError: The setup cell failed in the kernel (the cells this
                call created are deleted again).
        """
        from marimo_engine.engine.compiler import (
            compile_checked_plan,
            python_string,
            subplan_notebooks,
        )

        assert self.run is not None
        client = self.client
        runner = self.runner = runner_name(plan.id)
        cells = await client.cells(max_output_chars=0)
        graph = await client.graph()
        mark = f"{_MARK}{runner} "
        owned = {c.id: c for c in cells if c.code.startswith(mark)}
        setup_id = next(
            (cid for cid, c in owned.items() if c.code.startswith(mark + "setup")), None
        )
        old_steps: dict[str, str] = {}
        for cid, cell in owned.items():
            found = _STEP_MARK.match(cell.code.split("\n", 1)[0])
            if found and found.group(1) == runner:
                with contextlib.suppress(ValueError, SyntaxError):
                    old_steps.setdefault(ast.literal_eval(found.group(2)), cid)
        taken = {name for node in graph.cells if node.cell_id not in owned for name in node.defs}
        taken |= {c.name for c in cells if c.name and c.id not in owned}
        # The step cells are the compiler's, calling this plan's runner by its name; the
        # runner holds the run's input values (no inputs cell in a person's notebook).
        ir = compile_checked_plan(
            plan, self.run.tools, runner=runner, reserved=taken | {runner}, inputs_cell=False
        )
        spec_data = {"plan": plan.model_dump(mode="json"), "tools": self._tool_paths(plan)}
        if self.run.plan_inputs is not None:
            spec_data["inputs"] = _json_inputs(self.run.plan_inputs)
        subplans = subplan_notebooks(plan, self.run.tools, self.run.plans)
        if subplans:  # each run embedded in the kernel, as in the compiled notebook
            spec_data["subplans"] = subplans
        spec = json.dumps(spec_data)
        title = _one_line(plan.name or plan.id, 80)
        setup = (
            # Plan text enters source only through python_string (a one-line literal).
            f"{mark}setup: plan {python_string(plan.id)} ({python_string(title)}); "
            "one cell per step below.\n"
            "from marimo_engine.engine.runtime import KernelStepRunner as _KernelStepRunner\n\n"
            f"{runner} = _KernelStepRunner({python_string(spec)})"
        )
        ops: list[dict[str, Any]] = []
        if setup_id is None:
            ops.append({"op": "create", "code": setup, "name": f"{runner}_setup", "run": True})
        else:
            ops.append({"op": "edit", "target": setup_id, "code": setup, "run": True})
        for step in plan.steps:
            step_cell = ir.step_cells[step.id]
            about = _one_line(f"{step.id} · {step.tool or step.kind}: {step.description or ''}")
            about = about.rstrip(": ")
            code = (
                f"{mark}step {python_string(step.id)}\n# {python_string(about)}\n{step_cell.code}"
            )
            cell = {"code": code, "name": step_cell.name, "run": False, "disabled": True}
            if step.id in old_steps:
                ops.append({"op": "edit", "target": old_steps[step.id], **cell})
            else:
                ops.append({"op": "create", **cell})
        ops += [
            {"op": "delete", "target": cid}
            for sid, cid in old_steps.items()
            if sid not in set(plan.step_ids)
        ]
        result = await client.apply(ops)
        setup_change = result.changes[0]
        if setup_change.status == "exception" or setup_change.errors:
            created = [
                change.cell_id
                for op, change in zip(ops, result.changes, strict=False)
                if op["op"] == "create" and change.cell_id
            ]
            if created:
                await client.apply([{"op": "delete", "target": cid} for cid in created])
            raise UsageError(
                "The live plan's setup cell failed in the kernel: "
                + "; ".join(setup_change.errors or ["see the notebook"])
                + ". Are marimo-engine and the tools installed in the notebook's environment?"
                + (" The cells this run added were removed." if created else "")
            )
        return {
            step.id: change.cell_id or ""
            for step, change in zip(plan.steps, result.changes[1:], strict=False)
        }

    def _tool_paths(self, plan: Plan) -> dict[str, list[str]]:
        """Tool name to `[module, qualname, file]` for the kernel to import it.

        `file` is the defining module's source file (`""` when it has none):
        the kernel imports it from there when the module is not importable
        by name (a tools file given as `--tools ./file.py`).
        """
        import sys

        assert self.run is not None
        paths: dict[str, list[str]] = {}
        for name in plan.tool_names:
            import_path = self.run.tools.get(name).import_path
            if import_path is None:  # its steps fail with UnknownToolError, as in a notebook
                paths[name] = []
                continue
            module, qualname = import_path
            source = getattr(sys.modules.get(module), "__file__", None) or ""
            paths[name] = [module, qualname, source]
        return paths

    async def start(self, step_id: str) -> StepOutcome | None:
        from marimo_engine.engine.events import Event, EventType

        run, plan = self.run, self.plan
        assert run is not None and plan is not None
        step = plan.step(step_id)
        try:
            reply, _ = await self.client.call_template(
                "plan_step",
                {"cell_id": self.cell_ids[step_id], "runner": self.runner, "step_id": step_id},
                timeout_s=self.step_timeout_s,
            )
        except Exception as exc:  # the session failed: this step's error
            await run.emit(error_event(run.plan_id, step, exc))
            return StepOutcome.FAILED
        events = [Event.model_validate(e) for e in reply.get("events", [])]
        if not events:
            # The cell failed before calling the runner (say, the setup cell is gone).
            from marimo_engine.errors import LiveKernelError

            message = "; ".join(reply.get("errors") or []) or (
                f"the step's cell did not run (status {reply.get('status')!r})"
            )
            failure = LiveKernelError(message, error_type="cell")
            events = [
                taken_up_event(run.plan_id, step),
                error_event(run.plan_id, step, failure),
            ]
        outcome = StepOutcome.COMPLETED
        for event in events:
            if event.parent_step_id is not None:  # a sub-plan's: the step's own events say
                await run.emit(event)
                continue
            if event.type is EventType.STEP_SKIPPED:
                outcome = StepOutcome.SKIPPED
            elif event.type is EventType.ERROR:
                outcome = StepOutcome.FAILED
            elif event.type is EventType.INTERVENTION_NEEDED:
                outcome = StepOutcome.INTERVENTION
            await run.emit(event)
        return outcome

    async def blocked(self, step_id: str, dependency: str) -> None:
        run, plan = self.run, self.plan
        assert run is not None and plan is not None
        for event in blocked_events(run.plan_id, plan.step(step_id), dependency):
            await run.emit(event)

    async def close(self) -> None:
        """Nothing to release: the cells stay in the notebook, the person's to keep."""
