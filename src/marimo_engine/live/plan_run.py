"""Run a plan in a live notebook: one cell per step, events as `execute_plan` emits them.

`run_plan_live(plan, tools, client)`:

1. validates and compiles the plan with the engine's compiler
   (`engine.compiler.compile_plan`; an invalid plan gives `START`, one
   `ERROR` of type `PlanValidationError` with its problems, and `FINISH`);
2. adds, in one atomic batch, a setup cell that builds a
   `live._kernel_runner.LiveStepRunner` under a fresh name (tools are
   imported in the kernel by module path, so they must be importable there),
   and one cell per step in the compiler's form
   (`s3 = await plan_run_1a2b3c.step("s3", s1, s2)`), each disabled so
   that nothing runs before its turn. Step variables and cell names avoid
   every name the notebook already uses (`compiler.safe_variable_names`);
3. runs the steps one at a time, in the engine's ready order (dependencies
   first, list order breaking ties): each turn enables the step's cell and
   runs it, and the person sees its output appear;
4. yields each step's events as the kernel recorded them, then `FINISH`.

The plan language's rules hold: a skipped step's dependents are skipped
without running; after an `ERROR` or `INTERVENTION_NEEDED` no new step
starts (their cells stay disabled). Outputs on events are the JSON form of
the kernel's objects (`marimo_engine._json.to_jsonable`): the objects
themselves stay in the kernel, in the step cells' variables.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from marimo_engine.errors import PlanValidationError, UsageError
from marimo_engine.live.protocol import CreateCell

if TYPE_CHECKING:
    from marimo_engine.engine.events import Event, Verdict
    from marimo_engine.live.client import LiveClient
    from marimo_engine.plans.schema import Plan
    from marimo_engine.tools.registry import ToolRegistry

__all__ = ["run_plan_live"]


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ready_order(step_ids: list[str], deps: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Dependencies first, list order breaking ties (the engine's ready order, one at a time)."""
    done: set[str] = set()
    order: list[str] = []
    while len(order) < len(step_ids):
        for sid in step_ids:
            if sid not in done and all(d in done for d in deps[sid]):
                done.add(sid)
                order.append(sid)
                break
        else:  # pragma: no cover - validation rejects cycles
            raise UsageError("The plan's dependencies have a cycle.")
    return order


async def run_plan_live(
    plan: Plan | Mapping[str, Any] | str,
    tools: ToolRegistry | Mapping[str, Any] | None,
    client: LiveClient,
    *,
    step_timeout_s: float | None = None,
) -> AsyncIterator[Event]:
    """Put each step of `plan` into the live notebook as a cell and run it there.

    Args:
        plan: A `Plan`, a dict or a JSON string.
        tools: A `ToolRegistry` or a mapping of names to callables. Each tool
            must be importable by module path (a module-level function of an
            installed package), because the kernel imports it.
        client: A `LiveClient` on the session to run in.
        step_timeout_s: Bound in seconds on each step's kernel run, on top of
            the step's own `timeout_s`; `None` waits as long as the step takes.

    Yields:
        `Event`s as `execute_plan` emits them: `START`, per step
        `STEP_START` then `STEP_RETRY`/`STEP_COMPLETE`/`STEP_SKIPPED`/
        `ERROR`/`INTERVENTION_NEEDED`, and exactly one `FINISH` last (unless
        the caller stops iterating, which interrupts the kernel run).

    Raises:
        LiveError: The session failed at the transport level (the run is
            then reported no further).
    """
    from marimo_engine.engine.events import ErrorInfo, Event, EventType, Verdict
    from marimo_engine.plans.schema import load_plan

    started = time.monotonic()
    outputs: dict[str, Any] = {}
    source_id = _source_id(plan)
    try:
        parsed = load_plan(plan)
    except PlanValidationError as exc:
        plan_id = source_id or "plan-unknown"
        yield Event(type=EventType.START, plan_id=plan_id, msg=f"Plan {plan_id!r} started.")
        yield _error_event(plan_id, exc)
        yield _finish(plan_id, Verdict.FAILURE, outputs, started)
        return
    plan_id = parsed.id
    yield Event(type=EventType.START, plan_id=plan_id, msg=f"Plan {plan_id!r} started (live).")
    try:
        prepared = await _prepare(parsed, tools, client)
    except (PlanValidationError, UsageError) as exc:
        yield _error_event(plan_id, exc)
        yield _finish(plan_id, Verdict.FAILURE, outputs, started)
        return
    runner_name, cell_ids, deps, tool_of = prepared

    skipped: set[str] = set()
    stop_verdict: Verdict | None = None
    for sid in _ready_order(parsed.step_ids, deps):
        if stop_verdict is not None:
            break
        blocked_by = next((d for d in deps[sid] if d in skipped), None)
        if blocked_by is not None:
            reason = f"dependency {blocked_by!r} was skipped"
            yield Event(
                type=EventType.STEP_START,
                plan_id=plan_id,
                step_id=sid,
                tool=tool_of[sid],
                msg=f"Step {sid!r} taken up.",
            )
            yield Event(
                type=EventType.STEP_SKIPPED,
                plan_id=plan_id,
                step_id=sid,
                tool=tool_of[sid],
                msg=f"Step {sid!r} skipped: {reason}.",
                reason=reason,
            )
            skipped.add(sid)
            continue
        reply, _ = await client.call_template(
            "plan_step",
            {"cell_id": cell_ids[sid], "runner": runner_name, "step_id": sid},
            timeout_s=step_timeout_s,
        )
        events = [Event.model_validate(e) for e in reply.get("events", [])]
        if not events:
            # The cell failed before calling the runner (say, the setup cell is gone).
            message = "; ".join(reply.get("errors") or []) or (
                f"the step's cell did not run (status {reply.get('status')!r})"
            )
            events = [
                Event(
                    type=EventType.STEP_START,
                    plan_id=plan_id,
                    step_id=sid,
                    tool=tool_of[sid],
                    msg=f"Step {sid!r} taken up.",
                ),
                Event(
                    type=EventType.ERROR,
                    plan_id=plan_id,
                    step_id=sid,
                    tool=tool_of[sid],
                    msg=f"Step {sid!r} failed: {message}",
                    error=ErrorInfo(type="LiveKernelError", message=message, step_id=sid),
                ),
            ]
        for event in events:
            if event.type is EventType.STEP_COMPLETE:
                outputs[sid] = event.output
            elif event.type is EventType.STEP_SKIPPED:
                skipped.add(sid)
            elif event.type is EventType.ERROR:
                stop_verdict = Verdict.FAILURE
            elif event.type is EventType.INTERVENTION_NEEDED and stop_verdict is None:
                stop_verdict = Verdict.INTERVENTION_NEEDED
            yield event
    yield _finish(plan_id, stop_verdict or Verdict.SUCCESS, outputs, started)


def _source_id(plan: Any) -> str | None:
    if isinstance(plan, Mapping):
        value = plan.get("id")
        return value if isinstance(value, str) else None
    if isinstance(plan, str | bytes):
        try:
            value = json.loads(plan)
        except ValueError:
            return None
        return _source_id(value) if isinstance(value, dict) else None
    return getattr(plan, "id", None)


def _error_event(plan_id: str, exc: Exception) -> Event:
    from marimo_engine.engine.events import ErrorInfo, Event, EventType

    return Event(
        type=EventType.ERROR, plan_id=plan_id, msg=str(exc), error=ErrorInfo.from_exception(exc)
    )


def _finish(plan_id: str, verdict: Verdict, outputs: dict[str, Any], started: float) -> Event:
    from marimo_engine.engine.events import Event, EventType

    duration_s = time.monotonic() - started
    return Event(
        type=EventType.FINISH,
        plan_id=plan_id,
        msg=f"Plan {plan_id!r} finished: {verdict.value} in {duration_s:.3f} s (live).",
        verdict=verdict,
        outputs=dict(outputs),
        duration_s=duration_s,
    )


async def _prepare(
    plan: Plan, tools: Any, client: LiveClient
) -> tuple[str, dict[str, str], Mapping[str, tuple[str, ...]], dict[str, str]]:
    """Compile the plan and add its cells (disabled) to the notebook, atomically.

    Returns:
        `(runner variable, step id -> cell id, dependencies, step id -> tool name)`.

    Raises:
        PlanValidationError: The plan has problems.
        UsageError: A tool is not importable by module path.
    """
    from marimo_engine.engine.compiler import compile_plan, python_string, safe_variable_names
    from marimo_engine.tools.registry import as_registry

    registry = as_registry(tools)
    ir = compile_plan(plan, registry)
    if ir.unimportable_tools:
        names = ", ".join(repr(t) for t in ir.unimportable_tools)
        raise UsageError(
            f"Tools {names} are not importable by module path, so the live kernel cannot "
            "call them; define them at module level in a package installed in the "
            "notebook's environment."
        )
    graph = await client.graph()
    cells = await client.cells(max_output_chars=0)
    taken = {name for node in graph.cells for name in node.defs}
    taken |= {c.name for c in cells if c.name}
    runner_name = f"plan_run_{secrets.token_hex(3)}"
    variables = safe_variable_names(plan.step_ids, reserved=taken | {runner_name})
    tool_paths = {
        name: list(registry.get(name).import_path or ())
        for name in dict.fromkeys(s.tool for s in plan.steps)
    }
    spec = json.dumps({"plan": plan.model_dump(mode="json"), "tools": tool_paths})
    title = _one_line(plan.name or plan.id, 80)
    setup = (
        # Plan text enters source only through python_string (a one-line literal).
        f"# marimo-engine: live run of plan {python_string(plan.id)} ({python_string(title)}); "
        "one cell per step below.\n"
        "from marimo_engine.live._kernel_runner import LiveStepRunner as _LiveStepRunner\n\n"
        f"{runner_name} = _LiveStepRunner({python_string(spec)})"
    )
    ops: list[CreateCell] = [CreateCell(code=setup, name=f"{runner_name}_setup", run=True)]
    for step in plan.steps:
        refs = [variables[d] for d in ir.dependencies[step.id]]
        about = _one_line(f"{step.id} · {step.tool}: {step.description or ''}").rstrip(": ")
        code = (
            f"# {python_string(about)}\n"
            f"{variables[step.id]} = await "
            f"{runner_name}.step({', '.join([python_string(step.id), *refs])})"
        )
        ops.append(CreateCell(code=code, name=variables[step.id], run=False, disabled=True))
    result = await client.apply(ops)
    setup_change = result.changes[0]
    if setup_change.status == "exception" or setup_change.errors:
        raise UsageError(
            "The live plan's setup cell failed in the kernel: "
            + "; ".join(setup_change.errors or ["see the notebook"])
            + ". Are marimo-engine and the tools installed in the notebook's environment?"
        )
    cell_ids = {
        step.id: change.cell_id or ""
        for step, change in zip(plan.steps, result.changes[1:], strict=True)
    }
    tool_of = {s.id: s.tool for s in plan.steps}
    return runner_name, cell_ids, ir.dependencies, tool_of
