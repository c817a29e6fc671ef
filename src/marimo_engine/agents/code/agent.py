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

import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from marimo_engine.agents.code import _prompts
from marimo_engine.agents.code._apply import Applier
from marimo_engine.agents.code._gate import Gate
from marimo_engine.agents.code._run import CodeRun, StopCode
from marimo_engine.agents.code.checkpoints import NotebookMemory
from marimo_engine.agents.code.events import (
    ApprovalDecision,
    ApprovalRequest,
    CodeEvent,
    CodeEventType,
    CodeResult,
)
from marimo_engine.agents.code.patch import Finish, Patch
from marimo_engine.agents.code.policy import Policy
from marimo_engine.engine.events import Verdict
from marimo_engine.errors import (
    LiveError,
    ModelConfigError,
    ModelError,
    UsageError,
)
from marimo_engine.llm.usage import ModelLimits, UsageTracker, model_label

if TYPE_CHECKING:
    from pydantic_ai.models import Model

    from marimo_engine.live.client import LiveClient

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


class CodeAgent(Gate, Applier):
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
        new_notebook: bool = False,
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
            new_notebook: The notebook was created for this run: the blank cell
                marimo puts in a new notebook is removed before the first turn
                (a notebook with anything else in it is left as it is).

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
        state = CodeRun(
            goal=goal,
            run_id=run_id,
            client=client,
            memory=memory,
            audit=audit,
            tracker=UsageTracker(self.options.limits.budget_usd),
            started=started,
            deadline=None if self.options.max_wall_s is None else started + self.options.max_wall_s,
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
                if new_notebook:
                    await remove_blank_cell(client)
                async for event in self._loop(state, described):
                    yield event
                verdict, reason = Verdict.SUCCESS, "finished"
            except StopCode as stop:
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

    def _end(self, state: CodeRun, verdict: Verdict, reason: str, error: str | None) -> CodeResult:
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

    async def _loop(
        self, state: CodeRun, described: list[dict[str, Any]]
    ) -> AsyncIterator[CodeEvent]:
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
                raise StopCode(
                    f"turn limit ({self.options.max_turns}) reached before the goal was met"
                )
            self._check_wall(state)
            state.turn += 1
            state.accepted = None
            usage = state.tracker.report()
            spent = "unpriced" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
            so_far = (
                "no model calls yet"
                if not usage.requests
                else f"so far {usage.input_tokens} in / {usage.output_tokens} out tokens, {spent}"
            )
            state.emit(
                CodeEventType.TURN,
                f"Turn {state.turn}: asking {self.model_label} ({so_far})",
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

    def _check_wall(self, state: CodeRun) -> None:
        limit = self.options.max_wall_s
        if limit is not None and time.monotonic() - state.started > limit:
            raise StopCode(f"wall-time limit ({limit:g} s) reached")

    async def _ask(self, state: CodeRun, prompt: str) -> AsyncIterator[Any]:
        """One model turn; yields events, then the accepted output.

        The turn (model requests, the gate, approvals) runs in its own task,
        and this generator waits for its events with the run's wall-time limit:
        a slow or silent provider, or a person who does not answer an
        approval, ends the run at the limit, not only between turns. (A cancel
        scope inside the turn cannot do it: pydantic-ai's graph opens its task
        group lazily inside the first step, and the scope would cross a `yield`.)

        Raises:
            StopCode: The model failed, refused patches too often, or the run's
                wall time ended while waiting for the model or an approval.
        """
        import asyncio

        import anyio

        state.rejections = 0
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        task = asyncio.ensure_future(self._turn(state, prompt, events))
        try:
            while True:
                left = None if state.deadline is None else state.deadline - time.monotonic()
                try:
                    with anyio.fail_after(None if left is None else max(left, 0.0)):
                        kind, value = await events.get()
                except TimeoutError:
                    if state.run is not None:
                        with suppress(ModelError):
                            self._record_responses(state, state.run)
                        state.run_usage = state.run.usage
                    for event in state.drain():
                        yield event
                    raise StopCode(
                        f"wall-time limit ({self.options.max_wall_s:g} s) reached during turn "
                        f"{state.turn} (waiting for the model or an approval)"
                    ) from None
                if kind == "events":
                    for event in value:
                        yield event
                elif kind == "shown":  # the turn waits until its events are taken
                    taken, shown = value
                    for event in taken:
                        yield event
                    shown.set()
                elif kind == "error":
                    for event in state.drain():
                        yield event
                    raise value
                else:
                    yield value
                    return
        finally:
            if not task.done():
                task.cancel()
                with suppress(BaseException):
                    await asyncio.wait({task}, timeout=30)
            state.run = None

    async def _turn(self, state: CodeRun, prompt: str, events: Any) -> None:
        """`_ask`'s turn, in its own task: puts `("events", [...])`, then the output or error."""
        import asyncio

        from pydantic_ai import Agent
        from pydantic_ai.exceptions import UnexpectedModelBehavior

        from marimo_engine.agents._proposing import part_summary
        from marimo_engine.llm.errors import model_errors

        async def validate(output: Patch | Finish) -> Patch | Finish:
            return await self._validate(state, output)

        async def show() -> None:
            shown = asyncio.Event()
            events.put_nowait(("shown", (state.drain(), shown)))
            await shown.wait()  # `_ask` sets it once its reader took the events

        state.show = show

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
                    state.run = run
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
                        events.put_nowait(("events", state.drain()))
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
            if isinstance(exc.__cause__, UnexpectedModelBehavior) and state.rejections:
                stop = StopCode(
                    f"no acceptable patch after {state.rejections} refusal(s)", error=str(exc)
                )
            else:
                stop = StopCode("model error", error=str(exc))
            stop.__cause__ = exc
            events.put_nowait(("error", stop))
            return
        except BaseException as exc:  # raised in the caller's task, as if the turn ran there
            if isinstance(exc, asyncio.CancelledError):
                raise  # only `_ask` cancels the turn, when it no longer waits for it
            events.put_nowait(("error", exc))
            return
        finally:
            state.show = None
        events.put_nowait(("output", output))

    def _record_responses(self, state: CodeRun, run: Any) -> None:
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


async def remove_blank_cell(client: LiveClient) -> bool:
    """Delete the one blank cell of a notebook that has nothing else (marimo's new notebook).

    marimo creates a missing notebook file with one empty cell; a notebook the
    agent creates should hold only the agent's cells.

    Args:
        client: A `LiveClient` on the session.

    Returns:
        Whether a cell was deleted (`False` when the notebook has other cells,
        or code in its one cell).
    """
    cells = await client.cells(max_output_chars=0)
    if len(cells) != 1 or cells[0].code.strip():
        return False
    await client.delete_cell(cells[0].id, allow_person_cell=True)  # blank: nothing to lose
    return True


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
