"""The code agent: a goal becomes marimo cells that run, are watched and fix themselves.

Each turn: the model writes a `Patch` (or a `Finish`) as structured output;
the patch is checked (syntax and marimo's graph rules with marimo's own
compiler, then the static policy, then a person for what the policy asks
about); refused patches go back to the model with the reason, through
pydantic-ai's output retry. An accepted patch is applied as one atomic
batch through the live bridge (marimo's code mode is the only write path,
the `.py` file is never written by us); marimo runs the touched cells and
their descendants. The monitor reads the cells, makes the certain repairs
(a missing conventional import; a missing package, once a person approves),
classifies the errors left and gathers their facts; the report is the next
turn's prompt. The run ends when the model finishes, or at a limit: turns,
fixes per cell, the same error twice on a cell, tokens, dollars, wall time.
"""

from __future__ import annotations

import inspect
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from marimo_engine.agents.code import _prompts
from marimo_engine.agents.code.checkpoints import Checkpoint, NotebookMemory, snapshot
from marimo_engine.agents.code.checks import ALIASES, check_patch
from marimo_engine.agents.code.events import (
    ApprovalDecision,
    ApprovalRequest,
    CodeEvent,
    CodeEventType,
    CodeResult,
)
from marimo_engine.agents.code.monitor import (
    CellError,
    ErrorClass,
    classify,
    gather_facts,
    package_for,
    timeout_error,
)
from marimo_engine.agents.code.patch import CellDeletion, CellEdit, Finish, NewCell, Patch
from marimo_engine.agents.code.policy import Policy, PolicyFinding, scan_code
from marimo_engine.engine.events import Verdict
from marimo_engine.errors import (
    LiveError,
    LiveKernelError,
    LiveTimeoutError,
    ModelConfigError,
    ModelError,
    StaleCellError,
    UsageError,
)
from marimo_engine.llm.usage import ModelLimits, UsageTracker, model_label

if TYPE_CHECKING:
    from pydantic_ai.models import Model

    from marimo_engine.agents.audit import AuditLog
    from marimo_engine.live.client import LiveClient
    from marimo_engine.live.protocol import CellInfo

__all__ = ["CodeAgent", "CodeOptions", "InterventionCallback"]

InterventionCallback = Callable[
    [ApprovalRequest], "ApprovalDecision | bool | Awaitable[ApprovalDecision | bool | None] | None"
]
"""Asked when the policy says `ask` or a package install is proposed; `None` or `False` refuses."""

Approve = Literal["auto", "ask", "deny"]


@dataclass(frozen=True)
class CodeOptions:
    """How far the code agent may go.

    Attributes:
        max_turns: Model turns (each a patch or a finish), 1 to 100.
        max_fixes_per_cell: Turns that may edit a failing cell before the run stops.
        max_rejections: Patches refused in a row (checks, policy, a person)
            sent back to the model before the run stops.
        limits: Model requests, tokens and US dollars for the whole run.
        max_wall_s: Seconds the whole run may take; `None` for no bound.
        run_timeout_s: Seconds one batch's cells may run before the kernel is interrupted.
        approve: What the policy's `ask` means: `"auto"` approves, `"deny"`
            refuses, `"ask"` asks `on_intervention` (refused when there is none).
        policy: Actions per policy rule and the working directory.
        max_context_chars: Size budget of the notebook text in a prompt.
        install_args: Extra arguments for the package installer (such as
            `("--index-url", URL)`).
        limits_text: The sandbox's limits in words, given with resource-limit errors.
        stream: Ask the model for streamed responses.
    """

    max_turns: int = 12
    max_fixes_per_cell: int = 3
    max_rejections: int = 3
    limits: ModelLimits = field(default_factory=lambda: ModelLimits(request_limit=40))
    max_wall_s: float | None = 1800.0
    run_timeout_s: float = 300.0
    approve: Approve = "deny"
    policy: Policy = field(default_factory=Policy)
    max_context_chars: int = 12_000
    install_args: tuple[str, ...] = ()
    limits_text: str | None = None
    stream: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_turns, int) or not 1 <= self.max_turns <= 100:
            raise UsageError(f"CodeOptions.max_turns is {self.max_turns!r}; use 1 to 100.")
        for name in ("max_fixes_per_cell", "max_rejections"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 20:
                raise UsageError(f"CodeOptions.{name} is {value!r}; use an integer 0 to 20.")
        if self.approve not in ("auto", "ask", "deny"):
            raise UsageError(f"CodeOptions.approve is {self.approve!r}; use auto, ask or deny.")
        if self.max_wall_s is not None and not self.max_wall_s > 0:
            raise UsageError(f"CodeOptions.max_wall_s is {self.max_wall_s!r}; use seconds > 0.")


class _Stop(Exception):
    def __init__(
        self, reason: str, *, verdict: Verdict = Verdict.FAILURE, error: str | None = None
    ):
        super().__init__(reason)
        self.reason = reason
        self.verdict = verdict
        self.error = error


@dataclass
class _Run:
    """The state of one run."""

    goal: str
    run_id: str
    client: LiveClient
    memory: NotebookMemory | None
    audit: AuditLog | None
    tracker: UsageTracker
    started: float
    workdir: Path
    data_columns: dict[str, list[str]]
    key: str = ""
    turn: int = 0
    history: list[Any] | None = None
    run_usage: Any = None
    seen: set[int] = field(default_factory=set)
    pending: list[CodeEvent] = field(default_factory=list)
    agent_cells: set[str] = field(default_factory=set)
    touched: set[str] = field(default_factory=set)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    last_errors: dict[str, CellError] = field(default_factory=dict)
    fixes: dict[str, int] = field(default_factory=dict)
    repairs: list[dict[str, Any]] = field(default_factory=list)
    accepted: tuple[Patch, list[CellInfo], list[Any]] | None = None
    rejections: int = 0
    answer: Finish | None = None

    def record(self, kind: str, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.write(kind, turn=self.turn, **fields)

    def emit(self, type_: CodeEventType, msg: str, **fields: Any) -> None:
        self.pending.append(CodeEvent(type=type_, msg=msg, turn=self.turn, **fields))

    def drain(self) -> list[CodeEvent]:
        events, self.pending = self.pending, []
        return events


class CodeAgent:
    """Writes, runs and fixes marimo cells in a live session to reach a goal.

    Args:
        model: A model string (`"openai:gpt-4o-mini"`, see `marimo_engine.llm`)
            or a pydantic-ai `Model` (tests pass `FunctionModel`).
        fallbacks: Models tried in order when the one before fails.
        options: Turns, limits, approvals and the policy.
        on_intervention: Asked for approvals when `options.approve == "ask"`
            (sync or async; returns `ApprovalDecision`, a bool, or `None` = refuse).
        audit_path: The JSON lines audit log to append to; `None` for none.
        memory_dir: Where per-notebook memory files live; `None` means the
            state directory (`checkpoints.state_dir()`); `False` keeps no memory.
        brief: Extra instructions for this kind of work (the EDA agent's brief).
        env: Environment for keys and endpoints; `None` means `os.environ`.

    Raises:
        ModelConfigError: A model string is malformed, has no key or endpoint,
            or a budget is set for a model that cannot be priced.
    """

    def __init__(
        self,
        model: str | Model,
        *,
        fallbacks: Sequence[str | Model] = (),
        options: CodeOptions | None = None,
        on_intervention: InterventionCallback | None = None,
        audit_path: str | os.PathLike[str] | None = None,
        memory_dir: str | os.PathLike[str] | Literal[False] | None = None,
        brief: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        from marimo_engine.llm.models import build_model, describe_model, is_priced

        self.options = options or CodeOptions()
        self.model = build_model(model, list(fallbacks), env=env)
        self.model_label = describe_model(self.model)
        if self.options.limits.budget_usd is not None and not is_priced(self.model):
            raise ModelConfigError(
                f"A budget of ${self.options.limits.budget_usd:g} is set but model "
                f"{self.model_label!r} has no known price; drop the budget or use a priced model."
            )
        self.on_intervention = on_intervention
        self.audit_path = audit_path
        self.memory_dir = memory_dir
        self.brief = brief
        self._agent = self._build_agent()

    def _build_agent(self) -> Any:
        from pydantic_ai import Agent, RunContext, ToolOutput

        outputs = [
            ToolOutput(
                Patch,
                name=_prompts.PATCH_TOOL,
                description="Create, edit or delete cells; applied together, then run.",
                max_retries=self.options.max_rejections,
            ),
            ToolOutput(
                Finish,
                name=_prompts.FINISH_TOOL,
                description="Declare the goal met, with the answer and the cells holding it.",
                max_retries=self.options.max_rejections,
            ),
        ]
        instructions = _prompts.INSTRUCTIONS + (f"\n{self.brief}" if self.brief else "")
        agent: Agent[Any, Patch | Finish] = Agent(
            self.model,
            output_type=outputs,
            instructions=instructions,
            deps_type=object,
            name="marimo-engine-code",
            retries=self.options.max_rejections,
        )

        @agent.output_validator
        async def _validate(ctx: RunContext[Any], output: Patch | Finish) -> Patch | Finish:
            if ctx.partial_output:  # a streamed answer still arriving: check the whole one
                return output
            return await ctx.deps(output)

        return agent

    # --- public entry points -----------------------------------------------------

    async def run(self, goal: str, client: LiveClient, **options: Any) -> CodeResult:
        """Run the agent to the end on a live session and return its result.

        Args:
            goal: The goal in words.
            client: A `LiveClient` on the session (headless or a person's).
            **options: As for `events` (`notebook`, `data`, `workdir`).

        Returns:
            The `CodeResult` carried by the `DONE` event.
        """
        result: CodeResult | None = None
        async with aclosing(self.events(goal, client, **options)) as stream:
            async for event in stream:
                if event.type is CodeEventType.DONE:
                    result = event.result
        assert result is not None
        return result

    async def events(
        self,
        goal: str,
        client: LiveClient,
        *,
        notebook: str | os.PathLike[str] | None = None,
        data: Sequence[str | os.PathLike[str]] = (),
        workdir: str | os.PathLike[str] | None = None,
        data_context: list[dict[str, Any]] | None = None,
    ) -> AsyncIterator[CodeEvent]:
        """Run the agent, yielding a `CodeEvent` per action; the last is `DONE`.

        Args:
            goal: The goal in words.
            client: A `LiveClient` on the session.
            notebook: The notebook's path (for its memory); `None` keys the
                memory by the session.
            data: Data files the goal is about (CSV, Parquet, JSON); their
                schema is given to the model.
            workdir: The folder writes are allowed in; `None` means the
                notebook's folder, else the current one.
            data_context: Descriptions of the data already made (`data.describe_files`).

        Raises:
            UsageError: An empty goal.
        """
        from marimo_engine.agents.audit import AuditLog
        from marimo_engine.agents.code.data import describe_files

        if not goal or not goal.strip():
            raise UsageError("The code agent needs a goal in words.")
        started = time.monotonic()
        run_id = f"code-{uuid.uuid4().hex[:8]}"
        root = Path(
            workdir or (Path(notebook).resolve().parent if notebook is not None else Path.cwd())
        ).resolve()
        described = data_context if data_context is not None else describe_files(data)
        key = str(Path(notebook).resolve()) if notebook else f"{client.url}#{client.session_id}"
        memory = (
            None
            if self.memory_dir is False
            else NotebookMemory.load(key, Path(self.memory_dir) if self.memory_dir else None)
        )
        audit = AuditLog(self.audit_path, run_id=run_id) if self.audit_path else None
        state = _Run(
            goal=goal,
            run_id=run_id,
            client=client,
            memory=memory,
            audit=audit,
            tracker=UsageTracker(self.options.limits.budget_usd),
            started=started,
            workdir=root,
            key=key,
            data_columns={
                str(d.get("path") or d.get("variable")): [c["name"] for c in d.get("columns", [])]
                for d in described
            },
        )
        verdict, reason, error = Verdict.FAILURE, "interrupted", None
        try:
            state.record(
                "run_start",
                goal=goal,
                model=self.model_label,
                notebook=key,
                options=_options_json(self.options),
                data=described,
            )
            yield CodeEvent(
                type=CodeEventType.START,
                msg=f"Goal: {goal} (model {self.model_label}, notebook {key})",
            )
            try:
                async for event in self._loop(state, described):
                    yield event
                verdict, reason = Verdict.SUCCESS, "finished"
            except _Stop as stop:
                verdict, reason, error = stop.verdict, stop.reason, stop.error
            except LiveError as exc:
                verdict, reason, error = Verdict.FAILURE, "live session error", str(exc)
            for event in state.drain():
                yield event
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, GeneratorExit) else "crashed"
            error = None if isinstance(exc, GeneratorExit) else f"{type(exc).__name__}: {exc}"
            self._end(state, Verdict.FAILURE, reason, error)
            raise
        result = self._end(state, verdict, reason, error)
        yield CodeEvent(
            type=CodeEventType.DONE,
            msg=f"{verdict.value}: {reason}" + (f" ({error})" if error else ""),
            turn=state.turn,
            verdict=verdict,
            usage=result.usage.to_json(),
            result=result,
        )

    def _end(self, state: _Run, verdict: Verdict, reason: str, error: str | None) -> CodeResult:
        answer = state.answer
        result = CodeResult(
            goal=state.goal,
            verdict=verdict,
            answer=answer.answer if answer else None,
            answer_cells=list(answer.cells) if answer else [],
            turns=state.turn,
            checkpoints=list(state.checkpoints),
            errors=[e.to_json() for e in state.last_errors.values()],
            usage=state.tracker.report(),
            stop_reason=reason,
            error=error,
            duration_s=time.monotonic() - state.started,
            notebook=state.key or None,
            url=state.client.url,
            repairs=list(state.repairs),
        )
        if state.memory is not None:
            state.memory.goals.append(
                {
                    "goal": state.goal,
                    "ts": time.time(),
                    "verdict": verdict.value,
                    "answer": result.answer,
                    "reason": reason,
                }
            )
            try:
                state.memory.save()
            except OSError as exc:
                result.error = result.error or f"memory not saved: {exc}"
        if state.audit is not None and state.audit.is_open:
            state.audit.write(
                "run_end",
                verdict=verdict.value,
                stop_reason=reason,
                error=error,
                usage=result.usage.to_json(),
                answer=result.answer,
            )
            state.audit.close()
        return result

    # --- the loop --------------------------------------------------------------------

    async def _loop(self, state: _Run, described: list[dict[str, Any]]) -> AsyncIterator[CodeEvent]:
        cells = await state.client.cells()
        prompt = _prompts.first_prompt(
            state.goal,
            cells=cells,
            workdir=str(state.workdir),
            data=described,
            memory=state.memory.prompt_text() if state.memory else "",
            brief=None,
            max_chars=self.options.max_context_chars,
        )
        while True:
            if state.turn >= self.options.max_turns:
                raise _Stop(
                    f"turn limit ({self.options.max_turns}) reached before the goal was met"
                )
            self._check_wall(state)
            state.turn += 1
            state.accepted = None
            usage = state.tracker.report()
            spent = "unpriced" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
            state.emit(
                CodeEventType.TURN,
                f"Turn {state.turn}: asking {self.model_label} (so far {usage.input_tokens} in "
                f"/ {usage.output_tokens} out tokens, {spent})",
                data={
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cost_usd": usage.cost_usd,
                    "cells_touched": len(state.touched),
                    "repairs": len(state.repairs),
                },
            )
            for event in state.drain():
                yield event
            output = None
            async for item in self._ask(state, prompt):
                if isinstance(item, CodeEvent):
                    yield item
                else:
                    output = item
            if isinstance(output, Finish):
                state.answer = output
                state.record(
                    "decision", decision="finish", answer=output.answer, cells=output.cells
                )
                state.emit(
                    CodeEventType.FINISHED, f"Goal met: {output.answer}", cells=list(output.cells)
                )
                for event in state.drain():
                    yield event
                return
            assert state.accepted is not None
            prompt = await self._apply(state)
            for event in state.drain():
                yield event

    def _check_wall(self, state: _Run) -> None:
        limit = self.options.max_wall_s
        if limit is not None and time.monotonic() - state.started > limit:
            raise _Stop(f"wall-time limit ({limit:g} s) reached")

    async def _ask(self, state: _Run, prompt: str) -> AsyncIterator[Any]:
        """One model turn; yields events, then the accepted output."""
        from pydantic_ai import Agent
        from pydantic_ai.exceptions import UnexpectedModelBehavior

        from marimo_engine.agents._proposing import part_summary
        from marimo_engine.llm.errors import model_errors

        state.rejections = 0

        async def validate(output: Patch | Finish) -> Patch | Finish:
            return await self._validate(state, output)

        run: Any = None
        try:
            with model_errors():
                async with self._agent.iter(
                    prompt,
                    deps=validate,
                    message_history=state.history,
                    usage=state.run_usage,
                    usage_limits=self.options.limits.to_usage_limits(),
                ) as run:
                    async for node in run:
                        self._record_responses(state, run)
                        if Agent.is_model_request_node(node):
                            state.record(
                                "model_request",
                                model=self.model_label,
                                parts=[part_summary(p) for p in node.request.parts],
                            )
                            if self.options.stream:
                                async with node.stream(run.ctx) as stream:
                                    async for _ in stream:
                                        pass
                        for event in state.drain():
                            yield event
                    self._record_responses(state, run)
                    assert run.result is not None
                    state.history = run.result.all_messages()
                    state.run_usage = run.usage
                    output = run.result.output
        except ModelError as exc:
            if run is not None:
                with suppress(ModelError):
                    self._record_responses(state, run)
                state.run_usage = run.usage
            for event in state.drain():
                yield event
            if isinstance(exc.__cause__, UnexpectedModelBehavior) and state.rejections:
                raise _Stop(
                    f"no acceptable patch after {state.rejections} refusal(s)", error=str(exc)
                ) from exc
            raise _Stop("model error", error=str(exc)) from exc
        yield output

    def _record_responses(self, state: _Run, run: Any) -> None:
        from pydantic_ai.messages import ModelResponse

        from marimo_engine.agents._proposing import part_summary

        for message in run.ctx.state.message_history:
            if not isinstance(message, ModelResponse) or id(message) in state.seen:
                continue
            state.seen.add(id(message))
            state.record(
                "model_response",
                model=model_label(message.provider_name, message.model_name),
                parts=[part_summary(p) for p in message.parts],
                input_tokens=message.usage.input_tokens,
                output_tokens=message.usage.output_tokens,
            )
            state.tracker.record(message)  # raises ModelLimitError past the budget

    # --- checks and approvals (run inside the model turn) ----------------------------

    async def _validate(self, state: _Run, output: Patch | Finish) -> Patch | Finish:
        from pydantic_ai import ModelRetry

        if isinstance(output, Finish):
            return await self._validate_finish(state, output)
        cells = await state.client.cells()
        state.record("patch_proposed", patch=output.model_dump(mode="json"))
        state.emit(
            CodeEventType.PATCH_PROPOSED,
            f"Patch: {_ops_text(output)}" + (f" ({output.summary})" if output.summary else ""),
            cells=_op_cells(output),
            data={"patch": output.model_dump(mode="json")},
        )
        outcome = check_patch(cells, output)
        state.record(
            "patch_checked",
            ok=outcome.ok,
            problems=[p.describe() for p in outcome.problems],
            repairs=[r.detail for r in outcome.repairs],
        )
        if not outcome.ok:
            text = _prompts.problems_text(outcome.problems)
            self._reject(state, text, [p.describe() for p in outcome.problems])
            raise ModelRetry(text)
        for repair in outcome.repairs:
            state.repairs.append(
                {
                    "turn": state.turn,
                    "kind": repair.kind,
                    "cell": repair.cell,
                    "detail": repair.detail,
                }
            )
            state.record("repair", repair=repair.kind, cell=repair.cell, detail=repair.detail)
            state.emit(
                CodeEventType.REPAIR,
                f"Repaired {repair.cell!r}: {repair.detail}",
                cells=[repair.cell],
            )
        patch = outcome.patch
        findings = self._scan(state, patch, cells)
        denied = [f for f in findings if f.action == "deny"]
        asked = [f for f in findings if f.action == "ask"]
        if denied:
            text = _prompts.refusal_text(denied, "", by_person=False)
            self._reject(state, text, [f.describe() for f in denied], remember=True)
            raise ModelRetry(text)
        if asked:
            request = ApprovalRequest(
                kind="policy", goal=state.goal, turn=state.turn, findings=tuple(asked), patch=patch
            )
            decision = await self._approval(state, request)
            if not decision.approve:
                text = _prompts.refusal_text(asked, decision.note, by_person=True)
                self._reject(state, text, [f.describe() for f in asked], remember=True)
                raise ModelRetry(text)
        state.accepted = (patch, cells, findings)
        return output

    async def _validate_finish(self, state: _Run, output: Finish) -> Finish:
        from pydantic_ai import ModelRetry

        cells = await state.client.cells()
        known = {c.id: c for c in cells} | {c.name: c for c in cells if c.name}
        missing = [name for name in output.cells if name not in known]
        failing = [
            c.name or c.id
            for c in cells
            if c.id in state.touched and (c.errors or c.status in ("exception", "marimo-error"))
        ]
        if missing or failing:
            parts = []
            if missing:
                parts.append("no such cell(s): " + ", ".join(missing))
            if failing:
                parts.append("your cells still fail: " + ", ".join(failing))
            text = "Not finished: " + "; ".join(parts) + ". Fix them, then finish."
            self._reject(state, text, parts)
            raise ModelRetry(text)
        return output

    def _reject(
        self, state: _Run, text: str, reasons: list[str], *, remember: bool = False
    ) -> None:
        state.rejections += 1
        state.record("decision", decision="reject", reasons=reasons)
        state.emit(CodeEventType.PATCH_REJECTED, "Refused: " + "; ".join(reasons)[:300])
        if remember and state.memory is not None:
            state.memory.rejected.append(
                {"ts": time.time(), "goal": state.goal, "reason": "; ".join(reasons)[:500]}
            )

    def _scan(self, state: _Run, patch: Patch, cells: list[CellInfo]) -> list[PolicyFinding]:
        policy = self.options.policy
        if policy.workdir is None:
            policy = Policy(actions=policy.actions, workdir=state.workdir)
        findings: list[PolicyFinding] = []
        by_key = {c.id: c for c in cells} | {c.name: c for c in cells if c.name}
        for op in patch.ops:
            if isinstance(op, (NewCell, CellEdit)):
                label = op.name if isinstance(op, NewCell) else op.target
                findings.extend(scan_code(op.code, label or "", policy))
            elif isinstance(op, CellDeletion):
                cell = by_key.get(op.target)
                if cell is not None and cell.id not in state.agent_cells:
                    action = policy.action("delete_foreign_cell")
                    findings.append(
                        PolicyFinding(
                            "delete_foreign_cell",
                            op.target,
                            0,
                            "deletes a cell the agent did not create",
                            action,
                        )
                    )
        return findings

    async def _approval(self, state: _Run, request: ApprovalRequest) -> ApprovalDecision:
        mode = self.options.approve
        if mode == "auto":
            decision = ApprovalDecision(True, "approved automatically (--approve auto)")
        elif mode == "deny" or self.on_intervention is None:
            why = "--approve deny" if mode == "deny" else "no one to ask (no on_intervention)"
            decision = ApprovalDecision(False, f"refused: {why}")
        else:
            answer = self.on_intervention(request)
            if inspect.isawaitable(answer):
                answer = await answer
            if isinstance(answer, ApprovalDecision):
                decision = answer
            elif isinstance(answer, bool) or answer is None:
                decision = ApprovalDecision(bool(answer), "" if answer else "refused by a person")
            else:
                raise UsageError(
                    f"on_intervention returned {answer!r}; return an ApprovalDecision or a bool."
                )
        state.record(
            "approval",
            request=request.describe(),
            approve=decision.approve,
            note=decision.note,
            mode=mode,
        )
        state.emit(
            CodeEventType.APPROVAL,
            ("Approved: " if decision.approve else "Refused: ") + request.describe(),
            data={"kind": request.kind, "approve": decision.approve, "note": decision.note},
        )
        if state.memory is not None:
            state.memory.decisions.append(
                {
                    "ts": time.time(),
                    "goal": state.goal,
                    "decision": f"{'approved' if decision.approve else 'refused'}: "
                    f"{request.describe()} {decision.note}".strip(),
                }
            )
        return decision

    # --- applying and monitoring -----------------------------------------------------

    async def _apply(self, state: _Run) -> str:
        """Apply the accepted patch, monitor its cells, repair; return the next prompt."""
        from marimo_engine.live.protocol import CreateCell, DeleteCell, EditCell

        assert state.accepted is not None
        patch, before, _ = state.accepted
        ops: list[Any] = []
        for op in patch.ops:
            if isinstance(op, NewCell):
                ops.append(CreateCell(code=op.code, name=op.name, after=op.after))
            elif isinstance(op, CellEdit):
                ops.append(EditCell(target=op.target, code=op.code, name=op.name))
            else:
                ops.append(DeleteCell(target=op.target))
        client = state.client
        timed_out = False
        try:
            batch = await client.apply(ops, timeout_s=self.options.run_timeout_s)
            changed_ids = [
                c.cell_id for c in batch.changes if c.op in ("create", "edit") and c.cell_id
            ]
        except StaleCellError as exc:
            state.record("patch_applied", applied=False, error=str(exc))
            cells = await client.cells()
            return f"The patch was not applied: {exc}\nThe notebook now:\n" + _prompts.cells_text(
                cells, max_chars=self.options.max_context_chars // 2
            )
        except LiveKernelError as exc:
            state.record("patch_applied", applied=False, error=str(exc))
            self._reject(state, f"marimo refused the patch: {exc}", [str(exc)])
            return f"marimo refused the patch, nothing changed: {exc}"
        except LiveTimeoutError:
            timed_out = True
            changed_ids = []
        after = await client.cells()
        old_ids = {c.id for c in before}
        created = [c.id for c in after if c.id not in old_ids]
        state.agent_cells.update(created)
        if timed_out:
            old = {c.id: c.code for c in before}
            changed_ids = created + [c.id for c in after if c.id in old and old[c.id] != c.code]
        state.touched.update(changed_ids)
        state.record("patch_applied", applied=True, cells=changed_ids, timed_out=timed_out)
        state.emit(
            CodeEventType.APPLIED,
            f"Applied: {_ops_text(patch)}" + (" (interrupted: time limit)" if timed_out else ""),
            cells=[_label(after, i) for i in changed_ids],
        )
        errors, after = await self._monitor(state, changed_ids, after, timed_out=timed_out)
        checkpoint = Checkpoint(
            turn=state.turn,
            run_id=state.run_id,
            goal=state.goal,
            summary=patch.summary or _ops_text(patch),
            before=snapshot(before),
            after=snapshot(after),
        )
        if checkpoint.changed:
            state.checkpoints.append(checkpoint)
            if state.memory is not None:
                state.memory.checkpoints.append(checkpoint)
                state.memory.save()
        return await self._report(state, patch, changed_ids, errors, after)

    async def _monitor(
        self, state: _Run, changed_ids: list[str], after: list[CellInfo], *, timed_out: bool
    ) -> tuple[list[CellError], list[CellInfo]]:
        """Classify errors of the changed cells and their descendants; make certain repairs."""
        client = state.client
        for _ in range(3):  # each repair re-reads the notebook; bounded
            affected = await self._affected(state, changed_ids)
            names = {c.id: c.name for c in after}
            errors: list[CellError] = []
            for cell in after:
                if cell.id not in affected:
                    continue
                if (
                    timed_out
                    and cell.id in changed_ids
                    and cell.status
                    in (
                        "interrupted",
                        "running",
                        "queued",
                        "cancelled",
                    )
                ):
                    errors.append(
                        timeout_error(cell.id, cell.name, cell.code, self.options.run_timeout_s)
                    )
                    continue
                error = classify(cell, names)
                if error is not None:
                    errors.append(error)
            repaired = await self._runtime_repairs(state, errors, after)
            if not repaired:
                return errors, after
            after = await client.cells()
            timed_out = False
        return errors, after

    async def _affected(self, state: _Run, changed_ids: list[str]) -> set[str]:
        affected = set(changed_ids)
        try:
            graph = await state.client.graph()
        except LiveError:
            return affected
        for node in graph.cells:
            if node.cell_id in changed_ids:
                affected.update(node.descendants)
        return affected

    async def _runtime_repairs(
        self, state: _Run, errors: list[CellError], cells: list[CellInfo]
    ) -> bool:
        """Certain repairs after a run: a missing alias import, an approved package install."""
        from marimo_engine.live.protocol import CreateCell, RunCell

        client = state.client
        aliases = sorted(
            {
                e.subject
                for e in errors
                if e.error_class is ErrorClass.UNDEFINED_NAME and e.subject in ALIASES
            }
        )
        defined = set()
        for cell in cells:
            defined |= _top_level_defs(cell.code)
        aliases = [a for a in aliases if a not in defined]
        if aliases:
            code = "\n".join(ALIASES[a] for a in aliases)
            name = _free_name(cells, "imports")
            batch = await client.apply(
                [CreateCell(code=code, name=name)], timeout_s=self.options.run_timeout_s
            )
            state.agent_cells.update(batch.cell_ids)
            detail = f"added a cell {name!r}: {code.replace(chr(10), '; ')}"
            state.repairs.append(
                {"turn": state.turn, "kind": "missing_import", "cell": name, "detail": detail}
            )
            state.record("repair", repair="missing_import", cell=name, detail=detail)
            state.emit(CodeEventType.REPAIR, f"Repaired: {detail}", cells=[name])
            return True
        missing = [e for e in errors if e.error_class is ErrorClass.MISSING_MODULE and e.subject]
        repaired = False
        tried: set[str] = set()
        for error in missing:
            assert error.subject is not None
            package = package_for(error.subject)
            if package in tried:
                continue
            tried.add(package)
            request = ApprovalRequest(
                kind="install",
                goal=state.goal,
                turn=state.turn,
                package=package,
                module=error.subject,
            )
            decision = await self._approval(state, request)
            if not decision.approve:
                error.facts["install"] = f"refused: {decision.note or 'a person said no'}"
                continue
            ok, log = await self._install(state, package)
            state.record("install", package=package, ok=ok, log=log[-2000:])
            state.emit(
                CodeEventType.INSTALL,
                f"Installed {package}" if ok else f"Install of {package} failed",
                data={"package": package, "ok": ok},
            )
            if not ok:
                error.facts["install"] = f"failed: {log.strip()[-400:]}"
                continue
            await client.apply(
                [RunCell(target=error.cell_id)], timeout_s=self.options.run_timeout_s
            )
            state.repairs.append(
                {
                    "turn": state.turn,
                    "kind": "install",
                    "cell": error.cell_name,
                    "detail": f"installed {package}",
                }
            )
            repaired = True
        return repaired

    async def _install(self, state: _Run, package: str) -> tuple[bool, str]:
        """Install a package into the kernel's Python (uv if present, else pip)."""
        import json as _json

        args = _json.dumps([*self.options.install_args, package])
        code = (
            "import importlib as _me_il, json as _me_json, shutil as _me_sh, "
            "subprocess as _me_sp, sys as _me_sys\n"
            f"_me_args = _me_json.loads({args!r})\n"
            "_me_uv = _me_sh.which('uv')\n"
            "_me_cmd = ([_me_uv, 'pip', 'install', '--python', _me_sys.executable] if _me_uv "
            "else [_me_sys.executable, '-m', 'pip', 'install']) + _me_args\n"
            "_me_p = _me_sp.run(_me_cmd, capture_output=True, text=True, timeout=600)\n"
            "_me_il.invalidate_caches()\n"
            "print(_me_json.dumps({'rc': _me_p.returncode, 'log': (_me_p.stdout + _me_p.stderr)"
            "[-3000:]}))\n"
        )
        try:
            result = await state.client.execute(code, timeout_s=max(self.options.run_timeout_s, 60))
        except LiveError as exc:
            return False, str(exc)
        try:
            reply = _json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return False, result.error or result.stdout
        return reply.get("rc") == 0, str(reply.get("log", ""))

    async def _report(
        self,
        state: _Run,
        patch: Patch,
        changed_ids: list[str],
        errors: list[CellError],
        cells: list[CellInfo],
    ) -> str:
        """Gather facts, enforce the same-error and fix limits, and write the next prompt."""
        for error in errors:
            await gather_facts(
                error,
                state.client,
                cells=cells,
                data_columns=state.data_columns,
                limits=self.options.limits_text,
            )
            state.record("cell_error", **error.to_json())
            state.emit(
                CodeEventType.CELL_ERROR,
                error.report().splitlines()[0],
                cells=[error.cell_name or error.cell_id],
                errors=[error.to_json()],
            )
        edited_failing = [op.target for op in patch.ops if isinstance(op, CellEdit)]
        by_key = {c.id: c.id for c in cells} | {c.name: c.id for c in cells if c.name}
        for target in edited_failing:
            cell_id = by_key.get(target)
            if cell_id is not None and cell_id in state.last_errors:
                state.fixes[cell_id] = state.fixes.get(cell_id, 0) + 1
        current = {e.cell_id: e for e in errors}
        for cell_id, error in current.items():
            previous = state.last_errors.get(cell_id)
            if previous is not None and previous.signature == error.signature:
                state.last_errors = current
                raise _Stop(
                    f"the same error twice in a row on cell {error.label}: {error.message}; "
                    "this line of attack is stopped",
                    error=error.report(),
                )
            if state.fixes.get(cell_id, 0) >= self.options.max_fixes_per_cell and error:
                state.last_errors = current
                raise _Stop(
                    f"cell {error.label} still fails after {state.fixes[cell_id]} fix(es): "
                    f"{error.message}",
                    error=error.report(),
                )
        state.last_errors = current
        lines = [f"Turn {state.turn} applied: {_ops_text(patch)}."]
        shown = set(changed_ids) | set(current)
        for cell in cells:
            if cell.id not in shown or cell.id in current:
                continue
            output = (cell.output or "").strip()
            console = cell.console.strip()
            text = f"- cell {cell.name or cell.id} ran ({cell.status or 'idle'})"
            if output:
                text += f"; output: {output[:800]}"
            if console:
                text += f"; console: {console[:400]}"
            lines.append(text)
        for error in errors:
            lines.append(error.report())
        if not errors:
            lines.append("Every cell you changed ran without error. Continue, or finish.")
        return "\n".join(lines)


def _options_json(options: CodeOptions) -> dict[str, Any]:
    return {
        "max_turns": options.max_turns,
        "max_fixes_per_cell": options.max_fixes_per_cell,
        "max_rejections": options.max_rejections,
        "max_wall_s": options.max_wall_s,
        "run_timeout_s": options.run_timeout_s,
        "approve": options.approve,
        "policy": dict(options.policy.actions),
        "limits": vars(options.limits),
    }


def _ops_text(patch: Patch) -> str:
    parts = []
    for op in patch.ops:
        if isinstance(op, NewCell):
            parts.append(f"create {op.name}")
        elif isinstance(op, CellEdit):
            parts.append(f"edit {op.target}")
        else:
            parts.append(f"delete {op.target}")
    return ", ".join(parts)


def _op_cells(patch: Patch) -> list[str]:
    return [op.name if isinstance(op, NewCell) else op.target for op in patch.ops]


def _label(cells: list[CellInfo], cell_id: str) -> str:
    for cell in cells:
        if cell.id == cell_id:
            return cell.name or cell.id
    return cell_id


def _free_name(cells: list[CellInfo], base: str) -> str:
    taken = {c.name for c in cells}
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _top_level_defs(code: str) -> set[str]:
    from marimo_engine.agents.code.monitor import _defined_names

    return _defined_names(code)
