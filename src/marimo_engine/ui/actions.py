"""What the runs UI does: resume, re-run, propose a plan and run it (docs/ui.md).

Each action calls the same function as the CLI and the MCP server
(`engine.durable.resume_run` and `rerun`, `engine.executor.execute_plan`
with a journal, `agents.PlannerAgent`), so the UI has no rules of its own.
A run started here goes on in a background thread: the call returns once
the run is set up (its checks done, its lease taken), and the page follows
the run through the journal, as it follows any other process's run. A
wrong answer (a stale intervention, an answer that does not fit the
step's output type) raises `UsageError` at once, before anything runs.

`UIConfig` is how `marimo-engine ui` tells the app its journal, tools and
model: environment variables, which a person's `marimo edit` of the app
reads as well.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.agents.events import AgentResult
    from marimo_engine.engine.durable import Decision
    from marimo_engine.engine.executor import PlanRun
    from marimo_engine.engine.journal import Journal
    from marimo_engine.tools.registry import ToolRegistry

__all__ = [
    "CONFIG_ENV_VAR",
    "UIConfig",
    "background_errors",
    "propose_plan",
    "rerun",
    "rerun_changes",
    "resume",
    "start_plan",
]

CONFIG_ENV_VAR = "MARIMO_ENGINE_UI"
"""Environment variable with the app's settings as JSON.

`{"tools": [...], "model": ..., "fallbacks": [...]}`; the journal is
`$MARIMO_ENGINE_JOURNAL`, as for every command.
"""

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UIConfig:
    """The app's settings.

    Attributes:
        journal: The run journal (`journal.open_journal`'s argument); `None`
            reads `$MARIMO_ENGINE_JOURNAL`, else the default file.
        tools: `--tools` modules (module paths or `.py` files), as for `marimo-engine run`.
        model: The planner's model string for the chat (`openai:NAME`, ...;
            docs/agents.md), or `None`: the chat says how to set one.
        fallbacks: Models tried when the one before fails.
    """

    journal: str | None = None
    tools: tuple[str, ...] = ()
    model: str | None = None
    fallbacks: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UIConfig:
        """Read the settings `to_env` wrote (`$MARIMO_ENGINE_UI`, `$MARIMO_ENGINE_JOURNAL`).

        Raises:
            UsageError: `$MARIMO_ENGINE_UI` is not the JSON object described above.
        """
        from marimo_engine.engine.journal import ENV_VAR

        env = os.environ if env is None else env
        text = env.get(CONFIG_ENV_VAR) or "{}"
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            tools = tuple(str(t) for t in data.get("tools") or ())
            fallbacks = tuple(str(m) for m in data.get("fallbacks") or ())
            model = data.get("model")
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"${CONFIG_ENV_VAR} is not a JSON object with 'tools', 'model' and "
                f"'fallbacks' ({exc}); unset it or start the app with 'marimo-engine ui'."
            ) from exc
        return cls(
            journal=env.get(ENV_VAR) or None,
            tools=tools,
            model=str(model) if model else None,
            fallbacks=fallbacks,
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that carry these settings to the app."""
        from marimo_engine.engine.journal import ENV_VAR

        env = {
            CONFIG_ENV_VAR: json.dumps(
                {"tools": list(self.tools), "model": self.model, "fallbacks": list(self.fallbacks)}
            )
        }
        if self.journal:
            env[ENV_VAR] = self.journal
        return env

    def open_journal(self) -> Journal:
        """Open the journal (close it when done; it is a context manager)."""
        from marimo_engine.engine.journal import open_journal

        return open_journal(self.journal)

    def registry(self) -> ToolRegistry:
        """The tools: the example and data tools plus `tools` (loaded once per process).

        Raises:
            UsageError: A `--tools` module cannot be loaded (`cli.loading.load_tools`).
        """
        with _lock:
            found = _registries.get(self.tools)
            if found is None:
                from marimo_engine.cli.loading import load_tools

                found = load_tools(list(self.tools)).registry
                _registries[self.tools] = found
            return found


_lock = threading.Lock()
_registries: dict[tuple[str, ...], Any] = {}
_errors: dict[str, str] = {}


def background_errors() -> dict[str, str]:
    """Run id to the error that ended a background run's thread (a bug, not a failed step).

    A step that fails is part of the run (its journal says so); this holds
    only what escaped the engine, so that the page can say it.
    """
    with _lock:
        return dict(_errors)


def _start(run: PlanRun, run_id: str) -> str:
    """Drive `run` to its `FINISH` in a daemon thread of its own; returns `run_id`."""

    async def drain() -> None:
        async with run:
            async for _ in run:
                pass

    def main() -> None:
        try:
            asyncio.run(drain())
        except BaseException as exc:  # the page shows it; the thread must not die silently
            _log.exception("The run %s stopped with an error", run_id)
            with _lock:
                _errors[run_id] = f"{type(exc).__name__}: {exc}"

    threading.Thread(target=main, name=f"marimo-engine-ui-{run_id}", daemon=True).start()
    return run_id


def resume(
    config: UIConfig, run_id: str, decision: Decision, *, intervention_id: str | None
) -> str:
    """Answer the run's pending intervention and go on with it in the background.

    Args:
        config: The app's settings (journal and tools).
        run_id: The run.
        decision: The person's `durable.Decision`.
        intervention_id: The intervention the person saw; a stale one is refused.

    Returns:
        `run_id`.

    Raises:
        UsageError: As `durable.resume_run` raises it (stale, an answer that
            does not fit, nothing pending); nothing ran.
        RunBusyError: Another live process is running it.
    """
    from marimo_engine.engine.durable import resume_run

    try:
        run = resume_run(
            run_id,
            config.registry(),
            journal=config.journal,
            decision=decision,
            intervention_id=intervention_id,
        )
    except UsageError as exc:
        raise UsageError(_page_words(str(exc))) from exc
    return _start(run, run_id)


def _page_words(message: str) -> str:
    """Say `durable.resume_run`'s CLI option names as the page's buttons."""
    return (
        message.replace("--answer does not fit", "The answer does not fit")
        .replace(
            "pass --approve, --reject or --answer JSON", "answer with Approve, Reject or Answer"
        )
        .replace("pass --approve or --reject", "answer with Approve or Reject")
    )


def rerun_changes(
    step_id: str, old_args: Mapping[str, Any], new_args: Mapping[str, Any]
) -> dict[str, Any]:
    """The `durable.rerun` changes (`"STEP.args.NAME"` to value) from a step's edited arguments.

    Raises:
        UsageError: An argument was removed (a re-run changes values; to drop
            one, re-run with a changed plan), or nothing changed.
    """
    removed = sorted(set(old_args) - set(new_args))
    if removed:
        raise UsageError(
            f"Arguments {', '.join(map(repr, removed))} of step {step_id!r} were removed; "
            "a re-run changes values: put them back."
        )
    changes = {
        f"{step_id}.args.{name}": value
        for name, value in new_args.items()
        if name not in old_args or old_args[name] != value
    }
    if not changes:
        raise UsageError(f"The arguments of step {step_id!r} did not change; edit one first.")
    return changes


def rerun(config: UIConfig, run_id: str, changes: Mapping[str, Any]) -> str:
    """Start a re-run of `run_id` with changed arguments, in the background.

    Only the steps whose inputs changed, and their dependents, run
    (`durable.rerun`, docs/runs.md "Reactive re-run").

    Args:
        config: The app's settings.
        run_id: The old run.
        changes: `"STEP.args.NAME"` to the new value (`rerun_changes`).

    Returns:
        The new run's id.

    Raises:
        UsageError: As `durable.rerun` raises it (no such run, step or argument).
    """
    from marimo_engine.engine.durable import new_run_id
    from marimo_engine.engine.durable import rerun as durable_rerun

    new_id = new_run_id()
    run = durable_rerun(
        run_id, config.registry(), changes=changes, journal=config.journal, new_run_id_=new_id
    )
    return _start(run, new_id)


def start_plan(config: UIConfig, plan: Mapping[str, Any]) -> str:
    """Run a plan (a person approved it) with the journal, in the background.

    Returns:
        The new run's id; the run appears in the journal at once.

    Raises:
        PlanValidationError: The plan is not valid with the app's tools.
    """
    from marimo_engine.engine.durable import new_run_id
    from marimo_engine.engine.executor import execute_plan
    from marimo_engine.tools.validation import check_plan

    registry = config.registry()
    check_plan(dict(plan), registry)
    run_id = new_run_id()
    run = execute_plan(
        dict(plan),
        registry,
        journal=config.journal if config.journal else True,
        run_id=run_id,
    )
    return _start(run, run_id)


_agents: dict[tuple[Any, ...], Any] = {}


async def propose_plan(
    config: UIConfig,
    goal: str,
    *,
    on_event: Callable[[Any], None] | None = None,
) -> AgentResult:
    """Ask the planner agent for a plan for `goal`, without running it (a person approves it).

    Args:
        config: The app's settings: `model`, `fallbacks`, `tools`.
        goal: The goal in words.
        on_event: Called with each `AgentEvent` (proposals, rejections with
            their problems) as it happens.

    Returns:
        The agent's result (`PlannerAgent.run(..., run_plans=False)`): with
        a valid plan, `stop_reason` is `agents.planner.PROPOSED_ONLY` and
        the plan is `plans[-1].plan`; otherwise `error` or the last
        proposal's problems say why there is none.

    Raises:
        UsageError: No model is configured.
        ModelConfigError: The model has no key or endpoint (docs/agents.md).
    """
    from contextlib import aclosing

    from marimo_engine.agents.events import AgentEventType
    from marimo_engine.agents.planner import PlannerAgent

    if not config.model:
        raise UsageError(
            "No model for the planner: start the UI with 'marimo-engine ui --model MODEL' "
            "(such as openai:gpt-4o-mini; docs/agents.md lists the models)."
        )
    key = (config.model, config.fallbacks, config.tools)
    with _lock:
        agent = _agents.get(key)
    if agent is None:
        agent = PlannerAgent(config.model, config.registry(), fallbacks=list(config.fallbacks))
        with _lock:
            _agents[key] = agent
    result = None
    async with aclosing(agent.events(goal, run_plans=False)) as stream:
        async for event in stream:
            if on_event is not None:
                on_event(event)
            if event.type is AgentEventType.DONE:
                result = event.result
    assert result is not None  # DONE is always last
    return result
