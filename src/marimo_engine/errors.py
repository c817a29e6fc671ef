"""The one exception tree of marimo-engine.

Every error this package raises on purpose is an `EngineError`. Exceptions hold
data and build their message; they never log, print or exit. The CLI presents
them (one line, a hint, exit code 2 for bad input).

    EngineError
      PlanValidationError   the plan's author, person or model; `.problems` is plain JSON
      UnknownReferenceError a `$step.path` that names nothing at run time
      ExpressionError       a `run_if` / `intervention_if` that fails to evaluate
      InvalidExpressionError  an expression outside the plan language (rejected when parsed)
      ContractError         a step's output broke its `expect` or `schema` (not retried)
      UsageError            the developer calling us wrongly: bad argument, wrong state
        UnknownToolError    a tool name that is not registered, or a step's tool that
                            cannot be called where the step runs
      ToolCancelledError    a tool raised CancelledError while the run was not cancelled
      SubPlanError          a sub-plan run as a step failed (names its failing step)
      LiveError             the marimo server
        LiveConnectionError
          LiveSessionEndedError  the kernel died or was restarted: the session is gone
        LiveHTTPError       (status, url)
        StaleCellError      an edit lost a race with the person editing the notebook
        PersonCellError     an edit or delete of a cell whose code the person wrote
        LiveTimeoutError    a request or kernel run outlived its timeout (the run is interrupted)
        LiveUnsupportedError  the server's marimo lacks `marimo._code_mode`
        LiveSelectionError  no server or session matched, or several did
        LiveKernelError     a notebook operation failed inside the kernel
      ModelError            the LLM provider: rate limit, bad response, usage limit
        ModelConfigError    no key or endpoint configured, or a model string we cannot read
        ModelLimitError     a usage limit (requests, tokens, US dollars) stopped the run
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marimo_engine.plans.problems import Problem

__all__ = [
    "ContractError",
    "EngineError",
    "ExpressionError",
    "InvalidExpressionError",
    "LiveConnectionError",
    "LiveError",
    "LiveHTTPError",
    "LiveKernelError",
    "LiveSelectionError",
    "LiveSessionEndedError",
    "LiveTimeoutError",
    "LiveUnsupportedError",
    "ModelConfigError",
    "ModelError",
    "ModelLimitError",
    "PersonCellError",
    "PlanValidationError",
    "StaleCellError",
    "SubPlanError",
    "ToolCancelledError",
    "UnknownReferenceError",
    "UnknownToolError",
    "UsageError",
]


class EngineError(Exception):
    """Base class of every error raised on purpose by marimo-engine."""


class PlanValidationError(EngineError):
    """A plan has one or more problems; nothing of it was run.

    Attributes:
        problems: Every problem found, as `Problem` models (see the plan
            language spec, "Validation"). `problems_json()` gives plain JSON.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        count = len(self.problems)
        head = "; ".join(p.describe() for p in self.problems[:3])
        more = f" (and {count - 3} more)" if count > 3 else ""
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"The plan has {count} {noun}: {head}{more}")

    def problems_json(self) -> list[dict[str, Any]]:
        """Return the problems as a list of plain JSON objects.

        Returns:
            One dict per problem with keys `step_id`, `field`, `code`, `message`.
        """
        return [p.model_dump(mode="json") for p in self.problems]


class UnknownReferenceError(EngineError):
    """A reference such as `$s2.level` names a step or path that does not exist.

    Attributes:
        reference: The reference text as written, such as `"$s2.level"`.
        segment: The path segment that was missing, or `None` when the step
            itself has no output.
    """

    def __init__(self, message: str, *, reference: str, segment: str | None = None) -> None:
        super().__init__(message)
        self.reference = reference
        self.segment = segment


class ExpressionError(EngineError):
    """An expression failed to evaluate, such as `None < 15` (a type error).

    Attributes:
        expression: The expression text.
    """

    def __init__(self, message: str, *, expression: str) -> None:
        super().__init__(message)
        self.expression = expression


class InvalidExpressionError(EngineError):
    """A `run_if` / `intervention_if` expression is not in the plan language.

    Raised by the expression parser before any step runs: a syntax error, a
    construct the spec does not allow (a call, `**`, a bare name...), or an
    expression over the length or depth limit. The message says what is
    allowed. Validation reports it as an `invalid_expression` problem.

    Attributes:
        expression: The expression text as written.
    """

    def __init__(self, message: str, *, expression: str) -> None:
        super().__init__(message)
        self.expression = expression


class ContractError(EngineError):
    """A step's output broke its contract: an `expect` expression or its `schema`.

    The step fails with this error and is not retried (the tool answered; the
    answer is wrong). The message names the step, the expression (or the
    schema's rule and where in the output it failed) and the values seen, so
    that a person or the planner's model can act on it.

    Attributes:
        step_id: The step whose output broke the contract.
        expression: The `expect` expression that was false or failed, or
            `None` for a `schema` mismatch.
        values: What the expression's references named, by reference text
            (`{"$self.rows": 0}`); for a `schema` mismatch, the output's
            value at the failing place, by its JSON path (`{"$self.rows": "x"}`).
    """

    def __init__(
        self,
        message: str,
        *,
        step_id: str,
        expression: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.step_id = step_id
        self.expression = expression
        self.values = dict(values or {})


class UsageError(EngineError):
    """The caller used the API wrongly: a bad argument or a call in the wrong state."""


class UnknownToolError(UsageError, LookupError):
    """A tool name is not in the registry, or a step's tool cannot be called where it runs.

    Attributes:
        name: The name that was asked for.
        suggestions: Close registered names, best first (may be empty).
    """

    def __init__(
        self,
        name: str,
        suggestions: Sequence[str] = (),
        known: Sequence[str] = (),
        *,
        message: str | None = None,
    ) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        if message is not None:  # where the tool is missing is not a registry
            super().__init__(message)
            return
        if self.suggestions:
            hint = "Did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        elif known:
            hint = "Registered tools: " + ", ".join(repr(k) for k in sorted(known)) + "."
        else:
            hint = "No tools are registered."
        super().__init__(f"Tool {name!r} is not registered. {hint}")

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0])


class SubPlanError(EngineError):
    """A sub-plan run as a step ended with `FAILURE` (plan language 2, "Sub-plans").

    Attributes:
        plan: The step's `plan` (the sub-plan's name or path).
        step_id: The sub-plan's step whose error failed it, or `None`.
        error_type: The class name of that error, such as `"ValueError"`.
    """

    def __init__(
        self, message: str, *, plan: str, step_id: str | None = None, error_type: str = ""
    ) -> None:
        super().__init__(message)
        self.plan = plan
        self.step_id = step_id
        self.error_type = error_type


class ToolCancelledError(EngineError):
    """A tool raised `asyncio.CancelledError` although the run was not cancelled.

    Reported as the step's error (and retried like one), so that a tool's own
    cancellation cannot pass for the run's.
    """


class LiveError(EngineError):
    """Something went wrong talking to a running marimo server."""


class LiveConnectionError(LiveError):
    """The marimo server could not be reached (refused, timed out, dropped)."""


class LiveSessionEndedError(LiveConnectionError):
    """The session's kernel died, stopped or was restarted while the client used it.

    The kernel's variables are gone; whatever call was running has an
    unknown outcome. Pick or open a session again.

    Attributes:
        session_id: The session the client was using.
        reason: `"kernel-stopped"` (the kernel process is not running) or
            `"session-closed"` (marimo closed the session: a restart, a shutdown,
            or a kernel that died and was cleaned up).
    """

    def __init__(self, message: str, *, session_id: str, reason: str) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.reason = reason


class LiveHTTPError(LiveError):
    """The marimo server answered with an HTTP error status.

    Attributes:
        status: The HTTP status code.
        url: The URL requested.
    """

    def __init__(self, message: str, *, status: int, url: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class StaleCellError(LiveError):
    """An edit lost a race: the cell changed since it was read. Read it again."""


class PersonCellError(LiveError):
    """An edit or delete of a cell whose current code the agent did not write; nothing applied.

    marimo cannot tell that a person is typing in a cell (the browser sends
    typing only after a pause), so by default the agent changes only cells
    whose code it wrote itself. Put the change in a new cell, or pass
    `allow_person_cell=True` when the person asked for this edit.

    Attributes:
        cell_id: The cell refused.
    """

    def __init__(self, message: str, *, cell_id: str) -> None:
        super().__init__(message)
        self.cell_id = cell_id


class LiveTimeoutError(LiveError):
    """A live request or kernel run took longer than its timeout; the run was interrupted.

    Attributes:
        timeout_s: The timeout that expired, in seconds.
    """

    def __init__(self, message: str, *, timeout_s: float) -> None:
        super().__init__(message)
        self.timeout_s = timeout_s


class LiveUnsupportedError(LiveError):
    """The marimo server lacks what the live bridge needs (`marimo._code_mode`)."""


class LiveSelectionError(LiveError):
    """No running server or session matched, or several did and the choice is ambiguous.

    Attributes:
        candidates: What was found, one short description each (may be empty).
    """

    def __init__(self, message: str, *, candidates: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.candidates = list(candidates)


class LiveKernelError(LiveError):
    """A notebook operation failed inside the kernel: an unknown cell, an invalid name or code.

    Attributes:
        error_type: The kernel-side exception's class name, such as `"KeyError"`.
    """

    def __init__(self, message: str, *, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class ModelError(EngineError):
    """The LLM provider failed: no key, rate limit, bad response or a usage limit."""


class ModelConfigError(ModelError):
    """A model cannot be built: an unknown model string, or no key or endpoint configured.

    The message is one line naming the environment variables to set.
    """


class ModelLimitError(ModelError):
    """A usage limit stopped the model: requests, tokens or the budget in US dollars.

    Attributes:
        limit: Which limit, such as `"request_limit"`, `"total_tokens_limit"` or
            `"budget_usd"`.
    """

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit
