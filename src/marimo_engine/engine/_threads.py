"""A bounded worker pool for plain-function tools, whose calls can be interrupted.

A plain function runs outside the event loop (plan language spec, "Running",
clause 3). Python cannot kill a thread; when the step that waits on a worker
is cancelled (timeout, cancelled run) the pool raises `StepInterrupted` in
that worker with `PyThreadState_SetAsyncExc`. It takes effect at the tool's
next Python bytecode: a pure-Python loop stops at once, a call blocked in C
(`time.sleep`, a socket read) when it returns. `shutdown()` joins the
workers, so no thread outlives the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["StepInterrupted", "WorkerPool"]


class StepInterrupted(BaseException):
    """Raised inside a worker thread whose step was cancelled or timed out.

    A `BaseException`, so that a tool's `except Exception:` does not swallow it.
    """


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


class _Call:
    """One tool call on a worker: knows its thread while it runs."""

    __slots__ = ("ident", "lock", "running")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ident: int | None = None
        self.running = False

    def interrupt(self) -> None:
        with self.lock:
            if self.running and self.ident is not None:
                _set_async_exc(self.ident, ctypes.py_object(StepInterrupted))


class WorkerPool:
    """Runs plain functions in at most `max_workers` threads.

    Args:
        max_workers: Largest number of tools running at once in threads;
            `None` takes Python's default (`min(32, cpu_count + 4)`).
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="marimo-engine-step"
        )
        self.active = 0  # calls submitted and not yet finished

    async def run(self, function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """Call `function(**kwargs)` in a worker thread and await its result.

        Args:
            function: A plain (not coroutine) function.
            kwargs: Its keyword arguments.

        Returns:
            What the function returned.

        Raises:
            BaseException: What the function raised, `BaseException`s included.
            asyncio.CancelledError: The caller was cancelled; the worker is
                interrupted (see the module docstring).
        """
        call = _Call()

        def work() -> Any:
            with call.lock:
                call.ident = threading.get_ident()
                call.running = True
            try:
                return function(**kwargs)
            finally:
                with call.lock:
                    call.running = False
                    # Clear an interruption that arrived too late to matter, so
                    # that it cannot fire in the pool's own loop.
                    _set_async_exc(call.ident, ctypes.py_object())

        self.active += 1
        future = self._executor.submit(work)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if not future.cancel():
                call.interrupt()
            raise
        finally:
            self.active -= 1

    @property
    def is_idle(self) -> bool:
        """Whether no call is running or queued (joining the workers then takes microseconds)."""
        return self.active == 0

    def shutdown(self) -> None:
        """Stop taking work and join every worker thread (blocks until they end)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
