"""What runs on a Dask worker when a plan runs on a cluster (`engine.dask_host`).

These functions are the Dask tasks and `Client.run` targets of a plan run.
They run in a worker process, so marimo-engine must be installed where the
workers run; they import nothing heavy at module level. What they do is the
part of a step that touches data, never a step's semantics (those stay in
`engine.step.run_step`, on the driver):

- `call` loads the tool (by import path, or from its pickled bytes), calls
  it once on the worker's thread, interruptibly (`interrupt`), and returns
  its output, which stays in the worker's memory as the try's Dask future;
  beside it, it reports only what the driver needs (`Report`, `describe`):
  the output's JSON summary (`_json.to_jsonable`, as events carry outputs
  today) or, for a step whose output the caller asked for, the output
  itself; its size; and the truth of the step's `intervention_if`; or the
  try's error;
- `evaluate` and `resolve` evaluate a `run_if` and resolve `$step.path`
  references where the outputs are;
- `map_list`, `describe_items` and `as_list` read a map step's list where
  it is and join its items' results there; `first_item` evaluates a
  per-item `intervention_if` (`engine._map`'s own functions, run there);
- `check_tools` tells, per worker, which tools cannot be loaded there;
- `stop_ahead` and `forget_run` end the tries a run submitted ahead of their
  dependencies' end (see `call`'s `after` and `engine.dask_host`).

Exceptions cross the wire as `CarriedError` (class path, args and attributes):
many exceptions, ours included, take keyword-only arguments that plain
pickling cannot rebuild. `CarriedError.unpack()` rebuilds the original on the
driver, so an `ERROR` says the same type and message as in process.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from marimo_engine.engine._threads import StepInterrupted, ThreadCall
from marimo_engine.plans.contracts import SELF

__all__ = [
    "AS_LIST",
    "NO_OUTPUT",
    "CarriedError",
    "Description",
    "Report",
    "ToolRef",
    "as_list",
    "call",
    "check_tools",
    "describe",
    "describe_items",
    "describe_value",
    "evaluate",
    "first_item",
    "forget_run",
    "interrupt",
    "map_list",
    "read_items",
    "resolve",
    "resolve_one",
    "running",
    "stop_ahead",
]


@dataclass(frozen=True, slots=True)
class ToolRef:
    """How a worker finds a tool.

    Attributes:
        name: The tool's registered name.
        import_path: `(module, qualname)` when the function is importable by
            module path (`ToolSpec.import_path`); the worker imports it.
        pickled: The function pickled by value (cloudpickle), for a tool with
            no import path (a lambda, a function in `__main__` or in another
            function); `None` with an import path.
    """

    name: str
    import_path: tuple[str, str] | None
    pickled: bytes | None


class ToolLoadError(Exception):
    """A tool cannot be loaded on a worker (its module is not installed there)."""


class CarriedError(Exception):
    """An exception on its way from a worker to the driver.

    Args:
        exc: The exception raised on the worker.
    """

    def __init__(self, exc: BaseException | None = None, *, state: tuple[Any, ...] = ()) -> None:
        if exc is not None:
            cls = type(exc)
            attributes = {}
            for key, value in getattr(exc, "__dict__", {}).items():
                attributes[key] = value if _picklable(value) else repr(value)
            args = tuple(a if _picklable(a) else repr(a) for a in exc.args)
            text = "".join(traceback.format_exception(exc))
            state = (cls.__module__, cls.__qualname__, args, attributes, _message(exc), text)
        self.state = state
        super().__init__(f"{state[1]}: {state[4]}" if state else "")

    def __reduce__(self) -> Any:
        return (_rebuild_carried, (self.state,))

    def unpack(self) -> BaseException:
        """The original exception, rebuilt on the driver (this carrier if that fails).

        The worker's traceback text is kept on it as `remote_traceback`.
        """
        module, qualname, args, attributes, _, text = self.state
        try:
            cls: Any = importlib.import_module(module)
            for part in qualname.split("."):
                cls = getattr(cls, part)
            exc = cls.__new__(cls)
            exc.args = args
            exc.__dict__.update(attributes)
            str(exc)  # a class whose __str__ needs what we could not rebuild
        except Exception:
            exc = self
        exc.remote_traceback = text
        return exc


def _rebuild_carried(state: tuple[Any, ...]) -> CarriedError:
    return CarriedError(state=state)


def _message(exc: BaseException) -> str:
    try:
        return str(exc) or repr(exc)
    except Exception:
        return f"<message unavailable: {type(exc).__name__}>"


def _picklable(value: Any) -> bool:
    import pickle

    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


# -- tools --------------------------------------------------------------------------------


_tools_lock = threading.Lock()
_tools: dict[tuple[str, Any], Callable[..., Any]] = {}


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # not inside a worker (a test calling this directly)
        return "this process"


def load_tool(ref: ToolRef) -> Callable[..., Any]:
    """Return the tool's function on this worker (cached per process).

    Raises:
        ToolLoadError: Its module cannot be imported here, or its pickled
            function cannot be loaded; the message says what to install.
    """
    key = (ref.name, ref.import_path or ref.pickled)
    function = _tools.get(key)
    if function is not None:
        return function
    try:
        if ref.import_path is not None:
            module_name, qualname = ref.import_path
            found: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                found = getattr(found, part)
        else:
            import cloudpickle

            assert ref.pickled is not None
            found = cloudpickle.loads(ref.pickled)
    except Exception as exc:
        where = (
            f"module {ref.import_path[0]!r}" if ref.import_path else "what its function refers to"
        )
        raise ToolLoadError(
            f"Tool {ref.name!r} cannot be loaded on Dask worker {_worker_address()}: "
            f"{type(exc).__name__}: {exc}. Install {where} where the workers run "
            "(the same environment as this process), or run the plan in process."
        ) from None
    with _tools_lock:
        _tools[key] = found
    return found


def check_tools(refs: list[ToolRef]) -> dict[str, str]:
    """`Client.run` target: tool name to why it cannot be loaded on this worker (only failures)."""
    problems: dict[str, str] = {}
    for ref in refs:
        try:
            load_tool(ref)
        except ToolLoadError as exc:
            problems[ref.name] = str(exc)
    return problems


# -- one try ------------------------------------------------------------------------------


_running_lock = threading.Lock()
_running: dict[str, ThreadCall] = {}
"""Try token to the call running on this worker, for `interrupt`."""


def _call_tool(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(function):
        return asyncio.run(function(**kwargs))
    output = function(**kwargs)
    if inspect.isawaitable(output):  # a plain wrapper around a coroutine function

        async def wait() -> Any:
            return await output

        return asyncio.run(wait())
    return output


class _NoOutput:
    """The value of a try that failed or did not run: its dependents must not run either."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "NO_OUTPUT"

    def __repr__(self) -> str:
        return "NO_OUTPUT"


NO_OUTPUT = _NoOutput()
"""What a try's Dask future holds when the tool failed or was not called (pickles as itself)."""

_ahead_lock = threading.Lock()
_stopped_runs: set[str] = set()
"""Topics of runs that stopped: their tries submitted ahead no longer start here."""
_begun_ahead: dict[str, set[str]] = {}
"""Topic of a run to the tokens of its tries submitted ahead that called their tool here."""


def call(
    ref: ToolRef,
    kwargs: dict[str, Any],
    token: str,
    report: Report | None = None,
    reads: Mapping[str, Any] | None = None,
    after: tuple[Any, ...] = (),
) -> Any:
    """Dask task: one try of a step's tool, on this worker's thread.

    Args:
        ref: The tool.
        kwargs: Its keyword arguments, with Dask futures already replaced by
            their values (Dask does that before the task starts).
        token: Names this try for `interrupt` and in its report.
        report: Where and what to report to the driver, or `None` to raise
            failures instead (a direct call, in tests).
        reads: The outputs of the other steps the `intervention_if` reads
            (an argument of its own, so that Dask passes their values).
        after: For a try submitted ahead (`report.ahead`): the values of the
            tries of its dependencies that had not ended when it was
            submitted. If one is `NO_OUTPUT` (that try failed), or the run
            stopped (`stop_ahead`), the tool is not called: the report says
            `"not-run"`.

    Returns:
        The tool's output (it stays on the worker as the try's future), or
        `NO_OUTPUT` when the try failed and was reported, or did not run.

    Raises:
        CarriedError: Without `report`: the tool raised (also a
            `BaseException` such as `KeyboardInterrupt`: a tool's is the
            step's error, never the worker's), it was interrupted, or it
            cannot be loaded here.
    """
    if report is not None and report.ahead:
        with _ahead_lock:
            may_run = report.topic not in _stopped_runs and not any(
                isinstance(value, _NoOutput) for value in after
            )
            if may_run:
                _begun_ahead.setdefault(report.topic, set()).add(token)
        if not may_run:
            report.send(token, "not-run", None)
            return NO_OUTPUT
    try:
        output = _try(ref, kwargs, token)
    except CarriedError as failure:
        if report is None:
            raise
        report.send(token, "error", failure)
        return NO_OUTPUT
    if report is not None:
        report.send(token, "ok", describe(output, report, reads or {}))
    return output


def stop_ahead(topic: str) -> list[str]:
    """`Client.run` target: no try of this run submitted ahead starts here any more.

    Returns:
        The tokens of the run's tries submitted ahead that called their tool
        here (running or ended): those steps ran, and the driver reports them.
    """
    with _ahead_lock:
        _stopped_runs.add(topic)
        return sorted(_begun_ahead.get(topic, ()))


def forget_run(topic: str) -> None:
    """`Client.run` target: drop what this worker keeps of an ended run."""
    with _ahead_lock:
        _stopped_runs.discard(topic)
        _begun_ahead.pop(topic, None)


def _try(ref: ToolRef, kwargs: dict[str, Any], token: str) -> Any:
    try:
        function = load_tool(ref)
    except ToolLoadError as exc:
        raise CarriedError(exc) from None
    run = ThreadCall(_call_tool, {"function": function, "kwargs": kwargs}, token, None)
    with _running_lock:
        _running[token] = run
    try:
        return run.run_here()
    except StepInterrupted:
        from marimo_engine.errors import ToolCancelledError

        raise CarriedError(
            ToolCancelledError("the try was interrupted on its Dask worker (timeout or cancel)")
        ) from None
    except BaseException as exc:  # the tool's error is the step's data
        raise CarriedError(exc) from None
    finally:
        with _running_lock:
            _running.pop(token, None)


def interrupt(tokens: list[str]) -> list[str]:
    """`Client.run` target: interrupt the tries named by `tokens` that run on this worker.

    A tool in Python code stops at its next instruction (`StepInterrupted`);
    one blocked in C stops when that call returns.

    Returns:
        The tokens of tries that are still running here.
    """
    still: list[str] = []
    with _running_lock:
        calls = [(t, _running[t]) for t in tokens if t in _running]
    for token, running in calls:
        if not running.interrupt():
            still.append(token)
    return still


def running(tokens: list[str]) -> list[str]:
    """`Client.run` target: the tokens of tries still running on this worker."""
    with _running_lock:
        return [t for t in tokens if t in _running]


# -- what the driver needs ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Description:
    """What `describe` sends back to the driver for a try that returned.

    Attributes:
        summary: The output's JSON form (`_json.to_jsonable`), or the output
            itself when `gathered`.
        gathered: Whether `summary` is the output itself.
        type_name: The output's class, `module.qualname`.
        nbytes: Dask's estimate of the output's size in bytes (`sizeof`).
        intervention: The truth of `intervention_if` (`None` without one),
            or a `CarriedError` when it failed to evaluate.
    """

    summary: Any
    gathered: bool
    type_name: str
    nbytes: int
    intervention: bool | CarriedError | None


@dataclass(frozen=True, slots=True)
class Report:
    """What a try reports to the driver, and where (a Dask event topic).

    A try's report travels as a Dask event (`Worker.log_event`), which the
    scheduler forwards to the driver's client at once: no second task and
    no fetch of a result, so only this report comes back, never the output
    (unless `gather`).

    Attributes:
        topic: The run's event topic (`Client.subscribe_topic`).
        step_id: The step's id (its output's name in `intervention_if`).
        gather: Send the output itself back (a key finding, or asked for).
        intervention_if: The step's expression text, or `None`.
        ahead: The try was submitted before its dependencies ended (`call`'s
            `after`); it runs only if they succeed and the run goes on.
    """

    topic: str
    step_id: str
    gather: bool = False
    intervention_if: str | None = None
    ahead: bool = False

    def send(self, token: str, kind: str, payload: Any) -> None:
        """Send `(token, kind, payload)`, pickled, to the topic."""
        import pickle

        from distributed import get_worker

        try:
            data = pickle.dumps((token, kind, payload))
        except Exception as exc:  # a gathered output that does not pickle
            data = pickle.dumps((token, "error", CarriedError(exc)))
        get_worker().log_event(self.topic, data)


def describe(output: Any, report: Report, reads: Mapping[str, Any]) -> Description:
    """The summary of a try's output and its `intervention_if` (over `reads` and it)."""
    from marimo_engine._json import to_jsonable

    truth: bool | CarriedError | None = None
    if report.intervention_if is not None:
        try:
            values = {**reads, report.step_id: output, SELF: output}
            truth = _expression(report.intervention_if).is_true(values)
        except Exception as exc:
            truth = CarriedError(exc)
    try:
        from dask.sizeof import sizeof

        nbytes = int(sizeof(output))
    except Exception:
        nbytes = -1
    cls = type(output)
    return Description(
        summary=output if report.gather else to_jsonable(output),
        gathered=report.gather,
        type_name=f"{cls.__module__}.{cls.__qualname__}",
        nbytes=nbytes,
        intervention=truth,
    )


@functools.lru_cache(maxsize=1024)
def _expression(text: str) -> Any:
    from marimo_engine.plans.expressions import parse_expression

    return parse_expression(text)


def evaluate(text: str, values: Mapping[str, Any]) -> bool | CarriedError:
    """Dask task: the truth of a `run_if`/`intervention_if` over `values`, or its error."""
    try:
        return bool(_expression(text).is_true(values))
    except Exception as exc:
        return CarriedError(exc)


def check_contract(contract: Any, output: Any, values: Mapping[str, Any]) -> CarriedError | None:
    """Dask task: `Contract.check` of a step's output over `values`, where they are.

    Args:
        contract: The step's `plans.contracts.Contract`.
        output: The step's output (Dask passes the value of its future).
        values: The outputs of the other steps (and `input`) that its `expect` names.

    Returns:
        `None` when the contract holds, else its `ContractError`, carried.
    """
    try:
        contract.check(output, values)
    except Exception as exc:
        return CarriedError(exc)
    return None


def resolve(
    args: Mapping[str, Any], converted: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Dask task: a step's keyword arguments, references resolved where the outputs are.

    Raises:
        CarriedError: A reference does not resolve (`UnknownReferenceError`).
    """
    from marimo_engine.plans.references import resolve_value

    try:
        kwargs = resolve_value(dict(args), inputs)
    except Exception as exc:
        raise CarriedError(exc) from None
    kwargs.update(converted)
    return kwargs


def resolve_one(value: Any, inputs: Mapping[str, Any]) -> Any:
    """Dask task: one argument (a sub-plan's input), references resolved where the outputs are.

    Raises:
        CarriedError: A reference does not resolve (`UnknownReferenceError`).
    """
    from marimo_engine.plans.references import resolve_value

    try:
        return resolve_value(value, inputs)
    except Exception as exc:
        raise CarriedError(exc) from None


def done(value: Any) -> None:
    """Dask task: nothing, once `value` exists (the driver learns it without fetching it)."""
    del value


# -- map steps and sub-plan inputs -------------------------------------------------------


def map_list(step: Any, values: Mapping[str, Any]) -> list[Any]:
    """Dask task: the list a map step's `map` names (`_map.map_items`, run here).

    Raises:
        CarriedError: The reference does not resolve, or names no list.
    """
    from marimo_engine.engine._map import map_items

    try:
        return map_items(step, values)
    except Exception as exc:
        raise CarriedError(exc) from None


def describe_value(value: Any) -> Description:
    """Dask task: what the driver needs of a value that stays here (`describe`, no condition)."""
    return describe(value, Report("", ""), {})


def describe_items(items: list[Any]) -> list[Description]:
    """The `describe_value` of each item of a map step's list."""
    return [describe_value(item) for item in items]


def read_items(items: list[Any], max_bytes: int) -> tuple[bool, list[Any]]:
    """Dask task: a map step's list for the driver: `(True, the items)` when small, else
    `(False, the describe_value of each)`.

    Args:
        items: The list (Dask passes the value of its future).
        max_bytes: The largest list (Dask's `sizeof`, bytes) that comes back whole.
    """
    try:
        from dask.sizeof import sizeof

        small = int(sizeof(items)) <= max_bytes
    except Exception:
        small = False
    return (True, items) if small else (False, describe_items(items))


def as_list(values: list[Any]) -> list[Any]:
    """The output of a map step: its results in item order (Dask passes each item's value).

    Called as a tool (`AS_LIST`) by `call`, so that the output is reported
    as any try's is.
    """
    return list(values)


AS_LIST = ToolRef("map results", (__name__, "as_list"), None)
"""How `call` finds `as_list`."""


def first_item(
    text: str, step_id: str, values: Mapping[str, Any], items: list[Any], output: list[Any]
) -> int | CarriedError | None:
    """Dask task: `_map.first_needing_item` over the map step's items and output, where they are.

    Returns:
        The first item's index for which the `intervention_if` is true,
        `None` for none, or its evaluation's error, carried.
    """
    from marimo_engine.engine._map import first_needing_item

    try:
        return first_needing_item(_expression(text), step_id, values, items, output)
    except Exception as exc:
        return CarriedError(exc)
