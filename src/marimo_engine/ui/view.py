"""What the runs UI shows, computed from the run journal (docs/ui.md).

Pure functions of journal records (`engine.journal.RunRecord`), so that the
app's notebook stays a thin layout and the rules are tested without a
browser: the rows of the runs table, each step's state, the stored outputs
and the arguments the tools got. `charts.py` draws a run (DAG, timeline),
`text.py` makes text from plans safe for the page.

A `RunView` is a snapshot of one run without its outputs; two snapshots
compare equal when nothing a person sees changed, so the app redraws a run
only when the journal says something new (not on every poll).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marimo_engine.engine.journal import Journal, RunRecord
    from marimo_engine.tools.registry import ToolRegistry

__all__ = [
    "STATES",
    "STATE_COLOURS",
    "RunView",
    "StepView",
    "UnloadableOutput",
    "answer_schema",
    "displayable",
    "read_outputs",
    "read_view",
    "resolved_args",
    "run_rows",
    "run_state",
    "run_view",
    "step_views",
]

STATES = ("pending", "running", "done", "skipped", "failed", "waiting", "interrupted")
"""A step's state as the UI shows it.

`waiting`: for a person (an approval or an `intervention_if` that was
true); `interrupted`: it was running when its run's process died (resume
runs it again).
"""

STATE_COLOURS = {
    "pending": "#e2e8f0",
    "running": "#60a5fa",
    "done": "#4ade80",
    "skipped": "#cbd5e1",
    "failed": "#f87171",
    "waiting": "#fbbf24",
    "interrupted": "#fb923c",
}
"""Fill colour of each state, in the DAG and the timeline (one palette for both)."""

_STEP_STATES = {
    "completed": "done",
    "skipped": "skipped",
    "failed": "failed",
    "intervention": "waiting",
}


@dataclass(frozen=True)
class StepView:
    """One step of a run as the UI shows it.

    Attributes:
        step_id: The step.
        tool: Its tool, or `plan:NAME` for a step that runs a sub-plan.
        description: The plan's description of it, or `None`.
        args: Its arguments as the plan writes them (references unresolved).
        depends_on: The steps it depends on (references, conditions, `depends_on`).
        key_finding: Whether the plan marks its output as a key finding.
        state: One of `STATES`.
        attempt: Tries made in its latest start (more than 1: retried).
        starts: Times its tool was started in this run (more than 1 after a crash).
        started_at: Unix seconds of its latest start, or `None`.
        duration_s: Seconds its latest start took, or `None` (not finished).
        error: `{"type", "message"}` of its failure, or `None`.
        reason: Why it was skipped, or `None`.
        reused_from: The run its output was taken from, or `None`.
    """

    step_id: str
    tool: str
    description: str | None
    args: Mapping[str, Any]
    depends_on: tuple[str, ...]
    key_finding: bool
    state: str
    attempt: int = 0
    starts: int = 0
    started_at: float | None = None
    duration_s: float | None = None
    error: Mapping[str, Any] | None = None
    reason: str | None = None
    reused_from: str | None = None


@dataclass(frozen=True)
class RunView:
    """One run as the UI shows it (no outputs: `read_outputs` has them).

    Attributes:
        run_id: The run.
        plan_id: Its plan's id.
        plan_name: The plan's name, or its id.
        plan: The plan's JSON data (as journaled).
        state: `run_state`'s word for the run.
        verdict: `SUCCESS`, `FAILURE`, `INTERVENTION_NEEDED`, or `None` while running.
        started_at: Unix seconds.
        duration_s: Seconds of its last stretch of running, once finished.
        parent_run_id: The run a re-run started from, or `None`.
        pending: The intervention it waits for (`intervention_id`, `kind`,
            `step_id`, `expression`, `args`, `output`), or `None`.
        error: The run's own error (`{"type", "message"}`), or `None`.
        steps: Every step of the plan, in plan order.
    """

    run_id: str
    plan_id: str
    plan_name: str
    plan: Any
    state: str
    verdict: str | None
    started_at: float
    duration_s: float | None
    parent_run_id: str | None
    pending: Mapping[str, Any] | None
    error: Mapping[str, Any] | None
    steps: tuple[StepView, ...]

    @property
    def is_live(self) -> bool:
        """Whether a process is running it now."""
        return self.state == "running"

    def step(self, step_id: str) -> StepView | None:
        """The step with this id, or `None`."""
        return next((s for s in self.steps if s.step_id == step_id), None)


def run_state(record: RunRecord, now: float | None = None) -> str:
    """The run's state in one word.

    Args:
        record: The run.
        now: Unix seconds (default: now).

    Returns:
        `running` (a process holds its lease), `interrupted` (its status is
        `running` but nobody holds the lease: the process died; `resume`
        goes on), `waiting` (`INTERVENTION_NEEDED`), or `finished`.
    """
    now = time.time() if now is None else now
    if record.status == "running":
        alive = record.lease_owner is not None and (record.lease_until or 0.0) > now
        return "running" if alive else "interrupted"
    if record.status == "INTERVENTION_NEEDED":
        return "waiting"
    return "finished"


def run_rows(records: Sequence[RunRecord], now: float | None = None) -> list[dict[str, Any]]:
    """The rows of the runs table, newest first.

    Args:
        records: From `durable.list_runs` (the CLI's `runs` list).
        now: Unix seconds (default: now), to tell running from interrupted.

    Returns:
        One dict per run: `run` (id), `plan`, `status` (`run_state`),
        `verdict` (empty while running), `started` (local time, ISO 8601 to
        the second), `duration_s` (`None` while running), `parent` (a
        re-run's origin, or empty), and `waiting_at` (the step a person is
        asked about, or empty). Built on `cli.runs.run_row`, the JSON of
        `runs --json` and the MCP server's `list_runs`.
    """
    from marimo_engine.cli.runs import run_row

    now = time.time() if now is None else now
    rows = []
    for record in records:
        row = run_row(record)
        state = run_state(record, now)
        pending = row["pending"] or {}
        rows.append(
            {
                "run": row["run_id"],
                "plan": row["plan_id"],
                "status": state,
                "verdict": "" if record.status == "running" else row["status"],
                "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started_at"])),
                "duration_s": None
                if row["duration_s"] is None
                else round(float(row["duration_s"]), 3),
                "parent": row["parent_run_id"] or "",
                "waiting_at": str(pending.get("step_id") or "") if state == "waiting" else "",
            }
        )
    return rows


def _plan_steps(plan: Any) -> list[dict[str, Any]]:
    steps = plan.get("steps") if isinstance(plan, dict) else None
    return [s for s in steps or [] if isinstance(s, dict) and isinstance(s.get("id"), str)]


def _dependencies(plan: Any) -> dict[str, tuple[str, ...]]:
    """Each step's dependencies: the engine's rule for a valid plan, `depends_on` otherwise."""
    from marimo_engine.errors import EngineError
    from marimo_engine.plans.dependencies import step_dependencies
    from marimo_engine.plans.schema import load_plan

    try:
        return step_dependencies(load_plan(plan))
    except EngineError:  # an invalid plan (its run failed validation): what it declares
        return {
            s["id"]: tuple(d for d in s.get("depends_on") or [] if isinstance(d, str))
            for s in _plan_steps(plan)
        }


def run_view(record: RunRecord, now: float | None = None) -> RunView:
    """The `RunView` of a journal record read with its steps.

    Args:
        record: From `Journal.get_run(run_id)` (with steps).
        now: Unix seconds (default: now).

    Returns:
        The snapshot; a plan step without a record is `pending`, a step
        the run waits on is `waiting`, a `running` step of a run nobody
        runs is `interrupted`.
    """
    from marimo_engine.engine.durable import journaled_plan

    state = run_state(record, now)
    plan = journaled_plan(record)
    pending = record.pending if record.status == "INTERVENTION_NEEDED" else None
    steps = step_views(plan, record, run_is_live=state == "running", pending=pending)
    name = plan.get("name") if isinstance(plan, dict) else None
    return RunView(
        run_id=record.run_id,
        plan_id=record.plan_id,
        plan_name=name if isinstance(name, str) and name else record.plan_id,
        plan=plan,
        state=state,
        verdict=None if record.status == "running" else record.status,
        started_at=record.started_at,
        duration_s=record.duration_s,
        parent_run_id=record.parent_run_id,
        pending=pending,
        error=record.error,
        steps=steps,
    )


def _tool_label(raw: Mapping[str, Any]) -> str:
    """A step's tool, or `plan:NAME` for a step that runs a sub-plan (plan language 2)."""
    if raw.get("tool"):
        return str(raw["tool"])
    return f"plan:{raw['plan']}" if raw.get("plan") else ""


def step_views(
    plan: Any,
    record: RunRecord | None = None,
    *,
    run_is_live: bool = False,
    pending: Mapping[str, Any] | None = None,
) -> tuple[StepView, ...]:
    """Every step of a plan, in plan order, with its state in a run.

    Args:
        plan: The plan's JSON data.
        record: The run (with its steps), or `None` for a plan that has not
            run (a proposal): every step is then `pending`.
        run_is_live: Whether a process runs it now (a `running` step of a
            run nobody runs is `interrupted`).
        pending: The intervention the run waits for: its step is `waiting`.

    Returns:
        The `StepView`s; a step without a record is `pending`.
    """
    records = {s.step_id: s for s in record.steps} if record is not None else {}
    deps = _dependencies(plan)
    steps = []
    for raw in _plan_steps(plan):
        sid = raw["id"]
        rec = records.get(sid)
        if pending is not None and pending.get("step_id") == sid:
            step_state = "waiting"
        elif rec is None:
            step_state = "pending"
        elif rec.status == "running":
            step_state = "running" if run_is_live else "interrupted"
        else:
            step_state = _STEP_STATES.get(rec.status, rec.status)
        args = raw.get("args")
        description = raw.get("description")
        steps.append(
            StepView(
                step_id=sid,
                tool=_tool_label(raw),
                description=description if isinstance(description, str) else None,
                args=args if isinstance(args, dict) else {},
                depends_on=deps.get(sid, ()),
                key_finding=raw.get("key_finding") is True,
                state=step_state,
                attempt=rec.attempt if rec else 0,
                starts=rec.starts if rec else 0,
                started_at=rec.started_at if rec else None,
                duration_s=rec.duration_s if rec else None,
                error=rec.error if rec else None,
                reason=rec.reason if rec else None,
                reused_from=rec.reused_from if rec else None,
            )
        )
    return tuple(steps)


def read_view(journal: Journal, run_id: str, now: float | None = None) -> RunView | None:
    """Read one run from an open journal as a `RunView`; `None` when there is no such run."""
    record = journal.get_run(run_id)
    return None if record is None else run_view(record, now)


@dataclass(frozen=True)
class UnloadableOutput:
    """A stored output this process cannot load (a class of a module it lacks).

    Attributes:
        output_format: How it was stored (`pickle`, `arrow`, ...).
        error: The error that loading it raised, as `Type: message`.
    """

    output_format: str
    error: str


def read_outputs(journal: Journal, run_id: str) -> dict[str, Any]:
    """Each completed step's output, decoded as the run produced it.

    Args:
        journal: An open journal.
        run_id: The run.

    Returns:
        Step id to the output: the same kind of object the tool returned
        (a dataframe, a chart, a model; docs/runs.md, "How outputs are
        stored"), or an `UnloadableOutput` when it cannot be loaded here.
    """
    from marimo_engine.engine._journal_codec import decode_output

    found: dict[str, Any] = {}
    for sid, (_, fmt, data) in journal.outputs(run_id).items():
        if fmt is None or data is None:
            continue
        try:
            found[sid] = decode_output(fmt, data)
        except Exception as exc:  # a class this process cannot import, a foreign pickle
            found[sid] = UnloadableOutput(fmt, f"{type(exc).__name__}: {exc}")
    return found


def resolved_args(step: StepView, outputs: Mapping[str, Any]) -> Any:
    """The arguments the step's tool got: its `$references` resolved from the run's outputs.

    Args:
        step: The step.
        outputs: `read_outputs` of its run.

    Returns:
        The resolved arguments (the engine's `resolve_value`), or `None` when
        the step has no reference in its arguments, or one cannot be
        resolved (a dependency without a stored output).
    """
    from marimo_engine.errors import EngineError
    from marimo_engine.plans.references import find_references, resolve_value

    if not step.args or not find_references(dict(step.args)):
        return None
    if any(isinstance(v, UnloadableOutput) for v in outputs.values()):
        outputs = {k: v for k, v in outputs.items() if not isinstance(v, UnloadableOutput)}
    try:
        return resolve_value(dict(step.args), outputs)
    except EngineError:
        return None


def answer_schema(tools: ToolRegistry, tool: str) -> dict[str, Any] | None:
    """The JSON schema a person's answer for a step of `tool` must fit, or `None`.

    It is the output type the tool declares (its return annotation,
    `ToolSpec.returns_schema`, what `tools --json` shows as `returns`), the
    one `durable.check_answer` validates an answer against.

    Returns:
        The schema, or `None` when the tool declares no output type (any JSON
        is taken) or is not in `tools`.
    """
    if tool not in tools:
        return None
    return tools.get(tool).returns_schema


def displayable(value: Any) -> Any:
    """What to hand marimo to show an output as a person expects it.

    marimo renders dataframes as tables, charts as charts and JSON data as a
    tree; a pydantic model or a dataclass would show as its `repr`, so
    those become their JSON form (`_json.to_jsonable`) and show as a tree.

    Returns:
        `value` itself, or its JSON form.
    """
    import dataclasses

    from pydantic import BaseModel

    if isinstance(value, BaseModel) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        from marimo_engine._json import to_jsonable

        return to_jsonable(value)
    return value
