"""A `map` step: the tool called once per item of a list, concurrently (plan language 2).

The rules (`docs/plan-language.md`, "Map"), written once for every host of
`step.run_step`:

- `map` is a whole reference to a list (or tuple); anything else fails the
  step with a `TypeError` naming what it got. An empty list is an empty
  output (`[]`), not an error.
- Per item, `$item` is the item and `$index` its position (from 0) in
  `args`, `run_if` and `intervention_if`. A `run_if` that names either is
  evaluated per item (a false one skips that item: `STEP_SKIPPED` with its
  `item`, and `None` in its place of the output); one that names neither is
  evaluated once, before the list is read, as for any step.
- At most `map_concurrency` items are in flight at once (default: the run's
  `max_workers`, that is the size of the host's worker pool); plain
  functions are also bounded by the pool itself.
- `timeout_s` and `retries` apply to each item's call on its own; a retry
  emits `STEP_RETRY` with the item's index.
- `map_errors` `"fail"` (default): the first item that fails (after its
  retries) cancels the items still running and fails the step with one
  `ERROR` whose `item` is that index and whose message starts with
  `item N:`. `"collect"`: a failing item's place in the output holds
  `{"error": TYPE, "message": MESSAGE, "index": N}` and the step completes;
  its `STEP_COMPLETE` says how many items failed.
- The output is the list of results in item order, whatever order the
  calls end in.

A host whose outputs live elsewhere (a Dask cluster: `engine.dask_host`)
keeps these rules and moves only what touches data, through optional hooks
looked up with `getattr` (absent: it happens here):
`async map_items(prepared, inputs) -> list` reads the list where it is
(`step_items`); `run_if` per item goes through `evaluate`, each item's
arguments through `resolve_args` (the item and index in scope) and each try
through `call_tool`, as for any step (`step.StepHost`);
`async map_output(prepared, results) -> output` turns the results into the
step's output; and `async find_item(prepared, inputs, items, output) -> int |
None` evaluates a per-item `intervention_if` (`needing_item`).
"""

from __future__ import annotations

import asyncio
import time
from collections import ChainMap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from marimo_engine.engine.step import (
    StepOutcome,
    StepResult,
    TriesFailed,
    _as_failure,
    call_tool,
    complete_step,
    skipped_message,
)

if TYPE_CHECKING:
    from marimo_engine.engine.step import PreparedStep, StepHost
    from marimo_engine.plans.schema import Step

__all__ = ["first_needing_item", "map_items", "needing_item", "run_map", "step_items"]


async def step_items(
    prepared: PreparedStep, inputs: Mapping[str, Any], host: StepHost
) -> list[Any]:
    """Return a map step's items: `map_items` here, or the host's `map_items` hook.

    Raises:
        UnknownReferenceError, TypeError: As `map_items`.
    """
    hook = getattr(host, "map_items", None)  # the list lives elsewhere: read it there
    if hook is not None:
        return await hook(prepared, inputs)  # type: ignore[no-any-return]
    return map_items(prepared.step, inputs)


def map_items(step: Step, inputs: Mapping[str, Any]) -> list[Any]:
    """Return the list a map step's `map` reference names.

    Raises:
        UnknownReferenceError: The reference does not resolve.
        TypeError: It names something other than a list or a tuple.
    """
    from marimo_engine.plans.references import resolve_reference

    assert step.map is not None
    value = resolve_reference(step.map, inputs)
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(
        f"'map' of step {step.id!r} is {step.map!r}, which is {type(value).__name__} "
        f"{_preview(value)}, not a list; map over a list (such as '$s1.files')."
    )


def _preview(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return "(unprintable)"
    return text if len(text) <= 60 else text[:59] + "…"


_ITEM_NAMES = frozenset({"item", "index"})


def _split_args(
    args: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Split a map step's args: `(names no item, names $item or $index, some of those
    also name a step)`."""
    from marimo_engine.plans.references import find_references

    static: dict[str, Any] = {}
    per_item: dict[str, Any] = {}
    mixed = False
    for key, value in args.items():
        named = {ref.step_id for ref in find_references(value)}
        if named & _ITEM_NAMES:
            per_item[key] = value
            mixed = mixed or bool(named - _ITEM_NAMES)
        else:
            static[key] = value
    return static, per_item, mixed


def _whole_reference(value: Any) -> Any:
    """The `Reference` a value is exactly (a string of one reference), else `None`."""
    from marimo_engine.plans.references import parse_template

    if not isinstance(value, str):
        return None
    template = parse_template(value)
    return template.parts[0] if template.is_whole and not template.errors else None


class _ItemFailed(Exception):
    def __init__(self, index: int, failed: TriesFailed | BaseException) -> None:
        super().__init__(index)
        self.index = index
        self.error = failed.error if isinstance(failed, TriesFailed) else failed
        self.attempt = failed.attempt if isinstance(failed, TriesFailed) else None


_SKIPPED = object()


async def run_map(
    prepared: PreparedStep,
    items: list[Any],
    inputs: Mapping[str, Any],
    host: StepHost,
    started: float,
) -> StepResult:
    """Run a map step's tool over `items` (module docstring); the step's `StepResult`.

    Args:
        prepared: The map step (its tool callable).
        items: The list `map` names.
        inputs: What its references read (outputs by step id).
        host: The step's host.
        started: `time.monotonic()` when the step started.

    Raises:
        asyncio.CancelledError: The caller was cancelled; running items are
            cancelled and awaited first.
    """
    from marimo_engine.engine.events import ErrorInfo, Event, EventType
    from marimo_engine.engine.step import error_event
    from marimo_engine.plans.references import resolve_reference, resolve_value

    step = prepared.step
    step_id = step.id
    collect = step.map_errors == "collect"
    # Outputs kept elsewhere (Dask): arguments, conditions and tries go through the host.
    remote_args = getattr(host, "resolve_args", None)
    evaluate = getattr(host, "evaluate", None)
    limit = step.map_concurrency or host.pool.max_workers
    if step.map_concurrency is not None:
        limit = min(limit, host.pool.max_workers)
    slots = asyncio.Semaphore(limit) if limit < len(items) else None
    results: list[Any] = [None] * len(items)
    failures = 0
    try:
        # Arguments that name no item are resolved once; per item only the rest.
        static, per_item, mixed = _split_args(step.args)
        if remote_args is not None:  # the host resolves every argument per item
            static, mixed = {}, True
        static_kwargs = resolve_value(static, inputs) if static else {}
        static_kwargs.update(prepared.converted_args)
        # `"name": "$item.path"` (the usual form) is looked up directly, not walked.
        whole = {k: _whole_reference(v) for k, v in per_item.items()}
        lookups = [(k, ref) for k, ref in whole.items() if ref is not None]
        per_item = {k: v for k, v in per_item.items() if whole[k] is None}
    except Exception as exc:
        event = error_event(host.plan_id, step, exc, duration_s=time.monotonic() - started)
        await host.emit(event)
        return StepResult(StepOutcome.FAILED, error=exc)
    tool = prepared.tool
    assert tool is not None
    # The common case (a coroutine tool, no timeout, no retries) awaits the tool
    # directly; every other case goes through `call_tool` (retries, timeouts, threads).
    direct = (
        tool.function
        if tool.is_async
        and step.timeout_s is None
        and not step.retries
        and getattr(host, "call_tool", None) is None
        else None
    )

    async def one(index: int, item: Any) -> None:
        nonlocal failures
        own = {"item": item, "index": index}
        scope: Mapping[str, Any] = own
        try:
            if prepared.item_run_if or mixed:
                scope = ChainMap(own, inputs)  # type: ignore[arg-type]
            if prepared.item_run_if and not (
                prepared.run_if.is_true(scope)  # type: ignore[union-attr]
                if evaluate is None
                else await evaluate(prepared, prepared.run_if, scope)
            ):
                reason = f"run_if is false for item {index}: {step.run_if}"
                await host.emit(
                    Event(
                        type=EventType.STEP_SKIPPED,
                        plan_id=host.plan_id,
                        step_id=step_id,
                        tool=step.tool,
                        msg=skipped_message(step_id, reason),
                        reason=reason,
                        expression=step.run_if,
                        item=index,
                    )
                )
                results[index] = None
                return
            if remote_args is not None:
                kwargs = await remote_args(prepared, scope)
            else:
                kwargs = dict(static_kwargs)
                for key, ref in lookups:
                    kwargs[key] = resolve_reference(ref, scope)
                if per_item:
                    kwargs.update(resolve_value(per_item, scope))  # type: ignore[arg-type]
            if direct is not None:
                try:
                    output = await direct(**kwargs)
                except asyncio.CancelledError as exc:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise
                    raise TriesFailed(_as_failure(exc), 1) from None
                except BaseException as exc:  # one try, as `call_tool` would say
                    raise TriesFailed(exc, 1) from None
            else:
                output, _ = await call_tool(prepared, kwargs, host, item=index)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # TriesFailed, or a reference / expression error
            if not collect:
                raise _ItemFailed(index, exc) from None
            error = exc.error if isinstance(exc, TriesFailed) else exc
            failures += 1
            info = ErrorInfo.from_exception(error)  # a __str__ that raises is handled there
            results[index] = {"error": info.type, "message": info.message, "index": index}
            return
        results[index] = output

    async def bounded(index: int, item: Any) -> None:
        assert slots is not None
        async with slots:
            await one(index, item)

    run_one = one if slots is None else bounded
    tasks = [asyncio.ensure_future(run_one(i, item)) for i, item in enumerate(items)]
    try:
        if tasks:
            await _first_failure(tasks)
    except _ItemFailed as failed:
        await _cancel(tasks)
        return await _fail_item(prepared, host, failed, started)
    except asyncio.CancelledError:
        await _cancel(tasks)
        raise
    note = f"{len(items)} items"
    if failures:
        note += f", {failures} failed and collected"
    output: Any = results
    finish = getattr(host, "map_output", None)  # the results live elsewhere: join them there
    if finish is not None:
        try:
            output = await finish(prepared, results)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # its worker died, the client closed
            event = error_event(host.plan_id, step, exc, duration_s=time.monotonic() - started)
            await host.emit(event)
            return StepResult(StepOutcome.FAILED, error=exc)
    return await complete_step(
        prepared, inputs, host, output, attempt=None, started=started, items=items, note=note
    )


async def needing_item(
    prepared: PreparedStep,
    inputs: Mapping[str, Any],
    items: list[Any],
    output: Any,
    host: StepHost,
) -> int | None:
    """The first item whose `intervention_if` (naming `$item`/`$index`) is true, or `None`.

    `first_needing_item` here, or the host's `find_item` hook where the
    output is (it runs `first_needing_item` there).

    Raises:
        ExpressionError, UnknownReferenceError: The expression fails to evaluate.
    """
    hook = getattr(host, "find_item", None)
    if hook is not None:
        return await hook(prepared, inputs, items, output)  # type: ignore[no-any-return]
    assert prepared.intervention_if is not None
    return first_needing_item(prepared.intervention_if, prepared.id, inputs, items, output)


def first_needing_item(
    expression: Any, step_id: str, inputs: Mapping[str, Any], items: list[Any], output: Any
) -> int | None:
    """The index of the first item for which `expression` is true, or `None`.

    Args:
        expression: The map step's parsed `intervention_if`.
        step_id: The map step's id: its reference (and `$self`) means the
            item's result.
        inputs: The other outputs it reads, by step id (and `input`).
        items: The step's items.
        output: The step's output, the results in item order.

    Raises:
        ExpressionError, UnknownReferenceError: As `Expression.is_true`.
    """
    from marimo_engine.plans.contracts import SELF

    for index, item in enumerate(items):
        result = output[index]
        scope = {**inputs, "item": item, "index": index, step_id: result, SELF: result}
        if expression.is_true(scope):
            return index
    return None


async def _first_failure(tasks: list[asyncio.Future[None]]) -> None:
    """Wait for every task; raise the first `_ItemFailed` as soon as it happens."""
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in tasks:  # item order: the lowest failing index among those done
        if task in done and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    assert not pending


async def _cancel(tasks: list[asyncio.Future[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _fail_item(
    prepared: PreparedStep, host: StepHost, failed: _ItemFailed, started: float
) -> StepResult:
    from marimo_engine.engine.events import ErrorInfo, Event, EventType
    from marimo_engine.engine.step import failed_message

    step = prepared.step
    error = failed.error
    info = ErrorInfo.from_exception(error, step_id=step.id)
    info = info.model_copy(update={"message": f"item {failed.index}: {info.message}"})
    if hasattr(error, "add_note"):
        error.add_note(f"(item {failed.index} of map step {step.id!r})")
    await host.emit(
        Event(
            type=EventType.ERROR,
            plan_id=host.plan_id,
            step_id=step.id,
            tool=step.tool,
            msg=failed_message(step.id, info.type, info.message),
            error=info,
            attempt=failed.attempt,
            duration_s=time.monotonic() - started,
            item=failed.index,
        )
    )
    return StepResult(StepOutcome.FAILED, error=error)
