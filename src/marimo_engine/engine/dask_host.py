"""Run a plan's tool steps on a Dask cluster: one more host of the one step runtime.

`execute_plan(plan, tools, executor=...)` (CLI: `run --executor ...`) takes:

- `None` or `"inprocess"` (default): steps run in this process;
- `"dask"`: a `distributed.LocalCluster` of worker processes, sized to the
  machine, is started for the run and closed after it;
- `"dask://HOST:PORT"` (or `"tcp://HOST:PORT"`): an existing Dask scheduler;
- a `distributed.Client`: its scheduler (the client stays open).

The run is the same `_Run` as in process (validation, the scheduler, the
events, `FINISH`), with `DaskTarget` as its target, and each step is
`step.run_step` with `DaskTarget` as its host: `run_if`, `intervention_if`,
references, retries with backoff, `timeout_s`, approvals and events keep
their meaning because they are the same code. What the host moves to the
cluster is what touches data (`engine._dask_tasks`):

- each try of a tool is a Dask task (`_dask_tasks.call`); its output stays
  on the worker that made it, as a Dask future, and dependents get that
  future as their argument, so a dataframe passed from step to step never
  travels through this process;
- beside the output, the same task computes what the driver needs and
  reports it as a Dask event (`_dask_tasks.Report`, forwarded by the
  scheduler to this client): the output's JSON summary (the form events
  take in JSON today, `_json.to_jsonable`), its size, and the truth of the
  step's `intervention_if`; a key finding's output, and the outputs named in
  `gather`, come back whole;
- a `run_if`, and a reference with a path (`$s1.rows`) or inside text, into
  an output that stayed on the cluster are evaluated there
  (`_dask_tasks.evaluate`, `_dask_tasks.resolve`): one round trip each;
  so is a step's output contract (`_dask_tasks.check_contract`: the same
  `Contract.check`, its `ContractError` carried back); the plan's inputs
  (`$input.NAME`, `plan_inputs`) are driver values sent along;
- a step whose try cannot depend on anything the driver decides goes to
  the cluster with the try of the step it waits for, taking its future
  (`engine._dask_ahead`): a chain is submitted at once and the scheduler
  runs it without a trip to the driver per step, while `run_step` still
  runs each step here and takes up the try that went ahead;
- a map step (`engine._map`) runs each item's tries as Dask tasks; its
  list is read where it is (`map_items`: a small one comes here, a large
  one stays there, item by item), its results are joined there into its
  output (`map_output`) and a per-item `intervention_if` is evaluated
  there (`find_item`);
- a sub-plan step (`engine._subplan`) runs its plan as a nested run whose
  target is a `DaskTarget` sharing this client (`run_subplan`); the
  outputs the sub-plan leaves on the cluster are handed to this run.

A step's output that stayed on the cluster is a `RemoteOutput` in events and
results: its `summary` is what its JSON says; its future is released when
the run ends. Timeouts end a try on time, and a timed-out or cancelled try is
interrupted on its worker (`_dask_tasks.interrupt`, the same interruption as
the in-process worker pool); a try that cannot be stopped (a call blocked in
C) is not retried and is named in `FINISH` (`abandoned`). A worker that dies
during a try fails that try (`KilledWorker`), which `retries` retries on
another worker: the local cluster is started with Dask's
`distributed.scheduler.allowed-failures` at 0 for that; a scheduler of your
own reruns such a task up to its own setting first. Tools must be importable
on the workers (a tool without an import path is sent pickled by value); a
step whose tool cannot be loaded there fails with `UnknownToolError` saying
so, before it runs. See docs/dask.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import time
import uuid
from collections import ChainMap
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from marimo_engine.engine._run import RunHost
from marimo_engine.engine.step import (
    StepOutcome,
    blocked_events,
    error_event,
    prepare_steps,
    run_step,
)
from marimo_engine.errors import EngineError, UsageError
from marimo_engine.plans.contracts import SELF

if TYPE_CHECKING:
    from marimo_engine.engine._dask_ahead import AheadTry, LookAhead
    from marimo_engine.engine._dask_tasks import Description, ToolRef
    from marimo_engine.engine._run import _Run
    from marimo_engine.engine.compiler import NotebookIR
    from marimo_engine.engine.events import Event
    from marimo_engine.engine.graph import StepGraph
    from marimo_engine.engine.step import PreparedStep
    from marimo_engine.plans.expressions import Expression
    from marimo_engine.plans.schema import Plan

__all__ = [
    "CONNECT_TIMEOUT_S",
    "EXTRA_INSTALL",
    "ITEMS_HERE_BYTES",
    "WORKER_WAIT_S",
    "DaskTarget",
    "RemoteOutput",
    "dask_target",
]

EXTRA_INSTALL = 'pip install "marimo-engine[dask]"'
"""The install line for the optional Dask extra."""

CONNECT_TIMEOUT_S = 30.0
"""Seconds to reach a Dask scheduler before the run fails."""

WORKER_WAIT_S = 60.0
"""Seconds to wait for a first worker on a scheduler that has none."""

CLOSE_TIMEOUT_S = 30.0
"""Seconds closing a client or a local cluster may take; never more."""

WATCH_S = 0.5
"""Seconds between looks at the states of the tries waiting for their report."""

REPORT_GRACE_S = 10.0
"""Seconds a try that ended may take to deliver its report before it fails."""

_POLL_S = 0.02

ITEMS_HERE_BYTES = 1_000_000
"""The largest list (Dask's `sizeof`, bytes) a map step on the cluster brings here to map over.

A small list (file names, URLs, ids) comes here, and each item travels
with its try, which Dask may start on any worker. A larger one stays on
the cluster, and each item becomes a future there: the tries then start
where the items are (Dask places a task beside its data), which is what
big items want and what would bind a wide fan-out of small ones to the one
worker that holds their list.
"""
"""Seconds between looks at an interrupted try's state."""


def _require_distributed() -> None:
    if importlib.util.find_spec("distributed") is None:
        raise UsageError(f"Running steps on Dask needs the 'distributed' package: {EXTRA_INSTALL}.")


def dask_target(executor: Any, *, gather: bool | Collection[str] = ()) -> DaskTarget | None:
    """The target for `execute_plan(..., executor=executor)`, or `None` to run in process.

    Args:
        executor: `None` or `"inprocess"`; `"dask"` (a local cluster for the
            run); `"dask://HOST:PORT"` or `"tcp://HOST:PORT"` (a running
            scheduler); or a `distributed.Client`.
        gather: Ids of steps whose outputs come back to this process whole
            (key findings always do); `True` for every step.

    Returns:
        A `DaskTarget`, or `None` for the in-process run.

    Raises:
        UsageError: `executor` is none of those, `gather` is not a collection
            of step ids or `True`, or `distributed` is not installed (the
            message gives the install line).
    """
    if not (gather is True or gather is False or _is_ids(gather)):
        raise UsageError(f"gather must be True or a collection of step ids, got {gather!r}.")
    if executor is None or executor == "inprocess":
        return None
    if isinstance(executor, str):
        if executor == "dask":
            _require_distributed()
            return DaskTarget(address=None, client=None, gather=gather)
        for scheme, replace in (("dask://", "tcp://"), ("tcp://", "tcp://"), ("tls://", "tls://")):
            if executor.startswith(scheme) and len(executor) > len(scheme):
                _require_distributed()
                address = replace + executor[len(scheme) :]
                return DaskTarget(address=address, client=None, gather=gather)
        raise UsageError(
            f"executor must be 'inprocess', 'dask', 'dask://HOST:PORT' or a "
            f"distributed.Client, got {executor!r}."
        )
    if type(executor).__module__.startswith("distributed") and hasattr(executor, "submit"):
        return DaskTarget(address=None, client=executor, gather=gather)
    raise UsageError(
        f"executor must be 'inprocess', 'dask', 'dask://HOST:PORT' or a distributed.Client, "
        f"got a {type(executor).__name__}."
    )


def _is_ids(value: Any) -> bool:
    return (
        isinstance(value, Collection)
        and not isinstance(value, str | bytes)
        and all(isinstance(v, str) for v in value)
    )


class RemoteOutput:
    """A step's output kept on a Dask worker: its summary here, the data there.

    Events (`STEP_COMPLETE`, `INTERVENTION_NEEDED`, `FINISH`) and results
    carry it where the in-process run carries the output itself; in JSON it
    is `summary`, so `run --json` writes the same lines either way.

    Attributes:
        step_id: The step that made it.
        summary: Its JSON form (`_json.to_jsonable`), computed on the worker.
        type_name: The output's class, `module.qualname`.
        nbytes: Dask's estimate of its size in bytes (`-1` if unknown).
        future: The Dask future that holds it, or `None` once the run ended
            (the run releases its outputs; ask for them with `gather`).
        value: The output itself when it came back (`has_value`).
        has_value: Whether `value` holds the output.
    """

    __slots__ = ("future", "has_value", "nbytes", "step_id", "summary", "type_name", "value")

    def __init__(self, step_id: str, description: Description, future: Any) -> None:
        self.step_id = step_id
        self.type_name = description.type_name
        self.nbytes = description.nbytes
        self.future = future
        self.has_value = description.gathered
        if description.gathered:
            from marimo_engine._json import to_jsonable

            self.value: Any = description.summary
            self.summary: Any = to_jsonable(description.summary)
        else:
            self.value = None
            self.summary = description.summary

    def __jsonable__(self) -> Any:
        """The JSON form: `summary` (the `_json` fallback's own rule 6)."""
        return self.summary

    def __repr__(self) -> str:
        return (
            f"RemoteOutput(step_id={self.step_id!r}, type={self.type_name!r}, nbytes={self.nbytes})"
        )


class _RemoteArgs(dict):  # type: ignore[type-arg]
    """A step's keyword arguments resolved on the cluster.

    As a dict it holds the args as written (what an approval shows); `future`
    is the Dask future of the resolved ones.
    """

    future: Any = None


class _Tries:
    """The `pool` of the Dask host: which tries could not be stopped on their worker.

    Attributes:
        max_workers: The run's `max_workers` (default `DEFAULT_MAX_WORKERS`):
            what bounds a map step's items in flight without `map_concurrency`,
            as in process.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        from marimo_engine.engine._threads import DEFAULT_MAX_WORKERS

        self.max_workers = max_workers or DEFAULT_MAX_WORKERS
        self.stuck: dict[str, list[str]] = {}  # step id -> tokens of tries still running
        self._tasks: list[tuple[str, asyncio.Future[Any]]] = []

    def is_running(self, label: str) -> bool:
        """Whether a try of step `label` (or, for a map item `s[3]`, of its step) still runs."""
        step_id = label.partition("[")[0]  # an item's try is stopped as its step's (`_stop_try`)
        return bool(self.stuck.get(label) or self.stuck.get(step_id)) or any(
            lbl == label and not task.done() for lbl, task in self._tasks
        )

    def abandon_task(self, label: str, task: asyncio.Future[Any]) -> None:
        """Count a try whose stopping outlived the grace as abandoned."""
        self._tasks.append((label, task))


class DaskTarget(RunHost):
    """The Dask target of a run, and the host of `step.run_step` for its steps.

    Made by `dask_target`; `execute_plan` hands it to the run. Holds the
    client (and the local cluster it started) from `prepare` to `close`.
    """

    concurrency = None

    def __init__(
        self,
        *,
        address: str | None,
        client: Any | None,
        gather: bool | Collection[str],
        parent: DaskTarget | None = None,
    ) -> None:
        self.address = address
        self.parent = parent  # a sub-plan's host: the parent step's, sharing its client
        self.given_client = client
        self.gather = gather
        self.client: Any = None
        self.cluster: Any = None
        self.owns_client = False
        self.pool = _Tries()
        self.run: _Run | None = None
        self.plan_id = ""
        self.plan_inputs: dict[str, Any] | None = None  # `$input.NAME` (`run_step` reads it)
        self._prepared: dict[str, PreparedStep] = {}
        self._refs: dict[str, ToolRef] = {}
        self._outputs: dict[str, Any] = {}  # step id -> RemoteOutput, or a value given here
        self._remote: dict[str, RemoteOutput] = {}  # the last successful try of each step
        self._described: dict[str, Description] = {}
        self._futures: set[Any] = set()  # every future of this run not yet released
        self._topic = f"marimo-engine-{uuid.uuid4().hex}"  # the tries report here
        self._waiting: dict[str, asyncio.Future[tuple[str, Any]]] = {}  # token -> its report
        self._batch: list[tuple[Any, ...]] = []  # tries to submit at the end of this turn
        self._tries: dict[str, Any] = {}  # token -> the try's Dask future
        self._watcher: asyncio.Future[None] | None = None
        self._ahead: LookAhead | None = None  # tries submitted ahead (`_dask_ahead`)
        self._cancels: set[asyncio.Future[Any]] = set()  # Dask cancels under way
        self._plan: Plan | None = None
        self._adopted: list[RemoteOutput] = []  # the outputs of sub-plans run here

    # -- the target interface ---------------------------------------------------------

    async def prepare(self, run: _Run, plan: Plan, ir: NotebookIR) -> StepGraph:
        """Connect (or start a local cluster), check the tools load on the workers.

        Raises:
            UsageError: No scheduler at the address, no worker joined it in
                time, or `gather` names steps the plan does not have.
        """
        from marimo_engine.engine._dask_ahead import LookAhead
        from marimo_engine.engine.graph import StepGraph

        self.run = run
        self.plan_id = run.plan_id
        self.plan_inputs = run.plan_inputs
        if self.gather is not True and self.gather is not False:
            unknown = [s for s in self.gather if s not in plan.step_ids]
            if unknown:
                raise UsageError(
                    f"gather names steps the plan does not have: "
                    f"{', '.join(repr(s) for s in unknown)}."
                )
        self._plan = plan
        self.pool = _Tries(run.max_workers)
        await self._connect()
        self.client.subscribe_topic(self._topic, self._on_report)
        registry = run.tools
        specs = {name: registry.get(name) for name in plan.tool_names}
        missing = await self._load_tools(specs)
        available = {name: (None if name in missing else spec) for name, spec in specs.items()}
        subplans = {s.id: run.plans.resolve(s.plan) for s in plan.steps if s.plan is not None}
        self._prepared = prepare_steps(plan, available, missing=missing, subplans=subplans)
        graph = StepGraph.from_dependencies(plan.step_ids, ir.dependencies)
        self._ahead = LookAhead.of(
            self._prepared,
            self._outputs,
            graph.parents,
            graph.children,
            loadable=self._refs,
            enabled=not run.recorder.reuse,
        )
        return graph

    async def _connect(self) -> None:
        import dask
        import distributed

        if self.given_client is not None:
            given = self.given_client
            if getattr(given, "asynchronous", False) and given.loop.asyncio_loop is (
                asyncio.get_running_loop()
            ):
                self.client = given
                return
            self.address = given.scheduler.address  # a client of another loop: our own one
        if self.address is None:
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                # ":0": the scheduler's HTTP server on a free port. None still tries
                # 8787 and warns "Perhaps you already have a cluster running?" on
                # stderr whenever another cluster (another run) holds it.
                self.cluster = await distributed.LocalCluster(
                    processes=True, asynchronous=True, dashboard_address=":0"
                )
            address = self.cluster
        else:
            address = self.address
        try:
            self.client = await distributed.Client(
                address,
                asynchronous=True,
                set_as_default=False,
                timeout=CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError) as exc:
            raise UsageError(
                f"No Dask scheduler answered at {self.address} within {CONNECT_TIMEOUT_S} s "
                f"({exc}); start one ('dask scheduler') or fix the address."
            ) from None
        self.owns_client = True
        if not self.client.scheduler_info().get("workers"):
            try:
                await self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                raise UsageError(
                    f"No Dask worker joined the scheduler at {self.address} within "
                    f"{WORKER_WAIT_S} s; start workers ('dask worker {self.address}')."
                ) from None

    async def _load_tools(self, specs: Mapping[str, Any]) -> dict[str, str]:
        """Tool name to why it cannot be called on the workers (only those that cannot)."""
        import cloudpickle

        from marimo_engine.engine._dask_tasks import ToolRef, check_tools

        missing: dict[str, str] = {}
        for name, spec in specs.items():
            if spec is None:
                continue
            path = spec.import_path
            if path is not None:
                self._refs[name] = ToolRef(name, path, None)
                continue
            try:
                pickled = cloudpickle.dumps(spec.function)
            except Exception as exc:
                missing[name] = (
                    f"it cannot be sent to the Dask workers: it has no import path and "
                    f"pickling it failed ({type(exc).__name__}: {exc}); define it in a module "
                    "the workers can import"
                )
                continue
            self._refs[name] = ToolRef(name, None, pickled)
        if self._refs:
            answers = await asyncio.wait_for(
                self.client.run(check_tools, list(self._refs.values())), WORKER_WAIT_S
            )
            for problems in answers.values():
                for name, message in problems.items():
                    missing.setdefault(name, message.rstrip("."))
        return missing

    async def start(self, step_id: str) -> StepOutcome | None:
        """Run one step (`run_step` with this host); never raises but `CancelledError`."""
        run = self.run
        assert run is not None
        if run.stopping:
            return None
        return await self._run_step(step_id)

    async def _run_step(self, step_id: str) -> StepOutcome:
        prepared = self._prepared[step_id]
        ahead = self._ahead
        assert ahead is not None
        ahead.started.add(step_id)
        try:
            result = await run_step(prepared, self._outputs, self)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # an engine bug is this step's error, never a hang
            await self.emit(error_event(self.plan_id, prepared.step, exc))
            return StepOutcome.FAILED
        finally:
            ahead.ended(step_id)
            self._drop_ahead(step_id)  # the step did not call its tool (an approval refused)
        if result.outcome in (StepOutcome.COMPLETED, StepOutcome.INTERVENTION):
            remote = self._remote.get(step_id)
            output = result.output
            if remote is not None and (
                output is remote or (remote.has_value and output is remote.value)
            ):
                self._outputs[step_id] = remote
            else:  # a person's answer replaced the output: it lives here
                self._outputs[step_id] = output
        return result.outcome

    async def blocked(self, step_id: str, dependency: str) -> None:
        """Emit the events of a step skipped because `dependency` was skipped."""
        for event in blocked_events(self.plan_id, self._prepared[step_id].step, dependency):
            await self.emit(event)

    async def close(self) -> None:
        """Release every future of the run, close what the run opened; bounded in time."""
        client = self.client
        if client is None:
            return
        run = self.run
        if self._watcher is not None:
            self._watcher.cancel()
        try:
            with contextlib.suppress(Exception):
                await self._end_ahead()
            if self._cancels:
                await asyncio.wait(self._cancels, timeout=CLOSE_TIMEOUT_S)
            stuck = [t for tokens in self.pool.stuck.values() for t in tokens]
            still: set[str] = set()
            if stuck:  # interrupted once more; give them the grace to end
                still = await self._still_running(stuck)
            if run is not None:
                run.abandoned = [
                    sid for sid, tokens in self.pool.stuck.items() if still.intersection(tokens)
                ]
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(self._topic)
                await asyncio.wait_for(
                    client.run_on_scheduler(_forget_topic, self._topic), CLOSE_TIMEOUT_S
                )
            kept = self._hand_over()
            futures = [f for f in self._futures if f not in kept]
            self._futures.clear()
            for remote in [*self._remote.values(), *self._adopted]:
                if remote.future not in kept:
                    remote.future = None
            if futures and not self.owns_client:
                # Only what still runs is cancelled; the rest is let go. Dask cancels
                # a key's dependents too: a sub-plan's outputs handed over, or a map
                # item's try let go once joined (whose cancel fails an assertion
                # in Dask's scheduler, which then drops this client's connection).
                running = [f for f in futures if f.status == "pending"]
                self._release(*(f for f in futures if f.status != "pending"))
                if running:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(client.cancel(running, force=True), CLOSE_TIMEOUT_S)
            del futures
        finally:
            self.client = None
            if self.owns_client:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.close(), CLOSE_TIMEOUT_S)
            if self.cluster is not None:
                cluster, self.cluster = self.cluster, None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(cluster.close(), CLOSE_TIMEOUT_S)

    def _hand_over(self) -> set[Any]:
        """A sub-plan's run ends: its output's futures go to the parent's host; those futures.

        The sub-plan step's output (`_subplan.subplan_output`) holds them, and
        the parent's dependents read them; the parent releases them when its
        run ends. A run of its own hands over nothing.
        """
        parent = self.parent
        if parent is None or self._plan is None:
            return set()
        from marimo_engine.engine._subplan import subplan_output

        output = subplan_output(self._plan, self._outputs)
        kept = [r for r in _remotes_in(output) if r.future is not None]
        parent._adopted.extend(kept)
        futures = {r.future for r in kept}
        parent._futures.update(futures)
        return futures

    # -- the host interface of `step.run_step` ----------------------------------------

    async def emit(self, event: Event) -> None:
        """Hand an event to the run; once the run stops, stop the tries submitted ahead."""
        await super().emit(event)
        run = self.run
        ahead = self._ahead
        if run is not None and ahead is not None and ahead.tries and run.stopping:
            await self._stop_ahead()

    async def evaluate(
        self, prepared: PreparedStep, expression: Expression, values: Mapping[str, Any]
    ) -> bool:
        """A `run_if`/`intervention_if` evaluated where the outputs it reads are.

        Here when every output it reads is here; else in one Dask task. A
        step's own `intervention_if` was evaluated beside its output already.

        Raises:
            ExpressionError, UnknownReferenceError: As in process.
        """
        own = values.get(prepared.id)
        described = self._described.get(prepared.id)
        if (
            expression is prepared.intervention_if
            and described is not None
            and isinstance(self._remote.get(prepared.id), RemoteOutput)
            and (own is self._remote[prepared.id] or own is self._remote[prepared.id].value)
        ):
            truth = described.intervention
            if truth is not None and not isinstance(truth, bool):
                raise truth.unpack()
            return bool(truth)
        local, remote = _split({r.step_id for r in expression.references}, values)
        if not remote:
            return expression.is_true(local)
        from marimo_engine.engine._dask_tasks import CarriedError, evaluate

        answer = await self._small(evaluate, expression.text, {**local, **remote})
        if isinstance(answer, CarriedError):
            raise answer.unpack()
        return bool(answer)

    async def check_contract(
        self, prepared: PreparedStep, output: Any, inputs: Mapping[str, Any]
    ) -> None:
        """The output contract checked where the output is (`Contract.check`, one place).

        Here when the output and every output its `expect` names are here;
        else in one Dask task, which Dask runs beside the output, returning
        only the result.

        Args:
            prepared: The step (it has a contract).
            output: Its output: the value, or its `RemoteOutput`.
            inputs: The run's outputs (and `input`), by step id.

        Raises:
            ContractError: The contract is broken (same message and `values`
                as in process).
        """
        contract = prepared.contract
        assert contract is not None
        names = {r.step_id for e in contract.expect for r in e.references}
        local, remote = _split(names - {SELF, prepared.id}, inputs)
        own = output
        here = not _on_cluster(output)  # not on the cluster, nor a sub-plan's output holding such
        if isinstance(output, RemoteOutput) and output.has_value:
            own = output.value
        elif not here:
            own = _to_futures(output)
        if here and not remote:
            contract.check(own, local)
            return
        from marimo_engine.engine._dask_tasks import check_contract

        answer = await self._small(check_contract, contract, own, {**local, **remote})
        if answer is not None:
            raise answer.unpack()

    async def resolve_args(
        self, prepared: PreparedStep, inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The tool's keyword arguments; references into outputs on the cluster stay there.

        A whole reference (`"$s1"`) to an output on the cluster becomes its
        `RemoteOutput` (its future goes to the try); a reference with a path
        or inside text into one is resolved on the cluster. A map item's
        `inputs` also hold `item` and `index` (`_map.run_map`); a sub-plan
        step's arguments are its sub-plan's inputs, each a value here or a
        `RemoteOutput` of its own (`_subplan.subplan_args`).

        Raises:
            UnknownReferenceError: A reference does not resolve (as in process).
        """
        from marimo_engine.plans.references import find_references, resolve_value

        step = prepared.step
        if not step.args:
            return {}
        if step.plan is not None:
            return {name: await self._input(prepared, v, inputs) for name, v in step.args.items()}
        if not _needs_cluster(step.args, inputs):
            kwargs = resolve_value(step.args, _HereView(inputs))
            assert isinstance(kwargs, dict)
            kwargs.update(prepared.converted_args)
            return kwargs
        from marimo_engine.engine._dask_tasks import done, resolve

        local, remote = _split({r.step_id for r in find_references(step.args)}, inputs)
        client = self.client
        future = client.submit(
            resolve,
            dict(step.args),
            dict(prepared.converted_args),
            {**local, **remote},
            pure=False,
            key=self._key(prepared.id, f"args-{uuid.uuid4().hex}"),  # once per item of a map
        )
        self._futures.add(future)
        await self._ask(future, done)
        shown = _RemoteArgs({**step.args, **prepared.converted_args})
        shown.future = future
        return shown

    async def _input(self, prepared: PreparedStep, value: Any, inputs: Mapping[str, Any]) -> Any:
        """One input of a sub-plan: resolved here, or on the cluster as a `RemoteOutput`."""
        from marimo_engine.plans.references import find_references, resolve_value

        if not _needs_cluster(value, inputs):
            return resolve_value(value, _HereView(inputs))
        from marimo_engine.engine._dask_tasks import resolve_one

        local, remote = _split({r.step_id for r in find_references(value)}, inputs)
        return await self._kept(prepared, resolve_one, value, {**local, **remote})

    async def _kept(self, prepared: PreparedStep, function: Any, *args: Any) -> RemoteOutput:
        """`function(*args)` as a Dask task whose result stays there; its `RemoteOutput`.

        Raises:
            BaseException: What `function` raised, unpacked (it raises `CarriedError`).
        """
        from marimo_engine.engine._dask_tasks import describe_value

        future = self.client.submit(
            function, *args, pure=False, key=self._key(prepared.id, f"kept-{uuid.uuid4().hex}")
        )
        self._futures.add(future)
        description = await self._ask(future, describe_value)
        return RemoteOutput(prepared.id, description, future)

    async def _ask(self, future: Any, probe: Any, *args: Any) -> Any:
        """`probe(future's value, *args)` as a small task; the future is let go if that fails.

        Raises:
            BaseException: What the future's task raised, unpacked (it raises
                `CarriedError`), or the wait's own failure.
        """
        from marimo_engine.engine._dask_tasks import CarriedError

        try:
            return await self._small(probe, future, *args)
        except CarriedError as exc:
            self._release(future)
            raise exc.unpack() from None
        except BaseException:
            self._release(future)
            raise

    async def map_items(self, prepared: PreparedStep, inputs: Mapping[str, Any]) -> list[Any]:
        """A map step's items (`_map.step_items`): here, or each a `RemoteOutput` of its own.

        A list named in an output here (a gathered one, `$input.NAME`) is read
        here, as in process, and each item travels with its try. A list in an
        output that stayed on the cluster is read there by one task
        (`_map.map_items`, so a `TypeError` says the same): a small one (at
        most `ITEMS_HERE_BYTES`) comes back and is mapped over as one read
        here; a larger one stays there, and each item becomes a Dask future
        of its own (one `getitem` task each), which its tries take as their
        argument, so that the driver learns only how many items there are
        and their summaries (what an approval shows), never the items.

        Raises:
            UnknownReferenceError, TypeError: As `_map.map_items`.
        """
        import operator

        from marimo_engine.engine._dask_tasks import map_list, read_items
        from marimo_engine.engine._map import map_items
        from marimo_engine.plans.references import parse_template

        step = prepared.step
        assert step.map is not None
        refs = parse_template(step.map).references
        if not any(_on_cluster(inputs.get(r.step_id)) for r in refs):
            return map_items(step, _HereView(inputs))
        local, remote = _split({r.step_id for r in refs}, inputs)
        tag = uuid.uuid4().hex
        listed = self.client.submit(
            map_list, step, {**local, **remote}, pure=False, key=self._key(step.id, f"list-{tag}")
        )
        self._futures.add(listed)
        try:
            small, read = await self._ask(listed, read_items, ITEMS_HERE_BYTES)
            if small:
                return read  # type: ignore[no-any-return]
            descriptions: list[Description] = read
            count = len(descriptions)
            futures = self.client.map(
                operator.getitem,
                [listed] * count,
                range(count),
                key=[self._key(step.id, f"item-{tag}-{i}") for i in range(count)],
                pure=False,
            )
        finally:
            self._release(listed)  # once submitted, its items' tasks hold what they need
        self._futures.update(futures)
        return [RemoteOutput(step.id, d, f) for d, f in zip(descriptions, futures, strict=True)]

    async def map_output(self, prepared: PreparedStep, results: list[Any]) -> Any:
        """A map step's output (`_map.run_map`): its results joined where they are.

        The items' outputs stayed on the cluster; one more try, of
        `_dask_tasks.as_list`, joins them into the step's output there and
        reports it as any step's try does (summary, size, a whole-step
        `intervention_if`, the list itself when gathered).

        Returns:
            The list when it comes back (a key finding, `gather`), else its
            `RemoteOutput`.

        Raises:
            BaseException: The join failed (its worker died).
        """
        from marimo_engine.engine._dask_tasks import AS_LIST

        token, waiter = self._submit(prepared, {"values": _to_futures(results)}, ref=AS_LIST)
        try:
            answer, out = await self._outcome(prepared.id, token, waiter)
        finally:
            self._release(*(r.future for r in results if isinstance(r, RemoteOutput)))
        return self._record(prepared.id, answer, out)

    async def find_item(
        self,
        prepared: PreparedStep,
        inputs: Mapping[str, Any],
        items: list[Any],
        output: Any,
    ) -> int | None:
        """The first item whose `intervention_if` is true (`_map.needing_item`), on the cluster.

        One task runs `_map.first_needing_item` where the items and the
        output are, and returns only the index.

        Raises:
            ExpressionError, UnknownReferenceError: As in process.
        """
        from marimo_engine.engine._dask_tasks import CarriedError, first_item

        expression = prepared.intervention_if
        assert expression is not None
        names = {r.step_id for r in expression.references} - {"item", "index", SELF, prepared.id}
        local, remote = _split(names, inputs)
        answer = await self._small(
            first_item,
            expression.text,
            prepared.id,
            {**local, **remote},
            _to_futures(items),
            _to_futures(output),
        )
        if isinstance(answer, CarriedError):
            raise answer.unpack()
        return answer  # type: ignore[no-any-return]

    async def run_subplan(self, prepared: PreparedStep, values: Mapping[str, Any]) -> Any:
        """`run_step`'s hook for a sub-plan step: a nested run on this cluster; its result.

        The nested run's host is a Dask host sharing this client
        (`_subplan.run_nested`); its inputs may be `RemoteOutput`s, and the
        outputs its steps leave on the cluster are this run's once it ends
        (`_hand_over`). The sub-plan's outputs come back whole when this
        step's would (`gather`).
        """
        from marimo_engine.engine._subplan import run_nested

        run = self.run
        assert run is not None
        gather = self.gather is True or (self.gather is not False and prepared.id in self.gather)
        nested = DaskTarget(address=None, client=self.client, gather=gather, parent=self)
        return await run_nested(run, prepared, values, self.emit, target=nested)

    async def call_tool(self, prepared: PreparedStep, kwargs: Mapping[str, Any]) -> Any:
        """One try: the tool runs on a worker; its output stays there.

        The try's task reports its outcome as a Dask event (`_dask_tasks.Report`);
        a try that ends without one (its worker died, Dask cancelled it) fails
        with what Dask says (`KilledWorker`, ...).

        Returns:
            The output itself when it comes back (a key finding, `gather`),
            else its `RemoteOutput`.

        Raises:
            BaseException: What the tool raised (rebuilt here), `KilledWorker`
                when its worker died, `UnknownToolError` when the tool cannot
                be loaded on that worker.
            asyncio.CancelledError: The try was cancelled (timeout, cancelled
                run); it was interrupted on its worker first.
        """
        sid = prepared.id
        item = prepared.step.map is not None  # a map step's tries are its items'
        assert self._ahead is not None
        ahead = None if item else self._ahead.tries.pop(sid, None)
        if ahead is not None and _reported(ahead.waiter) == "not-run":  # a safety net:
            self._release(self._tries.pop(ahead.token, None))  # its dependencies completed
            ahead = None
        if ahead is not None:
            token, waiter = ahead.token, ahead.waiter
        else:
            payload: Any = kwargs.future if isinstance(kwargs, _RemoteArgs) else _to_futures(kwargs)
            token, waiter = self._submit(prepared, payload, item=item)
        answer, out = await self._outcome(prepared.id, token, waiter)
        if item:  # it stays there for the step's output (`map_output`)
            return RemoteOutput(sid, answer, out)
        return self._record(sid, answer, out)

    async def _outcome(
        self, step_id: str, token: str, waiter: asyncio.Future[tuple[str, Any]]
    ) -> tuple[Description, Any]:
        """Wait for a try's report: `(its description, its future)`.

        Raises:
            BaseException: What the tool raised, as in `call_tool`.
            asyncio.CancelledError: The wait was cancelled; the try was
                interrupted on its worker first.
        """
        from marimo_engine.engine._dask_tasks import CarriedError

        try:
            kind, answer = await waiter
        except asyncio.CancelledError:
            await self._stop_try(step_id, token)
            raise
        except BaseException:
            self._waiting.pop(token, None)
            self._release(self._tries.pop(token, None))
            raise
        out = self._tries.pop(token)
        if kind == "error":
            self._release(out)
            assert isinstance(answer, CarriedError)
            tool = self._prepared[step_id].step.tool if step_id in self._prepared else None
            raise _as_tool_error(answer.unpack(), tool or "", step_id)
        return answer, out

    def _record(self, step_id: str, answer: Description, out: Any) -> Any:
        """A step's try succeeded: its output is this try's; the value, or its `RemoteOutput`."""
        remote = RemoteOutput(step_id, answer, out)
        old = self._remote.get(step_id)
        if old is not None and old.future is not None:
            self._release(old.future)
        self._remote[step_id] = remote
        self._described[step_id] = answer
        return remote.value if remote.has_value else remote

    def _submit(
        self,
        prepared: PreparedStep,
        payload: Any,
        after: tuple[Any, ...] = (),
        *,
        ahead: bool = False,
        item: bool = False,
        ref: ToolRef | None = None,
    ) -> tuple[str, asyncio.Future[tuple[str, Any]]]:
        """Queue one try of a step; its token and the future of its report.

        `after` and `ahead`: a try submitted ahead (`_dask_tasks.call`).
        `item`: a map item's try (never gathered; the step's condition is
        evaluated on its whole output). `ref`: the function to call instead
        of the step's tool (`map_output`'s join).
        """
        from marimo_engine.engine._dask_tasks import Report

        sid = prepared.id
        step = prepared.step
        token = uuid.uuid4().hex
        condition = None if item or prepared.item_intervention_if else prepared.intervention_if
        reads: dict[str, Any] = {}
        if condition is not None:
            values: Mapping[str, Any] = self._outputs
            if self.plan_inputs is not None:  # `$input.NAME`, as `run_step` gives it
                values = ChainMap({"input": self.plan_inputs}, values)
            local, remote = _split(
                {r.step_id for r in condition.references if r.step_id != sid}, values
            )
            reads = {**local, **remote}
        gather = not item and (
            step.key_finding
            or self.gather is True
            or (self.gather is not False and sid in self.gather)
        )
        report = Report(
            self._topic, sid, gather, condition.text if condition else None, ahead=ahead
        )
        waiter: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[token] = waiter
        key = self._key(sid, token)
        tool = ref if ref is not None else self._refs[step.tool]
        self._enqueue((sid, tool, payload, token, report, reads, after, key))
        return token, waiter

    def _submit_ahead(self, step_id: str) -> None:
        """Queue the try of `step_id` ahead of its dependencies' end (`_dask_ahead`)."""
        from marimo_engine.engine._dask_ahead import AheadTry
        from marimo_engine.plans.references import resolve_value

        ahead = self._ahead
        assert ahead is not None
        prepared = self._prepared[step_id]
        values, after = ahead.inputs(step_id)
        kwargs: Any = {}
        if prepared.step.args:  # whole references only: each becomes the value or future
            kwargs = resolve_value(prepared.step.args, values)
            kwargs.update(prepared.converted_args)
        token, waiter = self._submit(prepared, _to_futures(kwargs), after, ahead=True)
        ahead.tries[step_id] = AheadTry(token, waiter)
        ahead.used = True

    def _drop_ahead(self, *step_ids: str) -> None:
        """Forget tries submitted ahead that no step will take up; cancel them on Dask."""
        ahead = self._ahead
        if ahead is None:
            return
        futures = []
        for sid in step_ids:
            entry = ahead.tries.pop(sid, None)
            if entry is None:
                continue
            self._waiting.pop(entry.token, None)
            future = self._tries.pop(entry.token, None)
            if future is not None:
                futures.append(future)
        if futures and self.client is not None:
            with contextlib.suppress(Exception):
                task = asyncio.ensure_future(self.client.cancel(futures))
                self._cancels.add(task)
                task.add_done_callback(_settled(self._cancels))
            self._release(*futures)

    async def _stop_ahead(self) -> None:
        """The run stops: no try submitted ahead starts any more (`_dask_ahead`).

        The workers say which of those tries called their tool; the others
        are cancelled, and their steps never start. The ones that ran stay,
        for `_end_ahead` to report.
        """
        from marimo_engine.engine._dask_tasks import stop_ahead

        ahead = self._ahead
        if ahead is None or ahead.stopped:
            return
        ahead.stopped = True
        begun: set[str] = set()
        with contextlib.suppress(Exception):
            answers = await asyncio.wait_for(
                self.client.run(stop_ahead, self._topic), CLOSE_TIMEOUT_S
            )
            begun = {token for tokens in answers.values() for token in tokens}
        self._drop_ahead(*[sid for sid, entry in ahead.tries.items() if not _ran(entry, begun)])

    async def _end_ahead(self) -> None:
        """At the run's end: the steps whose try went ahead and ran, though the run stopped.

        Their tools were called before the stop reached the workers, so they
        are reported as running steps that finish (`run_step`, taking up
        their tries) in dependency order; a cancelled run interrupts them
        instead. Every other try submitted ahead is cancelled.
        """
        from marimo_engine.engine._dask_tasks import forget_run

        ahead = self._ahead
        run = self.run
        if ahead is None or run is None or not ahead.used:
            return
        if ahead.tries:
            await self._stop_ahead()
            if run.cancel_reason is None:
                progress = True
                while ahead.tries and progress:
                    progress = False
                    for sid in [s for s in self._prepared if s in ahead.tries]:
                        if all(p in self._outputs for p in ahead.parents[sid]):
                            progress = True
                            await self._run_step(sid)
            tokens = [entry.token for entry in ahead.tries.values()]
            if tokens:  # cancelled, or their dependencies did not complete here
                still = await self._still_running(tokens)
                for sid, entry in list(ahead.tries.items()):
                    if entry.token in still:
                        self.pool.stuck.setdefault(sid, []).append(entry.token)
                self._drop_ahead(*ahead.tries)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.run(forget_run, self._topic), CLOSE_TIMEOUT_S)

    def _on_report(self, event: tuple[float, Any]) -> None:
        """A try's report arrived (the client's handler of the run's topic)."""
        import pickle

        try:
            token, kind, payload = pickle.loads(event[1])
        except Exception:  # not ours: the topic is the run's alone
            return
        waiter = self._waiting.pop(token, None)
        if waiter is not None and not waiter.done():
            waiter.set_result((kind, payload))

    def _enqueue(self, item: tuple[Any, ...]) -> None:
        """Queue a try; the tries queued in one turn of the loop go to Dask as one graph.

        Many steps start at once (a fan-out): one `client.map` costs the
        scheduler one graph update where one `submit` each would cost many.
        """
        self._batch.append(item)
        if len(self._batch) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        from marimo_engine.engine._dask_tasks import call

        batch, self._batch = self._batch, []
        batch = [item for item in batch if item[3] in self._waiting]  # not cancelled meanwhile
        if not batch:
            return
        try:
            sids, refs, payloads, tokens, reports, reads, afters, keys = zip(*batch, strict=True)
            if len(batch) == 1:  # a chain's next try: `map` costs more for one
                futures = [self.client.submit(call, *batch[0][1:7], key=keys[0], pure=False)]
            else:
                futures = self.client.map(
                    call, refs, payloads, tokens, reports, reads, afters, key=list(keys), pure=False
                )
        except Exception as exc:  # the arguments do not serialise, the client closed
            for token in (item[3] for item in batch):
                waiter = self._waiting.pop(token, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc)
            return
        ahead = self._ahead
        assert ahead is not None
        for sid, token, future in zip(sids, tokens, futures, strict=True):
            self._tries[token] = future
            self._futures.add(future)
            if self.run is not None and not self.run.stopping:
                for follower in ahead.submitted(sid, future):
                    with contextlib.suppress(Exception):  # else it goes when it starts
                        self._submit_ahead(follower)  # flushed in the next turn of the loop
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        """Fail the tries whose task ended without a report (`KilledWorker`, a cancel).

        Looks at the tries' states every `WATCH_S` (a dead worker shows within
        that); a try that finished gets `REPORT_GRACE_S` for its report.
        """
        finished_at: dict[str, float] = {}
        while self._waiting:
            await asyncio.sleep(WATCH_S)
            now = time.monotonic()
            for token in list(self._waiting):
                future = self._tries.get(token)
                if future is None or future.status == "pending":
                    continue
                if future.status == "finished":
                    if now - finished_at.setdefault(token, now) < REPORT_GRACE_S:
                        continue
                    error: BaseException = EngineError(
                        "The try ended on its Dask worker without reporting its outcome."
                    )
                elif future.status == "cancelled":
                    error = EngineError("Dask cancelled the try.")
                else:  # "error", or "lost" with its worker (Dask may recompute it)
                    try:
                        error = await asyncio.wait_for(future.exception(), REPORT_GRACE_S)
                    except TimeoutError:
                        error = EngineError(f"The try's task is {future.status} on Dask.")
                    except Exception as exc:
                        error = exc
                    if not isinstance(error, BaseException):  # it finished meanwhile
                        continue
                waiter = self._waiting.pop(token, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(error)

    async def _still_running(self, tokens: list[str]) -> set[str]:
        """Interrupt these tries again; the ones still running after the grace."""
        from marimo_engine.engine._dask_tasks import interrupt, running
        from marimo_engine.engine._threads import INTERRUPT_GRACE_S

        client = self.client
        still = set(tokens)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.run(interrupt, tokens), CLOSE_TIMEOUT_S)
            deadline = time.monotonic() + INTERRUPT_GRACE_S
            while still and time.monotonic() < deadline:
                answers = await asyncio.wait_for(client.run(running, tokens), CLOSE_TIMEOUT_S)
                still = {t for found in answers.values() for t in found}
                if still:
                    await asyncio.sleep(_POLL_S * 5)
        return still

    # -- helpers ------------------------------------------------------------------------

    def _key(self, step_id: str, what: str) -> str:
        return f"marimo-engine-{self.plan_id}-{step_id}-{what}"

    async def _small(self, function: Any, *args: Any) -> Any:
        """Run `function(*args)` as a Dask task and return its (small) result."""
        future = self.client.submit(function, *args, pure=False)
        self._futures.add(future)
        try:
            return await future
        finally:
            self._release(future)

    def _release(self, *futures: Any) -> None:
        for future in futures:
            if future is None:
                continue
            self._futures.discard(future)
            with contextlib.suppress(Exception):
                future.release()

    async def _stop_try(self, sid: str, token: str) -> None:
        """Interrupt a cancelled try on its worker and give it most of the grace to end."""
        from marimo_engine.engine._threads import INTERRUPT_GRACE_S

        client = self.client
        deadline = time.monotonic() + INTERRUPT_GRACE_S * 0.8
        self._waiting.pop(token, None)  # a try still queued is never submitted
        out = self._tries.pop(token, None)
        if out is None:
            return
        futures = (out,)
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    client.run(_interrupt_target(), [token]), INTERRUPT_GRACE_S * 0.5
                )
            while out.status == "pending" and time.monotonic() < deadline:
                await asyncio.sleep(_POLL_S)
            if out.status == "pending":  # still running on its worker: not stopped
                self.pool.stuck.setdefault(sid, []).append(token)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.cancel(list(futures), force=True), 1.0)
            self._release(*futures)


class _HereView(Mapping[str, Any]):
    """The run's outputs, with each `RemoteOutput` that came back as its value.

    A view, not a copy: resolving one step's `args` reads only what they name.
    """

    __slots__ = ("_outputs",)

    def __init__(self, outputs: Mapping[str, Any]) -> None:
        self._outputs = outputs

    def __getitem__(self, step_id: str) -> Any:
        value = self._outputs[step_id]
        if isinstance(value, RemoteOutput) and value.has_value:
            return value.value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)


def _settled(pending: set[asyncio.Future[Any]]) -> Any:
    """A done callback: forget the task and read its exception (a cancel is best effort)."""

    def done(task: asyncio.Future[Any]) -> None:
        pending.discard(task)
        if not task.cancelled():
            task.exception()

    return done


def _ran(entry: AheadTry, begun: Collection[str]) -> bool:
    """Whether a try submitted ahead called its tool (a worker said so, or its report did)."""
    return entry.token in begun or _reported(entry.waiter) in ("ok", "error")


def _reported(waiter: asyncio.Future[tuple[str, Any]]) -> str | None:
    """The kind of a try's report (`"ok"`, `"error"`, `"not-run"`), or `None` without one."""
    if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
        return None
    return waiter.result()[0]


def _forget_topic(topic: str, dask_scheduler: Any = None) -> None:
    """On the scheduler: drop the run's events (a long-lived scheduler keeps each topic)."""
    dask_scheduler._broker.truncate(topic)


def _interrupt_target() -> Any:
    from marimo_engine.engine._dask_tasks import interrupt

    return interrupt


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _split(
    step_ids: Collection[str], values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The values of `step_ids` that are here, and futures of those on the cluster."""
    local: dict[str, Any] = {}
    remote: dict[str, Any] = {}
    for sid in step_ids:
        if sid not in values:
            continue  # resolving then says which step has no output, as in process
        value = values[sid]
        if isinstance(value, RemoteOutput):
            if value.has_value:
                local[sid] = value.value
            else:
                remote[sid] = value.future
        elif isinstance(value, dict) and _on_cluster(value):  # Dask passes the held futures
            remote[sid] = _to_futures(value)
        else:
            local[sid] = value
    return local, remote


def _remotes_in(value: Any) -> Iterator[RemoteOutput]:
    """The `RemoteOutput`s that `value` is or holds in dicts (a sub-plan step's output)."""
    if isinstance(value, RemoteOutput):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _remotes_in(inner)


def _on_cluster(value: Any) -> bool:
    """Whether `value` is, or holds in dicts, an output that stayed on the cluster.

    Dicts hold them where a sub-plan step's output (step id to output) or a
    sub-plan's `input` values do; a list never does (a map step's output is
    one `RemoteOutput`).
    """
    return any(not remote.has_value for remote in _remotes_in(value))


def _needs_cluster(args: Any, inputs: Mapping[str, Any]) -> bool:
    """Whether resolving `args` reads into an output that stayed on the cluster.

    A string that does not parse needs nothing: resolving it here raises the
    same error as in process.
    """
    from marimo_engine.engine._dask_ahead import templates

    for template in templates(args):
        for ref in () if template is None else template.references:
            if _reads_into_cluster(inputs.get(ref.step_id), ref.path, whole=template.is_whole):
                return True
    return False


def _reads_into_cluster(value: Any, path: tuple[str, ...], *, whole: bool) -> bool:
    """Whether following `path` into `value` reads an output that stayed on the cluster.

    Walks the dicts here (a sub-plan's output); a path that goes on into a
    `RemoteOutput` reads it there, and so does text around a reference to
    one (`str()` of it). A whole reference that ends at one reads nothing:
    its future is passed as it is.
    """
    for key in path:
        if isinstance(value, RemoteOutput):
            return not value.has_value
        if not isinstance(value, dict) or key not in value:
            return False  # resolves, or fails as in process, here
        value = value[key]
    return not whole and _on_cluster(value)


def _to_futures(value: Any) -> Any:
    """`value` with each `RemoteOutput` replaced by its future (Dask passes the data)."""
    if isinstance(value, RemoteOutput):
        return value.future if value.future is not None else value.value
    if isinstance(value, dict):
        return {k: _to_futures(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_futures(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_futures(v) for v in value)
    return value


def _as_tool_error(exc: BaseException, tool: str, step_id: str) -> BaseException:
    """A tool that cannot be loaded on its worker is `UnknownToolError`, as anywhere else."""
    from marimo_engine.engine._dask_tasks import ToolLoadError

    if isinstance(exc, ToolLoadError):
        from marimo_engine.errors import UnknownToolError

        return UnknownToolError(
            tool, message=f"Tool {tool!r} of step {step_id!r} cannot be called here: {exc}"
        )
    return exc
