"""A bounded pool of worker threads for plain-function tools, whose calls can be interrupted.

A plain function runs outside the event loop (plan language spec, "Running",
clause 3). Python cannot kill a thread; when the step that waits on a worker
is cancelled (timeout, cancelled run) the pool raises `StepInterrupted` in
that worker with `PyThreadState_SetAsyncExc`. It takes effect at the tool's
next Python bytecode: a pure-Python loop stops at once, a call blocked in C
(`time.sleep`, `threading.Event().wait()`, a socket read) only when it
returns, which may be never.

So the waiting side does not wait for the worker: a cancelled call gives the
worker `INTERRUPT_GRACE_S` to end, then returns, and a worker still running
is **abandoned**. An abandoned worker leaves the pool (a
new one takes its place, so a stuck tool does not shrink the pool), finishes
its call in the background, throws the result away and exits. Workers are
daemon threads, so an abandoned one never holds the process at exit. The
pool names the calls whose workers are still running (`abandoned()`), and a
run lists them in its `FINISH` event.

An interruption that was sent but had not landed when the tool returned is
let land in the pool's own code, where it is caught. It is never "cleared"
with `PyThreadState_SetAsyncExc(id, NULL)`: on CPython 3.11 that call raises
the interpreter-wide "pending asynchronous exception" flag even for NULL, and
nothing lowers it again, so under `sys.settrace`/`sys.setprofile`
(profilers, debuggers, coverage) every thread's eval loop then spins at its
next function call (marimo-engine issue 9, item 7). Nothing is done at all
when no interruption was sent.

This module imports nothing heavy: compiled notebooks and live kernels use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_MAX_WORKERS", "StepInterrupted", "ThreadCall", "WorkerPool"]

DEFAULT_MAX_WORKERS = 128
"""Worker threads a run's plain-function tools may use at once when `max_workers` is not given.

Plain-function tools in plans are mostly I/O-bound (HTTP calls, database
queries, files, subprocesses): they wait with the GIL released, so a fan-out
of K of them takes as long as one only when K threads run them. Threads are
started only when a call is waiting and no worker is idle, and leave after
`IDLE_EXIT_S` idle, so a plan that never fans out never holds more than a few.
For CPU-bound plain tools (pure-Python loops hold the GIL; more threads only
switch more), pass `max_workers` about the number of cores.
"""


class StepInterrupted(BaseException):
    """Raised inside a worker thread whose step was cancelled or timed out.

    A `BaseException`, so that a tool's `except Exception:` does not swallow it.
    """


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)

_JOIN_BOUND_S = 5.0
"""Seconds `shutdown` waits for one pool worker (never reached: they are idle)."""

IDLE_EXIT_S = 60.0
"""Seconds a worker waits for work before it exits (a notebook's pool is never shut down)."""

INTERRUPT_GRACE_S = 1.0
"""Seconds an interrupted worker gets to end before it is abandoned.

A pure-Python tool ends within microseconds of the interruption; one blocked
in C ends only when the C call returns, so waiting longer rarely helps.
"""

_QUEUED, _RUNNING, _DONE, _CANCELLED = range(4)


class ThreadCall:
    """One call of a plain function on a worker thread.

    Attributes:
        label: What the call is for (a step id), used to name abandoned calls.
        ended: Whether the function returned or raised, or the call was
            cancelled before it started.
        interrupted: Whether `StepInterrupted` was sent to the worker.
    """

    __slots__ = (
        "_future",
        "_loop",
        "_waiter",
        "ended",
        "function",
        "ident",
        "interrupted",
        "kwargs",
        "label",
        "lock",
        "state",
    )

    def __init__(
        self,
        function: Callable[..., Any],
        kwargs: dict[str, Any],
        label: str,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.function = function
        self.kwargs = kwargs
        self.label = label
        self.lock = threading.Lock()
        self.ident: int | None = None
        self.state = _QUEUED
        self.interrupted = False
        self.ended = False
        # A threading.Event only for a caller that waits for the end (an
        # interrupted call): most calls end without anyone waiting.
        self._waiter: threading.Event | None = None
        self._loop = loop
        # No loop: the call runs on the caller's own thread (`run_here`, a Dask worker).
        self._future: asyncio.Future[Any] = loop.create_future() if loop is not None else None  # type: ignore[assignment]

    @property
    def running(self) -> bool:
        """Whether the function is still running on its worker."""
        return not self.ended

    def _mark_ended(self) -> None:
        """Record the end (with `lock` held) and wake a waiter, if any."""
        self.ended = True
        if self._waiter is not None:
            self._waiter.set()

    def interrupt(self) -> bool:
        """Stop the call: drop it if it has not started, else interrupt its worker.

        Returns:
            Whether the call had already ended or never started (nothing
            keeps running).
        """
        with self.lock:
            if self.state == _QUEUED:
                self.state = _CANCELLED
                self._mark_ended()
                return True
            if self.state == _RUNNING and not self.interrupted and self.ident is not None:
                self.interrupted = True
                _set_async_exc(self.ident, ctypes.py_object(StepInterrupted))
            return self.state != _RUNNING

    async def wait_ended(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` seconds for the worker to leave the function.

        Returns:
            Whether it has ended.
        """
        with self.lock:
            if self.ended:
                return True
            if self._waiter is None:
                self._waiter = threading.Event()
            ended = self._waiter
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        def watch() -> None:  # on a helper thread: the loop must not block
            if ended.wait(timeout_s):
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    loop.call_soon_threadsafe(wake)

        threading.Thread(target=watch, name="marimo-engine-watch", daemon=True).start()
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            pass
        return self.ended

    def run_here(self) -> Any:
        """Run the function on the calling thread, interruptible by `interrupt()` from another.

        For a call made without a loop (a tool on a Dask worker's thread:
        `engine._dask_tasks`). An interruption that lands after the function
        ended is dropped here, as in the pool.

        Returns:
            What the function returned.

        Raises:
            BaseException: What the function raised; `StepInterrupted` when
                it was interrupted (also before it started).
        """
        try:
            ok, result = self._execute()
        except StepInterrupted:  # arrived between the call's end and the clear
            with self.lock:
                self._mark_ended()
            raise
        if ok:
            return result
        raise result

    def _execute(self) -> tuple[bool, Any]:
        """Run the function on the calling worker thread and report to the loop (if any).

        Returns:
            `(True, result)` or `(False, exception)`; with a loop, the result or
            exception goes to the call's future and `None` comes back in its place.
        """
        with self.lock:
            if self.state == _CANCELLED:
                return False, StepInterrupted()
            self.ident = threading.get_ident()
            self.state = _RUNNING
        ok = False
        kwargs, self.kwargs = self.kwargs, {}  # held only while the function runs
        try:
            result: Any = self.function(**kwargs)
            ok = True
        except BaseException as exc:  # the tool's error is the caller's data
            result = exc
        finally:
            del kwargs
            with self.lock:
                self.state = _DONE  # no interruption is sent from here on
                interrupted = self.interrupted
            if interrupted:
                # One was sent: if the tool returned before it landed, it is
                # still pending. Let it land here, at the loop's backward jump
                # (inline: a call could deliver it outside this `try`).
                try:
                    for _ in range(2):
                        pass
                except StepInterrupted:
                    pass
            with self.lock:
                self._mark_ended()
        if self._loop is None:
            return ok, result
        # Handed over in a box the loop empties: this thread may wait for the GIL
        # for a while after the hand-over, and must not hold the output meanwhile
        # (a run that releases outputs, keep_outputs="needed", expects it gone).
        box = [result]
        del result
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self._loop.call_soon_threadsafe(_settle, self._future, ok, box)
        return ok, None


async def _ended_soon(call: ThreadCall) -> bool:
    """Give an interrupted call `INTERRUPT_GRACE_S` to end; whether it did."""
    try:
        return await call.wait_ended(INTERRUPT_GRACE_S)
    except asyncio.CancelledError:  # cancelled again meanwhile: stop waiting
        return not call.running


def _settle(future: asyncio.Future[Any], ok: bool, box: list[Any]) -> None:
    """Settle a call's future: with the box itself on success (`WorkerPool.run` empties it).

    The worker thread may still hold this handle's arguments, the future
    among them, after the loop ran it (it waits for the GIL inside
    `call_soon_threadsafe`): the future must not hold the output itself.
    """
    if future.done():
        box.clear()
        return
    if ok:
        future.set_result(box)
    else:
        future.set_exception(box.pop())


class _AbandonedTask:
    __slots__ = ("label", "task")

    def __init__(self, label: str, task: asyncio.Future[Any]) -> None:
        self.label = label
        self.task = task

    @property
    def running(self) -> bool:
        return not self.task.done()


class WorkerPool:
    """Runs plain functions in at most `max_workers` daemon threads at once.

    Args:
        max_workers: Largest number of tools running at once in threads;
            `None` takes `DEFAULT_MAX_WORKERS` (128; threads start only as
            calls need them). Abandoned workers do not count.
        name: Prefix of the worker threads' names.
    """

    def __init__(self, max_workers: int | None = None, *, name: str = "marimo-engine-step") -> None:
        self.max_workers = max_workers or DEFAULT_MAX_WORKERS
        self._name = name
        self._jobs: queue.SimpleQueue[ThreadCall | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: set[threading.Thread] = set()  # in the pool (not abandoned)
        self._idle = 0
        self._pending = 0  # queued calls no worker has taken yet
        self._starting = 0  # workers created that do not count as idle yet
        self._spawning = False  # a worker is starting the others a burst needs
        self._count = 0
        self._slots: asyncio.Semaphore | None = None
        self._abandoned: list[ThreadCall | _AbandonedTask] = []
        self._closed = False
        self.active = 0  # calls submitted and not yet returned to their caller

    def _needs_worker(self) -> bool:
        """Whether queued calls outnumber the workers that will take them (lock held)."""
        return (
            not self._closed
            and self._pending > self._idle + self._starting
            and len(self._workers) < self.max_workers
        )

    def _new_worker(self, *, spawner: bool = False) -> threading.Thread:
        """Create (not start) a worker thread, counted as starting (lock held)."""
        self._count += 1
        self._starting += 1
        worker = threading.Thread(
            target=self._work, args=(spawner,), name=f"{self._name}_{self._count}", daemon=True
        )
        self._workers.add(worker)
        return worker

    def _submit(self, call: ThreadCall) -> None:
        # `Thread.start()` waits until the new thread runs (60-250 µs, more
        # on a busy machine). The event loop pays that once per burst: the
        # worker it starts (the spawner) starts the others the queue needs,
        # off the loop, while the loop goes on queueing calls.
        with self._lock:
            self._pending += 1
            spawner = None
            if not self._spawning and self._needs_worker():
                self._spawning = True
                spawner = self._new_worker(spawner=True)
        self._jobs.put(call)
        if spawner is not None:
            spawner.start()

    def _spawn(self) -> None:
        """Start workers while queued calls need them, then stop being the spawner.

        The spawner itself counts as starting: it takes a call afterwards.
        """
        while True:
            with self._lock:
                if not self._needs_worker():
                    self._spawning = False
                    return
                worker = self._new_worker()
            worker.start()

    def _work(self, spawner: bool = False) -> None:
        me = threading.current_thread()
        if spawner:
            self._spawn()
        starting = True
        while True:
            with self._lock:
                if starting:
                    self._starting -= 1
                    starting = False
                if me not in self._workers:  # abandoned: its stuck call is over now
                    return
                self._idle += 1
            try:
                call = self._jobs.get(timeout=IDLE_EXIT_S)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    if self._pending <= self._idle:  # the others take what is queued
                        self._workers.discard(me)
                        return
                continue
            with self._lock:
                self._idle -= 1
                if call is not None:
                    self._pending -= 1
            if call is None:
                with self._lock:
                    self._workers.discard(me)
                return
            try:
                call._execute()
            except StepInterrupted:  # arrived between the call's end and the clear
                with call.lock:
                    call._mark_ended()
            # An idle worker holds no call: its arguments (other steps' outputs)
            # must be freed when the run lets them go (keep_outputs="needed").
            call = None

    def _abandon(self, call: ThreadCall) -> None:
        """Take the worker of an interrupted, still running call out of the pool."""
        with self._lock:
            self._abandoned.append(call)
            for worker in self._workers:
                if worker.ident == call.ident:
                    self._workers.discard(worker)
                    break

    def start(self, function: Callable[..., Any], kwargs: dict[str, Any], label: str) -> ThreadCall:
        """Queue `function(**kwargs)` for a worker (no bound: see `run`).

        Returns:
            The call; await `result(call)` for its outcome.
        """
        call = ThreadCall(function, kwargs, label, asyncio.get_running_loop())
        self._submit(call)
        return call

    async def run(
        self, function: Callable[..., Any], kwargs: dict[str, Any], label: str = ""
    ) -> Any:
        """Call `function(**kwargs)` in a worker thread and await its result.

        At most `max_workers` calls run at once; further ones wait their turn.

        Args:
            function: A plain (not coroutine) function.
            kwargs: Its keyword arguments.
            label: What the call is for (a step id): names it if it is abandoned.

        Returns:
            What the function returned.

        Raises:
            BaseException: What the function raised, `BaseException`s included.
            asyncio.CancelledError: The caller was cancelled. The worker is
                interrupted and, if still running, abandoned (see the module
                docstring); this returns at once in either case.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_workers)
        self.active += 1
        try:
            async with self._slots:
                call = self.start(function, kwargs, label)
                try:
                    box = await call._future  # `_settle`: the output in a box
                    return box.pop()
                except asyncio.CancelledError:
                    if not call.interrupt() and not await _ended_soon(call):
                        self._abandon(call)
                    raise
        finally:
            self.active -= 1

    def abandon_task(self, label: str, task: asyncio.Future[Any]) -> None:
        """Count a cancelled coroutine tool that has not ended as abandoned.

        Args:
            label: What it was for (a step id).
            task: Its task; it counts until it is done.
        """
        with self._lock:
            self._abandoned.append(_AbandonedTask(label, task))

    def abandoned(self) -> list[str]:
        """Labels of abandoned calls (threads or tasks) still running, oldest first."""
        with self._lock:
            return list(dict.fromkeys(c.label for c in self._abandoned if c.running))

    def is_running(self, label: str) -> bool:
        """Whether an abandoned call with this label is still running."""
        with self._lock:
            return any(c.label == label and c.running for c in self._abandoned)

    @property
    def is_idle(self) -> bool:
        """Whether no call is running or queued."""
        return self.active == 0

    def shutdown(self) -> None:
        """Stop the pool's workers; never waits for an abandoned one.

        Workers still in the pool are idle or leaving a call that ended (a
        call still running when its caller gave up was abandoned, and its
        worker left the pool): they get a stop signal and are joined, which
        takes microseconds. Abandoned workers are left to end on their own.
        """
        if self._closed:
            return
        self._closed = True
        with self._lock:
            workers = list(self._workers)
        for _ in workers:
            self._jobs.put(None)
        for worker in workers:
            with contextlib.suppress(RuntimeError):  # created, not started yet: it will see None
                worker.join(_JOIN_BOUND_S)
